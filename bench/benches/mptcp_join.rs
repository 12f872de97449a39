//! MP_JOIN handshakes per second on one core: two MPTCP stacks (client and listener)
//! in one thread exchange segments directly (no frames, no ports): token lookup,
//! nonces, the truncated and full HMACs, subflow creation and the fourth ACK.
//!
//! Each iteration opens one MPTCP connection, joins 8 subflows to it (Linux's most),
//! then aborts it (MP_FASTCLOSE, RSTs): criterion's element throughput counts the 8
//! joins, so the connection's own setup and teardown (and the timer runs of a worker)
//! are included, as in
//! `bench/scripts/join_rate_kernel.py --joins-per-conn 8`, the kernel figure it is
//! compared with. Three figures from the same workload:
//!
//! - `both_ends`: wall time of the whole exchange, both stacks on one core;
//! - `passive_side`: only the time inside the listening stack's calls (SYN in →
//!   SYN/ACK out, third ACK in → fourth ACK out, its timers, events and teardown, its
//!   share of the connection's setup and MP_FASTCLOSE): what a concentrator's core
//!   spends per join. Measured with the TSC around every call
//!   ([`mpgw_bench::join_pair::Cost`]), the meter's own cost per call subtracted;
//! - `active_side`: the same for the connecting stack.
//!
//! Neither side's figure includes the bench's conversion of one stack's segments
//! into the other's input (a port's parse and emit, measured in `benches/wire.rs`).

use criterion::{criterion_main, Criterion, Throughput};
use mpgw_bench::join_pair::{region_overhead, ticks, Cost, Pair, Side, JOINS};
use std::time::{Duration, Instant};

/// Runs `iters` metered rounds; returns `side`'s time and the whole cost.
fn side_time(pair: &mut Pair, iters: u64, side: Side, per_region: f64) -> (Duration, Cost) {
    pair.set_metered(true);
    let wall = Instant::now();
    let t0 = ticks();
    for _ in 0..iters {
        pair.round(|_| ());
    }
    let total = ticks().wrapping_sub(t0) as f64;
    let ns = wall.elapsed().as_nanos() as f64;
    let cost = pair.take_cost();
    pair.set_metered(false);
    let side_ns = cost.net(side, per_region) * ns / total.max(1.0);
    (Duration::from_nanos(side_ns as u64), cost)
}

fn joins(c: &mut Criterion) {
    let mut pair = Pair::new();
    // Every join of a round completes (the limit is exactly JOINS).
    assert_eq!(pair.round(|_| ()), u64::from(JOINS));
    assert!(pair.is_empty(), "a round leaves nothing");
    let per_region = region_overhead();
    let mut g = c.benchmark_group("mptcp_join");
    g.throughput(Throughput::Elements(u64::from(JOINS)));
    g.bench_function("both_ends", |b| b.iter(|| pair.round(|_| ())));
    let mut split = Cost::default();
    let mut rounds = 0;
    for (name, side) in [
        ("passive_side", Side::Server),
        ("active_side", Side::Client),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let (t, cost) = side_time(&mut pair, iters, side, per_region);
                split += cost;
                rounds += iters;
                t
            })
        });
    }
    g.finish();
    assert!(pair.is_empty(), "metering leaves nothing behind");
    if rounds == 0 {
        // The metered benchmarks were filtered out.
        return;
    }
    let joins = (rounds * u64::from(JOINS)) as f64;
    let per_join = |side| split.net(side, per_region) / joins;
    println!(
        "mptcp_join: ticks per join inside the passive side {:.0}, the active side {:.0} \
         (ratio {:.2}); meter regions per join {:.2} / {:.2} at {per_region:.1} ticks each, \
         subtracted",
        per_join(Side::Server),
        per_join(Side::Client),
        per_join(Side::Server) / per_join(Side::Client).max(1.0),
        split.server_regions as f64 / joins,
        split.client_regions as f64 / joins,
    );
}

mod group {
    criterion::criterion_group!(mptcp_join, super::joins);
}
criterion_main!(group::mptcp_join);
