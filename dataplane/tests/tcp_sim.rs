#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Deterministic simulation: two TCP engines over an in-memory link with seeded loss,
//! reordering, duplication, corruption, delay and rate limits. Checks byte-exact
//! delivery both ways, a clean close, and that no timer, connection or buffer is left.

use dataplane::port::heap::{HeapPool, HeapShared};
use dataplane::port::mem::{link, Faults, LinkConfig, MemPort, SimClock};
use dataplane::port::{Burst, PacketBuf, Port};
use dataplane::seq::TcpSeq;
use dataplane::tcp::emit::{emit_headers, ChecksumMode, L2};
use dataplane::tcp::ingress::segment_from_frame;
use dataplane::tcp::{
    CcAlgorithm, Config, Connection, Events, FourTuple, Instant, Payload, SegmentOut, State,
};
use dataplane::wire::tcp::TcpFlags;
use dataplane::wire::MacAddr;
use proptest::prelude::*;

type S = HeapShared;

/// One end: a port, at most one connection, and an application that sends `data` and
/// collects what arrives.
struct Host {
    port: MemPort,
    l2: L2,
    tuple: FourTuple,
    conn: Option<Connection<S>>,
    cfg: Config,
    data: Vec<u8>,
    sent: usize,
    received: Vec<u8>,
    closed_by_app: bool,
    events: Events,
    bad_frames: u64,
    out: Vec<(FourTuple, SegmentOut<S>)>,
}

impl Host {
    fn step(&mut self, now: Instant, pool: &HeapPool) {
        let mut rx = Burst::new();
        while self.port.rx_burst(&mut rx) > 0 {
            for buf in rx.drain() {
                let Ok((tuple, mut seg)) = segment_from_frame(buf, true) else {
                    self.bad_frames += 1;
                    continue;
                };
                assert_eq!(tuple, self.tuple);
                if self.conn.is_none() && seg.flags == TcpFlags::SYN {
                    let c = Connection::accept(
                        &self.cfg,
                        tuple,
                        &seg,
                        // Just below the wrap: every transfer crosses 2³² → 0.
                        TcpSeq::new(0xffff_0000),
                        7,
                        Default::default(),
                        now,
                    );
                    self.conn = Some(c);
                    continue;
                }
                if let Some(c) = self.conn.as_mut() {
                    c.on_segment(&mut seg, now, &mut self.out);
                }
            }
        }
        let Some(c) = self.conn.as_mut() else { return };
        if c.poll_at().is_some_and(|t| t <= now) {
            c.on_timer(now, &mut self.out);
        }
        while let Some(p) = c.recv() {
            self.received.extend_from_slice(p.bytes());
        }
        while self.sent < self.data.len() && c.send_space() > 0 && c.state().sends_data() {
            let n = (self.data.len() - self.sent).min(1400).min(c.send_space());
            let Some(buf) = pool.alloc_from(&self.data[self.sent..self.sent + n]) else {
                break;
            };
            if c.send(Payload::new(buf.into_shared())).is_err() {
                break;
            }
            self.sent += n;
        }
        if self.sent == self.data.len() && !self.closed_by_app && c.state() != State::SynSent {
            c.close();
            self.closed_by_app = true;
        }
        c.flush(now, &mut self.out);
        self.events |= c.take_events();
        let mut tx = Burst::new();
        for (tuple, seg) in self.out.drain(..) {
            let mut hdr = [0u8; 128];
            let hl = emit_headers(&mut hdr, &self.l2, &tuple, &seg, ChecksumMode::Full).unwrap();
            let mut frame = hdr[..hl].to_vec();
            if let Some(p) = &seg.payload {
                frame.extend_from_slice(p.bytes());
            }
            let buf = pool
                .alloc_from(&frame)
                .expect("pool large enough for the test");
            if tx.push(buf).is_err() {
                self.port.tx_burst(&mut tx);
            }
        }
        self.port.tx_burst(&mut tx);
        if c.state() == State::Closed {
            self.conn = None;
        }
    }

    fn poll_at(&self) -> Option<Instant> {
        self.conn.as_ref().and_then(Connection::poll_at)
    }
}

struct Outcome {
    a_events: Events,
    b_events: Events,
    end_ns: u64,
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

fn run(seed: u64, faults: Faults, bytes_ab: usize, bytes_ba: usize, cc: CcAlgorithm) -> Outcome {
    let pool = HeapPool::new(16_384);
    let clock = SimClock::new();
    let (pa, pb) = link(
        LinkConfig {
            a_to_b: faults.clone(),
            b_to_a: faults,
            seed,
            capacity: 4096,
        },
        &pool,
        &clock,
    );
    let cfg = Config {
        cc,
        time_wait: std::time::Duration::from_secs(2),
        ..Config::default()
    };
    let ta = FourTuple {
        local: "192.0.2.1:40000".parse().unwrap(),
        remote: "192.0.2.2:7".parse().unwrap(),
    };
    let tb = FourTuple {
        local: ta.remote,
        remote: ta.local,
    };
    let mac_a = MacAddr([2, 0, 0, 0, 0, 1]);
    let mac_b = MacAddr([2, 0, 0, 0, 0, 2]);
    let mk = |port, tuple, src, dst, data| Host {
        port,
        l2: L2 {
            src,
            dst,
            vlan_tci: None,
        },
        tuple,
        conn: None,
        cfg: cfg.clone(),
        data,
        sent: 0,
        received: Vec::new(),
        closed_by_app: false,
        events: Events::NONE,
        bad_frames: 0,
        out: Vec::new(),
    };
    let mut a = mk(pa, ta, mac_a, mac_b, pattern(seed, bytes_ab));
    let mut b = mk(pb, tb, mac_b, mac_a, pattern(!seed, bytes_ba));
    a.conn = Some(Connection::connect(
        &cfg,
        ta,
        TcpSeq::new(u32::MAX - (seed as u32 % 4096)),
        3,
        Default::default(),
        Instant::default(),
    ));
    let mut steps = 0u64;
    loop {
        let now = Instant::from_nanos(clock.now());
        a.step(now, &pool);
        b.step(now, &pool);
        if a.conn.is_none()
            && b.conn.is_none()
            && a.port.in_flight() == 0
            && b.port.in_flight() == 0
        {
            break;
        }
        let next = [
            a.port.next_arrival(),
            b.port.next_arrival(),
            a.poll_at().map(Instant::as_nanos),
            b.poll_at().map(Instant::as_nanos),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else {
            panic!(
                "seed {seed}: stuck: a {:?} b {:?}",
                a.conn.as_ref().map(Connection::state),
                b.conn.as_ref().map(Connection::state)
            );
        };
        clock.set(next.max(clock.now() + 1_000));
        steps += 1;
        assert!(steps < 5_000_000, "seed {seed}: no progress");
        assert!(
            clock.now() < 3_600_000_000_000,
            "seed {seed}: took an hour of virtual time"
        );
    }
    assert_eq!(a.received.len(), b.data.len(), "seed {seed}: b→a length");
    assert!(a.received == b.data, "seed {seed}: b→a bytes differ");
    assert_eq!(b.received.len(), a.data.len(), "seed {seed}: a→b length");
    assert!(b.received == a.data, "seed {seed}: a→b bytes differ");
    drop((a.port, b.port));
    assert_eq!(pool.in_use(), 0, "seed {seed}: buffers leaked");
    Outcome {
        a_events: a.events,
        b_events: b.events,
        end_ns: clock.now(),
    }
}

fn lossy(drop: f64) -> Faults {
    Faults {
        drop,
        duplicate: 0.01,
        reorder: 0.02,
        reorder_delay_ns: 3_000_000,
        corrupt: 0.002,
        rate_bps: Some(200_000_000),
        queue_bytes: 512 * 1024,
        delay_ns: 5_000_000,
    }
}

#[test]
fn clean_link_delivers_and_closes() {
    let o = run(
        1,
        Faults {
            delay_ns: 1_000_000,
            ..Faults::default()
        },
        1 << 20,
        1 << 20,
        CcAlgorithm::Cubic,
    );
    for e in [o.a_events, o.b_events] {
        assert!(
            e.contains(Events::CONNECTED | Events::PEER_FIN | Events::CLOSED),
            "{e:?}"
        );
        assert!(!e.contains(Events::RESET) && !e.contains(Events::TIMED_OUT));
    }
}

#[test]
fn lossy_links_deliver_byte_exact_for_many_seeds() {
    for seed in 0..32u64 {
        let drop = (seed % 11) as f64 / 100.0;
        let cc = if seed % 2 == 0 {
            CcAlgorithm::Cubic
        } else {
            CcAlgorithm::NewReno
        };
        let o = run(seed, lossy(drop), 1 << 20, 256 << 10, cc);
        assert!(
            o.a_events.contains(Events::CLOSED),
            "seed {seed}: {:?}",
            o.a_events
        );
        assert!(o.end_ns > 0);
    }
}

#[test]
fn big_transfer_at_one_percent_loss() {
    let o = run(99, lossy(0.01), 4 << 20, 4 << 20, CcAlgorithm::Cubic);
    // 8 MiB at 1 % loss and a 10 ms RTT: Mathis et al. allow ~14 Mbit/s for Reno-like
    // growth, so well under a minute of virtual time.
    assert!(o.end_ns < 30_000_000_000, "{} ns", o.end_ns);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn random_fault_schedules(
        seed in any::<u64>(),
        drop in 0.0..0.1f64,
        duplicate in 0.0..0.05f64,
        reorder in 0.0..0.1f64,
        delay_ms in 0u64..50,
        rate_mbps in prop::option::of(1u64..1000),
        ab in 0usize..200_000,
        ba in 0usize..200_000,
    ) {
        let f = Faults {
            drop,
            duplicate,
            reorder,
            reorder_delay_ns: 2_000_000,
            corrupt: 0.001,
            rate_bps: rate_mbps.map(|m| m * 1_000_000),
            queue_bytes: 256 * 1024,
            delay_ns: delay_ms * 1_000_000,
        };
        run(seed, f, ab, ba, CcAlgorithm::Cubic);
    }
}
