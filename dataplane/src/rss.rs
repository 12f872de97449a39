//! Receive-side scaling as a NIC computes it: the Toeplitz hash over a TCP
//! segment's addresses and ports, and the redirection table (RETA) that maps the
//! hash to an RX queue. A worker that knows its port's key and RETA can tell which
//! queue a reply will land on, and so choose local ports that bring the replies of
//! the connections it opens back to its own queue.
//!
//! The hash input is Microsoft's RSS order for TCP over IPv4/IPv6 as the
//! *receiving* NIC sees the packet: source address, destination address, source
//! port, destination port, each in network byte order. For a reply to a connection
//! we opened that is remote address, local address, remote port, local port.

use std::net::{IpAddr, SocketAddr};

/// Microsoft's RSS verification key (40 bytes), the default key of many PMDs: the
/// key mpgw programs when the port's key is 40 bytes long.
pub const DEFAULT_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// Longest RSS key accepted (DPDK PMDs use 40 or 52 bytes).
pub const MAX_KEY_LEN: usize = 64;
/// Largest redirection table accepted (`RTE_ETH_RSS_RETA_SIZE_512`).
pub const MAX_RETA: usize = 512;

/// Where the destination port starts in the hash input of each family.
const V4_DPORT: usize = 10;
const V6_DPORT: usize = 34;

/// The key mpgw programs into a port whose key is `len` bytes: [`DEFAULT_KEY`],
/// repeated when the port wants a longer one (a TCP tuple uses the first 40 bytes
/// at most, IPv6's 36 input bytes plus 4).
pub fn default_key(len: usize) -> Vec<u8> {
    DEFAULT_KEY
        .iter()
        .copied()
        .cycle()
        .take(len.min(MAX_KEY_LEN))
        .collect()
}

/// The Toeplitz hash of `input` under `key`, for `input` starting `offset` bytes
/// into the full hash input: for every set input bit (most significant first) the
/// 32 key bits starting at that bit's position are XOR-ed in. Key bits beyond the
/// key count as zero. The hash is linear: the hash of a whole input is the XOR of
/// the hashes of its parts at their offsets.
fn toeplitz_at(key: &[u8], offset: usize, input: &[u8]) -> u32 {
    let key_bit = |i: usize| {
        key.get(i / 8)
            .map_or(0, |b| u32::from(b >> (7 - i % 8)) & 1)
    };
    let start = offset * 8;
    let mut window = (start..start + 32).fold(0u32, |w, i| w << 1 | key_bit(i));
    let mut hash = 0;
    for (n, byte) in input.iter().enumerate() {
        for b in 0..8 {
            if byte & (0x80 >> b) != 0 {
                hash ^= window;
            }
            window = window << 1 | key_bit(start + 32 + n * 8 + b);
        }
    }
    hash
}

/// The Toeplitz hash of `input` under `key`.
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    toeplitz_at(key, 0, input)
}

/// The RSS hash input of a segment from `src` to `dst`, and its length; `None` when
/// the two are of different families.
fn tuple_input(src: SocketAddr, dst: SocketAddr) -> Option<([u8; 36], usize)> {
    let mut b = [0u8; 36];
    let len = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            b[..4].copy_from_slice(&s.octets());
            b[4..8].copy_from_slice(&d.octets());
            V4_DPORT + 2
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            b[..16].copy_from_slice(&s.octets());
            b[16..32].copy_from_slice(&d.octets());
            V6_DPORT + 2
        }
        _ => return None,
    };
    b[len - 4..len - 2].copy_from_slice(&src.port().to_be_bytes());
    b[len - 2..len].copy_from_slice(&dst.port().to_be_bytes());
    Some((b, len))
}

/// The RSS hash of a TCP segment from `src` to `dst` under `key`; `None` for mixed
/// families.
pub fn tcp_hash(key: &[u8], src: SocketAddr, dst: SocketAddr) -> Option<u32> {
    let (input, len) = tuple_input(src, dst)?;
    Some(toeplitz(key, &input[..len]))
}

/// A port's RSS set-up: its key and its redirection table (entry → RX queue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rss {
    key: Vec<u8>,
    reta: Vec<u16>,
}

impl Rss {
    /// `key` with redirection table `reta`; `None` when the key is empty or longer
    /// than [`MAX_KEY_LEN`], or the table empty or larger than [`MAX_RETA`].
    pub fn new(key: &[u8], reta: Vec<u16>) -> Option<Rss> {
        let ok =
            !key.is_empty() && key.len() <= MAX_KEY_LEN && (1..=MAX_RETA).contains(&reta.len());
        ok.then(|| Rss {
            key: key.to_vec(),
            reta,
        })
    }

    /// `key` with a table of `reta_size` entries spreading over `queues` queues
    /// (entry `i` → queue `i % queues`, the table mpgw programs); `None` as for
    /// [`Rss::new`] or without queues.
    pub fn spread(key: &[u8], reta_size: u16, queues: u16) -> Option<Rss> {
        if queues == 0 {
            return None;
        }
        Rss::new(key, (0..reta_size).map(|i| i % queues).collect())
    }

    /// The hash key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The redirection table: entry → RX queue.
    pub fn reta(&self) -> &[u16] {
        &self.reta
    }

    /// The RX queue of a hash: the table entry its low bits name (hash modulo the
    /// table size; NIC tables are powers of two, where that is the low bits).
    pub fn queue_of_hash(&self, hash: u32) -> u16 {
        // The table is never empty (see `spread`); usize holds any u32 here.
        self.reta
            .get(hash as usize % self.reta.len().max(1))
            .copied()
            .unwrap_or(0)
    }

    /// The RX queue a reply to our connection `local` ⇄ `remote` lands on; `None` for
    /// mixed families.
    pub fn reply_queue(&self, local: SocketAddr, remote: SocketAddr) -> Option<u16> {
        tcp_hash(&self.key, remote, local).map(|h| self.queue_of_hash(h))
    }

    /// The first of `candidates` (local ports) for a connection from `local` to
    /// `remote` whose replies land on RX queue `queue`. The hash is computed once
    /// for the addresses and remote port; each candidate costs a 16-bit hash.
    pub fn port_for_queue(
        &self,
        queue: u16,
        local: IpAddr,
        remote: SocketAddr,
        mut candidates: impl Iterator<Item = u16>,
    ) -> Option<u16> {
        let (input, len) = tuple_input(remote, SocketAddr::new(local, 0))?;
        let base = toeplitz(&self.key, &input[..len]);
        let at = len - 2;
        candidates.find(|p| {
            let h = base ^ toeplitz_at(&self.key, at, &p.to_be_bytes());
            self.queue_of_hash(h) == queue
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// The RSS verification suite: Microsoft, "Verifying the RSS Hash Calculation"
    /// (learn.microsoft.com/windows-hardware/drivers/network/verifying-the-rss-hash-calculation),
    /// also in Intel's 82599 datasheet §7.1.2.8.3 and DPDK's `app/test/test_thash.c`:
    /// (source, destination, hash with TCP ports) under [`DEFAULT_KEY`].
    const VECTORS: &[(&str, &str, u32)] = &[
        ("66.9.149.187:2794", "161.142.100.80:1766", 0x51cc_c178),
        ("199.92.111.2:14230", "65.69.140.83:4739", 0xc626_b0ea),
        ("24.19.198.95:12898", "12.22.207.184:38024", 0x5c2b_394a),
        ("38.27.205.30:48228", "209.142.163.6:2217", 0xafc7_327f),
        ("153.39.163.191:44251", "202.188.127.2:1303", 0x10e8_28a2),
        (
            "[3ffe:2501:200:1fff::7]:2794",
            "[3ffe:2501:200:3::1]:1766",
            0x4020_7d3d,
        ),
        (
            "[3ffe:501:8::260:97ff:fe40:efab]:14230",
            "[ff02::1]:4739",
            0xdde5_1bbf,
        ),
        (
            "[3ffe:1900:4545:3:200:f8ff:fe21:67cf]:44251",
            "[fe80::200:f8ff:fe21:67cf]:38024",
            0x02d1_feef,
        ),
    ];

    #[test]
    fn the_hash_matches_the_verification_suite() {
        for &(src, dst, want) in VECTORS {
            let got = tcp_hash(&DEFAULT_KEY, sock(src), sock(dst));
            assert_eq!(got, Some(want), "{src} → {dst}");
        }
        // Addresses only (the suite's IPv4 2-tuple column), first vector.
        let two = toeplitz(&DEFAULT_KEY, &[66, 9, 149, 187, 161, 142, 100, 80]);
        assert_eq!(two, 0x323e_8fc2);
        let mixed = tcp_hash(&DEFAULT_KEY, sock("192.0.2.1:1"), sock("[2001:db8::1]:2"));
        assert_eq!(mixed, None);
    }

    #[test]
    fn a_longer_key_repeats_the_default_and_hashes_tcp_alike() {
        let key = default_key(52);
        assert_eq!(key.len(), 52);
        assert_eq!(key[40..44], DEFAULT_KEY[..4]);
        let (src, dst, want) = VECTORS[5];
        assert_eq!(tcp_hash(&key, sock(src), sock(dst)), Some(want));
        assert_eq!(default_key(1000).len(), MAX_KEY_LEN);
    }

    #[test]
    fn the_reta_spreads_entries_over_the_queues_by_the_low_bits() {
        assert!(Rss::spread(&DEFAULT_KEY, 0, 2).is_none());
        assert!(Rss::spread(&DEFAULT_KEY, 128, 0).is_none());
        assert!(Rss::spread(&[], 128, 2).is_none());
        let Some(rss) = Rss::spread(&DEFAULT_KEY, 128, 3) else {
            panic!("valid set-up refused");
        };
        assert_eq!(rss.reta()[..5], [0, 1, 2, 0, 1]);
        // 0x51ccc178: low 7 bits 0x78 = 120 → entry 120 → queue 0.
        assert_eq!(rss.queue_of_hash(0x51cc_c178), 120 % 3);
        assert_eq!(rss.queue_of_hash(0x51cc_c179), 121 % 3);
        // A reply from the suite's source to its destination: that is our
        // connection local = destination, remote = source.
        let q = rss.reply_queue(sock("161.142.100.80:1766"), sock("66.9.149.187:2794"));
        assert_eq!(q, Some(0));
    }

    #[test]
    fn a_chosen_port_brings_the_reply_to_the_wanted_queue() {
        for queues in 2..=4u16 {
            let Some(rss) = Rss::spread(&DEFAULT_KEY, 128, queues) else {
                panic!("valid set-up refused");
            };
            for (local, remote) in [
                ("192.0.2.1", "198.51.100.7:80"),
                ("2001:db8::1", "[2001:db8:1::9]:443"),
            ] {
                let local: IpAddr = local.parse().unwrap_or_else(|e| panic!("{e}"));
                for queue in 0..queues {
                    let port = rss.port_for_queue(queue, local, sock(remote), 32_768..33_000);
                    let Some(port) = port else {
                        panic!("no port for queue {queue} of {queues}");
                    };
                    let got = rss.reply_queue(SocketAddr::new(local, port), sock(remote));
                    assert_eq!(got, Some(queue), "port {port}");
                }
            }
        }
        let Some(rss) = Rss::spread(&DEFAULT_KEY, 128, 2) else {
            panic!("valid set-up refused");
        };
        let v4: IpAddr = [192, 0, 2, 1].into();
        assert_eq!(
            rss.port_for_queue(0, v4, sock("[2001:db8::1]:1"), 1..100),
            None
        );
    }
}
