//! Link-state-change interrupts for real: a `net_vhost` port raises LSC events when its
//! vhost-user peer (a `virtio_user` port hot-plugged into the same process) starts and
//! stops; the watch's closure runs for each, well within the control thread's 20 ms
//! link-polling period, and not after the watch is dropped. A PMD without LSC
//! (`net_null`) is refused.
//!
//! Not `net_tap`: DPDK 22.11's tap PMD advertises `RTE_ETH_DEV_INTR_LSC` and follows
//! the kernel interface through netlink, but only updates its link status; it never
//! calls the application's LSC callbacks (`librte_net_tap` does not even reference
//! `rte_eth_dev_callback_process`), so for it the link poll does the work.
#![cfg(dpdk)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod dpdk_common;

use dataplane::dpdk::{EthDev, Mempool, PortConfig, SOCKET_ID_ANY};
use std::ffi::CString;
use std::time::{Duration, Instant};

/// The control thread's link-polling period: an LSC event must beat it.
const POLL_PERIOD: Duration = Duration::from_millis(20);

#[test]
fn vhost_link_changes_run_the_callback_within_the_polling_period() {
    let sock = std::env::temp_dir().join(format!("mpgw-lsc-{}.sock", std::process::id()));
    let sock = sock.to_str().unwrap().to_owned();
    let eal = dpdk_common::init(
        "lsc",
        &[],
        &[&format!("net_vhost0,iface={sock},queues=1"), "net_null0"],
    )
    .unwrap();
    let pool = Mempool::new("lsc", 2047, 32, 2176, SOCKET_ID_ANY).unwrap();
    let cfg = PortConfig {
        link_wait: Duration::ZERO,
        ..PortConfig::default()
    };

    let null = EthDev::open(eal.port_by_name("net_null0").unwrap(), &cfg, &pool).unwrap();
    assert!(!null.info().lsc && !null.effective().lsc);
    assert_eq!(null.watch_link(|| {}).unwrap_err().errno(), libc::ENOTSUP);

    // The vhost port listens on its socket once started; no peer yet: link down.
    let vhost = EthDev::open(eal.port_by_name("net_vhost0").unwrap(), &cfg, &pool).unwrap();
    assert!(vhost.info().lsc && vhost.effective().lsc);
    assert!(!vhost.link().up);
    let (tx, rx) = crossbeam::channel::unbounded();
    let watch = vhost
        .watch_link(move || {
            let _ = tx.send(Instant::now());
        })
        .unwrap();
    assert_eq!(watch.port_id(), vhost.port_id());
    assert!(watch.last_event().is_none());

    // The peer connects and starts: link up.
    let args = CString::new(format!("virtio_user0,path={sock},queues=1")).unwrap();
    // SAFETY: EAL runs; `args` is a valid C string DPDK copies.
    assert_eq!(unsafe { dpdk_sys::rte_dev_probe(args.as_ptr()) }, 0);
    let peer = EthDev::open(eal.port_by_name("virtio_user0").unwrap(), &cfg, &pool).unwrap();
    rx.recv_timeout(Duration::from_secs(5))
        .expect("no LSC event when the peer started");
    assert!(vhost.link().up);
    // The PMD may report one change more than once.
    while rx.recv_timeout(Duration::from_millis(100)).is_ok() {}
    let ups = watch.events();
    assert!(ups >= 1);

    // The peer stops: link down, at once.
    let t0 = Instant::now();
    drop(peer);
    let fired = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("no LSC event when the peer stopped");
    let latency = fired.saturating_duration_since(t0);
    eprintln!("link down: LSC callback after {latency:?}");
    assert!(latency < POLL_PERIOD, "{latency:?}");
    assert!(!vhost.link().up);
    assert!(watch.events() > ups);
    let last = watch.last_event().expect("the time of the last event");
    assert!(last.elapsed().unwrap() < Duration::from_secs(5));

    // Dropped: unregistered, and its closure (holding the sender) freed.
    drop(watch);
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(100)),
        Err(crossbeam::channel::RecvTimeoutError::Disconnected)
    ));
    drop(vhost);
    let _ = std::fs::remove_file(&sock);
}
