//! A hashed timer wheel (Varghese & Lauck) driving every connection's `poll_at`.
//!
//! Slots are one tick (1 ms) wide; a deadline further away than the wheel's span waits
//! in its slot for later rounds. Entries are not removed when a connection's deadline
//! moves: the table only adds an entry when the deadline moves *earlier*, and an entry
//! that fires early simply re-checks its connection — so each connection has a
//! handful of entries at most.

use super::time::Instant;

/// Tick length in nanoseconds.
const TICK_NS: u64 = 1_000_000;

/// A scheduled wake-up of the item `key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry<K> {
    /// When to fire.
    at: Instant,
    /// What to wake.
    key: K,
}

/// The wheel. `K` identifies what to wake (a connection slot and generation).
#[derive(Debug)]
pub struct TimerWheel<K> {
    /// `slots.len()` is a power of two; entry `e` sits in slot `tick(e.at) & mask`.
    slots: Vec<Vec<Entry<K>>>,
    /// `slots.len() - 1`.
    mask: u64,
    /// Every tick up to and including this one has been processed.
    done_tick: u64,
    /// Entries held.
    len: usize,
}

impl<K: Copy> TimerWheel<K> {
    /// A wheel of `slots` (rounded up to a power of two) one-millisecond slots, with
    /// nothing processed before `now`.
    pub fn new(slots: usize, now: Instant) -> Self {
        let n = slots.max(1).next_power_of_two();
        TimerWheel {
            slots: (0..n).map(|_| Vec::new()).collect(),
            mask: n as u64 - 1,
            done_tick: (now.as_nanos() / TICK_NS).saturating_sub(1),
            len: 0,
        }
    }

    /// Entries held (live and stale).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedules a wake-up of `key` at `at` (a past deadline fires on the next advance).
    pub fn schedule(&mut self, key: K, at: Instant) {
        let tick = (at.as_nanos() / TICK_NS).max(self.done_tick + 1);
        self.slots[(tick & self.mask) as usize].push(Entry { at, key });
        self.len += 1;
    }

    /// Moves time to `now`, calling `fire` for every entry due, in slot order.
    pub fn advance(&mut self, now: Instant, mut fire: impl FnMut(K)) {
        let now_tick = now.as_nanos() / TICK_NS;
        if now_tick <= self.done_tick {
            return;
        }
        // After a long pause each slot is visited once.
        let span = (now_tick - self.done_tick).min(self.mask + 1);
        for t in now_tick + 1 - span..=now_tick {
            let slot = &mut self.slots[(t & self.mask) as usize];
            let mut i = 0;
            while i < slot.len() {
                if slot[i].at <= now {
                    let e = slot.swap_remove(i);
                    self.len -= 1;
                    fire(e.key);
                } else {
                    i += 1;
                }
            }
        }
        // The current tick may still hold entries due later within it: revisit it.
        self.done_tick = now_tick - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_time_including_far_and_past_deadlines() {
        let mut w = TimerWheel::new(8, Instant::from_millis(100));
        w.schedule(1u32, Instant::from_millis(103));
        w.schedule(2, Instant::from_millis(120)); // beyond the 8 ms span
        w.schedule(3, Instant::from_millis(50)); // already past
        let mut fired = Vec::new();
        w.advance(Instant::from_millis(102), |k| fired.push(k));
        assert_eq!(fired, [3]);
        w.advance(Instant::from_millis(110), |k| fired.push(k));
        assert_eq!(fired, [3, 1]);
        w.advance(Instant::from_millis(119), |k| fired.push(k));
        assert_eq!(fired, [3, 1]);
        w.advance(Instant::from_millis(500), |k| fired.push(k));
        assert_eq!(fired, [3, 1, 2]);
        assert!(w.is_empty());
    }
}
