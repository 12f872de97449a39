//! An in-memory link between two [`MemPort`]s, with seeded fault injection.
//!
//! Each direction of a link is a queue of packets ordered by delivery time on a shared
//! virtual clock ([`SimClock`]). Faults are drawn from a seeded generator, so a test
//! that fails replays exactly with the same seed. Supported faults: random drop,
//! duplication, reordering (a packet is held back so later ones overtake it), bit
//! corruption, a rate limit with a bounded queue (tbf-like: excess is dropped), and a
//! fixed propagation delay.
//!
//! This is test and benchmark infrastructure: the per-direction state sits behind a
//! mutex so the two ends may live on different threads, which a production port would
//! never do.

use super::heap::{HeapBuf, HeapPool};
use super::{Burst, PacketBuf, Port};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A virtual clock in nanoseconds, shared by the links and the code under test.
#[derive(Clone, Default)]
pub struct SimClock(Arc<AtomicU64>);

impl SimClock {
    /// A clock at time 0.
    pub fn new() -> Self {
        Self::default()
    }
    /// Current time, ns.
    pub fn now(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Sets the time (monotonic: earlier values are ignored).
    pub fn set(&self, ns: u64) {
        self.0.fetch_max(ns, Ordering::Relaxed);
    }
    /// Advances the time by `ns`.
    pub fn advance(&self, ns: u64) {
        self.0.fetch_add(ns, Ordering::Relaxed);
    }
}

/// Faults applied to one direction of a link. Probabilities are in `[0, 1]`.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Probability that a packet is lost.
    pub drop: f64,
    /// Probability that a packet is delivered twice.
    pub duplicate: f64,
    /// Probability that a packet is held back by `reorder_delay_ns` so later ones
    /// overtake it.
    pub reorder: f64,
    /// Extra delay of a reordered packet, ns.
    pub reorder_delay_ns: u64,
    /// Probability that one random bit of a packet is flipped.
    pub corrupt: f64,
    /// Serialisation rate in bits per second; `None` for unlimited.
    pub rate_bps: Option<u64>,
    /// Bytes that may wait for serialisation before packets are dropped (rate limit only).
    pub queue_bytes: usize,
    /// Fixed propagation delay, ns.
    pub delay_ns: u64,
}

/// What happened on one direction of a link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets accepted by `tx_burst`.
    pub sent: u64,
    /// Packets handed out by `rx_burst`.
    pub delivered: u64,
    /// Packets lost to the `drop` fault.
    pub dropped: u64,
    /// Packets lost because the rate limiter's queue was full.
    pub queue_dropped: u64,
    /// Extra copies made by the `duplicate` fault.
    pub duplicated: u64,
    /// Packets held back by the `reorder` fault.
    pub reordered: u64,
    /// Packets with a flipped bit.
    pub corrupted: u64,
    /// Duplicates not made, or chained packets not sent, because the pool was
    /// exhausted.
    pub alloc_failed: u64,
}

struct InFlight {
    at: u64,
    order: u64,
    buf: HeapBuf,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

struct Direction {
    faults: Faults,
    rng: fastrand::Rng,
    queue: BinaryHeap<Reverse<InFlight>>,
    capacity: usize,
    next_order: u64,
    /// When the rate limiter finishes serialising what it holds, ns.
    busy_until: u64,
    stats: LinkStats,
}

impl Direction {
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.f64() < p
    }

    fn enqueue(&mut self, at: u64, buf: HeapBuf) {
        let order = self.next_order;
        self.next_order += 1;
        self.queue.push(Reverse(InFlight { at, order, buf }));
    }

    /// Applies the faults to one packet sent at `now`.
    fn send(&mut self, now: u64, buf: HeapBuf, pool: &HeapPool) {
        self.stats.sent += 1;
        // A chained packet leaves as one frame, as a NIC's gather DMA sends it.
        let mut buf = if buf.chained().is_empty() {
            buf
        } else {
            match pool.alloc_from(&buf.gather()) {
                Some(flat) => flat,
                None => {
                    self.stats.alloc_failed += 1;
                    return;
                }
            }
        };
        if self.chance(self.faults.drop) {
            self.stats.dropped += 1;
            return;
        }
        let mut at = now;
        if let Some(rate) = self.faults.rate_bps.filter(|r| *r > 0) {
            let start = self.busy_until.max(now);
            let waiting_bits = u128::from(start - now) * u128::from(rate) / 1_000_000_000;
            if waiting_bits / 8 > self.faults.queue_bytes as u128 {
                self.stats.queue_dropped += 1;
                return;
            }
            let tx_ns = (buf.len() as u64 * 8).saturating_mul(1_000_000_000) / rate;
            self.busy_until = start + tx_ns;
            at = self.busy_until;
        }
        at += self.faults.delay_ns;
        if self.chance(self.faults.corrupt) && !buf.is_empty() {
            let bit = self.rng.usize(..buf.len() * 8);
            buf.data_mut()[bit / 8] ^= 1 << (bit % 8);
            self.stats.corrupted += 1;
        }
        if self.chance(self.faults.duplicate) {
            match pool.alloc_from(buf.data()) {
                Some(copy) => {
                    self.stats.duplicated += 1;
                    self.enqueue(at, copy);
                }
                None => self.stats.alloc_failed += 1,
            }
        }
        if self.chance(self.faults.reorder) {
            self.stats.reordered += 1;
            at += self.faults.reorder_delay_ns;
        }
        self.enqueue(at, buf);
    }
}

/// Options for [`link`].
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// Faults from end A to end B.
    pub a_to_b: Faults,
    /// Faults from end B to end A.
    pub b_to_a: Faults,
    /// Seed of the fault generator.
    pub seed: u64,
    /// Packets in flight per direction before `tx_burst` stops taking more (a full TX
    /// ring).
    pub capacity: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            a_to_b: Faults::default(),
            b_to_a: Faults::default(),
            seed: 1,
            capacity: 4096,
        }
    }
}

/// One end of an in-memory link; implements [`Port`] with [`HeapBuf`]s.
pub struct MemPort {
    tx: Arc<Mutex<Direction>>,
    rx: Arc<Mutex<Direction>>,
    pool: HeapPool,
    clock: SimClock,
    /// Chained packets are sent whole ([`MemPort::single_segment`]).
    chains: bool,
}

/// A link between two ports sharing `pool` and `clock`.
pub fn link(cfg: LinkConfig, pool: &HeapPool, clock: &SimClock) -> (MemPort, MemPort) {
    let dir = |faults: Faults, seed: u64| {
        Arc::new(Mutex::new(Direction {
            faults,
            rng: fastrand::Rng::with_seed(seed),
            queue: BinaryHeap::new(),
            capacity: cfg.capacity,
            next_order: 0,
            busy_until: 0,
            stats: LinkStats::default(),
        }))
    };
    let ab = dir(cfg.a_to_b, cfg.seed);
    let ba = dir(cfg.b_to_a, cfg.seed ^ 0x9e37_79b9_7f4a_7c15);
    let end = |tx: &Arc<Mutex<Direction>>, rx: &Arc<Mutex<Direction>>| MemPort {
        tx: tx.clone(),
        rx: rx.clone(),
        pool: pool.clone(),
        clock: clock.clone(),
        chains: true,
    };
    (end(&ab, &ba), end(&ba, &ab))
}

fn lock(dir: &Mutex<Direction>) -> MutexGuard<'_, Direction> {
    // A poisoned lock only means a test thread panicked; the queue itself is consistent.
    dir.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemPort {
    /// Statistics of the direction this end sends on.
    pub fn tx_stats(&self) -> LinkStats {
        lock(&self.tx).stats
    }

    /// Statistics of the direction this end receives from.
    pub fn rx_stats(&self) -> LinkStats {
        lock(&self.rx).stats
    }

    /// Packets this end has sent that are not yet received.
    pub fn in_flight(&self) -> usize {
        lock(&self.tx).queue.len()
    }

    /// Delivery time of the next packet waiting for this end, ns.
    pub fn next_arrival(&self) -> Option<u64> {
        lock(&self.rx).queue.peek().map(|p| p.0.at)
    }

    /// This end sends as a driver without multi-segment TX does (DPDK 22.11's
    /// `net_af_xdp`): [`Port::tx_chains`] says so, and a chained packet handed to it
    /// anyway leaves as its first segment's bytes followed by zeros up to the packet's
    /// length — the payload is lost, as that driver sends `pkt_len` bytes of the first
    /// segment's buffer.
    pub fn single_segment(mut self) -> Self {
        self.chains = false;
        self
    }

    /// Replaces the faults of the direction this end sends on.
    pub fn set_tx_faults(&self, faults: Faults) {
        lock(&self.tx).faults = faults;
    }
}

impl Port for MemPort {
    type Buf = HeapBuf;

    fn rx_burst(&mut self, out: &mut Burst<HeapBuf>) -> usize {
        let now = self.clock.now();
        let mut dir = lock(&self.rx);
        let mut n = 0;
        while !out.is_full() && dir.queue.peek().is_some_and(|p| p.0.at <= now) {
            let Some(Reverse(p)) = dir.queue.pop() else {
                break;
            };
            if out.push(p.buf).is_err() {
                break;
            }
            n += 1;
        }
        dir.stats.delivered += n as u64;
        n
    }

    fn tx_burst(&mut self, pkts: &mut Burst<HeapBuf>) -> usize {
        let now = self.clock.now();
        let mut dir = lock(&self.tx);
        let room = dir.capacity.saturating_sub(dir.queue.len());
        let n = room.min(pkts.len());
        let mut unsent = Burst::new();
        for (i, buf) in pkts.drain().enumerate() {
            if i < n && !self.chains && !buf.chained().is_empty() {
                let mut frame = buf.data().to_vec();
                frame.resize(buf.pkt_len(), 0);
                match self.pool.alloc_from(&frame) {
                    Some(first) => dir.send(now, first, &self.pool),
                    None => {
                        dir.stats.sent += 1;
                        dir.stats.alloc_failed += 1;
                    }
                }
            } else if i < n {
                dir.send(now, buf, &self.pool);
            } else {
                // Cannot fail: `unsent` has the capacity `pkts` had.
                let _ = unsent.push(buf);
            }
        }
        *pkts = unsent;
        n
    }

    fn alloc(&mut self) -> Option<HeapBuf> {
        self.pool.alloc()
    }

    fn tx_chains(&self) -> bool {
        self.chains
    }
}
