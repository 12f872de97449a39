//! MP_JOIN handshakes per second on one core: two MPTCP stacks (client and listener)
//! in one thread exchange segments directly (no frames, no ports), so the figure is the
//! protocol work of both ends: token lookup, nonces, the truncated and full HMACs,
//! subflow creation and the fourth ACK.
//!
//! Each iteration opens one MPTCP connection, joins 8 subflows to it (Linux's most),
//! then aborts it (MP_FASTCLOSE, RSTs): criterion's element throughput counts the 8
//! joins, so the connection's own setup and teardown (and the timer runs of a worker)
//! are included, as in
//! `bench/scripts/join_rate_kernel.py --joins-per-conn 8`, the kernel figure it is
//! compared with.

use criterion::{criterion_main, Criterion, Throughput};
use mpgw_bench::join_pair::{Pair, JOINS};

fn joins(c: &mut Criterion) {
    let mut pair = Pair::new();
    // Every join of a round completes (the limit is exactly JOINS).
    assert_eq!(pair.round(|_| ()), u64::from(JOINS));
    assert!(pair.is_empty(), "a round leaves nothing");
    let mut g = c.benchmark_group("mptcp_join");
    g.throughput(Throughput::Elements(u64::from(JOINS)));
    g.bench_function("8_joins_per_connection", |b| b.iter(|| pair.round(|_| ())));
    g.finish();
}

mod group {
    criterion::criterion_group!(mptcp_join, super::joins);
}
criterion_main!(group::mptcp_join);
