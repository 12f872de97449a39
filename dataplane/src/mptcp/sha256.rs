//! SHA-256 and HMAC-SHA-256 (RFC 2104) straight on sha2's block compression, for
//! short messages hashed many times under one key: a key's inner and outer states are
//! computed once ([`HmacKey::new`], two compressions), after which the HMAC of a
//! message shorter than 56 bytes costs exactly two more compressions, with no
//! buffering or copying of the hasher state beyond its 32 bytes.

use sha2::compress256;
use sha2::digest::generic_array::{typenum::U64, GenericArray};

/// The SHA-256 block length, bytes.
const BLOCK: usize = 64;
/// Bytes of the length field that ends the padding.
const LEN_FIELD: usize = 8;
/// SHA-256's initial hash value (FIPS 180-4 §5.3.3).
const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// Compresses every whole block of `blocks` (a multiple of [`BLOCK`] long) into `state`.
#[inline]
fn compress(state: &mut [u32; 8], blocks: &[u8]) {
    for b in blocks.chunks_exact(BLOCK) {
        let block: &GenericArray<u8, U64> = GenericArray::from_slice(b);
        compress256(state, std::slice::from_ref(block));
    }
}

/// The digest of `msg` hashed on from `state`, which has absorbed `prefix_blocks`
/// whole blocks already.
#[inline]
fn finish(mut state: [u32; 8], prefix_blocks: u64, msg: &[u8]) -> [u8; 32] {
    let whole = msg.len() - msg.len() % BLOCK;
    compress(&mut state, &msg[..whole]);
    let rest = &msg[whole..];
    let bits = (prefix_blocks * BLOCK as u64 + msg.len() as u64) * 8;
    let mut tail = [0u8; 2 * BLOCK];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let end = if rest.len() < BLOCK - LEN_FIELD {
        BLOCK
    } else {
        2 * BLOCK
    };
    tail[end - LEN_FIELD..end].copy_from_slice(&bits.to_be_bytes());
    compress(&mut state, &tail[..end]);
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

/// SHA-256 of `msg`.
#[inline]
pub fn digest(msg: &[u8]) -> [u8; 32] {
    finish(IV, 0, msg)
}

/// An HMAC-SHA-256 key as its two precomputed states.
#[derive(Clone, Copy)]
pub struct HmacKey {
    /// The state after the block `key ⊕ ipad`.
    inner: [u32; 8],
    /// The state after the block `key ⊕ opad`.
    outer: [u32; 8],
}

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKey(..)")
    }
}

impl HmacKey {
    /// The key states of `key` (a key longer than a block is hashed first, as RFC 2104
    /// says; a shorter one is zero-padded).
    pub fn new(key: &[u8]) -> Self {
        let mut block = [0u8; BLOCK];
        if key.len() > BLOCK {
            block[..32].copy_from_slice(&digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let pad = |byte: u8| {
            let mut b = block;
            for x in &mut b {
                *x ^= byte;
            }
            let mut state = IV;
            compress(&mut state, &b);
            state
        };
        HmacKey {
            inner: pad(0x36),
            outer: pad(0x5c),
        }
    }

    /// HMAC-SHA-256 of `msg` under this key.
    #[inline]
    pub fn mac(&self, msg: &[u8]) -> [u8; 32] {
        let inner = finish(self.inner, 1, msg);
        finish(self.outer, 1, &inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};

    /// Deterministic test bytes.
    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn digest_matches_sha2_at_every_padding_boundary() {
        for n in 0..200 {
            let m = bytes(n, 7);
            let want: [u8; 32] = Sha256::digest(&m).into();
            assert_eq!(digest(&m), want, "length {n}");
        }
    }

    #[test]
    fn hmac_matches_the_hmac_crate() {
        for klen in [0, 1, 16, 32, 63, 64, 65, 100] {
            let key = HmacKey::new(&bytes(klen, 3));
            for n in (0..140).chain([1000]) {
                let m = bytes(n, 11);
                let Ok(mut reference) = Hmac::<Sha256>::new_from_slice(&bytes(klen, 3)) else {
                    unreachable!("HMAC takes keys of any length")
                };
                reference.update(&m);
                let want: [u8; 32] = reference.finalize().into_bytes().into();
                assert_eq!(key.mac(&m), want, "key {klen} bytes, message {n} bytes");
            }
        }
    }

    #[test]
    fn rfc_4231_case_2() {
        // Key "Jefe", data "what do ya want for nothing?".
        let key = HmacKey::new(b"Jefe");
        let want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let got: String = key
            .mac(b"what do ya want for nothing?")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, want);
    }
}
