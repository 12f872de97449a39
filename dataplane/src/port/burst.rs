//! A fixed-capacity batch of packets, the unit of every RX and TX call.

use arrayvec::ArrayVec;

/// Packets per RX/TX burst.
pub const BURST_SIZE: usize = 32;

/// Up to [`BURST_SIZE`] packet buffers, in order.
///
/// A thin wrapper over `ArrayVec` that adds the two operations a port needs and
/// `ArrayVec` does not offer safely: filling the spare capacity from a C array of
/// pointers (RX), and forgetting a prefix whose ownership went to the NIC (TX).
pub struct Burst<B> {
    bufs: ArrayVec<B, BURST_SIZE>,
}

impl<B> Default for Burst<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B> Burst<B> {
    /// An empty burst.
    #[inline]
    pub const fn new() -> Self {
        Self {
            bufs: ArrayVec::new_const(),
        }
    }

    /// Number of packets held.
    #[inline]
    pub fn len(&self) -> usize {
        self.bufs.len()
    }

    /// True when no packet is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// True when no further packet fits.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.bufs.is_full()
    }

    /// Free slots.
    #[inline]
    pub fn spare(&self) -> usize {
        BURST_SIZE - self.bufs.len()
    }

    /// Adds a packet at the end, or hands it back when the burst is full.
    #[inline]
    pub fn push(&mut self, buf: B) -> Result<(), B> {
        self.bufs.try_push(buf).map_err(|e| e.element())
    }

    /// Removes and returns the last packet.
    #[inline]
    pub fn pop(&mut self) -> Option<B> {
        self.bufs.pop()
    }

    /// Removes every packet, front to back.
    #[inline]
    pub fn drain(&mut self) -> arrayvec::Drain<'_, B, BURST_SIZE> {
        self.bufs.drain(..)
    }

    /// The packets, in order.
    #[inline]
    pub fn as_slice(&self) -> &[B] {
        &self.bufs
    }

    /// The packets, in order, writable.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [B] {
        &mut self.bufs
    }

    /// Pointer to the first free slot, for a C function that writes up to [`Self::spare`]
    /// elements there; follow with [`Self::commit_filled`].
    #[inline]
    pub fn spare_ptr(&mut self) -> *mut B {
        let len = self.bufs.len();
        // SAFETY: `len <= capacity`, so the result is in bounds or one past the end.
        unsafe { self.bufs.as_mut_ptr().add(len) }
    }

    /// Records that `n` elements were written at [`Self::spare_ptr`].
    ///
    /// # Safety
    /// `n <= self.spare()` and the `n` slots after the current end hold valid, owned `B`s.
    #[inline]
    pub unsafe fn commit_filled(&mut self, n: usize) {
        debug_assert!(n <= self.spare());
        let len = self.bufs.len();
        // SAFETY: the caller initialised these slots.
        unsafe { self.bufs.set_len(len + n) };
    }

    /// Forgets the first `n` packets without dropping them (their ownership went
    /// elsewhere, e.g. to a NIC TX ring) and moves the rest to the front.
    ///
    /// # Safety
    /// The first `n` packets must be owned by someone else now; `n <= self.len()`.
    #[inline]
    pub unsafe fn forget_front(&mut self, n: usize) {
        let len = self.bufs.len();
        debug_assert!(n <= len);
        if n == 0 {
            return;
        }
        let base = self.bufs.as_mut_ptr();
        // SAFETY: both ranges lie inside the initialised prefix; `copy` handles overlap;
        // the length is set before anything could observe the moved-from slots.
        unsafe {
            self.bufs.set_len(0);
            core::ptr::copy(base.add(n), base, len - n);
            self.bufs.set_len(len - n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn forget_front_keeps_the_unsent_tail_in_order() {
        let tracker = Rc::new(());
        let mut b: Burst<(u32, Rc<()>)> = Burst::new();
        for i in 0..5 {
            assert!(b.push((i, tracker.clone())).is_ok());
        }
        // Pretend packets 0 and 1 were taken: drop them by hand, then forget them.
        let taken: Vec<_> = b.as_slice()[..2]
            .iter()
            .map(|p| unsafe { core::ptr::read(p) })
            .collect();
        unsafe { b.forget_front(2) };
        drop(taken);
        let ids: Vec<u32> = b.as_slice().iter().map(|p| p.0).collect();
        assert_eq!(ids, vec![2, 3, 4]);
        assert_eq!(Rc::strong_count(&tracker), 4);
        drop(b);
        assert_eq!(Rc::strong_count(&tracker), 1);
    }

    #[test]
    fn push_beyond_capacity_hands_the_packet_back() {
        let mut b: Burst<usize> = Burst::new();
        for i in 0..BURST_SIZE {
            assert!(b.push(i).is_ok());
        }
        assert!(b.is_full());
        assert_eq!(b.push(99), Err(99));
    }
}
