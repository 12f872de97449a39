//! Relayed connections per second of one gateway core, without a kernel in the path:
//! the gateway's worker loop relays MPTCP clients (each connection joins two more
//! subflows, sends one byte and closes once the server, which closes first, answered
//! with its end of data) to a plain TCP server over in-memory ports
//! (`mpgw_bench::relay_rig`). Only the time inside the gateway's polls counts: the
//! figure is what a gateway core spends per relayed connection when its NIC costs
//! no more than the in-memory link. The lab's `relay_vs_proxies.sh` measures the same
//! workload through the kernel's veths (where `net_af_packet`'s system calls and
//! copies are most of the gateway core's time).
//!
//!     cargo run --release -p mpgw-bench --bin relay_cps -- --seconds 10

use clap::Parser;
use dataplane::stats::Counter;
use mpgw_bench::join_pair::ticks;
use mpgw_bench::relay_rig::Rig;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// Wall seconds to measure (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Connections the client keeps in flight (the lab's load: 32).
    #[arg(long, default_value_t = 32)]
    parallel: usize,
    /// Connections completed before measuring (tables, pools and caches warm).
    #[arg(long, default_value_t = 20_000)]
    warmup: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut rig = Rig::new(args.parallel);
    while rig.tally().completed < args.warmup {
        rig.step();
    }
    let (t0, g0, wall) = (rig.tally(), rig.gateway_ticks(), Instant::now());
    let (rx0, tx0) = (
        rig.counter(Counter::RxPackets),
        rig.counter(Counter::TxPackets),
    );
    let joins0 = rig.counter(Counter::MptcpJoins);
    let tsc0 = ticks();
    while wall.elapsed().as_secs_f64() < args.seconds {
        for _ in 0..1000 {
            rig.step();
        }
    }
    let ns = wall.elapsed().as_nanos() as f64;
    let tsc = ticks().wrapping_sub(tsc0) as f64;
    let t = rig.tally();
    let conns = (t.completed - t0.completed) as f64;
    anyhow::ensure!(conns > 0.0, "no connection completed");
    let gw_ns = (rig.gateway_ticks() - g0) as f64 * ns / tsc;
    let per_conn = gw_ns / conns;
    let frames =
        (rig.counter(Counter::RxPackets) - rx0 + rig.counter(Counter::TxPackets) - tx0) as f64;
    println!(
        "relayed connections: {conns:.0} in {:.1} s wall ({:.0}/s with both hosts on the same core)",
        ns / 1e9,
        conns * 1e9 / ns
    );
    println!(
        "gateway: {:.2} µs per connection = {:.0} connections per gateway core-second ({:.0} % of the wall time in its polls)",
        per_conn / 1e3,
        1e9 / per_conn,
        100.0 * gw_ns / ns
    );
    println!(
        "per connection at the gateway: {:.1} frames (rx+tx), {:.2} joins; failed {}, connect failures {}, join failures {}",
        frames / conns,
        (rig.counter(Counter::MptcpJoins) - joins0) as f64 / conns,
        t.failed - t0.failed,
        t.connect_failures - t0.connect_failures,
        t.join_failures - t0.join_failures
    );
    Ok(())
}
