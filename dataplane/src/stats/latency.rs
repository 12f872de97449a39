//! Latency histograms that a worker records without contention and the control side
//! merges.
//!
//! A worker records into its own [`Latencies`] (an HDR histogram in nanoseconds plus the
//! exact sum). Every so often it calls [`Outbox::ship`]: if the control side handed back
//! a spare (empty) histogram, the worker swaps it in and sends the full one over a
//! bounded channel with `try_send` — never blocking, never allocating. Without a spare
//! (nobody collected lately) it keeps recording into the same histogram, so nothing is
//! lost. The control side ([`Inbox::drain_into`]) adds what arrived into its cumulative
//! histogram, clears the arrivals and hands them back as spares. [`SPARES`] histograms
//! circulate per worker besides the one it records into, so the channels, each
//! bounded to [`SPARES`], can never be full when the worker sends.

use crossbeam::channel::{bounded, Receiver, Sender};
use hdrhistogram::Histogram;

/// Smallest value tracked, ns.
const LOW_NS: u64 = 1;
/// Largest value tracked, ns (a minute); larger values are recorded as this.
const HIGH_NS: u64 = 60_000_000_000;
/// Significant decimal digits kept (2: values within 1 %).
const SIGFIG: u8 = 2;
/// Histograms circulating between a worker and the control side besides the one the
/// worker records into.
pub const SPARES: usize = 2;

/// A histogram of durations in nanoseconds with their exact sum (HDR buckets only give
/// an approximate one).
#[derive(Clone, Debug)]
pub struct Latencies {
    hist: Histogram<u64>,
    sum_ns: u64,
}

impl Latencies {
    /// An empty histogram (1 ns to 60 s, 1 % resolution); `None` only if the HDR
    /// library refused the constant bounds.
    pub fn new() -> Option<Self> {
        let hist = Histogram::new_with_bounds(LOW_NS, HIGH_NS, SIGFIG).ok()?;
        Some(Self { hist, sum_ns: 0 })
    }

    /// Records one duration (clamped to the tracked range).
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.hist.saturating_record(ns);
        self.sum_ns = self.sum_ns.wrapping_add(ns);
    }

    /// Adds every value of `other`.
    pub fn add(&mut self, other: &Latencies) {
        // Same bounds on both sides: the addition cannot run out of range.
        if self.hist.add(&other.hist).is_ok() {
            self.sum_ns = self.sum_ns.wrapping_add(other.sum_ns);
        }
    }

    /// Forgets every value.
    pub fn clear(&mut self) {
        self.hist.reset();
        self.sum_ns = 0;
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The exact sum of the values recorded, ns.
    pub fn sum_ns(&self) -> u64 {
        self.sum_ns
    }

    /// How many values fall at or below each bound of `upper_ns` (ascending), and past
    /// the last one: `upper_ns.len() + 1` counts, not cumulative. A value counts in the
    /// first bound at or above the top of its HDR bucket (so a value is never shown
    /// faster than it was).
    pub fn bucket_counts(&self, upper_ns: &[u64]) -> Vec<u64> {
        let mut counts = vec![0; upper_ns.len() + 1];
        for v in self.hist.iter_recorded() {
            let i = upper_ns.partition_point(|&b| b < v.value_iterated_to());
            counts[i] += v.count_at_value();
        }
        counts
    }
}

/// The worker's side: records, and ships what it recorded to the control side.
pub struct Outbox {
    current: Latencies,
    full: Sender<Latencies>,
    spares: Receiver<Latencies>,
}

/// The control side: collects what the worker shipped.
#[derive(Clone)]
pub struct Inbox {
    full: Receiver<Latencies>,
    spares: Sender<Latencies>,
}

/// A connected outbox/inbox pair with its spares allocated; `None` if histograms cannot
/// be made (see [`Latencies::new`]).
pub fn channel() -> Option<(Outbox, Inbox)> {
    let (full_tx, full_rx) = bounded(SPARES);
    let (spare_tx, spare_rx) = bounded(SPARES);
    for _ in 0..SPARES {
        spare_tx.try_send(Latencies::new()?).ok()?;
    }
    let outbox = Outbox {
        current: Latencies::new()?,
        full: full_tx,
        spares: spare_rx,
    };
    let inbox = Inbox {
        full: full_rx,
        spares: spare_tx,
    };
    Some((outbox, inbox))
}

impl Outbox {
    /// Records one duration.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.current.record(ns);
    }

    /// Sends what was recorded since the last shipment if a spare histogram is back
    /// (otherwise keeps recording into the same one). Never blocks.
    pub fn ship(&mut self) {
        if self.current.count() == 0 {
            return;
        }
        let Ok(spare) = self.spares.try_recv() else {
            return;
        };
        let full = std::mem::replace(&mut self.current, spare);
        if let Err(e) = self.full.try_send(full) {
            // Only when the control side is gone (the channel has room for every spare):
            // keep the values.
            self.current = e.into_inner();
        }
    }
}

impl Inbox {
    /// Adds every histogram the worker shipped into `total`, and hands them back
    /// cleared. Whoever calls this takes those values: one collector per worker.
    pub fn drain_into(&self, total: &mut Latencies) {
        while let Ok(mut h) = self.full.try_recv() {
            total.add(&h);
            h.clear();
            let _ = self.spares.try_send(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_values_all_reach_the_collector_even_without_spares() {
        let (mut out, inbox) = channel().unwrap();
        let mut total = Latencies::new().unwrap();
        let mut recorded = 0;
        for round in 0..(SPARES as u64 + 3) {
            for v in [1_000, 20_000, 5_000_000] {
                out.record(v + round);
                recorded += 1;
            }
            // Nobody collects during the first rounds: the spares run out, the worker
            // keeps recording into its current histogram.
            out.ship();
        }
        inbox.drain_into(&mut total);
        assert!(total.count() < recorded, "the last batch waits for a spare");
        out.ship();
        inbox.drain_into(&mut total);
        assert_eq!(total.count(), recorded);
        let sum: u64 = (0..(SPARES as u64 + 3))
            .map(|r| 1_000 + 20_000 + 5_000_000 + 3 * r)
            .sum();
        assert_eq!(total.sum_ns(), sum);
    }

    #[test]
    fn an_empty_histogram_is_not_shipped() {
        let (mut out, inbox) = channel().unwrap();
        out.ship();
        let mut total = Latencies::new().unwrap();
        inbox.drain_into(&mut total);
        assert_eq!(total.count(), 0);
        assert_eq!(out.spares.len(), SPARES, "no spare used");
    }

    #[test]
    fn bucket_counts_split_at_the_bounds() {
        let mut h = Latencies::new().unwrap();
        for v in [500, 900, 1_500, 10_000, 2_000_000_000] {
            h.record(v);
        }
        let counts = h.bucket_counts(&[1_000, 100_000, 1_000_000_000]);
        assert_eq!(counts, vec![2, 2, 0, 1]);
        assert_eq!(counts.iter().sum::<u64>(), h.count());
    }

    #[test]
    fn out_of_range_values_are_clamped_not_lost() {
        let mut h = Latencies::new().unwrap();
        h.record(0);
        h.record(u64::MAX / 2);
        assert_eq!(h.count(), 2);
    }
}
