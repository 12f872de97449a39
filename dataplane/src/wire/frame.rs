//! One-pass classification of a received Ethernet frame.

use super::arp::ArpPacket;
use super::ethernet::{ethertype, EthernetFrame, HEADER_LEN};
use super::ipv4::Ipv4Packet;
use super::ipv6::Ipv6Packet;
use super::tcp::TcpPacket;
use super::{icmp, icmpv6, ip_proto, WireError};

/// UDP header length.
const UDP_HEADER_LEN: usize = 8;

/// The network layer of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3 {
    /// ARP for IPv4 over Ethernet (validated).
    Arp,
    /// IPv4 (header and total length validated; checksum not verified).
    Ipv4,
    /// IPv6 (payload length and extension headers validated).
    Ipv6,
    /// Another EtherType, not looked into.
    Other(u16),
}

/// The transport layer of an IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// No transport layer (ARP or an unknown EtherType).
    None,
    /// ICMPv4 (at least its 8-byte header present).
    Icmp,
    /// ICMPv6 (at least its 8-byte header present).
    Icmpv6,
    /// TCP (header length validated against the segment).
    Tcp,
    /// UDP (8-byte header present).
    Udp,
    /// An IP fragment carrying this protocol; mpgw does not reassemble.
    Fragment(u8),
    /// Another protocol, not looked into.
    Other(u8),
}

/// Where the layers of a frame are, as [`classify`] found them. Offsets are from the
/// start of the frame; `l4_len` excludes Ethernet padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The 802.1Q tag control information, if tagged.
    pub vlan_tci: Option<u16>,
    /// Network layer.
    pub l3: L3,
    /// Offset of the network-layer header.
    pub l3_offset: usize,
    /// Transport layer.
    pub l4: L4,
    /// Offset of the transport-layer header (0 when `l4` is `None`).
    pub l4_offset: usize,
    /// Length of the transport-layer message, header included, up to the IP length.
    pub l4_len: usize,
}

impl Frame {
    /// The transport-layer message within `frame` (the bytes `classify` looked at).
    /// Empty when out of range, i.e. `frame` is not the classified one.
    #[inline]
    pub fn l4_bytes<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        frame
            .get(self.l4_offset..self.l4_offset + self.l4_len)
            .unwrap_or_default()
    }

    /// The TCP segment within `frame`; `None` unless `l4` is [`L4::Tcp`] and `frame` is
    /// the classified one.
    #[inline]
    pub fn tcp<'a>(&self, frame: &'a [u8]) -> Option<TcpPacket<&'a [u8]>> {
        if self.l4 != L4::Tcp {
            return None;
        }
        let segment = frame.get(self.l4_offset..self.l4_offset + self.l4_len)?;
        TcpPacket::parse(segment).ok()
    }
}

/// Walks Ethernet → (802.1Q) → ARP | IPv4 | IPv6 → ICMP | ICMPv6 | TCP | UDP | other,
/// validating each header it passes, and reports where everything is. Unknown
/// EtherTypes and protocols are not errors: they come back as `Other`.
/// Checksums are not verified (the port may have done it).
#[inline(always)]
pub fn classify(frame: &[u8]) -> Result<Frame, WireError> {
    // Untagged IPv4 without IP options (nearly every frame) takes the general path below
    // with every header offset a constant, so the loads of later headers need not wait
    // for the loads that would compute their offsets. Same checks, same result.
    if let Some([0x08, 0x00, 0x45]) = frame.get(12..15) {
        return classify_l3(frame, None, HEADER_LEN, ethertype::IPV4);
    }
    let eth = EthernetFrame::parse(frame)?;
    classify_l3(frame, eth.vlan_tci(), eth.header_len(), eth.ethertype())
}

/// The rest of [`classify`], given the Ethernet header `EthernetFrame::parse` accepted:
/// its tag and length, and the EtherType of the payload.
#[inline(always)]
fn classify_l3(
    frame: &[u8],
    vlan_tci: Option<u16>,
    l3_offset: usize,
    ethertype: u16,
) -> Result<Frame, WireError> {
    let mut f = Frame {
        vlan_tci,
        l3: L3::Other(ethertype),
        l3_offset,
        l4: L4::None,
        l4_offset: 0,
        l4_len: 0,
    };
    let l3 = &frame[l3_offset..];
    let (protocol, fragment, start, end) = match ethertype {
        ethertype::IPV4 => {
            let ip = Ipv4Packet::parse(l3)?;
            f.l3 = L3::Ipv4;
            (
                ip.protocol(),
                ip.is_fragment(),
                ip.header_len(),
                ip.total_len(),
            )
        }
        ethertype::IPV6 => {
            let l4 = ipv6_transport(l3)?;
            f.l3 = L3::Ipv6;
            l4
        }
        ethertype::ARP => {
            ArpPacket::parse(l3)?;
            f.l3 = L3::Arp;
            return Ok(f);
        }
        _ => return Ok(f),
    };
    f.l4_offset = l3_offset + start;
    f.l4_len = end - start;
    f.l4 = if fragment {
        L4::Fragment(protocol)
    } else {
        transport(protocol, &l3[start..end])?
    };
    Ok(f)
}

/// Validates the IPv6 packet `l3` (its extension-header walk kept out of line, so the
/// IPv4 path of [`classify`] stays small enough to inline) and returns its upper-layer
/// protocol, whether it is a fragment, and where its upper-layer message starts and
/// ends, from the start of the IPv6 header.
#[inline(never)]
fn ipv6_transport(l3: &[u8]) -> Result<(u8, bool, usize, usize), WireError> {
    let ip = Ipv6Packet::parse(l3)?;
    Ok((
        ip.upper_protocol(),
        ip.is_fragment(),
        ip.upper_offset(),
        super::ipv6::HEADER_LEN + ip.payload_len(),
    ))
}

/// Checks the minimum header of transport `protocol` in `msg` (for TCP, the whole
/// header with its options).
#[inline(always)]
fn transport(protocol: u8, msg: &[u8]) -> Result<L4, WireError> {
    let (l4, min) = match protocol {
        ip_proto::TCP => {
            TcpPacket::parse(msg)?;
            return Ok(L4::Tcp);
        }
        ip_proto::UDP => (L4::Udp, UDP_HEADER_LEN),
        ip_proto::ICMP => (L4::Icmp, icmp::HEADER_LEN),
        ip_proto::ICMPV6 => (L4::Icmpv6, icmpv6::HEADER_LEN),
        other => return Ok(L4::Other(other)),
    };
    if msg.len() < min {
        return Err(WireError::Truncated);
    }
    Ok(l4)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A captured Ethernet/IPv4/TCP ACK (10.0.0.2:40000 → 10.0.0.1:80, timestamps),
    /// padded by the NIC to 70 bytes.
    fn tcp_v4() -> Vec<u8> {
        let mut f = vec![
            0x02, 0, 0, 0, 0, 1, 0x52, 0x54, 0, 0xaa, 0xbb, 0xcc, 0x08, 0x00, //
            0x45, 0x00, 0x00, 0x34, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 10, 0, 0, 2,
            10, 0, 0, 1, //
            0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 1, 0x80, 0x10, 0x01, 0xf5, 0, 0, 0, 0,
            0x01, 0x01, 0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 2,
        ];
        f.resize(70, 0);
        f
    }

    #[test]
    fn classifies_tcp_over_ipv4_ignoring_padding() {
        let f = tcp_v4();
        let c = classify(&f).unwrap();
        let want = Frame {
            vlan_tci: None,
            l3: L3::Ipv4,
            l3_offset: 14,
            l4: L4::Tcp,
            l4_offset: 34,
            l4_len: 32,
        };
        assert_eq!(c, want);
        assert_eq!(c.l4_bytes(&f).len(), 32);
        assert!(c.l4_bytes(&f[..40]).is_empty());
        assert_eq!(c.tcp(&f).map(|t| t.header_len()), Some(32));
        assert!(c.tcp(&f[..40]).is_none());
    }

    #[test]
    fn classifies_vlan_ipv6_and_fragments() {
        let mut f = vec![
            0x33, 0x33, 0, 0, 0, 1, 0x52, 0x54, 0, 0xaa, 0xbb, 0xcc, 0x81, 0x00,
        ];
        f.extend_from_slice(&[0x00, 0x05, 0x86, 0xdd]);
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 16, ip_proto::FRAGMENT, 64]);
        f.extend_from_slice(&[0; 32]);
        f.extend_from_slice(&[ip_proto::UDP, 0, 0, 0x01, 0, 0, 0, 1]);
        f.extend_from_slice(&[0; 8]);
        let c = classify(&f).unwrap();
        assert_eq!((c.vlan_tci, c.l3, c.l3_offset), (Some(5), L3::Ipv6, 18));
        assert_eq!(
            (c.l4, c.l4_offset, c.l4_len),
            (L4::Fragment(ip_proto::UDP), 66, 8)
        );
        f[61] = 0; // not a fragment any more (atomic)
        let c = classify(&f).unwrap();
        assert_eq!((c.l4, c.l4_offset, c.l4_len), (L4::Udp, 66, 8));
    }

    #[test]
    fn other_ethertypes_and_protocols_are_not_errors() {
        let mut f = tcp_v4();
        f[23] = 47; // GRE
        assert_eq!(classify(&f).unwrap().l4, L4::Other(47));
        assert!(classify(&f).unwrap().tcp(&f).is_none());
        f[12..14].copy_from_slice(&0x88ccu16.to_be_bytes()); // LLDP
        let c = classify(&f).unwrap();
        assert_eq!((c.l3, c.l4, c.l4_offset), (L3::Other(0x88cc), L4::None, 0));
    }

    #[test]
    fn malformed_layers_are_errors() {
        let mut f = tcp_v4();
        f[46] = 0x40; // data offset 16 bytes
        assert_eq!(classify(&f), Err(WireError::BadHeaderLength));
        f[46] = 0x90; // 36 bytes > 32
        assert_eq!(classify(&f), Err(WireError::BadHeaderLength));
        let f = tcp_v4();
        assert_eq!(classify(&f[..40]), Err(WireError::Truncated));
        let mut f = tcp_v4();
        f[16..18].copy_from_slice(&(20u16 + 19).to_be_bytes());
        assert_eq!(classify(&f), Err(WireError::Truncated));
        let mut arp = tcp_v4();
        arp[12..14].copy_from_slice(&ethertype::ARP.to_be_bytes());
        assert_eq!(classify(&arp), Err(WireError::Unsupported));
    }
}
