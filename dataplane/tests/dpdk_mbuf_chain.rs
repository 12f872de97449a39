//! Zero-copy TX: a header mbuf with payload chained by reference (indirect mbufs) goes
//! through a port as one packet, and every mbuf — header, indirect segments and the
//! payload's own — returns to the pool when it is freed.
#![cfg(dpdk)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod dpdk_common;

use dataplane::dpdk::{EthDev, Mbuf, Mempool, PortConfig, SOCKET_ID_ANY};
use dataplane::port::{Burst, ChainError, PacketBuf, Port, SharedBuf};

#[test]
fn chained_payload_travels_by_reference_and_is_released() {
    let eal = dpdk_common::init("mbuf_chain", &[], &["net_ring0"]).unwrap();
    let pool = Mempool::new("chain", 255, 0, 2176, SOCKET_ID_ANY).unwrap();
    let port_id = eal.port_by_name("net_ring0").unwrap();
    let mut dev = EthDev::open(port_id, &PortConfig::default(), &pool).unwrap();
    let mut q = dev.take_queues().unwrap().remove(0);

    // A received segment: 54 bytes of headers, then 1000 bytes of payload.
    let mut rx = pool.alloc().unwrap();
    let bytes = rx.append(1054).unwrap();
    bytes[..54].fill(0xee);
    for (i, b) in bytes[54..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let payload = rx.into_shared();
    let payload_ptr = SharedBuf::data(&payload)[54..].as_ptr();

    // Send it on as two segments behind new 64-byte headers.
    let mut tx: Burst<Mbuf> = Burst::new();
    for (off, len) in [(54, 600), (654, 400)] {
        let mut head = pool.alloc().unwrap();
        head.append(64).unwrap().fill(0x11);
        head.chain(&payload, off, len).unwrap();
        assert_eq!(
            (head.len(), head.pkt_len(), head.nb_segs()),
            (64, 64 + len, 2)
        );
        tx.push(head).unwrap();
    }
    assert_eq!(payload.refcount(), 3, "two indirect references plus ours");
    assert_eq!(pool.in_use(), 5, "payload + 2 heads + 2 indirect segments");
    let mut head = pool.alloc().unwrap();
    assert_eq!(head.chain(&payload, 1000, 55), Err(ChainError::OutOfRange));
    drop(head);
    drop(payload);

    assert_eq!(q.tx_burst(&mut tx), 2);
    let mut back: Burst<Mbuf> = Burst::new();
    assert_eq!(q.rx_burst(&mut back), 2);
    for (m, (off, len)) in back.as_slice().iter().zip([(0usize, 600usize), (600, 400)]) {
        assert_eq!(m.pkt_len(), 64 + len);
        // The second segment is the payload itself, not a copy.
        // SAFETY (test): read the chained segment through the raw accessors.
        let seg = unsafe { dpdk_sys::inline::next(m.as_ptr()) };
        assert!(!seg.is_null());
        let (ptr, seg_len) = unsafe {
            (
                dpdk_sys::inline::data_ptr(seg),
                dpdk_sys::inline::data_len(seg),
            )
        };
        assert_eq!(usize::from(seg_len), len);
        assert_eq!(ptr.cast_const(), payload_ptr.wrapping_add(off));
        let data = unsafe { std::slice::from_raw_parts(ptr, len) };
        assert!(data.iter().enumerate().all(|(i, &b)| b == (off + i) as u8));
    }
    Mbuf::free_burst(&mut back);
    assert_eq!(
        pool.in_use(),
        0,
        "heads, indirect segments and the payload all freed"
    );
}
