#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The relay end to end, sans I/O: an MPTCP client (two subflows) → the gateway's
//! stack running the relay → a server stack running the echo service. Segments are
//! handed between the stacks directly (payloads by reference), so every byte the
//! client reads back went through both of the gateway's connections.

use dataplane::diag::{DiagMode, DiagService};
use dataplane::mptcp::crypto::KeySource;
use dataplane::mptcp::mib::Mib;
use dataplane::mptcp::msk::MskId;
use dataplane::mptcp::stack::{Config, JoinPath, MemoryPressure, Stack, StateCounts};
use dataplane::port::heap::{HeapPool, HeapShared};
use dataplane::port::PacketBuf;
use dataplane::relay::{Accept, Listener, Relay, RelayConfig, RelayStats};
use dataplane::tcp::{Events, FourTuple, Instant, Payload, Secrets, SegmentIn, SegmentOut};
use dataplane::tcp::{SegOptions, TableConfig};
use dataplane::transparent::{Rule, Rules};
use dataplane::wire::tcp::TcpFlags;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

type S = HeapShared;
type Out = Vec<(FourTuple, SegmentOut<S>)>;

const LISTEN: &str = "192.0.2.1:80";
const DEAD_BACKEND: &str = "203.0.113.2:80";
const BACKEND: &str = "203.0.113.3:80";

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn stack(seed: u8, cfg: Config) -> Stack<S> {
    Stack::new(
        TableConfig::default(),
        Secrets::new([seed; 32]),
        cfg,
        KeySource::from_seed([seed; 32]),
        (0, 1),
        Instant::default(),
    )
}

/// The segment as its receiver sees it (payload by reference).
fn received(seg: &SegmentOut<S>) -> SegmentIn<S> {
    let mut s = SegmentIn::bare(seg.seq, seg.ack, seg.flags, seg.window);
    s.raw_options.extend(seg.options.as_bytes().iter().copied());
    s.options = SegOptions::parse(&s.raw_options);
    s.payload = seg.payload.clone();
    s
}

/// What the server does with connections.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ServerApp {
    /// Echo everything.
    Echo,
    /// Accept but never read.
    Stall,
    /// Reset every connection once established.
    Reset,
    /// Send [`BLOB`] bytes at once, then close.
    Blob,
    /// Send a third of [`BLOB`], then reset the connection.
    BlobThenReset,
}

/// What [`ServerApp::Blob`] sends.
const BLOB: usize = 3 << 20;

struct Net {
    pool: HeapPool,
    client: Stack<S>,
    gw: Stack<S>,
    relay: Relay<MskId>,
    server: Stack<S>,
    diag: DiagService<S, MskId>,
    app: ServerApp,
    /// The server's connection and the bytes it sent ([`ServerApp::Blob`]).
    server_conn: Option<MskId>,
    server_sent: usize,
    /// Segments in flight, by sender.
    wire: Out,
    now: Instant,
    conn: Option<MskId>,
    client_events: Events,
    joined: bool,
    data: Vec<u8>,
    sent: usize,
    got: Vec<u8>,
    /// The client application reads what arrives.
    reading: bool,
    /// Bytes per [`ServerApp::Blob`] send.
    blob_piece: usize,
    /// Payload lengths of the data segments from the server to the gateway and from
    /// the gateway to the client.
    server_to_gw: Vec<usize>,
    gw_to_client: Vec<usize>,
    /// Where the client connects (and joins).
    target: SocketAddr,
    /// The gateway's transparent listeners: the client's segments go to the
    /// gateway whatever their destination (it is the client's next hop).
    transparent: Option<Rules>,
    /// Segments to foreign destinations the gateway did not take.
    dropped: u64,
    /// Where the server saw its connection come from.
    server_peer: Option<SocketAddr>,
    /// The server's first FIN is delivered once more, 50 ms later (a retransmission
    /// that arrives after the server freed its connection).
    replay_server_fin: bool,
    /// Segments held back for later delivery, with their time.
    held: Vec<(Instant, FourTuple, SegmentOut<S>)>,
}

impl Net {
    fn new(backends: &[&str], app: ServerApp, cfg: Config) -> Self {
        Net::with_client_config(backends, app, cfg.clone(), cfg)
    }

    /// As [`Net::new`], the client's stack configured by `client`.
    fn with_client_config(backends: &[&str], app: ServerApp, cfg: Config, client: Config) -> Self {
        let listener = Listener {
            accept: Accept::Addr(sock(LISTEN)),
            backends: backends.iter().map(|b| sock(b)).collect(),
            mptcp: false,
        };
        Net::with(listener, sock(LISTEN), true, app, (cfg, client))
    }

    /// A gateway with a transparent listener taking destination ports `dst_ports`
    /// on its client-facing port (index 0), opening MPTCP when `edge`; the client
    /// connects to the server's own address (MPTCP unless `edge`).
    fn transparent(dst_ports: Vec<(u16, u16)>, edge: bool, app: ServerApp, cfg: Config) -> Self {
        let listener = Listener {
            accept: Accept::Transparent(Rule {
                ports: vec![0],
                dst_ports,
            }),
            backends: Vec::new(),
            mptcp: edge,
        };
        let mut net = Net::with(listener, sock(BACKEND), !edge, app, (cfg.clone(), cfg));
        net.transparent = Some(net.relay.transparent_rules());
        net
    }

    fn with(
        listener: Listener,
        target: SocketAddr,
        client_mptcp: bool,
        app: ServerApp,
        (cfg, client_cfg): (Config, Config),
    ) -> Self {
        let mut gw = stack(2, cfg.clone());
        let mut relay = Relay::new(RelayConfig::default());
        relay.add(&mut gw, listener);
        let mut server = stack(3, cfg.clone());
        let mut diag = DiagService::new(Vec::new());
        match app {
            ServerApp::Echo => diag.add(&mut server, sock(BACKEND), DiagMode::Echo),
            ServerApp::Stall | ServerApp::Reset | ServerApp::Blob | ServerApp::BlobThenReset => {
                server.listen(sock(BACKEND))
            }
        }
        let mut client = stack(1, client_cfg);
        let mut wire = Out::new();
        let conn = client.connect(
            sock("192.0.2.2:40000"),
            target,
            client_mptcp,
            Instant::default(),
            &mut wire,
        );
        Net {
            pool: HeapPool::new(1 << 16),
            client,
            gw,
            relay,
            server,
            diag,
            app,
            server_conn: None,
            server_sent: 0,
            wire,
            now: Instant::default(),
            conn,
            client_events: Events::NONE,
            joined: false,
            data: (0..4 << 20)
                .map(|i: u32| (i * 7 + i / 1000) as u8)
                .collect(),
            sent: 0,
            got: Vec::new(),
            reading: true,
            blob_piece: 1400,
            server_to_gw: Vec::new(),
            gw_to_client: Vec::new(),
            target,
            transparent: None,
            dropped: 0,
            server_peer: None,
            replay_server_fin: false,
            held: Vec::new(),
        }
    }

    /// Delivers every segment in flight (and those held back until now) to the stack
    /// owning its destination.
    fn deliver(&mut self) {
        let mut from_gw = Out::new();
        let mut from_ends = Out::new();
        let now = self.now;
        let (due, held) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(at, _, _)| *at <= now);
        self.held = held;
        self.wire.extend(
            due.into_iter()
                .map(|(_, tuple, seg): (_, _, SegmentOut<S>)| (tuple, seg)),
        );
        for (tuple, seg) in std::mem::take(&mut self.wire) {
            if self.replay_server_fin
                && tuple.local == sock(BACKEND)
                && seg.flags.contains(TcpFlags::FIN)
            {
                self.replay_server_fin = false;
                let at = now + Duration::from_millis(50);
                self.held.push((at, tuple, seg.clone()));
            }
            let to = FourTuple {
                local: tuple.remote,
                remote: tuple.local,
            };
            let seg = received(&seg);
            let len = seg.payload.as_ref().map_or(0, |p| p.len());
            let from_client = matches!(to.remote.ip(), IpAddr::V4(a) if a.octets()[3] == 2);
            if let (Some(rules), true) = (&self.transparent, from_client) {
                // The gateway is the client's next hop: it takes its own addresses'
                // segments, and those its transparent listener (or a connection)
                // takes for foreign ones.
                let own = matches!(to.local.ip(), IpAddr::V4(a) if a.octets()[3] == 1);
                if own {
                    self.gw.on_segment(to, seg, self.now, &mut from_gw);
                } else {
                    let to_whom = rules.classify(0, &to);
                    if !self
                        .gw
                        .on_foreign_segment(to, seg, to_whom, self.now, &mut from_gw)
                    {
                        self.dropped += 1;
                    }
                }
                continue;
            }
            match to.local.ip() {
                IpAddr::V4(a) if a.octets()[3] == 1 => {
                    if len > 0 && to.remote == sock(BACKEND) {
                        self.server_to_gw.push(len);
                    }
                    self.gw.on_segment(to, seg, self.now, &mut from_gw);
                }
                IpAddr::V4(a) if a.octets()[..3] == [203, 0, 113] => {
                    self.server.on_segment(to, seg, self.now, &mut from_ends);
                }
                _ => {
                    if len > 0 {
                        self.gw_to_client.push(len);
                    }
                    self.client.on_segment(to, seg, self.now, &mut from_ends)
                }
            }
        }
        self.wire.extend(from_gw);
        self.wire.extend(from_ends);
    }

    /// One round: deliver, run the applications and timers, advance 1 ms.
    fn step(&mut self) {
        self.deliver();
        let out = &mut self.wire;
        // The gateway: the relay serves its connections.
        while let Some(id) = self.gw.next_ready() {
            let ev = self.gw.take_events(id);
            let source = |_: IpAddr| Some(IpAddr::from([203, 0, 113, 1]));
            if !self
                .relay
                .serve(&mut self.gw, id, ev, source, self.now, out)
            {
                self.gw.flush(id, self.now, out);
            }
        }
        // The server.
        while let Some(id) = self.server.next_ready() {
            let ev = self.server.take_events(id);
            if self.app == ServerApp::Reset && ev.contains(Events::CONNECTED) {
                self.server.abort(id, self.now, out);
            }
            let blob = matches!(self.app, ServerApp::Blob | ServerApp::BlobThenReset);
            if blob && ev.contains(Events::CONNECTED) {
                self.server_conn = Some(id);
            }
            if ev.contains(Events::CONNECTED) {
                self.server_peer = self.server.info(id).map(|i| i.remote);
            }
            if !self.diag.serve(&mut self.server, id, ev, self.now, out) {
                self.server.flush(id, self.now, out);
            }
        }
        if let Some(id) = self.server_conn {
            if self.app == ServerApp::BlobThenReset && self.server_sent >= BLOB / 3 {
                self.server.abort(id, self.now, out);
                self.server_conn = None;
                return;
            }
            while self.server.recv(id).is_some() {}
            while self.server_sent < BLOB && self.server.send_space(id) > 0 {
                let n = (BLOB - self.server_sent)
                    .min(self.blob_piece)
                    .min(self.server.send_space(id));
                let bytes: Vec<u8> = (self.server_sent..self.server_sent + n)
                    .map(|i| i as u8)
                    .collect();
                let buf = self.pool.alloc_from(&bytes).unwrap();
                self.server
                    .send(id, Payload::new(buf.into_shared()))
                    .unwrap();
                self.server_sent += n;
                if self.server_sent == BLOB {
                    self.server.close(id);
                }
            }
            self.server.flush(id, self.now, out);
        }
        // The client: join once, send everything, read, close after sending.
        while let Some(id) = self.client.next_ready() {
            self.client_events |= self.client.take_events(id);
            self.client.flush(id, self.now, out);
        }
        if let Some(m) = self.conn {
            if !self.joined && self.client_events.contains(Events::CONNECTED) {
                let path = JoinPath {
                    local: sock("198.51.100.2:40001"),
                    remote: self.target,
                    local_id: 1,
                    backup: false,
                };
                self.joined = self.client.join(m, &path, self.now, out);
            }
            while let Some(p) = self.reading.then(|| self.client.recv(m)).flatten() {
                self.got.extend_from_slice(p.bytes());
            }
            while self.sent < self.data.len() && self.client.send_space(m) > 0 {
                let n = (self.data.len() - self.sent)
                    .min(1400)
                    .min(self.client.send_space(m));
                let buf = self
                    .pool
                    .alloc_from(&self.data[self.sent..self.sent + n])
                    .unwrap();
                self.client
                    .send(m, Payload::new(buf.into_shared()))
                    .unwrap();
                self.sent += n;
                if self.sent == self.data.len() {
                    self.client.close(m);
                }
            }
            self.client.flush(m, self.now, out);
        }
        self.gw.on_timers(self.now, out);
        self.server.on_timers(self.now, out);
        self.client.on_timers(self.now, out);
        self.now = self.now + Duration::from_millis(1);
    }

    /// Steps until every stack is empty or `limit` rounds passed; returns the rounds.
    fn run(&mut self, limit: u32) -> u32 {
        for round in 0..limit {
            if round > 10 && self.client.is_empty() && self.gw.is_empty() && self.server.is_empty()
            {
                return round;
            }
            self.step();
        }
        limit
    }

    /// Steps until every stack is empty; fails when that takes too long.
    fn finish(&mut self) {
        let r = self.run(200_000);
        if r >= 200_000 {
            for (n, st) in [
                ("client", &self.client),
                ("gw", &self.gw),
                ("server", &self.server),
            ] {
                let mut v = Vec::new();
                st.snapshot(10, |_| None, &mut v);
                eprintln!("connections left at the {n}: {v:#?}");
            }
        }
        assert!(r < 200_000, "the transfer did not finish");
    }

    /// The client read exactly what [`ServerApp::Blob`] sent.
    fn assert_got_blob(&self) {
        assert_eq!(self.got.len(), BLOB);
        let exact = self.got.iter().enumerate().all(|(i, &b)| b == i as u8);
        assert!(exact, "bytes differ");
    }

    fn stats(&self) -> RelayStats {
        self.relay.stats()
    }
}

#[test]
fn relays_both_ways_exactly_past_a_dead_backend_and_closes_everything() {
    let mut net = Net::new(&[DEAD_BACKEND, BACKEND], ServerApp::Echo, Config::default());
    net.finish();
    assert_eq!(net.got.len(), net.data.len());
    assert!(net.got == net.data, "echoed bytes differ");
    let st = net.stats();
    assert_eq!(st.accepted, 1);
    assert_eq!(st.connect_failures, 1, "the dead backend was tried first");
    assert_eq!(st.connected, 1);
    assert_eq!((st.resets, st.refused, st.pairs), (0, 0, 0));
    assert_eq!(st.bytes_up, net.data.len() as u64);
    assert_eq!(st.bytes_down, net.data.len() as u64);
    assert!(net.joined);
    assert_eq!(net.gw.mib().get(Mib::MPJoinAckRx), 1);
    // Closed cleanly at the client: DATA_FIN relayed as FIN and back.
    assert!(net.client_events.contains(Events::CLOSED));
    assert!(!net.client_events.contains(Events::RESET));
}

#[test]
fn a_backend_reset_reaches_the_mptcp_client_as_fastclose() {
    let mut net = Net::new(&[BACKEND], ServerApp::Reset, Config::default());
    net.run(20_000);
    assert!(net.client_events.contains(Events::RESET));
    assert_eq!(net.stats().resets, 1);
    // One MP_FASTCLOSE per subflow, on its RST.
    assert!(net.client.mib().get(Mib::MPFastcloseRx) >= 1);
    assert!(net.gw.is_empty(), "the gateway freed both connections");
}

#[test]
fn a_backend_reset_mid_download_is_never_passed_on_as_the_end_of_data() {
    // The gateway holds data of the backend leg when its RST comes (a small send
    // budget towards the client): the client must see a reset, not a DATA_FIN after
    // what got through — a truncated stream handed over as a complete one.
    let cfg = Config {
        send_budget: 64 << 10,
        ..Config::default()
    };
    let mut net = Net::new(&[BACKEND], ServerApp::BlobThenReset, cfg);
    net.data.truncate(1);
    net.run(20_000);
    assert!(
        net.client_events.contains(Events::RESET),
        "{:?}",
        net.client_events
    );
    assert!(
        !net.client_events.contains(Events::PEER_FIN),
        "{:?}",
        net.client_events
    );
    assert!(net.got.len() < BLOB);
    assert_eq!(net.stats().resets, 1);
}

#[test]
fn no_reachable_backend_resets_the_client() {
    let mut net = Net::new(
        &[DEAD_BACKEND, "203.0.113.4:80"],
        ServerApp::Echo,
        Config::default(),
    );
    net.run(20_000);
    let st = net.stats();
    assert_eq!((st.connect_failures, st.refused, st.connected), (2, 1, 0));
    assert!(net.client_events.contains(Events::RESET));
    assert!(net.gw.is_empty());
}

#[test]
fn a_server_that_does_not_read_holds_the_client_back() {
    let cfg = Config {
        recv_window: 256 << 10,
        send_budget: 256 << 10,
        ..Config::default()
    };
    let mut net = Net::new(&[BACKEND], ServerApp::Stall, cfg);
    net.run(5_000);
    // What left the client sits in the server's receive buffer, the gateway's two
    // connections and the client's send buffer: all bounded by the buffers (the
    // gateway's MPTCP side may hold up to two: a subflow's TCP window never shrinks).
    let st = net.stats();
    assert!(st.bytes_up > 0);
    assert!(net.sent < net.data.len(), "the client was held back");
    // Slack: window rounding (scaled windows) and segments in flight.
    let bound = 5 * (256 << 10) + (64 << 10);
    assert!(net.sent <= bound, "client sent {} > {bound}", net.sent);
    assert!(st.bytes_up <= 2 * (256 << 10) + (64 << 10), "{st:?}");
}

#[test]
fn a_backend_closing_behind_a_full_client_buffer_loses_nothing() {
    // The backend sends everything and closes at once; the gateway's send buffer
    // towards the client is small, so its FIN arrives while data still waits to be
    // relayed. The client must read every byte before the end of data.
    let cfg = Config {
        recv_window: 1 << 20,
        send_budget: 64 << 10,
        ..Config::default()
    };
    let mut net = Net::new(&[BACKEND], ServerApp::Blob, cfg);
    net.data.truncate(1);
    net.finish();
    net.assert_got_blob();
    assert!(net.client_events.contains(Events::CLOSED));
}

#[test]
fn a_servers_rst_ending_time_wait_loses_none_of_the_data_still_to_relay() {
    // The client half-closes at once and reads nothing for a while; the server sends
    // everything and closes: the gateway's backend leg is in TIME-WAIT with the data
    // still to relay. The server's FIN arrives once more after the server freed its
    // connection: the gateway's ACK of it is answered with a RST (as Linux answers a
    // segment for no socket), which ends the TIME-WAIT. The client still gets every
    // byte and a clean end (before, the pair was reset: the lab's transparent chain
    // lost about 1 download in 70 so).
    let cfg = Config {
        recv_window: 4 << 20,
        send_budget: 64 << 10,
        ..Config::default()
    };
    let client = Config {
        recv_window: 64 << 10,
        ..cfg.clone()
    };
    let mut net = Net::with_client_config(&[BACKEND], ServerApp::Blob, cfg, client);
    net.data.truncate(1);
    net.replay_server_fin = true;
    net.reading = false;
    net.run(1000);
    assert!(
        net.server.tcp().stats().resets_sent > 0,
        "the server answered the gateway's late ACK with a RST"
    );
    net.reading = true;
    net.finish();
    net.assert_got_blob();
    assert!(
        net.client_events.contains(Events::CLOSED),
        "{:?}",
        net.client_events
    );
    assert!(
        !net.client_events.contains(Events::RESET),
        "{:?}",
        net.client_events
    );
}

/// A download where the server writes `piece` bytes at a time, as a kernel fills
/// segments of its MSS from a byte stream: the data segments server → gateway and
/// gateway → client, and the largest server segment.
fn download_segments(plain_mss_reserve: u16, piece: usize) -> (usize, usize, usize) {
    let cfg = Config {
        plain_mss_reserve,
        ..Config::default()
    };
    let mut net = Net::new(&[BACKEND], ServerApp::Blob, cfg);
    net.data.truncate(1);
    net.blob_piece = piece;
    net.finish();
    net.assert_got_blob();
    let largest = net.server_to_gw.iter().copied().max().unwrap();
    (net.server_to_gw.len(), net.gw_to_client.len(), largest)
}

#[test]
fn plain_legs_offer_an_mss_whose_segments_fit_one_mptcp_segment() {
    // Payload moves by reference: a plain segment larger than what an MPTCP segment
    // carries after its DSS option leaves as a full segment plus a 28-byte one.
    let (from_server, to_client, largest) = download_segments(0, 1448);
    assert_eq!(largest, 1448);
    assert!(
        to_client > from_server * 3 / 2,
        "{from_server} → {to_client}"
    );
    // With the DSS option's room left off the backend leg's MSS offer, the server's
    // segments carry at most 1420 bytes, and each leaves on a subflow whole.
    let (_, _, largest) = download_segments(28, 1448);
    assert_eq!(largest, 1420);
    let (from_server, to_client, _) = download_segments(28, 1420);
    assert!(to_client <= from_server + 8, "{from_server} → {to_client}");
}

#[test]
fn a_plain_backend_filling_a_stalled_pair_loses_nothing() {
    // The client stops reading: the gateway's buffers fill up to the backend. The
    // plain backend connection acknowledges what it takes, so its window must never
    // run ahead of the connection's buffer (nothing may be dropped past it).
    let cfg = Config {
        recv_window: 256 << 10,
        send_budget: 128 << 10,
        ..Config::default()
    };
    let mut net = Net::new(&[BACKEND], ServerApp::Blob, cfg);
    net.data.truncate(1);
    net.reading = false;
    net.run(3_000);
    assert!(
        net.server_sent > 0 && net.server_sent < BLOB,
        "{}",
        net.server_sent
    );
    assert_eq!(net.gw.mib().get(Mib::NoDSSInWindow), 0);
    net.reading = true;
    net.finish();
    net.assert_got_blob();
}

#[test]
fn memory_pressure_stops_windows_opening_until_it_lifts() {
    let cfg = Config {
        recv_window: 256 << 10,
        ..Config::default()
    };
    let mut net = Net::new(&[BACKEND], ServerApp::Echo, cfg);
    net.gw.set_memory_pressure(MemoryPressure::Soft);
    net.run(3_000);
    // Only what the handshake offered got through to the gateway.
    let st = net.stats();
    assert!(
        st.bytes_up > 0 && st.bytes_up <= (256 << 10) + (64 << 10),
        "{st:?}"
    );
    net.gw.set_memory_pressure(MemoryPressure::None);
    net.finish();
    assert!(net.got == net.data, "echoed bytes differ");
}

#[test]
fn a_port_made_backup_at_run_time_sends_mp_prio_on_its_subflows() {
    let mut net = Net::new(&[BACKEND], ServerApp::Stall, Config::default());
    while !net.joined || net.gw.mib().get(Mib::MPJoinAckRx) == 0 {
        net.step();
    }
    net.run(50);
    let gw_addr = sock(LISTEN).ip();
    let reload = |backup_addrs: Vec<IpAddr>| Config {
        backup_addrs,
        ..Config::default()
    };
    // The initial subflow and the join both reach the gateway's listening address.
    net.gw.reconfigure(&reload(vec![gw_addr]));
    net.run(50);
    assert_eq!(net.gw.mib().get(Mib::MPPrioTx), 2);
    assert_eq!(net.client.mib().get(Mib::MPPrioRx), 2);
    // Unchanged: nothing sent again. Back to regular: one more MP_PRIO each.
    net.gw.reconfigure(&reload(vec![gw_addr]));
    net.run(50);
    assert_eq!(net.gw.mib().get(Mib::MPPrioTx), 2);
    net.gw.reconfigure(&reload(Vec::new()));
    net.run(50);
    assert_eq!(net.gw.mib().get(Mib::MPPrioTx), 4);
    assert_eq!(net.client.mib().get(Mib::MPPrioRx), 4);
}

#[test]
fn severe_memory_pressure_still_takes_what_continues_each_stream() {
    // Only out-of-order data is refused: what continues a stream, inside the windows
    // already offered, still moves through, so nothing waits for buffers that only
    // its own progress would free.
    let mut net = Net::new(&[BACKEND], ServerApp::Echo, Config::default());
    while net.stats().bytes_down == 0 {
        net.step();
    }
    let before = net.stats();
    net.gw.set_memory_pressure(MemoryPressure::Hard);
    net.run(2_000);
    let during = net.stats();
    assert!(during.bytes_up > before.bytes_up, "{before:?} {during:?}");
    assert!(net.gw.tcp().stats().shed > 0);
    net.gw.set_memory_pressure(MemoryPressure::None);
    net.finish();
    assert!(net.got == net.data, "echoed bytes differ");
}

#[test]
fn snapshots_and_monitor_events_show_the_relayed_connection() {
    let mut net = Net::new(&[BACKEND], ServerApp::Echo, Config::default());
    net.gw.set_monitor(true);
    let mut conns = Vec::new();
    // Until the gateway has both subflows and has echoed some data back.
    for _ in 0..5_000 {
        net.step();
        conns.clear();
        let relay = &net.relay;
        assert!(!net.gw.snapshot(100, |m| relay.leg(m), &mut conns));
        let both = conns
            .iter()
            .any(|c| c.subflows.len() == 2 && c.bytes_acked > 0 && c.bytes_received > 0);
        if both {
            break;
        }
    }
    let mptcp = conns
        .iter()
        .find(|c| c.token != 0)
        .expect("MPTCP connection");
    let plain = conns.iter().find(|c| c.token == 0).expect("backend leg");
    assert_eq!(conns.len(), 2);
    assert!(mptcp.fully_established && mptcp.remote_key && !mptcp.fallback);
    assert!(mptcp.bytes_acked <= mptcp.bytes_sent && mptcp.snd_una <= mptcp.snd_nxt);
    assert_eq!(mptcp.subflows.len(), 2);
    let remotes: Vec<IpAddr> = mptcp.subflows.iter().map(|s| s.remote.ip()).collect();
    assert!(remotes.contains(&"192.0.2.2".parse().unwrap()));
    assert!(remotes.contains(&"198.51.100.2".parse().unwrap()));
    for sf in &mptcp.subflows {
        assert_eq!(sf.state, dataplane::tcp::State::Established);
        assert!(sf.bytes_acked <= sf.bytes_sent, "{sf:?}");
        assert!(sf.flags.contains('e') && sf.flags.contains('c'), "{sf:?}");
    }
    assert!(mptcp.subflows[0].flags.starts_with("Mm"));
    assert!(mptcp.subflows[1].flags.starts_with("Jj"));
    assert_eq!(mptcp.subflows[1].remote_id, 1, "the client's address id");
    assert!(plain.fallback && plain.subflows.len() == 1);
    assert_eq!(plain.remote, sock(BACKEND));
    let leg = |client, peer| Some(dataplane::introspect::RelayLeg { client, peer });
    assert_eq!(mptcp.relay, leg(true, Some(plain.id)));
    assert_eq!(plain.relay, leg(false, Some(mptcp.id)));
    let mut few = Vec::new();
    assert!(net.gw.snapshot(1, |_| None, &mut few), "truncated");
    assert_eq!(few.len(), 1);

    net.finish();
    let token = mptcp.token;
    let events: Vec<_> = net.gw.take_monitor_events().collect();
    assert!(events.iter().all(|e| e.token == token), "{events:?}");
    let names: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    let count = |n: &str| names.iter().filter(|&&x| x == n).count();
    assert_eq!(
        (count("CREATED"), count("ESTABLISHED"), count("CLOSED")),
        (1, 1, 1),
        "{names:?}"
    );
    assert_eq!(count("SF_ESTABLISHED"), 1, "{names:?}");
    assert_eq!(count("SF_CLOSED"), 2, "{names:?}");
    let at = |n: &str| names.iter().position(|&x| x == n).unwrap();
    assert!(at("CREATED") < at("ESTABLISHED") && at("ESTABLISHED") < at("SF_ESTABLISHED"));
    assert!(at("SF_ESTABLISHED") < at("CLOSED"));
    let join = events[at("SF_ESTABLISHED")];
    assert_eq!(join.remote, Some(sock("198.51.100.2:40001")));
    assert_eq!((join.local_id, join.remote_id), (Some(0), Some(1)));
    assert_eq!(events[at("CREATED")].remote, Some(sock("192.0.2.2:40000")));
    assert_eq!(net.gw.take_monitor_dropped(), 0);
}

#[test]
fn no_event_is_recorded_without_a_monitor() {
    let mut net = Net::new(&[BACKEND], ServerApp::Echo, Config::default());
    net.finish();
    assert!(!net.gw.monitoring());
    assert_eq!(net.gw.take_monitor_events().count(), 0);
}

#[test]
fn a_client_without_subflows_keeps_its_backend_until_close_timeout() {
    let cfg = Config {
        close_timeout: Duration::from_secs(2),
        ..Config::default()
    };
    let mut net = Net::new(&[BACKEND], ServerApp::Stall, cfg);
    net.run(1_000);
    assert!(net.joined);
    assert_eq!((net.stats().connected, net.stats().pairs), (1, 1));
    // Both of the client's addresses go away: its subflows are reset (no
    // MP_FASTCLOSE), the gateway's connection has none left.
    assert_eq!(net.client.remove_address(sock("192.0.2.2:0").ip()), 1);
    assert_eq!(net.client.remove_address(sock("198.51.100.2:0").ip()), 1);
    net.run(1_000);
    assert_eq!(net.gw.orphans(), 1);
    let st = net.stats();
    assert_eq!((st.pairs, st.resets), (1, 0), "the backend leg stays up");
    assert!(!net.server.is_empty());
    // Nobody joined within close_timeout: the pair is reset on both legs.
    net.run(1_500);
    assert_eq!(net.gw.orphans(), 0);
    let st = net.stats();
    assert_eq!((st.pairs, st.resets), (0, 1));
    assert!(net.gw.is_empty(), "the gateway freed both connections");
    assert!(net.server.is_empty(), "the backend connection was reset");
}

#[test]
fn connections_are_counted_by_state() {
    let cfg = Config {
        close_timeout: Duration::from_secs(2),
        ..Config::default()
    };
    let mut net = Net::new(&[BACKEND], ServerApp::Stall, cfg);
    // A client that sends nothing and does not close.
    net.data.clear();
    let connecting = net.client.count_states();
    assert_eq!((connecting.connecting, connecting.established), (1, 0));
    net.run(1_000);
    assert!(net.joined);
    // The client's MPTCP connection and the plain backend leg.
    let open = net.gw.count_states();
    assert_eq!(
        open,
        StateCounts {
            established: 1,
            fallback: 1,
            ..StateCounts::default()
        }
    );
    assert_eq!(net.client.count_states().established, 1);
    // Both of the client's addresses go away: the gateway's connection waits for a join.
    assert_eq!(net.client.remove_address(sock("192.0.2.2:0").ip()), 1);
    assert_eq!(net.client.remove_address(sock("198.51.100.2:0").ip()), 1);
    net.run(1_000);
    let orphaned = net.gw.count_states();
    assert_eq!((orphaned.orphan, orphaned.fallback), (1, 1));
    assert_eq!(orphaned.orphan as usize, net.gw.orphans());
    net.run(1_500);
    assert_eq!(net.gw.count_states(), StateCounts::default());

    // A client that closes: its DATA_FIN reaches the gateway, which closes the backend
    // leg; the server (stalled) never closes its side.
    let mut net = Net::new(&[BACKEND], ServerApp::Stall, Config::default());
    net.data.clear();
    net.run(1_000);
    assert_eq!(net.gw.count_states().established, 1);
    let conn = net.conn.unwrap();
    net.client.close(conn);
    net.run(1_000);
    let closing = net.gw.count_states();
    assert_eq!(
        (closing.closing, closing.established, closing.fallback),
        (2, 0, 0)
    );
}

#[test]
fn a_transparent_concentrator_answers_as_the_destination_and_relays_to_it() {
    // The client connects (MPTCP, and joins from its second address) straight to
    // the server's address; the gateway on the way terminates it and opens plain TCP
    // to that same address from its own.
    let mut net = Net::transparent(Vec::new(), false, ServerApp::Echo, Config::default());
    net.run(300);
    let accepted = net
        .gw
        .connections()
        .into_iter()
        .find(|&m| net.gw.accepted(m))
        .expect("the accepted leg");
    let info = net.gw.info(accepted).unwrap();
    assert_eq!(info.local, sock(BACKEND), "answered as the destination");
    assert_eq!(info.remote, sock("192.0.2.2:40000"));
    assert_eq!(net.gw.transparent(accepted), Some(0));
    net.finish();
    assert_eq!(net.got.len(), net.data.len());
    assert!(net.got == net.data, "echoed bytes differ");
    assert_eq!(
        net.server_peer.map(|a| a.ip()),
        Some("203.0.113.1".parse().unwrap())
    );
    let st = net.stats();
    assert_eq!((st.accepted, st.transparent, st.connected), (1, 1, 1));
    assert_eq!(st.bytes_up, net.data.len() as u64);
    assert!(net.joined, "the client joined");
    // The join to the same foreign destination was taken by its token.
    assert_eq!(net.gw.mib().get(Mib::MPJoinAckRx), 1);
    assert_eq!(net.dropped, 0);
    // Nothing foreign is announced (no `signal` address here: nothing at all).
    assert_eq!(net.gw.mib().get(Mib::AddAddrTx), 0);
    assert!(net.client_events.contains(Events::CLOSED));
}

#[test]
fn a_join_to_another_foreign_destination_is_refused() {
    let cfg = Config {
        subflows: 4,
        ..Config::default()
    };
    let mut net = Net::transparent(vec![(80, 80)], false, ServerApp::Stall, cfg);
    net.data.clear();
    net.run(300);
    assert!(net.joined);
    let m = net.conn.unwrap();
    // The token is right, the destination is not the connection's: where the
    // listener takes the destination port, refused (MP_TCPRST, as a listener would);
    // elsewhere left alone (dropped: no answer as that address).
    for (local, remote) in [
        ("198.51.100.2:40002", "203.0.113.7:80"),
        ("198.51.100.2:40003", "203.0.113.7:81"),
    ] {
        let path = JoinPath {
            local: sock(local),
            remote: sock(remote),
            local_id: 1,
            backup: false,
        };
        assert!(net.client.join(m, &path, net.now, &mut net.wire));
    }
    net.run(300);
    assert_eq!(net.gw.mib().get(Mib::MPJoinAckRx), 1, "only the first join");
    assert_eq!(net.gw.mib().get(Mib::MPJoinNoTokenFound), 1);
    assert!(net.dropped >= 1, "the join to port 81");
    assert_eq!(
        net.gw.tcp().stats().resets_sent,
        1,
        "the MP_TCPRST of port 80 only"
    );
}

#[test]
fn a_foreign_syn_no_transparent_listener_takes_is_dropped_and_counted() {
    // The listener takes destination port 443 only; the client goes to port 80.
    let mut net = Net::transparent(vec![(443, 443)], false, ServerApp::Echo, Config::default());
    net.run(3_000);
    assert!(
        net.dropped >= 2,
        "the SYN and its retransmissions: {}",
        net.dropped
    );
    assert!(net.gw.is_empty() && net.gw.tcp().is_empty());
    assert_eq!(
        net.gw.tcp().stats().resets_sent,
        0,
        "no RST as someone else"
    );
    assert_eq!(net.stats().accepted, 0);
    assert!(!net.client_events.contains(Events::CONNECTED));
    assert!(!net.client_events.contains(Events::RESET));
}

#[test]
fn a_transparent_edge_opens_mptcp_to_the_original_destination() {
    // Plain TCP from the LAN to the server's address; the gateway answers as the
    // server and opens MPTCP to it.
    let mut net = Net::transparent(vec![(80, 80)], true, ServerApp::Echo, Config::default());
    net.finish();
    assert_eq!(net.got.len(), net.data.len());
    assert!(net.got == net.data, "echoed bytes differ");
    let st = net.stats();
    assert_eq!((st.accepted, st.transparent, st.connected), (1, 1, 1));
    assert_eq!(
        net.client.mib().get(Mib::MPCapableSYNTX),
        0,
        "a plain client"
    );
    assert_eq!(
        net.server.mib().get(Mib::MPCapableSYNRX),
        1,
        "MPTCP to the server"
    );
    assert_eq!(net.server.mib().get(Mib::MPCapableACKRX), 1);
    assert_eq!(
        net.server_peer.map(|a| a.ip()),
        Some("203.0.113.1".parse().unwrap())
    );
    assert!(net.client_events.contains(Events::CLOSED));
    assert_eq!(net.dropped, 0);
}
