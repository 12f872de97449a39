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
use crate::wire::{classify, icmp, icmpv6, MacAddr, WireError, L3, L4};
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
    /// Drop the frame and count the reason.
    Drop(Counter),
}

/// The gateway's addresses on one port.
#[derive(Clone, Debug)]
pub struct HostPort {
    mac: MacAddr,
    ipv4: Vec<Ipv4Addr>,
    ipv6: Vec<Ipv6Addr>,
}

impl HostPort {
    /// The port's MAC and its own addresses.
    pub fn new(mac: MacAddr, ipv4: Vec<Ipv4Addr>, ipv6: Vec<Ipv6Addr>) -> Self {
        Self { mac, ipv4, ipv6 }
    }

    /// The port's MAC address.
    pub fn mac(&self) -> MacAddr {
        self.mac
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
                Ok(ip) if !self.owns_v4(ip.dst()) => Action::Drop(Counter::DropNotForUs),
                Ok(_) => match f.l4 {
                    L4::Icmp => Action::EchoReply,
                    L4::Fragment(_) => Action::Drop(Counter::DropFragment),
                    _ => Action::Drop(Counter::DropUnhandled),
                },
            },
            L3::Ipv6 => {
                let Ok(ip) = Ipv6Packet::parse(l3) else {
                    return Action::Drop(Counter::DropMalformed);
                };
                let dst = ip.dst();
                if !dst.is_multicast() && !self.owns_v6(&dst) {
                    return Action::Drop(Counter::DropNotForUs);
                }
                match f.l4 {
                    L4::Icmpv6 => self.decide_icmpv6(f.l4_bytes(frame), &ip.src(), &dst, learn),
                    L4::Fragment(_) => Action::Drop(Counter::DropFragment),
                    _ => Action::Drop(Counter::DropUnhandled),
                }
            }
            L3::Other(_) => Action::Drop(Counter::DropUnknownEthertype),
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
