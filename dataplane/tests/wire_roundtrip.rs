//! Emit → parse round trips for every header mpgw emits, and checksum properties.

// Helpers outside #[test] functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::{Ipv4Addr, Ipv6Addr};

use dataplane::seq::TcpSeq;
use dataplane::wire::ethernet::{ethertype, EthernetFrame, EthernetRepr};
use dataplane::wire::icmpv6::NeighborAdvert;
use dataplane::wire::ipv4::{Ipv4Packet, Ipv4Repr};
use dataplane::wire::ipv6::{Ipv6Packet, Ipv6Repr};
use dataplane::wire::mptcp::{Dss, Mapping, MptcpOption};
use dataplane::wire::tcp::{OptionsBuf, TcpFlags, TcpOption, TcpPacket, TcpRepr};
use dataplane::wire::{checksum, classify, ip_proto, MacAddr, L3, L4};
use proptest::prelude::*;

fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr)
}

fn ipv4_repr() -> impl Strategy<Value = Ipv4Repr> {
    (
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        any::<u8>(),
        0u16..2000,
        any::<u8>(),
        any::<u8>(),
        any::<u16>(),
        any::<bool>(),
    )
        .prop_map(
            |(s, d, protocol, payload_len, ttl, tos, ident, dont_frag)| Ipv4Repr {
                src: Ipv4Addr::from(s),
                dst: Ipv4Addr::from(d),
                protocol,
                payload_len,
                ttl,
                tos,
                ident,
                dont_frag,
            },
        )
}

fn ipv6_repr() -> impl Strategy<Value = Ipv6Repr> {
    let upper =
        any::<u8>().prop_filter("not an extension header", |n| ![0, 43, 44, 60].contains(n));
    (
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        upper,
        0u16..2000,
        any::<u8>(),
        any::<u8>(),
        0u32..1 << 20,
    )
        .prop_map(
            |(s, d, next_header, payload_len, hop_limit, traffic_class, flow_label)| Ipv6Repr {
                src: Ipv6Addr::from(s),
                dst: Ipv6Addr::from(d),
                next_header,
                payload_len,
                hop_limit,
                traffic_class,
                flow_label,
            },
        )
}

/// TCP options in Linux's order; those that do not fit the budget are left out.
#[derive(Debug, Clone)]
struct Opts {
    mss: Option<u16>,
    ts: Option<(u32, u32, bool)>,
    ws: Option<u8>,
    sack: Vec<(u32, u32)>,
    dss: Option<(u64, u32, u16)>,
}

fn opts() -> impl Strategy<Value = Opts> {
    (
        any::<Option<u16>>(),
        any::<Option<(u32, u32, bool)>>(),
        any::<Option<u8>>(),
        proptest::collection::vec(any::<(u32, u32)>(), 0..5),
        any::<Option<(u64, u32, u16)>>(),
    )
        .prop_map(|(mss, ts, ws, sack, dss)| Opts {
            mss,
            ts,
            ws,
            sack,
            dss,
        })
}

/// Builds `o` into a budget; returns the expected parse, in order.
fn build(o: &Opts, b: &mut OptionsBuf) -> Vec<String> {
    let mut want = Vec::new();
    if let Some(m) = o.mss {
        if b.push_mss(m).is_ok() {
            want.push(format!("{:?}", TcpOption::Mss(m)));
        }
    }
    if let Some((v, e, sp)) = o.ts {
        if b.push_timestamps(v, e, sp).is_ok() {
            if sp {
                want.push(format!("{:?}", TcpOption::SackPermitted));
            }
            want.push(format!(
                "{:?}",
                TcpOption::Timestamps { tsval: v, tsecr: e }
            ));
        }
    }
    if let Some(w) = o.ws {
        if b.push_window_scale(w).is_ok() {
            want.push(format!("{:?}", TcpOption::WindowScale(w)));
        }
    }
    let blocks: Vec<_> = o
        .sack
        .iter()
        .map(|&(l, r)| (TcpSeq::new(l), TcpSeq::new(r)))
        .collect();
    if !blocks.is_empty() && b.push_sack(&blocks).is_ok() {
        want.push(format!("sack {blocks:?}"));
    }
    if let Some((dsn, ssn, len)) = o.dss {
        let opt = MptcpOption::Dss(Dss {
            data_ack: None,
            mapping: Some(Mapping::new(dataplane::seq::Dsn::new(dsn), ssn, len, None)),
            data_fin: false,
        });
        if b.push_mptcp(&opt).is_ok() {
            want.push(format!("{opt:?}"));
        }
    }
    want
}

fn describe(o: TcpOption<'_>) -> String {
    match o {
        TcpOption::Sack(s) => format!("sack {:?}", s.iter().collect::<Vec<_>>()),
        TcpOption::Mptcp(bytes) => format!("{:?}", MptcpOption::parse(bytes).unwrap()),
        other => format!("{other:?}"),
    }
}

proptest! {
    #[test]
    fn ethernet_round_trip(dst in mac(), src in mac(), tci: Option<u16>, et: u16) {
        prop_assume!(et != ethertype::VLAN);
        let repr = EthernetRepr { dst, src, vlan_tci: tci, ethertype: et };
        let mut buf = [0u8; 18];
        let n = repr.emit(&mut buf).unwrap();
        let e = EthernetFrame::parse(&buf[..n]).unwrap();
        prop_assert_eq!((e.dst(), e.src(), e.vlan_tci(), e.ethertype(), e.header_len()), (dst, src, tci, et, n));
    }

    #[test]
    fn ipv4_round_trip(r in ipv4_repr()) {
        let mut buf = vec![0u8; 20 + usize::from(r.payload_len)];
        prop_assert_eq!(r.emit(&mut buf), Ok(20));
        let ip = Ipv4Packet::parse(&buf[..]).unwrap();
        prop_assert!(ip.verify_checksum());
        prop_assert_eq!((ip.src(), ip.dst(), ip.protocol(), ip.ttl(), ip.tos()), (r.src, r.dst, r.protocol, r.ttl, r.tos));
        prop_assert_eq!((ip.ident(), ip.dont_frag(), ip.is_fragment()), (r.ident, r.dont_frag, false));
        prop_assert_eq!(ip.payload().len(), usize::from(r.payload_len));
    }

    #[test]
    fn ipv6_round_trip(r in ipv6_repr()) {
        let mut buf = vec![0u8; 40 + usize::from(r.payload_len)];
        prop_assert_eq!(r.emit(&mut buf), Ok(40));
        let ip = Ipv6Packet::parse(&buf[..]).unwrap();
        prop_assert_eq!((ip.src(), ip.dst(), ip.upper_protocol(), ip.upper_offset()), (r.src, r.dst, r.next_header, 40));
        prop_assert_eq!((ip.hop_limit(), ip.traffic_class(), ip.flow_label()), (r.hop_limit, r.traffic_class, r.flow_label));
        prop_assert_eq!(ip.payload_len(), usize::from(r.payload_len));
    }

    #[test]
    fn tcp_round_trip(
        ports: (u16, u16), seq: u32, ack: u32, flags: u8, window: u16, urgent: u16,
        o in opts(), payload in proptest::collection::vec(any::<u8>(), 0..64),
        addrs: ([u8; 4], [u8; 4]),
    ) {
        let repr = TcpRepr {
            src_port: ports.0, dst_port: ports.1, seq: TcpSeq::new(seq), ack: TcpSeq::new(ack),
            flags: TcpFlags(flags), window, urgent,
        };
        let mut b = OptionsBuf::new();
        let want = build(&o, &mut b);
        let mut buf = vec![0u8; 60 + payload.len()];
        let hl = repr.emit(&mut buf, &b).unwrap();
        prop_assert_eq!(hl, TcpRepr::header_len(&b));
        buf.truncate(hl + payload.len());
        buf[hl..].copy_from_slice(&payload);
        let (s, d) = (Ipv4Addr::from(addrs.0), Ipv4Addr::from(addrs.1));
        let pseudo = checksum::pseudo_header_v4(s, d, ip_proto::TCP, buf.len() as u16);
        TcpPacket::parse(&mut buf[..]).unwrap().fill_checksum(pseudo);
        let p = TcpPacket::parse(&buf[..]).unwrap();
        prop_assert!(p.verify_checksum(pseudo));
        prop_assert_eq!(TcpRepr::from_packet(&p), repr);
        prop_assert_eq!(p.payload(), &payload[..]);
        let got: Vec<String> = p.options().map(|o| describe(o.unwrap())).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn neighbor_advert_round_trip(flags in 0u8..8, target: [u8; 16], lla in proptest::option::of(mac())) {
        let na = NeighborAdvert { flags: flags << 5, target: Ipv6Addr::from(target), target_lla: lla };
        let mut buf = [0u8; 32];
        let n = na.emit(&mut buf).unwrap();
        prop_assert_eq!(n, na.len());
        prop_assert_eq!(NeighborAdvert::parse(&buf[..n]), Ok(na));
    }

    #[test]
    fn incremental_update_matches_recompute(
        mut msg in proptest::collection::vec(any::<u8>(), 4..200), at: prop::sample::Index, new: u16,
    ) {
        let at = at.index(msg.len() / 2 - 1) * 2;
        let before = checksum::checksum(&msg);
        let old = u16::from_be_bytes([msg[at], msg[at + 1]]);
        msg[at..at + 2].copy_from_slice(&new.to_be_bytes());
        let updated = checksum::update16(before, old, new);
        // 0x0000 and 0xffff are the same one's-complement value.
        let recomputed = checksum::checksum(&msg);
        prop_assert!(updated == recomputed || (updated | recomputed) == 0xffff && (updated & recomputed) == 0);
    }
}

#[test]
fn classify_a_data_segment_with_timestamps_and_dss() {
    let mut frame = vec![0u8; 14 + 20 + 60 + 100];
    EthernetRepr {
        dst: MacAddr([2, 0, 0, 0, 0, 1]),
        src: MacAddr([2, 0, 0, 0, 0, 2]),
        vlan_tci: None,
        ethertype: ethertype::IPV4,
    }
    .emit(&mut frame)
    .unwrap();
    let mut b = OptionsBuf::new();
    b.push_timestamps(7, 9, false).unwrap();
    let dss = Dss {
        data_ack: Some(dataplane::wire::mptcp::DsnField::Bits32(5)),
        mapping: Some(Mapping::new(
            dataplane::seq::Dsn::new(1 << 40),
            1,
            100,
            None,
        )),
        data_fin: false,
    };
    b.push_mptcp(&MptcpOption::Dss(dss)).unwrap();
    let tcp_len = TcpRepr::header_len(&b) + 100;
    let ip = Ipv4Repr {
        src: Ipv4Addr::new(10, 0, 0, 2),
        dst: Ipv4Addr::new(10, 0, 0, 1),
        protocol: ip_proto::TCP,
        payload_len: tcp_len as u16,
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_frag: true,
    };
    ip.emit(&mut frame[14..]).unwrap();
    let repr = TcpRepr {
        src_port: 1,
        dst_port: 2,
        seq: TcpSeq::new(3),
        ack: TcpSeq::new(4),
        flags: TcpFlags::ACK,
        window: 5,
        urgent: 0,
    };
    let hl = repr.emit(&mut frame[34..], &b).unwrap();
    frame.truncate(34 + tcp_len);
    let f = classify(&frame).unwrap();
    assert_eq!(
        (f.l3, f.l4, f.l4_offset, f.l4_len),
        (L3::Ipv4, L4::Tcp, 34, tcp_len)
    );
    let tcp = TcpPacket::parse(f.l4_bytes(&frame)).unwrap();
    assert_eq!(tcp.header_len(), hl);
    let opts: Vec<_> = tcp.options().collect();
    assert_eq!(opts.len(), 2);
    let Ok(TcpOption::Mptcp(m)) = opts[1] else {
        panic!("{opts:?}")
    };
    assert_eq!(MptcpOption::parse(m), Ok(MptcpOption::Dss(dss)));
}
