//! A shared mbuf is reference counted by DPDK: clones add references, and the mbuf goes
//! back to its pool with the last one.
#![cfg(dpdk)]

mod dpdk_common;

use dataplane::dpdk::{Mempool, SOCKET_ID_ANY};
use dataplane::port::{PacketBuf, SharedBuf};

#[test]
fn shared_mbuf_refcount_and_release() {
    let _eal = dpdk_common::init("mbuf_shared", &[], &[]).unwrap();
    let pool = Mempool::new("shared", 63, 0, 2176, SOCKET_ID_ANY).unwrap();
    let mut m = pool.alloc().unwrap();
    assert_eq!(m.refcnt(), 1);
    m.append(5).unwrap().copy_from_slice(b"hello");

    let a = m.into_shared();
    assert_eq!(a.refcount(), 1);
    let b = a.clone();
    assert_eq!((a.refcount(), b.refcount()), (2, 2));
    assert_eq!(a.data(), b"hello");
    assert_eq!(b.data(), b"hello");
    assert_eq!(pool.in_use(), 1);

    drop(a);
    assert_eq!(b.refcount(), 1);
    assert_eq!(pool.in_use(), 1);
    let moved = std::thread::spawn(move || b.data().to_vec())
        .join()
        .unwrap();
    assert_eq!(moved, b"hello");
    assert_eq!(pool.in_use(), 0);
}
