//! Link monitoring: each port's link state, polled every control tick, turned into
//! down/up events the control loop passes to the workers (failover, re-announcement).
//!
//! Where the state comes from depends on the PMD:
//! - `net_af_packet` and `net_af_xdp` report their link up from start to stop whatever
//!   the interface does (DPDK 22.11 sets it at `dev_start`), so their state is the kernel
//!   interface's, read from `/sys/class/net/<iface>/{operstate,carrier}` in the
//!   network namespace mpgw runs in (`iface=` of the vdev); when that cannot be read
//!   the DPDK state is used;
//! - every other PMD: DPDK's `rte_eth_link_get_nowait`.
//!
//! Every port is polled every control tick (20 ms). Where the PMD raises
//! link-state-change interrupts (`RTE_ETH_DEV_INTR_LSC`: most NIC PMDs, `net_vhost`,
//! `net_virtio`), the port is configured with them and its LSC callback wakes the
//! control loop at once ([`LinkWaker`], [`wait_tick`]), so a link loss is acted on
//! within the interrupt's latency instead of up to a tick later; the poll stays as
//! the fallback (and catches what an interrupt missed). DPDK 22.11's `net_tap`
//! advertises LSC but never delivers it to applications: it is polled.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Wakes the control loop waiting in [`wait_tick`]: what the LSC callbacks call, on
/// DPDK's interrupt thread (an unpark: no lock shared with anyone, no allocation).
#[derive(Clone, Debug)]
pub struct LinkWaker(std::thread::Thread);

impl LinkWaker {
    /// A waker of the calling thread's [`wait_tick`].
    pub fn for_current_thread() -> Self {
        LinkWaker(std::thread::current())
    }

    /// Ends the thread's current wait at once (or its next one, if it is busy).
    pub fn wake(&self) {
        self.0.unpark();
    }
}

/// Waits `period`, or less when a [`LinkWaker`] of this thread woke it (an early
/// return only makes the next tick come sooner).
pub fn wait_tick(period: Duration) {
    std::thread::park_timeout(period);
}

/// Where a port's link state is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkSource {
    /// DPDK's link status (`rte_eth_link_get_nowait`).
    Dpdk,
    /// The kernel interface under this `/sys/class/net/<iface>` directory.
    Kernel(PathBuf),
}

impl LinkSource {
    /// The source for a port driven by PMD `driver` from the vdev or PCI `device`.
    pub fn for_port(driver: &str, device: &str) -> LinkSource {
        let iface = device
            .split(',')
            .find_map(|kv| kv.strip_prefix("iface="))
            .filter(|i| !i.is_empty() && !i.contains('/'));
        match iface {
            Some(i) if driver == "net_af_packet" || driver == "net_af_xdp" => {
                LinkSource::Kernel(Path::new("/sys/class/net").join(i))
            }
            _ => LinkSource::Dpdk,
        }
    }

    /// Its name in stats and logs.
    pub fn name(&self) -> &'static str {
        match self {
            LinkSource::Dpdk => "dpdk",
            LinkSource::Kernel(_) => "kernel",
        }
    }
}

/// The link state of the kernel interface at `dir` (`/sys/class/net/<iface>`): up
/// when its operstate is `up`, or `unknown` with carrier (drivers without operstate);
/// `None` when it cannot be read.
pub fn kernel_link_up(dir: &Path) -> Option<bool> {
    let oper = std::fs::read_to_string(dir.join("operstate")).ok()?;
    Some(match oper.trim() {
        "up" => true,
        "unknown" => std::fs::read_to_string(dir.join("carrier")).is_ok_and(|c| c.trim() == "1"),
        _ => false,
    })
}

/// One port's link as monitored.
#[derive(Debug)]
pub struct PortLink {
    /// Where its state is read.
    pub source: LinkSource,
    /// Up at the last poll.
    pub up: bool,
    /// Times it went down.
    pub downs: u64,
    /// The last failover's time, µs (the workers raise it, see the `PortDown` command).
    pub failover_us: Arc<AtomicU64>,
}

/// A link change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEvent {
    /// Port `index` went down, seen at this instant.
    Down(usize, Instant),
    /// Port `index` came back.
    Up(usize),
}

/// The link state of every port.
#[derive(Debug)]
pub struct LinkMonitor {
    ports: Vec<PortLink>,
}

impl LinkMonitor {
    /// Monitors ports with these sources, taken to be up until the first poll.
    pub fn new(sources: Vec<LinkSource>) -> Self {
        LinkMonitor {
            ports: sources
                .into_iter()
                .map(|source| PortLink {
                    source,
                    up: true,
                    downs: 0,
                    failover_us: Arc::new(AtomicU64::new(0)),
                })
                .collect(),
        }
    }

    /// The ports.
    pub fn ports(&self) -> &[PortLink] {
        &self.ports
    }

    /// Reads every port's state (`dpdk_up(index)` for DPDK sources, and for kernel
    /// ones that cannot be read) and returns what changed since the last poll.
    pub fn poll(&mut self, mut dpdk_up: impl FnMut(usize) -> bool) -> Vec<LinkEvent> {
        let mut events = Vec::new();
        for (i, p) in self.ports.iter_mut().enumerate() {
            let up = match &p.source {
                LinkSource::Dpdk => dpdk_up(i),
                LinkSource::Kernel(dir) => kernel_link_up(dir).unwrap_or_else(|| dpdk_up(i)),
            };
            if up == p.up {
                continue;
            }
            p.up = up;
            if up {
                events.push(LinkEvent::Up(i));
            } else {
                p.downs += 1;
                events.push(LinkEvent::Down(i, Instant::now()));
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn af_packet_and_af_xdp_ports_are_watched_through_their_kernel_interface() {
        assert_eq!(
            LinkSource::for_port("net_af_packet", "net_af_packet0,iface=gd1,qpairs=1"),
            LinkSource::Kernel(PathBuf::from("/sys/class/net/gd1"))
        );
        assert_eq!(
            LinkSource::for_port("net_af_xdp", "net_af_xdp1,iface=gd1,queue_count=1"),
            LinkSource::Kernel(PathBuf::from("/sys/class/net/gd1"))
        );
        assert_eq!(
            LinkSource::for_port("net_ice", "0000:3b:00.0"),
            LinkSource::Dpdk
        );
        assert_eq!(
            LinkSource::for_port("net_af_packet", "net_af_packet0,iface=../x"),
            LinkSource::Dpdk
        );
    }

    #[test]
    fn kernel_state_comes_from_operstate_and_carrier() {
        let dir = std::env::temp_dir().join(format!("mpgw-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let set = |oper: &str, carrier: &str| {
            std::fs::write(dir.join("operstate"), format!("{oper}\n")).unwrap();
            std::fs::write(dir.join("carrier"), format!("{carrier}\n")).unwrap();
        };
        set("up", "1");
        assert_eq!(kernel_link_up(&dir), Some(true));
        set("lowerlayerdown", "0");
        assert_eq!(kernel_link_up(&dir), Some(false));
        set("unknown", "1");
        assert_eq!(kernel_link_up(&dir), Some(true));
        set("unknown", "0");
        assert_eq!(kernel_link_up(&dir), Some(false));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(kernel_link_up(&dir), None);
    }

    #[test]
    fn changes_become_events_once() {
        let mut m = LinkMonitor::new(vec![LinkSource::Dpdk, LinkSource::Dpdk]);
        assert!(m.poll(|_| true).is_empty());
        let ev = m.poll(|i| i == 0);
        assert!(matches!(ev.as_slice(), [LinkEvent::Down(1, _)]));
        assert!(m.poll(|i| i == 0).is_empty());
        assert_eq!(m.poll(|_| true), vec![LinkEvent::Up(1)]);
        assert_eq!(m.ports()[1].downs, 1);
        assert!(m.ports()[1].up);
    }

    #[test]
    fn a_waker_ends_the_tick_at_once_and_the_change_is_seen() {
        const TICK: Duration = Duration::from_millis(20);
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let mut m = LinkMonitor::new(vec![LinkSource::Dpdk]);
        let waker = LinkWaker::for_current_thread();
        // What an LSC callback does on DPDK's interrupt thread, half a second into a
        // long wait: the driver's state changed, the control loop is woken.
        let interrupt = std::thread::spawn({
            let up = up.clone();
            move || {
                std::thread::sleep(Duration::from_millis(500));
                up.store(false, std::sync::atomic::Ordering::Relaxed);
                let at = Instant::now();
                waker.wake();
                at
            }
        });
        let start = Instant::now();
        let mut seen = None;
        while start.elapsed() < Duration::from_secs(5) {
            wait_tick(Duration::from_secs(10));
            let events = m.poll(|_| up.load(std::sync::atomic::Ordering::Relaxed));
            if let [LinkEvent::Down(0, at)] = events.as_slice() {
                seen = Some(*at);
                break;
            }
        }
        let changed = interrupt.join().unwrap();
        let seen = seen.expect("the link loss was seen");
        let latency = seen.saturating_duration_since(changed);
        assert!(latency < TICK, "{latency:?}");
    }

    #[test]
    fn an_unreadable_kernel_interface_falls_back_to_dpdk() {
        let mut m = LinkMonitor::new(vec![LinkSource::Kernel(PathBuf::from(
            "/nonexistent/mpgw-test-iface",
        ))]);
        assert!(matches!(
            m.poll(|_| false).as_slice(),
            [LinkEvent::Down(0, _)]
        ));
    }
}
