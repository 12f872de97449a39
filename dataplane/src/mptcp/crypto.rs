//! MPTCP cryptography (RFC 8684 §3.1–§3.4): keys, tokens and IDSNs, the MP_JOIN and
//! ADD_ADDR HMACs, and the DSS checksum.
//!
//! Keys, nonces and messages are serialised big-endian. A connection's two HMAC keys
//! (`local ‖ remote` and `remote ‖ local`) are absorbed once into [`ConnKeys`], so each
//! HMAC afterwards costs two SHA-256 compressions over the message only.

use std::net::IpAddr;

use subtle::ConstantTimeEq;

use super::sha256::{digest, HmacKey};
use crate::seq::Dsn;
use crate::wire::checksum;
use crate::wire::mptcp::AddAddr;

/// Bytes of the MP_JOIN HMAC carried in the third ACK.
pub const JOIN_ACK_HMAC_LEN: usize = 20;

/// The token and IDSN derived from a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyIds {
    /// Most significant 32 bits of SHA-256(key): names the connection in MP_JOIN.
    pub token: u32,
    /// Least significant 64 bits of SHA-256(key): the initial data sequence number; the
    /// first data byte has DSN `idsn + 1`.
    pub idsn: Dsn,
}

/// Derives the token and IDSN of `key` (RFC 8684 §3.1).
#[inline]
pub fn derive(key: u64) -> KeyIds {
    let digest = digest(&key.to_be_bytes());
    let [a, b, c, d, ..] = digest;
    let mut idsn = [0u8; 8];
    idsn.copy_from_slice(&digest[24..]);
    KeyIds {
        token: u32::from_be_bytes([a, b, c, d]),
        idsn: Dsn::new(u64::from_be_bytes(idsn)),
    }
}

/// A new random key from the OS CSPRNG; never zero (as Linux). The caller retries when
/// the derived token is already in use.
#[inline]
pub fn generate_key() -> Result<u64, getrandom::Error> {
    loop {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b)?;
        let key = u64::from_be_bytes(b);
        if key != 0 {
            return Ok(key);
        }
    }
}

/// A per-worker generator of keys and MP_JOIN nonces: HMAC-SHA-256 over a counter,
/// keyed once from the OS CSPRNG. One system call per worker instead of one per key
/// keeps the join path free of syscalls; each HMAC yields four 64-bit values.
pub struct KeySource {
    /// The keyed PRF.
    prf: HmacKey,
    /// Blocks drawn so far.
    counter: u64,
    /// Values of the current block not handed out yet.
    pool: [u64; 4],
    /// How many of `pool` are left.
    left: usize,
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySource(..)")
    }
}

impl KeySource {
    /// A generator keyed from the OS CSPRNG.
    pub fn from_os() -> Result<Self, getrandom::Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)?;
        Ok(Self::from_seed(seed))
    }

    /// A generator keyed with `seed` (deterministic: for tests and simulations).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        KeySource {
            prf: HmacKey::new(&seed),
            counter: 0,
            pool: [0; 4],
            left: 0,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        if self.left == 0 {
            let out = self.prf.mac(&self.counter.to_be_bytes());
            self.counter = self.counter.wrapping_add(1);
            for (v, c) in self.pool.iter_mut().zip(out.chunks_exact(8)) {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                *v = u64::from_be_bytes(b);
            }
            self.left = 4;
        }
        self.left -= 1;
        self.pool[self.left]
    }

    /// A key: never zero.
    pub fn key(&mut self) -> u64 {
        loop {
            let k = self.next_u64();
            if k != 0 {
                return k;
            }
        }
    }

    /// A 32-bit MP_JOIN nonce.
    pub fn nonce(&mut self) -> u32 {
        self.next_u64() as u32
    }
}

/// The HMAC key states of one MPTCP connection, built once from both keys.
///
/// "Local" is this host, "remote" the peer; nonces are the local and remote MP_JOIN
/// random numbers of one subflow. The local HMAC is `HMAC(Klocal ‖ Kremote, …)`, the
/// one this host sends; the remote HMAC is `HMAC(Kremote ‖ Klocal, …)`, the one it
/// expects from the peer. Received HMACs are compared in constant time.
#[derive(Clone, Copy)]
pub struct ConnKeys {
    local_first: HmacKey,
    remote_first: HmacKey,
}

impl std::fmt::Debug for ConnKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnKeys(..)")
    }
}

impl ConnKeys {
    /// Precomputes the keyed states for `local_key` and `remote_key`.
    pub fn new(local_key: u64, remote_key: u64) -> Self {
        ConnKeys {
            local_first: keyed(local_key, remote_key),
            remote_first: keyed(remote_key, local_key),
        }
    }

    /// The full local HMAC of `msg`.
    #[inline]
    pub fn local_hmac(&self, msg: &[u8]) -> [u8; 32] {
        self.local_first.mac(msg)
    }

    /// The full remote HMAC of `msg`.
    #[inline]
    pub fn remote_hmac(&self, msg: &[u8]) -> [u8; 32] {
        self.remote_first.mac(msg)
    }

    /// The truncated HMAC a listener sends in its MP_JOIN SYN/ACK: leftmost 64 bits of
    /// `HMAC(Klocal ‖ Kremote, Rlocal ‖ Rremote)`.
    #[inline]
    pub fn synack_hmac(&self, local_nonce: u32, remote_nonce: u32) -> u64 {
        let h = self.local_hmac(&nonces(local_nonce, remote_nonce));
        let mut left = [0u8; 8];
        left.copy_from_slice(&h[..8]);
        u64::from_be_bytes(left)
    }

    /// True when a joiner received the right SYN/ACK HMAC from the listener.
    #[inline]
    pub fn verify_synack_hmac(&self, local_nonce: u32, remote_nonce: u32, received: u64) -> bool {
        let h = self.remote_hmac(&nonces(remote_nonce, local_nonce));
        h[..8].ct_eq(&received.to_be_bytes()).into()
    }

    /// The HMAC a joiner sends in its MP_JOIN third ACK: leftmost 160 bits of
    /// `HMAC(Klocal ‖ Kremote, Rlocal ‖ Rremote)`.
    #[inline]
    pub fn ack_hmac(&self, local_nonce: u32, remote_nonce: u32) -> [u8; JOIN_ACK_HMAC_LEN] {
        let h = self.local_hmac(&nonces(local_nonce, remote_nonce));
        let mut left = [0u8; JOIN_ACK_HMAC_LEN];
        left.copy_from_slice(&h[..JOIN_ACK_HMAC_LEN]);
        left
    }

    /// True when a listener received the right third-ACK HMAC from the joiner.
    #[inline]
    pub fn verify_ack_hmac(
        &self,
        local_nonce: u32,
        remote_nonce: u32,
        received: &[u8; JOIN_ACK_HMAC_LEN],
    ) -> bool {
        let h = self.remote_hmac(&nonces(remote_nonce, local_nonce));
        h[..JOIN_ACK_HMAC_LEN].ct_eq(received).into()
    }

    /// The truncated HMAC of an address this host announces: rightmost 64 bits of
    /// `HMAC(Klocal ‖ Kremote, id ‖ address ‖ port)`, port 0 when none is announced.
    #[inline]
    pub fn add_addr_hmac(&self, addr_id: u8, addr: IpAddr, port: Option<u16>) -> u64 {
        right64(&self.local_hmac(add_addr_msg(addr_id, addr, port).as_slice()))
    }

    /// True when a received announcement carries the peer's correct HMAC (false for an
    /// echo, which carries none).
    #[inline]
    pub fn verify_add_addr(&self, a: &AddAddr) -> bool {
        let Some(received) = a.hmac else {
            return false;
        };
        let h = self.remote_hmac(add_addr_msg(a.addr_id, a.addr, a.port).as_slice());
        h[24..].ct_eq(&received.to_be_bytes()).into()
    }
}

/// The HMAC key `k1 ‖ k2`.
fn keyed(k1: u64, k2: u64) -> HmacKey {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&k1.to_be_bytes());
    key[8..].copy_from_slice(&k2.to_be_bytes());
    HmacKey::new(&key)
}

/// `first ‖ second`, big-endian.
#[inline]
fn nonces(first: u32, second: u32) -> [u8; 8] {
    let mut m = [0u8; 8];
    m[..4].copy_from_slice(&first.to_be_bytes());
    m[4..].copy_from_slice(&second.to_be_bytes());
    m
}

/// The ADD_ADDR HMAC message `id ‖ address ‖ port` (at most 19 bytes).
#[inline]
fn add_addr_msg(addr_id: u8, addr: IpAddr, port: Option<u16>) -> AddrMsg {
    let mut m = AddrMsg {
        bytes: [0; 19],
        len: 0,
    };
    m.bytes[0] = addr_id;
    let n = match addr {
        IpAddr::V4(a) => {
            m.bytes[1..5].copy_from_slice(&a.octets());
            5
        }
        IpAddr::V6(a) => {
            m.bytes[1..17].copy_from_slice(&a.octets());
            17
        }
    };
    m.bytes[n..n + 2].copy_from_slice(&port.unwrap_or(0).to_be_bytes());
    m.len = n + 2;
    m
}

/// A short message built on the stack.
struct AddrMsg {
    bytes: [u8; 19],
    len: usize,
}

impl AddrMsg {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The rightmost 64 bits of a digest.
#[inline]
fn right64(h: &[u8; 32]) -> u64 {
    let mut r = [0u8; 8];
    r.copy_from_slice(&h[24..]);
    u64::from_be_bytes(r)
}

/// Sum of the DSS checksum pseudo-header: 64-bit DSN (always, even when the option
/// carries 32 bits), relative subflow sequence, data-level length, checksum field.
#[inline]
fn dss_pseudo_sum(dsn: Dsn, ssn: u32, data_len: u16, check: u16) -> u16 {
    let mut ph = [0u8; 16];
    ph[..8].copy_from_slice(&dsn.get().to_be_bytes());
    ph[8..12].copy_from_slice(&ssn.to_be_bytes());
    ph[12..14].copy_from_slice(&data_len.to_be_bytes());
    ph[14..].copy_from_slice(&check.to_be_bytes());
    checksum::sum(&ph)
}

/// The DSS checksum of a mapping (RFC 8684 §3.3.1), given the folded sum of its payload
/// (`checksum::sum` of the mapped bytes, pieces combined with `checksum::combine`).
/// `data_len` includes the DATA_FIN's byte.
#[inline]
pub fn dss_checksum(dsn: Dsn, ssn: u32, data_len: u16, payload_sum: u16) -> u16 {
    !checksum::combine(dss_pseudo_sum(dsn, ssn, data_len, 0), payload_sum)
}

/// True when `received` is the right DSS checksum for the mapping and payload sum.
#[inline]
pub fn dss_checksum_ok(dsn: Dsn, ssn: u32, data_len: u16, received: u16, payload_sum: u16) -> bool {
    checksum::combine(dss_pseudo_sum(dsn, ssn, data_len, received), payload_sum)
        == checksum::CORRECT_SUM
}
