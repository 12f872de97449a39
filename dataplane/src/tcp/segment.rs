//! Segments as the engine sees them: parsed incoming ones and descriptions of outgoing
//! ones, plus the connection's 4-tuple and the sink outgoing segments go to.

use super::payload::Payload;
use crate::port::SharedBuf;
use crate::seq::TcpSeq;
use crate::wire::tcp::{OptionsBuf, TcpFlags, TcpOption, TcpOptions, TcpPacket, MAX_OPTIONS_LEN};
use arrayvec::ArrayVec;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

/// A connection's addresses as seen from this gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FourTuple {
    /// Our address and port.
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
}

impl FourTuple {
    /// True for an IPv6 connection (both ends are the same family by construction).
    #[inline]
    pub fn is_ipv6(&self) -> bool {
        self.local.is_ipv6()
    }
}

/// Addresses and ports as whole words: an IPv4 tuple is two words for the hasher,
/// where a derived hash feeds it eight pieces (each address's tag, length, octets and
/// port). Equal tuples hash equally (the fields hashed are a subset of those
/// compared).
impl Hash for FourTuple {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let ports = u64::from(self.local.port()) << 16 | u64::from(self.remote.port());
        match (self.local.ip(), self.remote.ip()) {
            (IpAddr::V4(l), IpAddr::V4(r)) => {
                state.write_u64(u64::from(l.to_bits()) << 32 | u64::from(r.to_bits()));
            }
            (l, r) => {
                for a in [l, r] {
                    match a {
                        IpAddr::V4(v) => state.write_u32(v.to_bits()),
                        IpAddr::V6(v) => state.write_u128(v.to_bits()),
                    }
                }
            }
        }
        state.write_u64(ports);
    }
}

/// The options of an incoming segment that TCP itself uses, decoded once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegOptions {
    /// Maximum segment size offered (SYN only).
    pub mss: Option<u16>,
    /// Window scale shift offered (SYN only).
    pub window_scale: Option<u8>,
    /// SACK permitted (SYN only).
    pub sack_permitted: bool,
    /// `(TSval, TSecr)`.
    pub timestamps: Option<(u32, u32)>,
    /// SACK blocks, `[left, right)`.
    pub sack: ArrayVec<(TcpSeq, TcpSeq), 4>,
    /// Malformed options seen (ignored, like Linux does).
    pub malformed: bool,
}

impl SegOptions {
    /// Decodes `raw` (the option bytes after the fixed header).
    pub fn parse(raw: &[u8]) -> Self {
        let mut o = SegOptions::default();
        for opt in TcpOptions::new(raw) {
            match opt {
                Ok(TcpOption::Mss(m)) => o.mss = Some(m),
                Ok(TcpOption::WindowScale(s)) => o.window_scale = Some(s),
                Ok(TcpOption::SackPermitted) => o.sack_permitted = true,
                Ok(TcpOption::Timestamps { tsval, tsecr }) => o.timestamps = Some((tsval, tsecr)),
                Ok(TcpOption::Sack(blocks)) => {
                    o.sack.clear();
                    o.sack.extend(blocks.iter().take(4));
                }
                Ok(TcpOption::Mptcp(_) | TcpOption::Unknown { .. }) => {}
                Err(_) => o.malformed = true,
            }
        }
        o
    }
}

/// An incoming segment, header fields decoded and payload referenced in its buffer.
#[derive(Clone)]
pub struct SegmentIn<S> {
    /// Sequence number.
    pub seq: TcpSeq,
    /// Acknowledgement number (meaningful with ACK).
    pub ack: TcpSeq,
    /// Flags.
    pub flags: TcpFlags,
    /// Window field, unscaled.
    pub window: u16,
    /// Decoded options.
    pub options: SegOptions,
    /// The raw option bytes, for hooks (MPTCP) that parse their own.
    pub raw_options: ArrayVec<u8, MAX_OPTIONS_LEN>,
    /// The payload, `None` when empty.
    pub payload: Option<Payload<S>>,
}

impl<S: SharedBuf> SegmentIn<S> {
    /// A segment with `flags`, no options and no payload (mostly for tests).
    pub fn bare(seq: TcpSeq, ack: TcpSeq, flags: TcpFlags, window: u16) -> Self {
        SegmentIn {
            seq,
            ack,
            flags,
            window,
            options: SegOptions::default(),
            raw_options: ArrayVec::new(),
            payload: None,
        }
    }

    /// Decodes a parsed TCP header; `payload` is its payload as a slice of the shared
    /// receive buffer (the caller converts the buffer, see [`Payload::slice`]).
    pub fn from_packet<T: AsRef<[u8]>>(tcp: &TcpPacket<T>, payload: Option<Payload<S>>) -> Self {
        let raw = tcp.option_bytes();
        let mut raw_options = ArrayVec::new();
        // A parsed header has at most 40 option bytes, so this never truncates.
        raw_options.extend(raw.iter().copied().take(MAX_OPTIONS_LEN));
        SegmentIn {
            seq: tcp.seq(),
            ack: tcp.ack(),
            flags: tcp.flags(),
            window: tcp.window(),
            options: SegOptions::parse(raw),
            raw_options,
            payload: payload.filter(|p| !p.is_empty()),
        }
    }

    /// The RST answering this segment when no connection takes it (RFC 9293 §3.10.7.1),
    /// `None` for a RST.
    pub fn reset_reply(&self) -> Option<SegmentOut<S>> {
        if self.flags.contains(TcpFlags::RST) {
            return None;
        }
        let (seq, ack, flags) = if self.flags.contains(TcpFlags::ACK) {
            (self.ack, TcpSeq::default(), TcpFlags::RST)
        } else {
            (
                TcpSeq::default(),
                self.seq + self.seg_len(),
                TcpFlags::RST | TcpFlags::ACK,
            )
        };
        Some(SegmentOut {
            seq,
            ack,
            flags,
            window: 0,
            options: OptionsBuf::new(),
            payload: None,
            path: PathTx::None,
        })
    }

    /// Payload length in bytes.
    #[inline]
    pub fn data_len(&self) -> u32 {
        self.payload.as_ref().map_or(0, |p| p.len() as u32)
    }

    /// Sequence space the segment occupies: payload plus one for SYN and one for FIN.
    #[inline]
    pub fn seg_len(&self) -> u32 {
        self.data_len()
            + u32::from(self.flags.contains(TcpFlags::SYN))
            + u32::from(self.flags.contains(TcpFlags::FIN))
    }
}

/// An outgoing segment: header fields, options and a payload reference. The caller
/// turns it into a frame with [`super::emit::emit_headers`] and chains the payload.
#[derive(Clone)]
pub struct SegmentOut<S> {
    /// Sequence number.
    pub seq: TcpSeq,
    /// Acknowledgement number (zero without ACK).
    pub ack: TcpSeq,
    /// Flags.
    pub flags: TcpFlags,
    /// Window field, already scaled down.
    pub window: u16,
    /// Options, in Linux's layout.
    pub options: OptionsBuf,
    /// The payload, `None` when empty.
    pub payload: Option<Payload<S>>,
    /// How the payload counts on the path (port) the segment leaves by.
    pub path: PathTx,
}

/// How an outgoing segment's payload counts in its path's byte counters (the port it
/// leaves by, see [`crate::stats::PathCounter`]): only MPTCP subflows' payload counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PathTx {
    /// Not counted: no payload, or plain TCP (fallen-back connections included).
    #[default]
    None,
    /// Data sent on this subflow for the first time.
    New,
    /// A TCP retransmission on the subflow.
    Retransmitted,
    /// Data sent again at the connection level, usually after another subflow carried
    /// it (an MPTCP reinjection; its TCP retransmissions count as retransmitted).
    Reinjected,
}

impl<S: SharedBuf> SegmentOut<S> {
    /// Payload length in bytes.
    #[inline]
    pub fn data_len(&self) -> usize {
        self.payload.as_ref().map_or(0, Payload::len)
    }
}

impl<S: SharedBuf> PartialEq for SegmentOut<S> {
    fn eq(&self, o: &Self) -> bool {
        (self.seq, self.ack, self.flags, self.window) == (o.seq, o.ack, o.flags, o.window)
            && self.options.as_bytes() == o.options.as_bytes()
            && self.payload == o.payload
    }
}

/// Where a connection writes its outgoing segments.
pub trait SegmentSink<S> {
    /// Takes one segment for the connection `tuple`.
    fn send(&mut self, tuple: &FourTuple, seg: SegmentOut<S>);
}

impl<S> SegmentSink<S> for Vec<(FourTuple, SegmentOut<S>)> {
    #[inline]
    fn send(&mut self, tuple: &FourTuple, seg: SegmentOut<S>) {
        self.push((*tuple, seg));
    }
}

/// The header fields an option hook sees for the segment it adds options to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentMeta {
    /// Sequence number.
    pub seq: TcpSeq,
    /// Acknowledgement number.
    pub ack: TcpSeq,
    /// Flags.
    pub flags: TcpFlags,
    /// Payload length.
    pub data_len: u32,
    /// Window in bytes: the peer's (scaled; unscaled on a SYN) on a received segment,
    /// ours on a sent one.
    pub window: u32,
}

impl<S> fmt::Debug for SegmentIn<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentIn")
            .field("seq", &self.seq)
            .field("ack", &self.ack)
            .field("flags", &self.flags)
            .field("window", &self.window)
            .field("options", &self.options)
            .field("payload", &self.payload)
            .finish()
    }
}

impl<S> fmt::Debug for SegmentOut<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentOut")
            .field("seq", &self.seq)
            .field("ack", &self.ack)
            .field("flags", &self.flags)
            .field("window", &self.window)
            .field("options", &self.options.as_bytes())
            .field("payload", &self.payload)
            .finish()
    }
}
