//! Bulk TCP through mpgw's engine on real DPDK mbufs, one core, both ends.
//!
//! A client connection (192.0.2.2) streams to a discard server (192.0.2.1:9) over one
//! `net_ring` port, whose TX feeds its own RX; each received frame goes to the table that
//! owns its destination. The whole data path runs as in the gateway: headers emitted
//! into a small mbuf with the payload chained by reference (indirect mbufs, no copy),
//! frames parsed and checksummed on receipt, payload handed up as slices. Because
//! `net_ring` returns the chain as sent, the receive side first gathers it into one
//! buffer (one copy per frame, the work a NIC's DMA does on a real wire). `--loss`
//! drops that share of frames on receipt (both directions).
//!
//! The process busy-polls one core, so its goodput is bytes per busy core-second.
//! `bench/scripts/tcp_bulk_vs_kernel.sh` runs it beside the kernel's loopback TCP.

use anyhow::Context;
use clap::Parser;
use dataplane::dpdk::{Eal, EalArgs, EthDev, EthPort, Mbuf, Mempool, PortConfig, SOCKET_ID_ANY};
use dataplane::port::{Burst, PacketBuf, Port};
use dataplane::tcp::emit::{emit_headers, ChecksumMode, L2};
use dataplane::tcp::ingress::segment_from_frame;
use dataplane::tcp::{
    FourTuple, Instant, NoHook, Payload, Secrets, SegmentOut, Table, TableConfig,
};
use dataplane::wire::MacAddr;
use std::net::SocketAddr;

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "bulk TCP through mpgw's engine over DPDK net_ring, one core")]
struct Args {
    /// Seconds measured (after one second of warm-up).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Share of frames lost, 0..1.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// The lcore to run on.
    #[arg(long, default_value_t = 1)]
    lcore: u32,
}

type S = <Mbuf as PacketBuf>::Shared;
type Out = Vec<(FourTuple, SegmentOut<S>)>;

const HEADERS: usize = 14 + 40 + 60;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let eal = Eal::init(&EalArgs {
        app_name: "tcp_bulk".into(),
        main_lcore: args.lcore,
        file_prefix: Some(format!("tcp_bulk-{}", std::process::id())),
        no_huge: true,
        memory_mb: Some(512),
        no_pci: true,
        no_shconf: true,
        vdevs: vec!["net_ring0".into()],
        ..EalArgs::default()
    })?;
    let port_id = *eal.port_ids().first().context("no ethdev port")?;
    let pool = Mempool::new("tcp_bulk", 32_767, 256, 2176, SOCKET_ID_ANY)?;
    let mut dev = EthDev::open(port_id, &PortConfig::default(), &pool)?;
    let mut port = dev.take_queues()?.into_iter().next().context("no queue")?;

    let server: SocketAddr = "192.0.2.1:9".parse()?;
    let client: SocketAddr = "192.0.2.2:40000".parse()?;
    let epoch = std::time::Instant::now();
    let now = || Instant::from_nanos(epoch.elapsed().as_nanos() as u64);
    let mut tables: [Table<S, NoHook>; 2] = [
        Table::new(TableConfig::default(), Secrets::new([1; 32]), now()),
        Table::new(TableConfig::default(), Secrets::new([2; 32]), now()),
    ];
    tables[0].listen(server);
    let mut out = Out::new();
    let tuple = FourTuple {
        local: client,
        remote: server,
    };
    let id = tables[1]
        .connect(tuple, NoHook, now(), &mut out)
        .context("connect")?;
    let mut pattern = port.alloc().context("pattern mbuf")?;
    let room = pattern.tailroom().min(1448);
    pattern.append(room).context("pattern room")?.fill(0x5a);
    let pattern = Payload::new(pattern.into_shared());

    let l2 = L2 {
        src: MacAddr([2, 0, 0, 0, 0, 1]),
        dst: MacAddr([2, 0, 0, 0, 0, 2]),
        vlan_tci: None,
    };
    let mut rng = fastrand::Rng::with_seed(7);
    let mut rx: Burst<Mbuf> = Burst::new();
    let (mut received, mut dropped, mut started) = (0u64, 0u64, None);
    let warmup = std::time::Duration::from_secs(1);
    let total = warmup + std::time::Duration::from_secs_f64(args.duration);
    while epoch.elapsed() < total {
        let t = now();
        port.rx_burst(&mut rx);
        for mut buf in rx.drain() {
            if args.loss > 0.0 && rng.f64() < args.loss {
                dropped += 1;
                continue;
            }
            // net_ring hands back the chain as sent: gather it as a wire would.
            if !buf.linearize() {
                continue;
            }
            if let Ok((tuple, seg)) = segment_from_frame(buf, true) {
                let side = usize::from(tuple.local != server);
                tables[side].on_segment(tuple, seg, t, &mut out);
            }
        }
        // The server discards what it reads; the client keeps its send queue full.
        while let Some(sid) = tables[0].next_ready() {
            if let Some(c) = tables[0].get_mut(sid) {
                let _ = c.take_events();
                while let Some(p) = c.recv() {
                    received += p.len() as u64;
                }
            }
            tables[0].flush(sid, t, &mut out);
        }
        // The client's only connection is flushed below.
        while tables[1].next_ready().is_some() {}
        if let Some(c) = tables[1].get_mut(id) {
            let _ = c.take_events();
            while c.send_space() >= pattern.len() && c.send(pattern.clone()).is_ok() {}
        }
        tables[1].flush(id, t, &mut out);
        for table in &mut tables {
            table.on_timers(t, &mut out);
        }
        transmit(&mut port, &l2, &mut out);
        if started.is_none() && epoch.elapsed() >= warmup {
            started = Some((epoch.elapsed(), received));
        }
    }
    if let Some(c) = tables[1].get_mut(id) {
        eprintln!("sender: {:?}", c.stats());
    }
    let (t0, r0) = started.context("no warm-up")?;
    let secs = (epoch.elapsed() - t0).as_secs_f64();
    let bytes = received - r0;
    println!(
        "loss={} goodput_gbps={:.3} bytes_per_core_second={:.0} frames_dropped={dropped}",
        args.loss,
        bytes as f64 * 8.0 / secs / 1e9,
        bytes as f64 / secs
    );
    Ok(())
}

/// Frames for every segment of `out`: headers in a fresh mbuf, payload chained.
fn transmit(port: &mut EthPort, l2: &L2, out: &mut Out) {
    let mut tx: Burst<Mbuf> = Burst::new();
    for (tuple, seg) in out.drain(..) {
        let Some(mut buf) = port.alloc() else {
            continue;
        };
        let Some(hdr) = buf.append(HEADERS) else {
            continue;
        };
        let Ok(n) = emit_headers(hdr, l2, &tuple, &seg, ChecksumMode::Full) else {
            continue;
        };
        buf.trim_back(HEADERS - n);
        if let Some(p) = &seg.payload {
            if buf.chain(p.buf(), p.offset(), p.len()).is_err() {
                continue;
            }
        }
        if tx.is_full() {
            port.tx_burst(&mut tx);
            Mbuf::free_burst(&mut tx);
        }
        let _ = tx.push(buf);
    }
    port.tx_burst(&mut tx);
    Mbuf::free_burst(&mut tx);
}
