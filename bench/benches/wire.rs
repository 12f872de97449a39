//! Wire-format benchmarks: classify + parse an Ethernet/IPv4/TCP data segment carrying
//! timestamps and a DSS option, and emit one (targets: parse+classify ≤ 15 ns).

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_main, Criterion, Throughput};
use dataplane::seq::{Dsn, TcpSeq};
use dataplane::wire::ethernet::{ethertype, EthernetRepr};
use dataplane::wire::ipv4::Ipv4Repr;
use dataplane::wire::mptcp::{DsnField, Dss, Mapping, MptcpOption};
use dataplane::wire::tcp::{OptionsBuf, TcpFlags, TcpOption, TcpPacket, TcpRepr};
use dataplane::wire::{checksum, classify, ip_proto, MacAddr, L4};

const PAYLOAD: usize = 1400;

/// The headers of one segment: Ethernet, IPv4, TCP with timestamps and a DSS (32-bit
/// DATA_ACK, 64-bit mapping) — what a Linux peer sends mid-transfer.
struct Segment {
    eth: EthernetRepr,
    ip: Ipv4Repr,
    tcp: TcpRepr,
    dss: MptcpOption,
}

impl Segment {
    fn new() -> Self {
        let dss = Dss {
            data_ack: Some(DsnField::Bits32(0xd1b3_21fb)),
            mapping: Some(Mapping::new(
                Dsn::new(0x17c1_5fa7_d0f7_d6f0),
                1,
                PAYLOAD as u16,
                None,
            )),
            data_fin: false,
        };
        Segment {
            eth: EthernetRepr {
                dst: MacAddr([2, 0, 0, 0, 0, 1]),
                src: MacAddr([2, 0, 0, 0, 0, 2]),
                vlan_tci: None,
                ethertype: ethertype::IPV4,
            },
            ip: Ipv4Repr {
                src: Ipv4Addr::new(10, 0, 1, 2),
                dst: Ipv4Addr::new(10, 0, 1, 1),
                protocol: ip_proto::TCP,
                payload_len: 0,
                ttl: 64,
                tos: 0,
                ident: 0x1234,
                dont_frag: true,
            },
            tcp: TcpRepr {
                src_port: 40000,
                dst_port: 443,
                seq: TcpSeq::new(0xc730_4b60),
                ack: TcpSeq::new(0x1234_5679),
                flags: TcpFlags::ACK | TcpFlags::PSH,
                window: 502,
                urgent: 0,
            },
            dss: MptcpOption::Dss(dss),
        }
    }

    /// Emits the headers into `frame` (payload already in place after them); returns
    /// the header length. The TCP checksum is left to the port (offload form).
    fn emit(&self, frame: &mut [u8]) -> Option<usize> {
        let mut opts = OptionsBuf::new();
        opts.push_timestamps(0x0102_0304, 0x0506_0708, false).ok()?;
        opts.push_mptcp(&self.dss).ok()?;
        let tcp_len = TcpRepr::header_len(&opts) + PAYLOAD;
        let l2 = self.eth.emit(frame).ok()?;
        let ip = Ipv4Repr {
            payload_len: tcp_len as u16,
            ..self.ip
        };
        let l3 = ip.emit(frame.get_mut(l2..)?).ok()?;
        let at = l2 + l3;
        let hl = self.tcp.emit(frame.get_mut(at..)?, &opts).ok()?;
        let pseudo = checksum::pseudo_header_v4(ip.src, ip.dst, ip_proto::TCP, tcp_len as u16);
        TcpPacket::parse(frame.get_mut(at..at + tcp_len)?)
            .ok()?
            .fill_offload_checksum(pseudo);
        Some(at + hl)
    }
}

/// What the receive path extracts: classification, sequence numbers, timestamps, DSS.
#[inline(never)]
fn parse(frame: &[u8]) -> Option<(TcpSeq, u32, Dss)> {
    let f = classify(frame).ok()?;
    if f.l4 != L4::Tcp {
        return None;
    }
    let tcp = TcpPacket::parse(f.l4_bytes(frame)).ok()?;
    let (mut ts, mut dss) = (0, None);
    for o in tcp.options() {
        match o {
            Ok(TcpOption::Timestamps { tsval, .. }) => ts = tsval,
            Ok(TcpOption::Mptcp(bytes)) => {
                if let Ok(MptcpOption::Dss(d)) = MptcpOption::parse(bytes) {
                    dss = Some(d);
                }
            }
            _ => {}
        }
    }
    Some((tcp.seq(), ts, dss?))
}

fn benches(c: &mut Criterion) {
    let seg = Segment::new();
    let mut frame = vec![0xabu8; 14 + 20 + 20 + 12 + 24 + PAYLOAD];
    let Some(hdrs) = seg.emit(&mut frame) else {
        return;
    };
    assert_eq!(hdrs, 90);
    assert!(parse(&frame).is_some());

    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Elements(1));
    g.bench_function("classify", |b| b.iter(|| classify(black_box(&frame))));
    g.bench_function("parse_classify_ts_dss", |b| {
        b.iter(|| parse(black_box(&frame)))
    });
    g.bench_function("emit_eth_ipv4_tcp_ts_dss", |b| {
        b.iter(|| seg.emit(black_box(&mut frame)))
    });
    let segment = &frame[34..];
    g.bench_function("tcp_parse_and_option_walk", |b| {
        b.iter(|| {
            let tcp = TcpPacket::parse(black_box(segment)).ok()?;
            tcp.options().filter_map(Result::ok).last().map(|_| ())
        })
    });
    let dss = &segment[20 + 12..20 + 12 + 22];
    g.bench_function("mptcp_dss_parse", |b| {
        b.iter(|| MptcpOption::parse(black_box(dss)))
    });
    g.bench_function("checksum_tcp_segment_1456B", |b| {
        b.iter(|| checksum::sum(black_box(segment)))
    });
    g.finish();
}

mod group {
    criterion::criterion_group!(wire, super::benches);
}
criterion_main!(group::wire);
