//! The per-worker table of local MPTCP tokens (RFC 8684 §3.1): token → connection, for
//! the MP_JOIN lookup.
//!
//! # Tokens name their owner worker
//!
//! A join arrives on whatever worker RSS picks, so the token must say which worker owns
//! the connection without shared state: [`owner_of`] maps a token to a worker by its
//! bits (`token × workers >> 32`, a division-free uniform range reduction). A token is
//! SHA-256 of the key and cannot be chosen, so a worker draws keys until the token is
//! its own: each draw succeeds with probability 1/`workers`, so the expected number of
//! draws is `workers` (one SHA-256 and one CSPRNG read each, well under a microsecond per
//! draw), paid once per connection, never per join. Token 0 is never used (it stays
//! free as "no token"), and a token already in the table is a collision: both mean
//! drawing another key, as Linux does on collision.
//!
//! Workers' token sets are disjoint by construction, so uniqueness per table is
//! uniqueness overall.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use super::crypto::{derive, KeyIds};

/// The worker that owns `token` among `workers` workers (at least one).
#[inline]
pub fn owner_of(token: u32, workers: u16) -> u16 {
    let workers = u64::from(workers.max(1));
    ((u64::from(token) * workers) >> 32) as u16
}

/// Why a key's token was not inserted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The token is 0, belongs to another worker, or is already in use: draw another
    /// key.
    #[error("token unusable here; draw another key")]
    Redraw,
    /// The table is full.
    #[error("token table full")]
    Full,
}

/// Counters of a token table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenStats {
    /// Keys whose token was already in use (Linux falls back after repeated collisions;
    /// the caller decides the retry bound).
    pub collisions: u64,
    /// Insertions refused because the table was full.
    pub full: u64,
    /// MP_JOIN lookups of a token not in the table.
    pub unknown: u64,
}

/// Multiplicative hashing of a `u32` token: tokens are SHA-256 output, so a cheap mix
/// that spreads them over the whole `u64` (hashbrown reads the top bits too) suffices.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokenHasher(
    /// The hash of what was written so far.
    u64,
);

impl Hasher for TokenHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b) | (self.0 << 8));
        }
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl BuildHasher for TokenHasher {
    type Hasher = TokenHasher;

    #[inline]
    fn build_hasher(&self) -> TokenHasher {
        TokenHasher(0)
    }
}

/// One worker's tokens → connection handles, bounded.
#[derive(Debug)]
pub struct TokenTable<H> {
    /// Live tokens: never 0, each owned by `worker`; at most `capacity` entries (room
    /// reserved up front, so inserting does not reallocate).
    map: HashMap<u32, H, TokenHasher>,
    /// Most entries.
    capacity: usize,
    /// This table's worker, < `workers`.
    worker: u16,
    /// Workers in the gateway, ≥ 1.
    workers: u16,
    /// Counters.
    stats: TokenStats,
}

impl<H: Copy> TokenTable<H> {
    /// The table of worker `worker` of `workers`, holding at most `capacity` tokens.
    /// `workers` is taken as at least 1 and `worker` modulo it. Room for `capacity`
    /// tokens is reserved now; if that allocation fails the table grows on demand.
    pub fn new(worker: u16, workers: u16, capacity: usize) -> Self {
        let workers = workers.max(1);
        let mut map = HashMap::with_hasher(TokenHasher(0));
        // Failure only means growing later, up to the same bound.
        let _ = map.try_reserve(capacity);
        TokenTable {
            map,
            capacity,
            worker: worker % workers,
            workers,
            stats: TokenStats::default(),
        }
    }

    /// Claims the token of `key` for `handle`; on [`Rejected::Redraw`] the caller draws
    /// another key ([`super::crypto::generate_key`]) and tries again.
    pub fn try_insert(&mut self, key: u64, handle: H) -> Result<KeyIds, Rejected> {
        let ids = derive(key);
        if ids.token == 0 || owner_of(ids.token, self.workers) != self.worker {
            return Err(Rejected::Redraw);
        }
        if self.map.contains_key(&ids.token) {
            self.stats.collisions += 1;
            return Err(Rejected::Redraw);
        }
        if self.map.len() >= self.capacity {
            self.stats.full += 1;
            return Err(Rejected::Full);
        }
        self.map.insert(ids.token, handle);
        Ok(ids)
    }

    /// The connection a join's `token` names, counting unknown tokens.
    #[inline]
    pub fn lookup(&mut self, token: u32) -> Option<H> {
        let found = self.map.get(&token).copied();
        if found.is_none() {
            self.stats.unknown += 1;
        }
        found
    }

    /// Frees `token` (the connection closed); returns its handle.
    #[inline]
    pub fn remove(&mut self, token: u32) -> Option<H> {
        self.map.remove(&token)
    }

    /// Tokens held.
    #[inline]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no token is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The counters.
    #[inline]
    pub fn stats(&self) -> &TokenStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys from a fixed sequence (a SplitMix64 stream), so tests are deterministic.
    fn keys() -> impl Iterator<Item = u64> {
        let mut x = 0x1234_5678_9abc_def0u64;
        std::iter::from_fn(move || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            Some(z ^ (z >> 31))
        })
    }

    /// Draws keys until one is accepted; returns the key, its ids and the draws.
    fn insert(
        t: &mut TokenTable<u32>,
        keys: &mut impl Iterator<Item = u64>,
        h: u32,
    ) -> (u64, KeyIds, usize) {
        for (tries, key) in keys.enumerate() {
            match t.try_insert(key, h) {
                Ok(ids) => return (key, ids, tries + 1),
                Err(Rejected::Redraw) => {}
                Err(Rejected::Full) => panic!("full"),
            }
        }
        unreachable!()
    }

    #[test]
    fn owner_partitions_the_token_space_evenly() {
        assert_eq!(owner_of(0, 4), 0);
        assert_eq!(owner_of(u32::MAX, 4), 3);
        assert_eq!(owner_of(0x4000_0000, 4), 1);
        assert_eq!(owner_of(0x7fff_ffff, 4), 1);
        assert_eq!(owner_of(12345, 0), 0);
        assert_eq!(owner_of(u32::MAX, 1), 0);
        let mut per = [0u32; 3];
        for t in (0..u32::MAX).step_by(9973) {
            per[owner_of(t, 3) as usize] += 1;
        }
        let (min, max) = (per.iter().min().unwrap(), per.iter().max().unwrap());
        assert!(max - min <= 1, "{per:?}");
    }

    #[test]
    fn tokens_belong_to_the_worker_and_route_joins() {
        let mut keys = keys();
        let mut t = TokenTable::new(2, 4, 64);
        let mut draws = 0;
        for h in 0..64 {
            let (key, ids, tries) = insert(&mut t, &mut keys, h);
            draws += tries;
            assert_eq!(ids, derive(key));
            assert_ne!(ids.token, 0);
            assert_eq!(owner_of(ids.token, 4), 2);
            assert_eq!(t.lookup(ids.token), Some(h));
        }
        // Expected draws per token = workers = 4.
        assert!((128..=512).contains(&draws), "{draws} draws for 64 tokens");
        assert_eq!(t.len(), 64);
    }

    #[test]
    fn collision_and_full_are_refused_and_counted() {
        let mut keys = keys();
        let mut t = TokenTable::new(0, 1, 2);
        let (key, ids, _) = insert(&mut t, &mut keys, 7);
        assert_eq!(t.try_insert(key, 8), Err(Rejected::Redraw));
        assert_eq!(t.stats().collisions, 1);
        insert(&mut t, &mut keys, 9);
        let other = keys.next().unwrap();
        assert_eq!(t.try_insert(other, 10), Err(Rejected::Full));
        assert_eq!(t.stats().full, 1);
        assert_eq!(t.remove(ids.token), Some(7));
        assert_eq!(t.lookup(ids.token), None);
        assert_eq!(t.stats().unknown, 1);
        assert!(t.try_insert(other, 10).is_ok());
        assert!(!t.is_empty());
    }
}
