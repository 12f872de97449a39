//! `rte_eal_remote_launch` may only be called from the main lcore: from any other thread
//! (registered or not) `lcore::launch` is refused instead of racing on the worker's slot.
#![cfg(dpdk)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod dpdk_common;

use dataplane::dpdk::lcore;

#[test]
fn launch_is_refused_off_the_main_lcore() {
    let _eal = dpdk_common::init("lcore_main_only", &[1], &[]).unwrap();
    let (plain, registered) = std::thread::spawn(|| {
        let plain = lcore::launch(1, || ()).map(lcore::LcoreJoin::join);
        lcore::register_thread().unwrap();
        let registered = lcore::launch(1, || ()).map(lcore::LcoreJoin::join);
        (plain, registered)
    })
    .join()
    .unwrap();
    assert_eq!(plain.unwrap_err().errno(), libc::EPERM);
    assert_eq!(registered.unwrap_err().errno(), libc::EPERM);
    // The main lcore still launches.
    lcore::launch(1, || ()).unwrap().join().unwrap();
}
