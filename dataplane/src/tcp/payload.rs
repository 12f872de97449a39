//! Zero-copy payload slices over reference-counted packet buffers.

use crate::port::SharedBuf;
use std::fmt;

/// A byte range `[off, off + len)` of a shared, read-only packet buffer.
///
/// Splitting or trimming only moves offsets and clones the refcounted handle: payload
/// bytes are never copied. Invariant: `off + len <= buf.data().len()`.
#[derive(Clone)]
pub struct Payload<S> {
    /// The shared buffer.
    buf: S,
    /// First byte, relative to `buf.data()`.
    off: usize,
    /// Bytes in the slice.
    len: usize,
}

impl<S: SharedBuf> Payload<S> {
    /// All the bytes of `buf`.
    #[inline]
    pub fn new(buf: S) -> Self {
        let len = buf.data().len();
        Payload { buf, off: 0, len }
    }

    /// The bytes `[off, off + len)` of `buf`, `None` when they lie outside it.
    #[inline]
    pub fn slice(buf: S, off: usize, len: usize) -> Option<Self> {
        let end = off.checked_add(len)?;
        (end <= buf.data().len()).then_some(Payload { buf, off, len })
    }

    /// The payload bytes.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        self.buf
            .data()
            .get(self.off..self.off + self.len)
            .unwrap_or(&[])
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no byte is left.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The underlying buffer (to chain it behind a header on transmission).
    #[inline]
    pub fn buf(&self) -> &S {
        &self.buf
    }

    /// Offset of the first byte in the underlying buffer's data.
    #[inline]
    pub fn offset(&self) -> usize {
        self.off
    }

    /// Drops up to `n` bytes from the front.
    #[inline]
    pub fn advance(&mut self, n: usize) {
        let n = n.min(self.len);
        self.off += n;
        self.len -= n;
    }

    /// Keeps at most the first `n` bytes.
    #[inline]
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }

    /// Splits off and returns the first `min(n, len)` bytes, leaving the rest in `self`.
    #[inline]
    pub fn split_to(&mut self, n: usize) -> Self {
        let n = n.min(self.len);
        let front = Payload {
            buf: self.buf.clone(),
            off: self.off,
            len: n,
        };
        self.advance(n);
        front
    }
}

impl<S: SharedBuf> PartialEq for Payload<S> {
    /// Payloads are equal when their bytes are.
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl<S> fmt::Debug for Payload<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.len)
    }
}
