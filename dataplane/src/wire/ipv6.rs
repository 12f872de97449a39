//! IPv6 headers (RFC 8200) with a bounded extension-header walk.

use std::net::Ipv6Addr;

use super::checksum;
use super::field::{array, be16, be32, set_be16, set_be32};
use super::{ip_proto, WireError};

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// Most extension headers the walk accepts before the upper layer.
pub const MAX_EXTENSION_HEADERS: usize = 8;
/// Default hop limit for packets mpgw originates.
pub const DEFAULT_HOP_LIMIT: u8 = 64;

/// A view of an IPv6 packet. `parse` proves the payload length lies inside the buffer
/// and walks the extension headers (hop-by-hop, routing, fragment, destination options)
/// to the upper-layer header, which it remembers.
#[derive(Clone, Copy, Debug)]
pub struct Ipv6Packet<T> {
    buf: T,
    upper_offset: usize,
    upper_protocol: u8,
    fragment: bool,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Checks version and payload length, and walks the extension headers.
    ///
    /// The walk stops at the first header that is not hop-by-hop, routing, fragment or
    /// destination options, and at a fragment header that starts a real fragment (offset
    /// ≠ 0 or M set). Hop-by-hop anywhere but first is [`WireError::Unsupported`].
    pub fn parse(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(WireError::BadVersion);
        }
        let end = HEADER_LEN + usize::from(be16(b, 4));
        let b = b.get(..end).ok_or(WireError::Truncated)?;
        let mut next = b[6];
        let mut off = HEADER_LEN;
        let mut fragment = false;
        let mut seen = 0;
        while is_extension(next) {
            if seen == MAX_EXTENSION_HEADERS {
                return Err(WireError::TooManyHeaders);
            }
            if next == ip_proto::HOP_BY_HOP && seen != 0 {
                return Err(WireError::Unsupported);
            }
            seen += 1;
            let hdr = b.get(off..off + 8).ok_or(WireError::Truncated)?;
            let len = if next == ip_proto::FRAGMENT {
                8
            } else {
                (usize::from(hdr[1]) + 1) * 8
            };
            if off + len > end {
                return Err(WireError::Truncated);
            }
            let this = next;
            next = hdr[0];
            off += len;
            // Offset (high 13 bits) or M (bit 0) set: a real fragment, stop here.
            if this == ip_proto::FRAGMENT && be16(hdr, 2) & 0xfff9 != 0 {
                fragment = true;
                break;
            }
        }
        Ok(Ipv6Packet {
            buf,
            upper_offset: off,
            upper_protocol: next,
            fragment,
        })
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// Traffic class.
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        ((be16(self.buf.as_ref(), 0) >> 4) & 0xff) as u8
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        be32(self.buf.as_ref(), 0) & 0x000f_ffff
    }

    /// Payload length (extension headers included) in bytes.
    #[inline]
    pub fn payload_len(&self) -> usize {
        usize::from(be16(self.buf.as_ref(), 4))
    }

    /// The Next Header field of the fixed header.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buf.as_ref()[6]
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buf.as_ref()[7]
    }

    /// Source address.
    #[inline]
    pub fn src(&self) -> Ipv6Addr {
        Ipv6Addr::from(array::<16>(self.buf.as_ref(), 8))
    }

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> Ipv6Addr {
        Ipv6Addr::from(array::<16>(self.buf.as_ref(), 24))
    }

    /// Protocol of the header after the extension headers (or after a fragment header
    /// when [`Self::is_fragment`]).
    #[inline]
    pub fn upper_protocol(&self) -> u8 {
        self.upper_protocol
    }

    /// Offset of the upper-layer header from the start of the IPv6 header.
    #[inline]
    pub fn upper_offset(&self) -> usize {
        self.upper_offset
    }

    /// True when a fragment header marks this packet as a fragment; mpgw does not
    /// reassemble.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.fragment
    }

    /// The payload after the fixed header, extension headers included.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..HEADER_LEN + self.payload_len()]
    }

    /// The upper-layer message (after the extension headers).
    #[inline]
    pub fn upper_payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.upper_offset()..HEADER_LEN + self.payload_len()]
    }

    /// Sum of the pseudo-header for the upper-layer message (its protocol and length).
    /// A routing header's final destination is not substituted: mpgw does not route.
    #[inline]
    pub fn pseudo_header_sum(&self) -> u16 {
        let len = HEADER_LEN + self.payload_len() - self.upper_offset();
        // `len` ≤ 65535: bounded by the 16-bit payload length.
        checksum::pseudo_header_v6(&self.src(), &self.dst(), self.upper_protocol, len as u32)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buf.as_mut()[7] = hop_limit;
    }

    /// Sets the traffic class.
    #[inline]
    pub fn set_traffic_class(&mut self, tc: u8) {
        let b = self.buf.as_mut();
        let w = be32(b, 0) & 0xf00f_ffff | u32::from(tc) << 20;
        set_be32(b, 0, w);
    }

    /// Sets the source address (upper-layer checksums not updated).
    #[inline]
    pub fn set_src(&mut self, addr: &Ipv6Addr) {
        self.buf.as_mut()[8..24].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address (upper-layer checksums not updated).
    #[inline]
    pub fn set_dst(&mut self, addr: &Ipv6Addr) {
        self.buf.as_mut()[24..40].copy_from_slice(&addr.octets());
    }

    /// Swaps source and destination; pseudo-header sums are unchanged.
    #[inline]
    pub fn swap_addrs(&mut self) {
        let (s, d) = (self.src(), self.dst());
        self.set_src(&d);
        self.set_dst(&s);
    }

    /// The upper-layer message, writable.
    #[inline]
    pub fn upper_payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.upper_offset(), HEADER_LEN + self.payload_len());
        &mut self.buf.as_mut()[start..end]
    }
}

/// The fields of an IPv6 header without extension headers, for emitting a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Upper-layer protocol.
    pub next_header: u8,
    /// Payload length in bytes.
    pub payload_len: u16,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (low 20 bits used).
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Header length this repr emits (40).
    #[inline]
    pub const fn len(&self) -> usize {
        HEADER_LEN
    }

    /// Always false: a header is never empty (here for API symmetry with `len`).
    #[inline]
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// Writes the header at the start of `buf`; returns 40.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let b = buf.get_mut(..HEADER_LEN).ok_or(WireError::NoRoom)?;
        let w = 6 << 28 | u32::from(self.traffic_class) << 20 | self.flow_label & 0x000f_ffff;
        set_be32(b, 0, w);
        set_be16(b, 4, self.payload_len);
        b[6] = self.next_header;
        b[7] = self.hop_limit;
        b[8..24].copy_from_slice(&self.src.octets());
        b[24..40].copy_from_slice(&self.dst.octets());
        Ok(HEADER_LEN)
    }
}

/// The solicited-node multicast address of `addr` (RFC 4291 §2.7.1): ff02::1:ffXX:XXXX.
#[inline]
pub fn solicited_node(addr: &Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// True for the extension headers the walk steps over.
#[inline]
fn is_extension(next: u8) -> bool {
    matches!(
        next,
        ip_proto::HOP_BY_HOP | ip_proto::ROUTING | ip_proto::FRAGMENT | ip_proto::DEST_OPTS
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "fe80::5054:ff:fe12:3456";
    const DST: &str = "2001:db8::1";

    fn packet(next: u8, ext: &[u8], upper: &[u8]) -> Vec<u8> {
        let repr = Ipv6Repr {
            src: SRC.parse().unwrap(),
            dst: DST.parse().unwrap(),
            next_header: next,
            payload_len: (ext.len() + upper.len()) as u16,
            hop_limit: 64,
            traffic_class: 0xb8,
            flow_label: 0x12345,
        };
        let mut p = vec![0u8; 40];
        repr.emit(&mut p).unwrap();
        p.extend_from_slice(ext);
        p.extend_from_slice(upper);
        p
    }

    #[test]
    fn plain_header() {
        let p = packet(ip_proto::TCP, &[], &[1, 2, 3]);
        let ip = Ipv6Packet::parse(&p[..]).unwrap();
        assert_eq!(
            (ip.traffic_class(), ip.flow_label(), ip.hop_limit()),
            (0xb8, 0x12345, 64)
        );
        assert_eq!(
            (ip.src(), ip.dst()),
            (SRC.parse().unwrap(), DST.parse().unwrap())
        );
        assert_eq!(
            (ip.upper_protocol(), ip.upper_offset(), ip.payload_len()),
            (6, 40, 3)
        );
        assert_eq!(ip.upper_payload(), &[1, 2, 3]);
        assert!(!ip.is_fragment());
    }

    #[test]
    fn walks_extension_chain() {
        let hbh = [ip_proto::ROUTING, 0, 5, 4, 0, 0, 0, 0]; // PadN
        let rt = [ip_proto::DEST_OPTS, 0, 0, 0, 0, 0, 0, 0];
        let dst = [
            ip_proto::FRAGMENT,
            1,
            1,
            14,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        let atomic_frag = [ip_proto::ICMPV6, 0, 0, 0, 0, 0, 0, 1];
        let ext = [&hbh[..], &rt, &dst, &atomic_frag].concat();
        let p = packet(ip_proto::HOP_BY_HOP, &ext, &[128, 0, 0, 0]);
        let ip = Ipv6Packet::parse(&p[..]).unwrap();
        assert_eq!(
            (ip.upper_protocol(), ip.upper_offset()),
            (ip_proto::ICMPV6, 40 + 40)
        );
        assert!(!ip.is_fragment());
        assert_eq!(ip.upper_payload(), &[128, 0, 0, 0]);
    }

    #[test]
    fn recognises_fragments() {
        for word in [0x0001u16, 0x0008] {
            let [hi, lo] = word.to_be_bytes();
            let frag = [ip_proto::TCP, 0, hi, lo, 0, 0, 0, 9];
            let ip_bytes = packet(ip_proto::FRAGMENT, &frag, &[0; 8]);
            let ip = Ipv6Packet::parse(&ip_bytes[..]).unwrap();
            assert!(ip.is_fragment());
            assert_eq!(
                (ip.upper_protocol(), ip.upper_offset()),
                (ip_proto::TCP, 48)
            );
        }
    }

    #[test]
    fn rejects_bad_chains() {
        let hbh_late = [
            ip_proto::HOP_BY_HOP,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            6,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        let p = packet(ip_proto::DEST_OPTS, &hbh_late, &[]);
        assert_eq!(
            Ipv6Packet::parse(&p[..]).unwrap_err(),
            WireError::Unsupported
        );

        let long = [ip_proto::TCP, 1, 0, 0, 0, 0, 0, 0]; // claims 16 bytes, has 8
        let p = packet(ip_proto::DEST_OPTS, &long, &[]);
        assert_eq!(Ipv6Packet::parse(&p[..]).unwrap_err(), WireError::Truncated);

        let chain: Vec<u8> = (0..=MAX_EXTENSION_HEADERS)
            .flat_map(|_| [ip_proto::DEST_OPTS, 0, 0, 0, 0, 0, 0, 0])
            .collect();
        let p = packet(ip_proto::DEST_OPTS, &chain, &[]);
        assert_eq!(
            Ipv6Packet::parse(&p[..]).unwrap_err(),
            WireError::TooManyHeaders
        );

        let mut p = packet(ip_proto::TCP, &[], &[0; 4]);
        assert_eq!(
            Ipv6Packet::parse(&p[..43]).unwrap_err(),
            WireError::Truncated
        );
        p[0] = 0x45;
        assert_eq!(
            Ipv6Packet::parse(&p[..]).unwrap_err(),
            WireError::BadVersion
        );
    }

    #[test]
    fn setters_and_solicited_node() {
        let mut p = packet(ip_proto::UDP, &[], &[0; 8]);
        let mut ip = Ipv6Packet::parse(&mut p[..]).unwrap();
        ip.swap_addrs();
        ip.set_hop_limit(255);
        ip.set_traffic_class(0x01);
        assert_eq!(
            (ip.src(), ip.dst()),
            (DST.parse().unwrap(), SRC.parse().unwrap())
        );
        assert_eq!(
            (ip.hop_limit(), ip.traffic_class(), ip.flow_label()),
            (255, 1, 0x12345)
        );
        let a: Ipv6Addr = "2001:db8::aa:bbcc:ddee".parse().unwrap();
        assert_eq!(
            solicited_node(&a),
            "ff02::1:ffcc:ddee".parse::<Ipv6Addr>().unwrap()
        );
    }
}
