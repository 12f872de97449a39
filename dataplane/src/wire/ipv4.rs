//! IPv4 headers (RFC 791): options kept opaque, fragments recognised.

use std::net::Ipv4Addr;

use super::checksum;
use super::field::{array, be16, set_be16};
use super::WireError;

/// Length of an IPv4 header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// Default TTL for packets mpgw originates.
pub const DEFAULT_TTL: u8 = 64;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet. `parse` proves the header and the total length lie inside
/// the buffer; bytes after the total length (Ethernet padding) are outside the packet.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Checks version, header length and total length against `buf`.
    #[inline]
    pub fn parse(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[0] >> 4 != 4 {
            return Err(WireError::BadVersion);
        }
        let hl = usize::from(b[0] & 0x0f) * 4;
        if hl < MIN_HEADER_LEN {
            return Err(WireError::BadHeaderLength);
        }
        let total = usize::from(be16(b, 2));
        if total < hl {
            return Err(WireError::BadLength);
        }
        if total > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(Ipv4Packet { buf })
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// Header length in bytes (20–60).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buf.as_ref()[0] & 0x0f) * 4
    }

    /// Total length (header and payload) in bytes.
    #[inline]
    pub fn total_len(&self) -> usize {
        usize::from(be16(self.buf.as_ref(), 2))
    }

    /// The DSCP/ECN byte.
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buf.as_ref()[1]
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buf.as_ref(), 4)
    }

    /// Don't-fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        be16(self.buf.as_ref(), 6) & FLAG_DF != 0
    }

    /// More-fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        be16(self.buf.as_ref(), 6) & FLAG_MF != 0
    }

    /// Fragment offset in 8-byte units.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        be16(self.buf.as_ref(), 6) & OFFSET_MASK
    }

    /// True for any fragment (MF set or offset non-zero); mpgw does not reassemble.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        be16(self.buf.as_ref(), 6) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buf.as_ref()[8]
    }

    /// Upper-layer protocol number.
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buf.as_ref()[9]
    }

    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), 10)
    }

    /// Source address.
    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::from(array::<4>(self.buf.as_ref(), 12))
    }

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::from(array::<4>(self.buf.as_ref(), 16))
    }

    /// The option bytes (empty without options).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buf.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// The payload, up to the total length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len()..self.total_len()]
    }

    /// True when the header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(&self.buf.as_ref()[..self.header_len()]) == checksum::CORRECT_SUM
    }

    /// Sum of the pseudo-header for this packet's payload (for TCP/UDP checksums).
    #[inline]
    pub fn pseudo_header_sum(&self) -> u16 {
        let len = self.total_len() - self.header_len();
        // `len` < 65536 because `total_len` is a 16-bit field.
        checksum::pseudo_header_v4(self.src(), self.dst(), self.protocol(), len as u16)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the DSCP/ECN byte (checksum not updated).
    #[inline]
    pub fn set_tos(&mut self, tos: u8) {
        self.buf.as_mut()[1] = tos;
    }

    /// Sets the identification (checksum not updated).
    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        set_be16(self.buf.as_mut(), 4, ident);
    }

    /// Sets the time to live (checksum not updated).
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buf.as_mut()[8] = ttl;
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, check: u16) {
        set_be16(self.buf.as_mut(), 10, check);
    }

    /// Sets the source address (checksum not updated).
    #[inline]
    pub fn set_src(&mut self, addr: Ipv4Addr) {
        self.buf.as_mut()[12..16].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address (checksum not updated).
    #[inline]
    pub fn set_dst(&mut self, addr: Ipv4Addr) {
        self.buf.as_mut()[16..20].copy_from_slice(&addr.octets());
    }

    /// Swaps source and destination; no checksum changes (the sums are unchanged).
    #[inline]
    pub fn swap_addrs(&mut self) {
        let (s, d) = (self.src(), self.dst());
        self.set_src(d);
        self.set_dst(s);
    }

    /// Recomputes the header checksum from scratch.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::checksum(&self.buf.as_ref()[..hl]);
        self.set_checksum(c);
    }

    /// The payload, up to the total length, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, total) = (self.header_len(), self.total_len());
        &mut self.buf.as_mut()[hl..total]
    }
}

/// The fields of an option-less IPv4 header, for emitting a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Upper-layer protocol.
    pub protocol: u8,
    /// Payload length in bytes (the total length is 20 more).
    pub payload_len: u16,
    /// Time to live.
    pub ttl: u8,
    /// DSCP/ECN byte.
    pub tos: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Header length this repr emits (20).
    #[inline]
    pub const fn len(&self) -> usize {
        MIN_HEADER_LEN
    }

    /// Always false: a header is never empty (here for API symmetry with `len`).
    #[inline]
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// Writes the header, checksum included, at the start of `buf`; returns 20.
    /// [`WireError::BadLength`] if the total length would exceed 65535.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let total = self
            .payload_len
            .checked_add(MIN_HEADER_LEN as u16)
            .ok_or(WireError::BadLength)?;
        let b = buf.get_mut(..MIN_HEADER_LEN).ok_or(WireError::NoRoom)?;
        b[0] = 0x45;
        b[1] = self.tos;
        set_be16(b, 2, total);
        set_be16(b, 4, self.ident);
        set_be16(b, 6, if self.dont_frag { FLAG_DF } else { 0 });
        b[8] = self.ttl;
        b[9] = self.protocol;
        set_be16(b, 10, 0);
        b[12..16].copy_from_slice(&self.src.octets());
        b[16..20].copy_from_slice(&self.dst.octets());
        let c = checksum::checksum(b);
        set_be16(b, 10, c);
        Ok(MIN_HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A captured ICMP echo request header (10.0.0.2 → 10.0.0.1, DF, ttl 64), 84 bytes total.
    fn packet() -> Vec<u8> {
        let mut p = vec![
            0x45, 0x00, 0x00, 0x54, 0x3e, 0x8c, 0x40, 0x00, 0x40, 0x01, 0xe8, 0x1a, 10, 0, 0, 2,
            10, 0, 0, 1,
        ];
        p.resize(84, 0xa5);
        p
    }

    #[test]
    fn parses_captured_header() {
        let p = packet();
        let ip = Ipv4Packet::parse(&p[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(
            (ip.header_len(), ip.total_len(), ip.ttl(), ip.protocol()),
            (20, 84, 64, 1)
        );
        assert_eq!(
            (ip.src(), ip.dst()),
            (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 1))
        );
        assert!(ip.dont_frag() && !ip.more_frags() && !ip.is_fragment());
        assert_eq!(
            (ip.ident(), ip.tos(), ip.options().len(), ip.payload().len()),
            (0x3e8c, 0, 0, 64)
        );
    }

    #[test]
    fn validates_lengths_and_version() {
        let mut p = packet();
        assert_eq!(
            Ipv4Packet::parse(&p[..19]).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            Ipv4Packet::parse(&p[..83]).unwrap_err(),
            WireError::Truncated
        );
        p.push(0); // Ethernet padding is fine and outside the packet
        assert_eq!(Ipv4Packet::parse(&p[..]).unwrap().payload().len(), 64);
        p[0] = 0x65;
        assert_eq!(
            Ipv4Packet::parse(&p[..]).unwrap_err(),
            WireError::BadVersion
        );
        p[0] = 0x44;
        assert_eq!(
            Ipv4Packet::parse(&p[..]).unwrap_err(),
            WireError::BadHeaderLength
        );
        p[0] = 0x4f;
        p[2..4].copy_from_slice(&59u16.to_be_bytes());
        assert_eq!(Ipv4Packet::parse(&p[..]).unwrap_err(), WireError::BadLength);
        p[2..4].copy_from_slice(&60u16.to_be_bytes());
        assert_eq!(Ipv4Packet::parse(&p[..]).unwrap().options().len(), 40);
    }

    #[test]
    fn recognises_fragments() {
        let mut p = packet();
        p[6] = 0x20; // MF
        assert!(Ipv4Packet::parse(&p[..]).unwrap().is_fragment());
        p[6] = 0x00;
        p[7] = 0x01; // offset 8
        let ip = Ipv4Packet::parse(&p[..]).unwrap();
        assert!(ip.is_fragment() && !ip.more_frags() && ip.frag_offset() == 1);
    }

    #[test]
    fn setters_then_fill_checksum_and_emit_agree() {
        let mut p = packet();
        let mut ip = Ipv4Packet::parse(&mut p[..]).unwrap();
        ip.swap_addrs();
        assert!(ip.verify_checksum());
        ip.set_ttl(3);
        assert!(!ip.verify_checksum());
        ip.fill_checksum();
        assert!(ip.verify_checksum());
        let repr = Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: 1,
            payload_len: 64,
            ttl: 3,
            tos: 0,
            ident: 0x3e8c,
            dont_frag: true,
        };
        let mut out = [0u8; 20];
        assert_eq!(repr.emit(&mut out), Ok(20));
        assert_eq!(&out[..], &p[..20]);
        let too_big = Ipv4Repr {
            payload_len: 65_516,
            ..repr
        };
        assert_eq!(too_big.emit(&mut out), Err(WireError::BadLength));
    }
}
