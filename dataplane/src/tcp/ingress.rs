//! From a received frame to a [`SegmentIn`]: classify, verify the TCP checksum, and
//! reference the payload inside the (now shared) receive buffer.

use super::payload::Payload;
use super::segment::{FourTuple, SegmentIn};
use crate::port::PacketBuf;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::ipv6::Ipv6Packet;
use crate::wire::tcp::TcpPacket;
use crate::wire::{checksum, classify, Frame, WireError, L3, L4};
use std::net::SocketAddr;

/// Decodes a TCP/IP frame addressed to us: the 4-tuple from our side and the segment,
/// its payload a zero-copy slice of `buf`. With `verify` the TCP checksum is checked
/// (pass false when the port already verified it). Errors for anything else: not TCP,
/// a fragment, malformed headers, a bad checksum ([`WireError::BadChecksum`]).
pub fn segment_from_frame<B: PacketBuf>(
    buf: B,
    verify: bool,
) -> Result<(FourTuple, SegmentIn<B::Shared>), WireError> {
    let f = classify(buf.data())?;
    segment_from_classified(buf, &f, verify)
}

/// [`segment_from_frame`] for a frame already classified as `f` (the worker's dispatch
/// classified it), so the headers are walked once.
pub fn segment_from_classified<B: PacketBuf>(
    buf: B,
    f: &Frame,
    verify: bool,
) -> Result<(FourTuple, SegmentIn<B::Shared>), WireError> {
    let frame = buf.data();
    if f.l4 != L4::Tcp {
        return Err(WireError::Unsupported);
    }
    let l3 = frame.get(f.l3_offset..).ok_or(WireError::Truncated)?;
    let (src, dst, pseudo) = match f.l3 {
        L3::Ipv4 => {
            let ip = Ipv4Packet::parse(l3)?;
            let len = u16::try_from(f.l4_len).map_err(|_| WireError::BadLength)?;
            let sum = checksum::pseudo_header_v4(ip.src(), ip.dst(), 6, len);
            (ip.src().into(), ip.dst().into(), sum)
        }
        L3::Ipv6 => {
            let ip = Ipv6Packet::parse(l3)?;
            let sum = checksum::pseudo_header_v6(&ip.src(), &ip.dst(), 6, f.l4_len as u32);
            (ip.src().into(), ip.dst().into(), sum)
        }
        _ => return Err(WireError::Unsupported),
    };
    let tcp = TcpPacket::parse(f.l4_bytes(frame))?;
    if verify && !tcp.verify_checksum(pseudo) {
        return Err(WireError::BadChecksum);
    }
    let tuple = FourTuple {
        local: SocketAddr::new(dst, tcp.dst_port()),
        remote: SocketAddr::new(src, tcp.src_port()),
    };
    let hl = tcp.header_len();
    let data_off = f.l4_offset + hl;
    let data_len = f.l4_len - hl;
    // The header fields are decoded before the buffer is given up for sharing.
    let mut seg = SegmentIn::from_packet(&tcp, None);
    if data_len > 0 {
        seg.payload = Payload::slice(buf.into_shared(), data_off, data_len);
    }
    Ok((tuple, seg))
}
