#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Coupled congestion control in a deterministic simulation (RFC 6356 §2 goals):
//! bulk senders over in-memory links, rates measured over a fixed span of virtual
//! time once the flows settled.
//!
//! - Do no harm: an MPTCP connection with two subflows through one bottleneck, next to
//!   one plain TCP flow through the same bottleneck, takes about the TCP flow's share
//!   when coupled (LIA, OLIA), and about twice it when each subflow runs its own
//!   controller.
//! - Balance congestion: over two disjoint paths, the lossier one carries a smaller
//!   share of the connection's traffic when coupled than when not.
//!
//! The byte-exact transfer scenarios (faults, fallbacks, reinjection) are in
//! `mptcp_sim.rs`; this harness differs in that each host runs several flows that never
//! finish, and what it measures is how the bottleneck is shared.

use dataplane::mptcp::crypto::KeySource;
use dataplane::mptcp::msk::MskId;
use dataplane::mptcp::stack::{Config as MpConfig, Coupling, JoinPath, Stack};
use dataplane::port::heap::{HeapPool, HeapShared};
use dataplane::port::mem::{link, Faults, LinkConfig, MemPort, SimClock};
use dataplane::port::{Burst, PacketBuf, Port};
use dataplane::tcp::emit::{emit_headers, ChecksumMode, L2};
use dataplane::tcp::ingress::segment_from_frame;
use dataplane::tcp::{
    CcAlgorithm, Config, FourTuple, Instant, Payload, Secrets, SegmentOut, TableConfig,
};
use dataplane::wire::MacAddr;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

type S = HeapShared;

const SERVER_PORT: u16 = 80;
/// Client port of the MPTCP connection's first subflow (its joins use the next ones).
const MPTCP_PORT: u16 = 40_000;
/// Client port of the competing plain TCP flow.
const TCP_PORT: u16 = 41_000;
/// Payload bytes per write.
const CHUNK: usize = 1400;
/// Flows run this long before the measurement starts (slow start and the first losses
/// are over)...
const WARM_UP: Duration = Duration::from_secs(5);
/// ...and are measured for this long.
const SPAN: Duration = Duration::from_secs(20);

/// One host: a port per path (segments leave by their source address) and its stack.
struct Host {
    ports: Vec<MemPort>,
    addrs: Vec<IpAddr>,
    l2: L2,
    stack: Stack<S>,
    out: Vec<(FourTuple, SegmentOut<S>)>,
    /// Payload bytes sent per path (retransmissions included).
    path_bytes: Vec<u64>,
}

impl Host {
    fn new(
        ports: Vec<MemPort>,
        addrs: Vec<IpAddr>,
        me: u8,
        cc: CcAlgorithm,
        cfg: MpConfig,
    ) -> Self {
        let tcp = TableConfig {
            conn: Config {
                cc,
                ..Config::default()
            },
            ..TableConfig::default()
        };
        let n = ports.len();
        Host {
            ports,
            addrs,
            l2: L2 {
                src: MacAddr([2, 0, 0, 0, 0, me]),
                dst: MacAddr([2, 0, 0, 0, 0, 3 - me]),
                vlan_tci: None,
            },
            stack: Stack::new(
                tcp,
                Secrets::new([me; 32]),
                cfg,
                KeySource::from_seed([me; 32]),
                (0, 1),
                Instant::default(),
            ),
            out: Vec::new(),
            path_bytes: vec![0; n],
        }
    }

    /// Takes what arrived on every port and runs the timers.
    fn receive(&mut self, now: Instant) {
        for port in &mut self.ports {
            let mut rx = Burst::new();
            while port.rx_burst(&mut rx) > 0 {
                for buf in rx.drain() {
                    let (tuple, seg) = segment_from_frame(buf, true).expect("valid frame");
                    self.stack.on_segment(tuple, seg, now, &mut self.out);
                }
            }
        }
        self.stack.on_timers(now, &mut self.out);
    }

    /// Puts the segments produced so far on the wire.
    fn transmit(&mut self, pool: &HeapPool) {
        let mut tx: Vec<Burst<_>> = self.ports.iter().map(|_| Burst::new()).collect();
        for (tuple, seg) in self.out.drain(..) {
            let i = self
                .addrs
                .iter()
                .position(|a| *a == tuple.local.ip())
                .expect("segment from an own address");
            let mut hdr = [0u8; 128];
            let hl = emit_headers(&mut hdr, &self.l2, &tuple, &seg, ChecksumMode::Full).unwrap();
            let mut frame = hdr[..hl].to_vec();
            if let Some(p) = &seg.payload {
                frame.extend_from_slice(p.bytes());
                self.path_bytes[i] += p.len() as u64;
            }
            let buf = pool.alloc_from(&frame).expect("pool large enough");
            if tx[i].push(buf).is_err() {
                self.ports[i].tx_burst(&mut tx[i]);
            }
        }
        for (port, burst) in self.ports.iter_mut().zip(&mut tx) {
            port.tx_burst(burst);
        }
    }
}

fn client_addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10 + i as u8))
}

fn server_addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10 + i as u8))
}

/// A rate-limited path with a tail-drop queue of about one bandwidth-delay product.
fn bottleneck(rate_mbps: u64, one_way_ms: u64) -> Faults {
    let bdp = rate_mbps * 1_000_000 / 8 * 2 * one_way_ms / 1000;
    Faults {
        rate_bps: Some(rate_mbps * 1_000_000),
        queue_bytes: bdp as usize,
        delay_ns: one_way_ms * 1_000_000,
        ..Faults::default()
    }
}

/// A fast path that loses `drop` of its packets at random: the loss rate, not the
/// capacity, bounds what a flow gets.
fn lossy(one_way_ms: u64, drop: f64) -> Faults {
    Faults {
        rate_bps: Some(1_000_000_000),
        queue_bytes: 4 << 20,
        delay_ns: one_way_ms * 1_000_000,
        drop,
        ..Faults::default()
    }
}

/// What to run: the paths, which subflows the MPTCP connection opens, whether a plain
/// TCP flow competes on path 0, and the congestion control.
struct Setup {
    paths: Vec<Faults>,
    /// The path of each subflow: the first is the MP_CAPABLE one, the others join
    /// (from the same address pair when they share a path, as `ndiffports` does).
    subflows: Vec<usize>,
    tcp_competitor: bool,
    cc: CcAlgorithm,
    coupling: Coupling,
    seed: u64,
}

/// What was measured over [`SPAN`].
#[derive(Debug)]
struct Rates {
    /// Bytes delivered to the server's application on the MPTCP connection.
    mptcp: u64,
    /// Bytes delivered on the plain TCP flow.
    tcp: u64,
    /// Payload bytes the client sent on each path (retransmissions included).
    path_bytes: Vec<u64>,
}

fn run(setup: Setup) -> Rates {
    let pool = HeapPool::new(65_536);
    let clock = SimClock::new();
    let n = setup.paths.len();
    let (mut cports, mut sports) = (Vec::new(), Vec::new());
    for (i, f) in setup.paths.iter().enumerate() {
        let (a, b) = link(
            LinkConfig {
                a_to_b: f.clone(),
                b_to_a: f.clone(),
                seed: setup.seed.wrapping_mul(31).wrapping_add(i as u64),
                capacity: 8192,
            },
            &pool,
            &clock,
        );
        cports.push(a);
        sports.push(b);
    }
    let mp = MpConfig {
        subflows: 8,
        coupling: setup.coupling,
        ..MpConfig::default()
    };
    let mut c = Host::new(
        cports,
        (0..n).map(client_addr).collect(),
        1,
        setup.cc,
        mp.clone(),
    );
    let mut s = Host::new(sports, (0..n).map(server_addr).collect(), 2, setup.cc, mp);
    for i in 0..n {
        s.stack.listen(SocketAddr::new(server_addr(i), SERVER_PORT));
    }
    let connect = |c: &mut Host, port: u16, mptcp: bool| {
        c.stack
            .connect(
                SocketAddr::new(client_addr(0), port),
                SocketAddr::new(server_addr(setup.subflows[0]), SERVER_PORT),
                mptcp,
                Instant::default(),
                &mut c.out,
            )
            .expect("connect")
    };
    let mptcp = connect(&mut c, MPTCP_PORT, true);
    let mut flows: Vec<MskId> = vec![mptcp];
    if setup.tcp_competitor {
        flows.push(connect(&mut c, TCP_PORT, false));
    }
    let mut joined = false;
    // Bytes delivered at the server, by the client port of the connection.
    let mut delivered: HashMap<u16, u64> = HashMap::new();
    let mut at_start: Option<(HashMap<u16, u64>, Vec<u64>)> = None;
    let end = WARM_UP + SPAN;
    loop {
        let now = Instant::from_nanos(clock.now());
        if now.as_nanos() >= WARM_UP.as_nanos() as u64 && at_start.is_none() {
            at_start = Some((delivered.clone(), c.path_bytes.clone()));
        }
        if now.as_nanos() >= end.as_nanos() as u64 {
            break;
        }
        c.receive(now);
        if !joined && c.stack.info(mptcp).is_some_and(|k| k.fully_established) {
            for (k, &path) in setup.subflows.iter().enumerate().skip(1) {
                let join = JoinPath {
                    local: SocketAddr::new(client_addr(path), MPTCP_PORT + k as u16),
                    remote: SocketAddr::new(server_addr(path), SERVER_PORT),
                    local_id: k as u8,
                    backup: false,
                };
                assert!(c.stack.join(mptcp, &join, now, &mut c.out), "join {k}");
            }
            joined = true;
        }
        // The senders never run dry.
        for &m in &flows {
            while c.stack.send_space(m) >= CHUNK {
                let buf = pool.alloc_from(&[0x5a; CHUNK]).expect("pool large enough");
                assert!(c.stack.send(m, Payload::new(buf.into_shared())).is_ok());
            }
            c.stack.flush(m, now, &mut c.out);
        }
        c.transmit(&pool);
        s.receive(now);
        while let Some(m) = s.stack.next_ready() {
            let _ = s.stack.take_events(m);
            let port = s.stack.info(m).map_or(0, |k| k.remote.port());
            while let Some(p) = s.stack.recv(m) {
                *delivered.entry(port).or_default() += p.len() as u64;
            }
            s.stack.flush(m, now, &mut s.out);
        }
        s.transmit(&pool);
        let next = c
            .ports
            .iter()
            .chain(&s.ports)
            .filter_map(MemPort::next_arrival)
            .min()
            .unwrap_or(u64::MAX)
            .min(clock.now() + 1_000_000);
        clock.set(next.max(clock.now() + 1_000));
    }
    let (start, path_start) = at_start.expect("the run passed the warm-up");
    let during = |port: u16| {
        delivered.get(&port).copied().unwrap_or(0) - start.get(&port).copied().unwrap_or(0)
    };
    let info = c.stack.info(mptcp).expect("the MPTCP connection is alive");
    assert!(!info.fallback, "the MPTCP connection kept MPTCP");
    assert_eq!(info.subflows, setup.subflows.len(), "every subflow joined");
    Rates {
        mptcp: during(MPTCP_PORT),
        tcp: during(TCP_PORT),
        path_bytes: c
            .path_bytes
            .iter()
            .zip(&path_start)
            .map(|(e, s)| e - s)
            .collect(),
    }
}

/// Two subflows and one TCP flow through one 20 Mbit/s bottleneck (no random faults:
/// losses are the queue's): the MPTCP connection's rate divided by the TCP flow's.
fn shared_bottleneck_ratio(cc: CcAlgorithm, coupling: Coupling) -> f64 {
    let r = run(Setup {
        paths: vec![bottleneck(20, 10)],
        subflows: vec![0, 0],
        tcp_competitor: true,
        cc,
        coupling,
        seed: 1,
    });
    eprintln!("{cc:?} {coupling:?}: {r:?}");
    assert!(r.tcp > 0 && r.mptcp > 0, "both flows moved: {r:?}");
    // The bottleneck is used (≥ 85 % of 20 Mbit/s over the span).
    let total = (r.mptcp + r.tcp) as f64 * 8.0 / SPAN.as_secs_f64();
    assert!(total > 0.85 * 20e6, "bottleneck underused: {total} bit/s");
    r.mptcp as f64 / r.tcp as f64
}

#[test]
fn coupled_subflows_on_a_shared_bottleneck_take_no_more_than_one_tcp_flow() {
    for coupling in [Coupling::Lia, Coupling::Olia] {
        let ratio = shared_bottleneck_ratio(CcAlgorithm::NewReno, coupling);
        // RFC 6356 goal 2 (do no harm): as much as one TCP flow on the path, with some
        // slack for the sawtooth's phase at the measurement's edges.
        assert!(
            ratio < 1.3,
            "{coupling:?}: MPTCP took {ratio:.2}× the TCP flow"
        );
    }
}

#[test]
fn uncoupled_subflows_on_a_shared_bottleneck_take_about_two_tcp_shares() {
    for cc in [CcAlgorithm::NewReno, CcAlgorithm::Cubic] {
        let ratio = shared_bottleneck_ratio(cc, Coupling::None);
        assert!(
            ratio > 1.6,
            "{cc:?}: two independent subflows took only {ratio:.2}× the TCP flow"
        );
    }
}

/// Two disjoint paths, path 1 losing `hi` of its packets and path 0 `lo`: the share of
/// the connection's traffic path 1 carried.
fn lossy_path_share(coupling: Coupling, seed: u64) -> f64 {
    let r = run(Setup {
        paths: vec![lossy(10, 0.002), lossy(10, 0.01)],
        subflows: vec![0, 1],
        tcp_competitor: false,
        cc: CcAlgorithm::NewReno,
        coupling,
        seed,
    });
    eprintln!("{coupling:?} seed {seed}: {r:?}");
    assert!(
        r.path_bytes.iter().all(|&b| b > 0),
        "both paths carried data: {r:?}"
    );
    r.path_bytes[1] as f64 / r.path_bytes.iter().sum::<u64>() as f64
}

#[test]
fn coupled_congestion_control_moves_traffic_off_the_lossier_path() {
    for seed in [1, 2] {
        let uncoupled = lossy_path_share(Coupling::None, seed);
        for coupling in [Coupling::Lia, Coupling::Olia] {
            let coupled = lossy_path_share(coupling, seed);
            // Uncoupled, each subflow's window goes as 1/√p (5× the loss: ≈ 31 % of the
            // traffic); coupled, more of it moves to the cleaner path (LIA's windows go
            // as 1/p: ≈ 17 %).
            assert!(
                coupled < 0.8 * uncoupled,
                "{coupling:?} seed {seed}: lossy path share {coupled:.3} coupled vs {uncoupled:.3} uncoupled"
            );
        }
    }
}
