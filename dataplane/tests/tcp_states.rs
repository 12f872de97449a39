#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! State-machine tests: a fixture per state, segments in, exact segments and events out.

use dataplane::port::heap::{HeapPool, HeapShared};
use dataplane::port::{PacketBuf, SharedBuf};
use dataplane::seq::TcpSeq;
use dataplane::tcp::{
    CcAlgorithm, Config, Connection, Events, FourTuple, Instant, Payload, SegOptions, SegmentIn,
    SegmentOut, State,
};
use dataplane::wire::tcp::{OptionsBuf, TcpFlags};
use std::time::Duration;

type S = HeapShared;

const LOCAL_ISS: u32 = 1000;
const REMOTE_ISS: u32 = 5000;
const ACK: TcpFlags = TcpFlags::ACK;
const SYN: TcpFlags = TcpFlags::SYN;
const FIN: TcpFlags = TcpFlags::FIN;
const RST: TcpFlags = TcpFlags::RST;

fn seq(n: u32) -> TcpSeq {
    TcpSeq::new(n)
}

fn tuple() -> FourTuple {
    FourTuple {
        local: "192.0.2.1:80".parse().unwrap(),
        remote: "192.0.2.2:40000".parse().unwrap(),
    }
}

fn config() -> Config {
    Config {
        timestamps: false,
        recv_budget: 65536,
        cc: CcAlgorithm::NewReno,
        ..Config::default()
    }
}

/// The remote's SYN options: MSS 1400, window scale 8, SACK permitted.
fn syn_opts() -> SegOptions {
    SegOptions {
        mss: Some(1400),
        window_scale: Some(8),
        sack_permitted: true,
        ..SegOptions::default()
    }
}

struct Fx {
    c: Connection<S>,
    now: Instant,
    out: Vec<(FourTuple, SegmentOut<S>)>,
    pool: HeapPool,
}

impl Fx {
    fn payload(&self, bytes: &[u8]) -> Payload<S> {
        Payload::new(self.pool.alloc_from(bytes).unwrap().into_shared())
    }

    fn seg(&self, s: u32, a: u32, flags: TcpFlags, window: u16) -> SegmentIn<S> {
        SegmentIn::bare(seq(s), seq(a), flags, window)
    }

    fn data(&self, s: u32, a: u32, bytes: &[u8]) -> SegmentIn<S> {
        let mut g = self.seg(s, a, ACK, 1000);
        g.payload = Some(self.payload(bytes));
        g
    }

    /// Feeds a segment.
    /// Delivers `g` as a receive burst of its own (the ACK it leaves owed goes out).
    fn recv(&mut self, mut g: SegmentIn<S>) {
        self.c.on_segment(&mut g, self.now, &mut self.out);
        self.c.release_owed_ack(self.now, &mut self.out);
    }

    /// Advances time and runs timers.
    fn tick(&mut self, d: Duration) {
        self.now = self.now + d;
        self.c.on_timer(self.now, &mut self.out);
    }

    /// Takes the segments sent so far.
    fn sent(&mut self) -> Vec<SegmentOut<S>> {
        self.out
            .drain(..)
            .map(|(t, s)| {
                assert_eq!(t, tuple());
                s
            })
            .collect()
    }

    fn events(&mut self) -> Events {
        self.c.take_events()
    }
}

fn out(s: u32, a: u32, flags: TcpFlags, window: u16) -> SegmentOut<S> {
    SegmentOut {
        seq: seq(s),
        ack: seq(a),
        flags,
        window,
        options: OptionsBuf::new(),
        payload: None,
        path: Default::default(),
    }
}

fn with_opts(mut s: SegmentOut<S>, f: impl FnOnce(&mut OptionsBuf)) -> SegmentOut<S> {
    f(&mut s.options);
    s
}

/// Asserts the next sent segments, one line per segment.
macro_rules! send {
    ($fx:expr, [$($seg:expr),* $(,)?]) => {
        assert_eq!($fx.sent(), vec![$($seg),*]);
    };
}

fn pool() -> HeapPool {
    HeapPool::new(4096)
}

fn syn_sent_with(cfg: Config) -> Fx {
    let pool = pool();
    let now = Instant::from_millis(1);
    let c = Connection::connect(&cfg, tuple(), seq(LOCAL_ISS), 0, Default::default(), now);
    let mut fx = Fx {
        c,
        now,
        out: Vec::new(),
        pool,
    };
    fx.c.flush(fx.now, &mut fx.out);
    fx
}

fn syn_sent() -> Fx {
    let mut fx = syn_sent_with(config());
    send!(
        fx,
        [with_opts(out(LOCAL_ISS, 0, SYN, 65535), |o| {
            o.push_mss(1460).unwrap();
            o.push_sack_permitted().unwrap();
            o.push_window_scale(7).unwrap();
        })]
    );
    assert_eq!(fx.c.state(), State::SynSent);
    fx
}

fn syn_received_with(cfg: Config, opts: SegOptions) -> Fx {
    let pool = pool();
    let now = Instant::from_millis(1);
    let mut syn = SegmentIn::bare(seq(REMOTE_ISS), seq(0), SYN, 64240);
    syn.options = opts;
    let c = Connection::accept(
        &cfg,
        tuple(),
        &syn,
        seq(LOCAL_ISS),
        0,
        Default::default(),
        now,
    );
    let mut fx = Fx {
        c,
        now,
        out: Vec::new(),
        pool,
    };
    fx.c.flush(fx.now, &mut fx.out);
    fx
}

fn syn_ack() -> SegmentOut<S> {
    with_opts(out(LOCAL_ISS, REMOTE_ISS + 1, SYN | ACK, 65535), |o| {
        o.push_mss(1460).unwrap();
        o.push_sack_permitted().unwrap();
        o.push_window_scale(7).unwrap();
    })
}

fn syn_received() -> Fx {
    let mut fx = syn_received_with(config(), syn_opts());
    send!(fx, [syn_ack()]);
    assert_eq!(fx.c.state(), State::SynReceived);
    fx
}

/// Established; the peer's window is 1000 << 8 bytes; our window field is 512 (64 KiB
/// >> 7).
fn established() -> Fx {
    let mut fx = syn_received();
    let g = fx.seg(REMOTE_ISS + 1, LOCAL_ISS + 1, ACK, 1000);
    fx.recv(g);
    send!(fx, []);
    assert_eq!(fx.c.state(), State::Established);
    assert_eq!(fx.events(), Events::CONNECTED);
    fx
}

const WIN: u16 = 512;
const L1: u32 = LOCAL_ISS + 1;
const R1: u32 = REMOTE_ISS + 1;

fn fin_wait_1() -> Fx {
    let mut fx = established();
    fx.c.close();
    fx.c.flush(fx.now, &mut fx.out);
    send!(fx, [out(L1, R1, FIN | ACK, WIN)]);
    assert_eq!(fx.c.state(), State::FinWait1);
    fx
}

fn fin_wait_2() -> Fx {
    let mut fx = fin_wait_1();
    let g = fx.seg(R1, L1 + 1, ACK, 1000);
    fx.recv(g);
    send!(fx, []);
    assert_eq!(fx.c.state(), State::FinWait2);
    fx
}

fn closing() -> Fx {
    let mut fx = fin_wait_1();
    let g = fx.seg(R1, L1, FIN | ACK, 1000);
    fx.recv(g);
    send!(fx, [out(L1 + 1, R1 + 1, ACK, WIN)]);
    assert_eq!(fx.c.state(), State::Closing);
    assert_eq!(fx.events(), Events::PEER_FIN);
    fx
}

fn time_wait() -> Fx {
    let mut fx = fin_wait_2();
    let g = fx.seg(R1, L1 + 1, FIN | ACK, 1000);
    fx.recv(g);
    send!(fx, [out(L1 + 1, R1 + 1, ACK, WIN)]);
    assert_eq!(fx.c.state(), State::TimeWait);
    fx.events();
    fx
}

fn close_wait() -> Fx {
    let mut fx = established();
    let g = fx.seg(R1, L1, FIN | ACK, 1000);
    fx.recv(g);
    send!(fx, [out(L1, R1 + 1, ACK, WIN)]);
    assert_eq!(fx.c.state(), State::CloseWait);
    assert_eq!(fx.events(), Events::PEER_FIN);
    fx
}

fn last_ack() -> Fx {
    let mut fx = close_wait();
    fx.c.close();
    fx.c.flush(fx.now, &mut fx.out);
    send!(fx, [out(L1, R1 + 1, FIN | ACK, WIN)]);
    assert_eq!(fx.c.state(), State::LastAck);
    fx
}

// ----- SYN-SENT -------------------------------------------------------------------

#[test]
fn syn_sent_syn_ack_establishes() {
    let mut fx = syn_sent();
    let mut g = fx.seg(REMOTE_ISS, L1, SYN | ACK, 29200);
    g.options = syn_opts();
    fx.now = fx.now + Duration::from_millis(10);
    fx.recv(g);
    // The SYN-ACK's window is unscaled; ours is scaled by 7 from now on.
    send!(fx, [out(L1, R1, ACK, WIN)]);
    assert_eq!(fx.c.state(), State::Established);
    assert_eq!(fx.events(), Events::CONNECTED);
    assert_eq!(fx.c.window_scales(), (8, 7));
    assert_eq!(fx.c.mss(), 1400);
    // First RTT sample 10 ms: RTO = max(200 ms, 10 + 4 × 5).
    assert_eq!(fx.c.rto(), Duration::from_millis(200));
}

#[test]
fn syn_sent_unacceptable_ack_gets_rst_and_rst_checks_ack() {
    let mut fx = syn_sent();
    let g = fx.seg(REMOTE_ISS, LOCAL_ISS + 7, SYN | ACK, 100);
    fx.recv(g);
    send!(fx, [out(LOCAL_ISS + 7, 0, RST, 0)]);
    // A RST without ACK is ignored in SYN-SENT; with an acceptable ACK it resets.
    let g = fx.seg(REMOTE_ISS, 0, RST, 0);
    fx.recv(g);
    assert_eq!(fx.c.state(), State::SynSent);
    let g = fx.seg(0, L1, RST | ACK, 0);
    fx.recv(g);
    assert_eq!(fx.c.state(), State::Closed);
    assert_eq!(fx.events(), Events::RESET);
}

#[test]
fn syn_sent_retransmits_with_backoff_then_times_out() {
    let mut fx = syn_sent_with(Config {
        syn_retries: 2,
        ..config()
    });
    fx.sent();
    assert_eq!(fx.c.poll_at(), Some(fx.now + Duration::from_secs(1)));
    fx.tick(Duration::from_secs(1));
    assert_eq!(fx.sent().len(), 1);
    assert_eq!(fx.c.poll_at(), Some(fx.now + Duration::from_secs(2)));
    fx.tick(Duration::from_secs(2));
    assert_eq!(fx.sent()[0].flags, SYN);
    fx.tick(Duration::from_secs(4));
    send!(fx, []);
    assert_eq!(fx.c.state(), State::Closed);
    assert_eq!(fx.events(), Events::TIMED_OUT);
    assert_eq!(fx.c.poll_at(), None);
}

#[test]
fn simultaneous_open() {
    let mut fx = syn_sent();
    let mut g = fx.seg(REMOTE_ISS, 0, SYN, 29200);
    g.options = syn_opts();
    fx.recv(g);
    assert_eq!(fx.c.state(), State::SynReceived);
    send!(fx, [syn_ack()]);
    let mut g = fx.seg(REMOTE_ISS, L1, SYN | ACK, 29200);
    g.options = syn_opts();
    fx.recv(g);
    // The peer's SYN-ACK acknowledges our SYN: established, answered with a plain ACK
    // (not another SYN-ACK, which the peer would answer in kind forever).
    assert_eq!(fx.c.state(), State::Established);
    send!(fx, [out(L1, R1, ACK, WIN)]);
    let g = fx.seg(R1, L1, ACK, 1000);
    fx.recv(g);
    assert_eq!(fx.c.state(), State::Established);
    send!(fx, []);
}

#[test]
fn simultaneous_open_between_two_engines_does_not_ping_pong() {
    let cfg = config();
    let now = Instant::from_millis(1);
    let ta = tuple();
    let tb = FourTuple {
        local: ta.remote,
        remote: ta.local,
    };
    let mut a: Connection<S> =
        Connection::connect(&cfg, ta, seq(LOCAL_ISS), 0, Default::default(), now);
    let mut b: Connection<S> =
        Connection::connect(&cfg, tb, seq(REMOTE_ISS), 0, Default::default(), now);
    let (mut to_b, mut to_a) = (Vec::new(), Vec::new());
    a.flush(now, &mut to_b);
    b.flush(now, &mut to_a);
    let mut rounds = 0;
    while !(to_a.is_empty() && to_b.is_empty()) {
        rounds += 1;
        assert!(rounds < 10, "segments ping-pong between the two ends");
        let (ia, ib) = (std::mem::take(&mut to_a), std::mem::take(&mut to_b));
        for (_, g) in ia {
            a.on_segment(&mut as_input(g), now, &mut to_b);
        }
        for (_, g) in ib {
            b.on_segment(&mut as_input(g), now, &mut to_a);
        }
    }
    assert_eq!(a.state(), State::Established);
    assert_eq!(b.state(), State::Established);
}

/// A sent segment as the other end receives it (options the engine emits here: MSS,
/// SACK-permitted and window scale on SYNs).
fn as_input(g: SegmentOut<S>) -> SegmentIn<S> {
    let mut i = SegmentIn::bare(g.seq, g.ack, g.flags, g.window);
    if g.flags.contains(SYN) {
        i.options = syn_opts();
    }
    i.payload = g.payload;
    i
}

// ----- SYN-RECEIVED ---------------------------------------------------------------

#[test]
fn syn_received_retransmitted_syn_repeats_syn_ack() {
    let mut fx = syn_received();
    let mut g = fx.seg(REMOTE_ISS, 0, SYN, 64240);
    g.options = syn_opts();
    fx.recv(g);
    send!(fx, [syn_ack()]);
}

#[test]
fn syn_received_bad_ack_gets_rst() {
    let mut fx = syn_received();
    let g = fx.seg(R1, LOCAL_ISS + 50, ACK, 1000);
    fx.recv(g);
    send!(fx, [out(LOCAL_ISS + 50, 0, RST, 0)]);
    assert_eq!(fx.c.state(), State::SynReceived);
}

#[test]
fn syn_received_syn_ack_timeout_retransmits() {
    let mut fx = syn_received();
    fx.tick(Duration::from_secs(1));
    send!(fx, [syn_ack()]);
}

#[test]
fn syn_received_without_options_uses_defaults() {
    let mut fx = syn_received_with(config(), SegOptions::default());
    send!(
        fx,
        [with_opts(out(LOCAL_ISS, R1, SYN | ACK, 65535), |o| {
            o.push_mss(1460).unwrap();
        })]
    );
    assert_eq!(fx.c.mss(), 536);
    assert_eq!(fx.c.window_scales(), (0, 0));
    assert_eq!(fx.c.sack_and_timestamps(), (false, false));
}

// ----- ESTABLISHED ----------------------------------------------------------------

#[test]
fn established_receives_with_delayed_ack_zero_copy() {
    let mut fx = established();
    let g = fx.data(R1, L1, b"hello");
    let buf = g.payload.as_ref().unwrap().buf().clone();
    fx.recv(g);
    send!(fx, []);
    assert_eq!(fx.events(), Events::READABLE);
    assert_eq!(fx.c.poll_at(), Some(fx.now + Duration::from_millis(40)));
    fx.tick(Duration::from_millis(40));
    send!(fx, [out(L1, R1 + 5, ACK, WIN - 1)]);
    // The delivered payload is the received buffer itself.
    let p = fx.c.recv().unwrap();
    assert_eq!(p.bytes(), b"hello");
    assert!(buf.refcount() >= 2);
    // A second full segment pair is acknowledged at once.
    let g = fx.data(R1 + 5, L1, b"ab");
    fx.recv(g);
    let g = fx.data(R1 + 7, L1, b"cd");
    fx.recv(g);
    send!(fx, [out(L1, R1 + 9, ACK, WIN - 1)]);
    assert_eq!(fx.c.stats().copied_bytes, 0);
}

#[test]
fn a_burst_of_in_order_segments_is_acknowledged_once_at_its_end() {
    let mut fx = established();
    // Eight segments in one receive burst: the ACK every second one owes waits for
    // the burst's end, and one ACK covers them all.
    for i in 0..8u32 {
        let mut g = fx.data(R1 + 2 * i, L1, b"ab");
        fx.c.on_segment(&mut g, fx.now, &mut fx.out);
    }
    send!(fx, []);
    assert!(fx.c.ack_owed());
    fx.c.release_owed_ack(fx.now, &mut fx.out);
    send!(fx, [out(L1, R1 + 16, ACK, WIN - 1)]);
    // Nothing left owed: releasing again sends nothing.
    fx.c.release_owed_ack(fx.now, &mut fx.out);
    send!(fx, []);
    // A segment we send before the burst ends carries the owed ACK.
    for i in 8..10u32 {
        let mut g = fx.data(R1 + 2 * i, L1, b"ab");
        fx.c.on_segment(&mut g, fx.now, &mut fx.out);
    }
    let p = fx.payload(b"reply");
    fx.c.send(p).unwrap();
    fx.c.flush(fx.now, &mut fx.out);
    assert!(!fx.c.ack_owed());
    let sent = fx.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].ack, seq(R1 + 20));
    fx.c.release_owed_ack(fx.now, &mut fx.out);
    send!(fx, []);
}

#[test]
fn established_out_of_order_sacks_and_fills() {
    let mut fx = established();
    let g = fx.data(R1 + 10, L1, b"klmno");
    fx.recv(g);
    send!(
        fx,
        [with_opts(out(L1, R1, ACK, WIN), |o| {
            o.push_sack(&[(seq(R1 + 10), seq(R1 + 15))]).unwrap();
        })]
    );
    let g = fx.data(R1 + 20, L1, b"uv");
    fx.recv(g);
    send!(
        fx,
        [with_opts(out(L1, R1, ACK, WIN), |o| {
            o.push_sack(&[(seq(R1 + 20), seq(R1 + 22)), (seq(R1 + 10), seq(R1 + 15))])
                .unwrap();
        })]
    );
    let g = fx.data(R1, L1, b"abcdefghij");
    fx.recv(g);
    send!(
        fx,
        [with_opts(out(L1, R1 + 15, ACK, WIN - 1), |o| {
            o.push_sack(&[(seq(R1 + 20), seq(R1 + 22))]).unwrap();
        })]
    );
    let mut got = Vec::new();
    while let Some(p) = fx.c.recv() {
        got.extend_from_slice(p.bytes());
    }
    assert_eq!(got, b"abcdefghijklmno");
}

#[test]
fn established_duplicate_data_is_acked_not_delivered() {
    let mut fx = established();
    let g = fx.data(R1, L1, b"abc");
    fx.recv(g);
    let g = fx.data(R1, L1, b"abcdef");
    fx.recv(g);
    // The duplicate part is reported in a D-SACK block (RFC 2883).
    send!(
        fx,
        [with_opts(out(L1, R1 + 6, ACK, WIN - 1), |o| {
            o.push_sack(&[(seq(R1), seq(R1 + 3))]).unwrap();
        })]
    );
    assert_eq!(fx.c.stats().duplicate_bytes, 3);
    assert_eq!(fx.c.recv_queued(), 6);
}

#[test]
fn established_sends_segments_of_mss_and_acks_free_them() {
    let mut fx = established();
    let big = vec![7u8; 2000];
    let p = fx.payload(&big);
    fx.c.send(p).unwrap();
    fx.c.flush(fx.now, &mut fx.out);
    let sent = fx.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!((sent[0].seq, sent[0].data_len()), (seq(L1), 1400));
    assert_eq!((sent[1].seq, sent[1].data_len()), (seq(L1 + 1400), 600));
    drop(sent);
    let g = fx.seg(R1, L1 + 2000, ACK, 1000);
    fx.recv(g);
    assert_eq!(fx.events(), Events::WRITABLE);
    assert_eq!(fx.c.poll_at(), None);
    assert_eq!(fx.pool.in_use(), 0, "acknowledged payload released");
}

#[test]
fn rst_validation_and_challenge_ack() {
    let mut fx = established();
    // In window but not exact: challenge ACK.
    let g = fx.seg(R1 + 100, 0, RST, 0);
    fx.recv(g);
    send!(fx, [out(L1, R1, ACK, WIN)]);
    // Outside the window: ignored.
    let g = fx.seg(R1 + 1_000_000, 0, RST, 0);
    fx.recv(g);
    send!(fx, []);
    // Exact: reset.
    let g = fx.seg(R1, 0, RST, 0);
    fx.recv(g);
    assert_eq!(fx.c.state(), State::Closed);
    assert_eq!(fx.events(), Events::RESET);
}

#[test]
fn challenge_acks_are_rate_limited() {
    let mut fx = established();
    for _ in 0..20 {
        let g = fx.seg(R1, L1, SYN, 1000);
        fx.recv(g);
    }
    assert_eq!(fx.sent().len(), 10);
    assert_eq!(fx.c.stats().challenge_acks_limited, 10);
    fx.now = fx.now + Duration::from_secs(1);
    let g = fx.seg(R1, L1, SYN, 1000);
    fx.recv(g);
    send!(fx, [out(L1, R1, ACK, WIN)]);
    assert_eq!(fx.c.state(), State::Established);
}

#[test]
fn ack_of_unsent_data_is_answered_and_dropped() {
    let mut fx = established();
    let mut g = fx.data(R1, L1 + 10, b"zz");
    g.flags = ACK;
    fx.recv(g);
    send!(fx, [out(L1, R1, ACK, WIN)]);
    assert_eq!(fx.c.recv_queued(), 0);
}

#[test]
fn out_of_window_segment_gets_duplicate_ack() {
    let mut fx = established();
    let g = fx.data(R1 + 70_000, L1, b"far");
    fx.recv(g);
    send!(fx, [out(L1, R1, ACK, WIN)]);
    assert_eq!(fx.c.stats().unacceptable, 1);
}

#[test]
fn window_scaling_limits_what_is_sent() {
    let mut fx = established();
    // The peer offers 3 << 8 = 768 bytes.
    let g = fx.seg(R1, L1, ACK, 3);
    fx.recv(g);
    let p = fx.payload(&[1u8; 2000]);
    fx.c.send(p).unwrap();
    fx.c.flush(fx.now, &mut fx.out);
    let sent = fx.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].data_len(), 768);
}

#[test]
fn mss_is_clamped_to_mtu_and_config() {
    let cfg = config().clamp_to_mtu(1280, true);
    assert_eq!(cfg.mss, 1220);
    let mut opts = syn_opts();
    opts.mss = Some(9000);
    let fx = syn_received_with(config(), opts);
    assert_eq!(fx.c.mss(), 1460);
}

#[test]
fn receive_budget_drives_the_window_and_never_shrinks_it() {
    let mut fx = established();
    let p = vec![0u8; 1400];
    let mut s = R1;
    for _ in 0..4 {
        let g = fx.data(s, L1, &p);
        fx.recv(g);
        s += 1400;
    }
    // Nothing read: the window falls by what is queued.
    let sent = fx.sent();
    assert_eq!(sent.last().unwrap().window, ((65536 - 5600) >> 7) as u16);
    // Halving the budget does not pull the advertised edge back.
    fx.c.set_recv_budget(8192);
    let g = fx.seg(s, L1, ACK | TcpFlags::PSH, 1000);
    fx.recv(g);
    fx.c.flush(fx.now, &mut fx.out);
    let g = fx.data(s, L1, &p);
    fx.recv(g);
    fx.tick(Duration::from_millis(40));
    let sent = fx.sent();
    let w = u32::from(sent.last().unwrap().window) << 7;
    assert!(w >= 65536 - 7000 - 128, "{w}");
    // Reading everything reopens it, with a window update.
    while fx.c.recv().is_some() {}
    fx.c.set_recv_budget(65536);
    fx.c.flush(fx.now, &mut fx.out);
    assert_eq!(fx.sent().len(), 1);
}

#[test]
fn tiny_segments_cannot_pin_a_buffer_per_byte_of_the_window() {
    let mut fx = established();
    // 300 one-byte segments, in order and in the window, nothing read: each would pin
    // a packet buffer. Past a budget's worth of per-buffer overhead they are dropped
    // (and ACKed, so the peer retransmits once the application reads).
    for i in 0..300 {
        let g = fx.data(R1 + i, L1, b"x");
        fx.recv(g);
    }
    let held = fx.c.recv_queued();
    assert!(held < 200, "{held} one-byte payloads held");
    // The first one over is dropped; those after it wait out of order (bounded there).
    assert_eq!(fx.c.stats().ooo_dropped_segs, 1);
    // Reading makes room again: the retransmission fills the hole.
    while fx.c.recv().is_some() {}
    let g = fx.data(R1 + held as u32, L1, b"x");
    fx.recv(g);
    assert_eq!(fx.c.recv_queued(), 300 - held);
}

#[test]
fn bare_fin_is_taken_with_a_zero_window() {
    let mut fx = established();
    // Fill the 64 KiB window without reading.
    let mut s = R1;
    while s != R1 + 65536 {
        let n = (R1 + 65536 - s).min(1400);
        let g = fx.data(s, L1, &vec![7u8; n as usize]);
        fx.recv(g);
        s += n;
    }
    assert_eq!(fx.c.recv_queued(), 65536);
    fx.sent();
    // Data is refused, but a bare FIN at RCV.NXT needs no room.
    let g = fx.seg(s, L1, FIN | ACK, 1000);
    fx.recv(g);
    assert_eq!(fx.c.state(), State::CloseWait);
    assert!(fx.events().contains(Events::PEER_FIN));
    send!(fx, [out(L1, s + 1, ACK, 0)]);
}

#[test]
fn pure_acks_stay_inside_a_window_the_peer_shrank() {
    let mut fx = established();
    let g = fx.seg(R1, L1, ACK, 8); // 8 << 8 = 2048 bytes
    fx.recv(g);
    let p = fx.payload(&[7u8; 2000]);
    fx.c.send(p).unwrap();
    fx.c.flush(fx.now, &mut fx.out);
    assert_eq!(fx.sent().iter().map(|s| s.data_len()).sum::<usize>(), 2000);
    // The peer's buffer filled: it takes nothing more and closes its window. An ACK
    // with seq = snd_nxt would now lie beyond it, be found unacceptable and its
    // acknowledgement ignored (Linux answers with a duplicate ACK): the ACK for the
    // peer's data carries the window's end instead.
    let g = fx.seg(R1, L1, ACK, 0);
    fx.recv(g);
    for (i, bytes) in [b"abc", b"def"].iter().enumerate() {
        let mut g = fx.seg(R1 + 3 * i as u32, L1, ACK, 0);
        g.payload = Some(fx.payload(*bytes));
        fx.recv(g);
    }
    fx.c.flush(fx.now, &mut fx.out);
    let sent = fx.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0].seq, sent[0].ack), (seq(L1), seq(R1 + 6)));
}

#[test]
fn pure_acks_stay_inside_a_closed_window_with_little_outstanding() {
    // 200 bytes past a closed window are less than the peer's window unit (scale 8:
    // 256 bytes) but more than ours (scale 7): as Linux's `tcp_acceptable_seq`, the
    // ACK carries the window's end. Linux receivers drop a segment starting beyond
    // their window, acknowledgement and all, so an ACK at snd_nxt would never count
    // and both ends would wait for each other (seen in the lab with a server whose
    // application stopped reading).
    let mut fx = established();
    let p = fx.payload(&[7u8; 200]);
    fx.c.send(p).unwrap();
    fx.c.flush(fx.now, &mut fx.out);
    assert_eq!(fx.sent().iter().map(|s| s.data_len()).sum::<usize>(), 200);
    let g = fx.seg(R1, L1, ACK, 0);
    fx.recv(g);
    for (i, bytes) in [b"abc", b"def"].iter().enumerate() {
        let mut g = fx.seg(R1 + 3 * i as u32, L1, ACK, 0);
        g.payload = Some(fx.payload(*bytes));
        fx.recv(g);
    }
    fx.c.flush(fx.now, &mut fx.out);
    let sent = fx.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0].seq, sent[0].ack), (seq(L1), seq(R1 + 6)));
}

#[test]
fn shedding_drops_out_of_order_payload_but_takes_the_stream_s_next_bytes() {
    let mut fx = established();
    fx.c.set_shedding(true);
    let g = fx.data(R1 + 3, L1, b"def");
    fx.recv(g);
    let g = fx.data(R1, L1, b"abc");
    fx.recv(g);
    // "abc" arrived, "def" was not kept: it must come again.
    assert!(fx.c.recv().is_some_and(|p| p.bytes() == b"abc"));
    assert!(fx.c.recv().is_none());
    let g = fx.data(R1 + 3, L1, b"def");
    fx.recv(g);
    assert!(fx.c.recv().is_some_and(|p| p.bytes() == b"def"));
}

#[test]
fn a_pure_ack_from_behind_rcv_nxt_still_acknowledges() {
    let mut fx = established();
    let p = fx.payload(&[7u8; 100]);
    fx.c.send(p).unwrap();
    fx.c.flush(fx.now, &mut fx.out);
    fx.sent();
    // Data from the peer moves rcv_nxt on (its ACK is delayed: no window went out).
    let g = fx.data(R1, L1, b"abc");
    fx.recv(g);
    // The peer's pure ACK carries the end of the window as it saw it, before those
    // bytes (as a peer with data past a shrunk window does): it still acknowledges.
    let g = fx.seg(R1, L1 + 100, ACK, WIN);
    fx.recv(g);
    assert_eq!(fx.c.flight_bytes(), 0);
}

#[test]
fn zero_window_probe() {
    let mut fx = established();
    let g = fx.seg(R1, L1, ACK, 0);
    fx.recv(g);
    let p = fx.payload(b"data");
    fx.c.send(p).unwrap();
    fx.c.flush(fx.now, &mut fx.out);
    send!(fx, []);
    let at = fx.c.poll_at().unwrap();
    fx.tick(at.since(fx.now));
    send!(fx, [out(L1 - 1, R1, ACK, WIN)]);
    assert_eq!(fx.c.stats().zero_window_probes, 1);
    // The window opens: data flows, persist stops.
    let g = fx.seg(R1, L1, ACK, 10);
    fx.recv(g);
    assert_eq!(fx.sent()[0].data_len(), 4);
}

#[test]
fn keepalive_probes_then_times_out() {
    let cfg = Config {
        keepalive_idle: Some(Duration::from_secs(10)),
        keepalive_interval: Duration::from_secs(1),
        keepalive_probes: 2,
        ..config()
    };
    let mut fx = syn_received_with(cfg, syn_opts());
    fx.sent();
    let g = fx.seg(R1, L1, ACK, 1000);
    fx.recv(g);
    fx.tick(Duration::from_secs(10));
    send!(fx, [out(L1 - 1, R1, ACK, WIN)]);
    // An answer restarts the idle period.
    let g = fx.seg(R1, L1, ACK, 1000);
    fx.recv(g);
    assert_eq!(fx.c.poll_at(), Some(fx.now + Duration::from_secs(10)));
    fx.tick(Duration::from_secs(10));
    fx.tick(Duration::from_secs(1));
    assert_eq!(fx.sent().len(), 2);
    fx.tick(Duration::from_secs(1));
    send!(fx, [out(L1, 0, RST, 0)]);
    assert_eq!(fx.c.state(), State::Closed);
    assert!(fx.events().contains(Events::TIMED_OUT));
}

#[test]
fn rto_backs_off_and_karn_skips_retransmitted_samples() {
    let mut fx = established();
    let p = fx.payload(b"x");
    fx.c.send(p).unwrap();
    fx.c.flush(fx.now, &mut fx.out);
    fx.sent();
    // The handshake gave no sample (instant ACK counts as 0 ms → RTO = rto_min).
    let rto = fx.c.rto();
    fx.tick(rto);
    send!(
        fx,
        [{
            let mut s = out(L1, R1, ACK, WIN);
            s.payload = Some(fx.payload(b"x"));
            s
        }]
    );
    assert_eq!(fx.c.rto(), rto * 2);
    fx.tick(rto * 2);
    assert_eq!(fx.sent().len(), 1);
    assert_eq!(fx.c.rto(), rto * 4);
    assert_eq!(fx.c.stats().timeouts, 2);
    // The ACK of a retransmitted segment gives no sample; the backoff clears.
    fx.now = fx.now + Duration::from_secs(3);
    let g = fx.seg(R1, L1 + 1, ACK, 1000);
    fx.recv(g);
    assert_eq!(fx.c.rto(), rto);
}

fn send_segments(fx: &mut Fx, n: usize) -> Vec<SegmentOut<S>> {
    for _ in 0..n {
        let p = fx.payload(&[9u8; 1400]);
        fx.c.send(p).unwrap();
    }
    fx.c.flush(fx.now, &mut fx.out);
    fx.sent()
}

#[test]
fn fast_retransmit_after_three_duplicate_acks() {
    let mut fx = established();
    let sent = send_segments(&mut fx, 8);
    assert_eq!(sent.len(), 8);
    for _ in 0..3 {
        let g = fx.seg(R1, L1, ACK, 1000);
        fx.recv(g);
    }
    let rtx = fx.sent();
    assert_eq!(rtx.len(), 1);
    assert_eq!((rtx[0].seq, rtx[0].data_len()), (seq(L1), 1400));
    assert_eq!(fx.c.stats().fast_recoveries, 1);
    // A partial ACK retransmits the next hole (NewReno without SACK here: peer SACK on).
    let g = fx.seg(R1, L1 + 8 * 1400, ACK, 1000);
    fx.recv(g);
    assert_eq!(fx.c.cwnd(), 5600);
}

#[test]
fn rto_during_fast_recovery_does_not_reduce_ssthresh_twice() {
    let mut fx = established();
    assert_eq!(send_segments(&mut fx, 8).len(), 8);
    for _ in 0..3 {
        let g = fx.seg(R1, L1, ACK, 1000);
        fx.recv(g);
    }
    assert_eq!(fx.c.stats().fast_recoveries, 1);
    // Fast recovery set ssthresh = cwnd = 8 * 1400 / 2.
    assert_eq!(fx.c.cwnd(), 5600);
    for _ in 0..20 {
        if fx.c.stats().timeouts > 0 {
            break;
        }
        let rto = fx.c.rto();
        fx.tick(rto);
    }
    assert_eq!(fx.c.stats().timeouts, 1);
    assert_eq!(fx.c.cwnd(), 1400);
    fx.sent();
    // Slow start after the timeout runs up to the ssthresh fast recovery chose (RFC
    // 5681: FlightSize / 2; Linux keeps it), not to half of the reduced window.
    for i in 1..=3 {
        let g = fx.seg(R1, L1 + i * 1400, ACK, 1000);
        fx.recv(g);
    }
    assert_eq!(fx.c.cwnd(), 5600);
}

#[test]
fn newreno_partial_ack_retransmits_next_segment() {
    let mut fx = syn_received_with(
        config(),
        SegOptions {
            mss: Some(1400),
            ..SegOptions::default()
        },
    );
    fx.sent();
    let g = fx.seg(R1, L1, ACK, 60000);
    fx.recv(g);
    send_segments(&mut fx, 6);
    for _ in 0..3 {
        let g = fx.seg(R1, L1, ACK, 60000);
        fx.recv(g);
    }
    assert_eq!(fx.sent()[0].seq, seq(L1));
    let g = fx.seg(R1, L1 + 1400, ACK, 60000);
    fx.recv(g);
    let rtx = fx.sent();
    assert_eq!(rtx[0].seq, seq(L1 + 1400), "{rtx:?}");
}

#[test]
fn sack_recovery_retransmits_only_holes() {
    let mut fx = established();
    send_segments(&mut fx, 8);
    // Segments 1 and 3 lost; 2, 4..8 SACKed.
    let mut g = fx.seg(R1, L1, ACK, 1000);
    let s = |i: u32| seq(L1 + i * 1400);
    g.options.sack.push((s(4), s(8)));
    g.options.sack.push((s(1), s(2)));
    fx.recv(g);
    let rtx = fx.sent();
    let seqs: Vec<_> = rtx.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        vec![s(0), s(2), s(3)],
        "holes below 3 MSS of SACKed data"
    );
    assert_eq!(fx.c.stats().retransmits, 3);
}

#[test]
fn tail_loss_probe_retransmits_last_segment() {
    let mut fx = established();
    // Give the connection an RTT sample of 10 ms.
    let p = fx.payload(b"a");
    fx.c.send(p).unwrap();
    fx.c.flush(fx.now, &mut fx.out);
    fx.now = fx.now + Duration::from_millis(10);
    let g = fx.seg(R1, L1 + 1, ACK, 1000);
    fx.recv(g);
    fx.sent();
    send_segments(&mut fx, 3);
    let at = fx.c.poll_at().unwrap();
    assert!(at.since(fx.now) < fx.c.rto());
    fx.tick(at.since(fx.now));
    let probe = fx.sent();
    assert_eq!(probe.len(), 1);
    assert_eq!(probe[0].seq, seq(L1 + 1 + 2 * 1400));
    assert_eq!(fx.c.stats().tail_loss_probes, 1);
}

// ----- closing states -------------------------------------------------------------

#[test]
fn fin_wait_1_fin_and_ack_together_go_to_time_wait() {
    let mut fx = fin_wait_1();
    let g = fx.seg(R1, L1 + 1, FIN | ACK, 1000);
    fx.recv(g);
    send!(fx, [out(L1 + 1, R1 + 1, ACK, WIN)]);
    assert_eq!(fx.c.state(), State::TimeWait);
}

#[test]
fn fin_wait_1_retransmits_fin() {
    let mut fx = fin_wait_1();
    let rto = fx.c.rto();
    fx.tick(rto);
    send!(fx, [out(L1, R1, FIN | ACK, WIN)]);
}

#[test]
fn fin_wait_2_still_receives_data() {
    let mut fx = fin_wait_2();
    let g = fx.data(R1, L1 + 1, b"late");
    fx.recv(g);
    assert_eq!(fx.c.recv().unwrap().bytes(), b"late");
}

#[test]
fn closing_goes_to_time_wait_on_ack() {
    let mut fx = closing();
    let g = fx.seg(R1 + 1, L1 + 1, ACK, 1000);
    fx.recv(g);
    assert_eq!(fx.c.state(), State::TimeWait);
}

#[test]
fn time_wait_reacks_fin_and_expires() {
    let mut fx = time_wait();
    fx.tick(Duration::from_secs(30));
    let g = fx.seg(R1, L1 + 1, FIN | ACK, 1000);
    fx.recv(g);
    send!(fx, [out(L1 + 1, R1 + 1, ACK, WIN)]);
    // The retransmitted FIN restarted the 2 MSL timer.
    fx.tick(Duration::from_secs(59));
    assert_eq!(fx.c.state(), State::TimeWait);
    fx.tick(Duration::from_secs(1));
    assert_eq!(fx.c.state(), State::Closed);
    assert_eq!(fx.events(), Events::CLOSED);
    assert_eq!(fx.c.poll_at(), None);
}

#[test]
fn a_rst_in_time_wait_ends_the_connection_without_a_reset_event() {
    let mut fx = time_wait();
    let g = fx.seg(R1 + 1, 0, TcpFlags::RST, 0);
    fx.recv(g);
    assert_eq!(fx.c.state(), State::Closed);
    assert_eq!(fx.events(), Events::CLOSED);
}

#[test]
fn time_wait_accepts_a_newer_syn() {
    let fx = time_wait();
    let old = fx.seg(R1, 0, SYN, 1000);
    assert!(!fx.c.time_wait_accepts(&old));
    let new = fx.seg(R1 + 100_000, 0, SYN, 1000);
    assert!(fx.c.time_wait_accepts(&new));
}

#[test]
fn close_wait_can_still_send() {
    let mut fx = close_wait();
    let p = fx.payload(b"bye");
    fx.c.send(p).unwrap();
    fx.c.flush(fx.now, &mut fx.out);
    assert_eq!(fx.sent()[0].data_len(), 3);
}

#[test]
fn last_ack_closes_on_ack() {
    let mut fx = last_ack();
    let g = fx.seg(R1 + 1, L1 + 1, ACK, 1000);
    fx.recv(g);
    assert_eq!(fx.c.state(), State::Closed);
    assert_eq!(fx.events(), Events::CLOSED);
}

#[test]
fn abort_sends_rst() {
    let mut fx = established();
    fx.c.abort(&mut fx.out);
    send!(fx, [out(L1, 0, RST, 0)]);
    assert_eq!(fx.c.state(), State::Closed);
}

// ----- timestamps -----------------------------------------------------------------

fn established_ts() -> Fx {
    let cfg = Config {
        timestamps: true,
        ..config()
    };
    let mut opts = syn_opts();
    opts.timestamps = Some((100, 0));
    let mut fx = syn_received_with(cfg, opts);
    let synack = fx.sent();
    assert_eq!(synack[0].options.as_bytes().len(), 20);
    let mut g = fx.seg(R1, L1, ACK, 1000);
    g.options.timestamps = Some((101, 1));
    fx.recv(g);
    assert_eq!(fx.c.sack_and_timestamps(), (true, true));
    fx
}

#[test]
fn paws_drops_old_timestamps() {
    let mut fx = established_ts();
    let mut g = fx.data(R1, L1, b"old");
    g.options.timestamps = Some((50, 1));
    fx.recv(g);
    let sent = fx.sent();
    assert_eq!(sent.len(), 1, "duplicate ACK for the PAWS drop");
    assert_eq!(fx.c.stats().paws_drops, 1);
    assert_eq!(fx.c.recv_queued(), 0);
    // A RST is exempt from PAWS.
    let mut g = fx.seg(R1, 0, RST, 0);
    g.options.timestamps = Some((50, 1));
    fx.recv(g);
    assert_eq!(fx.c.state(), State::Closed);
}

#[test]
fn timestamps_echo_ts_recent() {
    let mut fx = established_ts();
    let mut g = fx.data(R1, L1, b"x");
    g.options.timestamps = Some((777, 1));
    fx.recv(g);
    fx.tick(Duration::from_millis(40));
    let sent = fx.sent();
    let mut want = OptionsBuf::new();
    want.push_timestamps(fx.now.as_millis() as u32, 777, false)
        .unwrap();
    assert_eq!(sent[0].options.as_bytes(), want.as_bytes());
}

#[test]
fn time_wait_with_timestamps_accepts_newer_tsval_even_with_older_seq() {
    let mut fx = established_ts();
    let mut fin = fx.seg(R1, L1, FIN | ACK, 1000);
    fin.options.timestamps = Some((200, 1));
    fx.recv(fin);
    fx.c.close();
    fx.c.flush(fx.now, &mut fx.out);
    let mut ack = fx.seg(R1 + 1, L1 + 1, ACK, 1000);
    ack.options.timestamps = Some((201, 1));
    fx.recv(ack);
    assert_eq!(fx.c.state(), State::Closed, "passive closer ends in CLOSED");
    // The active closer's view: drive a second fixture into TIME-WAIT.
    let mut fx = established_ts();
    fx.c.close();
    fx.c.flush(fx.now, &mut fx.out);
    let mut fin_ack = fx.seg(R1, L1 + 1, FIN | ACK, 1000);
    fin_ack.options.timestamps = Some((300, 1));
    fx.recv(fin_ack);
    assert_eq!(fx.c.state(), State::TimeWait);
    let mut old_ts = fx.seg(R1 + 5_000_000, 0, SYN, 1000);
    old_ts.options.timestamps = Some((299, 0));
    assert!(!fx.c.time_wait_accepts(&old_ts));
    let mut new_ts = fx.seg(R1 - 10, 0, SYN, 1000);
    new_ts.options.timestamps = Some((301, 0));
    assert!(fx.c.time_wait_accepts(&new_ts));
}

#[test]
fn application_limited_window_does_not_grow_and_idle_restarts() {
    let mut fx = established();
    let iw = fx.c.cwnd();
    assert_eq!(iw, 10 * 1400);
    for i in 0..5 {
        let p = fx.payload(b"tiny");
        fx.c.send(p).unwrap();
        fx.c.flush(fx.now, &mut fx.out);
        let g = fx.seg(R1, L1 + 4 * (i + 1), ACK, 1000);
        fx.recv(g);
    }
    assert_eq!(fx.c.cwnd(), iw, "app-limited ACKs leave cwnd alone");
    fx.sent();
    // A window-limited flight grows it (slow start).
    let sent = send_segments(&mut fx, 10);
    assert_eq!(sent.len(), 10);
    let g = fx.seg(R1, L1 + 20 + 14_000, ACK, 1000);
    fx.recv(g);
    assert!(fx.c.cwnd() > iw);
    // After an idle RTO the window restarts at the initial window.
    fx.sent();
    fx.now = fx.now + Duration::from_secs(5);
    send_segments(&mut fx, 20);
    assert_eq!(fx.c.cwnd(), iw);
}
