//! ADD_ADDR and REMOVE_ADDR (RFC 8684 §3.4).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{subtype, MptcpOptError};
use crate::wire::field::{array, be16, be64, set_be16, set_be64};

const FLAG_ECHO: u8 = 0x01;
const HEADER_LEN: usize = 4;
const PORT_LEN: usize = 2;
const HMAC_LEN: usize = 8;
/// Most address ids one REMOVE_ADDR carries (Linux `MPTCP_RM_IDS_MAX`).
pub const MAX_REMOVE_IDS: usize = 8;
const REMOVE_BASE_LEN: usize = 3;

/// An ADD_ADDR option: an announcement (with HMAC) or its echo (without).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddAddr {
    /// The address id the sender gives the address.
    pub addr_id: u8,
    /// The announced address.
    pub addr: IpAddr,
    /// The port, when announced (otherwise the initial subflow's port applies).
    pub port: Option<u16>,
    /// Rightmost 64 bits of the HMAC; `None` for an echo (E flag set).
    pub hmac: Option<u64>,
}

impl AddAddr {
    /// True for an echo (the E flag).
    #[inline]
    pub fn is_echo(&self) -> bool {
        self.hmac.is_none()
    }

    /// The echo that acknowledges this announcement: same id, address and port, no HMAC.
    #[inline]
    pub fn echo(&self) -> Self {
        AddAddr {
            hmac: None,
            ..*self
        }
    }

    /// Parses a whole option (at least 4 bytes, its length byte equal to `opt.len()`);
    /// family, port and HMAC presence follow from the length and the E flag, as in Linux.
    #[inline(always)]
    pub(super) fn parse(opt: &[u8]) -> Result<Self, MptcpOptError> {
        let echo = opt[2] & FLAG_ECHO != 0;
        let hmac_len = if echo { 0 } else { HMAC_LEN };
        let (v6, with_port) = match opt.len().checked_sub(HEADER_LEN + hmac_len) {
            Some(4) => (false, false),
            Some(6) => (false, true),
            Some(16) => (true, false),
            Some(18) => (true, true),
            _ => return Err(MptcpOptError::BadLength),
        };
        let addr = if v6 {
            IpAddr::V6(Ipv6Addr::from(array::<16>(opt, HEADER_LEN)))
        } else {
            IpAddr::V4(Ipv4Addr::from(array::<4>(opt, HEADER_LEN)))
        };
        let after_addr = HEADER_LEN + if v6 { 16 } else { 4 };
        let port = with_port.then(|| be16(opt, after_addr));
        let hmac_at = after_addr + if with_port { PORT_LEN } else { 0 };
        Ok(AddAddr {
            addr_id: opt[3],
            addr,
            port,
            hmac: (!echo).then(|| be64(opt, hmac_at)),
        })
    }

    /// Option length.
    pub(super) fn len(&self) -> usize {
        let addr = match self.addr {
            IpAddr::V4(_) => 4,
            IpAddr::V6(_) => 16,
        };
        HEADER_LEN + addr + self.port.map_or(0, |_| PORT_LEN) + self.hmac.map_or(0, |_| HMAC_LEN)
    }

    /// Writes everything after kind and length into `b` (exactly `len()` bytes).
    pub(super) fn emit_body(&self, b: &mut [u8]) {
        b[2] = subtype::ADD_ADDR << 4 | if self.is_echo() { FLAG_ECHO } else { 0 };
        b[3] = self.addr_id;
        let mut at = HEADER_LEN;
        match self.addr {
            IpAddr::V4(a) => {
                b[at..at + 4].copy_from_slice(&a.octets());
                at += 4;
            }
            IpAddr::V6(a) => {
                b[at..at + 16].copy_from_slice(&a.octets());
                at += 16;
            }
        }
        if let Some(port) = self.port {
            set_be16(b, at, port);
            at += PORT_LEN;
        }
        if let Some(hmac) = self.hmac {
            set_be64(b, at, hmac);
        }
    }
}

/// A REMOVE_ADDR option: 1 to [`MAX_REMOVE_IDS`] address ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoveAddr {
    ids: [u8; MAX_REMOVE_IDS],
    count: u8,
}

impl RemoveAddr {
    /// The option removing `ids`; `None` unless there are 1 to [`MAX_REMOVE_IDS`].
    #[inline]
    pub fn new(ids: &[u8]) -> Option<Self> {
        if ids.is_empty() || ids.len() > MAX_REMOVE_IDS {
            return None;
        }
        let mut out = [0; MAX_REMOVE_IDS];
        out[..ids.len()].copy_from_slice(ids);
        Some(RemoveAddr {
            ids: out,
            // At most 8.
            count: ids.len() as u8,
        })
    }

    /// The address ids removed.
    #[inline]
    pub fn ids(&self) -> &[u8] {
        &self.ids[..usize::from(self.count)]
    }

    /// Parses a whole option (its length byte equal to `opt.len()`): 4 to 11 bytes.
    #[inline(always)]
    pub(super) fn parse(opt: &[u8]) -> Result<Self, MptcpOptError> {
        Self::new(&opt[REMOVE_BASE_LEN..]).ok_or(MptcpOptError::BadLength)
    }

    /// Option length.
    pub(super) fn len(&self) -> usize {
        REMOVE_BASE_LEN + usize::from(self.count)
    }

    /// Writes everything after kind and length into `b` (exactly `len()` bytes).
    pub(super) fn emit_body(&self, b: &mut [u8]) {
        b[2] = subtype::REMOVE_ADDR << 4;
        b[REMOVE_BASE_LEN..self.len()].copy_from_slice(self.ids());
    }
}
