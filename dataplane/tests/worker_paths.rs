//! Per-path byte counters of a worker with two ports: an MPTCP client with a subflow
//! over each port echoes a pattern through the gateway's echo service. Payload sent
//! and received counts on the port it goes through; TCP retransmissions only on the
//! port that loses packets; reinjections only on the port that survives a path's death.
//!
//! And the flow-rule requests of two workers polling one port's two queues: a join
//! that reaches the worker not owning its connection is handed over, and its owner
//! asks once for a rule steering it to its own queue (then, with the rule in place,
//! nothing more is handed over) and for the rule's removal once the subflow is gone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use dataplane::diag::DiagMode;
use dataplane::flow_steer::{FlowRequest, FlowSteer};
use dataplane::host::{HostPort, IfAddr};
use dataplane::mptcp::crypto::KeySource;
use dataplane::mptcp::msk::MskId;
use dataplane::mptcp::stack::{Config as MpConfig, JoinPath, Stack};
use dataplane::port::heap::{HeapPool, HeapShared};
use dataplane::port::mem::{link, Faults, LinkConfig, MemPort, SimClock};
use dataplane::port::{Burst, PacketBuf, Port};
use dataplane::stats::{counters, Counter, CounterReader, PathBytes, PathCounter};
use dataplane::tcp::emit::{emit_headers, ChecksumMode, L2};
use dataplane::tcp::ingress::segment_from_frame;
use dataplane::tcp::secrets::Secrets;
use dataplane::tcp::table::TableConfig;
use dataplane::tcp::{Events, FourTuple, Instant, Payload, SegmentOut};
use dataplane::wire::MacAddr;
use dataplane::worker::{Peers, TcpSetup, Worker, WorkerPort};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

type S = HeapShared;

const GW_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 1]);
const CLIENT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 2]);
/// The gateway's and the client's address on each path.
const GW: [Ipv4Addr; 2] = [Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 1)];
const CLIENT: [Ipv4Addr; 2] = [Ipv4Addr::new(192, 0, 2, 2), Ipv4Addr::new(198, 51, 100, 2)];
const ECHO_PORT: u16 = 7;
/// Bytes the client echoes through the gateway.
const BYTES: usize = 2 << 20;

/// An ARP request from the client for the gateway's address on path `i` (the gateway
/// learns the client's MAC from it).
fn arp_request(i: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&CLIENT_MAC.0);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&CLIENT_MAC.0);
    f.extend_from_slice(&CLIENT[i].octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&GW[i].octets());
    f
}

/// The client: a port per path, its MPTCP stack, and an application echoing `data`.
struct Client {
    ports: Vec<MemPort>,
    stack: Stack<S>,
    out: Vec<(FourTuple, SegmentOut<S>)>,
    conn: Option<MskId>,
    data: Vec<u8>,
    sent: usize,
    got: Vec<u8>,
    /// Paths that lose everything, both ways.
    dead: [bool; 2],
    /// Probability that a frame on path 1 is lost, either way.
    loss: f64,
    rng: fastrand::Rng,
    /// Links some subflows (client side local) take instead of their address's:
    /// the gateway NIC's flow rules, as the test installs them.
    steered: HashMap<FourTuple, usize>,
}

impl Client {
    /// A client over `ports` (link `i` from `CLIENT[i]`) that echoes `bytes` bytes.
    fn new(ports: Vec<MemPort>, bytes: usize) -> Self {
        Client {
            ports,
            stack: Stack::new(
                TableConfig::default(),
                Secrets::new([1; 32]),
                MpConfig::default(),
                KeySource::from_seed([1; 32]),
                (0, 1),
                Instant::default(),
            ),
            out: Vec::new(),
            conn: None,
            data: (0..bytes).map(|i| (i * 7 + i / 1000) as u8).collect(),
            sent: 0,
            got: Vec::new(),
            dead: [false; 2],
            loss: 0.0,
            rng: fastrand::Rng::with_seed(5),
            steered: HashMap::new(),
        }
    }

    /// Sends an ARP request for the gateway's address on each link.
    fn greet(&mut self, pool: &HeapPool) {
        for (i, port) in self.ports.iter_mut().enumerate() {
            let mut burst = Burst::new();
            burst
                .push(pool.alloc_from(&arp_request(i)).unwrap())
                .ok()
                .unwrap();
            port.tx_burst(&mut burst);
        }
    }

    /// Opens the connection to the echo service from `CLIENT[0]`.
    fn connect(&mut self) -> MskId {
        let local = SocketAddr::from((CLIENT[0], 40_000));
        let remote = SocketAddr::from((GW[0], ECHO_PORT));
        let t0 = Instant::default();
        self.stack
            .connect(local, remote, true, t0, &mut self.out)
            .unwrap()
    }

    /// Joins `m` from `CLIENT[1]` to `GW[1]`.
    fn join(&mut self, m: MskId, now: Instant, pool: &HeapPool) {
        let path = JoinPath {
            local: SocketAddr::from((CLIENT[1], 40_001)),
            remote: SocketAddr::from((GW[1], ECHO_PORT)),
            local_id: 1,
            backup: false,
        };
        assert!(self.stack.join(m, &path, now, &mut self.out));
        self.transmit(pool);
    }

    /// True when a frame on path `i` is to be lost.
    fn lose(&mut self, i: usize) -> bool {
        self.dead[i] || (i == 1 && self.loss > 0.0 && self.rng.f64() < self.loss)
    }

    fn step(&mut self, now: Instant, pool: &HeapPool) {
        for i in 0..2 {
            let mut rx = Burst::new();
            while self.ports[i].rx_burst(&mut rx) > 0 {
                for buf in rx.drain() {
                    if self.lose(i) {
                        continue;
                    }
                    // ARP replies and the like are no segments.
                    if let Ok((tuple, seg)) = segment_from_frame(buf, true) {
                        self.stack.on_segment(tuple, seg, now, &mut self.out);
                    }
                }
            }
        }
        self.stack.on_timers(now, &mut self.out);
        while let Some(m) = self.stack.next_ready() {
            let ev = self.stack.take_events(m);
            assert!(!ev.contains(Events::RESET), "the connection was reset");
            if ev.contains(Events::CONNECTED) {
                self.conn = Some(m);
            }
            self.stack.flush(m, now, &mut self.out);
        }
        if let Some(m) = self.conn {
            while let Some(p) = self.stack.recv(m) {
                self.got.extend_from_slice(p.bytes());
            }
            while self.sent < self.data.len() && self.stack.send_space(m) > 0 {
                let n = (self.data.len() - self.sent)
                    .min(1400)
                    .min(self.stack.send_space(m));
                let buf = pool
                    .alloc_from(&self.data[self.sent..self.sent + n])
                    .unwrap();
                if self.stack.send(m, Payload::new(buf.into_shared())).is_err() {
                    break;
                }
                self.sent += n;
            }
            self.stack.flush(m, now, &mut self.out);
        }
        self.transmit(pool);
    }

    fn transmit(&mut self, pool: &HeapPool) {
        for (tuple, seg) in std::mem::take(&mut self.out) {
            let i = self.steered.get(&tuple).copied().unwrap_or_else(|| {
                CLIENT
                    .iter()
                    .position(|a| IpAddr::V4(*a) == tuple.local.ip())
                    .unwrap()
            });
            if self.lose(i) {
                continue;
            }
            let l2 = L2 {
                src: CLIENT_MAC,
                dst: GW_MAC,
                vlan_tci: None,
            };
            let mut frame = vec![0u8; 128];
            let hl = emit_headers(&mut frame, &l2, &tuple, &seg, ChecksumMode::Full).unwrap();
            frame.truncate(hl);
            if let Some(p) = &seg.payload {
                frame.extend_from_slice(p.bytes());
            }
            let mut burst = Burst::new();
            burst.push(pool.alloc_from(&frame).unwrap()).ok().unwrap();
            self.ports[i].tx_burst(&mut burst);
        }
    }
}

/// Runs the echo transfer with `faults` on each path (both ways); path 1 loses frames
/// with probability `loss` once it carries data, and dies (loses everything both
/// ways) once the client has read `kill_at` bytes back, if given. Returns the
/// gateway's path counters per port.
fn run(faults: [Faults; 2], loss: f64, kill_at: Option<usize>) -> [PathBytes; 2] {
    run_with(faults, loss, kill_at, true).0
}

/// As [`run`], the gateway's ports sending chained packets whole (`chains`) or as
/// a driver without multi-segment TX does ([`MemPort::single_segment`]); also returns
/// the gateway's counters.
fn run_with(
    faults: [Faults; 2],
    loss: f64,
    kill_at: Option<usize>,
    chains: bool,
) -> ([PathBytes; 2], CounterReader) {
    let pool = HeapPool::new(1 << 16);
    let clock = SimClock::new();
    let mut gw_ports = Vec::new();
    let mut client_ports = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        let (c, g) = link(
            LinkConfig {
                a_to_b: f.clone(),
                b_to_a: f.clone(),
                seed: 17 + i as u64,
                capacity: 8192,
            },
            &pool,
            &clock,
        );
        client_ports.push(c);
        let host = HostPort::new(
            GW_MAC,
            &[IfAddr {
                addr: GW[i].into(),
                prefix: 24,
            }],
            None,
            None,
        );
        let g = if chains { g } else { g.single_segment() };
        gw_ports.push(WorkerPort::new(g, host));
    }
    let (writer, reader): (_, CounterReader) = counters();
    let (_commands, rx) = crossbeam::channel::bounded(1);
    let peers = Peers {
        handoff: dataplane::handoff::handoffs(1).remove(0),
    };
    let mut gw = Worker::new(gw_ports, tcp_setup((0, 1)), peers, writer, rx, 0);

    let mut client = Client::new(client_ports, BYTES);
    client.greet(&pool);
    let m = client.connect();
    let mut joined = false;
    // Virtual time, 100 µs a step, at most 120 s.
    while clock.now() < 120_000_000_000 {
        let now = clock.now();
        gw.poll(now);
        client.step(Instant::from_nanos(now), &pool);
        // Joins once the first echo shows the gateway has the connection established
        // (a join overtaking the third ACK on the faster path would be refused).
        if !joined && client.conn == Some(m) && !client.got.is_empty() {
            client.join(m, Instant::from_nanos(now), &pool);
            joined = true;
        }
        if reader.path_bytes()[1][PathCounter::Sent as usize] > 0 {
            client.loss = loss;
        }
        if kill_at.is_some_and(|k| client.got.len() >= k) {
            client.dead[1] = true;
        }
        if client.got.len() == BYTES {
            break;
        }
        clock.advance(100_000);
    }
    assert_eq!(client.got.len(), BYTES, "echo incomplete");
    assert!(client.got == client.data, "echo not exact");
    let p = reader.path_bytes();
    ([p[0], p[1]], reader)
}

/// The gateway's TCP endpoint as worker `worker` (index, count): the echo service on
/// `GW[0]`.
fn tcp_setup(worker: (u16, u16)) -> TcpSetup {
    TcpSetup {
        table: TableConfig::default(),
        secrets: Secrets::new([7; 32]),
        mptcp: MpConfig::default(),
        keys: KeySource::from_seed([7 + worker.0 as u8; 32]),
        worker,
        signal: Vec::new(),
        diag: vec![(SocketAddr::from((GW[0], ECHO_PORT)), DiagMode::Echo)],
        relay: dataplane::relay::RelayConfig {
            worker,
            ..Default::default()
        },
        listeners: Vec::new(),
        path_manager: dataplane::pm::PathManager::new(
            dataplane::pm::PathManagerKind::Default,
            Vec::new(),
        ),
    }
}

fn get(p: &PathBytes, c: PathCounter) -> u64 {
    p[c as usize]
}

/// Sent minus retransmitted minus reinjected, over both ports, is what the gateway
/// sent for the first time: every echoed byte exactly once.
fn assert_first_transmissions_exact(p: &[PathBytes; 2]) {
    let total = |c| get(&p[0], c) + get(&p[1], c);
    assert_eq!(
        total(PathCounter::Sent)
            - total(PathCounter::Retransmitted)
            - total(PathCounter::Reinjected),
        BYTES as u64,
        "{p:?}"
    );
}

/// A path with a one-way delay of `ms` and no loss.
fn lossless(ms: u64) -> Faults {
    Faults {
        delay_ns: ms * 1_000_000,
        ..Faults::default()
    }
}

#[test]
fn bytes_count_on_their_port_and_retransmissions_only_where_packets_are_lost() {
    // The lossy path is the faster one: the scheduler prefers it while its window
    // has room, and moves the rest over the other.
    let p = run([lossless(4), lossless(1)], 0.02, None);
    eprintln!("path counters: {p:?}");
    let total = |c| get(&p[0], c) + get(&p[1], c);
    // Both subflows carried the echo both ways.
    for port in &p {
        assert!(get(port, PathCounter::Sent) > BYTES as u64 / 10, "{p:?}");
        assert!(
            get(port, PathCounter::Received) > BYTES as u64 / 10,
            "{p:?}"
        );
    }
    // Every byte was received at least once (each subflow counts what it took in).
    assert!(total(PathCounter::Received) >= BYTES as u64);
    assert_first_transmissions_exact(&p);
    assert!(get(&p[1], PathCounter::Retransmitted) > 0, "{p:?}");
    assert_eq!(get(&p[0], PathCounter::Retransmitted), 0, "{p:?}");
}

#[test]
fn a_dying_path_s_data_is_reinjected_on_the_other_port() {
    let p = run([lossless(2), lossless(2)], 0.0, Some(BYTES / 3));
    eprintln!("path counters: {p:?}");
    assert!(get(&p[0], PathCounter::Reinjected) > 0, "{p:?}");
    assert_eq!(get(&p[1], PathCounter::Reinjected), 0, "{p:?}");
    // What the dead path still retransmitted never arrived.
    assert!(get(&p[1], PathCounter::Retransmitted) > 0, "{p:?}");
    assert_first_transmissions_exact(&p);
}

/// The bytes worker `w` received on the subflow of `tuple` (gateway side local).
fn subflow_received(w: &Worker<MemPort>, tuple: &FourTuple) -> Option<u64> {
    w.snapshot()
        .conns
        .iter()
        .flat_map(|c| &c.subflows)
        .find(|s| s.local == tuple.local && s.remote == tuple.remote)
        .map(|s| s.bytes_received)
}

#[test]
fn a_handed_over_join_asks_once_for_a_flow_rule_and_releases_it_when_closed() {
    const ECHOED: usize = 4 << 20;
    let pool = HeapPool::new(1 << 16);
    let clock = SimClock::new();
    // One gateway port with both addresses, RSS over two queues: worker `i` polls
    // queue `i`, which is the client's link `i` (the initial subflow from CLIENT[0]
    // arrives on queue 0, the join from CLIENT[1] on queue 1) until a flow rule
    // steers a subflow elsewhere.
    let addrs: Vec<IfAddr> = GW
        .iter()
        .map(|&a| IfAddr {
            addr: a.into(),
            prefix: 24,
        })
        .collect();
    let host = HostPort::new(GW_MAC, &addrs, None, None);
    let rss = dataplane::rss::Rss::spread(&dataplane::rss::DEFAULT_KEY, 128, 2);
    let (requests, asked) = crossbeam::channel::bounded(16);
    let mut workers = Vec::new();
    let mut readers = Vec::new();
    let mut client_ports = Vec::new();
    for (i, handoff) in dataplane::handoff::handoffs(2).into_iter().enumerate() {
        let (c, g) = link(
            LinkConfig {
                a_to_b: lossless(1),
                b_to_a: lossless(1),
                seed: 31 + i as u64,
                capacity: 8192,
            },
            &pool,
            &clock,
        );
        client_ports.push(c);
        let (writer, reader) = counters();
        let (_commands, rx) = crossbeam::channel::bounded(1);
        let port = WorkerPort::new(g, host.clone()).with_rss(rss.clone());
        let me = (i as u16, 2);
        let flows = FlowSteer::new(me.0, me.1, vec![true], 16, requests.clone());
        assert!(flows.is_some());
        let w = Worker::new(vec![port], tcp_setup(me), Peers { handoff }, writer, rx, 0)
            .with_flow_steering(flows);
        workers.push(w);
        readers.push(reader);
    }
    let mut client = Client::new(client_ports, ECHOED);
    client.greet(&pool);
    let m = client.connect();
    let join = FourTuple {
        local: SocketAddr::from((GW[1], ECHO_PORT)),
        remote: SocketAddr::from((CLIENT[1], 40_001)),
    };
    let mut got: Vec<FlowRequest> = Vec::new();
    let mut joined = false;
    // (worker 1's hand-offs, bytes worker 0 had received on the join) when the rule
    // was installed, and 10 ms later.
    let mut installed: Option<(u64, u64)> = None;
    let mut settled: Option<u64> = None;
    let mut installed_at = 0;
    let step = |workers: &mut Vec<Worker<MemPort>>, client: &mut Client, got: &mut Vec<_>| {
        let now = clock.now();
        for w in workers.iter_mut() {
            w.poll(now);
        }
        client.step(Instant::from_nanos(now), &pool);
        got.extend(asked.try_iter());
    };
    while clock.now() < 60_000_000_000 && client.got.len() < ECHOED {
        step(&mut workers, &mut client, &mut got);
        let now = clock.now();
        if !joined && client.conn == Some(m) && !client.got.is_empty() {
            client.join(m, Instant::from_nanos(now), &pool);
            joined = true;
        }
        let handed = readers[1].get(Counter::HandoffOut);
        // The control thread and the NIC: the rule takes effect once the join has
        // been handed over a while longer (its owner must not ask again meanwhile).
        if installed.is_none() && !got.is_empty() && handed >= 10 {
            let Some(&FlowRequest::Steer { port, tuple, queue }) = got.first() else {
                panic!("not a steering request: {got:?}");
            };
            assert_eq!((port, tuple, queue), (0, join, 0));
            let client_side = FourTuple {
                local: tuple.remote,
                remote: tuple.local,
            };
            client.steered.insert(client_side, usize::from(queue));
            let received = subflow_received(&workers[0], &join).unwrap_or(0);
            installed = Some((handed, received));
            installed_at = now;
        }
        if installed.is_some() && settled.is_none() && now >= installed_at + 10_000_000 {
            settled = Some(handed);
        }
        clock.advance(100_000);
    }
    assert_eq!(client.got.len(), ECHOED, "echo incomplete");
    assert!(client.got == client.data, "echo not exact");
    let (at_install, received_then) = installed.expect("the join was handed over and steered");
    let settled = settled.expect("the transfer outlived the rule by 10 ms");
    let handed_end = readers[1].get(Counter::HandoffOut);
    eprintln!(
        "hand-offs: {at_install} at the rule, {settled} 10 ms later, {handed_end} at the end"
    );
    assert_eq!(
        handed_end, settled,
        "nothing handed over once the rule steers the join"
    );
    assert!(
        subflow_received(&workers[0], &join).unwrap_or(0) > received_then,
        "the join carried data on its owner's queue"
    );
    // Exactly one request, from the owner, for the join only (the initial subflow
    // arrived on its owner's queue).
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(readers[0].get(Counter::FlowSteerRequests), 1);
    assert_eq!(readers[1].get(Counter::FlowSteerRequests), 0);
    assert_eq!(readers[0].get(Counter::FlowRequestsDropped), 0);

    // The client closes; once the gateway's table has let the join go (past any
    // TIME-WAIT), its owner asks for the rule's removal, once.
    client.stack.close(m);
    let mut released = false;
    while clock.now() < 300_000_000_000 && !released {
        step(&mut workers, &mut client, &mut got);
        for w in workers.iter_mut() {
            w.release_flows();
        }
        got.extend(asked.try_iter());
        released = got.len() > 1;
        clock.advance(10_000_000);
    }
    assert!(workers[0].stack().tcp().lookup(&join).is_none());
    assert_eq!(
        got[1..],
        [FlowRequest::Release {
            port: 0,
            tuple: join,
            queue: 0
        }]
    );
    for w in workers.iter_mut() {
        w.release_flows();
    }
    assert!(asked.try_recv().is_err(), "released once");
    assert_eq!(readers[0].get(Counter::FlowReleaseRequests), 1);
    assert_eq!(readers[1].get(Counter::FlowReleaseRequests), 0);
}

#[test]
fn ports_without_multi_segment_tx_get_the_payload_copied_and_the_echo_is_exact() {
    // Chained segments handed to such a port would leave with their payload lost (the
    // client drops them for their checksum) and the echo would never complete.
    let (p, counters) = run_with([lossless(2), lossless(1)], 0.0, None, false);
    assert_first_transmissions_exact(&p);
    let segments = counters.get(Counter::TcpSegmentsOut);
    let linearized = counters.get(Counter::TxLinearized);
    assert!(
        linearized >= (BYTES / 1448) as u64,
        "{linearized} of {segments}"
    );
    assert!(linearized < segments, "pure ACKs carry no payload to copy");
    assert_eq!(counters.get(Counter::TxOversize), 0);
}
