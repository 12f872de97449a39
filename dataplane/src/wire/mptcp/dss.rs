//! DSS, the Data Sequence Signal (RFC 8684 §3.3): DATA_ACK, mapping, DATA_FIN.

use super::{subtype, MptcpOptError};
use crate::seq::Dsn;
use crate::wire::field::{be16, be32, be64, set_be16, set_be32, set_be64};

const FLAG_ACK: u8 = 0x01;
const FLAG_ACK64: u8 = 0x02;
const FLAG_MAP: u8 = 0x04;
const FLAG_DSN64: u8 = 0x08;
const FLAG_DATA_FIN: u8 = 0x10;
const FLAG_MASK: u8 = 0x1f;
const BASE_LEN: usize = 4;
const MAP_TAIL_LEN: usize = 6;
const CHECKSUM_LEN: usize = 2;

/// A DSN or DATA_ACK as carried on the wire: its low 32 bits or all 64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DsnField {
    /// The low 32 bits; expand with [`DsnField::expand`].
    Bits32(u32),
    /// The full 64-bit value.
    Bits64(Dsn),
}

impl DsnField {
    /// The full value, expanding a 32-bit field relative to `expected` (the receiver's
    /// current DATA_ACK for a DSN, its send-unacknowledged DSN for a DATA_ACK).
    #[inline]
    pub fn expand(self, expected: Dsn) -> Dsn {
        match self {
            DsnField::Bits32(low) => Dsn::expand32(low, expected),
            DsnField::Bits64(dsn) => dsn,
        }
    }

    /// A DATA_ACK in Linux's form: 32 bits until the peer has sent a 64-bit DSN.
    #[inline]
    pub fn data_ack(ack: Dsn, peer_sent_dsn64: bool) -> Self {
        if peer_sent_dsn64 {
            DsnField::Bits64(ack)
        } else {
            DsnField::Bits32(ack.low32())
        }
    }

    #[inline]
    fn len(self) -> usize {
        match self {
            DsnField::Bits32(_) => 4,
            DsnField::Bits64(_) => 8,
        }
    }

    #[inline(always)]
    fn read(b: &[u8], at: usize, wide: bool) -> Self {
        if wide {
            DsnField::Bits64(Dsn::new(be64(b, at)))
        } else {
            DsnField::Bits32(be32(b, at))
        }
    }

    #[inline]
    fn write(self, b: &mut [u8], at: usize) {
        match self {
            DsnField::Bits32(v) => set_be32(b, at, v),
            DsnField::Bits64(v) => set_be64(b, at, v.get()),
        }
    }
}

/// A DSS mapping: subflow bytes `[ssn, ssn + data_len)` carry data-level bytes
/// `[dsn, dsn + data_len)` (a DATA_FIN counts one byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// Data sequence number of the first mapped byte.
    pub dsn: DsnField,
    /// Subflow sequence number relative to the subflow's initial sequence number.
    pub ssn: u32,
    /// Data-level length; 0 is the infinite mapping.
    pub data_len: u16,
    /// DSS checksum, when checksums are in use.
    pub checksum: Option<u16>,
}

impl Mapping {
    /// A mapping in Linux's form (64-bit DSN).
    #[inline]
    pub fn new(dsn: Dsn, ssn: u32, data_len: u16, checksum: Option<u16>) -> Self {
        Mapping {
            dsn: DsnField::Bits64(dsn),
            ssn,
            data_len,
            checksum,
        }
    }

    #[inline]
    fn len(&self) -> usize {
        self.dsn.len() + MAP_TAIL_LEN + self.checksum.map_or(0, |_| CHECKSUM_LEN)
    }
}

/// A DSS option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dss {
    /// Cumulative DATA_ACK.
    pub data_ack: Option<DsnField>,
    /// Mapping.
    pub mapping: Option<Mapping>,
    /// DATA_FIN: the last byte of the mapping is the data-level FIN.
    pub data_fin: bool,
}

impl Dss {
    /// A DSS that carries only a DATA_ACK.
    #[inline]
    pub fn ack(data_ack: DsnField) -> Self {
        Dss {
            data_ack: Some(data_ack),
            mapping: None,
            data_fin: false,
        }
    }

    /// The DATA_FIN-only form Linux sends when no payload is mapped: 64-bit DSN of the
    /// DATA_FIN, subflow sequence 0, length 1.
    #[inline]
    pub fn data_fin_only(fin_dsn: Dsn, data_ack: Option<DsnField>, checksum: Option<u16>) -> Self {
        Dss {
            data_ack,
            mapping: Some(Mapping::new(fin_dsn, 0, 1, checksum)),
            data_fin: true,
        }
    }

    /// Parses a whole option (at least 4 bytes, its length byte equal to `opt.len()`).
    ///
    /// The length must equal what the flags announce, plus 2 for a checksum when a
    /// mapping is present. (Linux also takes 2 trailing bytes on a DSS without mapping
    /// and ignores them; mpgw refuses that form, which no implementation sends.)
    #[inline(always)]
    pub(super) fn parse(opt: &[u8]) -> Result<Self, MptcpOptError> {
        let flags = opt[3] & FLAG_MASK;
        let has_ack = flags & FLAG_ACK != 0;
        let ack64 = flags & FLAG_ACK64 != 0;
        let has_map = flags & FLAG_MAP != 0;
        let dsn64 = flags & FLAG_DSN64 != 0;
        let ack_len = match (has_ack, ack64) {
            (false, _) => 0,
            (true, false) => 4,
            (true, true) => 8,
        };
        let map_len = match (has_map, dsn64) {
            (false, _) => 0,
            (true, false) => 4 + MAP_TAIL_LEN,
            (true, true) => 8 + MAP_TAIL_LEN,
        };
        let expected = BASE_LEN + ack_len + map_len;
        let with_checksum = has_map && opt.len() == expected + CHECKSUM_LEN;
        if opt.len() != expected && !with_checksum {
            return Err(MptcpOptError::BadLength);
        }
        // Plain branches rather than closures: this is the hottest option parse.
        let data_ack = if has_ack {
            Some(DsnField::read(opt, BASE_LEN, ack64))
        } else {
            None
        };
        let mapping = if has_map {
            let at = BASE_LEN + ack_len;
            let tail = at + map_len - MAP_TAIL_LEN;
            Some(Mapping {
                dsn: DsnField::read(opt, at, dsn64),
                ssn: be32(opt, tail),
                data_len: be16(opt, tail + 4),
                checksum: if with_checksum {
                    Some(be16(opt, expected))
                } else {
                    None
                },
            })
        } else {
            None
        };
        Ok(Dss {
            data_ack,
            mapping,
            data_fin: flags & FLAG_DATA_FIN != 0,
        })
    }

    /// Option length.
    pub(super) fn len(&self) -> usize {
        BASE_LEN + self.data_ack.map_or(0, DsnField::len) + self.mapping.map_or(0, |m| m.len())
    }

    /// Writes everything after kind and length into `b` (exactly `len()` bytes).
    pub(super) fn emit_body(&self, b: &mut [u8]) {
        let mut flags = if self.data_fin { FLAG_DATA_FIN } else { 0 };
        let mut at = BASE_LEN;
        if let Some(ack) = self.data_ack {
            flags |= FLAG_ACK;
            if let DsnField::Bits64(_) = ack {
                flags |= FLAG_ACK64;
            }
            ack.write(b, at);
            at += ack.len();
        }
        if let Some(m) = self.mapping {
            flags |= FLAG_MAP;
            if let DsnField::Bits64(_) = m.dsn {
                flags |= FLAG_DSN64;
            }
            m.dsn.write(b, at);
            at += m.dsn.len();
            set_be32(b, at, m.ssn);
            set_be16(b, at + 4, m.data_len);
            if let Some(c) = m.checksum {
                set_be16(b, at + 6, c);
            }
        }
        b[2] = subtype::DSS << 4;
        b[3] = flags;
    }
}
