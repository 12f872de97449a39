//! What one gateway core does per relayed connection and per relayed byte, without a
//! kernel in the path: the gateway's worker loop relays MPTCP clients to a plain TCP
//! server over in-memory ports (`mpgw_bench::relay_rig`), and only the time inside
//! its polls counts. The figures are what a gateway core spends when its NIC costs no
//! more than the in-memory link. The lab's `relay_vs_proxies.sh` runs the same
//! workloads through the kernel's veths (where `net_af_packet`'s system calls and
//! copies are most of the gateway core's time).
//!
//! - `cps`: short connections, 32 in flight; each joins two subflows, sends one byte
//!   and closes once the server, which closes first, answered with its end of data;
//! - `up` / `down`: one connection joined by two subflows carrying data without end.
//!
//!     cargo run --release -p mpgw-bench --bin relay_core -- cps --seconds 10

use clap::{Parser, ValueEnum};
use dataplane::stats::Counter;
use mpgw_bench::join_pair::ticks;
use mpgw_bench::relay_rig::{Rig, Workload};
use std::time::Instant;

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    /// Relayed connections per second.
    Cps,
    /// Goodput client → server.
    Up,
    /// Goodput server → client.
    Down,
}

#[derive(Parser)]
struct Args {
    /// The workload.
    #[arg(value_enum)]
    kind: Kind,
    /// Wall seconds to measure (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Connections the client keeps in flight (`cps`; the lab's load: 32).
    #[arg(long, default_value_t = 32)]
    parallel: usize,
    /// Wall seconds of warm-up (tables, pools, windows and caches).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
}

/// Gateway counters read before and after the measurement.
const READ: [Counter; 5] = [
    Counter::RxPackets,
    Counter::TxPackets,
    Counter::MptcpJoins,
    Counter::RelayBytesUp,
    Counter::RelayBytesDown,
];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let workload = match args.kind {
        Kind::Cps => Workload::Connections {
            parallel: args.parallel,
        },
        Kind::Up => Workload::Stream { upload: true },
        Kind::Down => Workload::Stream { upload: false },
    };
    let mut rig = Rig::new(workload);
    let run = |rig: &mut Rig, seconds: f64| {
        let wall = Instant::now();
        while wall.elapsed().as_secs_f64() < seconds {
            for _ in 0..1000 {
                rig.step();
            }
        }
    };
    run(&mut rig, args.warmup);
    let (t0, g0) = (rig.tally(), rig.gateway_ticks());
    let c0 = READ.map(|c| rig.counter(c));
    let (wall, tsc0) = (Instant::now(), ticks());
    run(&mut rig, args.seconds);
    let ns = wall.elapsed().as_nanos() as f64;
    let tsc = ticks().wrapping_sub(tsc0) as f64;
    let t = rig.tally();
    let [rx, tx, joins, up, down] = std::array::from_fn(|i| (rig.counter(READ[i]) - c0[i]) as f64);
    let gw_ns = (rig.gateway_ticks() - g0) as f64 * ns / tsc;
    anyhow::ensure!(
        t.failed == t0.failed,
        "{} connections failed",
        t.failed - t0.failed
    );
    println!(
        "gateway in its polls: {:.1} % of {:.1} s wall; {:.0} frames (rx+tx) per gateway core-second",
        100.0 * gw_ns / ns,
        ns / 1e9,
        (rx + tx) * 1e9 / gw_ns
    );
    match args.kind {
        Kind::Cps => {
            let conns = (t.completed - t0.completed) as f64;
            anyhow::ensure!(conns > 0.0, "no connection completed");
            let per_conn = gw_ns / conns;
            println!(
                "relayed connections: {conns:.0}; gateway {:.2} µs per connection = {:.0} per gateway core-second",
                per_conn / 1e3,
                1e9 / per_conn
            );
            println!(
                "per connection at the gateway: {:.1} frames, {:.2} joins; client connect/join failures {}/{}",
                (rx + tx) / conns,
                joins / conns,
                t.connect_failures - t0.connect_failures,
                t.join_failures - t0.join_failures
            );
        }
        Kind::Up | Kind::Down => {
            let bytes = up + down;
            anyhow::ensure!(bytes > 0.0, "nothing relayed");
            println!(
                "relayed: {:.0} MB; {:.2} Gbit/s per gateway core ({:.0} ns per 1400-byte segment)",
                bytes / 1e6,
                bytes * 8.0 / gw_ns,
                gw_ns / (bytes / 1400.0)
            );
        }
    }
    Ok(())
}
