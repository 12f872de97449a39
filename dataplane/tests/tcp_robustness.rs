#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Hostile input: random segments (sequence and ACK numbers near and far, any flags,
//! SACK blocks, windows, payloads) into a table with live connections, interleaved
//! with timers and application calls. Nothing panics, and once everything is torn down
//! no buffer is left.

use dataplane::port::heap::{HeapPool, HeapShared};
use dataplane::port::PacketBuf;
use dataplane::seq::TcpSeq;
use dataplane::tcp::{
    FourTuple, Instant, NoHook, Payload, Secrets, SegmentIn, SegmentOut, Table, TableConfig,
};
use dataplane::wire::tcp::TcpFlags;
use proptest::prelude::*;
use std::time::Duration;

type S = HeapShared;

#[derive(Clone, Debug)]
enum Step {
    Segment {
        port: u16,
        seq_delta: i64,
        ack_delta: i64,
        flags: u8,
        window: u16,
        len: usize,
        sack: Vec<(i64, i64)>,
        ts: Option<(u32, u32)>,
    },
    Advance(u64),
    AppSend(u16, usize),
    AppRead(u16),
    AppClose(u16),
}

fn step() -> impl Strategy<Value = Step> {
    let near = prop_oneof![-3000i64..3000, any::<u32>().prop_map(i64::from)];
    prop_oneof![
        6 => (0u16..3, near.clone(), near, any::<u8>(), any::<u16>(), 0usize..1500,
              prop::collection::vec((-5000i64..5000, -5000i64..5000), 0..4),
              prop::option::of((any::<u32>(), any::<u32>())))
            .prop_map(|(port, seq_delta, ack_delta, flags, window, len, sack, ts)| Step::Segment {
                port, seq_delta, ack_delta, flags, window, len, sack, ts
            }),
        1 => (0u64..5_000).prop_map(Step::Advance),
        1 => (0u16..3, 0usize..5000).prop_map(|(p, n)| Step::AppSend(p, n)),
        1 => (0u16..3).prop_map(Step::AppRead),
        1 => (0u16..3).prop_map(Step::AppClose),
    ]
}

fn tuple(port: u16) -> FourTuple {
    FourTuple {
        local: "192.0.2.1:7".parse().unwrap(),
        remote: format!("192.0.2.2:{}", 1000 + port).parse().unwrap(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn random_segments_never_panic_or_leak(steps in prop::collection::vec(step(), 1..300)) {
        let pool = HeapPool::new(4096);
        let cfg = TableConfig { cookie_watermark: 2, max_half_open: 3, ..TableConfig::default() };
        let mut now = Instant::from_millis(1);
        let mut t: Table<S, NoHook> = Table::new(cfg, Secrets::new([9; 32]), now);
        t.listen("192.0.2.1:7".parse().unwrap());
        let mut out: Vec<(FourTuple, SegmentOut<S>)> = Vec::new();
        // The last segment we sent on each tuple anchors "near" sequence numbers.
        let mut anchor = [(TcpSeq::new(1), TcpSeq::new(1)); 3];
        for s in steps {
            match s {
                Step::Segment { port, seq_delta, ack_delta, flags, window, len, sack, ts } => {
                    let (our_seq, our_ack) = anchor[port as usize];
                    let seq = our_ack + seq_delta as u32;
                    let ack = our_seq + ack_delta as u32;
                    let mut g = SegmentIn::bare(seq, ack, TcpFlags(flags), window);
                    if len > 0 {
                        let b = pool.alloc_from(&vec![7u8; len]).unwrap().into_shared();
                        g.payload = Some(Payload::new(b));
                    }
                    for (l, r) in sack {
                        g.options.sack.push((our_seq + l as u32, our_seq + r as u32));
                    }
                    g.options.timestamps = ts;
                    t.on_segment(tuple(port), g, now, &mut out);
                }
                Step::Advance(ms) => {
                    now = now + Duration::from_millis(ms);
                    t.on_timers(now, &mut out);
                }
                Step::AppSend(p, n) => {
                    if let Some(id) = t.lookup(&tuple(p)) {
                        if n > 0 {
                            let b = pool.alloc_from(&vec![1u8; n.min(2000)]).unwrap().into_shared();
                            let _ = t.get_mut(id).unwrap().send(Payload::new(b));
                        }
                        t.flush(id, now, &mut out);
                    }
                }
                Step::AppRead(p) => {
                    if let Some(id) = t.lookup(&tuple(p)) {
                        while t.get_mut(id).unwrap().recv().is_some() {}
                        t.flush(id, now, &mut out);
                    }
                }
                Step::AppClose(p) => {
                    if let Some(id) = t.lookup(&tuple(p)) {
                        t.get_mut(id).unwrap().close();
                        t.flush(id, now, &mut out);
                    }
                }
            }
            while let Some(id) = t.next_ready() {
                t.get_mut(id).unwrap().take_events();
                t.flush(id, now, &mut out);
            }
            for (tu, seg) in out.drain(..) {
                let port = tu.remote.port() - 1000;
                if let Some(a) = anchor.get_mut(port as usize) {
                    *a = (seg.seq, seg.ack);
                }
            }
        }
        // Tear down: abort everything, then nothing may hold a buffer.
        for p in 0..3 {
            if let Some(id) = t.lookup(&tuple(p)) {
                t.get_mut(id).unwrap().abort(&mut out);
                t.flush(id, now, &mut out);
            }
        }
        while let Some(id) = t.next_ready() {
            t.flush(id, now, &mut out);
        }
        out.clear();
        prop_assert!(t.is_empty());
        prop_assert_eq!(pool.in_use(), 0);
    }
}
