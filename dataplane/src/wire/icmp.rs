//! ICMPv4 (RFC 792): the header view and the in-place echo responder.

use super::checksum;
use super::ethernet::{ethertype, EthernetFrame, MacAddr};
use super::field::{be16, set_be16};
use super::ipv4::{Ipv4Packet, DEFAULT_TTL};
use super::{ip_proto, WireError};

/// Length of the ICMP header (type, code, checksum, 4 bytes of rest-of-header).
pub const HEADER_LEN: usize = 8;
/// Type of an echo reply.
pub const ECHO_REPLY: u8 = 0;
/// Type of an echo request.
pub const ECHO_REQUEST: u8 = 8;

/// A view of an ICMP message, for IPv4 (RFC 792) and IPv6 (RFC 4443) alike: the two
/// share the header layout and differ only in the checksum's pseudo-header (none for
/// ICMPv4, pass 0). The buffer is the whole message, bounded by the IP length.
#[derive(Clone, Copy, Debug)]
pub struct IcmpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Checks that `buf` holds the 8-byte header.
    #[inline]
    pub fn parse(buf: T) -> Result<Self, WireError> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(IcmpPacket { buf })
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buf.as_ref()[0]
    }

    /// Message code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buf.as_ref()[1]
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), 2)
    }

    /// Echo identifier.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        be16(self.buf.as_ref(), 4)
    }

    /// Echo sequence number.
    #[inline]
    pub fn echo_seq(&self) -> u16 {
        be16(self.buf.as_ref(), 6)
    }

    /// Bytes after the 8-byte header (echo data).
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..]
    }

    /// The whole message.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// True when the checksum verifies, given the pseudo-header sum (0 for ICMPv4;
    /// [`crate::wire::ipv6::Ipv6Packet::pseudo_header_sum`] for ICMPv6).
    #[inline]
    pub fn verify_checksum(&self, pseudo_header_sum: u16) -> bool {
        checksum::combine(pseudo_header_sum, checksum::sum(self.buf.as_ref()))
            == checksum::CORRECT_SUM
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    /// Sets type and code, updating the checksum incrementally.
    #[inline]
    pub fn set_type_code(&mut self, msg_type: u8, code: u8) {
        let b = self.buf.as_mut();
        let old = be16(b, 0);
        let new = u16::from_be_bytes([msg_type, code]);
        let check = checksum::update16(be16(b, 2), old, new);
        set_be16(b, 0, new);
        set_be16(b, 2, check);
    }

    /// Recomputes the checksum from scratch, given the pseudo-header sum (0 for
    /// ICMPv4).
    #[inline]
    pub fn fill_checksum(&mut self, pseudo_header_sum: u16) {
        let b = self.buf.as_mut();
        set_be16(b, 2, 0);
        let c = !checksum::combine(pseudo_header_sum, checksum::sum(b));
        set_be16(b, 2, c);
    }
}

/// Turns the ICMP echo request in Ethernet `frame` into its reply, in place: MACs go
/// back to the sender from `my_mac`, IP addresses swap, TTL becomes 64, type becomes
/// 0; both checksums are updated incrementally. Length and VLAN tag are kept.
///
/// The caller decides whether to answer (the destination is its own unicast address).
/// Errors: a bad IPv4 or ICMP checksum ([`WireError::BadChecksum`]), a fragment
/// ([`WireError::Unsupported`]), anything but an IPv4 echo request
/// ([`WireError::NotRequest`]), or the parse errors of the layers. The frame is only
/// written when the result is `Ok`.
pub fn echo_reply_in_place(frame: &mut [u8], my_mac: MacAddr) -> Result<(), WireError> {
    let mut eth = EthernetFrame::parse(&mut *frame)?;
    if eth.ethertype() != ethertype::IPV4 {
        return Err(WireError::NotRequest);
    }
    {
        let mut ip = Ipv4Packet::parse(eth.payload_mut())?;
        if !ip.verify_checksum() {
            return Err(WireError::BadChecksum);
        }
        if ip.protocol() != ip_proto::ICMP {
            return Err(WireError::NotRequest);
        }
        if ip.is_fragment() {
            return Err(WireError::Unsupported);
        }
        let mut icmp = IcmpPacket::parse(ip.payload_mut())?;
        if icmp.msg_type() != ECHO_REQUEST || icmp.code() != 0 {
            return Err(WireError::NotRequest);
        }
        if !icmp.verify_checksum(0) {
            return Err(WireError::BadChecksum);
        }
        icmp.set_type_code(ECHO_REPLY, 0);
        let old = u16::from_be_bytes([ip.ttl(), ip.protocol()]);
        let new = u16::from_be_bytes([DEFAULT_TTL, ip.protocol()]);
        ip.set_ttl(DEFAULT_TTL);
        ip.set_checksum(checksum::update16(ip.checksum(), old, new));
        ip.swap_addrs();
    }
    eth.reply_from(my_mac);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// `ping -c1 10.0.0.1` from 10.0.0.2 as captured: Ethernet, IPv4 (ttl 64, DF),
    /// echo id 0x1c2d seq 1 with 56 bytes of data.
    fn request() -> Vec<u8> {
        let mut f = vec![
            0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc, 0x08,
            0x00, //
            0x45, 0x00, 0x00, 0x54, 0x3e, 0x8c, 0x40, 0x00, 0x40, 0x01, 0xe8, 0x1a, 10, 0, 0, 2,
            10, 0, 0, 1, //
            0x08, 0x00, 0x00, 0x00, 0x1c, 0x2d, 0x00, 0x01,
        ];
        f.extend((0..56u8).map(|i| i.wrapping_add(0x10)));
        let c = checksum::checksum(&f[34..]);
        f[36..38].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn parses_echo_request() {
        let f = request();
        let icmp = IcmpPacket::parse(&f[34..]).unwrap();
        assert_eq!((icmp.msg_type(), icmp.code()), (ECHO_REQUEST, 0));
        assert_eq!(
            (icmp.echo_ident(), icmp.echo_seq(), icmp.data().len()),
            (0x1c2d, 1, 56)
        );
        assert!(icmp.verify_checksum(0));
        assert_eq!(
            IcmpPacket::parse(&f[34..41]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn request_becomes_reply() {
        let mut f = request();
        let original = f.clone();
        let me: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        let mut ttl_changed = f.clone();
        ttl_changed[22] = 3;
        let c = checksum::update16(0xe81a, 0x4001, 0x0301);
        ttl_changed[24..26].copy_from_slice(&c.to_be_bytes());
        for req in [&mut f, &mut ttl_changed] {
            echo_reply_in_place(req, me).unwrap();
            let eth = EthernetFrame::parse(&req[..]).unwrap();
            assert_eq!(
                (eth.dst().to_string(), eth.src()),
                ("52:54:00:aa:bb:cc".into(), me)
            );
            let ip = Ipv4Packet::parse(eth.payload()).unwrap();
            assert!(ip.verify_checksum());
            assert_eq!(
                (ip.src(), ip.dst(), ip.ttl()),
                (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), 64)
            );
            let icmp = IcmpPacket::parse(ip.payload()).unwrap();
            assert!(icmp.verify_checksum(0));
            assert_eq!((icmp.msg_type(), icmp.echo_ident()), (ECHO_REPLY, 0x1c2d));
            assert_eq!(icmp.data(), &original[42..]);
        }
        assert_eq!(echo_reply_in_place(&mut f, me), Err(WireError::NotRequest));
    }

    #[test]
    fn refuses_bad_checksums_without_writing() {
        let me = MacAddr::ZERO;
        let mut f = request();
        f[50] ^= 1;
        let before = f.clone();
        assert_eq!(echo_reply_in_place(&mut f, me), Err(WireError::BadChecksum));
        assert_eq!(f, before);
        let mut f = request();
        f[22] = 1; // TTL changed, header checksum now wrong
        assert_eq!(echo_reply_in_place(&mut f, me), Err(WireError::BadChecksum));
        let mut f = request();
        f[20] = 0x20; // MF
        let c = checksum::update16(0xe81a, 0x4000, 0x2000);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        assert_eq!(echo_reply_in_place(&mut f, me), Err(WireError::Unsupported));
    }
}
