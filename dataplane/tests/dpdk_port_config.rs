//! Port configuration masks the wanted RSS hash types and offloads by what the device
//! supports, and enables RSS only where it can work.
#![cfg(dpdk)]

mod dpdk_common;

use dataplane::dpdk::{EthDev, Mempool, PortConfig, SOCKET_ID_ANY};
use dataplane::port::Port;
use std::time::Duration;

#[test]
fn rss_and_offloads_are_masked_by_capability() {
    let eal =
        dpdk_common::init("port_config", &[], &["net_ring0", "net_null0", "net_null1"]).unwrap();
    let pool = Mempool::new("port_cfg", 4095, 64, 2176, SOCKET_ID_ANY).unwrap();
    let wanted = PortConfig {
        rx_queues: 2,
        tx_queues: 2,
        link_wait: Duration::from_millis(500),
        ..PortConfig::default()
    };
    assert_ne!(wanted.rss_hf, 0);

    // net_ring: no RSS at all.
    let ring = EthDev::open(eal.port_by_name("net_ring0").unwrap(), &wanted, &pool).unwrap();
    let (info, eff) = (ring.info(), ring.effective());
    assert_eq!(info.rss_offloads, 0);
    assert_eq!(eff.rss_hf, 0);
    assert_eq!(ring.dropped().rss_hf, wanted.rss_hf);
    assert!(ring.rss().is_none());
    assert_eq!(eff.rx_queues, wanted.rx_queues.min(info.max_rx_queues));
    assert_eq!(eff.rx_offloads & !info.rx_offload_capa, 0);
    assert_eq!(eff.tx_offloads, wanted.tx_offloads & info.tx_offload_capa);
    // Chained mbufs go whole only where MULTI_SEGS is offered (and so applied).
    let multi_segs = u64::from(dpdk_sys::RTE_ETH_TX_OFFLOAD_MULTI_SEGS);
    assert_eq!(ring.tx_chains(), info.tx_offload_capa & multi_segs != 0);

    // net_null: RSS-capable, 2 RX queues: RSS on with exactly the supported wanted types.
    let mut null = EthDev::open(eal.port_by_name("net_null0").unwrap(), &wanted, &pool).unwrap();
    let (info, eff) = (null.info(), null.effective());
    assert_eq!(eff.rx_queues, 2);
    assert_eq!(eff.rss_hf, wanted.rss_hf & info.rss_offloads);
    assert_ne!(eff.rss_hf, 0);
    assert_eq!(null.dropped().rss_hf, wanted.rss_hf & !info.rss_offloads);
    assert_eq!(eff.rx_offloads & !info.rx_offload_capa, 0, "never OR-ed in");
    assert_eq!(eff.tx_offloads & !info.tx_offload_capa, 0, "never OR-ed in");
    // mpgw's key and a RETA spreading entries over the queues, read back from the
    // device: what workers use to pick local ports.
    let rss = null.rss().expect("RSS key and RETA known");
    assert_eq!(rss.key(), &dataplane::rss::default_key(rss.key().len())[..]);
    assert_eq!(rss.key()[..40], dataplane::rss::DEFAULT_KEY);
    assert_eq!(rss.reta().len(), usize::from(info.reta_size));
    assert!(rss
        .reta()
        .iter()
        .enumerate()
        .all(|(i, &q)| usize::from(q) == i % 2));
    let queues = null.take_queues().unwrap();
    assert_eq!(queues.len(), 2);
    assert!(queues.iter().all(|q| q.tx_chains() == null.tx_chains()));

    // One RX queue: no RSS even on an RSS-capable device, and no RSS_HASH offload.
    let single = PortConfig {
        link_wait: Duration::ZERO,
        ..PortConfig::default()
    };
    let null1 = eal.port_by_name("net_null1").unwrap();
    // Invalid wishes are errors that leave the port usable.
    let tiny_mtu = PortConfig {
        mtu: Some(10),
        ..single.clone()
    };
    assert_eq!(
        EthDev::open(null1, &tiny_mtu, &pool).unwrap_err().errno(),
        libc::EINVAL
    );
    let no_queues = PortConfig {
        rx_queues: 0,
        ..single.clone()
    };
    assert!(EthDev::open(null1, &no_queues, &pool).is_err());
    let one = EthDev::open(null1, &single, &pool).unwrap();
    assert!(
        EthDev::open(null1, &single, &pool).is_err(),
        "a started port cannot be opened twice"
    );
    assert_eq!(one.effective().rx_queues, 1);
    assert_eq!(one.effective().rss_hf, 0);
    assert!(one.rss().is_none(), "one queue: no RSS");
    assert_eq!(one.dropped().rss_hf, single.rss_hf);
    let rss_hash = u64::from(dpdk_sys::RTE_ETH_RX_OFFLOAD_RSS_HASH);
    assert_eq!(one.effective().rx_offloads & rss_hash, 0);
}
