//! Flow rules (`rte_flow`) that steer one TCP 4-tuple to one RX queue: what the
//! control thread installs so that a subflow the peer opened (a join the port's RSS
//! put on another worker's queue) reaches its owner worker's queue directly.
//!
//! A rule is an exact match — `eth / [vlan] / ipv4 or ipv6 / tcp`, source and
//! destination addresses and ports fully masked — with the action `QUEUE`. Its pattern
//! is built in plain Rust ([`Pattern`]); [`EthDev::flow_validate`] asks the PMD whether
//! it would take such a rule, and [`EthDev::flow_create`] installs one as a
//! [`FlowRule`], destroyed when dropped (or by [`FlowRule::destroy`], which reports a
//! failure). [`EthDev::flow_probe`] tells whether a port takes them at all (mpgw asks
//! once per port at start): validation alone is not enough, `net_tap` validates
//! what its kernel then refuses to install. A rule keeps its port open, so
//! it is always gone before the port is stopped and closed (PMDs without
//! `RTE_ETH_DEV_CAPA_FLOW_RULE_KEEP` lose their rules at a stop; mpgw stops a port
//! only at shutdown).
//!
//! `rte_flow_create`/`_destroy` take ethdev's per-port lock on PMDs without
//! thread-safe flow operations: call them from one control thread, never from a
//! worker's packet path.

use super::error::{Error, Result};
use super::ethdev::{DevInner, EthDev};
use arrayvec::ArrayVec;
use dpdk_sys as sys;
use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ptr::{self, NonNull};
use std::sync::Arc;

/// What one rule matches and where it sends it: TCP segments from `remote` to
/// `local` (as they arrive on the port), tagged with `vlan` when the port uses one, go
/// to RX queue `queue`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SteerRule {
    /// The segments' source: the peer.
    pub remote: SocketAddr,
    /// Their destination: our side of the subflow.
    pub local: SocketAddr,
    /// The port's 802.1Q VLAN id, if it uses one.
    pub vlan: Option<u16>,
    /// The RX queue (the owner worker's index).
    pub queue: u16,
}

/// The layer-3 item's spec and mask.
#[derive(Clone, Copy)]
enum L3 {
    V4 {
        spec: sys::rte_flow_item_ipv4,
        mask: sys::rte_flow_item_ipv4,
    },
    V6 {
        spec: sys::rte_flow_item_ipv6,
        mask: sys::rte_flow_item_ipv6,
    },
}

/// A rule's attributes, pattern items' specs and masks, and action configuration, in
/// the C structures `rte_flow_validate`/`rte_flow_create` read; the item and action
/// arrays ([`Pattern::items`], [`Pattern::actions`]) point into it.
pub struct Pattern {
    attr: sys::rte_flow_attr,
    vlan: Option<(sys::rte_flow_item_vlan, sys::rte_flow_item_vlan)>,
    l3: L3,
    tcp: (sys::rte_flow_item_tcp, sys::rte_flow_item_tcp),
    queue: sys::rte_flow_action_queue,
}

/// The most pattern items a rule has: eth, vlan, ip, tcp, end.
const MAX_ITEMS: usize = 5;
/// The most action entries a rule has: queue, end.
const MAX_ACTIONS: usize = 2;
/// 802.1Q VLAN id bits of the TCI.
const VLAN_ID_MASK: u16 = 0x0fff;

impl Pattern {
    /// The pattern of `rule`; an error when its addresses are of two families.
    pub fn new(rule: &SteerRule) -> Result<Pattern> {
        let l3 = match (rule.remote.ip(), rule.local.ip()) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let mut spec = sys::rte_flow_item_ipv4::default();
                spec.hdr.src_addr = u32::from(src).to_be();
                spec.hdr.dst_addr = u32::from(dst).to_be();
                let mut mask = sys::rte_flow_item_ipv4::default();
                mask.hdr.src_addr = u32::MAX;
                mask.hdr.dst_addr = u32::MAX;
                L3::V4 { spec, mask }
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let mut spec = sys::rte_flow_item_ipv6::default();
                spec.hdr.src_addr = src.octets();
                spec.hdr.dst_addr = dst.octets();
                let mut mask = sys::rte_flow_item_ipv6::default();
                mask.hdr.src_addr = [0xff; 16];
                mask.hdr.dst_addr = [0xff; 16];
                L3::V6 { spec, mask }
            }
            _ => {
                return Err(Error::new(
                    "flow rule",
                    libc::EINVAL,
                    format!(
                        "{} and {} are of two address families",
                        rule.remote, rule.local
                    ),
                ))
            }
        };
        let mut spec = sys::rte_flow_item_tcp::default();
        spec.hdr.src_port = rule.remote.port().to_be();
        spec.hdr.dst_port = rule.local.port().to_be();
        let mut mask = sys::rte_flow_item_tcp::default();
        mask.hdr.src_port = u16::MAX;
        mask.hdr.dst_port = u16::MAX;
        let vlan = rule.vlan.map(|id| {
            let mut spec = sys::rte_flow_item_vlan::default();
            spec.__bindgen_anon_1.__bindgen_anon_1.tci = (id & VLAN_ID_MASK).to_be();
            let mut mask = sys::rte_flow_item_vlan::default();
            mask.__bindgen_anon_1.__bindgen_anon_1.tci = VLAN_ID_MASK.to_be();
            (spec, mask)
        });
        let mut attr = sys::rte_flow_attr::default();
        attr.set_ingress(1);
        Ok(Pattern {
            attr,
            vlan,
            l3,
            tcp: (spec, mask),
            queue: sys::rte_flow_action_queue { index: rule.queue },
        })
    }

    /// The pattern items, `END`-terminated, pointing into `self`: any Ethernet frame
    /// (the destination MAC is the port's own or a promiscuous one), the VLAN id,
    /// both addresses, both ports.
    pub fn items(&self) -> ArrayVec<sys::rte_flow_item, MAX_ITEMS> {
        let item = |type_, spec: *const std::ffi::c_void, mask: *const std::ffi::c_void| {
            sys::rte_flow_item {
                type_,
                spec,
                last: ptr::null(),
                mask,
            }
        };
        let mut items = ArrayVec::new();
        items.push(item(
            sys::rte_flow_item_type::RTE_FLOW_ITEM_TYPE_ETH,
            ptr::null(),
            ptr::null(),
        ));
        if let Some((spec, mask)) = &self.vlan {
            items.push(item(
                sys::rte_flow_item_type::RTE_FLOW_ITEM_TYPE_VLAN,
                ptr::from_ref(spec).cast(),
                ptr::from_ref(mask).cast(),
            ));
        }
        items.push(match &self.l3 {
            L3::V4 { spec, mask } => item(
                sys::rte_flow_item_type::RTE_FLOW_ITEM_TYPE_IPV4,
                ptr::from_ref(spec).cast(),
                ptr::from_ref(mask).cast(),
            ),
            L3::V6 { spec, mask } => item(
                sys::rte_flow_item_type::RTE_FLOW_ITEM_TYPE_IPV6,
                ptr::from_ref(spec).cast(),
                ptr::from_ref(mask).cast(),
            ),
        });
        let (spec, mask) = &self.tcp;
        items.push(item(
            sys::rte_flow_item_type::RTE_FLOW_ITEM_TYPE_TCP,
            ptr::from_ref(spec).cast(),
            ptr::from_ref(mask).cast(),
        ));
        items.push(item(
            sys::rte_flow_item_type::RTE_FLOW_ITEM_TYPE_END,
            ptr::null(),
            ptr::null(),
        ));
        items
    }

    /// The actions, `END`-terminated: `QUEUE` to the rule's queue.
    pub fn actions(&self) -> [sys::rte_flow_action; MAX_ACTIONS] {
        [
            sys::rte_flow_action {
                type_: sys::rte_flow_action_type::RTE_FLOW_ACTION_TYPE_QUEUE,
                conf: ptr::from_ref(&self.queue).cast(),
            },
            sys::rte_flow_action {
                type_: sys::rte_flow_action_type::RTE_FLOW_ACTION_TYPE_END,
                conf: ptr::null(),
            },
        ]
    }

    /// The attributes: ingress, group 0, priority 0.
    pub fn attr(&self) -> &sys::rte_flow_attr {
        &self.attr
    }
}

/// An installed rule; destroyed when dropped. Keeps its port open.
pub struct FlowRule {
    dev: Arc<DevInner>,
    flow: Option<NonNull<sys::rte_flow>>,
}

impl FlowRule {
    /// Destroys the rule now, reporting a failure (dropping it only logs one).
    pub fn destroy(mut self) -> Result<()> {
        self.destroy_now()
    }

    fn destroy_now(&mut self) -> Result<()> {
        let Some(flow) = self.flow.take() else {
            return Ok(());
        };
        let mut err = no_error();
        // SAFETY: `flow` was created on this port, which `dev` keeps open, and is
        // destroyed once (taken out of `self.flow`); `err` is a valid out-pointer.
        let ret = unsafe { sys::rte_flow_destroy(self.dev.port_id, flow.as_ptr(), &mut err) };
        flow_result("rte_flow_destroy", ret, &err)
    }
}

impl Drop for FlowRule {
    fn drop(&mut self) {
        if let Err(e) = self.destroy_now() {
            tracing::warn!(port = self.dev.port_id, error = %e, "flow rule not destroyed");
        }
    }
}

impl std::fmt::Debug for FlowRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowRule")
            .field("port_id", &self.dev.port_id)
            .finish()
    }
}

impl EthDev {
    /// Whether the port would take `rule` (`rte_flow_validate`); the error carries
    /// the PMD's message (`ENOSYS` from a PMD without flow operations).
    pub fn flow_validate(&self, rule: &SteerRule) -> Result<()> {
        let pattern = Pattern::new(rule)?;
        let (items, actions) = (pattern.items(), pattern.actions());
        let mut err = no_error();
        // SAFETY: started port; the attribute, items and actions are END-terminated
        // arrays pointing into `pattern`, alive for the call; `err` is an out-pointer.
        let ret = unsafe {
            sys::rte_flow_validate(
                self.port_id(),
                pattern.attr(),
                items.as_ptr(),
                actions.as_ptr(),
                &mut err,
            )
        };
        flow_result("rte_flow_validate", ret, &err)
    }

    /// Installs `rule` (`rte_flow_create`); see the module documentation for the
    /// thread to call it from.
    pub fn flow_create(&self, rule: &SteerRule) -> Result<FlowRule> {
        let pattern = Pattern::new(rule)?;
        let (items, actions) = (pattern.items(), pattern.actions());
        let mut err = no_error();
        // SAFETY: as in `flow_validate`; the PMD copies what it keeps of the pattern.
        let flow = unsafe {
            sys::rte_flow_create(
                self.port_id(),
                pattern.attr(),
                items.as_ptr(),
                actions.as_ptr(),
                &mut err,
            )
        };
        match NonNull::new(flow) {
            Some(flow) => Ok(FlowRule {
                dev: Arc::clone(self.inner()),
                flow: Some(flow),
            }),
            None => Err(flow_error("rte_flow_create", &err)),
        }
    }
}

/// The peers and local port of [`EthDev::flow_probe`]'s trial rules (documentation
/// addresses; the rules live only for the probe).
const PROBE_PEER4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 254);
const PROBE_PEER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0xfe);
const PROBE_PORTS: (u16, u16) = (40_000, 9);

impl EthDev {
    /// Whether the port takes steering rules to queue `queue`, tagged with `vlan`:
    /// for the first local address of each family in `locals` (IPv4 192.0.2.1 when
    /// there is none), a trial rule from a documentation peer is validated, created
    /// and destroyed again; the first failure, with the PMD's message.
    pub fn flow_probe(&self, locals: &[IpAddr], vlan: Option<u16>, queue: u16) -> Result<()> {
        let mut probed = false;
        for v4 in [true, false] {
            let Some(&local) = locals.iter().find(|a| a.is_ipv4() == v4) else {
                continue;
            };
            self.flow_trial(local, vlan, queue)?;
            probed = true;
        }
        if !probed {
            self.flow_trial(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), vlan, queue)?;
        }
        Ok(())
    }

    fn flow_trial(&self, local: IpAddr, vlan: Option<u16>, queue: u16) -> Result<()> {
        let peer = match local {
            IpAddr::V4(_) => IpAddr::V4(PROBE_PEER4),
            IpAddr::V6(_) => IpAddr::V6(PROBE_PEER6),
        };
        let rule = SteerRule {
            remote: SocketAddr::new(peer, PROBE_PORTS.0),
            local: SocketAddr::new(local, PROBE_PORTS.1),
            vlan,
            queue,
        };
        self.flow_validate(&rule)?;
        self.flow_create(&rule)?.destroy()
    }
}

/// An empty `rte_flow_error` for a call to fill.
fn no_error() -> sys::rte_flow_error {
    sys::rte_flow_error {
        type_: sys::rte_flow_error_type::RTE_FLOW_ERROR_TYPE_NONE,
        cause: ptr::null(),
        message: ptr::null(),
    }
}

/// `Ok` for a zero return, else the flow error.
fn flow_result(op: &'static str, ret: i32, err: &sys::rte_flow_error) -> Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(flow_error(op, err))
    }
}

/// The error a flow call reported: `rte_errno` and the PMD's message (or
/// `rte_strerror`'s when it gave none).
fn flow_error(op: &'static str, err: &sys::rte_flow_error) -> Error {
    let e = Error::last(op);
    if err.message.is_null() {
        return e;
    }
    // SAFETY: a non-null message is a NUL-terminated string of the PMD, valid while
    // the port is configured; it is copied at once.
    let msg = unsafe { CStr::from_ptr(err.message) }.to_string_lossy();
    Error::new(op, e.errno(), msg.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sys::rte_flow_item_type as T;

    /// The `idx`-th item's spec and mask as `&T`.
    fn spec_mask<T>(items: &[sys::rte_flow_item], idx: usize) -> (&T, &T) {
        let i = &items[idx];
        assert!(!i.spec.is_null() && !i.mask.is_null() && i.last.is_null());
        // SAFETY: the test asks for the type the item's `type_` names; the pointers
        // point into the pattern, alive for the test.
        unsafe { (&*i.spec.cast::<T>(), &*i.mask.cast::<T>()) }
    }

    fn types(items: &[sys::rte_flow_item]) -> Vec<T> {
        items.iter().map(|i| i.type_).collect()
    }

    fn queue_of(p: &Pattern) -> u16 {
        let a = p.actions();
        assert_eq!(
            a[0].type_,
            sys::rte_flow_action_type::RTE_FLOW_ACTION_TYPE_QUEUE
        );
        assert_eq!(
            a[1].type_,
            sys::rte_flow_action_type::RTE_FLOW_ACTION_TYPE_END
        );
        assert!(a[1].conf.is_null());
        // SAFETY: a QUEUE action's conf is an `rte_flow_action_queue` in `p`.
        unsafe { (*a[0].conf.cast::<sys::rte_flow_action_queue>()).index }
    }

    #[test]
    fn an_ipv4_rule_matches_the_exact_four_tuple_to_a_queue() {
        let rule = SteerRule {
            remote: "198.51.100.2:40001".parse().unwrap(),
            local: "192.0.2.1:5201".parse().unwrap(),
            vlan: None,
            queue: 3,
        };
        let p = Pattern::new(&rule).unwrap();
        let items = p.items();
        assert_eq!(
            types(&items),
            [
                T::RTE_FLOW_ITEM_TYPE_ETH,
                T::RTE_FLOW_ITEM_TYPE_IPV4,
                T::RTE_FLOW_ITEM_TYPE_TCP,
                T::RTE_FLOW_ITEM_TYPE_END
            ]
        );
        assert!(
            items[0].spec.is_null() && items[0].mask.is_null(),
            "any frame"
        );
        assert!(items[3].spec.is_null() && items[3].mask.is_null());
        let (spec, mask) = spec_mask::<sys::rte_flow_item_ipv4>(&items, 1);
        let (src, dst) = (spec.hdr.src_addr, spec.hdr.dst_addr);
        assert_eq!(src.to_ne_bytes(), [198, 51, 100, 2], "network order");
        assert_eq!(dst.to_ne_bytes(), [192, 0, 2, 1]);
        let (msrc, mdst) = (mask.hdr.src_addr, mask.hdr.dst_addr);
        assert_eq!((msrc, mdst), (u32::MAX, u32::MAX));
        let (proto, tos, id) = (
            mask.hdr.next_proto_id,
            mask.hdr.type_of_service,
            mask.hdr.packet_id,
        );
        assert_eq!((proto, tos, id), (0, 0, 0), "nothing else is matched");
        let (spec, mask) = spec_mask::<sys::rte_flow_item_tcp>(&items, 2);
        let (sp, dp) = (spec.hdr.src_port, spec.hdr.dst_port);
        assert_eq!(
            (sp.to_ne_bytes(), dp.to_ne_bytes()),
            (40001u16.to_be_bytes(), 5201u16.to_be_bytes())
        );
        let (msp, mdp, mflags) = (mask.hdr.src_port, mask.hdr.dst_port, mask.hdr.tcp_flags);
        assert_eq!((msp, mdp, mflags), (u16::MAX, u16::MAX, 0));
        assert_eq!(queue_of(&p), 3);
        assert_eq!(p.attr().ingress(), 1);
        assert_eq!(p.attr().egress(), 0);
        assert_eq!((p.attr().group, p.attr().priority), (0, 0));
    }

    #[test]
    fn an_ipv6_rule_with_a_vlan_matches_the_tag_too() {
        let rule = SteerRule {
            remote: "[2001:db8:0:100::1]:50000".parse().unwrap(),
            local: "[2001:db8::1]:443".parse().unwrap(),
            vlan: Some(100),
            queue: 1,
        };
        let p = Pattern::new(&rule).unwrap();
        let items = p.items();
        assert_eq!(
            types(&items),
            [
                T::RTE_FLOW_ITEM_TYPE_ETH,
                T::RTE_FLOW_ITEM_TYPE_VLAN,
                T::RTE_FLOW_ITEM_TYPE_IPV6,
                T::RTE_FLOW_ITEM_TYPE_TCP,
                T::RTE_FLOW_ITEM_TYPE_END
            ]
        );
        let (spec, mask) = spec_mask::<sys::rte_flow_item_vlan>(&items, 1);
        // SAFETY: the tci view of the union is the one written.
        let (tci, mtci) = unsafe {
            (
                spec.__bindgen_anon_1.__bindgen_anon_1.tci,
                mask.__bindgen_anon_1.__bindgen_anon_1.tci,
            )
        };
        assert_eq!(tci.to_ne_bytes(), 100u16.to_be_bytes());
        assert_eq!(
            mtci.to_ne_bytes(),
            [0x0f, 0xff],
            "the VLAN id, not the priority"
        );
        let (spec, mask) = spec_mask::<sys::rte_flow_item_ipv6>(&items, 2);
        let (src, dst) = (spec.hdr.src_addr, spec.hdr.dst_addr);
        assert_eq!(
            src,
            "2001:db8:0:100::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
        assert_eq!(
            dst,
            "2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
        let (msrc, mdst, mflow, mproto) = (
            mask.hdr.src_addr,
            mask.hdr.dst_addr,
            mask.hdr.vtc_flow,
            mask.hdr.proto,
        );
        assert_eq!((msrc, mdst), ([0xff; 16], [0xff; 16]));
        assert_eq!((mflow, mproto), (0, 0));
        let (spec, mask) = spec_mask::<sys::rte_flow_item_tcp>(&items, 3);
        let (sp, dp) = (spec.hdr.src_port, spec.hdr.dst_port);
        assert_eq!((u16::from_be(sp), u16::from_be(dp)), (50000, 443));
        let (msp, mdp) = (mask.hdr.src_port, mask.hdr.dst_port);
        assert_eq!((msp, mdp), (u16::MAX, u16::MAX));
        assert_eq!(queue_of(&p), 1);
    }

    #[test]
    fn two_families_are_refused() {
        let rule = SteerRule {
            remote: "198.51.100.2:1".parse().unwrap(),
            local: "[2001:db8::1]:2".parse().unwrap(),
            vlan: None,
            queue: 0,
        };
        let e = Pattern::new(&rule).err().map(|e| e.errno());
        assert_eq!(e, Some(libc::EINVAL));
    }
}
