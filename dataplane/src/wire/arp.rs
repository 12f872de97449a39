//! ARP for IPv4 over Ethernet (RFC 826).

use std::net::Ipv4Addr;

use super::ethernet::{ethertype, EthernetFrame, MacAddr};
use super::field::{array, be16, set_be16};
use super::WireError;

/// Length of an IPv4-over-Ethernet ARP packet.
pub const PACKET_LEN: usize = 28;
/// `op` of a request.
pub const OP_REQUEST: u16 = 1;
/// `op` of a reply.
pub const OP_REPLY: u16 = 2;

/// A view of an IPv4-over-Ethernet ARP packet (hardware type 1, protocol 0x0800).
#[derive(Clone, Copy, Debug)]
pub struct ArpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Checks length and that this is ARP for IPv4 over Ethernet.
    #[inline]
    pub fn parse(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        if be16(b, 0) != 1 || be16(b, 2) != ethertype::IPV4 || b[4] != 6 || b[5] != 4 {
            return Err(WireError::Unsupported);
        }
        Ok(ArpPacket { buf })
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// Operation: [`OP_REQUEST`], [`OP_REPLY`] or another value.
    #[inline]
    pub fn op(&self) -> u16 {
        be16(self.buf.as_ref(), 6)
    }

    /// Sender hardware address.
    #[inline]
    pub fn sha(&self) -> MacAddr {
        MacAddr(array(self.buf.as_ref(), 8))
    }

    /// Sender protocol address.
    #[inline]
    pub fn spa(&self) -> Ipv4Addr {
        Ipv4Addr::from(array::<4>(self.buf.as_ref(), 14))
    }

    /// Target hardware address.
    #[inline]
    pub fn tha(&self) -> MacAddr {
        MacAddr(array(self.buf.as_ref(), 18))
    }

    /// Target protocol address.
    #[inline]
    pub fn tpa(&self) -> Ipv4Addr {
        Ipv4Addr::from(array::<4>(self.buf.as_ref(), 24))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets the operation.
    #[inline]
    pub fn set_op(&mut self, op: u16) {
        set_be16(self.buf.as_mut(), 6, op);
    }

    /// Sets the sender hardware and protocol addresses.
    #[inline]
    pub fn set_sender(&mut self, mac: MacAddr, ip: Ipv4Addr) {
        let b = self.buf.as_mut();
        b[8..14].copy_from_slice(&mac.0);
        b[14..18].copy_from_slice(&ip.octets());
    }

    /// Sets the target hardware and protocol addresses.
    #[inline]
    pub fn set_target(&mut self, mac: MacAddr, ip: Ipv4Addr) {
        let b = self.buf.as_mut();
        b[18..24].copy_from_slice(&mac.0);
        b[24..28].copy_from_slice(&ip.octets());
    }

    /// Turns a request into the reply from `my_mac` (answering for the requested `tpa`).
    #[inline]
    pub fn make_reply(&mut self, my_mac: MacAddr) {
        let (sha, spa, tpa) = (self.sha(), self.spa(), self.tpa());
        self.set_op(OP_REPLY);
        self.set_target(sha, spa);
        self.set_sender(my_mac, tpa);
    }
}

/// Turns the ARP request in Ethernet `frame` into its reply from `my_mac`, in place: the
/// frame goes back to the requester, the VLAN tag and length are kept.
///
/// The caller decides whether to answer (the target address is its own); this checks the
/// frame is an IPv4-over-Ethernet ARP request ([`WireError::NotRequest`] otherwise).
pub fn make_reply_in_place(frame: &mut [u8], my_mac: MacAddr) -> Result<(), WireError> {
    let mut eth = EthernetFrame::parse(&mut *frame)?;
    if eth.ethertype() != ethertype::ARP {
        return Err(WireError::NotRequest);
    }
    let mut arp = ArpPacket::parse(eth.payload_mut())?;
    if arp.op() != OP_REQUEST {
        return Err(WireError::NotRequest);
    }
    let requester = arp.sha();
    arp.make_reply(my_mac);
    eth.set_dst(requester);
    eth.set_src(my_mac);
    Ok(())
}

/// Writes a whole ARP request frame (Ethernet broadcast, 802.1Q-tagged with
/// `vlan_tci` if given) for `target` from `my_mac`/`my_ip` at the start of `frame`;
/// returns its length (42, or 46 tagged).
pub fn request_frame(
    frame: &mut [u8],
    my_mac: MacAddr,
    vlan_tci: Option<u16>,
    my_ip: Ipv4Addr,
    target: Ipv4Addr,
) -> Result<usize, WireError> {
    let eth = super::ethernet::EthernetRepr {
        dst: MacAddr::BROADCAST,
        src: my_mac,
        vlan_tci,
        ethertype: ethertype::ARP,
    };
    let at = eth.emit(frame)?;
    let b = frame
        .get_mut(at..at + PACKET_LEN)
        .ok_or(WireError::NoRoom)?;
    set_be16(b, 0, 1);
    set_be16(b, 2, ethertype::IPV4);
    b[4] = 6;
    b[5] = 4;
    let mut arp = ArpPacket { buf: b };
    arp.set_op(OP_REQUEST);
    arp.set_sender(my_mac, my_ip);
    arp.set_target(MacAddr::ZERO, target);
    Ok(at + PACKET_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A broadcast who-has 10.0.0.1 tell 10.0.0.2, padded to 60 bytes as on the wire.
    fn request() -> Vec<u8> {
        let mut f = vec![
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc, 0x08,
            0x06, //
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
            0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc, 10, 0, 0, 2, //
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 10, 0, 0, 1,
        ];
        f.resize(60, 0);
        f
    }

    #[test]
    fn parses_request() {
        let f = request();
        let arp = ArpPacket::parse(&f[14..]).unwrap();
        assert_eq!(arp.op(), OP_REQUEST);
        assert_eq!(arp.sha().to_string(), "52:54:00:aa:bb:cc");
        assert_eq!(
            (arp.spa(), arp.tpa()),
            (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(arp.tha(), MacAddr::ZERO);
    }

    #[test]
    fn request_becomes_reply() {
        let mut f = request();
        let me: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        make_reply_in_place(&mut f, me).unwrap();
        let eth = EthernetFrame::parse(&f[..]).unwrap();
        assert_eq!(
            (eth.dst().to_string(), eth.src()),
            ("52:54:00:aa:bb:cc".into(), me)
        );
        let arp = ArpPacket::parse(eth.payload()).unwrap();
        assert_eq!(arp.op(), OP_REPLY);
        assert_eq!((arp.sha(), arp.spa()), (me, Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(arp.tha().to_string(), "52:54:00:aa:bb:cc");
        assert_eq!(arp.tpa(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(f.len(), 60);
        // A reply is not answered again.
        assert_eq!(make_reply_in_place(&mut f, me), Err(WireError::NotRequest));
    }

    #[test]
    fn rejects_other_hardware_and_short() {
        let mut f = request();
        assert_eq!(
            ArpPacket::parse(&f[14..41]).unwrap_err(),
            WireError::Truncated
        );
        f[19] = 16; // plen
        assert_eq!(
            ArpPacket::parse(&f[14..]).unwrap_err(),
            WireError::Unsupported
        );
        f[13] = 0x00; // EtherType IPv4
        assert_eq!(
            make_reply_in_place(&mut f, MacAddr::ZERO),
            Err(WireError::NotRequest)
        );
    }
}
