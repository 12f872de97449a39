//! Closures run on worker lcores; a panic there comes back from `join` as an error
//! instead of aborting the process.
#![cfg(dpdk)]

mod dpdk_common;

use dataplane::dpdk::lcore::{self, current_lcore};
use dataplane::dpdk::{Mempool, SOCKET_ID_ANY};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

#[test]
fn launch_runs_on_the_worker_and_reports_panics() {
    let eal = dpdk_common::init("lcore", &[1], &[]).unwrap();
    assert_eq!(eal.main_lcore(), 0);
    assert_eq!(eal.worker_lcores(), vec![1]);
    assert_eq!(current_lcore(), Some(0));

    let seen = Arc::new(AtomicU32::new(u32::MAX));
    let seen2 = Arc::clone(&seen);
    let job = lcore::launch(1, move || {
        seen2.store(current_lcore().unwrap_or(u32::MAX), Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(job.lcore_id(), 1);
    job.join().unwrap();
    assert_eq!(seen.load(Ordering::Relaxed), 1);

    let err = lcore::launch(1, || panic!("boom on purpose"))
        .unwrap()
        .join()
        .unwrap_err();
    assert_eq!(err.errno(), libc::ECANCELED);
    assert!(err.message().contains("boom on purpose"), "{err}");

    // The lcore is usable again after a panic; the main lcore is not a launch target.
    lcore::launch(1, || ()).unwrap().join().unwrap();
    assert!(lcore::launch(0, || ()).is_err());
    assert!(lcore::launch(7, || ()).is_err());

    // A registered non-EAL thread gets an lcore id and can use mempools.
    let pool = Mempool::new("lcore_reg", 63, 16, 2176, SOCKET_ID_ANY).unwrap();
    let pool2 = pool.clone();
    let (before, after, got) = std::thread::spawn(move || {
        let before = current_lcore();
        lcore::register_thread().unwrap();
        (before, current_lcore(), pool2.alloc().is_some())
    })
    .join()
    .unwrap();
    assert_eq!(before, None);
    assert!(after.is_some_and(|id| id > 1));
    assert!(got);
    assert_eq!(pool.in_use(), 0);
}
