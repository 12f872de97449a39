//! DSN reassembly: ns per segment, [`Reassembly`] against a `BTreeMap<u64, Payload>`
//! reference doing the same job (trim, window, hole filling, in-order reads) in the same
//! run.
//!
//! - `in_order`: 1448-byte segments arriving in DSN order, each read at once;
//! - `reorder4`: the segments of 4 subflows (segment `k` on subflow `k mod 4`), each
//!   subflow in order, interleaved at random: every block of 4 consecutive segments
//!   arrives in a random order (displacement ≤ 3 segments); whatever is in order is read
//!   at once;
//! - `skew4`: the same 4 subflows, subflow `j` lagging `3 j` segments behind the first
//!   (displacement ≤ 9, up to ~7 pieces held out of order).
//!
//! Payloads reference a static buffer whose clones are free, so the figures are the
//! reassembly's own cost, not the refcount's (a DPDK payload is moved in, not cloned).
//! Each iteration handles [`SEGS`] segments; criterion's element throughput is in
//! segments, so ns/segment = 1 / throughput.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_main, Criterion, Throughput};
use dataplane::mptcp::reassembly::{Limits, Reassembly};
use dataplane::port::SharedBuf;
use dataplane::seq::Dsn;
use dataplane::tcp::Payload;

/// Segment size, bytes.
const MSS: usize = 1448;
/// Segments per iteration.
const SEGS: usize = 256;

static DATA: [u8; MSS] = [0x5a; MSS];

/// A buffer that is never freed: cloning it costs nothing.
#[derive(Clone, Copy)]
struct StaticBuf(&'static [u8]);

impl SharedBuf for StaticBuf {
    fn data(&self) -> &[u8] {
        self.0
    }

    fn refcount(&self) -> u16 {
        1
    }
}

fn segment() -> Payload<StaticBuf> {
    Payload::new(StaticBuf(&DATA))
}

/// The job both implementations do.
trait Reassembler {
    /// Accepts the segment at `dsn`.
    fn push(&mut self, dsn: u64, p: Payload<StaticBuf>);
    /// Reads every in-order payload, returning the bytes read.
    fn read(&mut self) -> usize;
    /// Reopens the window after reading.
    fn open(&mut self);
}

impl Reassembler for Reassembly<StaticBuf> {
    #[inline]
    fn push(&mut self, dsn: u64, p: Payload<StaticBuf>) {
        Reassembly::push(self, Dsn::new(dsn), p);
    }

    #[inline]
    fn read(&mut self) -> usize {
        let mut n = 0;
        while let Some(p) = self.pop() {
            n += p.len();
        }
        n
    }

    #[inline]
    fn open(&mut self) {
        self.set_window(u32::MAX);
    }
}

/// The reference: every piece in a `BTreeMap` keyed by DSN (as Linux's rbtree), trimmed
/// against its neighbours, the DATA_ACK advanced by lookups, reads from the map's front.
struct BTreeReassembly {
    map: BTreeMap<u64, Payload<StaticBuf>>,
    /// First DSN not read.
    read: u64,
    /// The DATA_ACK.
    rcv_nxt: u64,
    /// First DSN beyond the window.
    right_edge: u64,
    buffer: u64,
}

impl BTreeReassembly {
    fn new(start: u64, buffer: u64) -> Self {
        BTreeReassembly {
            map: BTreeMap::new(),
            read: start,
            rcv_nxt: start,
            right_edge: start + buffer,
            buffer,
        }
    }
}

impl Reassembler for BTreeReassembly {
    #[inline]
    fn push(&mut self, dsn: u64, mut p: Payload<StaticBuf>) {
        let mut start = dsn;
        if start < self.rcv_nxt {
            p.advance((self.rcv_nxt - start) as usize);
            start = self.rcv_nxt;
        }
        p.truncate(self.right_edge.saturating_sub(start) as usize);
        if let Some((s, prev)) = self.map.range(..start).next_back() {
            let cut = (s + prev.len() as u64).saturating_sub(start);
            p.advance(cut as usize);
            start += cut;
        }
        if let Some((s, _)) = self.map.range(start..).next() {
            p.truncate((s - start) as usize);
        }
        if p.is_empty() {
            return;
        }
        self.map.insert(start, p);
        while let Some(p) = self.map.get(&self.rcv_nxt) {
            self.rcv_nxt += p.len() as u64;
        }
    }

    #[inline]
    fn read(&mut self) -> usize {
        let mut n = 0;
        while let Some(e) = self.map.first_entry() {
            if *e.key() >= self.rcv_nxt {
                break;
            }
            let p = e.remove();
            self.read += p.len() as u64;
            n += p.len();
        }
        n
    }

    #[inline]
    fn open(&mut self) {
        self.right_edge = self.right_edge.max(self.read + self.buffer);
    }
}

/// How segments arrive.
#[derive(Clone, Copy)]
enum Arrival {
    /// In DSN order.
    InOrder,
    /// Every block of 4 shuffled.
    Shuffled4,
    /// Subflow `j` lags `3 j` segments behind subflow 0.
    Skewed4,
}

/// Arrival order of `SEGS` segments.
fn order(arrival: Arrival) -> Vec<usize> {
    let mut v: Vec<usize> = (0..SEGS).collect();
    match arrival {
        Arrival::InOrder => {}
        Arrival::Shuffled4 => {
            let mut x = 0x2545_f491_4f6c_dd1du64;
            for block in v.chunks_mut(4) {
                for i in (1..block.len()).rev() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    block.swap(i, (x % (i as u64 + 1)) as usize);
                }
            }
        }
        Arrival::Skewed4 => v.sort_by_key(|k| k + 3 * (k % 4)),
    }
    v
}

/// One iteration: `SEGS` segments from `*base` on in `order`, reading after each.
#[inline]
fn run<R: Reassembler>(r: &mut R, base: &mut u64, order: &[usize]) -> usize {
    let mut n = 0;
    for &k in order {
        r.push(*base + (k * MSS) as u64, black_box(segment()));
        n += r.read();
    }
    r.open();
    *base += (SEGS * MSS) as u64;
    n
}

fn benches(c: &mut Criterion) {
    let limits = Limits::default();
    let workloads = [
        ("in_order", Arrival::InOrder),
        ("reorder4", Arrival::Shuffled4),
        ("skew4", Arrival::Skewed4),
    ];
    for (name, arrival) in workloads {
        let order = order(arrival);
        let mut g = c.benchmark_group(format!("reassembly_{name}"));
        g.throughput(Throughput::Elements(SEGS as u64));
        g.bench_function("mpgw", |b| {
            let mut base = 1u64;
            let mut r = Reassembly::new(Dsn::new(base), limits);
            b.iter(|| run(&mut r, &mut base, &order))
        });
        g.bench_function("btreemap", |b| {
            let mut base = 1u64;
            let mut r = BTreeReassembly::new(base, u64::from(limits.buffer));
            b.iter(|| run(&mut r, &mut base, &order))
        });
        g.finish();
    }
}

mod group {
    criterion::criterion_group!(reassembly, super::benches);
}
criterion_main!(group::reassembly);
