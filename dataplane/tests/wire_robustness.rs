//! Hostile input: every parser and in-place responder is total over arbitrary bytes and
//! over valid frames with bytes flipped — an error value, never a panic, and whatever
//! is accepted stays inside the buffer.

// Helpers outside #[test] functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

use dataplane::wire::arp::{self, ArpPacket};
use dataplane::wire::ethernet::EthernetFrame;
use dataplane::wire::icmp::{self, IcmpPacket};
use dataplane::wire::icmpv6::{self, Icmpv6Packet, NeighborAdvert, NeighborSolicit};
use dataplane::wire::ipv4::Ipv4Packet;
use dataplane::wire::ipv6::Ipv6Packet;
use dataplane::wire::mptcp::MptcpOption;
use dataplane::wire::tcp::{TcpOption, TcpPacket};
use dataplane::wire::{classify, MacAddr, L4};
use proptest::prelude::*;

const ME: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

/// Valid frames to mutate: an ARP request, an ICMP echo, an NS, an ICMPv6 echo, a TCP
/// segment with options.
fn seeds() -> Vec<Vec<u8>> {
    let hex = |s: &str| -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let frames = vec![
        hex("ffffffffffff 525400aabbcc 0806 0001 0800 06 04 0001 525400aabbcc 0a000002 000000000000 0a000001"),
        hex("020000000001 525400aabbcc 0800 4500001c3e8c40004001e83a0a0000020a000001 0800f7fe00000001"),
        hex("3333ff000001 525400aabbcc 86dd 6000000000203aff fe800000000000005054 00fffeaabbcc ff020000000000000000 0001ff000001 8700 0000 00000000 20010db8000000000000000000000001 0101525400aabbcc"),
        hex("020000000001 525400aabbcc 86dd 6000000000083a40 20010db8000000000000000000000002 20010db8000000000000000000000001 8000 0000 12340001"),
        hex("020000000001 525400aabbcc 0800 4500004c000040004006 0000 0a000002 0a000001 9c400050 00000001 00000001 b010 01f5 0000 0000 0101080a0000000100000002 1e140020 00000005 0000000000000009 00000001 0010 0101 00000000000000000000000000000000"),
    ];
    frames.into_iter().map(fill_checksums).collect()
}

/// Fills the IPv4 header checksum and the ICMP, ICMPv6 or TCP checksum of `frame`.
fn fill_checksums(mut frame: Vec<u8>) -> Vec<u8> {
    let Ok(f) = classify(&frame) else {
        return frame;
    };
    let l3 = &mut frame[f.l3_offset..];
    let pseudo = if let Ok(mut ip) = Ipv4Packet::parse(&mut *l3) {
        ip.fill_checksum();
        ip.pseudo_header_sum()
    } else if let Ok(ip) = Ipv6Packet::parse(&*l3) {
        ip.pseudo_header_sum()
    } else {
        return frame;
    };
    let l4 = &mut frame[f.l4_offset..f.l4_offset + f.l4_len];
    match f.l4 {
        L4::Icmp => IcmpPacket::parse(l4).unwrap().fill_checksum(0),
        L4::Icmpv6 => Icmpv6Packet::parse(l4).unwrap().fill_checksum(pseudo),
        L4::Tcp => TcpPacket::parse(l4).unwrap().fill_checksum(pseudo),
        _ => {}
    }
    frame
}

/// Runs every parser and accessor over `frame`, then every responder on a copy.
fn exercise(frame: &[u8]) {
    if let Ok(f) = classify(frame) {
        assert!(f.l3_offset <= frame.len());
        assert!(f.l4_offset + f.l4_len <= frame.len());
        if f.l4 == L4::Tcp {
            let tcp = TcpPacket::parse(f.l4_bytes(frame)).unwrap();
            let _ = (
                tcp.seq(),
                tcp.ack(),
                tcp.flags(),
                tcp.window(),
                tcp.payload().len(),
            );
            for o in tcp.options().take(64) {
                if let Ok(TcpOption::Mptcp(bytes)) = o {
                    let _ = MptcpOption::parse(bytes);
                }
            }
        }
    }
    if let Ok(e) = EthernetFrame::parse(frame) {
        let p = e.payload();
        let _ = (e.dst(), e.src(), e.vlan_id(), e.ethertype());
        if let Ok(a) = ArpPacket::parse(p) {
            let _ = (a.op(), a.sha(), a.spa(), a.tha(), a.tpa());
        }
        if let Ok(ip) = Ipv4Packet::parse(p) {
            let _ = (
                ip.verify_checksum(),
                ip.options(),
                ip.payload(),
                ip.pseudo_header_sum(),
            );
            if let Ok(i) = IcmpPacket::parse(ip.payload()) {
                let _ = (i.verify_checksum(0), i.echo_ident(), i.data());
            }
        }
        if let Ok(ip) = Ipv6Packet::parse(p) {
            let _ = (ip.upper_payload(), ip.pseudo_header_sum(), ip.flow_label());
            if let Ok(i) = Icmpv6Packet::parse(ip.upper_payload()) {
                let _ = i.verify_checksum(ip.pseudo_header_sum());
            }
            let _ = NeighborSolicit::parse(ip.upper_payload());
            let _ = NeighborAdvert::parse(ip.upper_payload());
        }
    }
    let _ = arp::make_reply_in_place(&mut frame.to_vec(), ME);
    let _ = icmp::echo_reply_in_place(&mut frame.to_vec(), ME);
    let _ = icmpv6::echo_reply_in_place(&mut frame.to_vec(), ME);
    for extra in [0, 8] {
        let mut f = frame.to_vec();
        f.resize(frame.len() + extra, 0);
        if let Ok(n) = icmpv6::neighbor_advert_in_place(&mut f, ME) {
            assert!(n <= f.len());
            let c = classify(&f[..n]).unwrap();
            assert_eq!(c.l4, L4::Icmpv6);
        }
    }
}

#[test]
fn seeds_are_accepted() {
    let s = seeds();
    let mut f = s[0].clone();
    assert_eq!(arp::make_reply_in_place(&mut f, ME), Ok(()));
    let mut f = s[2].clone();
    assert_eq!(icmpv6::neighbor_advert_in_place(&mut f, ME), Ok(86));
    let mut f = s[1].clone();
    assert_eq!(icmp::echo_reply_in_place(&mut f, ME), Ok(()));
    let mut f = s[3].clone();
    assert_eq!(icmpv6::echo_reply_in_place(&mut f, ME), Ok(()));
    assert_eq!(classify(&s[4]).unwrap().l4, L4::Tcp);
    for f in &s {
        exercise(f);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn arbitrary_bytes(frame in proptest::collection::vec(any::<u8>(), 0..200)) {
        exercise(&frame);
    }

    #[test]
    fn mutated_valid_frames(
        seed in prop::sample::select(seeds()),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut f = seed;
        for (at, v) in flips {
            let i = at.index(f.len());
            f[i] = v;
        }
        exercise(&f);
        exercise(&f[..cut.index(f.len() + 1)]);
    }
}
