//! `net_ring` is a loopback: TX queue 0 feeds RX queue 0 through an `rte_ring`, so the
//! very mbufs sent come back, payload intact.
#![cfg(dpdk)]

mod dpdk_common;

use dataplane::dpdk::{free_bulk, EthDev, Mbuf, Mempool, PortConfig, SOCKET_ID_ANY};
use dataplane::port::{Burst, PacketBuf, Port};

#[test]
fn ring_loopback_returns_the_sent_mbufs() {
    let eal = dpdk_common::init("ring_loopback", &[], &["net_ring0"]).unwrap();
    let port_id = eal.port_by_name("net_ring0").unwrap();
    assert_eq!(eal.port_ids(), vec![port_id]);
    let pool = Mempool::new("ring_lb", 1023, 32, 2176, SOCKET_ID_ANY).unwrap();
    let mut dev = EthDev::open(port_id, &PortConfig::default(), &pool).unwrap();
    assert_eq!(dev.info().driver, "net_ring");
    assert!(dev.link_at_open().up);
    let mut queues = dev.take_queues().unwrap();
    assert_eq!(queues.len(), 1);
    assert!(dev.take_queues().is_err(), "queues can be taken only once");
    let q = &mut queues[0];

    let mut tx: Burst<Mbuf> = Burst::new();
    for i in 0..8u8 {
        let mut m = q.alloc().unwrap();
        m.append(60 + usize::from(i)).unwrap().fill(i);
        tx.push(m).unwrap();
    }
    let sent: Vec<_> = tx.as_slice().iter().map(Mbuf::as_ptr).collect();
    assert_eq!(q.tx_burst(&mut tx), 8);
    assert!(tx.is_empty());

    let mut rx: Burst<Mbuf> = Burst::new();
    assert_eq!(q.rx_burst(&mut rx), 8);
    let received: Vec<_> = rx.as_slice().iter().map(Mbuf::as_ptr).collect();
    assert_eq!(received, sent, "the same mbufs, in order");
    for (i, m) in rx.as_slice().iter().enumerate() {
        assert_eq!(m.len(), 60 + i);
        assert!(m.data().iter().all(|&b| usize::from(b) == i));
    }
    assert_eq!(pool.in_use(), 8);
    free_bulk(&mut rx);
    assert!(rx.is_empty());
    assert_eq!(pool.in_use(), 0);
    let stats = dev.stats().unwrap();
    assert_eq!((stats.ipackets, stats.opackets), (8, 8));
}
