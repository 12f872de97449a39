//! `rte_flow` steering rules on the vdevs this machine can run. None of them can take
//! mpgw's rule (exact TCP 4-tuple → QUEUE): `net_null` and `net_af_packet` have no flow
//! operations at all, and `net_tap` implements rte_flow through Linux TC, which this
//! kernel lacks the pieces for (no `multiq` qdisc, no `flower` classifier, no `skbedit`
//! action), yet validates the rule. So the test checks that the calls fail with
//! DPDK's own error (`ENOSYS`; for the tap: creation), and that the start-up probe
//! (`EthDev::flow_probe`, whose error the gateway reports before asking for no rules)
//! says what creating a rule says, not what validating one does. The tap and
//! af_packet ports live in a network namespace the test process creates for itself
//! (`unshare`, root only; without it only `net_null` is checked).
#![cfg(dpdk)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod dpdk_common;

use dataplane::dpdk::{EthDev, Mempool, PortConfig, SteerRule, SOCKET_ID_ANY};
use std::time::Duration;

#[test]
fn vdevs_here_refuse_the_steering_rule_with_dpdk_s_error() {
    // SAFETY: plain system call without pointers. It moves this thread (and the
    // threads it starts later: EAL's) into a new network namespace, which goes away
    // with the process, taking the tap interface with it.
    let own_netns = unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0;
    let mut vdevs = vec!["net_null0"];
    if own_netns {
        vdevs.extend(["net_tap0,iface=mpgwflow0", "net_af_packet0,iface=lo"]);
    } else {
        eprintln!("no network namespace of our own (not root?): net_null only");
    }
    let eal = dpdk_common::init("flow", &[], &vdevs).unwrap();
    let pool = Mempool::new("flow", 4095, 64, 2176, SOCKET_ID_ANY).unwrap();
    let cfg = PortConfig {
        rx_queues: 2,
        tx_queues: 2,
        link_wait: Duration::ZERO,
        ..PortConfig::default()
    };
    let rules = [
        SteerRule {
            remote: "198.51.100.2:40001".parse().unwrap(),
            local: "192.0.2.1:5201".parse().unwrap(),
            vlan: None,
            queue: 1,
        },
        SteerRule {
            remote: "[2001:db8:0:100::1]:40001".parse().unwrap(),
            local: "[2001:db8::1]:5201".parse().unwrap(),
            vlan: Some(100),
            queue: 1,
        },
    ];
    let locals = ["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()];
    for spec in &vdevs {
        let name = spec.split(',').next().unwrap();
        let dev = EthDev::open(eal.port_by_name(name).unwrap(), &cfg, &pool).unwrap();
        let probe = dev.flow_probe(&locals, None, 1);
        eprintln!("{name}: probe {probe:?}");
        let mut created = true;
        for rule in &rules {
            let valid = dev.flow_validate(rule);
            let made = dev.flow_create(rule).and_then(|r| r.destroy());
            eprintln!("{name}: validate {valid:?}, create {made:?}");
            match name {
                // No flow operations: DPDK's own error, for every call.
                "net_null0" | "net_af_packet0" => {
                    for e in [valid.unwrap_err(), made.as_ref().unwrap_err().clone()] {
                        assert_eq!(e.errno(), libc::ENOSYS, "{name}: {e}");
                        assert_eq!(e.message(), "Function not implemented");
                    }
                }
                // Validation passes whatever the kernel's TC can do; creation tells.
                _ => {
                    assert!(valid.is_ok(), "{name}: {valid:?}");
                    if let Err(e) = &made {
                        assert!(!e.message().is_empty() && e.errno() != 0, "{e:?}");
                    }
                }
            }
            created &= made.is_ok();
        }
        // The start-up probe says what creating a rule says, not what validating does.
        assert_eq!(probe.is_ok(), created, "{name}: {probe:?}");
        if let Err(e) = &probe {
            assert!(!e.message().is_empty(), "{name}: the PMD's error is kept");
        }
    }
}
