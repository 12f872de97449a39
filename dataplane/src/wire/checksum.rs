//! The Internet checksum (RFC 1071): full sums, pseudo-header sums and incremental
//! updates (RFC 1624).
//!
//! A *sum* here is the folded 16-bit one's-complement sum of big-endian words, not yet
//! inverted; the checksum field holds its complement. Sums of pieces that start at even
//! offsets combine with [`combine`]. A message that carries a correct checksum sums to
//! [`CORRECT_SUM`].

use std::net::{Ipv4Addr, Ipv6Addr};

/// The folded sum over a message whose checksum field is correct.
pub const CORRECT_SUM: u16 = 0xffff;

/// Folded one's-complement sum of `data` as big-endian 16-bit words; an odd trailing
/// byte is padded with zero.
#[inline]
pub fn sum(data: &[u8]) -> u16 {
    // One's-complement addition does not depend on byte order (RFC 1071 §2(B)), and a
    // sum over wider words folds down to the same 16-bit sum (§2(C)). So: native-endian
    // 32-bit words added into four independent 64-bit lanes without carries (no lane
    // can overflow below 2^32 words, far beyond any packet), which the compiler turns
    // into vector adds; the tail in 64-bit words with end-around carry; the result
    // folded and swapped once.
    let mut lanes = [0u64; 4];
    let mut blocks = data.chunks_exact(32);
    for block in &mut blocks {
        for (lane, pair) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            let lo = u32::from_ne_bytes([pair[0], pair[1], pair[2], pair[3]]);
            let hi = u32::from_ne_bytes([pair[4], pair[5], pair[6], pair[7]]);
            *lane += u64::from(lo) + u64::from(hi);
        }
    }
    let mut acc = lanes.iter().fold(0, |a, &l| add_carry(a, l));
    let mut words = blocks.remainder().chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        acc = add_carry(acc, u64::from_ne_bytes(b));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        acc = add_carry(acc, u64::from_ne_bytes(b));
    }
    let acc = fold32(fold64(acc));
    u16::from_be(acc)
}

/// The checksum field value for `data` (its checksum field zeroed): `!sum(data)`.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// One's-complement sum of two folded sums.
#[inline]
pub fn combine(a: u16, b: u16) -> u16 {
    fold32(u32::from(a) + u32::from(b))
}

/// Sum of the IPv4 pseudo-header (RFC 793 §3.1) for an upper-layer message of `len` bytes.
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u16 {
    let s = u32::from(src);
    let d = u32::from(dst);
    let acc = (s >> 16) + (s & 0xffff) + (d >> 16) + (d & 0xffff);
    fold32(acc + u32::from(protocol) + u32::from(len))
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1) for an upper-layer message of `len`
/// bytes with upper-layer protocol `next_header`.
#[inline]
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, len: u32) -> u16 {
    let addrs = combine(sum(&src.octets()), sum(&dst.octets()));
    let tail = fold32((len >> 16) + (len & 0xffff) + u32::from(next_header));
    combine(addrs, tail)
}

/// The checksum field after one 16-bit word of the message changed from `old` to `new`
/// (RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')`).
#[inline]
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    !fold32(u32::from(!check) + u32::from(!old) + u32::from(new))
}

/// The checksum field after a 32-bit word (at an even offset) changed from `old` to `new`.
#[inline]
pub fn update32(check: u16, old: u32, new: u32) -> u16 {
    let acc = u32::from(!check) + (!old >> 16) + (!old & 0xffff) + (new >> 16) + (new & 0xffff);
    !fold32(acc)
}

/// The checksum field after the bytes `old` (at an even offset) were replaced by `new`
/// of the same length, e.g. an address's octets.
#[inline]
pub fn update_bytes(check: u16, old: &[u8], new: &[u8]) -> u16 {
    !combine(combine(!check, !sum(old)), sum(new))
}

#[inline(always)]
fn add_carry(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    s + u64::from(carry)
}

#[inline(always)]
fn fold64(v: u64) -> u32 {
    let v = (v & 0xffff_ffff) + (v >> 32);
    let v = (v & 0xffff_ffff) + (v >> 32);
    v as u32
}

#[inline(always)]
fn fold32(v: u32) -> u16 {
    let v = (v & 0xffff) + (v >> 16);
    let v = (v & 0xffff) + (v >> 16);
    v as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward RFC 1071 sum, the reference for the fast one.
    fn naive(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for pair in data.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).copied().map_or(0, u32::from);
            s += hi | lo;
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(
            sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn fast_sum_matches_naive_for_every_length_and_alignment() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 167 + 13) as u8).collect();
        for start in 0..8 {
            for end in start..data.len() {
                assert_eq!(
                    sum(&data[start..end]),
                    naive(&data[start..end]),
                    "{start}..{end}"
                );
            }
        }
        assert_eq!(sum(&[0xff; 64]), 0xffff);
        assert_eq!(sum(&[]), 0);
    }

    #[test]
    fn large_buffers_sum_as_the_naive_way_even_with_every_bit_set() {
        // Jumbo frames and the largest IPv4 payload: the lanes' carries are folded.
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let data: Vec<u8> = (0..65_535)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng as u8
            })
            .collect();
        for len in [9000, 9001, 65_534, 65_535] {
            assert_eq!(sum(&data[..len]), naive(&data[..len]), "{len}");
        }
        assert_eq!(sum(&vec![0xff; 65_535]), naive(&vec![0xff; 65_535]));
        assert_eq!(sum(&vec![0xff; 65_534]), 0xffff);
    }

    #[test]
    fn ipv4_header_checksum_known_answer() {
        // The classic captured IPv4/UDP header (checksum field b8 61).
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(sum(&hdr), CORRECT_SUM);
        let mut zeroed = hdr;
        zeroed[10..12].fill(0);
        assert_eq!(checksum(&zeroed), 0xb861);
    }

    #[test]
    fn incremental_updates_match_recomputation() {
        let mut msg: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        msg[10..12].fill(0);
        let c = checksum(&msg);
        for (at, new16) in [(0usize, 0xffffu16), (4, 0), (22, 0x1234)] {
            let mut m = msg.clone();
            let old = u16::from_be_bytes([m[at], m[at + 1]]);
            m[at..at + 2].copy_from_slice(&new16.to_be_bytes());
            assert_eq!(update16(c, old, new16), checksum(&m));
        }
        let mut m = msg.clone();
        let old = u32::from_be_bytes([m[12], m[13], m[14], m[15]]);
        m[12..16].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
        assert_eq!(update32(c, old, 0xdead_beef), checksum(&m));
        let mut m = msg.clone();
        let old: Vec<u8> = m[16..32].to_vec();
        m[16..32].copy_from_slice(&[0xab; 16]);
        assert_eq!(update_bytes(c, &old, &[0xab; 16]), checksum(&m));
    }

    #[test]
    fn pseudo_headers_match_byte_sums() {
        let (s4, d4) = (Ipv4Addr::new(10, 0, 1, 2), Ipv4Addr::new(192, 168, 7, 9));
        let mut ph = Vec::new();
        ph.extend_from_slice(&s4.octets());
        ph.extend_from_slice(&d4.octets());
        ph.extend_from_slice(&[0, 6, 0x05, 0xdc]);
        assert_eq!(pseudo_header_v4(s4, d4, 6, 1500), sum(&ph));

        let s6: Ipv6Addr = "fe80::1".parse().unwrap();
        let d6: Ipv6Addr = "2001:db8::ffff:1".parse().unwrap();
        let mut ph = Vec::new();
        ph.extend_from_slice(&s6.octets());
        ph.extend_from_slice(&d6.octets());
        ph.extend_from_slice(&70_000u32.to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, 58]);
        assert_eq!(pseudo_header_v6(&s6, &d6, 58, 70_000), sum(&ph));
    }
}
