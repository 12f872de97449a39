//! The control thread's side of flow-rule steering (`[dataplane] flow_rules`): which
//! ports take the `rte_flow` rule mpgw needs, and the rules the workers ask for.
//!
//! At start each port is probed once ([`probe`]): a representative rule — `eth /
//! [vlan] / ipv4 or ipv6 / tcp`, both addresses and ports exact, action `QUEUE` — per
//! address family the port has is validated (`rte_flow_validate`), then created and
//! destroyed again (`net_tap` validates rules its kernel cannot install). The answer
//! (or the PMD's error) is logged and shown by `mpgw stats` (`flow_steering`). Workers ask only
//! on ports that passed ([`dataplane::flow_steer`]); [`FlowRules`] drains their bounded
//! channel on every control tick and installs or removes the rules through
//! [`FlowOps`] — `rte_flow_create`/`_destroy` in production ([`EthFlows`]), a test
//! double in the tests — at most `flow_rules` per port, counting what it installed,
//! removed, failed to install and refused for the bound. Only this thread touches the
//! rules: ethdev takes a per-port lock around flow operations on PMDs without
//! thread-safe ones, which must never be on a worker's packet path.
//!
//! Rules go away with their subflows (the owner asks when its table frees the
//! subflow) and all at once at shutdown ([`FlowRules::clear`]), before the ports are
//! stopped. A port's link going down or up leaves them alone: link state does not
//! touch flow rules, and the workers reset the subflows a failover moves, whose
//! removal then follows.

use dataplane::flow_steer::FlowRequest;
use dataplane::tcp::FourTuple;
use std::collections::HashMap;

/// Requests handled per control tick at most (rule creation can take a while on
/// some NICs; the rest waits for the next tick).
pub const PER_TICK: usize = 256;

/// Whether a port takes steering rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    /// `flow_rules = 0`: not probed, not used.
    Off,
    /// The PMD refused the representative rule; its error.
    Unsupported(String),
    /// The PMD validated it.
    Supported,
}

impl Capability {
    /// True when rules may be installed.
    pub fn supported(&self) -> bool {
        *self == Capability::Supported
    }

    /// How `mpgw stats` shows it.
    pub fn describe(&self, workers: usize) -> String {
        match self {
            Capability::Off => "off (flow_rules = 0)".into(),
            Capability::Unsupported(e) => format!("unsupported: {e}"),
            Capability::Supported if workers < 2 => "supported, unused (one worker)".into(),
            Capability::Supported => "on".into(),
        }
    }
}

/// One port's rule counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Rules installed.
    pub installed: u64,
    /// Rules removed (their subflow closed, or replaced).
    pub removed: u64,
    /// Rules the PMD refused to install or remove.
    pub failed: u64,
    /// Requests refused because the port had `flow_rules` rules already.
    pub refused: u64,
    /// Rules in place now (gauge).
    pub active: u64,
}

/// Installs and removes rules: `rte_flow` in production, a double in tests.
pub trait FlowOps {
    /// An installed rule.
    type Rule;
    /// Installs a rule steering the segments of `tuple` (our side local) that arrive
    /// on port `port` (index) to RX queue `queue`.
    fn create(&mut self, port: u16, tuple: &FourTuple, queue: u16) -> Result<Self::Rule, String>;
    /// Removes a rule.
    fn destroy(&mut self, port: u16, rule: Self::Rule) -> Result<(), String>;
}

/// One port's rules.
struct PortRules<R> {
    capability: Capability,
    /// Tuple → (queue, rule).
    rules: HashMap<FourTuple, (u16, R)>,
    stats: FlowStats,
    /// A failure was logged at `warn` already (later ones go to `debug`).
    warned: bool,
}

/// Every port's rules, installed on the workers' requests within a bound per port.
pub struct FlowRules<O: FlowOps> {
    ops: O,
    limit: usize,
    ports: Vec<PortRules<O::Rule>>,
}

impl<O: FlowOps> FlowRules<O> {
    /// Rules through `ops`, at most `limit` per port, for ports with `capabilities`
    /// (in port order).
    pub fn new(ops: O, limit: usize, capabilities: Vec<Capability>) -> Self {
        let ports = capabilities
            .into_iter()
            .map(|capability| PortRules {
                capability,
                rules: HashMap::new(),
                stats: FlowStats::default(),
                warned: false,
            })
            .collect();
        FlowRules { ops, limit, ports }
    }

    /// Carries out one worker request. A request for a port that does not take rules
    /// (workers never send one) is ignored.
    pub fn handle(&mut self, req: FlowRequest) {
        match req {
            FlowRequest::Steer { port, tuple, queue } => self.steer(port, tuple, queue),
            FlowRequest::Release { port, tuple, queue } => self.release(port, &tuple, queue),
        }
    }

    /// Handles up to `max` requests waiting in `requests`; returns how many.
    pub fn drain(
        &mut self,
        requests: &crossbeam::channel::Receiver<FlowRequest>,
        max: usize,
    ) -> usize {
        let mut n = 0;
        while n < max {
            let Ok(req) = requests.try_recv() else { break };
            self.handle(req);
            n += 1;
        }
        n
    }

    fn steer(&mut self, port: u16, tuple: FourTuple, queue: u16) {
        let Some(p) = self.ports.get_mut(usize::from(port)) else {
            return;
        };
        if !p.capability.supported() {
            return;
        }
        match p.rules.get(&tuple).map(|&(q, _)| q) {
            Some(q) if q == queue => return,
            // The 4-tuple now belongs to another worker: the old rule goes first.
            Some(_) => self.release(port, &tuple, None),
            None => {}
        }
        let Some(p) = self.ports.get_mut(usize::from(port)) else {
            return;
        };
        if p.rules.len() >= self.limit {
            p.stats.refused += 1;
            return;
        }
        match self.ops.create(port, &tuple, queue) {
            Ok(rule) => {
                p.rules.insert(tuple, (queue, rule));
                p.stats.installed += 1;
            }
            Err(e) => {
                p.stats.failed += 1;
                if std::mem::replace(&mut p.warned, true) {
                    tracing::debug!(port, ?tuple, error = %e, "flow rule not installed");
                } else {
                    tracing::warn!(port, ?tuple, error = %e,
                        "flow rule not installed (further failures are logged at debug)");
                }
            }
        }
        p.stats.active = p.rules.len() as u64;
    }

    /// Removes the rule of `tuple` on `port` if it steers to `queue` (any queue with
    /// `None`).
    fn release(&mut self, port: u16, tuple: &FourTuple, queue: impl Into<Option<u16>>) {
        let queue = queue.into();
        let Some(p) = self.ports.get_mut(usize::from(port)) else {
            return;
        };
        let Some(&(q, _)) = p.rules.get(tuple) else {
            return;
        };
        if queue.is_some_and(|want| want != q) {
            return;
        }
        let Some((_, rule)) = p.rules.remove(tuple) else {
            return;
        };
        match self.ops.destroy(port, rule) {
            Ok(()) => p.stats.removed += 1,
            Err(e) => {
                p.stats.failed += 1;
                tracing::warn!(port, ?tuple, error = %e, "flow rule not removed");
            }
        }
        p.stats.active = p.rules.len() as u64;
    }

    /// Removes every rule (at shutdown, before the ports stop).
    pub fn clear(&mut self) {
        for port in 0..self.ports.len() {
            let tuples: Vec<FourTuple> = self.ports[port].rules.keys().copied().collect();
            for t in tuples {
                // At most u16::MAX ports: DPDK port ids are u16.
                self.release(port as u16, &t, None);
            }
        }
    }

    /// Port `port`'s capability and counters.
    pub fn port(&self, port: usize) -> Option<(&Capability, FlowStats)> {
        self.ports.get(port).map(|p| (&p.capability, p.stats))
    }
}

#[cfg(dpdk)]
pub use imp::{probe, EthFlows};

#[cfg(dpdk)]
mod imp {
    use super::{Capability, FlowOps};
    use dataplane::dpdk::{EthDev, FlowRule, SteerRule};
    use dataplane::tcp::FourTuple;
    use std::net::IpAddr;

    /// Whether `dev` takes the steering rule towards its addresses `addrs`, tagged
    /// with `vlan`, to queue `queue` (a trial rule per address family, validated,
    /// created and destroyed: [`EthDev::flow_probe`]).
    pub fn probe(dev: &EthDev, addrs: &[IpAddr], vlan: Option<u16>, queue: u16) -> Capability {
        match dev.flow_probe(addrs, vlan, queue) {
            Ok(()) => Capability::Supported,
            Err(e) => Capability::Unsupported(e.to_string()),
        }
    }

    /// The production [`FlowOps`]: `rte_flow` rules on the gateway's ports.
    pub struct EthFlows<'a> {
        /// Per port index: the device and its VLAN id.
        ports: Vec<(&'a EthDev, Option<u16>)>,
    }

    impl<'a> EthFlows<'a> {
        /// Rules on `ports` (in port order, each with its VLAN id).
        pub fn new(ports: Vec<(&'a EthDev, Option<u16>)>) -> Self {
            EthFlows { ports }
        }
    }

    impl FlowOps for EthFlows<'_> {
        type Rule = FlowRule;

        fn create(&mut self, port: u16, tuple: &FourTuple, queue: u16) -> Result<FlowRule, String> {
            let &(dev, vlan) = self
                .ports
                .get(usize::from(port))
                .ok_or_else(|| format!("no port {port}"))?;
            let rule = SteerRule {
                remote: tuple.remote,
                local: tuple.local,
                vlan,
                queue,
            };
            dev.flow_create(&rule).map_err(|e| e.to_string())
        }

        fn destroy(&mut self, _port: u16, rule: FlowRule) -> Result<(), String> {
            rule.destroy().map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::net::SocketAddr;
    use std::rc::Rc;

    /// Rules in a shared list; creation fails for remote port 666, destruction for
    /// queue 7.
    #[derive(Default)]
    struct Double {
        live: Rc<RefCell<Vec<(u16, FourTuple, u16)>>>,
    }

    impl FlowOps for Double {
        type Rule = (u16, FourTuple, u16);

        fn create(
            &mut self,
            port: u16,
            tuple: &FourTuple,
            queue: u16,
        ) -> Result<Self::Rule, String> {
            if tuple.remote.port() == 666 {
                return Err("table full".into());
            }
            self.live.borrow_mut().push((port, *tuple, queue));
            Ok((port, *tuple, queue))
        }

        fn destroy(&mut self, _port: u16, rule: Self::Rule) -> Result<(), String> {
            self.live.borrow_mut().retain(|r| *r != rule);
            if rule.2 == 7 {
                return Err("busy".into());
            }
            Ok(())
        }
    }

    fn tuple(remote_port: u16) -> FourTuple {
        FourTuple {
            local: SocketAddr::from(([192, 0, 2, 1], 5201)),
            remote: SocketAddr::from(([198, 51, 100, 2], remote_port)),
        }
    }

    fn steer(port: u16, remote_port: u16, queue: u16) -> FlowRequest {
        FlowRequest::Steer {
            port,
            tuple: tuple(remote_port),
            queue,
        }
    }

    fn release(port: u16, remote_port: u16, queue: u16) -> FlowRequest {
        FlowRequest::Release {
            port,
            tuple: tuple(remote_port),
            queue,
        }
    }

    #[test]
    fn rules_are_installed_removed_bounded_and_counted_per_port() {
        let ops = Double::default();
        let live = ops.live.clone();
        let caps = vec![
            Capability::Supported,
            Capability::Unsupported("ENOSYS".into()),
        ];
        let mut f = FlowRules::new(ops, 2, caps);
        f.handle(steer(0, 1, 1));
        f.handle(steer(0, 1, 1)); // asked twice: one rule
        f.handle(steer(0, 2, 0));
        f.handle(steer(0, 3, 1)); // bound reached
        f.handle(steer(1, 4, 1)); // port without support: ignored
        f.handle(steer(9, 5, 1)); // no such port: ignored
        let stats = f.port(0).map(|(_, s)| s);
        let want = FlowStats {
            installed: 2,
            refused: 1,
            active: 2,
            ..FlowStats::default()
        };
        assert_eq!(stats, Some(want));
        assert_eq!(f.port(1).map(|(_, s)| s), Some(FlowStats::default()));
        assert_eq!(live.borrow().len(), 2);
        // A release from a worker that no longer owns the 4-tuple leaves the rule.
        f.handle(release(0, 1, 0));
        assert_eq!(f.port(0).map(|(_, s)| s.active), Some(2));
        f.handle(release(0, 1, 1));
        f.handle(release(0, 1, 1)); // already gone
        let s = f.port(0).map(|(_, s)| s).unwrap_or_default();
        assert_eq!((s.removed, s.active), (1, 1));
        assert!(!live.borrow().iter().any(|r| r.1 == tuple(1)));
        // Room again; a PMD failure is counted.
        f.handle(steer(0, 666, 1));
        let s = f.port(0).map(|(_, s)| s).unwrap_or_default();
        assert_eq!((s.installed, s.failed, s.active), (2, 1, 1));
        // The same 4-tuple steered to another queue: the old rule is replaced.
        f.handle(steer(0, 2, 1));
        let s = f.port(0).map(|(_, s)| s).unwrap_or_default();
        assert_eq!((s.installed, s.removed, s.active), (3, 2, 1));
        assert_eq!(live.borrow().as_slice(), [(0, tuple(2), 1)]);
        // Shutdown removes everything, a failed removal counted.
        f.handle(steer(0, 8, 7));
        f.clear();
        let s = f.port(0).map(|(_, s)| s).unwrap_or_default();
        assert_eq!((s.removed, s.failed, s.active), (3, 2, 0));
        assert!(live.borrow().is_empty());
    }

    #[test]
    fn requests_are_drained_a_bounded_number_per_tick() {
        let mut f = FlowRules::new(Double::default(), 100, vec![Capability::Supported]);
        let (tx, rx) = crossbeam::channel::bounded(8);
        for p in 0..5 {
            assert!(tx.try_send(steer(0, p, 1)).is_ok());
        }
        assert_eq!(f.drain(&rx, 3), 3);
        assert_eq!(f.drain(&rx, 3), 2);
        assert_eq!(f.drain(&rx, 3), 0);
        assert_eq!(f.port(0).map(|(_, s)| s.active), Some(5));
    }

    #[test]
    fn capabilities_read_as_operators_see_them() {
        assert_eq!(Capability::Off.describe(2), "off (flow_rules = 0)");
        let e = Capability::Unsupported("rte_flow_validate: Function not implemented".into());
        assert_eq!(
            e.describe(2),
            "unsupported: rte_flow_validate: Function not implemented"
        );
        assert_eq!(Capability::Supported.describe(2), "on");
        assert_eq!(
            Capability::Supported.describe(1),
            "supported, unused (one worker)"
        );
    }
}
