//! MP_CAPABLE (RFC 8684 §3.1).

use super::{subtype, MptcpOptError};
use crate::wire::field::{be16, be64, set_be16, set_be64};

/// The MPTCP version mpgw speaks.
pub const VERSION: u8 = 1;

const FLAG_CHECKSUM: u8 = 0x80;
const FLAG_EXTENSIBILITY: u8 = 0x40;
const FLAG_DENY_JOIN_ID0: u8 = 0x20;
const FLAG_HMAC_SHA256: u8 = 0x01;
/// Flags D..H: only H may be set.
const FLAG_ASSIGNED_MASK: u8 = 0x1f;

const LEN_SYN: usize = 4;
const LEN_SYNACK: usize = 12;
const LEN_ACK: usize = 20;
const LEN_ACK_DATA: usize = 22;
const LEN_ACK_DATA_CSUM: usize = 24;

/// An MP_CAPABLE option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MpCapable {
    /// Version: 1, or higher on a SYN (Linux tolerates future versions there).
    pub version: u8,
    /// Flag A: the sender requires DSS checksums.
    pub checksum_required: bool,
    /// Flag C: no new subflows to this packet's source address and port.
    pub deny_join_id0: bool,
    /// Which of the four segments this option is for.
    pub variant: MpcVariant,
}

/// The MP_CAPABLE variants, by the segment that carries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MpcVariant {
    /// On the SYN: no key (4 bytes).
    Syn,
    /// On the SYN/ACK: the listener's key (12 bytes).
    SynAck {
        /// The sender's (listener's) key.
        sender_key: u64,
    },
    /// On the third ACK: both keys (20 bytes).
    Ack {
        /// The sender's (initiator's) key.
        sender_key: u64,
        /// The receiver's (listener's) key.
        receiver_key: u64,
    },
    /// On the first data segment(s): both keys and the mapping length, with an
    /// optional DSS checksum (22 or 24 bytes). The mapping is implicit: DSN = IDSN + 1,
    /// subflow sequence 1.
    AckData {
        /// The sender's key.
        sender_key: u64,
        /// The receiver's key.
        receiver_key: u64,
        /// Data-level length.
        data_len: u16,
        /// DSS checksum, when checksums are in use.
        checksum: Option<u16>,
    },
}

impl MpCapable {
    /// A version-1 MP_CAPABLE (what mpgw sends).
    #[inline]
    pub const fn new(variant: MpcVariant, checksum_required: bool, deny_join_id0: bool) -> Self {
        MpCapable {
            version: VERSION,
            checksum_required,
            deny_join_id0,
            variant,
        }
    }

    /// Parses a whole option (at least 4 bytes, its length byte equal to `opt.len()`).
    #[inline(always)]
    pub(super) fn parse(opt: &[u8]) -> Result<Self, MptcpOptError> {
        let variant = match opt.len() {
            LEN_SYN => MpcVariant::Syn,
            LEN_SYNACK => MpcVariant::SynAck {
                sender_key: be64(opt, 4),
            },
            LEN_ACK => MpcVariant::Ack {
                sender_key: be64(opt, 4),
                receiver_key: be64(opt, 12),
            },
            LEN_ACK_DATA | LEN_ACK_DATA_CSUM => MpcVariant::AckData {
                sender_key: be64(opt, 4),
                receiver_key: be64(opt, 12),
                data_len: be16(opt, 20),
                checksum: (opt.len() == LEN_ACK_DATA_CSUM).then(|| be16(opt, 22)),
            },
            _ => return Err(MptcpOptError::BadLength),
        };
        let version = opt[2] & 0x0f;
        let version_ok = match variant {
            MpcVariant::Syn => version >= VERSION,
            _ => version == VERSION,
        };
        if !version_ok {
            return Err(MptcpOptError::BadVersion);
        }
        let flags = opt[3];
        if flags & FLAG_ASSIGNED_MASK != FLAG_HMAC_SHA256 || flags & FLAG_EXTENSIBILITY != 0 {
            return Err(MptcpOptError::BadFlags);
        }
        Ok(MpCapable {
            version,
            checksum_required: flags & FLAG_CHECKSUM != 0,
            deny_join_id0: flags & FLAG_DENY_JOIN_ID0 != 0,
            variant,
        })
    }

    /// Option length.
    pub(super) fn len(&self) -> usize {
        match self.variant {
            MpcVariant::Syn => LEN_SYN,
            MpcVariant::SynAck { .. } => LEN_SYNACK,
            MpcVariant::Ack { .. } => LEN_ACK,
            MpcVariant::AckData { checksum: None, .. } => LEN_ACK_DATA,
            MpcVariant::AckData {
                checksum: Some(_), ..
            } => LEN_ACK_DATA_CSUM,
        }
    }

    /// Writes everything after kind and length into `b` (exactly `len()` bytes).
    pub(super) fn emit_body(&self, b: &mut [u8]) {
        b[2] = subtype::MP_CAPABLE << 4 | (self.version & 0x0f);
        b[3] = FLAG_HMAC_SHA256
            | if self.checksum_required {
                FLAG_CHECKSUM
            } else {
                0
            }
            | if self.deny_join_id0 {
                FLAG_DENY_JOIN_ID0
            } else {
                0
            };
        match self.variant {
            MpcVariant::Syn => {}
            MpcVariant::SynAck { sender_key } => set_be64(b, 4, sender_key),
            MpcVariant::Ack {
                sender_key,
                receiver_key,
            } => {
                set_be64(b, 4, sender_key);
                set_be64(b, 12, receiver_key);
            }
            MpcVariant::AckData {
                sender_key,
                receiver_key,
                data_len,
                checksum,
            } => {
                set_be64(b, 4, sender_key);
                set_be64(b, 12, receiver_key);
                set_be16(b, 20, data_len);
                if let Some(c) = checksum {
                    set_be16(b, 22, c);
                }
            }
        }
    }
}
