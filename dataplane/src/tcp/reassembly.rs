//! Out-of-order receive storage: payload references keyed by sequence number, disjoint
//! and sorted, bounded in segments (so in holes) and in bytes.

use super::payload::Payload;
use crate::port::SharedBuf;
use crate::seq::TcpSeq;
use arrayvec::ArrayVec;
use std::collections::VecDeque;

/// Out-of-order segments waiting for the hole before them to fill.
#[derive(Debug)]
pub struct Reassembly<S> {
    /// Disjoint, non-empty ranges sorted by sequence, all after the receiver's `rcv_nxt`.
    segs: VecDeque<(TcpSeq, Payload<S>)>,
    /// Sum of the lengths in `segs`, ≤ `max_bytes`.
    bytes: usize,
    /// Most segments held.
    max_segs: usize,
    /// Most bytes held.
    max_bytes: usize,
    /// The range of the latest segment stored, reported first in SACK (RFC 2018 §4).
    latest: Option<TcpSeq>,
    /// Segments dropped for lack of room.
    pub dropped_segs: u64,
    /// Bytes dropped for lack of room.
    pub dropped_bytes: u64,
}

impl<S: SharedBuf> Reassembly<S> {
    /// Empty storage holding at most `max_segs` segments and `max_bytes` bytes.
    pub fn new(max_segs: usize, max_bytes: usize) -> Self {
        Reassembly {
            segs: VecDeque::new(),
            bytes: 0,
            max_segs,
            max_bytes,
            latest: None,
            dropped_segs: 0,
            dropped_bytes: 0,
        }
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Stores `payload` starting at `seq` (after `rcv_nxt`), trimming what overlaps data
    /// already held. Returns false when it was dropped for lack of room.
    pub fn insert(&mut self, rcv_nxt: TcpSeq, seq: TcpSeq, mut payload: Payload<S>) -> bool {
        let key = |s: TcpSeq| s.offset_from(rcv_nxt);
        let mut start = seq;
        let pos = self.segs.partition_point(|(s, _)| key(*s) <= key(start));
        if let Some((ps, pp)) = pos.checked_sub(1).and_then(|i| self.segs.get(i)) {
            let prev_end = *ps + pp.len() as u32;
            if prev_end.after(start) {
                let cut = prev_end.offset_from(start) as usize;
                payload.advance(cut);
                start = prev_end;
            }
        }
        // Drop held segments the new one covers entirely; cut the new one at the next.
        while let Some((ns, np)) = self.segs.get(pos) {
            let end = start + payload.len() as u32;
            if !ns.before(end) {
                break;
            }
            if (*ns + np.len() as u32).before_eq(end) {
                self.bytes -= np.len();
                self.segs.remove(pos);
            } else {
                payload.truncate(ns.offset_from(start) as usize);
                break;
            }
        }
        if payload.is_empty() {
            return true;
        }
        if self.segs.len() >= self.max_segs || self.bytes + payload.len() > self.max_bytes {
            self.dropped_segs += 1;
            self.dropped_bytes += payload.len() as u64;
            return false;
        }
        self.bytes += payload.len();
        self.latest = Some(start);
        self.segs.insert(pos, (start, payload));
        true
    }

    /// Takes the next payload that starts at or before `rcv_nxt`, trimmed to start at it;
    /// wholly old segments are discarded on the way.
    pub fn pop_ready(&mut self, rcv_nxt: TcpSeq) -> Option<Payload<S>> {
        while let Some((s, _)) = self.segs.front() {
            if s.after(rcv_nxt) {
                return None;
            }
            let (s, mut p) = self.segs.pop_front()?;
            self.bytes -= p.len();
            let skip = rcv_nxt.offset_from(s) as usize;
            if skip < p.len() {
                p.advance(skip);
                return Some(p);
            }
        }
        None
    }

    /// SACK blocks for what is held, at most `max`: the one holding the latest arrival
    /// first, then the others in sequence order.
    pub fn sack_blocks(&self, max: usize) -> ArrayVec<(TcpSeq, TcpSeq), 4> {
        let mut out = ArrayVec::new();
        let max = max.min(4);
        if max == 0 {
            return out;
        }
        let mut ranges = self.ranges();
        if let Some(latest) = self.latest {
            if let Some(r) = self
                .ranges()
                .find(|(l, r)| l.before_eq(latest) && latest.before(*r))
            {
                out.push(r);
            }
        }
        while out.len() < max {
            match ranges.next() {
                Some(r) if out.first() == Some(&r) => {}
                Some(r) => out.push(r),
                None => break,
            }
        }
        out
    }

    /// Contiguous ranges of held data.
    fn ranges(&self) -> impl Iterator<Item = (TcpSeq, TcpSeq)> + '_ {
        let mut it = self.segs.iter().peekable();
        std::iter::from_fn(move || {
            let (s, p) = it.next()?;
            let mut end = *s + p.len() as u32;
            while let Some((ns, np)) = it.peek() {
                if *ns != end {
                    break;
                }
                end = *ns + np.len() as u32;
                it.next();
            }
            Some((*s, end))
        })
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.segs.clear();
        self.bytes = 0;
        self.latest = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::heap::{HeapPool, HeapShared};
    use crate::port::PacketBuf;

    fn pay(pool: &HeapPool, bytes: &[u8]) -> Payload<HeapShared> {
        Payload::new(pool.alloc_from(bytes).unwrap().into_shared())
    }

    #[test]
    fn overlaps_are_trimmed_and_ranges_merge() {
        let pool = HeapPool::new(16);
        let mut r = Reassembly::new(8, 1000);
        let base = TcpSeq::new(u32::MAX - 3);
        assert!(r.insert(base, base + 10, pay(&pool, b"0123456789")));
        assert!(r.insert(base, base + 5, pay(&pool, b"abcdefghij")));
        assert!(r.insert(base, base + 30, pay(&pool, b"xy")));
        assert_eq!(r.bytes(), 17);
        let blocks = r.sack_blocks(4);
        assert_eq!(
            blocks.as_slice(),
            &[(base + 30, base + 32), (base + 5, base + 20)]
        );
        // Covering a held segment entirely replaces it.
        assert!(r.insert(base, base + 29, pay(&pool, b"WXYZ")));
        assert_eq!(r.bytes(), 19);
        assert!(r.pop_ready(base).is_none());
        // Data held first wins; the newcomer keeps only what was missing.
        assert_eq!(r.pop_ready(base + 7).unwrap().bytes(), b"cde".as_slice());
        assert_eq!(
            r.pop_ready(base + 12).unwrap().bytes(),
            b"23456789".as_slice()
        );
        assert!(r.pop_ready(base + 20).is_none());
        r.clear();
        assert_eq!(pool.in_use(), 0);
    }

    proptest::proptest! {
        /// Against a model: any arrival order of overlapping pieces of a stream
        /// reassembles to the stream, whatever the start (wrap included).
        #[test]
        fn reassembles_like_a_byte_array(
            base: u32,
            pieces in proptest::collection::vec((0usize..200, 1usize..40), 1..40),
        ) {
            let pool = HeapPool::new(64);
            let stream: Vec<u8> = (0..240u32).map(|i| (i * 31 % 253) as u8).collect();
            let base = TcpSeq::new(base);
            let mut r = Reassembly::new(64, 10_000);
            let mut have = vec![false; stream.len()];
            // Byte 0 arrives last, so everything before it is out of order.
            for &(off, len) in pieces.iter().filter(|(off, _)| *off > 0) {
                let end = (off + len).min(stream.len());
                r.insert(base, base + off as u32, pay(&pool, &stream[off..end]));
                have[off..end].iter_mut().for_each(|h| *h = true);
            }
            r.insert(base, base, pay(&pool, &stream[..1]));
            have[0] = true;
            let mut got = Vec::new();
            let mut next = base;
            while let Some(p) = r.pop_ready(next) {
                next += p.len() as u32;
                got.extend_from_slice(p.bytes());
            }
            let want = have.iter().take_while(|h| **h).count();
            proptest::prop_assert_eq!(&got[..], &stream[..want]);
            r.clear();
            proptest::prop_assert_eq!(pool.in_use(), 0);
        }
    }

    #[test]
    fn bounded_in_segments_and_bytes() {
        let pool = HeapPool::new(16);
        let mut r = Reassembly::new(2, 6);
        let base = TcpSeq::new(0);
        assert!(r.insert(base, base + 10, pay(&pool, b"ab")));
        assert!(r.insert(base, base + 20, pay(&pool, b"cd")));
        assert!(!r.insert(base, base + 30, pay(&pool, b"ef")));
        let mut r = Reassembly::new(8, 3);
        assert!(r.insert(base, base + 10, pay(&pool, b"ab")));
        assert!(!r.insert(base, base + 20, pay(&pool, b"cd")));
        assert_eq!((r.dropped_segs, r.dropped_bytes), (1, 2));
    }
}
