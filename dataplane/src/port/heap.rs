//! Heap-backed packet buffers with the shape of a DPDK mbuf, for in-memory ports.
//!
//! A [`HeapPool`] hands out fixed-size buffers (128 B headroom like
//! `RTE_PKTMBUF_HEADROOM`) up to a fixed count, recycles them through a lock-free queue
//! and counts how many are in use, so tests can check for leaks and exhaustion exactly as
//! they would with a DPDK mempool.

use super::{ChainError, PacketBuf, SharedBuf};
use crossbeam::queue::ArrayQueue;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Headroom of a fresh buffer, as DPDK's default `RTE_PKTMBUF_HEADROOM`.
pub const HEADROOM: usize = 128;
/// Bytes of a buffer available for headroom plus data (DPDK's default data room).
pub const DATA_ROOM: usize = 2048 + HEADROOM;

struct PoolInner {
    capacity: usize,
    in_use: AtomicUsize,
    free: ArrayQueue<Box<[u8]>>,
}

impl PoolInner {
    fn release(&self, store: Box<[u8]>) {
        // A full free list only means the storage is dropped instead of recycled.
        let _ = self.free.push(store);
        self.in_use.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A bounded pool of heap packet buffers; clones refer to the same pool.
#[derive(Clone)]
pub struct HeapPool {
    inner: Arc<PoolInner>,
}

impl HeapPool {
    /// A pool of at most `capacity` buffers.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(PoolInner {
                capacity,
                in_use: AtomicUsize::new(0),
                free: ArrayQueue::new(capacity.max(1)),
            }),
        }
    }

    /// An empty buffer with [`HEADROOM`] bytes of headroom, `None` when the pool is
    /// exhausted.
    pub fn alloc(&self) -> Option<HeapBuf> {
        let inner = &self.inner;
        let mut cur = inner.in_use.load(Ordering::Relaxed);
        loop {
            if cur >= inner.capacity {
                return None;
            }
            match inner.in_use.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        let store = inner
            .free
            .pop()
            .unwrap_or_else(|| vec![0u8; DATA_ROOM].into_boxed_slice());
        Some(HeapBuf {
            store: Some(store),
            off: HEADROOM,
            len: 0,
            pool: self.inner.clone(),
            chained: Vec::new(),
        })
    }

    /// A buffer holding a copy of `bytes`, `None` when the pool is exhausted or the bytes
    /// do not fit.
    pub fn alloc_from(&self, bytes: &[u8]) -> Option<HeapBuf> {
        let mut buf = self.alloc()?;
        buf.append(bytes.len())?.copy_from_slice(bytes);
        Some(buf)
    }

    /// Buffers currently allocated (owned or shared).
    pub fn in_use(&self) -> usize {
        self.inner.in_use.load(Ordering::Relaxed)
    }

    /// Buffers that can still be allocated.
    pub fn available(&self) -> usize {
        self.inner.capacity - self.in_use()
    }
}

/// Most segments a heap packet may have, as a typical NIC's TX limit.
pub const MAX_SEGMENTS: usize = 8;

/// A uniquely owned heap packet buffer from a [`HeapPool`].
pub struct HeapBuf {
    /// Always `Some` until `Drop` or `into_shared` takes it.
    store: Option<Box<[u8]>>,
    off: usize,
    len: usize,
    pool: Arc<PoolInner>,
    /// Payload segments chained behind the first one, by reference.
    chained: Vec<HeapShared>,
}

impl HeapBuf {
    /// The chained payload segments, in order (empty unless [`PacketBuf::chain`] was
    /// used).
    pub fn chained(&self) -> &[HeapShared] {
        &self.chained
    }

    /// The whole packet's bytes, every segment, in one vector (what a NIC's gather DMA
    /// puts on the wire).
    pub fn gather(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pkt_len());
        out.extend_from_slice(self.data());
        for seg in &self.chained {
            out.extend_from_slice(seg.data());
        }
        out
    }

    #[inline]
    fn store(&self) -> &[u8] {
        self.store.as_deref().unwrap_or(&[])
    }

    #[inline]
    fn store_mut(&mut self) -> &mut [u8] {
        self.store.as_deref_mut().unwrap_or(&mut [])
    }
}

impl Drop for HeapBuf {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            self.pool.release(store);
        }
    }
}

impl PacketBuf for HeapBuf {
    type Shared = HeapShared;

    #[inline]
    fn data(&self) -> &[u8] {
        &self.store()[self.off..self.off + self.len]
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let (off, len) = (self.off, self.len);
        &mut self.store_mut()[off..off + len]
    }

    #[inline]
    fn headroom(&self) -> usize {
        self.off
    }

    #[inline]
    fn tailroom(&self) -> usize {
        self.store().len() - self.off - self.len
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.off {
            return None;
        }
        self.off -= n;
        self.len += n;
        let off = self.off;
        Some(&mut self.store_mut()[off..off + n])
    }

    #[inline]
    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.tailroom() {
            return None;
        }
        let end = self.off + self.len;
        self.len += n;
        Some(&mut self.store_mut()[end..end + n])
    }

    #[inline]
    fn trim_front(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.off += n;
        self.len -= n;
        true
    }

    #[inline]
    fn trim_back(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.len -= n;
        true
    }

    fn chain(&mut self, payload: &HeapShared, off: usize, len: usize) -> Result<(), ChainError> {
        if off.checked_add(len).is_none_or(|end| end > payload.len) {
            return Err(ChainError::OutOfRange);
        }
        if self.chained.len() + 1 >= MAX_SEGMENTS {
            return Err(ChainError::TooManySegments);
        }
        self.chained.push(HeapShared {
            inner: payload.inner.clone(),
            off: payload.off + off,
            len,
        });
        Ok(())
    }

    #[inline]
    fn pkt_len(&self) -> usize {
        self.len + self.chained.iter().map(|s| s.len).sum::<usize>()
    }

    fn copy_to(&self, limit: usize, out: &mut Vec<u8>) {
        let mut left = limit;
        for seg in std::iter::once(self.data()).chain(self.chained.iter().map(|s| s.data())) {
            let n = seg.len().min(left);
            out.extend_from_slice(&seg[..n]);
            left -= n;
        }
    }

    fn into_shared(mut self) -> HeapShared {
        let store = self.store.take().unwrap_or_default();
        HeapShared {
            inner: Arc::new(SharedStore {
                store,
                pool: self.pool.clone(),
            }),
            off: self.off,
            len: self.len,
        }
    }
}

struct SharedStore {
    store: Box<[u8]>,
    pool: Arc<PoolInner>,
}

impl Drop for SharedStore {
    fn drop(&mut self) {
        self.pool.release(std::mem::take(&mut self.store));
    }
}

/// A read-only, reference-counted heap packet buffer.
#[derive(Clone)]
pub struct HeapShared {
    inner: Arc<SharedStore>,
    off: usize,
    len: usize,
}

impl SharedBuf for HeapShared {
    #[inline]
    fn data(&self) -> &[u8] {
        &self.inner.store[self.off..self.off + self.len]
    }

    fn refcount(&self) -> u16 {
        u16::try_from(Arc::strong_count(&self.inner)).unwrap_or(u16::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_is_bounded_and_recycles() {
        let pool = HeapPool::new(2);
        let a = pool.alloc().unwrap();
        let b = pool.alloc().unwrap();
        assert!(pool.alloc().is_none());
        assert_eq!(pool.in_use(), 2);
        drop(a);
        assert_eq!(pool.available(), 1);
        let c = pool.alloc().unwrap();
        drop((b, c));
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn headroom_and_tailroom_move_with_prepend_append_trim() {
        let pool = HeapPool::new(1);
        let mut b = pool.alloc().unwrap();
        assert_eq!(b.headroom(), HEADROOM);
        b.append(100).unwrap().fill(7);
        b.prepend(14).unwrap().fill(1);
        assert_eq!(b.len(), 114);
        assert_eq!(b.headroom(), HEADROOM - 14);
        assert_eq!(b.tailroom(), DATA_ROOM - HEADROOM - 100);
        assert!(b.prepend(HEADROOM).is_none(), "too big: unchanged");
        assert_eq!(b.len(), 114);
        assert!(b.trim_front(14));
        assert!(b.trim_back(50));
        assert!(!b.trim_back(51));
        assert_eq!(b.data(), &[7u8; 50][..]);
        assert!(b.append(DATA_ROOM).is_none());
    }

    #[test]
    fn chained_payload_is_referenced_not_copied() {
        let pool = HeapPool::new(3);
        let payload = pool.alloc_from(b"0123456789").unwrap().into_shared();
        let mut head = pool.alloc_from(b"HDR").unwrap();
        head.chain(&payload, 2, 5).unwrap();
        head.chain(&payload, 9, 1).unwrap();
        assert_eq!(payload.refcount(), 3);
        assert_eq!((head.len(), head.pkt_len()), (3, 9));
        assert_eq!(head.gather(), b"HDR234569");
        assert_eq!(head.chain(&payload, 8, 3), Err(ChainError::OutOfRange));
        assert_eq!(
            head.chain(&payload, usize::MAX, 2),
            Err(ChainError::OutOfRange)
        );
        drop(payload);
        assert_eq!(pool.in_use(), 2);
        drop(head);
        assert_eq!(pool.in_use(), 0, "the chained payload went with the packet");
    }

    #[test]
    fn chains_are_bounded() {
        let pool = HeapPool::new(2);
        let payload = pool.alloc_from(b"x").unwrap().into_shared();
        let mut head = pool.alloc().unwrap();
        for _ in 1..MAX_SEGMENTS {
            head.chain(&payload, 0, 1).unwrap();
        }
        assert_eq!(head.chain(&payload, 0, 1), Err(ChainError::TooManySegments));
    }

    #[test]
    fn shared_buffers_are_freed_with_the_last_reference() {
        let pool = HeapPool::new(1);
        let s = pool.alloc_from(b"payload").unwrap().into_shared();
        let t = s.clone();
        assert_eq!(t.refcount(), 2);
        assert_eq!(t.data(), b"payload");
        drop(s);
        assert_eq!(pool.in_use(), 1);
        drop(t);
        assert_eq!(pool.in_use(), 0);
    }
}
