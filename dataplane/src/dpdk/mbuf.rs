//! Owned and shared handles on DPDK packet mbufs.

use crate::port::{Burst, ChainError, PacketBuf, SharedBuf};
use dpdk_sys::inline as raw;
use dpdk_sys::rte_mbuf;
use std::ptr::NonNull;

/// A uniquely owned packet mbuf; freed (`rte_pktmbuf_free`) on drop.
///
/// The [`PacketBuf`] view is the first segment: mbufs this layer receives and allocates
/// are single-segment (no scatter RX); [`PacketBuf::chain`] adds payload segments by
/// reference for zero-copy TX. `append`/`trim_back` refuse chained mbufs.
#[repr(transparent)]
pub struct Mbuf(NonNull<rte_mbuf>);

// SAFETY: an `Mbuf` is the only handle on its mbuf, and DPDK mbufs may be freed and
// accessed from any thread (frees go to the mbuf's own pool). Not `Sync`: `&Mbuf` reads
// fields that `&mut Mbuf` writes without synchronisation.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `m` is a live packet mbuf (first segment) that nothing else references: refcount
    /// 1, direct (not attached to another mbuf's buffer), and no other pointer to it is
    /// used afterwards.
    #[inline]
    pub unsafe fn from_raw(m: NonNull<rte_mbuf>) -> Mbuf {
        Mbuf(m)
    }

    /// Gives up ownership, e.g. to hand the mbuf to a DPDK call that consumes it.
    #[inline]
    pub fn into_raw(self) -> NonNull<rte_mbuf> {
        let m = self.0;
        std::mem::forget(self);
        m
    }

    /// The raw mbuf, still owned by `self`.
    #[inline]
    pub fn as_ptr(&self) -> *mut rte_mbuf {
        self.0.as_ptr()
    }

    /// RSS hash from the NIC (valid when `ol_flags` has `RTE_MBUF_F_RX_RSS_HASH`).
    #[inline]
    pub fn rss_hash(&self) -> u32 {
        // SAFETY: `self` owns a live mbuf.
        unsafe { raw::rss_hash(self.as_ptr()) }
    }

    /// Offload flags (`RTE_MBUF_F_*`).
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        // SAFETY: `self` owns a live mbuf.
        unsafe { raw::ol_flags(self.as_ptr()) }
    }

    /// Packet type (`RTE_PTYPE_*`) as classified by the NIC.
    #[inline]
    pub fn packet_type(&self) -> u32 {
        // SAFETY: `self` owns a live mbuf.
        unsafe { raw::packet_type(self.as_ptr()) }
    }

    /// Port the packet arrived on.
    #[inline]
    pub fn port(&self) -> u16 {
        // SAFETY: `self` owns a live mbuf.
        unsafe { raw::port(self.as_ptr()) }
    }

    /// Reference count (1 for an owned mbuf; for tests and statistics).
    #[inline]
    pub fn refcnt(&self) -> u16 {
        // SAFETY: `self` owns a live mbuf.
        unsafe { raw::refcnt(self.as_ptr()) }
    }

    /// Copies the chained segments into the first one (`rte_pktmbuf_linearize`) so the
    /// whole packet is contiguous, as a NIC's gather DMA would put it on the wire; for
    /// loopback ports such as `net_ring` that hand a chain back as it was sent. False
    /// (packet unchanged) when the first segment lacks the room.
    pub fn linearize(&mut self) -> bool {
        // SAFETY: `self` owns the chain exclusively; DPDK copies the data of the other
        // segments into the first one's tailroom and frees them.
        unsafe { dpdk_sys::rte_pktmbuf_linearize(self.as_ptr()) == 0 }
    }

    /// Number of segments.
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        // SAFETY: `self` owns a live mbuf.
        unsafe { raw::nb_segs(self.as_ptr()) }
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `self` owns the mbuf; it is not used again.
        unsafe { dpdk_sys::rte_pktmbuf_free(self.as_ptr()) }
    }
}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mbuf")
            .field("ptr", &self.0)
            .field("len", &self.len())
            .field("headroom", &self.headroom())
            .field("nb_segs", &self.nb_segs())
            .finish()
    }
}

/// The first segment's data of `m` as a slice.
///
/// # Safety
/// `m` is live and no `&mut` to its data exists for the lifetime `'a`.
#[inline]
unsafe fn segment<'a>(m: *const rte_mbuf) -> &'a [u8] {
    // SAFETY: DPDK keeps `data_off + data_len <= buf_len`, so the range lies inside the
    // mbuf's buffer; aliasing is the caller's guarantee.
    unsafe { std::slice::from_raw_parts(raw::data_ptr(m), usize::from(raw::data_len(m))) }
}

impl PacketBuf for Mbuf {
    type Shared = MbufShared;

    #[inline]
    fn data(&self) -> &[u8] {
        // SAFETY: `self` owns the mbuf; the borrow of `self` excludes writers.
        unsafe { segment(self.as_ptr()) }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let m = self.as_ptr();
        // SAFETY: as in `data`, and `&mut self` makes this the only access to the bytes
        // (the mbuf is unique and direct, see `from_raw`).
        unsafe { std::slice::from_raw_parts_mut(raw::data_ptr(m), usize::from(raw::data_len(m))) }
    }

    #[inline]
    fn headroom(&self) -> usize {
        // SAFETY: `self` owns a live mbuf.
        usize::from(unsafe { raw::headroom(self.as_ptr()) })
    }

    #[inline]
    fn tailroom(&self) -> usize {
        // SAFETY: `self` owns a live mbuf.
        usize::from(unsafe { raw::tailroom(self.as_ptr()) })
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let m = self.as_ptr();
        let n16 = u16::try_from(n).ok()?;
        // SAFETY: `&mut self` gives exclusive access to a live, unique mbuf; the new
        // fields keep `data_off + data_len <= buf_len` (only moves the start back into
        // the headroom) and `pkt_len` consistent with the segments.
        unsafe {
            let off = raw::data_off(m).checked_sub(n16)?;
            let len = raw::data_len(m).checked_add(n16)?;
            let pkt = raw::pkt_len(m).checked_add(u32::from(n16))?;
            raw::set_data_off(m, off);
            raw::set_data_len(m, len);
            raw::set_pkt_len(m, pkt);
            Some(std::slice::from_raw_parts_mut(raw::data_ptr(m), n))
        }
    }

    #[inline]
    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        let m = self.as_ptr();
        let n16 = u16::try_from(n).ok()?;
        // SAFETY: exclusive access as in `prepend`; the growth is bounded by the
        // tailroom of the only segment, so the new bytes lie inside the buffer.
        unsafe {
            if raw::nb_segs(m) != 1 || n16 > raw::tailroom(m) {
                return None;
            }
            let old = raw::data_len(m);
            let pkt = raw::pkt_len(m).checked_add(u32::from(n16))?;
            raw::set_data_len(m, old + n16);
            raw::set_pkt_len(m, pkt);
            Some(std::slice::from_raw_parts_mut(
                raw::data_ptr(m).add(usize::from(old)),
                n,
            ))
        }
    }

    #[inline]
    fn trim_front(&mut self, n: usize) -> bool {
        let m = self.as_ptr();
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: exclusive access as in `prepend`; the data start moves forward within
        // the first segment's data.
        unsafe {
            let len = raw::data_len(m);
            if n16 > len {
                return false;
            }
            raw::set_data_off(m, raw::data_off(m) + n16);
            raw::set_data_len(m, len - n16);
            raw::set_pkt_len(m, raw::pkt_len(m).saturating_sub(u32::from(n16)));
        }
        true
    }

    #[inline]
    fn trim_back(&mut self, n: usize) -> bool {
        let m = self.as_ptr();
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: exclusive access as in `prepend`; shrinks the only segment.
        unsafe {
            let len = raw::data_len(m);
            if raw::nb_segs(m) != 1 || n16 > len {
                return false;
            }
            raw::set_data_len(m, len - n16);
            raw::set_pkt_len(m, raw::pkt_len(m).saturating_sub(u32::from(n16)));
        }
        true
    }

    #[inline]
    fn into_shared(self) -> MbufShared {
        MbufShared(self.into_raw())
    }

    /// Attaches an indirect mbuf (from this mbuf's pool) to `payload`'s buffer, narrows
    /// it to the range and chains it: the payload's reference count keeps it alive until
    /// the packet is sent or freed.
    fn chain(&mut self, payload: &MbufShared, off: usize, len: usize) -> Result<(), ChainError> {
        let src = payload.0.as_ptr();
        // SAFETY: `src` is live while `payload` is; reading its length has no effect.
        let avail = usize::from(unsafe { raw::data_len(src) });
        let end = off.checked_add(len).ok_or(ChainError::OutOfRange)?;
        let (Ok(off16), Ok(len16)) = (u16::try_from(off), u16::try_from(len)) else {
            return Err(ChainError::OutOfRange);
        };
        if end > avail {
            return Err(ChainError::OutOfRange);
        }
        // The indirect mbuf takes a reference on `src` (a 16-bit count): refuse rather
        // than let it wrap, which would free the payload under its other holders.
        if payload.refcount() >= MAX_REFS {
            return Err(ChainError::TooManyReferences);
        }
        let head = self.as_ptr();
        // SAFETY: `head` is exclusively ours and live; its pool outlives its mbufs. The
        // new mbuf `mi` is fresh (refcount 1, direct), so attaching it to the live
        // `src` is allowed and takes a reference on `src`'s buffer; narrowing `mi` to a
        // range inside `src`'s data keeps its fields within that buffer. On a failed
        // chain `mi` is freed, which detaches it and drops that reference again.
        unsafe {
            let mi = dpdk_sys::rte_pktmbuf_alloc((*head).pool);
            if mi.is_null() {
                return Err(ChainError::NoBuffer);
            }
            dpdk_sys::rte_pktmbuf_attach(mi, src);
            raw::set_data_off(mi, raw::data_off(mi) + off16);
            raw::set_data_len(mi, len16);
            raw::set_pkt_len(mi, u32::from(len16));
            if dpdk_sys::rte_pktmbuf_chain(head, mi) != 0 {
                dpdk_sys::rte_pktmbuf_free(mi);
                return Err(ChainError::TooManySegments);
            }
        }
        Ok(())
    }

    #[inline]
    fn pkt_len(&self) -> usize {
        // SAFETY: `self` owns a live mbuf.
        unsafe { raw::pkt_len(self.as_ptr()) as usize }
    }

    fn copy_to(&self, limit: usize, out: &mut Vec<u8>) {
        let mut left = limit;
        let mut m: *const rte_mbuf = self.as_ptr();
        while !m.is_null() && left > 0 {
            // SAFETY: `m` is the head (owned by `self`) or a segment chained behind it,
            // live while `self` is; nothing writes the chain during the `&self` borrow.
            let seg = unsafe { segment(m) };
            let n = seg.len().min(left);
            out.extend_from_slice(&seg[..n]);
            left -= n;
            // SAFETY: as above; the last segment's `next` is NULL.
            m = unsafe { raw::next(m) };
        }
    }

    #[inline]
    fn free_burst(burst: &mut Burst<Self>) {
        free_bulk(burst);
    }
}

/// A read-only, reference-counted handle on an mbuf: `Clone` adds a reference
/// (`rte_pktmbuf_refcnt_update`), drop removes one (`rte_pktmbuf_free`), and the mbuf
/// returns to its pool with the last one.
#[repr(transparent)]
pub struct MbufShared(NonNull<rte_mbuf>);

// SAFETY: the handle only reads the data, and the reference count is updated atomically
// by DPDK (`RTE_MBUF_REFCNT_ATOMIC`), so handles may move between threads.
unsafe impl Send for MbufShared {}

/// Most references this layer lets an mbuf's 16-bit `refcnt` reach. Wrapping it would
/// free the mbuf while handles remain; the margin below `u16::MAX` covers clones racing on
/// other threads between the check and the increment (as `Arc`'s limit does).
const MAX_REFS: u16 = u16::MAX - 1024;

#[cold]
#[inline(never)]
#[allow(clippy::panic)] // the only way out of `Clone`; nothing was changed yet
fn refcount_overflow() -> ! {
    panic!("MbufShared: mbuf reference count would overflow u16")
}

impl Clone for MbufShared {
    #[inline]
    fn clone(&self) -> Self {
        // The first segment carries the highest count of the chain (indirect mbufs
        // attached to it add to it alone).
        if self.refcount() >= MAX_REFS {
            refcount_overflow();
        }
        // SAFETY: the mbuf is live (we hold a reference); adds one reference to every
        // segment, which the new handle owns.
        unsafe { dpdk_sys::rte_pktmbuf_refcnt_update(self.0.as_ptr(), 1) };
        MbufShared(self.0)
    }
}

impl Drop for MbufShared {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: releases the reference this handle owns; DPDK frees the mbuf when it
        // was the last one.
        unsafe { dpdk_sys::rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl SharedBuf for MbufShared {
    #[inline]
    fn data(&self) -> &[u8] {
        // SAFETY: the mbuf lives while this handle does, and no handle can write it.
        unsafe { segment(self.0.as_ptr()) }
    }

    #[inline]
    fn refcount(&self) -> u16 {
        // SAFETY: the mbuf is live while this handle is.
        unsafe { raw::refcnt(self.0.as_ptr()) }
    }
}

impl std::fmt::Debug for MbufShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MbufShared")
            .field("ptr", &self.0)
            .field("len", &SharedBuf::data(self).len())
            .field("refcount", &self.refcount())
            .finish()
    }
}

/// Frees every mbuf in `burst` with one `rte_pktmbuf_free_bulk` call and empties it.
#[inline]
pub fn free_bulk(burst: &mut Burst<Mbuf>) {
    let n = burst.len();
    if n == 0 {
        return;
    }
    // `Mbuf` is a transparent `NonNull<rte_mbuf>`: the slice is an array of mbuf pointers.
    let ptrs = burst.as_mut_slice().as_mut_ptr().cast::<*mut rte_mbuf>();
    // SAFETY: the burst owns `n <= BURST_SIZE` live mbufs; DPDK frees them all, then the
    // burst forgets them so they are not freed again.
    unsafe {
        dpdk_sys::rte_pktmbuf_free_bulk(ptrs, n as u32);
        burst.forget_front(n);
    }
}
