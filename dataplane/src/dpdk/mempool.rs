//! Packet-buffer pools (`rte_pktmbuf_pool_create`).

use super::eal::{runtime, Runtime};
use super::error::{Error, Result};
use super::mbuf::Mbuf;
use crate::port::Burst;
use dpdk_sys::{rte_mbuf, rte_mempool};
use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

/// "Any NUMA socket", for [`Mempool::new`].
pub const SOCKET_ID_ANY: i32 = dpdk_sys::SOCKET_ID_ANY;

struct PoolInner {
    ptr: NonNull<rte_mempool>,
    name: String,
    rt: Arc<Runtime>,
}

// SAFETY: a DPDK mempool is a thread-safe object: get/put go through lock-free rings
// (plus per-lcore caches that DPDK selects by the calling thread), and the pointer stays
// valid until `Drop`, which runs once, after the last handle is gone.
unsafe impl Send for PoolInner {}
// SAFETY: see `Send`; every operation through `&PoolInner` is one of DPDK's MT-safe calls.
unsafe impl Sync for PoolInner {}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // SAFETY: `ptr` is a live pool created by `rte_pktmbuf_pool_create`.
        let in_use = unsafe { dpdk_sys::rte_mempool_in_use_count(self.ptr.as_ptr()) };
        if in_use == 0 {
            // SAFETY: no handle and no mbuf refers to the pool any more.
            unsafe { dpdk_sys::rte_mempool_free(self.ptr.as_ptr()) };
        } else {
            // Freeing now would leave those mbufs dangling. Leak the pool, and keep EAL
            // alive with it, so that they can still be freed into it later.
            tracing::warn!(pool = %self.name, in_use, "mempool dropped with mbufs in use: leaked");
            std::mem::forget(Arc::clone(&self.rt));
        }
    }
}

/// How a pool lays its mbufs out in memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// DPDK's default: no mbuf crosses a page boundary of the EAL's memory (4 KiB pages
    /// under `--no-huge`: one 2 KiB mbuf per page), and each has an IO address, so any
    /// device can DMA into it.
    #[default]
    Dma,
    /// Mbufs back to back in one memory area, without IO addresses
    /// (`RTE_MEMPOOL_F_NO_IOVA_CONTIG`): for ports that never DMA (virtual devices).
    /// `net_af_xdp` needs it: DPDK 22.11 registers the pool's memory as the socket's
    /// UMEM, sized as if the mbufs were packed (`populated_size` × object size from
    /// the first chunk's start), so with gaps the mbufs past that size lie outside it —
    /// the kernel skips them as fill buffers and drops the frames sent from them.
    Packed,
}

/// A pool of packet mbufs. Clones are handles on the same pool; the pool is freed with
/// the last handle (or leaked, with a warning, if mbufs are still allocated then).
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<PoolInner>,
}

impl Mempool {
    /// Creates a pool of `n_mbufs` mbufs (best as 2^k − 1) with a per-lcore cache of
    /// `cache_size`, `data_room_size` bytes of buffer each (headroom included; DPDK's
    /// default is `RTE_MBUF_DEFAULT_BUF_SIZE` = 2176), on NUMA socket `socket_id`
    /// (or [`SOCKET_ID_ANY`]). `name` must be unique in the process.
    pub fn new(
        name: &str,
        n_mbufs: u32,
        cache_size: u32,
        data_room_size: u16,
        socket_id: i32,
    ) -> Result<Mempool> {
        Self::with_layout(
            name,
            n_mbufs,
            cache_size,
            data_room_size,
            socket_id,
            Layout::Dma,
        )
    }

    /// As [`Mempool::new`], with the mbufs laid out as `layout` says.
    pub fn with_layout(
        name: &str,
        n_mbufs: u32,
        cache_size: u32,
        data_room_size: u16,
        socket_id: i32,
        layout: Layout,
    ) -> Result<Mempool> {
        const OP: &str = "rte_pktmbuf_pool_create";
        let rt = runtime()?;
        let c_name = CString::new(name).map_err(|e| Error::new(OP, libc::EINVAL, e.to_string()))?;
        let ptr = match layout {
            // SAFETY: EAL runs (`rt`), `c_name` is a valid C string; DPDK copies it.
            Layout::Dma => unsafe {
                dpdk_sys::rte_pktmbuf_pool_create(
                    c_name.as_ptr(),
                    n_mbufs,
                    cache_size,
                    0,
                    data_room_size,
                    socket_id,
                )
            },
            // SAFETY: as above.
            Layout::Packed => unsafe {
                packed_pool(&c_name, n_mbufs, cache_size, data_room_size, socket_id)?
            },
        };
        let ptr = NonNull::new(ptr).ok_or_else(|| Error::last(OP))?;
        Ok(Mempool {
            inner: Arc::new(PoolInner {
                ptr,
                name: name.to_owned(),
                rt,
            }),
        })
    }

    /// Separate memory areas the pool's mbufs lie in (1 unless memory was fragmented).
    pub fn mem_chunks(&self) -> u32 {
        // SAFETY: the pool is live while `self` is; the field is set at population.
        unsafe { (*self.as_ptr()).nb_mem_chunks }
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Mbufs currently allocated (mbufs parked in per-lcore caches count as free).
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is live while `self` is.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.as_ptr()) }
    }

    /// Mbufs that can still be allocated.
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is live while `self` is.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.as_ptr()) }
    }

    /// One empty mbuf (`data_len` 0, default headroom), `None` when the pool is empty.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is live; a non-null result is a fresh mbuf we now own.
        let m = unsafe { dpdk_sys::rte_pktmbuf_alloc(self.as_ptr()) };
        // SAFETY: a freshly allocated mbuf is uniquely owned (refcnt 1, direct).
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })
    }

    /// Allocates `n` empty mbufs into the spare space of `out`: all of them (true), or
    /// none when the pool has fewer than `n` free or `n > out.spare()` (false).
    #[inline]
    pub fn alloc_bulk(&self, out: &mut Burst<Mbuf>, n: usize) -> bool {
        if n > out.spare() {
            return false;
        }
        if n == 0 {
            return true;
        }
        // `Mbuf` is a transparent `NonNull<rte_mbuf>`, which has the layout of a
        // `*mut rte_mbuf`.
        let slots = out.spare_ptr().cast::<*mut rte_mbuf>();
        // SAFETY: `slots` has room for `n <= spare` pointers; `n <= BURST_SIZE` fits u32.
        let ret = unsafe { dpdk_sys::rte_pktmbuf_alloc_bulk(self.as_ptr(), slots, n as u32) };
        if ret != 0 {
            return false;
        }
        // SAFETY: on success DPDK wrote `n` non-null pointers to fresh, uniquely owned
        // mbufs into the spare slots.
        unsafe { out.commit_filled(n) };
        true
    }

    /// The underlying `rte_mempool`, valid while any handle on this pool lives.
    #[inline]
    pub fn as_ptr(&self) -> *mut rte_mempool {
        self.inner.ptr.as_ptr()
    }
}

/// Creates a pktmbuf pool whose mbufs lie back to back ([`Layout::Packed`]): the steps of
/// `rte_pktmbuf_pool_create` (empty pool, the platform's mempool ops, pktmbuf private
/// data, population, mbuf initialisation) with `RTE_MEMPOOL_F_NO_IOVA_CONTIG`. NULL with
/// `rte_errno` set when the empty pool cannot be created.
///
/// # Safety
/// EAL is initialised.
unsafe fn packed_pool(
    name: &CString,
    n_mbufs: u32,
    cache_size: u32,
    data_room_size: u16,
    socket_id: i32,
) -> Result<*mut rte_mempool> {
    let mut private = dpdk_sys::rte_pktmbuf_pool_private {
        mbuf_data_room_size: data_room_size,
        mbuf_priv_size: 0,
        flags: 0,
    };
    let elt_size = std::mem::size_of::<rte_mbuf>() as u32 + u32::from(data_room_size);
    // SAFETY: EAL runs (the caller's promise); `name` is a valid C string DPDK copies.
    let mp = unsafe {
        dpdk_sys::rte_mempool_create_empty(
            name.as_ptr(),
            n_mbufs,
            elt_size,
            cache_size,
            std::mem::size_of::<dpdk_sys::rte_pktmbuf_pool_private>() as u32,
            socket_id,
            dpdk_sys::RTE_MEMPOOL_F_NO_IOVA_CONTIG,
        )
    };
    if mp.is_null() {
        return Ok(mp);
    }
    // SAFETY: `mp` is a fresh, empty pool only this function knows; the ops name is a
    // static C string of DPDK; `private` outlives the init call, which copies it into
    // the pool; the population and the per-mbuf initialisation run on that pool.
    unsafe {
        let ops = dpdk_sys::rte_mbuf_best_mempool_ops();
        let ret = dpdk_sys::rte_mempool_set_ops_byname(mp, ops, std::ptr::null_mut());
        let ret = if ret == 0 {
            dpdk_sys::rte_pktmbuf_pool_init(mp, std::ptr::addr_of_mut!(private).cast());
            dpdk_sys::rte_mempool_populate_default(mp)
        } else {
            ret
        };
        if ret < 0 {
            dpdk_sys::rte_mempool_free(mp);
            return Err(Error::from_errno("rte_pktmbuf_pool_create (packed)", -ret));
        }
        dpdk_sys::rte_mempool_obj_iter(mp, Some(dpdk_sys::rte_pktmbuf_init), std::ptr::null_mut());
    }
    Ok(mp)
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.name())
            .field("in_use", &self.in_use())
            .field("available", &self.available())
            .finish()
    }
}
