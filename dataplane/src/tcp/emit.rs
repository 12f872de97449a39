//! Writes the Ethernet, IP and TCP headers of one [`SegmentOut`] into a header buffer;
//! the caller chains the payload behind them (or copies it, in tests).

use super::segment::{FourTuple, SegmentOut};
use crate::port::SharedBuf;
use crate::wire::checksum;
use crate::wire::ethernet::{ethertype, EthernetRepr, MacAddr};
use crate::wire::ipv4::{Ipv4Repr, DEFAULT_TTL};
use crate::wire::ipv6::{Ipv6Repr, DEFAULT_HOP_LIMIT};
use crate::wire::tcp::{TcpPacket, TcpRepr};
use crate::wire::WireError;
use std::net::SocketAddr;

/// IP protocol number of TCP.
const IPPROTO_TCP: u8 = 6;

/// How the TCP checksum is filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumMode {
    /// Computed in software over header and payload.
    Full,
    /// Pseudo-header sum only, for a NIC with TX checksum offload.
    Offload,
}

/// Layer-2 addressing of a segment's frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L2 {
    /// Our MAC.
    pub src: MacAddr,
    /// Next hop's MAC.
    pub dst: MacAddr,
    /// 802.1Q tag, if the port is tagged.
    pub vlan_tci: Option<u16>,
}

/// Writes the headers of `seg` for the connection `tuple` at the start of `hdr` and
/// returns their length. [`WireError::NoRoom`] when `hdr` is too small,
/// [`WireError::BadLength`] when the segment would not fit an IP packet, and
/// [`WireError::BadOption`] for a tuple mixing IPv4 and IPv6.
pub fn emit_headers<S: SharedBuf>(
    hdr: &mut [u8],
    l2: &L2,
    tuple: &FourTuple,
    seg: &SegmentOut<S>,
    mode: ChecksumMode,
) -> Result<usize, WireError> {
    let tcp_hl = TcpRepr::header_len(&seg.options);
    let tcp_len = u16::try_from(tcp_hl + seg.data_len()).map_err(|_| WireError::BadLength)?;
    let (eth_type, ip_len, pseudo) = match (tuple.local, tuple.remote) {
        (SocketAddr::V4(l), SocketAddr::V4(r)) => (
            ethertype::IPV4,
            20,
            checksum::pseudo_header_v4(*l.ip(), *r.ip(), IPPROTO_TCP, tcp_len),
        ),
        (SocketAddr::V6(l), SocketAddr::V6(r)) => (
            ethertype::IPV6,
            40,
            checksum::pseudo_header_v6(l.ip(), r.ip(), IPPROTO_TCP, u32::from(tcp_len)),
        ),
        _ => return Err(WireError::BadOption),
    };
    let eth = EthernetRepr {
        dst: l2.dst,
        src: l2.src,
        vlan_tci: l2.vlan_tci,
        ethertype: eth_type,
    };
    let mut off = eth.emit(hdr)?;
    let ip_buf = hdr.get_mut(off..).ok_or(WireError::NoRoom)?;
    match (tuple.local, tuple.remote) {
        (SocketAddr::V4(l), SocketAddr::V4(r)) => Ipv4Repr {
            src: *l.ip(),
            dst: *r.ip(),
            protocol: IPPROTO_TCP,
            payload_len: tcp_len,
            ttl: DEFAULT_TTL,
            tos: 0,
            ident: 0,
            dont_frag: true,
        }
        .emit(ip_buf)?,
        (SocketAddr::V6(l), SocketAddr::V6(r)) => Ipv6Repr {
            src: *l.ip(),
            dst: *r.ip(),
            next_header: IPPROTO_TCP,
            payload_len: tcp_len,
            hop_limit: DEFAULT_HOP_LIMIT,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(ip_buf)?,
        _ => return Err(WireError::BadOption),
    };
    off += ip_len;
    let tcp_buf = hdr.get_mut(off..off + tcp_hl).ok_or(WireError::NoRoom)?;
    TcpRepr {
        src_port: tuple.local.port(),
        dst_port: tuple.remote.port(),
        seq: seg.seq,
        ack: seg.ack,
        flags: seg.flags,
        window: seg.window,
        urgent: 0,
    }
    .emit(tcp_buf, &seg.options)?;
    let mut tcp = TcpPacket::parse(&mut *tcp_buf)?;
    match mode {
        ChecksumMode::Offload => tcp.fill_offload_checksum(pseudo),
        ChecksumMode::Full => {
            // The header is a multiple of 4 bytes, so the payload sum combines directly.
            let data = seg.payload.as_ref().map_or(0, |p| checksum::sum(p.bytes()));
            tcp.fill_checksum(checksum::combine(pseudo, data));
        }
    }
    Ok(off + tcp_hl)
}
