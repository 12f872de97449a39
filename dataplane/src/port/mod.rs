//! The port abstraction the dataplane is generic over.
//!
//! Two traits: [`PacketBuf`], one packet in one contiguous buffer with headroom and
//! tailroom (a DPDK mbuf, or a heap buffer in tests), and [`Port`], one RX/TX queue pair
//! of a NIC port. Workers are generic over `P: Port`, so the packet path is statically
//! dispatched: no `dyn` anywhere a packet goes.
//!
//! Implementations: `dpdk::EthPort` (DPDK ethdev queues, built where DPDK is present)
//! and [`mem::MemPort`] (an in-memory link with seeded fault injection).

pub mod burst;
pub mod heap;
pub mod mem;

pub use burst::{Burst, BURST_SIZE};

/// One packet in one contiguous buffer: `headroom | data | tailroom`.
///
/// A `PacketBuf` is uniquely owned, so it may be written. To hold a payload in two places
/// (a send queue and a reassembly queue, say) convert it with [`PacketBuf::into_shared`]:
/// shared references are read-only, so no holder can change bytes another one reads.
pub trait PacketBuf: Send + Sized {
    /// A read-only, reference-counted handle on a buffer's bytes.
    type Shared: SharedBuf;

    /// The packet's bytes.
    fn data(&self) -> &[u8];
    /// The packet's bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Number of bytes in the packet's first segment (all of it unless
    /// [`PacketBuf::chain`] added more).
    #[inline]
    fn len(&self) -> usize {
        self.data().len()
    }
    /// True when the packet holds no bytes.
    #[inline]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Free bytes in front of the data.
    fn headroom(&self) -> usize;
    /// Free bytes after the data.
    fn tailroom(&self) -> usize;
    /// Grows the packet by `n` bytes at the front and returns them, or `None` (packet
    /// unchanged) when the headroom is too small.
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Grows the packet by `n` bytes at the back and returns them, or `None` (packet
    /// unchanged) when the tailroom is too small.
    fn append(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Removes `n` bytes from the front; false (packet unchanged) if `n > len`.
    fn trim_front(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the back; false (packet unchanged) if `n > len`.
    fn trim_back(&mut self, n: usize) -> bool;
    /// Gives up write access and returns a shareable read-only handle on the same bytes.
    fn into_shared(self) -> Self::Shared;
    /// Appends `len` bytes of `payload`, from offset `off` of its data, to the packet as
    /// a further segment held by reference: zero copy, the payload stays read-only and
    /// is released when the packet is freed or sent. [`PacketBuf::data`] and friends
    /// keep addressing the first segment only; [`PacketBuf::pkt_len`] counts them all.
    fn chain(&mut self, payload: &Self::Shared, off: usize, len: usize) -> Result<(), ChainError>;
    /// Bytes in the whole packet, chained segments included.
    fn pkt_len(&self) -> usize;
    /// Appends the packet's first `limit` bytes, chained segments included, to `out`
    /// (a copy for packet capture).
    fn copy_to(&self, limit: usize, out: &mut Vec<u8>);
    /// Frees every packet of `burst` (DPDK overrides this with one bulk call).
    #[inline]
    fn free_burst(burst: &mut Burst<Self>) {
        burst.drain().for_each(drop);
    }
}

/// Why [`PacketBuf::chain`] could not attach a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// `off + len` lies beyond the payload's data.
    #[error("payload range out of bounds")]
    OutOfRange,
    /// No buffer for the segment descriptor (the pool is exhausted).
    #[error("no buffer for a chained segment")]
    NoBuffer,
    /// The packet already has the most segments the port supports.
    #[error("too many segments")]
    TooManySegments,
    /// The payload buffer already has the most references its counter can hold.
    #[error("too many references to the payload")]
    TooManyReferences,
}

/// A read-only, reference-counted buffer: cloning adds a reference, dropping removes one;
/// the memory goes back to its pool with the last reference.
pub trait SharedBuf: Clone + Send {
    /// The shared bytes.
    fn data(&self) -> &[u8];
    /// Number of references to the underlying buffer (for tests and statistics).
    fn refcount(&self) -> u16;
}

/// One RX/TX queue pair on one port, owned by exactly one worker.
pub trait Port {
    /// The buffers this port receives into and sends from.
    type Buf: PacketBuf;

    /// Receives up to the free capacity of `out`, appending; returns how many arrived.
    fn rx_burst(&mut self, out: &mut Burst<Self::Buf>) -> usize;
    /// Sends from the front of `pkts`; the sent packets leave `pkts`, the unsent ones stay
    /// in it, in order, for the caller to retry or drop. Returns how many were sent.
    fn tx_burst(&mut self, pkts: &mut Burst<Self::Buf>) -> usize;
    /// Allocates an empty buffer from this port's pool, `None` when exhausted.
    fn alloc(&mut self) -> Option<Self::Buf>;
    /// Whether [`Port::tx_burst`] sends a chained packet ([`PacketBuf::chain`]) whole.
    /// False for a driver that sends single-segment frames only (DPDK: no
    /// `RTE_ETH_TX_OFFLOAD_MULTI_SEGS`); egress then copies the payload behind the
    /// headers instead of chaining it.
    fn tx_chains(&self) -> bool {
        true
    }
    /// Buffers left in this port's pool and its size, where the pool tells.
    fn pool_room(&self) -> Option<(usize, usize)> {
        None
    }
}
