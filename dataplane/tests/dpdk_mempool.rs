//! Mempool accounting: single and bulk allocation, bulk free back to zero in use, the
//! mbuf field arithmetic behind `PacketBuf`, and the two memory layouts.
#![cfg(dpdk)]

mod dpdk_common;

use dataplane::dpdk::{free_bulk, Layout, Mbuf, Mempool, SOCKET_ID_ANY};
use dataplane::port::{Burst, PacketBuf, BURST_SIZE};

#[test]
fn alloc_and_bulk_free_leave_nothing_in_use() {
    let _eal = dpdk_common::init("mempool", &[], &[]).unwrap();
    let pool = Mempool::new("mp_test", 255, 0, 2176, SOCKET_ID_ANY).unwrap();
    assert_eq!(pool.name(), "mp_test");
    assert_eq!((pool.in_use(), pool.available()), (0, 255));

    let mut burst: Burst<Mbuf> = Burst::new();
    assert!(pool.alloc_bulk(&mut burst, 20));
    assert!(!pool.alloc_bulk(&mut burst, 13), "more than the spare room");
    assert!(pool.alloc_bulk(&mut burst, 12));
    assert!(burst.is_full());
    burst.pop().unwrap();
    burst.push(pool.alloc().unwrap()).unwrap();
    assert_eq!(pool.in_use() as usize, BURST_SIZE);
    free_bulk(&mut burst);
    assert_eq!((pool.in_use(), pool.available()), (0, 255));

    // Field arithmetic on a fresh mbuf: 128 B headroom, 2048 B data room.
    let mut m = pool.alloc().unwrap();
    assert_eq!((m.len(), m.headroom(), m.tailroom()), (0, 128, 2048));
    assert!(m.append(2049).is_none());
    m.append(100).unwrap().fill(0xaa);
    assert!(m.prepend(129).is_none());
    m.prepend(14).unwrap().fill(0xee);
    assert_eq!(
        (m.len(), m.pkt_len(), m.headroom(), m.tailroom()),
        (114, 114, 114, 1948)
    );
    assert!(!m.trim_front(115) && !m.trim_back(115));
    assert!(m.trim_front(14));
    assert!(m.data().iter().all(|&b| b == 0xaa));
    assert!(m.trim_back(40));
    assert_eq!((m.len(), m.pkt_len(), m.headroom()), (60, 60, 128));
    m.data_mut()[0] = 1;
    assert_eq!(m.data()[0], 1);
    drop(m);

    // Exhaustion is `None`/false, not a panic.
    let mut held = Vec::new();
    while let Some(m) = pool.alloc() {
        held.push(m);
    }
    assert_eq!(held.len(), 255);
    assert!(!pool.alloc_bulk(&mut burst, 1));
    drop(held);
    assert_eq!(pool.in_use(), 0);

    // Dropping the last pool handle with an mbuf out leaks the pool instead of freeing it
    // under the mbuf.
    let leaky = Mempool::new("mp_leak", 63, 0, 2176, SOCKET_ID_ANY).unwrap();
    let mut m = leaky.alloc().unwrap();
    drop(leaky);
    m.append(10).unwrap().fill(7);
    assert_eq!(m.data(), &[7; 10]);
    drop(m);

    // Layouts: under --no-huge (4 KiB pages) DPDK's layout puts one 2 KiB mbuf per page,
    // so the pool spans far more than mbufs × object size; packed, the mbufs follow
    // each other at one stride, in one chunk, and work as mbufs.
    let strides = |pool: &Mempool| {
        let mut held: Vec<Mbuf> = std::iter::from_fn(|| pool.alloc()).collect();
        assert_eq!(held.len(), 255);
        held.sort_by_key(|m| m.as_ptr() as usize);
        let mut d: Vec<usize> = held
            .windows(2)
            .map(|w| w[1].as_ptr() as usize - w[0].as_ptr() as usize)
            .collect();
        d.dedup();
        d
    };
    let packed =
        Mempool::with_layout("mp_packed", 255, 0, 2176, SOCKET_ID_ANY, Layout::Packed).unwrap();
    let stride = strides(&packed);
    assert_eq!(stride.len(), 1, "one stride: {stride:?}");
    assert!(stride[0] < 4096 && stride[0] >= 128 + 2176, "{stride:?}");
    let dma = Mempool::with_layout("mp_dma", 255, 0, 2176, SOCKET_ID_ANY, Layout::Dma).unwrap();
    let gaps = strides(&dma);
    assert!(gaps.iter().all(|&d| d > stride[0]), "page gaps: {gaps:?}");
    assert_eq!(packed.mem_chunks(), 1);
    assert_eq!(packed.in_use(), 0);
    let mut m = packed.alloc().unwrap();
    assert_eq!((m.headroom(), m.tailroom()), (128, 2048));
    m.append(2048).unwrap().fill(0x5a);
    assert_eq!(m.pkt_len(), 2048);
}
