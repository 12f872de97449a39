//! TCP engine benchmarks.
//!
//! - `rx_in_order_segment`: one in-order 1448-byte data segment through a receiving
//!   connection (acceptance, zero-copy delivery, delayed ACK), the application reading it;
//! - `bulk_mem_{0,1}pct_loss`: 4 MiB one way between two engines over the in-memory
//!   link (headers emitted, frames parsed and checksummed on both sides; the link copies
//!   frames as a wire would), without and with 1 % loss. Throughput in payload bytes;
//!   both engines share one thread, so this is bytes per busy core-second;
//! - `linux_loopback`: the same 4 MiB through the kernel's TCP over 127.0.0.1 in the same
//!   run, timed in process CPU time (sender and receiver threads, user + system), so
//!   its throughput is bytes per busy core-second too.

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use criterion::{criterion_main, Criterion, Throughput};
use dataplane::port::heap::{HeapPool, HeapShared};
use dataplane::port::mem::{link, Faults, LinkConfig, MemPort, SimClock};
use dataplane::port::{Burst, PacketBuf, Port};
use dataplane::seq::TcpSeq;
use dataplane::tcp::emit::{emit_headers, ChecksumMode, L2};
use dataplane::tcp::ingress::segment_from_frame;
use dataplane::tcp::{
    Config, Connection, FourTuple, Instant, NoHook, Payload, SegmentIn, SegmentOut, State,
};
use dataplane::wire::tcp::TcpFlags;
use dataplane::wire::MacAddr;

type S = HeapShared;
type Out = Vec<(FourTuple, SegmentOut<S>)>;

const BULK: usize = 4 << 20;

fn tuple() -> FourTuple {
    FourTuple {
        local: std::net::SocketAddr::from(([192, 0, 2, 1], 7)),
        remote: std::net::SocketAddr::from(([192, 0, 2, 2], 40000)),
    }
}

/// A receiving connection in ESTABLISHED, its peer's next sequence number, and a pool.
fn receiver() -> (Connection<S>, TcpSeq, Out) {
    let mut syn = SegmentIn::bare(TcpSeq::new(100), TcpSeq::new(0), TcpFlags::SYN, 65535);
    syn.options.mss = Some(1460);
    let cfg = Config {
        timestamps: false,
        ..Config::default()
    };
    let now = Instant::default();
    let mut c = Connection::accept(&cfg, tuple(), &syn, TcpSeq::new(1000), 0, NoHook, now);
    let mut out = Out::new();
    c.flush(now, &mut out);
    let mut ack = SegmentIn::bare(TcpSeq::new(101), TcpSeq::new(1001), TcpFlags::ACK, 65535);
    c.on_segment(&mut ack, now, &mut out);
    out.clear();
    (c, TcpSeq::new(101), out)
}

fn drain(
    port: &mut MemPort,
    now: Instant,
    conn: &mut Option<Connection<S>>,
    out: &mut Out,
    cfg: &Config,
) -> usize {
    let mut rx = Burst::new();
    let mut got = 0;
    while port.rx_burst(&mut rx) > 0 {
        for buf in rx.drain() {
            let Ok((t, mut seg)) = segment_from_frame(buf, true) else {
                continue;
            };
            if conn.is_none() && seg.flags == TcpFlags::SYN {
                *conn = Some(Connection::accept(
                    cfg,
                    t,
                    &seg,
                    TcpSeq::new(9),
                    0,
                    NoHook,
                    now,
                ));
                continue;
            }
            if let Some(c) = conn.as_mut() {
                c.on_segment(&mut seg, now, out);
            }
        }
    }
    if let Some(c) = conn.as_mut() {
        if c.poll_at().is_some_and(|t| t <= now) {
            c.on_timer(now, out);
        }
        while let Some(p) = c.recv() {
            got += black_box(p.len());
        }
    }
    got
}

fn transmit(port: &mut MemPort, pool: &HeapPool, l2: &L2, out: &mut Out) {
    let mut tx = Burst::new();
    let mut frame = [0u8; 2048];
    for (t, seg) in out.drain(..) {
        let Ok(hl) = emit_headers(&mut frame, l2, &t, &seg, ChecksumMode::Full) else {
            continue;
        };
        let n = hl + seg.data_len();
        if let Some(p) = &seg.payload {
            frame[hl..n].copy_from_slice(p.bytes());
        }
        let Some(buf) = pool.alloc_from(&frame[..n]) else {
            continue;
        };
        if tx.is_full() {
            port.tx_burst(&mut tx);
        }
        let _ = tx.push(buf);
    }
    port.tx_burst(&mut tx);
}

/// Moves `BULK` bytes from a sender to a receiver engine; returns bytes delivered.
fn bulk(loss: f64, seed: u64) -> usize {
    let pool = HeapPool::new(8192);
    let clock = SimClock::new();
    let faults = Faults {
        drop: loss,
        delay_ns: 100_000,
        ..Faults::default()
    };
    let cfg_link = LinkConfig {
        a_to_b: faults.clone(),
        b_to_a: faults,
        seed,
        capacity: 4096,
    };
    let (mut pa, mut pb) = link(cfg_link, &pool, &clock);
    let cfg = Config::default();
    let mac = L2 {
        src: MacAddr([2, 0, 0, 0, 0, 1]),
        dst: MacAddr([2, 0, 0, 0, 0, 2]),
        vlan_tci: None,
    };
    let mut a = Some(Connection::connect(
        &cfg,
        tuple(),
        TcpSeq::new(1),
        0,
        NoHook,
        Instant::default(),
    ));
    let mut b: Option<Connection<S>> = None;
    let (mut out_a, mut out_b) = (Out::new(), Out::new());
    let chunk = pool
        .alloc_from(&[0x5a; 1448])
        .map(|b| Payload::new(b.into_shared()));
    let (mut queued, mut got) = (0, 0);
    for _ in 0..10_000_000 {
        let now = Instant::from_nanos(clock.now());
        drain(&mut pa, now, &mut a, &mut out_a, &cfg);
        got += drain(&mut pb, now, &mut b, &mut out_b, &cfg);
        if let (Some(c), Some(p)) = (a.as_mut(), chunk.as_ref()) {
            while queued < BULK && c.send_space() >= p.len() && c.send(p.clone()).is_ok() {
                queued += p.len();
            }
            c.flush(now, &mut out_a);
        }
        if let Some(c) = b.as_mut() {
            c.flush(now, &mut out_b);
        }
        transmit(&mut pa, &pool, &mac, &mut out_a);
        transmit(&mut pb, &pool, &mac, &mut out_b);
        if got >= BULK {
            break;
        }
        let next = [
            pa.next_arrival(),
            pb.next_arrival(),
            a.as_ref()
                .and_then(Connection::poll_at)
                .map(Instant::as_nanos),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(clock.now() + 1000);
        clock.set(next.max(clock.now() + 1000));
    }
    assert_eq!(a.map(|c| c.state()), Some(State::Established));
    got
}

/// User + system CPU time of this process (from `/proc/self/stat`, 10 ms ticks).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    // After the command name: field 3 is index 0, utime (14) index 11, stime (15) 12.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
}

/// A loopback connection whose receiver thread reports every `BULK` bytes read.
fn loopback() -> Option<(TcpStream, mpsc::Receiver<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").ok()?;
    let addr = listener.local_addr().ok()?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let mut buf = vec![0u8; 256 << 10];
        let mut n = 0;
        while let Ok(k) = s.read(&mut buf) {
            if k == 0 {
                break;
            }
            n += k;
            while n >= BULK {
                n -= BULK;
                if tx.send(()).is_err() {
                    return;
                }
            }
        }
    });
    let s = TcpStream::connect(addr).ok()?;
    Some((s, rx))
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("tcp");
    g.throughput(Throughput::Elements(1));
    g.bench_function("rx_in_order_segment", |bch| {
        let pool = HeapPool::new(64);
        let (mut conn, mut seq, mut out) = receiver();
        let buf = pool.alloc_from(&[7u8; 1448]).map(|b| b.into_shared());
        let mut now = Instant::default();
        bch.iter(|| {
            let mut s = SegmentIn::bare(seq, TcpSeq::new(1001), TcpFlags::ACK, 65535);
            s.payload = buf.clone().map(Payload::new);
            now = now + Duration::from_micros(1);
            conn.on_segment(&mut s, now, &mut out);
            seq += 1448;
            while let Some(p) = conn.recv() {
                black_box(p.len());
            }
            out.clear();
        })
    });
    g.throughput(Throughput::Bytes(BULK as u64));
    g.sample_size(10);
    g.bench_function("bulk_mem_0pct_loss", |bch| bch.iter(|| bulk(0.0, 1)));
    g.bench_function("bulk_mem_1pct_loss", |bch| bch.iter(|| bulk(0.01, 2)));
    if let Some((mut sender, done)) = loopback() {
        let data = vec![0x5au8; BULK];
        g.bench_function("linux_loopback", |bch| {
            bch.iter_custom(|iters| {
                let start = cpu_time();
                for _ in 0..iters {
                    if sender.write_all(&data).is_err() || done.recv().is_err() {
                        break;
                    }
                }
                cpu_time() - start
            })
        });
    }
    g.finish();
}

mod group {
    criterion::criterion_group!(tcp, super::benches);
}
criterion_main!(group::tcp);
