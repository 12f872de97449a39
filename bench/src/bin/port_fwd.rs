//! Port forward loop through mpgw's safe DPDK layer, the counterpart of
//! `dpdk-testpmd --forward-mode=io --port-topology=loop`.
//!
//! One worker lcore polls queue 0 of a single vdev port: RX burst → TX burst on the
//! same port → bulk free of what did not go. After a warm-up, the forwarded (sent)
//! packets are counted over a fixed duration and reported in Mpps. `--tx-first N` primes
//! loopback ports such as `net_ring` with N packets, like testpmd's `start tx_first`.
//!
//! `bench/scripts/port_fwd_vs_testpmd.sh` runs this and testpmd side by side.

use anyhow::{bail, Context};
use clap::Parser;
use dataplane::dpdk::{
    free_bulk, lcore, Eal, EalArgs, EthDev, EthPort, Mbuf, Mempool, PortConfig, SOCKET_ID_ANY,
};
use dataplane::port::{Burst, PacketBuf, Port, BURST_SIZE};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "DPDK port forward loop through mpgw's safe DPDK layer")]
struct Args {
    /// The vdev to forward on, e.g. `net_null0` or `net_ring0`.
    #[arg(long, default_value = "net_null0")]
    vdev: String,
    /// Worker lcore (the main lcore is 0).
    #[arg(long, default_value_t = 1)]
    lcore: u32,
    /// Packets to send before forwarding starts (0: none; use 32..512 for `net_ring`).
    #[arg(long, default_value_t = 0)]
    tx_first: usize,
    /// Bytes per primed packet.
    #[arg(long, default_value_t = 64)]
    pkt_size: usize,
    /// Seconds of forwarding before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Mbufs in the pool.
    #[arg(long, default_value_t = 8191)]
    mbufs: u32,
    /// Per-lcore mempool cache.
    #[arg(long, default_value_t = 256)]
    mbcache: u32,
    /// EAL `--file-prefix` (default: derived from the process id).
    #[arg(long)]
    file_prefix: Option<String>,
}

/// What the worker publishes: packets forwarded so far, and the stop request.
#[derive(Default)]
struct Shared {
    forwarded: AtomicU64,
    stop: AtomicBool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let eal = Eal::init(&EalArgs {
        app_name: "port_fwd".into(),
        main_lcore: 0,
        worker_lcores: vec![args.lcore],
        file_prefix: Some(
            args.file_prefix
                .clone()
                .unwrap_or_else(|| format!("port_fwd-{}", std::process::id())),
        ),
        no_huge: true,
        memory_mb: Some(512),
        no_pci: true,
        no_shconf: true,
        vdevs: vec![args.vdev.clone()],
        ..EalArgs::default()
    })?;
    let port_id = *eal.port_ids().first().context("no ethdev port")?;
    let pool = Mempool::new("port_fwd", args.mbufs, args.mbcache, 2176, SOCKET_ID_ANY)?;
    // Plain io forwarding, as testpmd's default: no offloads, no RSS.
    let cfg = PortConfig {
        rss_hf: 0,
        rx_offloads: 0,
        tx_offloads: 0,
        link_wait: Duration::from_secs(1),
        ..PortConfig::default()
    };
    let mut dev = EthDev::open(port_id, &cfg, &pool)?;
    let queue = dev.take_queues()?.into_iter().next().context("no queue")?;

    let shared = Arc::new(Shared::default());
    let worker_shared = Arc::clone(&shared);
    let (tx_first, pkt_size) = (args.tx_first, args.pkt_size);
    let job = lcore::launch(args.lcore, move || {
        forward(queue, tx_first, pkt_size, &worker_shared);
    })?;

    std::thread::sleep(Duration::from_secs_f64(args.warmup));
    let (c0, t0) = (shared.forwarded.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(Duration::from_secs_f64(args.duration));
    let (c1, t1) = (shared.forwarded.load(Ordering::Relaxed), Instant::now());
    shared.stop.store(true, Ordering::Relaxed);
    job.join()?;

    let secs = (t1 - t0).as_secs_f64();
    let pkts = c1 - c0;
    let stats = dev.stats()?;
    println!(
        "vdev={} lcore={} seconds={secs:.3} forwarded={pkts} mpps={:.3} port_ipackets={} \
         port_opackets={} pool_in_use={}",
        args.vdev,
        args.lcore,
        pkts as f64 / secs / 1e6,
        stats.ipackets,
        stats.opackets,
        pool.in_use(),
    );
    if pkts == 0 {
        bail!("nothing was forwarded (a loopback vdev needs --tx-first)");
    }
    Ok(())
}

/// The worker: primes the port, then forwards until asked to stop, then drains it.
fn forward(mut port: EthPort, tx_first: usize, pkt_size: usize, shared: &Shared) {
    let mut burst: Burst<Mbuf> = Burst::new();
    let mut left = tx_first;
    while left > 0 {
        let n = left.min(BURST_SIZE);
        if !port.pool().alloc_bulk(&mut burst, n) {
            break;
        }
        for m in burst.as_mut_slice() {
            if let Some(bytes) = m.append(pkt_size) {
                bytes.fill(0);
            }
        }
        port.tx_burst(&mut burst);
        free_bulk(&mut burst);
        left -= n;
    }

    let mut forwarded = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        if port.rx_burst(&mut burst) == 0 {
            continue;
        }
        forwarded += port.tx_burst(&mut burst) as u64;
        free_bulk(&mut burst);
        shared.forwarded.store(forwarded, Ordering::Relaxed);
    }

    // Take back what the priming left circulating on a loopback port, so the pool
    // empties (bounded: a source like net_null never runs dry).
    for _ in 0..=tx_first.div_ceil(BURST_SIZE) {
        if port.rx_burst(&mut burst) == 0 {
            break;
        }
        free_bulk(&mut burst);
    }
}
