//! EAL initialises once per process; a second `Eal::init` is an error, not UB.
#![cfg(dpdk)]

mod dpdk_common;

use dataplane::dpdk::{cycles, Mempool, SOCKET_ID_ANY};

#[test]
fn second_init_is_an_error() {
    let eal = dpdk_common::init("eal_twice", &[], &["net_null0"]).unwrap();
    let err = dpdk_common::init("eal_twice", &[], &[]).err().unwrap();
    assert_eq!(err.errno(), libc::EALREADY);
    assert_eq!(err.op(), "rte_eal_init");

    // The first EAL is unaffected.
    assert_eq!(eal.port_ids().len(), 1);
    assert!(eal.port_by_name("net_nonexistent0").is_err());
    assert!(Mempool::new("twice", 63, 0, 2176, SOCKET_ID_ANY).is_ok());
    assert!(cycles::tsc_hz() > 0);
    let t0 = cycles::tsc();
    assert!(cycles::tsc() > t0);
}
