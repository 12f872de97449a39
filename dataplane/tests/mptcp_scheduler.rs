#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The schedulers' decisions, backup semantics for each.

use dataplane::mptcp::scheduler::{
    Blest, RoundRobin, Scheduler, Selection, SendContext, SubflowView,
};

fn sf(id: u32, srtt_us: u32, space: u32, backup: bool) -> SubflowView {
    SubflowView {
        id,
        srtt_us,
        cwnd: 10 * 1448,
        inflight: 0,
        space,
        mss: 1448,
        backup,
        usable: true,
    }
}

fn down(mut s: SubflowView) -> SubflowView {
    s.usable = false;
    s
}

const CTX: SendContext = SendContext {
    send_window: 1 << 20,
    seg_len: 1448,
};

fn all() -> [Scheduler; 4] {
    [
        Scheduler::Default,
        Scheduler::RoundRobin(RoundRobin::default()),
        Scheduler::Redundant,
        Scheduler::Blest(Blest::default()),
    ]
}

fn picks(s: &mut Scheduler, subflows: &[SubflowView]) -> Vec<usize> {
    s.pick(subflows, &CTX).iter().collect()
}

#[test]
fn default_picks_the_lowest_rtt_with_space() {
    let subs = [
        sf(1, 30_000, 5000, false),
        sf(2, 10_000, 5000, false),
        sf(3, 1000, 5000, true),
    ];
    assert_eq!(picks(&mut Scheduler::Default, &subs), [1]);
    let subs = [sf(1, 30_000, 5000, false), sf(2, 10_000, 0, false)];
    assert_eq!(picks(&mut Scheduler::Default, &subs), [0]);
}

#[test]
fn every_scheduler_ignores_backups_while_a_regular_subflow_is_usable() {
    // The regular subflow has no window: wait rather than use the (faster) backup.
    let subs = [sf(1, 50_000, 0, false), sf(2, 1000, 5000, true)];
    for mut s in all() {
        assert_eq!(s.pick(&subs, &CTX), Selection::NONE, "{s:?}");
    }
    let subs = [sf(1, 50_000, 5000, false), sf(2, 1000, 5000, true)];
    for mut s in all() {
        assert_eq!(picks(&mut s, &subs), [0], "{s:?}");
    }
}

#[test]
fn every_scheduler_falls_back_to_backups_when_no_regular_subflow_is_usable() {
    let subs = [
        down(sf(1, 1000, 5000, false)),
        sf(2, 20_000, 5000, true),
        sf(3, 10_000, 5000, true),
    ];
    let mut d = Scheduler::Default;
    assert_eq!(picks(&mut d, &subs), [2]);
    let mut r = Scheduler::Redundant;
    assert_eq!(picks(&mut r, &subs), [1, 2]);
    let mut rr = Scheduler::RoundRobin(RoundRobin::default());
    assert_eq!(picks(&mut rr, &subs), [1]);
    assert_eq!(picks(&mut rr, &subs), [2]);
    let mut b = Scheduler::Blest(Blest::default());
    assert_eq!(picks(&mut b, &subs), [2]);
}

#[test]
fn nothing_usable_means_wait() {
    let subs = [
        down(sf(1, 1000, 5000, false)),
        down(sf(2, 1000, 5000, true)),
    ];
    for mut s in all() {
        assert!(s.pick(&subs, &CTX).is_empty(), "{s:?}");
        assert!(s.pick(&[], &CTX).first().is_none());
    }
}

#[test]
fn roundrobin_cycles_by_id_and_skips_full_subflows() {
    let mut subs = [
        sf(7, 1000, 5000, false),
        sf(3, 1000, 5000, false),
        sf(5, 1000, 5000, false),
    ];
    let mut rr = Scheduler::RoundRobin(RoundRobin::default());
    let order: Vec<u32> = (0..4).map(|_| subs[picks(&mut rr, &subs)[0]].id).collect();
    assert_eq!(order, [3, 5, 7, 3]);
    subs[2].space = 0;
    assert_eq!(subs[picks(&mut rr, &subs)[0]].id, 7);
    assert_eq!(subs[picks(&mut rr, &subs)[0]].id, 3);
}

#[test]
fn redundant_uses_every_regular_subflow_with_space() {
    let subs = [
        sf(1, 1000, 5000, false),
        sf(2, 9000, 0, false),
        sf(3, 5000, 5000, false),
        sf(4, 10, 5000, true),
    ];
    assert_eq!(picks(&mut Scheduler::Redundant, &subs), [0, 2]);
}

#[test]
fn blest_waits_for_the_fast_path_when_the_slow_one_would_block() {
    // Fast: 10 ms, 10 segments, no space. Slow: 100 ms. During one slow RTT the fast
    // subflow gets 10 rounds: 1448 · 10 · (10 + 4.5) = 209 960 bytes.
    let mut slow = sf(2, 100_000, 5000, false);
    slow.inflight = 10_000;
    let subs = [sf(1, 10_000, 0, false), slow];
    let mut b = Blest::default();
    let tight = SendContext {
        send_window: 200_000,
        seg_len: 1448,
    };
    let roomy = SendContext {
        send_window: 1 << 20,
        seg_len: 1448,
    };
    let mut s = Scheduler::Blest(b);
    assert!(s.pick(&subs, &tight).is_empty());
    assert_eq!(s.pick(&subs, &roomy).first(), Some(1));
    // With a window of 270 000, 258 552 bytes are left: enough for 209 960 at λ = 1,
    // not for 272 948 at λ = 1.3.
    let edge = SendContext {
        send_window: 270_000,
        seg_len: 1448,
    };
    assert_eq!(Scheduler::Blest(b).pick(&subs, &edge).first(), Some(1));
    for _ in 0..20 {
        b.adapt(true);
    }
    assert!((b.lambda() - Blest::LAMBDA_MAX).abs() < 1e-9);
    assert!(Scheduler::Blest(b).pick(&subs, &edge).is_empty());
    for _ in 0..100 {
        b.adapt(false);
    }
    assert!((b.lambda() - Blest::LAMBDA_MIN).abs() < 1e-9);
    // The fast path has space: BLEST is the default scheduler.
    let subs = [sf(1, 10_000, 5000, false), slow];
    assert_eq!(Scheduler::Blest(b).pick(&subs, &tight).first(), Some(0));
}

fn any_view() -> impl proptest::strategy::Strategy<Value = SubflowView> {
    use proptest::prelude::*;
    (
        0u32..8,
        0u32..200_000,
        0u32..100_000,
        0u32..100_000,
        0u32..3000,
        0u32..2000,
    )
        .prop_flat_map(|(id, srtt_us, cwnd, inflight, space, mss)| {
            (any::<bool>(), any::<bool>()).prop_map(move |(backup, usable)| SubflowView {
                id,
                srtt_us,
                cwnd,
                inflight,
                space,
                mss,
                backup,
                usable,
            })
        })
}

proptest::proptest! {
    /// Whatever the views, every scheduler picks only usable subflows with space, of
    /// the preferred class (backups only when no regular subflow is usable), and never
    /// panics.
    #[test]
    fn picks_respect_usability_and_backup_class(
        subs in proptest::collection::vec(any_view(), 0..40),
        send_window in 0u64..2_000_000,
        seg_len in 0u32..2000,
    ) {
        let regular_usable = subs.iter().take(32).any(|s| s.usable && !s.backup);
        let ctx = SendContext { send_window, seg_len };
        for mut s in all() {
            for _ in 0..3 {
                for i in s.pick(&subs, &ctx).iter() {
                    let v = subs[i];
                    proptest::prop_assert!(v.usable && v.space > 0);
                    proptest::prop_assert_eq!(v.backup, !regular_usable);
                }
            }
        }
    }
}
