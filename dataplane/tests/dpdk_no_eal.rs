//! Without a running EAL, DPDK objects are refused with an error.
#![cfg(dpdk)]

use dataplane::dpdk::{lcore, Mempool, SOCKET_ID_ANY};

#[test]
fn objects_need_a_running_eal() {
    let err = Mempool::new("no_eal", 63, 0, 2176, SOCKET_ID_ANY).unwrap_err();
    assert_eq!(err.errno(), libc::ENODEV);
    assert!(lcore::launch(1, || ()).is_err());
    assert_eq!(lcore::current_lcore(), None);
}
