#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Deterministic multi-path simulation: two MPTCP stacks over N in-memory paths with
//! seeded faults. The client opens an MP_CAPABLE connection on path 0 and joins on
//! every other path; both sides send a pattern and close. Checks byte-exact delivery
//! both ways, that every path carried data, a clean close, and that nothing leaks.

use dataplane::mptcp::crypto::KeySource;
use dataplane::mptcp::mib::Mib;
use dataplane::mptcp::msk::MskId;
use dataplane::mptcp::stack::{Config as MpConfig, JoinPath, SchedulerKind, Stack};
use dataplane::pm::{Endpoint, Opened, PathAgent, PathManager, PathManagerKind};
use dataplane::port::heap::{HeapPool, HeapShared};
use dataplane::port::mem::{link, Faults, LinkConfig, MemPort, SimClock};
use dataplane::port::{Burst, PacketBuf, Port};
use dataplane::tcp::emit::{emit_headers, ChecksumMode, L2};
use dataplane::tcp::ingress::segment_from_frame;
use dataplane::tcp::{
    Config, Events, FourTuple, Instant, Payload, Secrets, SegmentOut, TableConfig,
};
use dataplane::wire::tcp::{OptionsBuf, TcpFlags, TcpOption, TcpOptions};
use dataplane::wire::MacAddr;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

type S = HeapShared;

const SERVER_PORT: u16 = 80;

/// One end: a port per path, its stack, and an application that sends `data` on its
/// one connection and collects what arrives.
struct Host {
    ports: Vec<MemPort>,
    addrs: Vec<IpAddr>,
    l2: Vec<L2>,
    stack: Stack<S>,
    conn: Option<MskId>,
    data: Vec<u8>,
    sent: usize,
    received: Vec<u8>,
    closed: bool,
    events: Events,
    bad_frames: u64,
    out: Vec<(FourTuple, SegmentOut<S>)>,
    /// Bytes of payload sent per path.
    path_bytes: Vec<u64>,
    /// Paths that lose everything from now on.
    dead: Vec<bool>,
    /// A middlebox on the way out drops SYNs that carry MPTCP options.
    drop_mptcp_syns: bool,
    /// A middlebox on the way out strips the MPTCP options of every segment with data.
    strip_data_options: bool,
    /// A middlebox on the way out inverts payload bytes of this data segment (counted
    /// from 1), fixing up the TCP checksum.
    corrupt_data_segment: Option<u64>,
    /// Data segments sent so far.
    data_segments: u64,
    /// Most bytes the application reads per step (a slow reader); unlimited if None.
    read_per_step: Option<usize>,
    /// When the connection was first reported reset.
    reset_at: Option<Instant>,
    /// The path manager adding this end's subflows (instead of the test's joins).
    agent: Option<PathAgent>,
    /// What the path manager opened.
    opened: Opened,
    /// The next local port for a subflow.
    next_port: u16,
    /// Segments leave on the path of their remote address (a server routing by
    /// destination), not of their local one (a client's subflow bound to its
    /// interface).
    route_by_remote: bool,
}

impl Host {
    fn new(
        ports: Vec<MemPort>,
        addrs: Vec<IpAddr>,
        me: u8,
        cfg: MpConfig,
        data: Vec<u8>,
        seed: u64,
    ) -> Self {
        let n = ports.len();
        let l2 = (0..n)
            .map(|_| L2 {
                src: MacAddr([2, 0, 0, 0, 0, me]),
                dst: MacAddr([2, 0, 0, 0, 0, 3 - me]),
                vlan_tci: None,
            })
            .collect();
        let tcp = TableConfig {
            conn: Config {
                time_wait: Duration::from_secs(1),
                ..Config::default()
            },
            ..TableConfig::default()
        };
        let mut seed_bytes = [0u8; 32];
        seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
        seed_bytes[8] = me;
        let stack = Stack::new(
            tcp,
            Secrets::new([me; 32]),
            cfg,
            KeySource::from_seed(seed_bytes),
            (0, 1),
            Instant::default(),
        );
        Host {
            ports,
            addrs,
            l2,
            stack,
            conn: None,
            data,
            sent: 0,
            received: Vec::new(),
            closed: false,
            events: Events::NONE,
            bad_frames: 0,
            out: Vec::new(),
            path_bytes: vec![0; n],
            dead: vec![false; n],
            drop_mptcp_syns: false,
            strip_data_options: false,
            corrupt_data_segment: None,
            data_segments: 0,
            read_per_step: None,
            reset_at: None,
            agent: None,
            opened: Opened::default(),
            next_port: 41_000,
            route_by_remote: false,
        }
    }

    /// The path manager's work at `now`: its plans for the connection.
    fn manage_paths(&mut self, now: Instant) {
        let Some(agent) = &mut self.agent else { return };
        let next = &mut self.next_port;
        let n = agent.run(
            &mut self.stack,
            same_path,
            |_, _| port(next),
            now,
            &mut self.out,
        );
        add(&mut self.opened, n);
    }

    /// The link of path `i` went down (`up` false) or came back.
    fn link(&mut self, i: usize, up: bool, now: Instant) {
        let Some(agent) = &mut self.agent else { return };
        let addr = self.addrs[i];
        if up {
            let next = &mut self.next_port;
            let n = agent.link_up(
                &mut self.stack,
                &[addr],
                same_path,
                |_, _| port(next),
                now,
                &mut self.out,
            );
            add(&mut self.opened, n);
        } else {
            agent.manager_mut().set_down(addr, true);
            self.stack.withdraw_address(addr, |_| {});
        }
    }

    fn step(&mut self, now: Instant, pool: &HeapPool) {
        for i in 0..self.ports.len() {
            let mut rx = Burst::new();
            while self.ports[i].rx_burst(&mut rx) > 0 {
                for buf in rx.drain() {
                    if self.dead[i] {
                        continue;
                    }
                    let Ok((tuple, seg)) = segment_from_frame(buf, true) else {
                        self.bad_frames += 1;
                        continue;
                    };
                    self.stack.on_segment(tuple, seg, now, &mut self.out);
                }
            }
        }
        self.stack.on_timers(now, &mut self.out);
        while let Some(m) = self.stack.next_ready() {
            let ev = self.stack.take_events(m);
            self.events |= ev;
            if ev.contains(Events::RESET) && self.reset_at.is_none() {
                self.reset_at = Some(now);
            }
            if self.conn.is_none() && ev.contains(Events::CONNECTED) {
                self.conn = Some(m);
                if let Some(agent) = &mut self.agent {
                    agent.opened(m, now);
                }
            }
            self.stack.flush(m, now, &mut self.out);
        }
        if let Some(m) = self.conn {
            let mut budget = self.read_per_step.unwrap_or(usize::MAX);
            while budget > 0 {
                let Some(p) = self.stack.recv(m) else { break };
                budget = budget.saturating_sub(p.len());
                self.received.extend_from_slice(p.bytes());
            }
            while self.sent < self.data.len() && self.stack.send_space(m) > 0 {
                let n = (self.data.len() - self.sent)
                    .min(1400)
                    .min(self.stack.send_space(m));
                let Some(buf) = pool.alloc_from(&self.data[self.sent..self.sent + n]) else {
                    break;
                };
                if self.stack.send(m, Payload::new(buf.into_shared())).is_err() {
                    break;
                }
                self.sent += n;
            }
            if self.sent == self.data.len() && !self.closed && self.stack.info(m).is_some() {
                self.stack.close(m);
                self.closed = true;
            }
            self.stack.flush(m, now, &mut self.out);
        }
        self.manage_paths(now);
        self.transmit(pool);
    }

    fn transmit(&mut self, pool: &HeapPool) {
        let mut tx: Vec<Burst<_>> = (0..self.ports.len()).map(|_| Burst::new()).collect();
        for (tuple, mut seg) in self.out.drain(..) {
            if seg.data_len() > 0 {
                self.data_segments += 1;
                if self.strip_data_options {
                    seg.options = without_mptcp(&seg.options);
                }
                if self.corrupt_data_segment == Some(self.data_segments) {
                    let mut bytes = seg.payload.as_ref().unwrap().bytes().to_vec();
                    let mid = bytes.len() / 2;
                    let end = (mid + 4).min(bytes.len());
                    for b in &mut bytes[mid..end] {
                        *b = !*b;
                    }
                    let buf = pool.alloc_from(&bytes).expect("pool large enough");
                    seg.payload = Some(Payload::new(buf.into_shared()));
                }
            }
            let i = if self.route_by_remote {
                path_of(tuple.remote.ip())
            } else {
                self.addrs
                    .iter()
                    .position(|a| *a == tuple.local.ip())
                    .expect("segment from an own address")
            };
            let mut hdr = [0u8; 128];
            let hl = emit_headers(&mut hdr, &self.l2[i], &tuple, &seg, ChecksumMode::Full).unwrap();
            let mut frame = hdr[..hl].to_vec();
            if let Some(p) = &seg.payload {
                frame.extend_from_slice(p.bytes());
                self.path_bytes[i] += p.len() as u64;
            }
            if self.dead[i] || (self.drop_mptcp_syns && is_mptcp_syn(&seg)) {
                continue;
            }
            let buf = pool.alloc_from(&frame).expect("pool large enough");
            if tx[i].push(buf).is_err() {
                self.ports[i].tx_burst(&mut tx[i]);
            }
        }
        for (i, t) in tx.iter_mut().enumerate() {
            self.ports[i].tx_burst(t);
        }
    }

    fn done(&self) -> bool {
        self.stack.is_empty() && self.stack.tcp().is_empty()
    }
}

/// `opts` without its MPTCP options (timestamps and SACK blocks kept).
fn without_mptcp(opts: &OptionsBuf) -> OptionsBuf {
    let mut out = OptionsBuf::new();
    for o in TcpOptions::new(opts.as_bytes()) {
        match o.unwrap() {
            TcpOption::Timestamps { tsval, tsecr } => {
                out.push_timestamps(tsval, tsecr, false).unwrap();
            }
            TcpOption::Sack(blocks) => {
                let blocks: Vec<_> = blocks.iter().collect();
                out.push_sack(&blocks).unwrap();
            }
            _ => {}
        }
    }
    out
}

fn is_mptcp_syn(seg: &SegmentOut<S>) -> bool {
    seg.flags.contains(TcpFlags::SYN)
        && TcpOptions::new(seg.options.as_bytes()).any(|o| matches!(o, Ok(TcpOption::Mptcp(_))))
}

/// The client's address on the path a server address is on (what the routes pick).
fn same_path(dst: IpAddr) -> Option<IpAddr> {
    match dst {
        IpAddr::V4(a) => Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, a.octets()[3]))),
        IpAddr::V6(_) => None,
    }
}

/// The path an address of either end is on.
fn path_of(ip: IpAddr) -> usize {
    match ip {
        IpAddr::V4(a) => usize::from(a.octets()[3] - 10),
        IpAddr::V6(_) => 0,
    }
}

/// Hands out local ports in turn.
fn port(next: &mut u16) -> u16 {
    *next += 1;
    *next
}

fn add(total: &mut Opened, n: Opened) {
    total.joins += n.joins;
    total.rejoins += n.rejoins;
    total.failed += n.failed;
}

/// A client path manager of `kind` with an endpoint on each of `paths` paths.
fn client_pm(kind: PathManagerKind, paths: usize) -> PathManager {
    let endpoints = (0..paths)
        .map(|i| Endpoint {
            addr: client_addr(i),
            id: i as u8 + 1,
            backup: false,
        })
        .collect();
    PathManager::new(kind, endpoints)
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

fn client_addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10 + i as u8))
}

fn server_addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10 + i as u8))
}

/// A scenario: paths with their faults, bytes each way, settings.
struct Scenario {
    seed: u64,
    paths: Vec<Faults>,
    bytes_ab: usize,
    bytes_ba: usize,
    client: MpConfig,
    server: MpConfig,
    /// Path that dies (loses everything) at this virtual time.
    kill: Option<(usize, Duration)>,
    /// The server sees its link on the killed path go down this long after it died
    /// (it withdraws that path's address), and back up (the path revives, the address
    /// is announced again) at the second time.
    server_link: Option<(Duration, Duration)>,
    /// SYNs with MPTCP options from the client are black-holed.
    blackhole_mptcp_syns: bool,
    /// The server announces its address on path 1 (ADD_ADDR).
    server_signal: bool,
    /// A middlebox strips the MPTCP options of every data segment, both ways.
    strip_data_options: bool,
    /// The client's data segment with this number (from 1) has payload bytes inverted
    /// on the way (TCP checksum fixed up, as `tc pedit` does).
    corrupt_client_segment: Option<u64>,
    /// The server's application reads at most this many bytes per step.
    server_read_per_step: Option<usize>,
    /// The client withdraws its address on path 0 at this time (its subflow there is
    /// reset; the RST reaches the server).
    withdraw: Option<Duration>,
    /// The client joins on the other paths at this time rather than at once.
    join_at: Option<Duration>,
    /// The connection is expected to be reset, not to complete.
    expect_reset: bool,
    /// The client's subflows are added by this path manager, not by the test.
    client_pm: Option<PathManager>,
    /// The client's link on path 0 goes down (the path loses everything, its address
    /// is withdrawn) at the first time and comes back at the second.
    client_link: Option<(Duration, Duration)>,
}

struct Outcome {
    client: Host,
    server: Host,
}

fn run(sc: Scenario) -> Outcome {
    let pool = HeapPool::new(65_536);
    let clock = SimClock::new();
    let n = sc.paths.len();
    let mut cports = Vec::new();
    let mut sports = Vec::new();
    for (i, f) in sc.paths.iter().enumerate() {
        let (a, b) = link(
            LinkConfig {
                a_to_b: f.clone(),
                b_to_a: f.clone(),
                seed: sc.seed.wrapping_mul(31).wrapping_add(i as u64),
                capacity: 8192,
            },
            &pool,
            &clock,
        );
        cports.push(a);
        sports.push(b);
    }
    let mut c = Host::new(
        cports,
        (0..n).map(client_addr).collect(),
        1,
        sc.client,
        pattern(sc.seed, sc.bytes_ab),
        sc.seed,
    );
    let mut s = Host::new(
        sports,
        (0..n).map(server_addr).collect(),
        2,
        sc.server,
        pattern(!sc.seed, sc.bytes_ba),
        sc.seed,
    );
    c.drop_mptcp_syns = sc.blackhole_mptcp_syns;
    c.strip_data_options = sc.strip_data_options;
    s.strip_data_options = sc.strip_data_options;
    c.corrupt_data_segment = sc.corrupt_client_segment;
    s.route_by_remote = true;
    let managed = sc.client_pm.is_some();
    c.agent = sc.client_pm.map(PathAgent::new);
    s.read_per_step = sc.server_read_per_step;
    if sc.server_signal {
        s.stack.set_signal(&[server_addr(1)]);
    }
    for i in 0..n {
        s.stack.listen(SocketAddr::new(server_addr(i), SERVER_PORT));
        s.stack.set_address_id(server_addr(i), i as u8);
    }
    let m = c
        .stack
        .connect(
            SocketAddr::new(client_addr(0), 40_000),
            SocketAddr::new(server_addr(0), SERVER_PORT),
            true,
            Instant::default(),
            &mut c.out,
        )
        .expect("connect");
    let mut joined = false;
    let mut withdrawn = false;
    let mut steps = 0u64;
    let mut link = 0;
    let reached = |now: Instant, at: Option<Duration>| {
        at.is_none_or(|t| now.as_nanos() >= t.as_nanos() as u64)
    };
    loop {
        let now = Instant::from_nanos(clock.now());
        let past = |d: Duration| now.as_nanos() >= d.as_nanos() as u64;
        if sc.withdraw.is_some() && !withdrawn && reached(now, sc.withdraw) {
            assert_eq!(c.stack.remove_address(client_addr(0)), 1);
            withdrawn = true;
        }
        if let Some((path, at)) = sc.kill {
            let (down, up) = sc.server_link.unwrap_or((Duration::MAX, Duration::MAX));
            if past(at) && !past(at.saturating_add(up)) {
                c.dead[path] = true;
                s.dead[path] = true;
            }
            if link == 0 && past(at.saturating_add(down)) {
                assert!(s.stack.remove_address(server_addr(path)) > 0);
                link = 1;
            }
            if link == 1 && past(at.saturating_add(up)) {
                c.dead[path] = false;
                s.dead[path] = false;
                assert_eq!(s.stack.announce(server_addr(path)), 1);
                link = 2;
            }
        }
        if let Some((down, up)) = sc.client_link {
            if link == 0 && past(down) {
                c.dead[0] = true;
                s.dead[0] = true;
                c.link(0, false, now);
                link = 1;
            }
            if link == 1 && past(up) {
                c.dead[0] = false;
                s.dead[0] = false;
                c.link(0, true, now);
                link = 2;
            }
        }
        c.step(now, &pool);
        if !managed && !joined && c.conn == Some(m) && reached(now, sc.join_at) {
            for i in 1..n {
                let path = JoinPath {
                    local: SocketAddr::new(client_addr(i), 40_000 + i as u16),
                    remote: SocketAddr::new(server_addr(i), SERVER_PORT),
                    local_id: i as u8,
                    backup: false,
                };
                let ok = c.stack.join(m, &path, now, &mut c.out);
                assert!(
                    ok || c.stack.info(m).is_some_and(|k| k.fallback),
                    "join {i}"
                );
            }
            joined = true;
            c.transmit(&pool);
        }
        s.step(now, &pool);
        if c.done() && s.done() && c.ports.iter().chain(&s.ports).all(|p| p.in_flight() == 0) {
            break;
        }
        let next = c
            .ports
            .iter()
            .chain(&s.ports)
            .filter_map(MemPort::next_arrival)
            .min()
            .unwrap_or(u64::MAX)
            .min(clock.now() + 1_000_000);
        clock.set(next.max(clock.now() + 1_000));
        steps += 1;
        assert!(steps < 3_000_000, "seed {}: no progress", sc.seed);
        assert!(
            clock.now() < 600_000_000_000,
            "seed {}: stuck: client {:?} server {:?}, got {}/{} and {}/{}",
            sc.seed,
            c.conn.and_then(|m| c.stack.info(m)),
            s.conn.and_then(|m| s.stack.info(m)),
            s.received.len(),
            sc.bytes_ab,
            c.received.len(),
            sc.bytes_ba,
        );
    }
    if std::env::var("SIM_DEBUG").is_ok() {
        eprintln!("client events {:?} server events {:?}", c.events, s.events);
        for (h, name) in [(&c, "client"), (&s, "server")] {
            let nz: Vec<_> = h
                .stack
                .mib()
                .iter()
                .filter(|(_, v)| *v > 0)
                .map(|(m, v)| (m.name(), v))
                .collect();
            eprintln!(
                "{name}: {nz:?} recv {} sent {} tcp {:?}",
                h.received.len(),
                h.sent,
                h.stack.tcp().stats()
            );
        }
    }
    if sc.expect_reset {
        return Outcome {
            client: c,
            server: s,
        };
    }
    assert_eq!(
        s.received.len(),
        c.data.len(),
        "seed {}: c→s length",
        sc.seed
    );
    assert!(s.received == c.data, "seed {}: c→s bytes differ", sc.seed);
    assert_eq!(
        c.received.len(),
        s.data.len(),
        "seed {}: s→c length",
        sc.seed
    );
    assert!(c.received == s.data, "seed {}: s→c bytes differ", sc.seed);
    assert!(
        c.events.contains(Events::CLOSED),
        "seed {}: client {:?}",
        sc.seed,
        c.events
    );
    assert!(
        s.events.contains(Events::CLOSED),
        "seed {}: server {:?}",
        sc.seed,
        s.events
    );
    assert_eq!(c.bad_frames + s.bad_frames, 0);
    Outcome {
        client: c,
        server: s,
    }
}

fn clean(delay_ms: u64, rate_mbps: u64) -> Faults {
    Faults {
        rate_bps: Some(rate_mbps * 1_000_000),
        queue_bytes: 256 * 1024,
        delay_ns: delay_ms * 1_000_000,
        ..Faults::default()
    }
}

fn lossy(delay_ms: u64, rate_mbps: u64, drop: f64) -> Faults {
    Faults {
        drop,
        duplicate: 0.005,
        reorder: 0.01,
        reorder_delay_ns: 2_000_000,
        ..clean(delay_ms, rate_mbps)
    }
}

fn scenario(seed: u64, paths: Vec<Faults>) -> Scenario {
    Scenario {
        seed,
        paths,
        bytes_ab: 2 << 20,
        bytes_ba: 1 << 20,
        client: MpConfig {
            subflows: 8,
            ..MpConfig::default()
        },
        server: MpConfig {
            subflows: 8,
            ..MpConfig::default()
        },
        kill: None,
        server_link: None,
        blackhole_mptcp_syns: false,
        server_signal: false,
        strip_data_options: false,
        corrupt_client_segment: None,
        server_read_per_step: None,
        withdraw: None,
        join_at: None,
        expect_reset: false,
        client_pm: None,
        client_link: None,
    }
}

#[test]
fn one_path_mptcp_is_exact_and_uses_the_handshake_counters() {
    let o = run(scenario(1, vec![clean(5, 100)]));
    let (c, s) = (o.client.stack.mib(), o.server.stack.mib());
    assert_eq!(c.get(Mib::MPCapableSYNTX), 1);
    assert_eq!(c.get(Mib::MPCapableSYNACKRX), 1);
    assert_eq!(s.get(Mib::MPCapableSYNRX), 1);
    assert_eq!(s.get(Mib::MPCapableACKRX), 1);
    assert_eq!(s.get(Mib::MPCapableFallbackACK), 0);
}

#[test]
fn two_unequal_paths_both_carry_data() {
    let mut sc = scenario(2, vec![clean(5, 50), clean(15, 30)]);
    sc.bytes_ab = 8 << 20;
    sc.bytes_ba = 4 << 20;
    let o = run(sc);
    let (c, s) = (o.client.stack.mib(), o.server.stack.mib());
    assert_eq!(c.get(Mib::MPJoinSynTx), 1);
    assert_eq!(s.get(Mib::MPJoinSynRx), 1);
    assert_eq!(c.get(Mib::MPJoinSynAckRx), 1);
    assert_eq!(s.get(Mib::MPJoinAckRx), 1);
    // Each path carries at least 10 % of the bytes each way.
    for (i, b) in o.client.path_bytes.iter().enumerate() {
        assert!(
            *b > (8 << 20) / 10,
            "path {i} carried only {b} bytes client→server"
        );
    }
    for (i, b) in o.server.path_bytes.iter().enumerate() {
        assert!(
            *b > (4 << 20) / 10,
            "path {i} carried only {b} bytes server→client"
        );
    }
}

#[test]
fn one_to_eight_subflows_with_loss_and_reordering_are_exact() {
    for n in 1..=8usize {
        for seed in 0..3u64 {
            let paths = (0..n)
                .map(|i| lossy(2 + 3 * i as u64, 20 + 10 * i as u64, 0.01))
                .collect();
            let o = run(scenario(100 + n as u64 * 10 + seed, paths));
            // A join whose SYN is lost may come too late for a short transfer.
            let joins = o.server.stack.mib().get(Mib::MPJoinAckRx);
            assert!(joins < n as u64, "n {n} seed {seed}: {joins} joins");
            assert!(n == 1 || joins >= 1, "n {n} seed {seed}: no join");
        }
    }
}

#[test]
fn a_path_dying_mid_transfer_is_survived_by_reinjection() {
    let mut sc = scenario(7, vec![clean(5, 50), clean(5, 50)]);
    sc.bytes_ab = 8 << 20;
    sc.kill = Some((1, Duration::from_millis(400)));
    let o = run(sc);
    let reinjected = o.client.stack.mib().get(Mib::MPTCPRetrans);
    assert!(reinjected > 0, "no reinjection after the path died");
}

#[test]
fn a_port_going_down_is_withdrawn_reinjected_and_announced_again_when_back() {
    let mut sc = scenario(11, vec![clean(5, 50), clean(5, 50)]);
    sc.bytes_ab = 4 << 20;
    sc.bytes_ba = 8 << 20;
    sc.kill = Some((1, Duration::from_millis(300)));
    sc.server_link = Some((Duration::from_millis(20), Duration::from_millis(200)));
    let o = run(sc);
    let (c, s) = (o.client.stack.mib(), o.server.stack.mib());
    assert!(s.get(Mib::RmAddrTx) >= 1, "no REMOVE_ADDR sent");
    assert_eq!(c.get(Mib::RmAddr), 1, "the client took the REMOVE_ADDR");
    assert!(
        s.get(Mib::MPTCPRetrans) > 0,
        "the dead path's data was not reinjected"
    );
    assert!(s.get(Mib::AddAddrTx) >= 1, "not announced again");
    assert_eq!(
        c.get(Mib::AddAddr),
        1,
        "the client verified the announcement"
    );
    assert_eq!(s.get(Mib::EchoAdd), 1, "the echo came back");
}

#[test]
fn checksums_on_either_side_are_used_and_verified() {
    for (client, server) in [(true, false), (false, true), (true, true)] {
        let mut sc = scenario(9, vec![lossy(5, 50, 0.01), lossy(10, 50, 0.01)]);
        sc.client.checksum = client;
        sc.server.checksum = server;
        let o = run(sc);
        assert_eq!(o.server.stack.mib().get(Mib::DataCsumErr), 0);
        assert_eq!(o.client.stack.mib().get(Mib::DataCsumErr), 0);
    }
}

#[test]
fn every_scheduler_delivers_exactly() {
    for kind in [
        SchedulerKind::Default,
        SchedulerKind::RoundRobin,
        SchedulerKind::Redundant,
        SchedulerKind::Blest,
    ] {
        let mut sc = scenario(11, vec![lossy(5, 80, 0.005), lossy(30, 20, 0.005)]);
        sc.client.scheduler = kind;
        sc.server.scheduler = kind;
        run(sc);
    }
}

#[test]
fn a_server_without_mptcp_makes_the_client_fall_back() {
    let mut sc = scenario(13, vec![clean(5, 100), clean(5, 100)]);
    sc.server.enabled = false;
    let o = run(sc);
    assert_eq!(o.client.stack.mib().get(Mib::MPCapableFallbackSYNACK), 1);
    assert_eq!(o.client.stack.mib().get(Mib::MPJoinSynTx), 0);
}

#[test]
fn a_server_that_only_sends_is_not_stuck_behind_a_closed_window() {
    // Nothing flows client→server, so the server never sees a DATA_ACK before it
    // sends: the handshake's window must let it start.
    let mut sc = scenario(15, vec![clean(5, 100), clean(5, 100)]);
    sc.bytes_ab = 0;
    sc.bytes_ba = 4 << 20;
    run(sc);
}

#[test]
fn a_slow_reader_s_window_is_never_overrun_on_any_subflow() {
    // The server's buffer fills while its subflows' TCP windows never shrink: a
    // subflow's ACK offers its window beyond a DATA_ACK advanced by another subflow's
    // data. Whatever a subflow advertised must be taken (Linux's `rcv_wnd_sent`);
    // data beyond the connection's edge used to be dropped after the TCP-level ACK
    // and sent again.
    let mut sc = scenario(16, vec![clean(2, 100), clean(6, 100)]);
    sc.bytes_ab = 4 << 20;
    sc.bytes_ba = 0;
    sc.server = MpConfig {
        recv_window: 256 << 10,
        ..sc.server
    };
    sc.server_read_per_step = Some(1024);
    let o = run(sc);
    let s = o.server.stack.mib();
    assert!(s.get(Mib::MPJoinAckRx) >= 1);
    assert_eq!(s.get(Mib::NoDSSInWindow), 0, "data beyond the window");
}

#[test]
fn black_holed_mptcp_syns_fall_back_to_tcp_after_two_retransmissions() {
    let mut sc = scenario(17, vec![clean(5, 100), clean(5, 100)]);
    sc.blackhole_mptcp_syns = true;
    let o = run(sc);
    let c = o.client.stack.mib();
    // The first SYN and 2 retransmissions carry MP_CAPABLE; the next one does not.
    assert_eq!(c.get(Mib::MPCapableSYNTX), 3);
    assert_eq!(c.get(Mib::MPCapableSYNTXDrop), 1);
    assert_eq!(c.get(Mib::MPCapableFallbackSYNACK), 1);
    assert_eq!(o.server.stack.mib().get(Mib::MPCapableSYNRX), 0);
}

#[test]
fn the_server_announces_its_other_address_and_the_client_echoes() {
    let mut sc = scenario(19, vec![clean(5, 100), clean(5, 100)]);
    sc.server_signal = true;
    let o = run(sc);
    let (c, s) = (o.client.stack.mib(), o.server.stack.mib());
    assert_eq!(
        s.get(Mib::AddAddrTx),
        1,
        "announced once (echoed before the timeout)"
    );
    assert_eq!(c.get(Mib::AddAddr), 1, "the client verified the HMAC");
    assert_eq!(c.get(Mib::AddAddrDrop), 0);
    assert_eq!(s.get(Mib::EchoAdd), 1, "the echo came back");
}

/// Checksums on both sides, the client's data segment `n` corrupted on the way.
fn corrupting(seed: u64, paths: Vec<Faults>, n: u64) -> Scenario {
    let mut sc = scenario(seed, paths);
    sc.client.checksum = true;
    sc.server.checksum = true;
    sc.corrupt_client_segment = Some(n);
    sc
}

#[test]
fn a_corrupted_segment_on_the_only_path_falls_back_by_an_infinite_mapping() {
    // RFC 8684 §3.7: the receiver drops the mapping and sends MP_FAIL; the sender
    // answers with an infinite mapping from that DSN, sends the data again, and both
    // go on as plain TCP: exact, no reset (Linux selftest "Infinite map").
    let o = run(corrupting(21, vec![clean(5, 100)], 50));
    let (c, s) = (o.client.stack.mib(), o.server.stack.mib());
    assert_eq!(s.get(Mib::DataCsumErr), 1);
    assert_eq!(s.get(Mib::MPFailTx), 1);
    assert_eq!(c.get(Mib::MPFailRx), 1);
    assert_eq!(c.get(Mib::InfiniteMapTx), 1);
    assert_eq!(s.get(Mib::InfiniteMapRx), 1);
    assert_eq!(c.get(Mib::MPRstTx) + s.get(Mib::MPRstTx), 0);
    assert!(!o.client.events.contains(Events::RESET));
    assert!(!o.server.events.contains(Events::RESET));
}

#[test]
fn a_corrupted_segment_on_a_lossy_only_path_falls_back_exactly() {
    // Loss, duplicates and reordering around the failed mapping, the MP_FAIL and the
    // infinite mapping.
    for (seed, n) in [(31, 20), (32, 100), (33, 400), (34, 7), (35, 1)] {
        let o = run(corrupting(seed, vec![lossy(5, 50, 0.02)], n));
        let (c, s) = (o.client.stack.mib(), o.server.stack.mib());
        assert_eq!(s.get(Mib::DataCsumErr), 1, "seed {seed}");
        assert_eq!(c.get(Mib::InfiniteMapTx), 1, "seed {seed}");
        assert_eq!(s.get(Mib::InfiniteMapRx), 1, "seed {seed}");
        assert_eq!(c.get(Mib::MPRstTx) + s.get(Mib::MPRstTx), 0, "seed {seed}");
    }
}

#[test]
fn a_corrupted_segment_with_two_subflows_resets_that_subflow_and_recovers() {
    // Fallback is impossible with a join: the subflow is reset with MP_FAIL and
    // MP_TCPRST "middlebox interference"; its data comes again on the other one
    // (Linux selftest "MP_FAIL MP_RST").
    let o = run(corrupting(23, vec![clean(5, 100), clean(5, 100)], 300));
    let (c, s) = (o.client.stack.mib(), o.server.stack.mib());
    assert_eq!(s.get(Mib::DataCsumErr), 1);
    assert_eq!(s.get(Mib::MPFailTx), 1);
    assert_eq!(s.get(Mib::MPRstTx), 1);
    assert_eq!(c.get(Mib::MPRstRx), 1);
    assert_eq!(c.get(Mib::MPFailRx), 1);
    assert_eq!(c.get(Mib::InfiniteMapTx), 0);
    assert_eq!(s.get(Mib::MPJoinAckRx), 1);
}

#[test]
fn a_middlebox_stripping_dss_from_data_makes_both_sides_fall_back() {
    // Every data segment loses its MPTCP options on the only path, before any
    // DATA_ACK: both ends fall back to plain TCP without a reset, byte-exact.
    for (seed, bytes_ba, path) in [
        (25, 1 << 20, clean(5, 100)),
        (27, 0, clean(5, 100)),
        (29, 1 << 20, lossy(5, 50, 0.02)),
    ] {
        let mut sc = scenario(seed, vec![path]);
        sc.strip_data_options = true;
        sc.bytes_ba = bytes_ba;
        let o = run(sc);
        let (c, s) = (o.client.stack.mib(), o.server.stack.mib());
        assert_eq!(s.get(Mib::DssFallback), 1, "seed {seed}");
        assert_eq!(c.get(Mib::DssFallback), 1, "seed {seed}");
        assert_eq!(c.get(Mib::MPRstTx) + s.get(Mib::MPRstTx), 0);
        assert!(!o.client.events.contains(Events::RESET));
        assert!(!o.server.events.contains(Events::RESET));
    }
}

#[test]
fn a_connection_whose_only_subflow_died_resumes_exactly_on_a_later_join() {
    // Break before make: the client's only subflow is reset at 100 ms; both ends keep
    // the connection (close_timeout) and the client joins on path 1 two seconds later.
    let mut sc = scenario(31, vec![clean(5, 100), clean(10, 50)]);
    sc.withdraw = Some(Duration::from_millis(100));
    sc.join_at = Some(Duration::from_secs(2));
    let o = run(sc);
    assert!(!o.server.events.contains(Events::RESET));
    assert!(o.server.path_bytes[1] > 0 && o.client.path_bytes[1] > 0);
    assert_eq!(o.server.stack.mib().get(Mib::MPJoinAckRx), 1);
    assert_eq!(o.server.stack.orphans(), 0);
    assert_eq!(o.client.stack.orphans(), 0);
}

#[test]
fn a_connection_nobody_rejoins_is_reset_after_close_timeout() {
    let timeout = Duration::from_secs(5);
    let withdraw = Duration::from_millis(100);
    let mut sc = scenario(32, vec![clean(5, 100)]);
    sc.withdraw = Some(withdraw);
    sc.expect_reset = true;
    sc.server.close_timeout = timeout;
    sc.client.close_timeout = timeout;
    let o = run(sc);
    for h in [&o.client, &o.server] {
        let at = h.reset_at.expect("reset").as_nanos();
        let due = (withdraw + timeout).as_nanos() as u64;
        assert!(
            at >= due && at < due + 50_000_000,
            "reset at {at} ns, due {due}"
        );
        assert!(!h.events.contains(Events::CLOSED));
        assert_eq!(h.stack.orphans(), 0);
    }
    assert!(o.server.received.len() < o.client.data.len());
}

#[test]
fn fullmesh_joins_every_client_address_to_every_server_address_announced() {
    // The server announces its address on path 1; the client's fullmesh path manager
    // (an endpoint on each path) opens c1→s0, c0→s1 and c1→s1.
    let mut sc = scenario(41, vec![clean(5, 50), clean(5, 50)]);
    sc.server_signal = true;
    sc.bytes_ab = 4 << 20;
    sc.client.add_addr_accepted = 1;
    sc.client_pm = Some(client_pm(PathManagerKind::Fullmesh, 2));
    let o = run(sc);
    let (c, s) = (o.client.stack.mib(), o.server.stack.mib());
    assert_eq!(c.get(Mib::AddAddr), 1);
    assert_eq!(s.get(Mib::MPJoinAckRx), 3, "every pair of addresses");
    assert_eq!(
        o.client.opened,
        Opened {
            joins: 3,
            ..Opened::default()
        }
    );
    assert!(o.server.path_bytes.iter().all(|&b| b > 0));
}

#[test]
fn announced_addresses_are_joined_within_the_limits_only() {
    for (accepted, subflows, joins) in [
        // add_addr_accepted 0 (Linux's default): the announcement is not used.
        (0, 8, 1),
        // The subflows limit bounds the mesh.
        (1, 2, 2),
    ] {
        let mut sc = scenario(43, vec![clean(5, 50), clean(5, 50)]);
        sc.server_signal = true;
        sc.client.add_addr_accepted = accepted;
        sc.client.subflows = subflows;
        sc.client_pm = Some(client_pm(PathManagerKind::Fullmesh, 2));
        let o = run(sc);
        assert_eq!(o.client.stack.mib().get(Mib::AddAddr), 1);
        assert_eq!(
            o.server.stack.mib().get(Mib::MPJoinAckRx),
            joins,
            "add_addr_accepted {accepted}, subflows {subflows}"
        );
        assert_eq!(o.client.opened.failed, 0);
    }
    // The default path manager: its endpoint to the server's address, and one
    // subflow to the announced address from the address the routes pick.
    let mut sc = scenario(45, vec![clean(5, 50), clean(5, 50)]);
    sc.server_signal = true;
    sc.client.add_addr_accepted = 1;
    sc.client_pm = Some(client_pm(PathManagerKind::Default, 2));
    let o = run(sc);
    assert_eq!(o.server.stack.mib().get(Mib::MPJoinAckRx), 2);
}

#[test]
fn the_path_manager_gives_a_connection_its_path_back_when_the_link_returns() {
    // One path: the client's link goes down mid-transfer (its only subflow reset,
    // nothing else up: the connection waits, `close_timeout`), and comes back a
    // second later; the path manager opens the subflow again and the transfer
    // completes exactly.
    let mut sc = scenario(47, vec![clean(5, 50)]);
    sc.bytes_ab = 4 << 20;
    sc.bytes_ba = 2 << 20;
    sc.client_pm = Some(client_pm(PathManagerKind::Default, 1));
    sc.client_link = Some((Duration::from_millis(200), Duration::from_millis(1_200)));
    let o = run(sc);
    assert!(!o.server.events.contains(Events::RESET));
    assert!(!o.client.events.contains(Events::RESET));
    assert_eq!(o.server.stack.mib().get(Mib::MPJoinAckRx), 1, "one join");
    assert_eq!(o.client.opened.rejoins, 1);
    assert_eq!(o.client.opened.failed, 0);
    assert_eq!(o.server.stack.orphans() + o.client.stack.orphans(), 0);
}

#[test]
fn a_connection_left_without_subflows_is_given_one_on_another_path_at_once() {
    // Two paths, the initial subflow on path 0 only (the path manager's endpoint
    // on path 1 is added later): path 0's link goes down, the connection has no
    // subflow left, and the path manager opens one on path 1 without waiting for
    // the link to return.
    let mut sc = scenario(49, vec![clean(5, 50), clean(5, 50)]);
    sc.bytes_ab = 4 << 20;
    sc.client.subflows = 0;
    sc.client_pm = Some(client_pm(PathManagerKind::Default, 2));
    sc.client_link = Some((Duration::from_millis(200), Duration::from_secs(600)));
    let o = run(sc);
    assert!(!o.server.events.contains(Events::RESET));
    assert_eq!(o.client.opened.rejoins, 1);
    assert!(o.server.path_bytes[1] > 0 && o.client.path_bytes[1] > 0);
}
