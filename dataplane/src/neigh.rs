//! The neighbour table: IPv4 (ARP) and IPv6 (neighbour discovery) addresses of on-link
//! hosts and next hops, and their MACs, per port.
//!
//! Each worker owns its own table (no sharing, no locks). Entries are learnt from ARP
//! and neighbour discovery traffic and confirmed by it; a lookup of an address that is
//! missing or old asks the caller to solicit it, rate-limited per entry. The table is
//! bounded: when full, the oldest-inserted entry is evicted in O(1) (FIFO), so a flood
//! of new addresses costs constant time per packet and never grows memory.

use crate::wire::MacAddr;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// A neighbour's key: the port index it is reached through and its address.
pub type NeighborKey = (u16, IpAddr);

/// Timing and size of a [`NeighborTable`].
#[derive(Clone, Copy, Debug)]
pub struct NeighborConfig {
    /// Most entries kept.
    pub capacity: usize,
    /// How long a confirmed MAC is used without re-resolving, ns (Linux's
    /// `base_reachable_time`, 30 s).
    pub reachable_ns: u64,
    /// Least time between two solicitations for one address, ns (Linux's
    /// `retrans_time`, 1 s).
    pub retry_ns: u64,
}

impl Default for NeighborConfig {
    fn default() -> Self {
        Self {
            capacity: 4096,
            reachable_ns: 30_000_000_000,
            retry_ns: 1_000_000_000,
        }
    }
}

/// What a lookup found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Use this MAC.
    Reachable(MacAddr),
    /// Use this MAC, and send a solicitation now: the entry is older than the
    /// reachable time (Linux's STALE → PROBE).
    Stale(MacAddr),
    /// Unknown: send a solicitation now and hold or drop the packet.
    Solicit,
    /// Unknown, and a solicitation is already out: hold or drop the packet.
    Waiting,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    mac: Option<MacAddr>,
    /// When the MAC was last learnt or confirmed, ns.
    confirmed_at: u64,
    /// When the last solicitation was sent, ns (`None`: never).
    solicited_at: Option<u64>,
}

/// Bounded per-worker neighbour table.
pub struct NeighborTable {
    cfg: NeighborConfig,
    entries: HashMap<NeighborKey, Entry>,
    /// Keys in insertion order, for FIFO eviction (same set as `entries`).
    order: VecDeque<NeighborKey>,
    evictions: u64,
    /// New or changed MACs learnt from the wire since [`NeighborTable::take_learned`]
    /// (bounded: other workers are told about them).
    learned: Vec<(u16, IpAddr, MacAddr)>,
}

/// New MACs remembered for [`NeighborTable::take_learned`] at most.
const MAX_LEARNED: usize = 256;

impl NeighborTable {
    /// An empty table.
    pub fn new(cfg: NeighborConfig) -> Self {
        Self {
            entries: HashMap::with_capacity(cfg.capacity),
            order: VecDeque::with_capacity(cfg.capacity),
            cfg,
            evictions: 0,
            learned: Vec::new(),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The MAC known for `ip` on `port`, however old, without touching the entry.
    pub fn get(&self, port: u16, ip: IpAddr) -> Option<MacAddr> {
        self.entries.get(&(port, ip)).and_then(|e| e.mac)
    }

    /// Entries evicted to make room, since creation.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Records that `ip` on `port` has `mac`, as of `now` (from an ARP request or reply,
    /// a neighbour solicitation's source option or an advertisement). Multicast and
    /// zero MACs are ignored.
    pub fn learn(&mut self, port: u16, ip: IpAddr, mac: MacAddr, now: u64) {
        if self.set(port, ip, mac, now) && self.learned.len() < MAX_LEARNED {
            self.learned.push((port, ip, mac));
        }
    }

    /// Like [`NeighborTable::learn`], for what another worker learnt (not passed on).
    pub fn adopt(&mut self, port: u16, ip: IpAddr, mac: MacAddr, now: u64) {
        self.set(port, ip, mac, now);
    }

    /// Records `mac` for `ip` on `port`; true when it is new or changed.
    fn set(&mut self, port: u16, ip: IpAddr, mac: MacAddr, now: u64) -> bool {
        if !mac.is_unicast() || mac == MacAddr::ZERO {
            return false;
        }
        let entry = self.entry(port, ip, now);
        let new = entry.mac != Some(mac);
        entry.mac = Some(mac);
        entry.confirmed_at = now;
        new
    }

    /// Takes what [`NeighborTable::learn`] found new since the last call.
    pub fn take_learned(&mut self) -> std::vec::Drain<'_, (u16, IpAddr, MacAddr)> {
        self.learned.drain(..)
    }

    /// Looks `ip` on `port` up at `now`; see [`Lookup`]. A [`Lookup::Solicit`] or
    /// [`Lookup::Stale`] answer records that the caller now sends a solicitation.
    pub fn lookup(&mut self, port: u16, ip: IpAddr, now: u64) -> Lookup {
        let cfg = self.cfg;
        let entry = self.entry(port, ip, now);
        let may_solicit = entry
            .solicited_at
            .is_none_or(|t| now.saturating_sub(t) >= cfg.retry_ns);
        match entry.mac {
            Some(mac) if now.saturating_sub(entry.confirmed_at) < cfg.reachable_ns => {
                Lookup::Reachable(mac)
            }
            Some(mac) if may_solicit => {
                entry.solicited_at = Some(now);
                Lookup::Stale(mac)
            }
            Some(mac) => Lookup::Reachable(mac),
            None if may_solicit => {
                entry.solicited_at = Some(now);
                Lookup::Solicit
            }
            None => Lookup::Waiting,
        }
    }

    /// The entry for `(port, ip)`, inserted empty if missing (evicting when full).
    fn entry(&mut self, port: u16, ip: IpAddr, now: u64) -> &mut Entry {
        let key = (port, ip);
        if !self.entries.contains_key(&key) {
            while self.entries.len() >= self.cfg.capacity.max(1) {
                match self.order.pop_front() {
                    Some(old) => {
                        if self.entries.remove(&old).is_some() {
                            self.evictions += 1;
                        }
                    }
                    None => break,
                }
            }
            self.order.push_back(key);
        }
        self.entries.entry(key).or_insert(Entry {
            mac: None,
            confirmed_at: now,
            solicited_at: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 9]);
    const S: u64 = 1_000_000_000;

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn unknown_addresses_are_solicited_once_per_retry_interval() {
        let mut t = NeighborTable::new(NeighborConfig::default());
        assert_eq!(t.lookup(0, v4(2), 0), Lookup::Solicit);
        assert_eq!(t.lookup(0, v4(2), S / 2), Lookup::Waiting);
        assert_eq!(t.lookup(0, v4(2), S), Lookup::Solicit);
        t.learn(0, v4(2), MAC, S + 1);
        assert_eq!(t.lookup(0, v4(2), S + 2), Lookup::Reachable(MAC));
    }

    #[test]
    fn old_entries_are_used_while_being_reconfirmed() {
        let mut t = NeighborTable::new(NeighborConfig::default());
        t.learn(0, v4(2), MAC, 0);
        assert_eq!(t.lookup(0, v4(2), 29 * S), Lookup::Reachable(MAC));
        assert_eq!(t.lookup(0, v4(2), 31 * S), Lookup::Stale(MAC));
        assert_eq!(
            t.lookup(0, v4(2), 31 * S + 1),
            Lookup::Reachable(MAC),
            "probe already out"
        );
        t.learn(0, v4(2), MAC, 32 * S);
        assert_eq!(t.lookup(0, v4(2), 33 * S), Lookup::Reachable(MAC));
    }

    #[test]
    fn ports_and_families_are_separate() {
        let mut t = NeighborTable::new(NeighborConfig::default());
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 2));
        t.learn(1, v4(2), MAC, 0);
        t.learn(0, v6, MAC, 0);
        assert_eq!(t.lookup(0, v4(2), 1), Lookup::Solicit);
        assert_eq!(t.lookup(1, v4(2), 1), Lookup::Reachable(MAC));
        assert_eq!(t.lookup(0, v6, 1), Lookup::Reachable(MAC));
    }

    #[test]
    fn group_and_zero_macs_are_not_learnt() {
        let mut t = NeighborTable::new(NeighborConfig::default());
        t.learn(0, v4(2), MacAddr::BROADCAST, 0);
        t.learn(0, v4(3), MacAddr::ZERO, 0);
        assert!(t.is_empty());
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_oldest_first() {
        let cfg = NeighborConfig {
            capacity: 3,
            ..NeighborConfig::default()
        };
        let mut t = NeighborTable::new(cfg);
        for i in 1..=10 {
            t.learn(0, v4(i), MAC, u64::from(i));
            assert!(t.len() <= 3);
        }
        assert_eq!(t.evictions(), 7);
        assert_eq!(t.lookup(0, v4(10), 11), Lookup::Reachable(MAC));
        assert_eq!(t.lookup(0, v4(8), 11), Lookup::Reachable(MAC));
        assert_eq!(t.len(), 3);
        assert_eq!(t.lookup(0, v4(1), 11), Lookup::Solicit, "evicted long ago");
        assert_eq!(t.len(), 3, "still bounded after the lookup inserted");
    }
}
