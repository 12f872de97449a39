//! `net_null` produces packets on every RX call: one call fills a whole burst.
#![cfg(dpdk)]

mod dpdk_common;

use dataplane::dpdk::{EthDev, Mbuf, Mempool, PortConfig, SOCKET_ID_ANY};
use dataplane::port::{Burst, PacketBuf, Port, BURST_SIZE};

#[test]
fn null_rx_delivers_a_full_burst() {
    let eal = dpdk_common::init("null_rx", &[], &["net_null0"]).unwrap();
    let port_id = eal.port_by_name("net_null0").unwrap();
    let pool = Mempool::new("null_rx", 2047, 64, 2176, SOCKET_ID_ANY).unwrap();
    let mut dev = EthDev::open(port_id, &PortConfig::default(), &pool).unwrap();
    let mut q = dev.take_queues().unwrap().pop().unwrap();
    assert_eq!((q.port_id(), q.queue_id()), (port_id, 0));

    let mut rx: Burst<Mbuf> = Burst::new();
    assert_eq!(q.rx_burst(&mut rx), BURST_SIZE);
    assert!(rx.is_full());
    assert_eq!(q.rx_burst(&mut rx), 0, "no room left, nothing received");
    for m in rx.as_slice() {
        assert_eq!(m.len(), 64, "net_null's default packet size");
        assert_eq!(m.refcnt(), 1);
        assert_eq!(m.port(), port_id);
    }
    assert_eq!(pool.in_use() as usize, BURST_SIZE);
    Mbuf::free_burst(&mut rx);
    assert!(rx.is_empty());
    assert_eq!(pool.in_use(), 0);
}
