//! Connection-level (DSN) reassembly of the data that arrives over all subflows, zero
//! copy: payloads are held by reference, trimmed by moving offsets, and handed out in
//! DSN order.
//!
//! # Structure
//!
//! Two queues of [`Payload`] pieces:
//! - `ready`: a ring ([`VecDeque`]) of contiguous in-order pieces, from the reader's
//!   position up to the DATA_ACK (`rcv_nxt`). The fast path — the next expected DSN
//!   arriving with nothing out of order held — is a window check and a `push_back`:
//!   O(1), no allocation once the ring has grown to its working size;
//! - `ooo`: a sorted ring of disjoint out-of-order pieces after `rcv_nxt`, at most
//!   [`Limits::max_ooo`] of them. It is searched by binary search; inserting or removing
//!   in the middle moves at most `max_ooo` small entries, which for the tens of pieces that
//!   4–8 reordering subflows produce is cheaper than a tree's pointer chasing and node
//!   allocation (`bench/benches/reassembly.rs` measures it against a `BTreeMap`). Pieces
//!   that fill the hole at `rcv_nxt` leave from its front in O(1).
//!
//! # Policy
//!
//! The first copy of a byte wins: a new payload is trimmed against what is held or
//! already delivered, and split (by reference) around held pieces it overlaps, so no byte
//! is delivered twice and held pieces never change. Discarded bytes are counted in
//! [`ReassemblyStats`]. Only DSNs in `[rcv_nxt, right_edge)` are held, and before a
//! DATA_FIN only; the right edge never moves back (RFC 8684 §3.3.4). It moves with the
//! window offered for the buffer's free space ([`Reassembly::set_window`]) and with
//! what the subflows actually advertised ([`Reassembly::advertised`]: a subflow's TCP
//! window never shrinks, so it may offer more, as Linux's `rcv_wnd_sent`), capped so
//! that [`Reassembly::queued_bytes`] never exceeds twice [`Limits::buffer`].

use std::collections::VecDeque;

use crate::port::SharedBuf;
use crate::seq::Dsn;
use crate::tcp::Payload;

/// The bounds of one connection's reassembly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Receive buffer, bytes: the most data held (in order or not).
    pub buffer: u32,
    /// Most out-of-order pieces held: the cap on holes.
    pub max_ooo: usize,
    /// Most pieces held in all, in order or not: bounds the per-piece overhead when the
    /// peer sends tiny segments. The last slot is kept for in-order data, so held
    /// out-of-order pieces never keep the hole from filling while the reader reads.
    pub max_pieces: usize,
}

impl Default for Limits {
    /// 4 MiB of buffer (Linux's `tcp_rmem` maximum order), 256 out-of-order pieces,
    /// 8192 pieces in all.
    fn default() -> Self {
        Limits {
            buffer: 4 << 20,
            max_ooo: 256,
            max_pieces: 8192,
        }
    }
}

/// What reassembly discarded, over the connection's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Bytes received again: already delivered, already held, or overlapping a held
    /// piece (Linux MIB DuplicateData counts the segments).
    pub duplicate_bytes: u64,
    /// Bytes at or beyond the window's right edge or the DATA_FIN (Linux MIB
    /// NoDSSInWindow counts the segments).
    pub beyond_window_bytes: u64,
    /// Pieces refused because [`Limits::max_ooo`] or [`Limits::max_pieces`] were held.
    pub too_many_holes: u64,
    /// Bytes of the pieces counted in `too_many_holes`.
    pub too_many_holes_bytes: u64,
    /// Out-of-order bytes given up under memory pressure ([`Reassembly::prune`]).
    pub pruned_bytes: u64,
}

/// What became of one pushed payload: `stored + duplicate + dropped` is its length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushResult {
    /// New bytes now held.
    pub stored: usize,
    /// Bytes discarded as already received or delivered.
    pub duplicate: usize,
    /// Bytes discarded for lack of window or of room for another piece.
    pub dropped: usize,
    /// True when the DATA_ACK moved: in-order data became readable.
    pub advanced: bool,
}

/// Why [`Reassembly::set_fin`] refused a DATA_FIN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FinError {
    /// A DATA_FIN at another DSN was already signalled.
    #[error("DATA_FIN conflicts with an earlier one")]
    Conflict,
    /// The DSN lies before data already received in order.
    #[error("DATA_FIN before data already received")]
    Stale,
}

/// Where the connection-level DATA_FIN stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fin {
    /// None signalled.
    None,
    /// Signalled at this DSN, not yet reached by `rcv_nxt`.
    Pending(Dsn),
    /// Reached and acknowledged: `rcv_nxt` is its DSN + 1.
    Reached,
}

/// DSN-ordered reassembly of one connection's incoming data, over all subflows.
#[derive(Debug)]
pub struct Reassembly<S> {
    /// In-order pieces not yet read: contiguous, non-empty, ending at `rcv_nxt` (or at
    /// the DATA_FIN's DSN once it is reached).
    ready: VecDeque<Payload<S>>,
    /// Out-of-order pieces: non-empty, disjoint, sorted, each starting after `rcv_nxt`
    /// and ending at or before the right edge and a pending DATA_FIN.
    ooo: VecDeque<(Dsn, Payload<S>)>,
    /// The DATA_ACK: the first DSN not yet received in order.
    rcv_nxt: Dsn,
    /// First DSN beyond the window; never before `rcv_nxt`, never moves back.
    right_edge: Dsn,
    /// Bytes in `ready` and `ooo`, ≤ 2 × `limits.buffer`.
    queued: usize,
    /// Bytes in `ready` (readable, not yet read).
    ready_bytes: usize,
    /// The DATA_FIN's state.
    fin: Fin,
    /// Configured bounds.
    limits: Limits,
    /// Discard counters.
    stats: ReassemblyStats,
}

impl<S: SharedBuf> Reassembly<S> {
    /// Empty reassembly expecting `start` (the peer's IDSN + 1) with a window of the whole
    /// buffer.
    pub fn new(start: Dsn, limits: Limits) -> Self {
        Reassembly {
            ready: VecDeque::new(),
            ooo: VecDeque::new(),
            rcv_nxt: start,
            right_edge: start + u64::from(limits.buffer),
            queued: 0,
            ready_bytes: 0,
            fin: Fin::None,
            limits,
            stats: ReassemblyStats::default(),
        }
    }

    /// The DATA_ACK to send: the first DSN not yet received in order (one past the
    /// DATA_FIN once it is reached).
    #[inline]
    pub fn rcv_nxt(&self) -> Dsn {
        self.rcv_nxt
    }

    /// First DSN beyond the receive window.
    #[inline]
    pub fn right_edge(&self) -> Dsn {
        self.right_edge
    }

    /// The window to advertise, relative to [`Self::rcv_nxt`].
    #[inline]
    pub fn window(&self) -> u64 {
        self.right_edge.offset_from(self.rcv_nxt)
    }

    /// Offers `bytes` of window beyond the DATA_ACK, clamped to the buffer less the
    /// readable bytes not yet read (held out-of-order data lies inside the window, so
    /// it takes no extra room); the right edge only ever moves forward.
    pub fn set_window(&mut self, bytes: u32) {
        let free = (self.limits.buffer as usize).saturating_sub(self.ready_bytes);
        let offer = (bytes as usize).min(free) as u64;
        self.right_edge = self.right_edge.latest(self.rcv_nxt + offer);
    }

    /// Records that a subflow advertised `bytes` of window beyond the current DATA_ACK:
    /// the peer may send up to there. Capped at two buffers held in all.
    pub fn advertised(&mut self, bytes: u32) {
        let room = (2 * self.limits.buffer as usize).saturating_sub(self.ready_bytes);
        let offer = (bytes as usize).min(room) as u64;
        self.right_edge = self.right_edge.latest(self.rcv_nxt + offer);
    }

    /// Readable bytes not yet read.
    #[inline]
    pub fn ready_bytes(&self) -> usize {
        self.ready_bytes
    }

    /// Bytes held, readable or not; at most [`Limits::buffer`].
    #[inline]
    pub fn queued_bytes(&self) -> usize {
        self.queued
    }

    /// Pieces held, readable or not; at most [`Limits::max_pieces`].
    #[inline]
    pub fn pieces(&self) -> usize {
        self.ready.len() + self.ooo.len()
    }

    /// Discard counters so far.
    #[inline]
    pub fn stats(&self) -> &ReassemblyStats {
        &self.stats
    }

    /// Length of the payload [`Self::pop`] would return next.
    #[inline]
    pub fn peek_len(&self) -> Option<usize> {
        self.ready.front().map(Payload::len)
    }

    /// Takes the next in-order payload, if any.
    #[inline]
    pub fn pop(&mut self) -> Option<Payload<S>> {
        let p = self.ready.pop_front()?;
        self.queued -= p.len();
        self.ready_bytes -= p.len();
        Some(p)
    }

    /// True once every byte up to the DATA_FIN arrived (`rcv_nxt` counts the
    /// DATA_FIN then), read or not.
    #[inline]
    pub fn fin_in_order(&self) -> bool {
        self.fin == Fin::Reached
    }

    /// True once the DATA_FIN was reached and every byte before it was read.
    #[inline]
    pub fn fin_reached(&self) -> bool {
        self.fin == Fin::Reached && self.ready.is_empty()
    }

    /// Records the peer's DATA_FIN at `dsn` (a retransmission at the same DSN is
    /// accepted again). Held data at or after it is discarded as beyond the window.
    pub fn set_fin(&mut self, dsn: Dsn) -> Result<(), FinError> {
        match self.fin {
            Fin::Pending(at) if at == dsn => return Ok(()),
            Fin::Reached if self.rcv_nxt == dsn + 1 => return Ok(()),
            Fin::Pending(_) | Fin::Reached => return Err(FinError::Conflict),
            Fin::None if dsn.before(self.rcv_nxt) => return Err(FinError::Stale),
            Fin::None => {}
        }
        let cut = dsn.offset_from(self.rcv_nxt);
        while let Some((start, p)) = self.ooo.back_mut() {
            let off = start.offset_from(self.rcv_nxt);
            let end = off + p.len() as u64;
            if end <= cut {
                break;
            }
            let keep = cut.saturating_sub(off) as usize;
            let lost = p.len() - keep;
            self.queued -= lost;
            self.stats.beyond_window_bytes += lost as u64;
            if keep == 0 {
                self.ooo.pop_back();
            } else {
                p.truncate(keep);
            }
        }
        self.fin = Fin::Pending(dsn);
        self.reach_fin();
        Ok(())
    }

    /// Accepts `payload` carrying the bytes from `dsn` on: keeps what is new and inside
    /// the window, makes in-order data readable at once.
    pub fn push(&mut self, dsn: Dsn, mut payload: Payload<S>) -> PushResult {
        let mut res = PushResult::default();
        // Bytes before rcv_nxt were already received.
        let mut start = 0u64;
        if dsn.before(self.rcv_nxt) {
            let old = self.rcv_nxt.offset_from(dsn).min(payload.len() as u64) as usize;
            payload.advance(old);
            res.duplicate = old;
        } else {
            start = dsn.offset_from(self.rcv_nxt);
        }
        // Bytes at or beyond the window's end (or the DATA_FIN) are not held.
        let limit = self.limit();
        let fits = limit.saturating_sub(start).min(payload.len() as u64) as usize;
        res.dropped = payload.len() - fits;
        payload.truncate(fits);
        self.stats.beyond_window_bytes += res.dropped as u64;
        if payload.is_empty() {
            self.stats.duplicate_bytes += res.duplicate as u64;
            return res;
        }
        if start == 0 && self.ooo.is_empty() && self.pieces() < self.limits.max_pieces {
            // Fast path: in order, no hole to fill.
            res.stored = payload.len();
            res.advanced = true;
            self.queued += payload.len();
            self.append_ready(payload);
        } else {
            self.insert(start, payload, &mut res);
            res.advanced = self.drain_ooo();
        }
        self.stats.duplicate_bytes += res.duplicate as u64;
        self.reach_fin();
        res
    }

    /// Offset from `rcv_nxt` of the first DSN that may not be held.
    #[inline]
    fn limit(&self) -> u64 {
        let window = self.window();
        match self.fin {
            Fin::None => window,
            Fin::Pending(at) => window.min(at.offset_from(self.rcv_nxt)),
            Fin::Reached => 0,
        }
    }

    /// Makes held bytes at `rcv_nxt` readable.
    #[inline]
    fn append_ready(&mut self, payload: Payload<S>) {
        self.rcv_nxt += payload.len() as u64;
        self.ready_bytes += payload.len();
        self.ready.push_back(payload);
    }

    /// Stores `payload` (starting `start` bytes after `rcv_nxt`, inside the limit) in the
    /// out-of-order queue, split around held pieces so only new bytes are kept.
    fn insert(&mut self, mut start: u64, mut payload: Payload<S>, res: &mut PushResult) {
        let base = self.rcv_nxt;
        let off = |d: Dsn| d.offset_from(base);
        let mut pos = self.ooo.partition_point(|(d, _)| off(*d) < start);
        if let Some((d, p)) = pos.checked_sub(1).and_then(|i| self.ooo.get(i)) {
            let overlap = (off(*d) + p.len() as u64).saturating_sub(start);
            let overlap = overlap.min(payload.len() as u64);
            payload.advance(overlap as usize);
            res.duplicate += overlap as usize;
            start += overlap;
        }
        while !payload.is_empty() {
            let end = start + payload.len() as u64;
            let next = match self.ooo.get(pos) {
                Some((d, p)) if off(*d) < end => (off(*d), off(*d) + p.len() as u64),
                _ => {
                    self.store_piece(pos, start, payload, res);
                    return;
                }
            };
            let gap = (next.0 - start) as usize;
            if gap > 0 {
                let front = payload.split_to(gap);
                if !self.store_piece(pos, start, front, res) {
                    self.refuse(payload, res);
                    return;
                }
                pos += 1;
            }
            let overlap = (next.1.min(end) - next.0) as usize;
            payload.advance(overlap);
            res.duplicate += overlap;
            start = next.1;
            pos += 1;
        }
    }

    /// Holds `piece` at index `pos` of the out-of-order queue if the piece caps allow,
    /// else counts it as refused; returns whether it was stored. A piece at `rcv_nxt`
    /// fills the hole: it escapes the out-of-order cap and may take the last slot, which
    /// out-of-order pieces leave free so they can never block the hole's filling.
    fn store_piece(
        &mut self,
        pos: usize,
        start: u64,
        piece: Payload<S>,
        res: &mut PushResult,
    ) -> bool {
        let room = if start == 0 {
            self.pieces() < self.limits.max_pieces
        } else {
            self.ooo.len() < self.limits.max_ooo && self.pieces() + 1 < self.limits.max_pieces
        };
        if !room {
            self.refuse(piece, res);
            return false;
        }
        res.stored += piece.len();
        self.queued += piece.len();
        self.ooo.insert(pos, (self.rcv_nxt + start, piece));
        true
    }

    /// Counts `piece` as dropped for lack of room.
    fn refuse(&mut self, piece: Payload<S>, res: &mut PushResult) {
        res.dropped += piece.len();
        self.stats.too_many_holes += 1;
        self.stats.too_many_holes_bytes += piece.len() as u64;
    }

    /// Moves the out-of-order pieces that now start at `rcv_nxt` to the readable queue;
    /// true when any did.
    fn drain_ooo(&mut self) -> bool {
        let mut moved = false;
        while self.ooo.front().is_some_and(|(d, _)| *d == self.rcv_nxt) {
            if let Some((_, p)) = self.ooo.pop_front() {
                self.append_ready(p);
                moved = true;
            }
        }
        moved
    }

    /// Gives up every out-of-order piece (their buffers go back to the pool; the
    /// peer's connection-level retransmission sends them again); returns the bytes.
    pub fn prune(&mut self) -> usize {
        let bytes: usize = self.ooo.drain(..).map(|(_, p)| p.len()).sum();
        self.queued -= bytes;
        self.stats.pruned_bytes += bytes as u64;
        bytes
    }

    /// Acknowledges a pending DATA_FIN once every byte before it arrived.
    fn reach_fin(&mut self) {
        if self.fin == Fin::Pending(self.rcv_nxt) {
            self.fin = Fin::Reached;
            self.rcv_nxt += 1;
            self.right_edge = self.right_edge.latest(self.rcv_nxt);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::heap::{HeapPool, HeapShared};
    use crate::port::PacketBuf;

    const START: u64 = 1000;

    /// Bytes `0..=255` repeated; byte `i` of the stream is `i as u8`.
    fn stream(pool: &HeapPool) -> HeapShared {
        let bytes: Vec<u8> = (0..2000u32).map(|i| i as u8).collect();
        pool.alloc_from(&bytes).map(PacketBuf::into_shared).unwrap()
    }

    fn piece(buf: &HeapShared, off: usize, len: usize) -> (Dsn, Payload<HeapShared>) {
        let p = Payload::slice(buf.clone(), off, len).unwrap();
        (Dsn::new(START) + off as u64, p)
    }

    fn small() -> Limits {
        Limits {
            buffer: 1000,
            max_ooo: 3,
            max_pieces: 6,
        }
    }

    fn read_all(r: &mut Reassembly<HeapShared>) -> Vec<u8> {
        std::iter::from_fn(|| r.pop())
            .flat_map(|p| p.bytes().to_vec())
            .collect()
    }

    #[test]
    fn in_order_is_readable_at_once() {
        let pool = HeapPool::new(1);
        let buf = stream(&pool);
        let mut r = Reassembly::new(Dsn::new(START), small());
        let (d, p) = piece(&buf, 0, 100);
        let res = r.push(d, p);
        assert_eq!((res.stored, res.advanced), (100, true));
        assert_eq!(r.rcv_nxt(), Dsn::new(START + 100));
        assert_eq!(r.queued_bytes(), 100);
        assert_eq!(read_all(&mut r), (0..100u8).collect::<Vec<_>>());
        assert_eq!(r.queued_bytes(), 0);
    }

    #[test]
    fn pruning_gives_up_out_of_order_data_and_the_hole_fills_again() {
        let pool = HeapPool::new(1);
        let buf = stream(&pool);
        let mut r = Reassembly::new(Dsn::new(START), small());
        for (off, len) in [(0, 50), (100, 50), (200, 50)] {
            let (d, p) = piece(&buf, off, len);
            r.push(d, p);
        }
        assert_eq!(r.queued_bytes(), 150);
        assert_eq!(r.prune(), 100);
        assert_eq!((r.queued_bytes(), r.stats().pruned_bytes), (50, 100));
        // The peer sends the rest again; the stream comes out whole.
        let (d, p) = piece(&buf, 50, 250);
        assert_eq!(r.push(d, p).stored, 250);
        assert_eq!(
            read_all(&mut r),
            (0..300u32).map(|i| i as u8).collect::<Vec<_>>()
        );
    }

    #[test]
    fn hole_fill_delivers_in_order_and_trims_overlaps() {
        let pool = HeapPool::new(1);
        let buf = stream(&pool);
        let mut r = Reassembly::new(Dsn::new(START), small());
        for (off, len) in [(200, 100), (100, 50), (120, 150)] {
            let (d, p) = piece(&buf, off, len);
            assert!(!r.push(d, p).advanced);
        }
        // 120..270 overlapped 120..150 and 200..270: 100 duplicate bytes, 150..200 new.
        assert_eq!(r.stats().duplicate_bytes, 100);
        let (d, p) = piece(&buf, 0, 130);
        let res = r.push(d, p);
        assert_eq!((res.stored, res.duplicate, res.advanced), (100, 30, true));
        assert_eq!(r.rcv_nxt(), Dsn::new(START + 300));
        let got = read_all(&mut r);
        assert_eq!(got, (0..300u32).map(|i| i as u8).collect::<Vec<_>>());
        // Already delivered data is a duplicate.
        let (d, p) = piece(&buf, 50, 10);
        assert_eq!(r.push(d, p).duplicate, 10);
        assert_eq!(r.stats().duplicate_bytes, 140);
    }

    #[test]
    fn window_bounds_data_and_never_shrinks() {
        let pool = HeapPool::new(1);
        let buf = stream(&pool);
        let mut r = Reassembly::new(Dsn::new(START), small());
        assert_eq!(r.right_edge(), Dsn::new(START + 1000));
        let (d, p) = piece(&buf, 900, 200);
        let res = r.push(d, p);
        assert_eq!((res.stored, res.dropped), (100, 100));
        assert_eq!(r.stats().beyond_window_bytes, 100);
        let (d, p) = piece(&buf, 0, 300);
        r.push(d, p);
        // 300 unread in-order bytes: an offer of 1000 is clamped to 700 beyond the
        // DATA_ACK (300), and a smaller offer does not pull the edge back.
        r.set_window(1000);
        assert_eq!(r.right_edge(), Dsn::new(START + 1000));
        r.set_window(10);
        assert_eq!(r.right_edge(), Dsn::new(START + 1000));
        // Once read, the whole buffer is offered again: the 100 bytes held out of order
        // lie inside the window and take no extra room.
        read_all(&mut r);
        r.set_window(1000);
        assert_eq!(r.right_edge(), Dsn::new(START + 1300));
        assert_eq!(r.window(), 1000);
    }

    #[test]
    fn what_a_subflow_advertised_is_taken_up_to_two_buffers() {
        let pool = HeapPool::new(1);
        let buf = stream(&pool);
        let mut r = Reassembly::new(Dsn::new(START), small());
        let (d, p) = piece(&buf, 0, 900);
        r.push(d, p);
        r.set_window(0);
        assert_eq!(r.right_edge(), Dsn::new(START + 1000));
        // A subflow's never-shrinking TCP window offered 800 past the DATA_ACK (900).
        r.advertised(800);
        assert_eq!(r.right_edge(), Dsn::new(START + 1700));
        let (d, p) = piece(&buf, 900, 800);
        assert_eq!(r.push(d, p).stored, 800);
        // Never more than two buffers held: 1700 unread, 300 more at most.
        r.advertised(1000);
        assert_eq!(r.right_edge(), Dsn::new(START + 2000));
        assert!(r.queued_bytes() <= 2000);
    }

    #[test]
    fn hole_cap_refuses_and_counts() {
        let pool = HeapPool::new(1);
        let buf = stream(&pool);
        let mut r = Reassembly::new(Dsn::new(START), small());
        for off in [100, 200, 300, 400] {
            let (d, p) = piece(&buf, off, 10);
            r.push(d, p);
        }
        assert_eq!(r.stats().too_many_holes, 1);
        assert_eq!(r.stats().too_many_holes_bytes, 10);
        assert_eq!(r.pieces(), 3);
        // In-order data still fits: it fills a hole rather than making one.
        let (d, p) = piece(&buf, 0, 100);
        assert!(r.push(d, p).advanced);
        assert_eq!(r.rcv_nxt(), Dsn::new(START + 110));
    }

    #[test]
    fn data_fin_is_acked_after_the_data_before_it() {
        let pool = HeapPool::new(1);
        let buf = stream(&pool);
        let mut r = Reassembly::new(Dsn::new(START), small());
        let (d, p) = piece(&buf, 50, 100);
        r.push(d, p);
        r.set_fin(Dsn::new(START + 100)).unwrap();
        // The bytes from the DATA_FIN on were dropped.
        assert_eq!(r.stats().beyond_window_bytes, 50);
        assert_eq!(r.set_fin(Dsn::new(START + 100)), Ok(()));
        assert_eq!(r.set_fin(Dsn::new(START + 99)), Err(FinError::Conflict));
        let (d, p) = piece(&buf, 0, 60);
        r.push(d, p);
        assert_eq!(r.rcv_nxt(), Dsn::new(START + 101));
        assert!(!r.fin_reached());
        assert_eq!(read_all(&mut r).len(), 100);
        assert!(r.fin_reached());
        let (d, p) = piece(&buf, 100, 10);
        assert_eq!(r.push(d, p).stored, 0);
        assert_eq!(r.set_fin(Dsn::new(START + 100)), Ok(()));
        let mut fresh = Reassembly::<HeapShared>::new(Dsn::new(START), small());
        let (d, p) = piece(&buf, 0, 10);
        fresh.push(d, p);
        assert_eq!(fresh.set_fin(Dsn::new(START + 5)), Err(FinError::Stale));
    }

    #[test]
    fn wraps_around_the_dsn_space() {
        let pool = HeapPool::new(1);
        let buf = stream(&pool);
        let start = Dsn::new(u64::MAX - 50);
        let mut r = Reassembly::new(start, small());
        let later = Payload::slice(buf.clone(), 100, 100).unwrap();
        r.push(start + 100, later);
        let first = Payload::slice(buf.clone(), 0, 120).unwrap();
        assert_eq!(r.push(start, first).duplicate, 20);
        assert_eq!(r.rcv_nxt(), Dsn::new(149));
        assert_eq!(read_all(&mut r).len(), 200);
    }

    #[test]
    fn pieces_share_the_buffer() {
        let pool = HeapPool::new(1);
        let buf = stream(&pool);
        let mut r = Reassembly::new(Dsn::new(START), small());
        let (d, p) = piece(&buf, 0, 100);
        r.push(d, p);
        assert_eq!(pool.in_use(), 1);
        assert_eq!(buf.refcount(), 2);
        drop(r);
        assert_eq!(buf.refcount(), 1);
    }
}
