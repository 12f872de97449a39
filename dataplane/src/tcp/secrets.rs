//! Keyed hashes over the 4-tuple: initial sequence numbers (RFC 6528), per-connection
//! timestamp offsets (RFC 7323 §5.4) and the SYN-cookie MACs.
//!
//! The keyed function is SipHash-2-4 with a 128-bit secret, truncated to 32 bits, as
//! Linux's `secure_tcp_seq`, `secure_tcp_ts_off` and SYN cookies: a pseudorandom
//! function of the tuple that an attacker without the key cannot predict (RFC 6528
//! asks no more), at a fraction of the HMAC-SHA-256 used before (two SHA-256
//! compressions and the hasher's buffering per hash; every subflow needs two hashes).

use super::segment::FourTuple;
use super::time::Instant;
use crate::seq::TcpSeq;
use sha2::{Digest, Sha256};
use siphasher::sip::SipHasher24;
use std::net::SocketAddr;

/// Longest hashed message: purpose, two IPv6 addresses and ports, `extra`.
const MSG_MAX: usize = 1 + 2 * (16 + 2) + 4;

/// What a keyed hash is for (domain separation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Purpose {
    /// RFC 6528's F().
    Isn = 1,
    /// Timestamp offset.
    Timestamp = 2,
    /// First SYN-cookie hash (time-independent).
    CookieTuple = 3,
    /// Second SYN-cookie hash (keyed by the time counter).
    CookieCount = 4,
    /// Seed of the connection table's hash function.
    TableSeed = 5,
}

/// A per-process secret key.
#[derive(Clone)]
pub struct Secrets {
    /// SipHash keyed once.
    sip: SipHasher24,
}

impl Secrets {
    /// Secrets from a 32-byte key (SipHash takes the first 128 bits of its SHA-256).
    pub fn new(key: [u8; 32]) -> Self {
        let digest = Sha256::digest(key);
        let mut k = [0u8; 16];
        k.copy_from_slice(&digest[..16]);
        Secrets {
            sip: SipHasher24::new_with_key(&k),
        }
    }

    /// Secrets from the operating system's random source.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(Self::new(key))
    }

    /// The 32-bit keyed hash of `tuple` and `extra` for `purpose`.
    #[inline]
    pub fn hash(&self, purpose: Purpose, tuple: &FourTuple, extra: u32) -> u32 {
        let mut msg = [0u8; MSG_MAX];
        msg[0] = purpose as u8;
        let mut n = 1;
        for a in [tuple.local, tuple.remote] {
            let len = match a {
                SocketAddr::V4(v) => {
                    msg[n..n + 4].copy_from_slice(&v.ip().octets());
                    4
                }
                SocketAddr::V6(v) => {
                    msg[n..n + 16].copy_from_slice(&v.ip().octets());
                    16
                }
            };
            n += len;
            msg[n..n + 2].copy_from_slice(&a.port().to_be_bytes());
            n += 2;
        }
        msg[n..n + 4].copy_from_slice(&extra.to_be_bytes());
        n += 4;
        let h = self.sip.hash(&msg[..n]);
        (h ^ h >> 32) as u32
    }

    /// RFC 6528: ISN = M + F(4-tuple, key), M a 4 µs clock.
    pub fn isn(&self, tuple: &FourTuple, now: Instant) -> TcpSeq {
        let m = (now.as_nanos() / 4000) as u32;
        TcpSeq::new(m.wrapping_add(self.hash(Purpose::Isn, tuple, 0)))
    }

    /// A 64-bit seed for the connection table's hash function.
    pub fn table_seed(&self) -> u64 {
        let t = FourTuple {
            local: SocketAddr::from(([0u8; 4], 0)),
            remote: SocketAddr::from(([0u8; 4], 0)),
        };
        let hi = self.hash(Purpose::TableSeed, &t, 0);
        let lo = self.hash(Purpose::TableSeed, &t, 1);
        u64::from(hi) << 32 | u64::from(lo)
    }

    /// The connection's timestamp clock offset: keyed on the address pair only (as
    /// Linux's `secure_tcp_ts_off`), so the timestamps of successive connections
    /// between two hosts keep rising and a peer whose old connection on the same ports
    /// is still in TIME-WAIT accepts the new SYN (RFC 6191). Random per port, half of
    /// the reused ports would be refused.
    pub fn ts_offset(&self, tuple: &FourTuple) -> u32 {
        let pair = FourTuple {
            local: SocketAddr::new(tuple.local.ip(), 0),
            remote: SocketAddr::new(tuple.remote.ip(), 0),
        };
        self.hash(Purpose::Timestamp, &pair, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_offsets_are_per_address_pair() {
        let s = Secrets::new([7; 32]);
        let t = |l: &str, r: &str| FourTuple {
            local: l.parse().unwrap_or(SocketAddr::from(([0; 4], 0))),
            remote: r.parse().unwrap_or(SocketAddr::from(([0; 4], 0))),
        };
        let a = s.ts_offset(&t("192.0.2.1:32768", "203.0.113.2:80"));
        assert_eq!(a, s.ts_offset(&t("192.0.2.1:40000", "203.0.113.2:443")));
        assert_ne!(a, s.ts_offset(&t("192.0.2.1:32768", "203.0.113.3:80")));
    }

    #[test]
    fn isn_depends_on_tuple_and_time() {
        let s = Secrets::new([7; 32]);
        let t = FourTuple {
            local: "192.0.2.1:80"
                .parse()
                .unwrap_or(SocketAddr::from(([0; 4], 0))),
            remote: "192.0.2.2:1234"
                .parse()
                .unwrap_or(SocketAddr::from(([0; 4], 0))),
        };
        let mut u = t;
        u.remote.set_port(1235);
        let now = Instant::from_millis(1);
        assert_ne!(s.isn(&t, now), s.isn(&u, now));
        assert_eq!(
            s.isn(&t, now) + 250,
            s.isn(&t, Instant::from_nanos(1_000_000 + 1_000_000))
        );
        assert_ne!(Secrets::new([8; 32]).isn(&t, now), s.isn(&t, now));
    }
}
