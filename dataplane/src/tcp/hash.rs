//! The connection table's hash: an FxHash-style multiply-rotate hash seeded per table.
//!
//! Fast on the short keys of a 4-tuple. The per-table secret seed keeps an attacker
//! from precomputing colliding tuples; it is not a cryptographic PRF (std's SipHash
//! would be, at several times the cost per lookup).

use std::hash::{BuildHasher, Hasher};

/// Odd multiplier (from FxHash / the golden ratio family).
const K: u64 = 0x517c_c1b7_2722_0a95;

/// Builds [`SeededHasher`]s sharing a seed.
#[derive(Clone, Copy, Debug)]
pub struct SeededHash {
    seed: u64,
}

impl SeededHash {
    /// Hashers starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SeededHash { seed }
    }
}

impl BuildHasher for SeededHash {
    type Hasher = SeededHasher;

    #[inline]
    fn build_hasher(&self) -> SeededHasher {
        SeededHasher(self.seed)
    }
}

/// The running state of one hash computation.
#[derive(Clone, Copy, Debug)]
pub struct SeededHasher(u64);

impl SeededHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
    }
}

impl Hasher for SeededHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.add(u64::from_le_bytes(b));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b) ^ (rest.len() as u64) << 56);
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // Final avalanche so the low bits SwissTable uses depend on every input bit.
        let x = self.0 ^ (self.0 >> 29);
        x.wrapping_mul(K) ^ (x >> 32)
    }
}
