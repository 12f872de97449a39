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

/// Where the fields of a DSS option lie, as its flags byte announces them.
#[derive(Clone, Copy)]
struct Layout {
    /// The flags byte, unassigned bits cleared.
    flags: u8,
    /// DATA_ACK bytes: 0, 4 or 8.
    ack_len: usize,
    /// Mapping bytes without checksum: 0, 10 or 14.
    map_len: usize,
    /// Option length without checksum.
    len: usize,
}

impl Layout {
    /// The layout of `opt`, a whole option of at least 4 bytes.
    #[inline(always)]
    fn of(opt: &[u8]) -> Self {
        Self::new(opt[3] & FLAG_MASK)
    }

    /// The layout `flags` announce.
    #[inline(always)]
    const fn new(flags: u8) -> Self {
        // Indexed by the A and a flags, then by M and m: a wide field counts only when
        // the field is present.
        const ACK_LEN: [usize; 4] = [0, 4, 0, 8];
        const MAP_LEN: [usize; 4] = [0, 4 + MAP_TAIL_LEN, 0, 8 + MAP_TAIL_LEN];
        let ack_len = ACK_LEN[(flags & (FLAG_ACK | FLAG_ACK64)) as usize];
        let map_len = MAP_LEN[((flags & (FLAG_MAP | FLAG_DSN64)) >> 2) as usize];
        Layout {
            flags,
            ack_len,
            map_len,
            len: BASE_LEN + ack_len + map_len,
        }
    }

    /// Offset of the checksum when `opt` carries a mapping with one.
    #[inline(always)]
    fn checksum_at(&self, opt: &[u8]) -> Option<usize> {
        (self.flags & FLAG_MAP != 0 && opt.len() == self.len + CHECKSUM_LEN).then_some(self.len)
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

    /// Checks a whole option (at least 4 bytes, its length byte equal to `opt.len()`).
    ///
    /// The length must equal what the flags announce, plus 2 for a checksum when a
    /// mapping is present. (Linux also takes 2 trailing bytes on a DSS without mapping
    /// and ignores them; mpgw refuses that form, which no implementation sends.)
    #[inline(always)]
    pub(super) fn check(opt: &[u8]) -> Result<(), MptcpOptError> {
        let l = Layout::of(opt);
        if opt.len() == l.len || l.checksum_at(opt).is_some() {
            Ok(())
        } else {
            Err(MptcpOptError::BadLength)
        }
    }

    /// Decodes an option [`Self::check`] accepted.
    #[inline(always)]
    pub(super) fn decode(opt: &[u8]) -> Self {
        // The forms Linux sends (DATA_ACK of either width, alone or with a 64-bit-DSN
        // mapping) are decoded from offsets known in advance, so their loads need not
        // wait for the flags byte; any other form from offsets the flags give.
        const ACK32: u8 = FLAG_ACK;
        const ACK64: u8 = FLAG_ACK | FLAG_ACK64;
        const ACK32_MAP64: u8 = ACK32 | FLAG_MAP | FLAG_DSN64;
        const ACK64_MAP64: u8 = ACK64 | FLAG_MAP | FLAG_DSN64;
        let flags = opt[3] & FLAG_MASK;
        let fin = flags & FLAG_DATA_FIN;
        match flags & !FLAG_DATA_FIN {
            ACK32 => Self::decode_as(opt, Layout::new(ACK32 | fin)),
            ACK64 => Self::decode_as(opt, Layout::new(ACK64 | fin)),
            ACK32_MAP64 => Self::decode_as(opt, Layout::new(ACK32_MAP64 | fin)),
            ACK64_MAP64 => Self::decode_as(opt, Layout::new(ACK64_MAP64 | fin)),
            _ => Self::decode_as(opt, Layout::new(flags)),
        }
    }

    /// Decodes an option [`Self::check`] accepted, its fields where `l` says.
    #[inline(always)]
    fn decode_as(opt: &[u8], l: Layout) -> Self {
        // Plain branches rather than closures: this is the hottest option parse.
        let data_ack = if l.flags & FLAG_ACK != 0 {
            Some(DsnField::read(opt, BASE_LEN, l.flags & FLAG_ACK64 != 0))
        } else {
            None
        };
        let mapping = if l.flags & FLAG_MAP != 0 {
            let at = BASE_LEN + l.ack_len;
            let tail = at + l.map_len - MAP_TAIL_LEN;
            Some(Mapping {
                dsn: DsnField::read(opt, at, l.flags & FLAG_DSN64 != 0),
                ssn: be32(opt, tail),
                data_len: be16(opt, tail + 4),
                checksum: l.checksum_at(opt).map(|at| be16(opt, at)),
            })
        } else {
            None
        };
        Dss {
            data_ack,
            mapping,
            data_fin: l.flags & FLAG_DATA_FIN != 0,
        }
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
