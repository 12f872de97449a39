#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Model test of the DSN reassembly: one byte stream, cut into segments carried by
//! several subflows, interleaved, duplicated and overlapped, against a per-byte reference
//! (a "have" bitmap and the stream itself): identical output bytes, identical DATA_ACK,
//! window and counters, memory within the bound, anywhere in the DSN space.

use dataplane::mptcp::reassembly::{Limits, PushResult, Reassembly};
use dataplane::port::heap::{HeapPool, HeapShared};
use dataplane::port::{PacketBuf, SharedBuf};
use dataplane::seq::Dsn;
use dataplane::tcp::Payload;
use proptest::prelude::*;

/// Stream length: fits one heap buffer, so every payload is a slice of it.
const LEN: usize = 1500;

#[derive(Clone, Debug)]
enum Op {
    /// Bytes `[off, off + len)` of the stream arrive (clipped to the stream).
    Push { off: usize, len: usize },
    /// The reader takes one in-order payload.
    Pop,
    /// The receiver offers this much window.
    Window(u32),
    /// The DATA_FIN (at the stream's end) arrives.
    Fin,
}

/// The reference: per-byte state, in offsets from the first DSN.
struct Model {
    have: Vec<bool>,
    /// Bytes read.
    read: usize,
    /// The DATA_ACK's offset (one past the DATA_FIN once reached).
    rcv: usize,
    /// The right edge's offset.
    right: usize,
    fin: bool,
    buffer: usize,
    duplicate: u64,
    beyond: u64,
}

impl Model {
    fn new(buffer: u32) -> Self {
        Model {
            have: vec![false; LEN],
            read: 0,
            rcv: 0,
            right: buffer as usize,
            fin: false,
            buffer: buffer as usize,
            duplicate: 0,
            beyond: 0,
        }
    }

    fn queued(&self) -> usize {
        self.have[self.read.min(LEN)..]
            .iter()
            .filter(|h| **h)
            .count()
    }

    fn limit(&self) -> usize {
        if self.fin {
            self.right.min(LEN)
        } else {
            self.right
        }
    }

    fn push(&mut self, off: usize, len: usize) -> PushResult {
        let mut res = PushResult::default();
        for pos in off..off + len {
            if pos < self.rcv || self.have[pos] {
                res.duplicate += 1;
            } else if pos >= self.limit() {
                res.dropped += 1;
            } else {
                res.stored += 1;
                self.have[pos] = true;
            }
        }
        self.duplicate += res.duplicate as u64;
        self.beyond += res.dropped as u64;
        let before = self.rcv;
        while self.rcv < LEN && self.have[self.rcv] {
            self.rcv += 1;
        }
        res.advanced = self.rcv != before;
        self.reach_fin();
        res
    }

    fn reach_fin(&mut self) {
        if self.fin && self.rcv == LEN {
            self.rcv = LEN + 1;
            self.right = self.right.max(self.rcv);
        }
    }

    fn window(&mut self, bytes: u32) {
        // Held out-of-order bytes lie inside the window: only unread in-order bytes
        // take room from it.
        let ready = self.rcv.min(LEN).saturating_sub(self.read);
        let offer = (bytes as usize).min(self.buffer - ready);
        self.right = self.right.max(self.rcv + offer);
    }
}

fn stream_buf(pool: &HeapPool, seed: u8) -> (Vec<u8>, HeapShared) {
    let bytes: Vec<u8> = (0..LEN)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let buf = pool.alloc_from(&bytes).unwrap().into_shared();
    (bytes, buf)
}

/// Runs `ops`, then delivers the whole stream in order with the window open, checking
/// every step against the model (`exact`: the piece caps are never hit, so the counters
/// must match the model byte for byte).
fn check(start: u64, limits: Limits, seed: u8, ops: &[Op], exact: bool) {
    let pool = HeapPool::new(1);
    let (bytes, buf) = stream_buf(&pool, seed);
    let start = Dsn::new(start);
    let mut r = Reassembly::new(start, limits);
    let mut m = Model::new(limits.buffer);
    let mut out = Vec::new();
    let mut pushed = 0u64;
    let mut apply = |op: &Op, r: &mut Reassembly<HeapShared>, m: &mut Model, out: &mut Vec<u8>| {
        match *op {
            Op::Push { off, len } => {
                let off = off % LEN;
                let len = len.min(LEN - off);
                let p = Payload::slice(buf.clone(), off, len).unwrap();
                let got = r.push(start + off as u64, p);
                let want = m.push(off, len);
                pushed += len as u64;
                assert_eq!(got.stored + got.duplicate + got.dropped, len);
                if exact {
                    assert_eq!(got, want, "push {off}+{len}");
                }
            }
            Op::Pop => {
                if let Some(p) = r.pop() {
                    assert!(!p.is_empty());
                    out.extend_from_slice(p.bytes());
                    m.read += p.len();
                }
            }
            Op::Window(w) => {
                r.set_window(w);
                m.window(w);
            }
            Op::Fin => {
                r.set_fin(start + LEN as u64).unwrap();
                m.fin = true;
                m.reach_fin();
            }
        }
        assert!(r.queued_bytes() <= limits.buffer as usize);
        assert!(r.pieces() <= limits.max_pieces);
        assert!(r.right_edge().offset_from(start) <= (m.read + limits.buffer as usize) as u64 + 1);
        if exact {
            assert_eq!(r.rcv_nxt(), start + m.rcv as u64);
            assert_eq!(r.right_edge(), start + m.right as u64);
            assert_eq!(r.queued_bytes(), m.queued());
            assert_eq!(r.stats().duplicate_bytes, m.duplicate);
            assert_eq!(r.stats().beyond_window_bytes, m.beyond);
        }
    };
    for op in ops {
        apply(op, &mut r, &mut m, &mut out);
    }
    // Drain: read everything, open the window, resend the stream in order, DATA_FIN.
    let mut off = 0;
    while off < LEN {
        apply(&Op::Pop, &mut r, &mut m, &mut out);
        apply(&Op::Window(u32::MAX), &mut r, &mut m, &mut out);
        apply(&Op::Push { off, len: 97 }, &mut r, &mut m, &mut out);
        off = (r.rcv_nxt().offset_from(start) as usize).min(LEN);
        off = off.max(m.read.min(LEN));
    }
    apply(&Op::Fin, &mut r, &mut m, &mut out);
    while r.pop().map(|p| out.extend_from_slice(p.bytes())).is_some() {}
    assert_eq!(out, bytes, "output differs from the stream");
    assert!(r.fin_reached());
    assert_eq!(r.rcv_nxt(), start + LEN as u64 + 1);
    assert_eq!(r.queued_bytes(), 0);
    let s = r.stats();
    assert_eq!(
        pushed,
        LEN as u64 + s.duplicate_bytes + s.beyond_window_bytes + s.too_many_holes_bytes
    );
    drop(r);
    assert_eq!(buf.refcount(), 1, "a payload reference leaked");
}

/// Starts anywhere, with a bias to the last KiB before the 64-bit wrap.
fn start() -> impl Strategy<Value = u64> {
    prop_oneof![any::<u64>(), (0u64..2048).prop_map(|d| u64::MAX - d)]
}

fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..LEN, 0usize..300).prop_map(|(off, len)| Op::Push { off, len }),
        3 => Just(Op::Pop),
        1 => (0u32..2000).prop_map(Op::Window),
        1 => Just(Op::Fin),
    ]
}

/// The stream cut into segments of 1..=200 bytes, dealt to `subflows` subflows; each
/// subflow delivers its segments in order, the subflows interleave at random, some
/// segments are re-sent with shifted edges (reinjection: duplicates and overlaps), and
/// the reader reads now and then.
fn subflow_ops(subflows: usize) -> impl Strategy<Value = Vec<Op>> {
    (
        prop::collection::vec(1usize..200, 1..40),
        prop::collection::vec((0..subflows, any::<bool>(), -40isize..40, 0u8..4), 1..200),
    )
        .prop_map(move |(cuts, picks)| {
            let mut segs: Vec<Vec<(usize, usize)>> = vec![Vec::new(); subflows];
            let mut off = 0;
            for (i, len) in cuts.iter().cycle().enumerate() {
                if off >= LEN {
                    break;
                }
                let len = (*len).min(LEN - off);
                segs[i % subflows].push((off, len));
                off += len;
            }
            let mut next = vec![0usize; subflows];
            let mut ops = Vec::new();
            for (sf, resend, shift, read) in picks {
                let Some(&(off, len)) = segs[sf].get(next[sf]) else {
                    continue;
                };
                next[sf] += 1;
                ops.push(Op::Push { off, len });
                if resend {
                    let off = off.saturating_add_signed(shift).min(LEN - 1);
                    ops.push(Op::Push { off, len });
                }
                if read == 0 {
                    ops.push(Op::Pop);
                    ops.push(Op::Window(u32::MAX));
                }
            }
            ops
        })
}

fn roomy(buffer: u32) -> Limits {
    Limits {
        buffer,
        max_ooo: 4096,
        max_pieces: 8192,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn subflows_match_the_model(
        start in start(),
        seed: u8,
        buffer in 200u32..3000,
        ops in (1usize..=8).prop_flat_map(subflow_ops),
    ) {
        check(start, roomy(buffer), seed, &ops, true);
    }

    #[test]
    fn arbitrary_pushes_match_the_model(
        start in start(),
        seed: u8,
        buffer in 1u32..3000,
        ops in prop::collection::vec(any_op(), 0..200),
    ) {
        check(start, roomy(buffer), seed, &ops, true);
    }

    #[test]
    fn piece_caps_hold_and_output_stays_exact(
        start in start(),
        seed: u8,
        buffer in 1u32..3000,
        max_ooo in 0usize..6,
        max_pieces in 1usize..12,
        ops in prop::collection::vec(any_op(), 0..200),
    ) {
        check(start, Limits { buffer, max_ooo, max_pieces }, seed, &ops, false);
    }
}
