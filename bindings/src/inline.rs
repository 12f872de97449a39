//! Per-packet `rte_mbuf` field accessors in pure Rust.
//!
//! DPDK's own accessors are `static inline` C functions; through the generated `_w`
//! wrappers each one costs an out-of-line call. These read and write the fields of the
//! bindgen [`rte_mbuf`] directly, inline into the caller, and match what DPDK 22.11's
//! inlines do (`tests/layout.rs` pins every offset used here). Everything with ownership
//! semantics (alloc, free, refcount updates) stays with DPDK's functions.
//!
//! # Safety
//! Every function takes a raw pointer that must point to a live, initialised mbuf. The
//! pointer is only read or written through raw places, never turned into a reference,
//! so other threads updating the atomic `refcnt` concurrently is fine.

use crate::rte_mbuf;
use core::sync::atomic::{AtomicU16, Ordering};

/// Start of the data in the first segment (`rte_pktmbuf_mtod`).
///
/// # Safety
/// `m` points to a live mbuf.
#[inline(always)]
pub unsafe fn data_ptr(m: *const rte_mbuf) -> *mut u8 {
    // SAFETY: the caller guarantees `m` is live; `data_off <= buf_len` keeps the result
    // inside the mbuf's buffer.
    unsafe { (*m).buf_addr.cast::<u8>().add(usize::from((*m).data_off)) }
}

/// Bytes of data in this segment.
///
/// # Safety
/// `m` points to a live mbuf.
#[inline(always)]
pub unsafe fn data_len(m: *const rte_mbuf) -> u16 {
    // SAFETY: the caller guarantees `m` is live.
    unsafe { (*m).data_len }
}

/// Sets the bytes of data in this segment.
///
/// # Safety
/// `m` points to a live mbuf the caller may write; `data_off + len <= buf_len`.
#[inline(always)]
pub unsafe fn set_data_len(m: *mut rte_mbuf, len: u16) {
    // SAFETY: the caller guarantees `m` is live and writable.
    unsafe { (*m).data_len = len }
}

/// Total packet length over all segments.
///
/// # Safety
/// `m` points to a live mbuf (the first segment of a packet).
#[inline(always)]
pub unsafe fn pkt_len(m: *const rte_mbuf) -> u32 {
    // SAFETY: the caller guarantees `m` is live.
    unsafe { (*m).pkt_len }
}

/// Sets the total packet length.
///
/// # Safety
/// `m` points to a live first segment the caller may write; `len` is the sum of the
/// segments' `data_len`.
#[inline(always)]
pub unsafe fn set_pkt_len(m: *mut rte_mbuf, len: u32) {
    // SAFETY: the caller guarantees `m` is live and writable.
    unsafe { (*m).pkt_len = len }
}

/// Offset of the data from the start of the buffer; equal to the headroom.
///
/// # Safety
/// `m` points to a live mbuf.
#[inline(always)]
pub unsafe fn data_off(m: *const rte_mbuf) -> u16 {
    // SAFETY: the caller guarantees `m` is live.
    unsafe { (*m).data_off }
}

/// Sets the offset of the data from the start of the buffer.
///
/// # Safety
/// `m` points to a live mbuf the caller may write; `off + data_len <= buf_len`.
#[inline(always)]
pub unsafe fn set_data_off(m: *mut rte_mbuf, off: u16) {
    // SAFETY: the caller guarantees `m` is live and writable.
    unsafe { (*m).data_off = off }
}

/// Free bytes in front of the data (`rte_pktmbuf_headroom`).
///
/// # Safety
/// `m` points to a live mbuf.
#[inline(always)]
pub unsafe fn headroom(m: *const rte_mbuf) -> u16 {
    // SAFETY: forwarded caller guarantee.
    unsafe { data_off(m) }
}

/// Free bytes after the data in this segment (`rte_pktmbuf_tailroom`).
///
/// # Safety
/// `m` points to a live mbuf.
#[inline(always)]
pub unsafe fn tailroom(m: *const rte_mbuf) -> u16 {
    // SAFETY: the caller guarantees `m` is live. DPDK keeps
    // `data_off + data_len <= buf_len`; saturate rather than trust it blindly.
    unsafe {
        (*m).buf_len
            .saturating_sub((*m).data_off)
            .saturating_sub((*m).data_len)
    }
}

/// Size of the segment buffer, headroom included.
///
/// # Safety
/// `m` points to a live mbuf.
#[inline(always)]
pub unsafe fn buf_len(m: *const rte_mbuf) -> u16 {
    // SAFETY: the caller guarantees `m` is live.
    unsafe { (*m).buf_len }
}

/// Number of segments in the packet.
///
/// # Safety
/// `m` points to a live mbuf (the first segment of a packet).
#[inline(always)]
pub unsafe fn nb_segs(m: *const rte_mbuf) -> u16 {
    // SAFETY: the caller guarantees `m` is live.
    unsafe { (*m).nb_segs }
}

/// Next segment of the packet, null for the last one.
///
/// # Safety
/// `m` points to a live mbuf.
#[inline(always)]
pub unsafe fn next(m: *const rte_mbuf) -> *mut rte_mbuf {
    // SAFETY: the caller guarantees `m` is live.
    unsafe { (*m).next }
}

/// Offload flags (`RTE_MBUF_F_*`).
///
/// # Safety
/// `m` points to a live mbuf.
#[inline(always)]
pub unsafe fn ol_flags(m: *const rte_mbuf) -> u64 {
    // SAFETY: the caller guarantees `m` is live.
    unsafe { (*m).ol_flags }
}

/// Packet type (`RTE_PTYPE_*`) as classified by the NIC.
///
/// # Safety
/// `m` points to a live mbuf.
#[inline(always)]
pub unsafe fn packet_type(m: *const rte_mbuf) -> u32 {
    // SAFETY: the caller guarantees `m` is live; every bit pattern is a valid `u32`, so
    // reading this member of the union is fine.
    unsafe { (*m).__bindgen_anon_1.packet_type }
}

/// RSS hash computed by the NIC; meaningful when `ol_flags` has `RTE_MBUF_F_RX_RSS_HASH`.
///
/// # Safety
/// `m` points to a live mbuf.
#[inline(always)]
pub unsafe fn rss_hash(m: *const rte_mbuf) -> u32 {
    // SAFETY: the caller guarantees `m` is live; every bit pattern is a valid `u32`.
    unsafe { (*m).__bindgen_anon_2.hash.rss }
}

/// Input port.
///
/// # Safety
/// `m` points to a live mbuf.
#[inline(always)]
pub unsafe fn port(m: *const rte_mbuf) -> u16 {
    // SAFETY: the caller guarantees `m` is live.
    unsafe { (*m).port }
}

/// Reference count (`rte_mbuf_refcnt_read`; this DPDK build has `RTE_MBUF_REFCNT_ATOMIC`).
///
/// # Safety
/// `m` points to a live mbuf.
#[inline(always)]
pub unsafe fn refcnt(m: *const rte_mbuf) -> u16 {
    // SAFETY: the caller guarantees `m` is live; `refcnt` is a naturally aligned u16 that
    // DPDK only updates with atomic operations, so viewing it as an `AtomicU16` is sound.
    unsafe {
        let field = core::ptr::addr_of!((*m).refcnt).cast_mut();
        AtomicU16::from_ptr(field).load(Ordering::Relaxed)
    }
}
