//! Ethernet II frames with at most one 802.1Q VLAN tag, and MAC addresses.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use super::field::{array, be16, set_be16};
use super::WireError;

/// EtherType values mpgw recognises.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// 802.1Q VLAN tag (the TPID).
    pub const VLAN: u16 = 0x8100;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
}

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// Length of an 802.1Q tag.
pub const VLAN_TAG_LEN: usize = 4;

/// A 48-bit IEEE MAC address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// True for ff:ff:ff:ff:ff:ff.
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// True when the group bit is set (broadcast included).
    #[inline]
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// True for an individual (non-group) address.
    #[inline]
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// The MAC an IPv6 multicast address maps to (RFC 2464 §7): 33:33 and its low 32 bits.
    #[inline]
    pub fn from_ipv6_multicast(addr: &Ipv6Addr) -> MacAddr {
        let o = addr.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// The error parsing a [`MacAddr`] from text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address (expected six colon-separated hex octets)")]
pub struct ParseMacError;

impl FromStr for MacAddr {
    type Err = ParseMacError;

    /// Parses `aa:bb:cc:dd:ee:ff` (hex digits of either case, one or two per octet).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for o in &mut out {
            let p = parts.next().ok_or(ParseMacError)?;
            if p.is_empty() || p.len() > 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(ParseMacError);
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| ParseMacError)?;
        }
        match parts.next() {
            None => Ok(MacAddr(out)),
            Some(_) => Err(ParseMacError),
        }
    }
}

/// A view of an Ethernet II frame with an optional 802.1Q tag.
#[derive(Clone, Copy, Debug)]
pub struct EthernetFrame<T> {
    buf: T,
    tagged: bool,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Checks that `buf` holds a whole Ethernet header (and the tag when the TPID says so).
    #[inline]
    pub fn parse(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let tagged = be16(b, 12) == ethertype::VLAN;
        if tagged && b.len() < HEADER_LEN + VLAN_TAG_LEN {
            return Err(WireError::Truncated);
        }
        Ok(EthernetFrame { buf, tagged })
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// Destination MAC.
    #[inline]
    pub fn dst(&self) -> MacAddr {
        MacAddr(array(self.buf.as_ref(), 0))
    }

    /// Source MAC.
    #[inline]
    pub fn src(&self) -> MacAddr {
        MacAddr(array(self.buf.as_ref(), 6))
    }

    /// The 802.1Q tag control information (PCP, DEI, VLAN id), if tagged.
    #[inline]
    pub fn vlan_tci(&self) -> Option<u16> {
        self.tagged.then(|| be16(self.buf.as_ref(), 14))
    }

    /// The VLAN id (low 12 bits of the TCI), if tagged.
    #[inline]
    pub fn vlan_id(&self) -> Option<u16> {
        self.vlan_tci().map(|tci| tci & 0x0fff)
    }

    /// The EtherType of the payload (after the tag, if any).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.buf.as_ref(), self.header_len() - 2)
    }

    /// Header length: 14, or 18 with a tag; the payload starts here.
    #[inline]
    pub fn header_len(&self) -> usize {
        if self.tagged {
            HEADER_LEN + VLAN_TAG_LEN
        } else {
            HEADER_LEN
        }
    }

    /// The bytes after the header (including any Ethernet padding).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC.
    #[inline]
    pub fn set_dst(&mut self, mac: MacAddr) {
        self.buf.as_mut()[0..6].copy_from_slice(&mac.0);
    }

    /// Sets the source MAC.
    #[inline]
    pub fn set_src(&mut self, mac: MacAddr) {
        self.buf.as_mut()[6..12].copy_from_slice(&mac.0);
    }

    /// Sets the payload EtherType (after the tag, if any).
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: u16) {
        let at = self.header_len() - 2;
        set_be16(self.buf.as_mut(), at, ethertype);
    }

    /// Sets the tag control information; false (frame unchanged) if the frame is untagged.
    #[inline]
    pub fn set_vlan_tci(&mut self, tci: u16) -> bool {
        if self.tagged {
            set_be16(self.buf.as_mut(), 14, tci);
        }
        self.tagged
    }

    /// Addresses the frame back to its sender, from `me`: `dst = src; src = me`.
    #[inline]
    pub fn reply_from(&mut self, me: MacAddr) {
        let sender = self.src();
        self.set_dst(sender);
        self.set_src(me);
    }

    /// The bytes after the header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        &mut self.buf.as_mut()[at..]
    }
}

/// The fields of an Ethernet header, for emitting a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Destination MAC.
    pub dst: MacAddr,
    /// Source MAC.
    pub src: MacAddr,
    /// 802.1Q tag control information, when the frame is tagged.
    pub vlan_tci: Option<u16>,
    /// Payload EtherType.
    pub ethertype: u16,
}

impl EthernetRepr {
    /// Header length this repr emits.
    #[inline]
    pub fn len(&self) -> usize {
        HEADER_LEN
            + if self.vlan_tci.is_some() {
                VLAN_TAG_LEN
            } else {
                0
            }
    }

    /// Always false: a header is never empty (here for API symmetry with `len`).
    #[inline]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the header at the start of `buf`; returns its length.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.len();
        let b = buf.get_mut(..len).ok_or(WireError::NoRoom)?;
        b[0..6].copy_from_slice(&self.dst.0);
        b[6..12].copy_from_slice(&self.src.0);
        if let Some(tci) = self.vlan_tci {
            set_be16(b, 12, ethertype::VLAN);
            set_be16(b, 14, tci);
        }
        set_be16(b, len - 2, self.ethertype);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNTAGGED: [u8; 14] = [
        0x00, 0x1b, 0x21, 0x3a, 0x4f, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x00,
    ];
    const TAGGED: [u8; 18] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x81, 0x00, 0x20,
        0x64, 0x08, 0x06,
    ];

    #[test]
    fn parses_untagged_and_tagged() {
        let e = EthernetFrame::parse(&UNTAGGED[..]).unwrap();
        assert_eq!(e.dst().to_string(), "00:1b:21:3a:4f:01");
        assert_eq!(e.src(), "52:54:00:12:34:56".parse().unwrap());
        assert_eq!(e.ethertype(), ethertype::IPV4);
        assert_eq!((e.vlan_tci(), e.header_len()), (None, 14));

        let e = EthernetFrame::parse(&TAGGED[..]).unwrap();
        assert!(e.dst().is_broadcast() && e.dst().is_multicast());
        assert_eq!((e.vlan_tci(), e.vlan_id()), (Some(0x2064), Some(100)));
        assert_eq!((e.ethertype(), e.header_len()), (ethertype::ARP, 18));
        assert!(e.payload().is_empty());
    }

    #[test]
    fn rejects_truncated() {
        assert_eq!(
            EthernetFrame::parse(&UNTAGGED[..13]).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            EthernetFrame::parse(&TAGGED[..17]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn setters_and_emit_round_trip() {
        let mut buf = TAGGED;
        let mut e = EthernetFrame::parse(&mut buf[..]).unwrap();
        let me: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        e.reply_from(me);
        e.set_ethertype(ethertype::IPV6);
        assert!(e.set_vlan_tci(7));
        let repr = EthernetRepr {
            dst: "52:54:00:12:34:56".parse().unwrap(),
            src: me,
            vlan_tci: Some(7),
            ethertype: ethertype::IPV6,
        };
        let mut out = [0u8; 18];
        assert_eq!(repr.emit(&mut out), Ok(18));
        assert_eq!(out, buf);
        assert_eq!(repr.emit(&mut out[..17]), Err(WireError::NoRoom));
    }

    #[test]
    fn mac_text_and_helpers() {
        assert!("aa:bb:cc:dd:ee".parse::<MacAddr>().is_err());
        assert!("aa:bb:cc:dd:ee:ff:00".parse::<MacAddr>().is_err());
        assert!("aa:bb:cc:dd:ee:+f".parse::<MacAddr>().is_err());
        assert_eq!(
            "A:b:c:d:e:F".parse::<MacAddr>(),
            Ok(MacAddr([10, 11, 12, 13, 14, 15]))
        );
        let ns: Ipv6Addr = "ff02::1:ff00:1234".parse().unwrap();
        assert_eq!(
            MacAddr::from_ipv6_multicast(&ns).to_string(),
            "33:33:ff:00:12:34"
        );
        assert!(MacAddr([0x02, 0, 0, 0, 0, 1]).is_unicast());
    }
}
