//! MPTCP v1 options (RFC 8684, TCP option kind 30): every subtype and variant Linux
//! accepts, parsed as strictly as Linux parses them and emitted in the forms Linux emits.
//!
//! [`MptcpOption::parse`] takes one whole option (kind and length bytes included, as
//! [`crate::wire::tcp::TcpOption::Mptcp`] yields it) and checks the exact length of its
//! subtype and variant; an option Linux would ignore is an [`MptcpOptError`], which the
//! caller counts and otherwise ignores. Which variant is legal on which segment (SYN,
//! SYN/ACK, RST, with payload) is [`MptcpOption::valid_on`]; which subtypes may share a
//! segment is [`may_share`].

mod addr;
mod capable;
mod dss;
mod join;

pub use addr::{AddAddr, RemoveAddr, MAX_REMOVE_IDS};
pub use capable::{MpCapable, MpcVariant};
pub use dss::{DsnField, Dss, Mapping};
pub use join::MpJoin;

use crate::seq::Dsn;
use crate::wire::field::{be64, set_be64};
use crate::wire::tcp::TcpFlags;
use crate::wire::WireError;

/// TCP option kind of MPTCP.
pub const KIND: u8 = 30;
/// The NOP option byte Linux pads MPTCP options with.
const NOP: u8 = 1;

/// MPTCP option subtypes (the high nibble of the third byte).
pub mod subtype {
    /// MP_CAPABLE.
    pub const MP_CAPABLE: u8 = 0x0;
    /// MP_JOIN.
    pub const MP_JOIN: u8 = 0x1;
    /// Data Sequence Signal.
    pub const DSS: u8 = 0x2;
    /// ADD_ADDR.
    pub const ADD_ADDR: u8 = 0x3;
    /// REMOVE_ADDR.
    pub const REMOVE_ADDR: u8 = 0x4;
    /// MP_PRIO.
    pub const MP_PRIO: u8 = 0x5;
    /// MP_FAIL.
    pub const MP_FAIL: u8 = 0x6;
    /// MP_FASTCLOSE.
    pub const MP_FASTCLOSE: u8 = 0x7;
    /// MP_TCPRST.
    pub const MP_TCPRST: u8 = 0x8;
}

/// MP_TCPRST reason codes (IANA).
pub mod reset_reason {
    /// Unspecified error.
    pub const UNSPECIFIED: u8 = 0x00;
    /// MPTCP-specific error (bad token, bad HMAC, invalid mapping).
    pub const MPTCP_ERROR: u8 = 0x01;
    /// Lack of resources.
    pub const NO_RESOURCES: u8 = 0x02;
    /// Administratively prohibited.
    pub const PROHIBITED: u8 = 0x03;
    /// Too much outstanding data.
    pub const TOO_MUCH_DATA: u8 = 0x04;
    /// Unacceptable performance.
    pub const BAD_PERFORMANCE: u8 = 0x05;
    /// Middlebox interference.
    pub const MIDDLEBOX: u8 = 0x06;
}

/// Why an MPTCP option was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum MptcpOptError {
    /// The buffer ends before the option's length byte or before the length it claims.
    #[error("truncated MPTCP option")]
    Truncated,
    /// The option kind is not 30.
    #[error("not an MPTCP option")]
    NotMptcp,
    /// The length is not one Linux accepts for this subtype and variant.
    #[error("bad MPTCP option length")]
    BadLength,
    /// MP_CAPABLE with an unsupported version.
    #[error("unsupported MPTCP version")]
    BadVersion,
    /// MP_CAPABLE flags Linux refuses (H clear, B set, or unassigned bits set).
    #[error("bad MP_CAPABLE flags")]
    BadFlags,
    /// A subtype Linux does not know (including 0xf, private use); ignored.
    #[error("unknown MPTCP subtype")]
    UnknownSubtype(u8),
}

/// One MPTCP option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MptcpOption {
    /// MP_CAPABLE (subtype 0).
    MpCapable(MpCapable),
    /// MP_JOIN (subtype 1).
    MpJoin(MpJoin),
    /// Data Sequence Signal (subtype 2).
    Dss(Dss),
    /// ADD_ADDR (subtype 3).
    AddAddr(AddAddr),
    /// REMOVE_ADDR (subtype 4).
    RemoveAddr(RemoveAddr),
    /// MP_PRIO (subtype 5): the sender asks to be treated as backup on this subflow.
    MpPrio {
        /// Backup flag.
        backup: bool,
    },
    /// MP_FAIL (subtype 6): the DSN where a checksum failure was detected.
    MpFail {
        /// Start of the failed mapping.
        dsn: Dsn,
    },
    /// MP_FASTCLOSE (subtype 7): abortive close, carrying the receiver's key.
    MpFastclose {
        /// The key of the receiver of this option.
        receiver_key: u64,
    },
    /// MP_TCPRST (subtype 8): why a subflow is reset.
    MpTcpRst {
        /// The U, V, W, T flag nibble; T (0x1) marks the error transient.
        flags: u8,
        /// One of [`reset_reason`].
        reason: u8,
    },
}

/// A received MPTCP option sorted by [`MptcpOption::peek`].
pub(crate) enum Peeked<'a> {
    /// A DSS that passed every check, not yet decoded.
    Dss(DssBytes<'a>),
    /// Any other subtype, decoded.
    Other(MptcpOption),
}

/// The bytes of a received DSS option that passed every check, not yet decoded (a walk
/// over a segment's options keeps this rather than moving a decoded [`Dss`] around).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DssBytes<'a>(&'a [u8]);

impl DssBytes<'_> {
    /// The decoded option.
    #[inline(always)]
    pub fn decode(self) -> Dss {
        Dss::decode(self.0)
    }
}

/// Exact lengths of the fixed-length subtypes.
const PRIO_LEN: usize = 3;
const FAIL_LEN: usize = 12;
const FASTCLOSE_LEN: usize = 12;
const TCPRST_LEN: usize = 4;

impl MptcpOption {
    /// Parses one MPTCP option: `opt` starts at the kind byte and may extend past the
    /// option (only the length byte's worth is read).
    #[inline(always)]
    pub fn parse(opt: &[u8]) -> Result<Self, MptcpOptError> {
        Ok(match Self::peek(opt)? {
            Peeked::Dss(dss) => MptcpOption::Dss(dss.decode()),
            Peeked::Other(o) => o,
        })
    }

    /// [`Self::parse`] for a walk over a segment's options: a DSS, the option on nearly
    /// every data segment, is checked inline and left undecoded; every other subtype is
    /// parsed out of line.
    #[inline(always)]
    pub(crate) fn peek(opt: &[u8]) -> Result<Peeked<'_>, MptcpOptError> {
        let [kind, len, ..] = *opt else {
            return Err(MptcpOptError::Truncated);
        };
        if kind != KIND {
            return Err(MptcpOptError::NotMptcp);
        }
        let opt = opt
            .get(..usize::from(len))
            .ok_or(MptcpOptError::Truncated)?;
        match *opt {
            [_, _, sub, _, ..] if sub >> 4 == subtype::DSS => {
                Dss::check(opt)?;
                Ok(Peeked::Dss(DssBytes(opt)))
            }
            _ => Self::parse_body(opt).map(Peeked::Other),
        }
    }

    /// Decodes an option of any subtype but a DSS of 4 bytes or more, its length byte
    /// equal to `opt.len()`.
    #[inline(never)]
    fn parse_body(opt: &[u8]) -> Result<Self, MptcpOptError> {
        let Some(&sub) = opt.get(2) else {
            return Err(MptcpOptError::BadLength);
        };
        let exact = |want: usize| {
            if opt.len() == want {
                Ok(())
            } else {
                Err(MptcpOptError::BadLength)
            }
        };
        let sub_type = sub >> 4;
        if sub_type == subtype::MP_PRIO {
            exact(PRIO_LEN)?;
            return Ok(MptcpOption::MpPrio {
                backup: sub & 0x01 != 0,
            });
        }
        // Every other known subtype is at least 4 bytes; the parsers below rely on it.
        if opt.len() < 4 && sub_type <= subtype::MP_TCPRST {
            return Err(MptcpOptError::BadLength);
        }
        Ok(match sub_type {
            subtype::MP_CAPABLE => MptcpOption::MpCapable(MpCapable::parse(opt)?),
            subtype::MP_JOIN => MptcpOption::MpJoin(MpJoin::parse(opt)?),
            // `peek` takes every DSS of 4 bytes or more; a shorter one was refused above.
            subtype::DSS => return Err(MptcpOptError::BadLength),
            subtype::ADD_ADDR => MptcpOption::AddAddr(AddAddr::parse(opt)?),
            subtype::REMOVE_ADDR => MptcpOption::RemoveAddr(RemoveAddr::parse(opt)?),
            subtype::MP_FAIL => {
                exact(FAIL_LEN)?;
                MptcpOption::MpFail {
                    dsn: Dsn::new(be64(opt, 4)),
                }
            }
            subtype::MP_FASTCLOSE => {
                exact(FASTCLOSE_LEN)?;
                MptcpOption::MpFastclose {
                    receiver_key: be64(opt, 4),
                }
            }
            subtype::MP_TCPRST => {
                exact(TCPRST_LEN)?;
                MptcpOption::MpTcpRst {
                    flags: sub & 0x0f,
                    reason: opt[3],
                }
            }
            other => return Err(MptcpOptError::UnknownSubtype(other)),
        })
    }

    /// The subtype number.
    #[inline]
    pub fn subtype(&self) -> u8 {
        match self {
            MptcpOption::MpCapable(_) => subtype::MP_CAPABLE,
            MptcpOption::MpJoin(_) => subtype::MP_JOIN,
            MptcpOption::Dss(_) => subtype::DSS,
            MptcpOption::AddAddr(_) => subtype::ADD_ADDR,
            MptcpOption::RemoveAddr(_) => subtype::REMOVE_ADDR,
            MptcpOption::MpPrio { .. } => subtype::MP_PRIO,
            MptcpOption::MpFail { .. } => subtype::MP_FAIL,
            MptcpOption::MpFastclose { .. } => subtype::MP_FASTCLOSE,
            MptcpOption::MpTcpRst { .. } => subtype::MP_TCPRST,
        }
    }

    /// The option's length byte: bytes [`Self::emit`] writes.
    #[inline]
    pub fn len(&self) -> usize {
        match self {
            MptcpOption::MpCapable(o) => o.len(),
            MptcpOption::MpJoin(o) => o.len(),
            MptcpOption::Dss(o) => o.len(),
            MptcpOption::AddAddr(o) => o.len(),
            MptcpOption::RemoveAddr(o) => o.len(),
            MptcpOption::MpPrio { .. } => PRIO_LEN,
            MptcpOption::MpFail { .. } => FAIL_LEN,
            MptcpOption::MpFastclose { .. } => FASTCLOSE_LEN,
            MptcpOption::MpTcpRst { .. } => TCPRST_LEN,
        }
    }

    /// Always false: an option is never empty (here for API symmetry with `len`).
    #[inline]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Length with Linux's trailing NOP padding to a multiple of 4: bytes
    /// [`Self::emit_aligned`] writes and the option space it takes.
    #[inline]
    pub fn aligned_len(&self) -> usize {
        self.len().next_multiple_of(4)
    }

    /// Writes the option (exactly [`Self::len`] bytes) at the start of `buf`.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.len();
        let b = buf.get_mut(..len).ok_or(WireError::NoRoom)?;
        // Every length is at most 30, so it fits the length byte.
        b[0] = KIND;
        b[1] = len as u8;
        match self {
            MptcpOption::MpCapable(o) => o.emit_body(b),
            MptcpOption::MpJoin(o) => o.emit_body(b),
            MptcpOption::Dss(o) => o.emit_body(b),
            MptcpOption::AddAddr(o) => o.emit_body(b),
            MptcpOption::RemoveAddr(o) => o.emit_body(b),
            MptcpOption::MpPrio { backup } => {
                b[2] = subtype::MP_PRIO << 4 | u8::from(*backup);
            }
            MptcpOption::MpFail { dsn } => {
                b[2..4].copy_from_slice(&[subtype::MP_FAIL << 4, 0]);
                set_be64(b, 4, dsn.get());
            }
            MptcpOption::MpFastclose { receiver_key } => {
                b[2..4].copy_from_slice(&[subtype::MP_FASTCLOSE << 4, 0]);
                set_be64(b, 4, *receiver_key);
            }
            MptcpOption::MpTcpRst { flags, reason } => {
                b[2] = subtype::MP_TCPRST << 4 | (flags & 0x0f);
                b[3] = *reason;
            }
        }
        Ok(len)
    }

    /// Writes the option followed by NOPs to a multiple of 4 bytes, as Linux sends it.
    #[inline]
    pub fn emit_aligned(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let aligned = self.aligned_len();
        let b = buf.get_mut(..aligned).ok_or(WireError::NoRoom)?;
        let len = self.emit(b)?;
        b[len..].fill(NOP);
        Ok(aligned)
    }

    /// True when this option may appear on a segment with `flags` carrying
    /// `payload_len` bytes, as Linux decides: MP_CAPABLE's variant must match the
    /// segment (SYN, SYN/ACK, ACK without data, data); MP_JOIN's SYN and SYN/ACK forms
    /// belong on those segments, its ACK form on a non-SYN; MP_TCPRST only on a RST;
    /// every other option only on a non-SYN.
    #[inline]
    pub fn valid_on(&self, flags: TcpFlags, payload_len: usize) -> bool {
        let syn = flags.contains(TcpFlags::SYN);
        let ack = flags.contains(TcpFlags::ACK);
        match self {
            MptcpOption::MpCapable(o) => match o.variant {
                MpcVariant::Syn => syn && !ack,
                MpcVariant::SynAck { .. } => syn && ack,
                MpcVariant::Ack { .. } => !syn && payload_len == 0,
                MpcVariant::AckData { .. } => !syn && payload_len > 0,
            },
            MptcpOption::MpJoin(MpJoin::Syn { .. }) => syn && !ack,
            MptcpOption::MpJoin(MpJoin::SynAck { .. }) => syn && ack,
            MptcpOption::MpTcpRst { .. } => flags.contains(TcpFlags::RST),
            _ => !syn,
        }
    }
}

/// True when options of subtypes `a` and `b` may go on the same segment, per Linux's
/// combination table (options.c `mptcp_write_options`): REMOVE_ADDR with MP_CAPABLE,
/// MP_JOIN or DSS; MP_PRIO with MP_JOIN, DSS, ADD_ADDR or REMOVE_ADDR; MP_FAIL with DSS;
/// MP_TCPRST with MP_FAIL or MP_FASTCLOSE. Pairs Linux "could but prefers not" to
/// combine (ADD_ADDR with DSS or REMOVE_ADDR) are refused, as Linux sends ADD_ADDR on
/// its own pure ACK. An option never shares a segment with one of its own subtype.
#[inline]
pub fn may_share(a: u8, b: u8) -> bool {
    use subtype::*;
    let pair = |x, y| (a == x && b == y) || (a == y && b == x);
    pair(REMOVE_ADDR, MP_CAPABLE)
        || pair(REMOVE_ADDR, MP_JOIN)
        || pair(REMOVE_ADDR, DSS)
        || pair(MP_PRIO, MP_JOIN)
        || pair(MP_PRIO, DSS)
        || pair(MP_PRIO, ADD_ADDR)
        || pair(MP_PRIO, REMOVE_ADDR)
        || pair(MP_FAIL, DSS)
        || pair(MP_TCPRST, MP_FAIL)
        || pair(MP_TCPRST, MP_FASTCLOSE)
}
