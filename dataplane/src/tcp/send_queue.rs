//! The send side's data: payload references not yet sent, and the scoreboard of sent,
//! unacknowledged segments (RFC 6675) that retransmissions are taken from.

use super::payload::Payload;
use super::time::Instant;
use crate::port::SharedBuf;
use crate::seq::TcpSeq;
use std::collections::VecDeque;
use std::time::Duration;

/// Duplicate-ACK threshold, in segments' worth of SACKed data above a hole.
pub const DUP_THRESH: u32 = 3;

/// One transmitted segment awaiting acknowledgement.
#[derive(Clone, Debug)]
pub struct Sent<S> {
    /// First sequence number.
    pub seq: TcpSeq,
    /// Data, `None` for a bare FIN.
    pub payload: Option<Payload<S>>,
    /// The segment carries our FIN (after its data).
    pub fin: bool,
    /// Last (re)transmission time.
    pub sent_at: Instant,
    /// Retransmitted at least once (no RTT sample from it: Karn).
    pub retransmitted: bool,
    /// Covered by a SACK block.
    pub sacked: bool,
    /// Deemed lost and not yet retransmitted since.
    pub lost: bool,
}

impl<S: SharedBuf> Sent<S> {
    /// Sequence space occupied: data plus one for FIN.
    #[inline]
    pub fn len(&self) -> u32 {
        self.payload.as_ref().map_or(0, |p| p.len() as u32) + u32::from(self.fin)
    }

    /// True for a zero-length entry (never stored).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One past the last sequence number.
    #[inline]
    pub fn end(&self) -> TcpSeq {
        self.seq + self.len()
    }
}

/// Unsent data and the retransmission scoreboard.
#[derive(Debug)]
pub struct SendQueue<S> {
    /// Data handed to `send` and not yet transmitted, in order.
    unsent: VecDeque<Payload<S>>,
    /// Sum of `unsent` lengths.
    unsent_bytes: usize,
    /// Sent segments, contiguous and in sequence order from `snd_una`.
    flight: VecDeque<Sent<S>>,
    /// Sum of `flight` lengths (sequence space, FIN included).
    flight_bytes: u32,
    /// Sum of the lengths of SACKed `flight` entries.
    sacked_bytes: u32,
    /// Sum of the lengths of `flight` entries marked lost.
    lost_bytes: u32,
    /// `flight` entries retransmitted at least once.
    retransmitted_out: usize,
    /// The latest transmission time of any segment delivered (cumulatively ACKed or
    /// SACKed): RACK's `xmit_ts` (RFC 8985).
    delivered_sent_at: Option<Instant>,
}

impl<S: SharedBuf> Default for SendQueue<S> {
    fn default() -> Self {
        SendQueue {
            unsent: VecDeque::new(),
            unsent_bytes: 0,
            flight: VecDeque::new(),
            flight_bytes: 0,
            sacked_bytes: 0,
            lost_bytes: 0,
            retransmitted_out: 0,
            delivered_sent_at: None,
        }
    }
}

impl<S: SharedBuf> SendQueue<S> {
    /// Appends application data.
    pub fn push(&mut self, p: Payload<S>) {
        if !p.is_empty() {
            self.unsent_bytes += p.len();
            self.unsent.push_back(p);
        }
    }

    /// Bytes not yet sent.
    pub fn unsent_bytes(&self) -> usize {
        self.unsent_bytes
    }

    /// Length of the next unsent payload piece (a segment never spans two).
    pub fn next_unsent_len(&self) -> usize {
        self.unsent.front().map_or(0, Payload::len)
    }

    /// Sequence space in flight.
    pub fn flight_bytes(&self) -> u32 {
        self.flight_bytes
    }

    /// True when nothing is in flight.
    pub fn flight_is_empty(&self) -> bool {
        self.flight.is_empty()
    }

    /// Sequence space SACKed.
    pub fn sacked_bytes(&self) -> u32 {
        self.sacked_bytes
    }

    /// RFC 6675 `pipe`: in flight, neither SACKed nor deemed lost.
    pub fn pipe(&self) -> u32 {
        // SACKed and lost entries are disjoint subsets of the flight, so this never
        // saturates; saturating keeps a broken invariant from wrapping.
        self.flight_bytes
            .saturating_sub(self.sacked_bytes)
            .saturating_sub(self.lost_bytes)
    }

    /// Takes up to `max` bytes of unsent data (splitting a payload by offsets).
    pub fn take_unsent(&mut self, max: usize) -> Option<Payload<S>> {
        let front = self.unsent.front_mut()?;
        let p = if front.len() <= max {
            self.unsent.pop_front()?
        } else {
            front.split_to(max)
        };
        self.unsent_bytes -= p.len();
        (!p.is_empty()).then_some(p)
    }

    /// Records a first transmission (the caller keeps the sequence contiguous).
    pub fn record_sent(&mut self, sent: Sent<S>) {
        self.flight_bytes += sent.len();
        self.flight.push_back(sent);
    }

    /// The first segment deemed lost, with its index.
    pub fn next_lost(&self) -> Option<(usize, &Sent<S>)> {
        if self.lost_bytes == 0 {
            return None;
        }
        self.flight.iter().enumerate().find(|(_, s)| s.lost)
    }

    /// Marks entry `i` retransmitted at `now` and returns a copy to send.
    pub fn retransmit(&mut self, i: usize, now: Instant) -> Option<Sent<S>> {
        let s = self.flight.get_mut(i)?;
        if s.lost {
            s.lost = false;
            self.lost_bytes -= s.len();
        }
        if !s.retransmitted {
            s.retransmitted = true;
            self.retransmitted_out += 1;
        }
        s.sent_at = now;
        Some(s.clone())
    }

    /// The last segment sent (the tail-loss probe retransmits it).
    pub fn last_index(&self) -> Option<usize> {
        self.flight.len().checked_sub(1)
    }

    /// Removes everything below `ack`. Returns the bytes newly acknowledged and, for
    /// an RTT sample, the send time of the newest fully acknowledged segment if it was
    /// never retransmitted (Karn's rule).
    pub fn ack(&mut self, ack: TcpSeq) -> (u32, Option<Instant>) {
        let mut acked = 0;
        let mut sample = None;
        while let Some(front) = self.flight.front_mut() {
            if front.end().before_eq(ack) {
                let len = front.len();
                sample = (!front.retransmitted).then_some(front.sent_at);
                self.delivered_sent_at = self.delivered_sent_at.max(Some(front.sent_at));
                if front.retransmitted {
                    self.retransmitted_out -= 1;
                }
                if front.sacked {
                    self.sacked_bytes -= len;
                }
                if front.lost {
                    self.lost_bytes -= len;
                }
                self.flight_bytes -= len;
                acked += len;
                self.flight.pop_front();
            } else {
                if front.seq.before(ack) {
                    let cut = ack.offset_from(front.seq);
                    if let Some(p) = front.payload.as_mut() {
                        p.advance(cut as usize);
                    }
                    front.seq = ack;
                    for (flag, total) in [
                        (front.sacked, &mut self.sacked_bytes),
                        (front.lost, &mut self.lost_bytes),
                    ] {
                        if flag {
                            *total -= cut;
                        }
                    }
                    self.flight_bytes -= cut;
                    acked += cut;
                }
                break;
            }
        }
        (acked, sample)
    }

    /// Marks the segments wholly inside `[left, right)` SACKed; returns bytes newly
    /// SACKed.
    pub fn sack(&mut self, left: TcpSeq, right: TcpSeq) -> u32 {
        let Some(una) = self.flight.front().map(|s| s.seq) else {
            return 0;
        };
        let start = self
            .flight
            .partition_point(|s| s.seq.offset_from(una) < left.offset_from(una));
        let mut newly = 0;
        for s in self.flight.iter_mut().skip(start) {
            if !s.end().before_eq(right) {
                break;
            }
            if !s.sacked {
                s.sacked = true;
                newly += s.len();
                self.delivered_sent_at = self.delivered_sent_at.max(Some(s.sent_at));
                if s.lost {
                    s.lost = false;
                    self.lost_bytes -= s.len();
                }
            }
        }
        self.sacked_bytes += newly;
        newly
    }

    /// RFC 6675 `IsLost`: marks every unSACKed, not yet lost segment with at least
    /// [`DUP_THRESH`] × `mss` SACKed bytes above it lost; returns whether any was.
    pub fn mark_lost_by_sack(&mut self, mss: u32) -> bool {
        let threshold = DUP_THRESH * mss;
        if self.sacked_bytes < threshold {
            return false;
        }
        let mut above = 0u32;
        let mut any = false;
        for s in self.flight.iter_mut().rev() {
            if s.sacked {
                above += s.len();
            } else if above >= threshold && !s.lost && !s.retransmitted {
                s.lost = true;
                self.lost_bytes += s.len();
                any = true;
            }
        }
        any
    }

    /// RACK for retransmissions (RFC 8985 §6.2, applied where duplicate-ACK counting
    /// cannot help): a retransmitted segment, neither SACKed nor already marked lost, is
    /// lost again once a segment sent more than `reo_wnd` after it has been delivered.
    /// Without this only the RTO recovers a lost retransmission. Returns whether any
    /// was marked.
    pub fn mark_lost_retransmissions(&mut self, reo_wnd: Duration) -> bool {
        let Some(latest) = self.delivered_sent_at else {
            return false;
        };
        if self.retransmitted_out == 0 {
            return false;
        }
        let mut any = false;
        for s in self.flight.iter_mut() {
            if s.retransmitted && !s.sacked && !s.lost && s.sent_at + reo_wnd < latest {
                s.lost = true;
                self.lost_bytes += s.len();
                any = true;
            }
        }
        any
    }

    /// Marks the first unacknowledged segment lost (NewReno and partial ACKs).
    pub fn mark_first_lost(&mut self) {
        if let Some(s) = self.flight.front_mut() {
            if !s.lost && !s.sacked {
                s.lost = true;
                self.lost_bytes += s.len();
            }
        }
    }

    /// A timeout: everything not SACKed is lost and eligible for retransmission again.
    pub fn mark_all_lost(&mut self) {
        self.lost_bytes = 0;
        for s in self.flight.iter_mut() {
            s.lost = !s.sacked;
            if s.lost {
                self.lost_bytes += s.len();
            }
        }
    }

    /// Drops everything (connection reset or closed).
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::heap::{HeapPool, HeapShared};
    use crate::port::PacketBuf;

    fn queue(pool: &HeapPool, base: TcpSeq, segs: usize, len: usize) -> SendQueue<HeapShared> {
        let mut q = SendQueue::default();
        for i in 0..segs {
            let p = Payload::new(pool.alloc_from(&vec![i as u8; len]).unwrap().into_shared());
            q.push(p);
            let payload = q.take_unsent(len);
            q.record_sent(Sent {
                seq: base + (i * len) as u32,
                payload,
                fin: false,
                sent_at: Instant::from_millis(i as u64),
                retransmitted: false,
                sacked: false,
                lost: false,
            });
        }
        q
    }

    /// The counters match the entries.
    fn check(q: &SendQueue<HeapShared>) {
        let sum = |f: fn(&Sent<HeapShared>) -> bool| {
            q.flight.iter().filter(|s| f(s)).map(Sent::len).sum::<u32>()
        };
        assert_eq!(q.flight_bytes, sum(|_| true));
        assert_eq!(q.sacked_bytes, sum(|s| s.sacked));
        assert_eq!(q.lost_bytes, sum(|s| s.lost));
        assert!(q.flight.iter().all(|s| !(s.sacked && s.lost)));
        assert!(q.pipe() <= q.flight_bytes);
    }

    #[test]
    fn a_lost_retransmission_is_found_when_later_data_arrives() {
        let pool = HeapPool::new(16);
        // Four 100-byte segments sent at 0, 1, 2 and 3 ms.
        let mut q = queue(&pool, TcpSeq::new(0), 4, 100);
        q.retransmit(0, Instant::from_millis(10));
        assert!(
            !q.mark_lost_retransmissions(Duration::ZERO),
            "nothing delivered yet"
        );
        // Delivery of a segment first sent before the retransmission says nothing.
        q.sack(TcpSeq::new(100), TcpSeq::new(200));
        assert!(!q.mark_lost_retransmissions(Duration::ZERO));
        // A segment sent after it (re-sent at 12 ms) is SACKed: the retransmission at
        // 10 ms is lost, unless the reordering window covers the difference.
        q.retransmit(3, Instant::from_millis(12));
        q.sack(TcpSeq::new(300), TcpSeq::new(400));
        assert!(!q.mark_lost_retransmissions(Duration::from_millis(5)));
        assert!(q.mark_lost_retransmissions(Duration::from_millis(1)));
        assert_eq!(q.next_lost().map(|(i, _)| i), Some(0));
        assert!(!q.mark_lost_retransmissions(Duration::ZERO), "marked once");
        check(&q);
        // Acknowledging everything leaves no retransmission outstanding.
        q.ack(TcpSeq::new(400));
        assert_eq!(q.retransmitted_out, 0);
        check(&q);
    }

    #[test]
    fn sack_marks_losses_and_partial_ack_trims() {
        let pool = HeapPool::new(16);
        let base = TcpSeq::new(u32::MAX - 100);
        let mut q = queue(&pool, base, 6, 100);
        // SACK segments 2..6: three segments' worth above 0 and 1.
        assert_eq!(q.sack(base + 200, base + 600), 400);
        assert!(q.mark_lost_by_sack(100));
        assert_eq!(q.next_lost().map(|(i, _)| i), Some(0));
        assert_eq!(q.pipe(), 0);
        let r = q.retransmit(0, Instant::from_millis(50)).unwrap();
        assert!(r.retransmitted && !r.lost);
        drop(r);
        check(&q);
        // Partial ACK into segment 1: trimmed, no RTT sample from the retransmission.
        let (acked, sample) = q.ack(base + 150);
        assert_eq!((acked, sample), (150, None));
        assert_eq!(
            q.flight.front().map(|s| (s.seq, s.len())),
            Some((base + 150, 50))
        );
        check(&q);
        let (acked, sample) = q.ack(base + 600);
        assert_eq!((acked, sample), (450, Some(Instant::from_millis(5))));
        assert!(q.flight_is_empty());
        check(&q);
        assert_eq!(pool.in_use(), 0);
    }

    proptest::proptest! {
        #[test]
        fn counters_stay_consistent(ops in proptest::collection::vec((0u8..5, 0u32..1200, 0u32..1200), 1..60)) {
            let pool = HeapPool::new(32);
            let base = TcpSeq::new(7);
            let mut q = queue(&pool, base, 10, 100);
            let mut una = base;
            for (op, a, b) in ops {
                match op {
                    0 => {
                        let ack = base + a.min(1000);
                        if ack.after(una) {
                            q.ack(ack);
                            una = ack;
                        }
                    }
                    1 => {
                        q.sack(base + a.min(b), base + a.max(b));
                    }
                    2 => {
                        q.mark_lost_by_sack(100);
                    }
                    3 => q.mark_all_lost(),
                    _ => {
                        if let Some((i, _)) = q.next_lost() {
                            q.retransmit(i, Instant::default());
                        }
                    }
                }
                check(&q);
            }
        }
    }
}
