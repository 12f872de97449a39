//! ICMPv6 (RFC 4443) and neighbour discovery (RFC 4861): views, the neighbour
//! solicitation/advertisement messages and the in-place echo and NA responders.

use std::net::Ipv6Addr;

use super::checksum;
use super::ethernet::{ethertype, EthernetFrame, MacAddr};
use super::field::array;
use super::ipv6::{Ipv6Packet, Ipv6Repr, DEFAULT_HOP_LIMIT, HEADER_LEN as IPV6_HEADER_LEN};
use super::{ip_proto, WireError};

/// Length of the ICMPv6 header (type, code, checksum, 4 bytes of message body).
pub const HEADER_LEN: usize = 8;
/// Type of an echo request.
pub const ECHO_REQUEST: u8 = 128;
/// Type of an echo reply.
pub const ECHO_REPLY: u8 = 129;
/// Type of a neighbour solicitation.
pub const NEIGHBOR_SOLICIT: u8 = 135;
/// Type of a neighbour advertisement.
pub const NEIGHBOR_ADVERT: u8 = 136;
/// Hop limit every neighbour-discovery message carries.
pub const ND_HOP_LIMIT: u8 = 255;

/// NA flag: sender is a router.
pub const NA_ROUTER: u8 = 0x80;
/// NA flag: sent in response to a solicitation.
pub const NA_SOLICITED: u8 = 0x40;
/// NA flag: override an existing cache entry.
pub const NA_OVERRIDE: u8 = 0x20;

/// Length of an NS or NA without options.
const ND_BASE_LEN: usize = 24;
/// Length of a link-layer address option for Ethernet.
const LLA_OPT_LEN: usize = 8;
const OPT_SOURCE_LLA: u8 = 1;
const OPT_TARGET_LLA: u8 = 2;

/// A view of an ICMPv6 message: the ICMP view, with the IPv6 pseudo-header sum passed
/// to its checksum methods.
pub type Icmpv6Packet<T> = super::icmp::IcmpPacket<T>;

/// A parsed neighbour solicitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborSolicit {
    /// The address being resolved.
    pub target: Ipv6Addr,
    /// The source link-layer address option, if present.
    pub source_lla: Option<MacAddr>,
}

impl NeighborSolicit {
    /// Message length: 24, or 32 with the source link-layer address option.
    #[inline]
    pub fn len(&self) -> usize {
        nd_len(self.source_lla)
    }

    /// Always false: a message is never empty (here for API symmetry with `len`).
    #[inline]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the message with a zero checksum at the start of `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        emit_nd(
            buf,
            NEIGHBOR_SOLICIT,
            0,
            &self.target,
            OPT_SOURCE_LLA,
            self.source_lla,
        )
    }

    /// Parses an NS from a whole ICMPv6 message (checksum not checked here): type 135,
    /// code 0, at least 24 bytes, every option of non-zero length inside the message
    /// ([`WireError::BadOption`] otherwise).
    pub fn parse(msg: &[u8]) -> Result<Self, WireError> {
        let (target, lla) = parse_nd(msg, NEIGHBOR_SOLICIT, OPT_SOURCE_LLA)?;
        Ok(NeighborSolicit {
            target,
            source_lla: lla,
        })
    }
}

/// A neighbour advertisement, parsed or to emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborAdvert {
    /// Flags byte: [`NA_ROUTER`] | [`NA_SOLICITED`] | [`NA_OVERRIDE`].
    pub flags: u8,
    /// The address advertised.
    pub target: Ipv6Addr,
    /// The target link-layer address option, if present.
    pub target_lla: Option<MacAddr>,
}

impl NeighborAdvert {
    /// Parses an NA from a whole ICMPv6 message (checksum not checked here).
    pub fn parse(msg: &[u8]) -> Result<Self, WireError> {
        let (target, lla) = parse_nd(msg, NEIGHBOR_ADVERT, OPT_TARGET_LLA)?;
        Ok(NeighborAdvert {
            flags: msg[4] & (NA_ROUTER | NA_SOLICITED | NA_OVERRIDE),
            target,
            target_lla: lla,
        })
    }

    /// Message length: 24, or 32 with the target link-layer address option.
    #[inline]
    pub fn len(&self) -> usize {
        nd_len(self.target_lla)
    }

    /// Always false: a message is never empty (here for API symmetry with `len`).
    #[inline]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the message with a zero checksum at the start of `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        emit_nd(
            buf,
            NEIGHBOR_ADVERT,
            self.flags,
            &self.target,
            OPT_TARGET_LLA,
            self.target_lla,
        )
    }
}

/// Length of an NS or NA: 24, or 32 with a link-layer address option.
#[inline]
fn nd_len(lla: Option<MacAddr>) -> usize {
    ND_BASE_LEN + lla.map_or(0, |_| LLA_OPT_LEN)
}

/// Writes an NS or NA (`msg_type`) with `flags`, `target` and an optional link-layer
/// address option of type `opt`, checksum zero; returns its length.
fn emit_nd(
    buf: &mut [u8],
    msg_type: u8,
    flags: u8,
    target: &Ipv6Addr,
    opt: u8,
    lla: Option<MacAddr>,
) -> Result<usize, WireError> {
    let len = nd_len(lla);
    let b = buf.get_mut(..len).ok_or(WireError::NoRoom)?;
    b[..ND_BASE_LEN].fill(0);
    b[0] = msg_type;
    b[4] = flags;
    b[8..24].copy_from_slice(&target.octets());
    if let Some(mac) = lla {
        b[24] = opt;
        b[25] = 1;
        b[26..32].copy_from_slice(&mac.0);
    }
    Ok(len)
}

/// Writes a whole neighbour solicitation frame for `target` from `my_mac`/`my_ip` at
/// the start of `frame` (to the target's solicited-node group, with the source
/// link-layer option; 802.1Q-tagged with `vlan_tci` if given); returns its length.
pub fn solicit_frame(
    frame: &mut [u8],
    my_mac: MacAddr,
    vlan_tci: Option<u16>,
    my_ip: Ipv6Addr,
    target: Ipv6Addr,
) -> Result<usize, WireError> {
    let group = super::ipv6::solicited_node(&target);
    let ns = NeighborSolicit {
        target,
        source_lla: Some(my_mac),
    };
    let eth = super::ethernet::EthernetRepr {
        dst: MacAddr::from_ipv6_multicast(&group),
        src: my_mac,
        vlan_tci,
        ethertype: ethertype::IPV6,
    };
    let ip = Ipv6Repr {
        src: my_ip,
        dst: group,
        next_header: ip_proto::ICMPV6,
        // 32 bytes: fits.
        payload_len: ns.len() as u16,
        hop_limit: ND_HOP_LIMIT,
        traffic_class: 0,
        flow_label: 0,
    };
    let l3 = eth.emit(frame)?;
    let icmp_at = l3 + ip.emit(frame.get_mut(l3..).ok_or(WireError::NoRoom)?)?;
    let len = ns.emit(frame.get_mut(icmp_at..).ok_or(WireError::NoRoom)?)?;
    let pseudo = checksum::pseudo_header_v6(&my_ip, &group, ip_proto::ICMPV6, len as u32);
    Icmpv6Packet::parse(&mut frame[icmp_at..icmp_at + len])?.fill_checksum(pseudo);
    Ok(icmp_at + len)
}

/// Checks an NS/NA of type `msg_type` and returns its target and its link-layer option
/// of type `lla_type`, if any.
fn parse_nd(
    msg: &[u8],
    msg_type: u8,
    lla_type: u8,
) -> Result<(Ipv6Addr, Option<MacAddr>), WireError> {
    if msg.len() < ND_BASE_LEN {
        return Err(WireError::Truncated);
    }
    if msg[0] != msg_type || msg[1] != 0 {
        return Err(WireError::NotRequest);
    }
    let target = Ipv6Addr::from(array::<16>(msg, 8));
    let mut lla = None;
    let mut opts = &msg[ND_BASE_LEN..];
    while let [kind, len, ..] = *opts {
        let len = usize::from(len) * 8;
        if len == 0 || len > opts.len() {
            return Err(WireError::BadOption);
        }
        if kind == lla_type && len == LLA_OPT_LEN {
            lla = Some(MacAddr(array(opts, 2)));
        }
        opts = &opts[len..];
    }
    if !opts.is_empty() {
        return Err(WireError::BadOption);
    }
    Ok((target, lla))
}

/// The IPv6 packet of an ICMPv6 message in `frame`, validated for the in-place
/// responders: EtherType IPv6, no extension headers, ICMPv6 with a correct checksum.
fn icmpv6_in_frame(frame: &[u8]) -> Result<(usize, Ipv6Packet<&[u8]>), WireError> {
    let eth = EthernetFrame::parse(frame)?;
    if eth.ethertype() != ethertype::IPV6 {
        return Err(WireError::NotRequest);
    }
    let l3 = eth.header_len();
    let ip = Ipv6Packet::parse(&frame[l3..])?;
    if ip.upper_protocol() != ip_proto::ICMPV6 {
        return Err(WireError::NotRequest);
    }
    if ip.upper_offset() != IPV6_HEADER_LEN {
        return Err(WireError::Unsupported);
    }
    let icmp = Icmpv6Packet::parse(ip.upper_payload())?;
    if !icmp.verify_checksum(ip.pseudo_header_sum()) {
        return Err(WireError::BadChecksum);
    }
    Ok((l3, ip))
}

/// Turns the ICMPv6 echo request in Ethernet `frame` into its reply, in place: MACs go
/// back to the sender from `my_mac`, addresses swap, hop limit becomes 64, type becomes
/// 129 with an incremental checksum update. Length and VLAN tag are kept.
///
/// The caller decides whether to answer (the destination is its own unicast address).
/// Errors: [`WireError::BadChecksum`], [`WireError::Unsupported`] (extension headers),
/// [`WireError::NotRequest`] (not an echo request) or the parse errors of the layers.
/// The frame is only written when the result is `Ok`.
pub fn echo_reply_in_place(frame: &mut [u8], my_mac: MacAddr) -> Result<(), WireError> {
    let (l3, ip) = icmpv6_in_frame(frame)?;
    let msg = ip.upper_payload();
    if msg[0] != ECHO_REQUEST || msg[1] != 0 {
        return Err(WireError::NotRequest);
    }
    let mut eth = EthernetFrame::parse(&mut *frame)?;
    eth.reply_from(my_mac);
    let mut ip = Ipv6Packet::parse(&mut frame[l3..])?;
    ip.swap_addrs();
    ip.set_hop_limit(DEFAULT_HOP_LIMIT);
    Icmpv6Packet::parse(ip.upper_payload_mut())?.set_type_code(ECHO_REPLY, 0);
    Ok(())
}

/// Answers the neighbour solicitation in Ethernet `frame` with a neighbour
/// advertisement for its target from `my_mac`, built in place; returns the new frame
/// length.
///
/// The NA goes to the solicitor with flags S|O; a duplicate-address-detection NS (from
/// `::`) is answered to all-nodes `ff02::1` with flag O only (RFC 4861 §7.2.4). The NA
/// carries the target link-layer address option (32 bytes of ICMPv6, the size of an NS
/// with a source link-layer option, so the usual NS is answered in its own length).
/// An NS without that option is 8 bytes shorter: the option is then written if `frame`
/// extends at least 8 bytes past the packet (grow the packet by 8 before the call when
/// tailroom allows, and trim it to the returned length after); if it does not, a
/// unicast NS is answered without the option (RFC 4861 §7.2.4 allows it) and a
/// multicast one fails with [`WireError::NoRoom`].
///
/// The caller decides whether to answer (the target is its own address). Errors:
/// [`WireError::BadChecksum`], [`WireError::NotRequest`] (not an NS, hop limit not 255,
/// or a DAD NS with a source link-layer option), [`WireError::BadOption`],
/// [`WireError::Unsupported`] (extension headers). The frame is only written on `Ok`.
pub fn neighbor_advert_in_place(frame: &mut [u8], my_mac: MacAddr) -> Result<usize, WireError> {
    let (l3, ip) = icmpv6_in_frame(frame)?;
    let ns = NeighborSolicit::parse(ip.upper_payload())?;
    if ip.hop_limit() != ND_HOP_LIMIT {
        return Err(WireError::NotRequest);
    }
    let solicitor = ip.src();
    let dad = solicitor.is_unspecified();
    if dad && ns.source_lla.is_some() {
        return Err(WireError::NotRequest);
    }
    let (dst, dst_mac, flags) = if dad {
        let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
        (
            all_nodes,
            MacAddr::from_ipv6_multicast(&all_nodes),
            NA_OVERRIDE,
        )
    } else {
        let eth_src = EthernetFrame::parse(&*frame)?.src();
        (solicitor, eth_src, NA_SOLICITED | NA_OVERRIDE)
    };
    let icmp_at = l3 + IPV6_HEADER_LEN;
    let room = frame.len() - icmp_at;
    let with_lla = room >= ND_BASE_LEN + LLA_OPT_LEN;
    if !with_lla && ip.dst().is_multicast() {
        return Err(WireError::NoRoom);
    }
    let na = NeighborAdvert {
        flags,
        target: ns.target,
        target_lla: with_lla.then_some(my_mac),
    };
    let repr = Ipv6Repr {
        src: ns.target,
        dst,
        next_header: ip_proto::ICMPV6,
        // At most 32: fits.
        payload_len: na.len() as u16,
        hop_limit: ND_HOP_LIMIT,
        traffic_class: 0,
        flow_label: 0,
    };
    let mut eth = EthernetFrame::parse(&mut *frame)?;
    eth.set_dst(dst_mac);
    eth.set_src(my_mac);
    repr.emit(&mut frame[l3..])?;
    let len = na.emit(&mut frame[icmp_at..])?;
    let pseudo = checksum::pseudo_header_v6(&repr.src, &repr.dst, ip_proto::ICMPV6, len as u32);
    Icmpv6Packet::parse(&mut frame[icmp_at..icmp_at + len])?.fill_checksum(pseudo);
    Ok(icmp_at + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 1]);
    const PEER_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc]);

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// Ethernet + IPv6 + ICMPv6 `body` (checksum filled) with hop limit `hops`.
    fn frame(dst_mac: MacAddr, src: &str, dst: &str, hops: u8, body: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 40];
        f[..6].copy_from_slice(&dst_mac.0);
        f[6..12].copy_from_slice(&PEER_MAC.0);
        f[12..14].copy_from_slice(&ethertype::IPV6.to_be_bytes());
        let repr = Ipv6Repr {
            src: addr(src),
            dst: addr(dst),
            next_header: ip_proto::ICMPV6,
            payload_len: body.len() as u16,
            hop_limit: hops,
            traffic_class: 0,
            flow_label: 0x5_4321,
        };
        repr.emit(&mut f[14..]).unwrap();
        f.extend_from_slice(body);
        let pseudo = checksum::pseudo_header_v6(&repr.src, &repr.dst, 58, body.len() as u32);
        Icmpv6Packet::parse(&mut f[54..])
            .unwrap()
            .fill_checksum(pseudo);
        f
    }

    /// An address-resolution NS for 2001:db8::1 with a source link-layer option, as
    /// Linux sends it to the solicited-node group.
    fn ns_body(with_slla: bool) -> Vec<u8> {
        let mut b = vec![NEIGHBOR_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&addr("2001:db8::1").octets());
        if with_slla {
            b.extend_from_slice(&[OPT_SOURCE_LLA, 1]);
            b.extend_from_slice(&PEER_MAC.0);
        }
        b
    }

    fn check_na(f: &[u8], dst: &str, dst_mac: MacAddr, flags: u8, lla: bool) {
        let eth = EthernetFrame::parse(f).unwrap();
        assert_eq!((eth.dst(), eth.src()), (dst_mac, ME));
        let ip = Ipv6Packet::parse(eth.payload()).unwrap();
        assert_eq!(
            (ip.src(), ip.dst(), ip.hop_limit()),
            (addr("2001:db8::1"), addr(dst), 255)
        );
        let icmp = Icmpv6Packet::parse(ip.upper_payload()).unwrap();
        assert!(icmp.verify_checksum(ip.pseudo_header_sum()));
        let na = NeighborAdvert::parse(ip.upper_payload()).unwrap();
        let want = NeighborAdvert {
            flags,
            target: addr("2001:db8::1"),
            target_lla: lla.then_some(ME),
        };
        assert_eq!(na, want);
    }

    #[test]
    fn parses_neighbor_solicit() {
        let body = ns_body(true);
        let ns = NeighborSolicit::parse(&body).unwrap();
        assert_eq!(
            (ns.target, ns.source_lla),
            (addr("2001:db8::1"), Some(PEER_MAC))
        );
        let mut bad = body.clone();
        bad[25] = 0;
        assert_eq!(NeighborSolicit::parse(&bad), Err(WireError::BadOption));
        bad[25] = 2;
        assert_eq!(NeighborSolicit::parse(&bad), Err(WireError::BadOption));
        assert_eq!(
            NeighborSolicit::parse(&body[..23]),
            Err(WireError::Truncated)
        );
        assert_eq!(NeighborAdvert::parse(&body), Err(WireError::NotRequest));
    }

    #[test]
    fn multicast_ns_with_slla_is_answered_in_its_own_length() {
        let group = "ff02::1:ff00:1";
        let mcast = MacAddr::from_ipv6_multicast(&addr(group));
        let mut f = frame(mcast, "fe80::5054:ff:feaa:bbcc", group, 255, &ns_body(true));
        let len = f.len();
        assert_eq!(neighbor_advert_in_place(&mut f, ME), Ok(len));
        let sol = NA_SOLICITED | NA_OVERRIDE;
        check_na(&f, "fe80::5054:ff:feaa:bbcc", PEER_MAC, sol, true);
    }

    #[test]
    fn ns_without_slla_grows_when_room_else_omits_option_if_unicast() {
        let mut f = frame(ME, "2001:db8::2", "2001:db8::1", 255, &ns_body(false));
        let short = f.clone();
        f.resize(f.len() + 8, 0);
        assert_eq!(neighbor_advert_in_place(&mut f, ME), Ok(14 + 40 + 32));
        check_na(
            &f,
            "2001:db8::2",
            PEER_MAC,
            NA_SOLICITED | NA_OVERRIDE,
            true,
        );

        let mut f = short.clone();
        assert_eq!(neighbor_advert_in_place(&mut f, ME), Ok(14 + 40 + 24));
        check_na(
            &f,
            "2001:db8::2",
            PEER_MAC,
            NA_SOLICITED | NA_OVERRIDE,
            false,
        );

        let mut f = frame(ME, "2001:db8::2", "ff02::1:ff00:1", 255, &ns_body(false));
        let before = f.clone();
        assert_eq!(neighbor_advert_in_place(&mut f, ME), Err(WireError::NoRoom));
        assert_eq!(f, before);
    }

    #[test]
    fn dad_ns_is_answered_to_all_nodes() {
        let group = "ff02::1:ff00:1";
        let mcast = MacAddr::from_ipv6_multicast(&addr(group));
        let mut f = frame(mcast, "::", group, 255, &ns_body(false));
        f.resize(f.len() + 8, 0);
        assert_eq!(neighbor_advert_in_place(&mut f, ME), Ok(86));
        let all_nodes = MacAddr([0x33, 0x33, 0, 0, 0, 1]);
        check_na(&f, "ff02::1", all_nodes, NA_OVERRIDE, true);
        let mut f = frame(mcast, "::", group, 255, &ns_body(true));
        assert_eq!(
            neighbor_advert_in_place(&mut f, ME),
            Err(WireError::NotRequest)
        );
    }

    #[test]
    fn invalid_ns_is_refused() {
        let mut f = frame(ME, "2001:db8::2", "2001:db8::1", 64, &ns_body(true));
        assert_eq!(
            neighbor_advert_in_place(&mut f, ME),
            Err(WireError::NotRequest)
        );
        let mut f = frame(ME, "2001:db8::2", "2001:db8::1", 255, &ns_body(true));
        f[70] ^= 0xff;
        assert_eq!(
            neighbor_advert_in_place(&mut f, ME),
            Err(WireError::BadChecksum)
        );
    }

    #[test]
    fn echo_request_becomes_reply() {
        let mut body = vec![ECHO_REQUEST, 0, 0, 0, 0x12, 0x34, 0, 7];
        body.extend(0..40u8);
        let mut f = frame(ME, "2001:db8::2", "2001:db8::1", 57, &body);
        echo_reply_in_place(&mut f, ME).unwrap();
        let eth = EthernetFrame::parse(&f[..]).unwrap();
        assert_eq!((eth.dst(), eth.src()), (PEER_MAC, ME));
        let ip = Ipv6Packet::parse(eth.payload()).unwrap();
        assert_eq!(
            (ip.src(), ip.dst(), ip.hop_limit()),
            (addr("2001:db8::1"), addr("2001:db8::2"), 64)
        );
        let icmp = Icmpv6Packet::parse(ip.upper_payload()).unwrap();
        assert!(icmp.verify_checksum(ip.pseudo_header_sum()));
        assert_eq!(
            (icmp.msg_type(), icmp.echo_ident(), icmp.echo_seq()),
            (ECHO_REPLY, 0x1234, 7)
        );
        assert_eq!(&ip.upper_payload()[8..], &body[8..]);
        assert_eq!(echo_reply_in_place(&mut f, ME), Err(WireError::NotRequest));
    }
}
