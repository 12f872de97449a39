//! DPDK's mbuf reference count is 16 bits: cloning a shared mbuf, or chaining it as a
//! payload, must stop before the count wraps (a wrapped count frees the mbuf while
//! handles on it remain).
#![cfg(dpdk)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod dpdk_common;

use dataplane::dpdk::{Mempool, SOCKET_ID_ANY};
use dataplane::port::{ChainError, PacketBuf, SharedBuf};
use std::panic::{catch_unwind, AssertUnwindSafe};

#[test]
fn shared_mbuf_refcount_never_wraps() {
    let _eal = dpdk_common::init("mbuf_refcnt_limit", &[], &[]).unwrap();
    let pool = Mempool::new("refcnt_limit", 63, 0, 2176, SOCKET_ID_ANY).unwrap();
    let mut m = pool.alloc().unwrap();
    m.append(8).unwrap().fill(0xab);
    let s = m.into_shared();

    // Clone until the count stops growing; without a limit it reaches u16::MAX, one
    // clone short of wrapping to 0.
    let mut held = Vec::new();
    let cloned = catch_unwind(AssertUnwindSafe(|| {
        while s.refcount() < u16::MAX {
            held.push(s.clone());
        }
    }));
    let peak = s.refcount();
    assert!(
        cloned.is_err(),
        "cloning must refuse before the count wraps"
    );
    assert!(peak < u16::MAX);
    assert_eq!(
        usize::from(peak),
        held.len() + 1,
        "a refused clone adds nothing"
    );

    // At the limit, chaining the payload (an indirect mbuf takes a reference) is refused
    // too, and leaves the count and the pool as they were.
    let mut head = pool.alloc().unwrap();
    assert_eq!(head.chain(&s, 0, 8), Err(ChainError::TooManyReferences));
    assert_eq!(s.refcount(), peak);
    assert_eq!(head.nb_segs(), 1);
    drop(head);

    drop(held);
    assert_eq!(s.refcount(), 1);
    assert_eq!(s.data(), &[0xab; 8]);
    // Below the limit chaining works again.
    let mut head = pool.alloc().unwrap();
    head.chain(&s, 2, 4).unwrap();
    assert_eq!(s.refcount(), 2);
    drop((head, s));
    assert_eq!(pool.in_use(), 0);
}
