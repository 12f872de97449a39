//! The gateway's own presence on a link: it answers ARP requests and ICMP echo for its
//! IPv4 addresses, neighbour solicitations and ICMPv6 echo for its IPv6 addresses, and
//! classifies everything else for the worker to dispatch or drop.
//!
//! Replies are built in place in the received buffer (zero allocation, zero copy): the
//! worker sends the same buffer back out of the port it came in on.

use crate::neigh::NeighborTable;
use crate::stats::Counter;
use crate::wire::arp::{self, ArpPacket};
use crate::wire::ethernet::EthernetFrame;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::{classify, icmp, icmpv6, Frame, MacAddr, WireError, L3, L4};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What the worker does with a frame after [`HostPort::handle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The frame was turned into a reply of `len` bytes: send it back out of the same
    /// port and count `counter`.
    Reply {
        /// The reply's length (it may differ from the request's).
        len: usize,
        /// What kind of reply it is.
        counter: Counter,
    },
    /// A TCP segment to an own address, classified as this: hand the frame to the TCP
    /// endpoint.
    Tcp(Frame),
    /// A TCP segment to a foreign destination on a port that takes transit traffic
    /// (named by a transparent listener, see [`crate::transparent`]): the worker
    /// decides whether a connection or a transparent listener takes it.
    Transit(Frame),
    /// Drop the frame and count the reason.
    Drop(Counter),
}

/// An own address and the length of its on-link prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IfAddr {
    /// The address.
    pub addr: IpAddr,
    /// Prefix length of the subnet it is on.
    pub prefix: u8,
}

impl IfAddr {
    /// True when `ip` is on this address's subnet.
    pub fn on_link(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix.min(32)))
                    .unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix.min(128)))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

/// The gateway's addresses and next hops on one port.
#[derive(Clone, Debug)]
pub struct HostPort {
    mac: MacAddr,
    ipv4: Vec<Ipv4Addr>,
    ipv6: Vec<Ipv6Addr>,
    subnets: Vec<IfAddr>,
    gateway4: Option<Ipv4Addr>,
    gateway6: Option<Ipv6Addr>,
    /// The gateway's addresses on its other ports: packets to them arriving here are
    /// taken too (the weak host model, as Linux: a client may reach any gateway
    /// address over any path). ARP and neighbour discovery answer only for the port's
    /// own addresses.
    others: Vec<IpAddr>,
    /// The port's 802.1Q VLAN id: only frames tagged with it are taken, and every
    /// frame sent carries it. `None`: untagged (or priority-tagged, VLAN id 0) frames.
    vlan: Option<u16>,
    /// TCP segments to foreign destinations are passed on ([`Verdict::Transit`]) rather
    /// than dropped: a transparent listener names the port.
    transit: bool,
}

impl HostPort {
    /// The port's MAC, its own addresses and its default next hops.
    pub fn new(
        mac: MacAddr,
        addrs: &[IfAddr],
        gateway4: Option<Ipv4Addr>,
        gateway6: Option<Ipv6Addr>,
    ) -> Self {
        let ipv4 = addrs
            .iter()
            .filter_map(|a| match a.addr {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
            .collect();
        let ipv6 = addrs
            .iter()
            .filter_map(|a| match a.addr {
                IpAddr::V6(v6) => Some(v6),
                IpAddr::V4(_) => None,
            })
            .collect();
        Self {
            mac,
            ipv4,
            ipv6,
            subnets: addrs.to_vec(),
            gateway4,
            gateway6,
            others: Vec::new(),
            vlan: None,
            transit: false,
        }
    }

    /// Passes TCP segments to foreign destinations on ([`Verdict::Transit`]) instead of
    /// dropping them: a transparent listener takes connections on this port. ARP and
    /// neighbour discovery still answer only for the port's own addresses.
    pub fn set_transit(&mut self, on: bool) {
        self.transit = on;
    }

    /// Puts the port on 802.1Q VLAN `vid` (1..=4094), or back to untagged frames.
    pub fn set_vlan(&mut self, vid: Option<u16>) {
        self.vlan = vid.map(|v| v & 0x0fff).filter(|&v| v != 0);
    }

    /// The tag control information of the port's frames (its VLAN id, priority 0).
    pub fn vlan_tci(&self) -> Option<u16> {
        self.vlan
    }

    /// Also takes packets to `addrs` (the gateway's addresses on other ports).
    pub fn accept_also(&mut self, addrs: impl IntoIterator<Item = IpAddr>) {
        for a in addrs {
            if !self.owns(a) && !self.others.contains(&a) {
                self.others.push(a);
            }
        }
    }

    /// True when `dst` is on one of the port's subnets.
    pub fn on_link(&self, dst: IpAddr) -> bool {
        self.subnets.iter().any(|s| s.on_link(dst))
    }

    /// The port's address on the subnet `dst` lies on, if any.
    pub fn address_on_link(&self, dst: IpAddr) -> Option<IpAddr> {
        self.subnets.iter().find(|s| s.on_link(dst)).map(|s| s.addr)
    }

    /// The port's first IPv4 (or IPv6) address.
    pub fn address_of_family(&self, ipv4: bool) -> Option<IpAddr> {
        self.subnets
            .iter()
            .find(|s| s.addr.is_ipv4() == ipv4)
            .map(|s| s.addr)
    }

    /// The port's own addresses.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.subnets.iter().map(|s| s.addr)
    }

    /// The port's MAC address.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// True when `ip` is one of this port's own addresses.
    pub fn owns(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.owns_v4(a),
            IpAddr::V6(a) => self.owns_v6(&a),
        }
    }

    /// Writes a neighbour solicitation for `hop` into `frame` (an ARP request for IPv4, a
    /// neighbour solicitation for IPv6), from the port's address on the same subnet (or
    /// its first of that family); returns its length, `None` without such an address or
    /// room.
    pub fn solicit(&self, frame: &mut [u8], hop: IpAddr) -> Option<usize> {
        let src = self
            .subnets
            .iter()
            .find(|s| s.on_link(hop))
            .or_else(|| {
                self.subnets
                    .iter()
                    .find(|s| s.addr.is_ipv4() == hop.is_ipv4())
            })?
            .addr;
        match (src, hop) {
            (IpAddr::V4(me), IpAddr::V4(t)) => {
                arp::request_frame(frame, self.mac, self.vlan, me, t).ok()
            }
            (IpAddr::V6(me), IpAddr::V6(t)) => {
                icmpv6::solicit_frame(frame, self.mac, self.vlan, me, t).ok()
            }
            _ => None,
        }
    }

    /// The neighbour a packet to `dst` goes to through this port: `dst` itself when it
    /// is on one of the port's subnets (or IPv6 link-local), else the port's next hop
    /// of that family, `None` when there is none.
    pub fn next_hop(&self, dst: IpAddr) -> Option<IpAddr> {
        let link_local = matches!(dst, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80);
        if link_local || self.subnets.iter().any(|s| s.on_link(dst)) {
            return Some(dst);
        }
        match dst {
            IpAddr::V4(_) => self.gateway4.map(IpAddr::V4),
            IpAddr::V6(_) => self.gateway6.map(IpAddr::V6),
        }
    }

    /// True for a destination the gateway takes on this port (see `others`).
    fn takes(&self, dst: IpAddr) -> bool {
        self.owns(dst) || self.others.contains(&dst)
    }

    fn owns_v4(&self, a: Ipv4Addr) -> bool {
        self.ipv4.contains(&a)
    }

    fn owns_v6(&self, a: &Ipv6Addr) -> bool {
        self.ipv6.contains(a)
    }

    /// True for an own address or the solicited-node group of one.
    fn listens_v6(&self, a: &Ipv6Addr) -> bool {
        self.owns_v6(a) || self.ipv6.iter().any(|own| ipv6::solicited_node(own) == *a)
    }

    /// Handles one frame received on port `port` at `now` (ns): learns the neighbours
    /// it reveals, answers it in place or says why it is dropped.
    pub fn handle(
        &self,
        frame: &mut [u8],
        port: u16,
        neigh: &mut NeighborTable,
        now: u64,
    ) -> Verdict {
        let mac = self.mac;
        let mut learn = |ip: IpAddr, mac: MacAddr| neigh.learn(port, ip, mac, now);
        match self.decide(frame, &mut learn) {
            Action::Drop(c) => Verdict::Drop(c),
            Action::Tcp(f) => Verdict::Tcp(f),
            Action::Transit(f) => Verdict::Transit(f),
            Action::ArpReply => reply(frame, mac, Counter::ArpReplies, arp::make_reply_in_place),
            Action::EchoReply => reply(
                frame,
                mac,
                Counter::IcmpEchoReplies,
                icmp::echo_reply_in_place,
            ),
            Action::Echo6Reply => reply(
                frame,
                mac,
                Counter::Icmp6EchoReplies,
                icmpv6::echo_reply_in_place,
            ),
            Action::NeighborAdvert => match icmpv6::neighbor_advert_in_place(frame, mac) {
                Ok(len) => Verdict::Reply {
                    len,
                    counter: Counter::NdAdvertisements,
                },
                Err(e) => Verdict::Drop(drop_reason(e)),
            },
        }
    }

    /// Looks at a frame (without changing it), reports the neighbours it reveals to
    /// `learn`, and decides what to do with it.
    fn decide(&self, frame: &[u8], learn: &mut impl FnMut(IpAddr, MacAddr)) -> Action {
        let Ok(f) = classify(frame) else {
            return Action::Drop(Counter::DropMalformed);
        };
        let Ok(eth) = EthernetFrame::parse(frame) else {
            return Action::Drop(Counter::DropMalformed);
        };
        if eth.dst() != self.mac && eth.dst().is_unicast() {
            return Action::Drop(Counter::DropNotForUs);
        }
        // VLAN id 0 only carries a priority: the frame is untagged as far as VLANs go.
        if eth.vlan_id().filter(|&v| v != 0) != self.vlan {
            return Action::Drop(Counter::DropVlan);
        }
        let l3 = &frame[f.l3_offset..];
        match f.l3 {
            L3::Arp => match ArpPacket::parse(l3) {
                Ok(a) if self.owns_v4(a.tpa()) => {
                    // Requests and replies addressed to us both reveal the sender (as
                    // Linux learns them); gratuitous ARP from others does not.
                    if !a.spa().is_unspecified() {
                        learn(IpAddr::V4(a.spa()), a.sha());
                    }
                    if a.op() == arp::OP_REQUEST {
                        Action::ArpReply
                    } else {
                        Action::Drop(Counter::ArpRepliesReceived)
                    }
                }
                Ok(a) if a.op() == arp::OP_REQUEST => Action::Drop(Counter::DropNotForUs),
                Ok(_) => Action::Drop(Counter::DropUnhandled),
                Err(_) => Action::Drop(Counter::DropMalformed),
            },
            L3::Ipv4 => match Ipv4Packet::parse(l3) {
                Err(_) => Action::Drop(Counter::DropMalformed),
                Ok(ip) if !self.takes(IpAddr::V4(ip.dst())) => self.foreign(f),
                Ok(_) => match f.l4 {
                    L4::Icmp => Action::EchoReply,
                    L4::Tcp => Action::Tcp(f),
                    L4::Fragment(_) => Action::Drop(Counter::DropFragment),
                    _ => Action::Drop(Counter::DropUnhandled),
                },
            },
            L3::Ipv6 => {
                let Ok(ip) = Ipv6Packet::parse(l3) else {
                    return Action::Drop(Counter::DropMalformed);
                };
                let dst = ip.dst();
                if !dst.is_multicast() && !self.takes(IpAddr::V6(dst)) {
                    return self.foreign(f);
                }
                match f.l4 {
                    L4::Tcp if !dst.is_multicast() => Action::Tcp(f),
                    L4::Icmpv6 => self.decide_icmpv6(f.l4_bytes(frame), &ip.src(), &dst, learn),
                    L4::Fragment(_) => Action::Drop(Counter::DropFragment),
                    _ => Action::Drop(Counter::DropUnhandled),
                }
            }
            L3::Other(_) => Action::Drop(Counter::DropUnknownEthertype),
        }
    }

    /// An IP packet to a foreign unicast destination: TCP on a transit port goes on,
    /// anything else is dropped (mpgw is no router).
    fn foreign(&self, f: Frame) -> Action {
        if self.transit && f.l4 == L4::Tcp {
            Action::Transit(f)
        } else {
            Action::Drop(Counter::DropNotForUs)
        }
    }

    fn decide_icmpv6(
        &self,
        msg: &[u8],
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
        learn: &mut impl FnMut(IpAddr, MacAddr),
    ) -> Action {
        match msg.first().copied() {
            Some(icmpv6::NEIGHBOR_SOLICIT) => match icmpv6::NeighborSolicit::parse(msg) {
                Ok(ns) if self.owns_v6(&ns.target) && self.listens_v6(dst) => {
                    if let (Some(mac), false) = (ns.source_lla, src.is_unspecified()) {
                        learn(IpAddr::V6(*src), mac);
                    }
                    Action::NeighborAdvert
                }
                Ok(_) => Action::Drop(Counter::DropNotForUs),
                Err(e) => Action::Drop(drop_reason(e)),
            },
            Some(icmpv6::NEIGHBOR_ADVERT) => match icmpv6::NeighborAdvert::parse(msg) {
                Ok(na) => {
                    if let Some(mac) = na.target_lla {
                        learn(IpAddr::V6(na.target), mac);
                    }
                    Action::Drop(Counter::NdAdvertisementsReceived)
                }
                Err(e) => Action::Drop(drop_reason(e)),
            },
            Some(icmpv6::ECHO_REQUEST) if self.owns_v6(dst) => Action::Echo6Reply,
            _ => Action::Drop(Counter::DropUnhandled),
        }
    }
}

/// What [`HostPort::decide`] found a frame to need.
enum Action {
    ArpReply,
    EchoReply,
    Echo6Reply,
    NeighborAdvert,
    Tcp(Frame),
    Transit(Frame),
    Drop(Counter),
}

/// Builds a same-length reply from `mac` in place with `build`, or says why it could not.
fn reply(
    frame: &mut [u8],
    mac: MacAddr,
    counter: Counter,
    build: fn(&mut [u8], MacAddr) -> Result<(), WireError>,
) -> Verdict {
    match build(frame, mac) {
        Ok(()) => Verdict::Reply {
            len: frame.len(),
            counter,
        },
        Err(e) => Verdict::Drop(drop_reason(e)),
    }
}

/// The drop counter for a responder's error.
fn drop_reason(e: WireError) -> Counter {
    match e {
        WireError::NotRequest | WireError::Unsupported => Counter::DropUnhandled,
        _ => Counter::DropMalformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port() -> HostPort {
        let addrs = [
            IfAddr {
                addr: "192.0.2.1".parse().unwrap(),
                prefix: 24,
            },
            IfAddr {
                addr: "2001:db8:0:1::1".parse().unwrap(),
                prefix: 64,
            },
        ];
        HostPort::new(MacAddr::ZERO, &addrs, "192.0.2.254".parse().ok(), None)
    }

    #[test]
    fn next_hops_are_on_link_hosts_or_the_gateway() {
        let p = port();
        let hop = |s: &str| p.next_hop(s.parse().unwrap()).map(|a| a.to_string());
        assert_eq!(hop("192.0.2.7").as_deref(), Some("192.0.2.7"));
        assert_eq!(hop("203.0.113.9").as_deref(), Some("192.0.2.254"));
        assert_eq!(hop("2001:db8:0:1::9").as_deref(), Some("2001:db8:0:1::9"));
        assert_eq!(hop("fe80::1").as_deref(), Some("fe80::1"));
        assert_eq!(hop("2001:db8:0:2::9"), None, "no IPv6 gateway");
        assert!(p.owns("192.0.2.1".parse().unwrap()));
        assert!(!p.owns("192.0.2.2".parse().unwrap()));
    }

    #[test]
    fn solicitations_are_arp_requests_or_neighbor_solicitations() {
        let p = port();
        let mut f = [0u8; 128];
        let n = p.solicit(&mut f, "192.0.2.9".parse().unwrap()).unwrap();
        let eth = EthernetFrame::parse(&f[..n]).unwrap();
        assert!(eth.dst().is_broadcast());
        let a = ArpPacket::parse(eth.payload()).unwrap();
        assert_eq!(a.op(), arp::OP_REQUEST);
        assert_eq!(
            (a.spa(), a.tpa()),
            ("192.0.2.1".parse().unwrap(), "192.0.2.9".parse().unwrap())
        );

        let target: Ipv6Addr = "2001:db8:0:1::9".parse().unwrap();
        let n = p.solicit(&mut f, target.into()).unwrap();
        let eth = EthernetFrame::parse(&f[..n]).unwrap();
        let ip = Ipv6Packet::parse(eth.payload()).unwrap();
        assert_eq!(ip.dst(), ipv6::solicited_node(&target));
        assert_eq!(eth.dst(), MacAddr::from_ipv6_multicast(&ip.dst()));
        let ns = icmpv6::NeighborSolicit::parse(ip.upper_payload()).unwrap();
        assert_eq!((ns.target, ns.source_lla), (target, Some(MacAddr::ZERO)));
        let pseudo = crate::wire::checksum::pseudo_header_v6(&ip.src(), &ip.dst(), 58, 32);
        let sum = crate::wire::checksum::sum(ip.upper_payload());
        assert_eq!(
            crate::wire::checksum::combine(pseudo, sum),
            0xffff,
            "checksum verifies"
        );
        assert_eq!(p.solicit(&mut f[..20], target.into()), None, "no room");
    }

    #[test]
    fn a_vlan_port_takes_and_sends_only_frames_with_its_tag() {
        let mut p = port();
        p.set_vlan(Some(100));
        let mut f = [0u8; 128];
        let n = p.solicit(&mut f, "192.0.2.9".parse().unwrap()).unwrap();
        let eth = EthernetFrame::parse(&f[..n]).unwrap();
        assert_eq!((eth.vlan_id(), eth.header_len(), n), (Some(100), 18, 46));
        assert_eq!(
            ArpPacket::parse(eth.payload()).unwrap().op(),
            arp::OP_REQUEST
        );
        let target: Ipv6Addr = "2001:db8:0:1::9".parse().unwrap();
        let n = p.solicit(&mut f, target.into()).unwrap();
        let eth = EthernetFrame::parse(&f[..n]).unwrap();
        assert_eq!(eth.vlan_id(), Some(100));
        assert!(Ipv6Packet::parse(eth.payload()).is_ok());

        // An ARP request for our address: answered on VLAN 100 (the tag kept),
        // dropped untagged, priority-tagged or on another VLAN.
        let mut neigh = NeighborTable::new(crate::neigh::NeighborConfig::default());
        let peer = MacAddr([2, 0, 0, 0, 0, 9]);
        for (tci, answered) in [
            (Some(100), true),
            (Some(0x6064), true),
            (None, false),
            (Some(0), false),
            (Some(200), false),
        ] {
            let mut req = [0u8; 64];
            let me = "192.0.2.1".parse().unwrap();
            let n =
                arp::request_frame(&mut req, peer, tci, "192.0.2.9".parse().unwrap(), me).unwrap();
            let v = p.handle(&mut req[..n], 0, &mut neigh, 0);
            if answered {
                assert!(matches!(v, Verdict::Reply { .. }), "{tci:?}: {v:?}");
                let eth = EthernetFrame::parse(&req[..n]).unwrap();
                assert_eq!((eth.vlan_tci(), eth.dst()), (tci, peer));
            } else {
                assert_eq!(v, Verdict::Drop(Counter::DropVlan), "{tci:?}");
            }
        }
        // Back on an untagged port, tagged frames are the ones dropped.
        p.set_vlan(None);
        let mut req = [0u8; 64];
        let me = "192.0.2.1".parse().unwrap();
        let n = arp::request_frame(&mut req, peer, Some(100), "192.0.2.9".parse().unwrap(), me)
            .unwrap();
        assert_eq!(
            p.handle(&mut req[..n], 0, &mut neigh, 0),
            Verdict::Drop(Counter::DropVlan)
        );
        let n =
            arp::request_frame(&mut req, peer, Some(0), "192.0.2.9".parse().unwrap(), me).unwrap();
        assert!(matches!(
            p.handle(&mut req[..n], 0, &mut neigh, 0),
            Verdict::Reply { .. }
        ));
    }

    #[test]
    fn prefix_edges() {
        let any = IfAddr {
            addr: "192.0.2.1".parse().unwrap(),
            prefix: 0,
        };
        assert!(any.on_link("203.0.113.1".parse().unwrap()));
        let host = IfAddr {
            addr: "192.0.2.1".parse().unwrap(),
            prefix: 32,
        };
        assert!(host.on_link("192.0.2.1".parse().unwrap()));
        assert!(!host.on_link("192.0.2.2".parse().unwrap()));
        assert!(!host.on_link("2001:db8::1".parse().unwrap()));
    }
}
