//! Wire-format benchmarks: classify + parse an Ethernet/IPv4/TCP data segment carrying
//! timestamps and a DSS option, and emit one (targets: parse+classify ≤ 15 ns).
//!
//! The parse is also done with etherparse's slices and smoltcp's wire module on the same
//! bytes (`parse_classify_ts_dss/*`): the comparison the wire layer's make-or-buy
//! decision rests on.

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_main, Criterion, Throughput};
use dataplane::seq::{Dsn, TcpSeq};
use dataplane::wire::ethernet::{ethertype, EthernetRepr};
use dataplane::wire::ipv4::Ipv4Repr;
use dataplane::wire::mptcp::{DsnField, Dss, Mapping, MptcpOption};
use dataplane::wire::tcp::{OptionsBuf, TcpFlags, TcpPacket, TcpRepr};
use dataplane::wire::{checksum, classify, ip_proto, MacAddr};

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

/// What the receive path extracts: sequence number, TSval, DSS.
type Extracted = (TcpSeq, u32, Dss);

/// The receive path with mpgw's views: classify, then one walk for timestamps and DSS.
#[inline(never)]
fn parse(frame: &[u8]) -> Option<Extracted> {
    let tcp = classify(frame).ok()?.tcp(frame)?;
    let opts = tcp.fast_path_options();
    Some((tcp.seq(), opts.timestamps?.0, opts.dss?.decode()))
}

/// The DSS in an MPTCP option found by another crate's walk (neither crate decodes
/// MPTCP, so all three share mpgw's DSS parser).
#[inline(always)]
fn dss_of(opt: &[u8]) -> Option<Dss> {
    match MptcpOption::parse(opt) {
        Ok(MptcpOption::Dss(d)) => Some(d),
        _ => None,
    }
}

/// The same job with etherparse's strict `SlicedPacket`. Its option iterator stops at
/// the first kind it does not know (MPTCP), so the walk resumes after each such option
/// by its length byte.
#[inline(never)]
fn parse_etherparse(frame: &[u8]) -> Option<Extracted> {
    let p = etherparse::SlicedPacket::from_ethernet(frame).ok()?;
    let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else {
        return None;
    };
    let (ts, dss) = etherparse_options(tcp.options());
    Some((TcpSeq::new(tcp.sequence_number()), ts?, dss?))
}

/// The same job with etherparse's `LaxSlicedPacket` (tolerates lengths past the buffer).
#[inline(never)]
fn parse_etherparse_lax(frame: &[u8]) -> Option<Extracted> {
    let p = etherparse::LaxSlicedPacket::from_ethernet(frame).ok()?;
    let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else {
        return None;
    };
    let (ts, dss) = etherparse_options(tcp.options());
    Some((TcpSeq::new(tcp.sequence_number()), ts?, dss?))
}

/// Timestamps and DSS from etherparse's option iterator.
#[inline(always)]
fn etherparse_options(mut rest: &[u8]) -> (Option<u32>, Option<Dss>) {
    use etherparse::{TcpOptionElement, TcpOptionReadError};
    let (mut ts, mut dss) = (None, None);
    'walk: loop {
        let mut it = etherparse::TcpOptionsIterator::from_slice(rest);
        loop {
            let at = it.rest();
            match it.next() {
                None => break 'walk,
                Some(Ok(TcpOptionElement::Timestamp(tsval, _))) => ts = Some(tsval),
                Some(Ok(_)) => {}
                Some(Err(TcpOptionReadError::UnknownId(_))) => {
                    let len = usize::from(*at.get(1).unwrap_or(&0));
                    if len < 2 || len > at.len() {
                        break 'walk;
                    }
                    if at[0] == dataplane::wire::mptcp::KIND {
                        dss = dss_of(at).or(dss);
                    }
                    rest = &at[len..];
                    continue 'walk;
                }
                Some(Err(_)) => break 'walk,
            }
        }
    }
    (ts, dss)
}

/// The same job with smoltcp's wire module: Ethernet, IPv4 (version, fragment and
/// protocol checked by hand: `new_checked` checks lengths only), TCP and its options.
#[inline(never)]
fn parse_smoltcp(frame: &[u8]) -> Option<Extracted> {
    use smoltcp::wire::{
        EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpOption as SmolOption,
        TcpPacket as SmolTcp,
    };
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.version() != 4
        || ip.more_frags()
        || ip.frag_offset() != 0
        || ip.next_header() != IpProtocol::Tcp
    {
        return None;
    }
    let tcp = SmolTcp::new_checked(ip.payload()).ok()?;
    let (mut ts, mut dss) = (None, None);
    let mut rest = tcp.options();
    while !rest.is_empty() {
        let at = rest;
        let Ok((next, opt)) = SmolOption::parse(at) else {
            break;
        };
        match opt {
            SmolOption::EndOfList => break,
            SmolOption::TimeStamp { tsval, .. } => ts = Some(tsval),
            SmolOption::Unknown {
                kind: dataplane::wire::mptcp::KIND,
                ..
            } => dss = dss_of(at).or(dss),
            _ => {}
        }
        rest = next;
    }
    Some((TcpSeq::new(tcp.seq_number().0 as u32), ts?, dss?))
}

fn benches(c: &mut Criterion) {
    let seg = Segment::new();
    let mut frame = vec![0xabu8; 14 + 20 + 20 + 12 + 24 + PAYLOAD];
    let Some(hdrs) = seg.emit(&mut frame) else {
        return;
    };
    assert_eq!(hdrs, 90);
    let want = parse(&frame);
    assert!(want.is_some());
    assert_eq!(parse_etherparse(&frame), want);
    assert_eq!(parse_etherparse_lax(&frame), want);
    assert_eq!(parse_smoltcp(&frame), want);

    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Elements(1));
    g.bench_function("classify", |b| b.iter(|| classify(black_box(&frame))));
    g.bench_function("parse_classify_ts_dss", |b| {
        b.iter(|| parse(black_box(&frame)))
    });
    g.bench_function("parse_classify_ts_dss/etherparse_sliced", |b| {
        b.iter(|| parse_etherparse(black_box(&frame)))
    });
    g.bench_function("parse_classify_ts_dss/etherparse_lax", |b| {
        b.iter(|| parse_etherparse_lax(black_box(&frame)))
    });
    g.bench_function("parse_classify_ts_dss/smoltcp", |b| {
        b.iter(|| parse_smoltcp(black_box(&frame)))
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
