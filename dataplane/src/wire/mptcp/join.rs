//! MP_JOIN (RFC 8684 §3.2).

use super::{subtype, MptcpOptError};
use crate::wire::field::{array, be32, be64, set_be32, set_be64};

const LEN_SYN: usize = 12;
const LEN_SYNACK: usize = 16;
const LEN_ACK: usize = 24;
const FLAG_BACKUP: u8 = 0x01;

/// An MP_JOIN option, by the segment that carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MpJoin {
    /// On the SYN (12 bytes).
    Syn {
        /// The sender asks for this subflow to be a backup.
        backup: bool,
        /// The sender's address id for the subflow's source address.
        addr_id: u8,
        /// The receiver's token.
        token: u32,
        /// The sender's random nonce.
        nonce: u32,
    },
    /// On the SYN/ACK (16 bytes).
    SynAck {
        /// The sender asks for this subflow to be a backup.
        backup: bool,
        /// The sender's address id.
        addr_id: u8,
        /// Leftmost 64 bits of the sender's HMAC.
        hmac: u64,
        /// The sender's random nonce.
        nonce: u32,
    },
    /// On the third ACK (24 bytes).
    Ack {
        /// Leftmost 160 bits of the sender's HMAC.
        hmac: [u8; 20],
    },
}

impl MpJoin {
    /// Parses a whole option (at least 4 bytes, its length byte equal to `opt.len()`);
    /// the variant follows from the length, reserved bits are ignored (as Linux does).
    #[inline(always)]
    pub(super) fn parse(opt: &[u8]) -> Result<Self, MptcpOptError> {
        let backup = opt[2] & FLAG_BACKUP != 0;
        Ok(match opt.len() {
            LEN_SYN => MpJoin::Syn {
                backup,
                addr_id: opt[3],
                token: be32(opt, 4),
                nonce: be32(opt, 8),
            },
            LEN_SYNACK => MpJoin::SynAck {
                backup,
                addr_id: opt[3],
                hmac: be64(opt, 4),
                nonce: be32(opt, 12),
            },
            LEN_ACK => MpJoin::Ack {
                hmac: array(opt, 4),
            },
            _ => return Err(MptcpOptError::BadLength),
        })
    }

    /// Option length.
    pub(super) fn len(&self) -> usize {
        match self {
            MpJoin::Syn { .. } => LEN_SYN,
            MpJoin::SynAck { .. } => LEN_SYNACK,
            MpJoin::Ack { .. } => LEN_ACK,
        }
    }

    /// Writes everything after kind and length into `b` (exactly `len()` bytes).
    pub(super) fn emit_body(&self, b: &mut [u8]) {
        let head = |backup: bool| subtype::MP_JOIN << 4 | if backup { FLAG_BACKUP } else { 0 };
        match *self {
            MpJoin::Syn {
                backup,
                addr_id,
                token,
                nonce,
            } => {
                b[2..4].copy_from_slice(&[head(backup), addr_id]);
                set_be32(b, 4, token);
                set_be32(b, 8, nonce);
            }
            MpJoin::SynAck {
                backup,
                addr_id,
                hmac,
                nonce,
            } => {
                b[2..4].copy_from_slice(&[head(backup), addr_id]);
                set_be64(b, 4, hmac);
                set_be32(b, 12, nonce);
            }
            MpJoin::Ack { hmac } => {
                b[2..4].copy_from_slice(&[head(false), 0]);
                b[4..24].copy_from_slice(&hmac);
            }
        }
    }
}
