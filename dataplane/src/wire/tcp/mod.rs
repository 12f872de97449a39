//! TCP headers (RFC 9293): the segment view, flags, and the header emitter.

pub mod options;

use std::fmt;
use std::ops::BitOr;

use super::checksum;
use super::field::{be16, be32, set_be16, set_be32};
use super::WireError;
use crate::seq::TcpSeq;
pub use options::{
    FastPathOptions, OptionsBuf, SackBlocks, TcpOption, TcpOptions, MAX_OPTIONS_LEN,
};

/// Length of a TCP header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// The TCP flags byte.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// SYN.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// RST.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// PSH.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// ACK.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// URG.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECE.
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// CWR.
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// True when every flag of `other` is set here.
    #[inline]
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;

    #[inline]
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        let mut first = true;
        for (bit, name) in NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// A view of a TCP segment (header and payload; the buffer ends where the IP length
/// says). `parse` proves the header, options included, lies inside the buffer.
#[derive(Clone, Copy, Debug)]
pub struct TcpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Checks the fixed header and that the data offset lies in `[20, len]`.
    #[inline]
    pub fn parse(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hl = usize::from(b[12] >> 4) * 4;
        if hl < MIN_HEADER_LEN || hl > b.len() {
            return Err(WireError::BadHeaderLength);
        }
        Ok(TcpPacket { buf })
    }

    /// The underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buf.as_ref(), 0)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buf.as_ref(), 2)
    }

    /// Sequence number.
    #[inline]
    pub fn seq(&self) -> TcpSeq {
        TcpSeq::new(be32(self.buf.as_ref(), 4))
    }

    /// Acknowledgement number.
    #[inline]
    pub fn ack(&self) -> TcpSeq {
        TcpSeq::new(be32(self.buf.as_ref(), 8))
    }

    /// Header length, options included (20–60).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buf.as_ref()[12] >> 4) * 4
    }

    /// The flags byte (the AE/NS bit of byte 12 is not included).
    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buf.as_ref()[13])
    }

    /// Window field (unscaled).
    #[inline]
    pub fn window(&self) -> u16 {
        be16(self.buf.as_ref(), 14)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), 16)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent(&self) -> u16 {
        be16(self.buf.as_ref(), 18)
    }

    /// The raw option bytes.
    #[inline]
    pub fn option_bytes(&self) -> &[u8] {
        &self.buf.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// Iterates over the options.
    #[inline]
    pub fn options(&self) -> TcpOptions<'_> {
        TcpOptions::new(self.option_bytes())
    }

    /// Timestamps, SACK blocks and DSS from one walk over the options.
    #[inline]
    pub fn fast_path_options(&self) -> FastPathOptions<'_> {
        FastPathOptions::parse(self.option_bytes())
    }

    /// The payload.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len()..]
    }

    /// True when the checksum verifies, given the IP pseudo-header sum.
    #[inline]
    pub fn verify_checksum(&self, pseudo_header_sum: u16) -> bool {
        checksum::combine(pseudo_header_sum, checksum::sum(self.buf.as_ref()))
            == checksum::CORRECT_SUM
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the source port (checksum not updated, as for every setter here).
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        set_be16(self.buf.as_mut(), 0, port);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        set_be16(self.buf.as_mut(), 2, port);
    }

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq(&mut self, seq: TcpSeq) {
        set_be32(self.buf.as_mut(), 4, seq.get());
    }

    /// Sets the acknowledgement number.
    #[inline]
    pub fn set_ack(&mut self, ack: TcpSeq) {
        set_be32(self.buf.as_mut(), 8, ack.get());
    }

    /// Sets the flags byte.
    #[inline]
    pub fn set_flags(&mut self, flags: TcpFlags) {
        self.buf.as_mut()[13] = flags.0;
    }

    /// Sets the window field.
    #[inline]
    pub fn set_window(&mut self, window: u16) {
        set_be16(self.buf.as_mut(), 14, window);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, check: u16) {
        set_be16(self.buf.as_mut(), 16, check);
    }

    /// Computes the checksum over the whole segment, given the IP pseudo-header sum.
    #[inline]
    pub fn fill_checksum(&mut self, pseudo_header_sum: u16) {
        self.set_checksum(0);
        let c = !checksum::combine(pseudo_header_sum, checksum::sum(self.buf.as_ref()));
        self.set_checksum(c);
    }

    /// Stores the pseudo-header sum for a port that computes the rest (TX checksum
    /// offload: the field holds the folded pseudo-header sum, not inverted).
    #[inline]
    pub fn fill_offload_checksum(&mut self, pseudo_header_sum: u16) {
        self.set_checksum(pseudo_header_sum);
    }

    /// The raw option bytes, writable (for rewriting an option in place).
    #[inline]
    pub fn option_bytes_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buf.as_mut()[MIN_HEADER_LEN..hl]
    }

    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buf.as_mut()[hl..]
    }
}

/// The fixed fields of a TCP header, for emitting a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: TcpSeq,
    /// Acknowledgement number.
    pub ack: TcpSeq,
    /// Flags.
    pub flags: TcpFlags,
    /// Window field (already scaled down).
    pub window: u16,
    /// Urgent pointer.
    pub urgent: u16,
}

impl TcpRepr {
    /// The fixed fields of a parsed segment.
    #[inline]
    pub fn from_packet<T: AsRef<[u8]>>(p: &TcpPacket<T>) -> Self {
        TcpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq(),
            ack: p.ack(),
            flags: p.flags(),
            window: p.window(),
            urgent: p.urgent(),
        }
    }

    /// Header length with `options`: 20 plus the options padded to 4 bytes.
    #[inline]
    pub fn header_len(options: &OptionsBuf) -> usize {
        MIN_HEADER_LEN + options.padded_len()
    }

    /// Writes the header and `options` (padded with end-of-list zeros) at the start of
    /// `buf`, checksum zero; returns the header length. Fill the checksum once the
    /// payload is in place ([`TcpPacket::fill_checksum`]).
    #[inline]
    pub fn emit(&self, buf: &mut [u8], options: &OptionsBuf) -> Result<usize, WireError> {
        let hl = Self::header_len(options);
        let b = buf.get_mut(..hl).ok_or(WireError::NoRoom)?;
        set_be16(b, 0, self.src_port);
        set_be16(b, 2, self.dst_port);
        set_be32(b, 4, self.seq.get());
        set_be32(b, 8, self.ack.get());
        // `hl` ≤ 60, so the data offset fits its 4 bits.
        b[12] = ((hl / 4) as u8) << 4;
        b[13] = self.flags.0;
        set_be16(b, 14, self.window);
        set_be16(b, 16, 0);
        set_be16(b, 18, self.urgent);
        let opts = options.as_bytes();
        b[MIN_HEADER_LEN..MIN_HEADER_LEN + opts.len()].copy_from_slice(opts);
        b[MIN_HEADER_LEN + opts.len()..].fill(0);
        Ok(hl)
    }
}
