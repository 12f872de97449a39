//! The worker loop over the in-memory port: it answers ARP, ICMP echo, neighbour
//! solicitation and ICMPv6 echo for its own addresses out of the port they came in on,
//! drops and counts everything else, and leaks no buffer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use dataplane::diag::MAX_SOURCES;
use dataplane::host::{HostPort, IfAddr};
use dataplane::port::heap::HeapPool;
use dataplane::port::mem::{link, LinkConfig, MemPort, SimClock};
use dataplane::port::{Burst, PacketBuf, Port};
use dataplane::stats::{counters, Counter, CounterReader};
use dataplane::tcp::secrets::Secrets;
use dataplane::tcp::table::TableConfig;
use dataplane::wire::arp::{self, ArpPacket};
use dataplane::wire::checksum;
use dataplane::wire::ethernet::{ethertype, EthernetFrame, EthernetRepr};
use dataplane::wire::icmpv6::{self, NeighborAdvert};
use dataplane::wire::ipv4::{Ipv4Packet, Ipv4Repr};
use dataplane::wire::ipv6::{solicited_node, Ipv6Packet, Ipv6Repr};
use dataplane::wire::{ip_proto, MacAddr};
use dataplane::worker::{TcpSetup, Worker, WorkerPort};
use std::net::{Ipv4Addr, Ipv6Addr};

const GW_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 1]);
const PEER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 2]);
const GW4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const GW6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1);
const PEER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 2);

struct Rig {
    pool: HeapPool,
    peer: MemPort,
    worker: Worker<MemPort>,
    counters: CounterReader,
}

fn rig() -> Rig {
    rig_with(None, Vec::new(), Vec::new())
}

/// A rig whose port is on VLAN `vlan`, with diagnostic services `diag` and relay
/// listeners `listeners`.
fn rig_with(
    vlan: Option<u16>,
    diag: Vec<(std::net::SocketAddr, dataplane::diag::DiagMode)>,
    listeners: Vec<dataplane::relay::Listener>,
) -> Rig {
    rig_full(vlan, diag, listeners, (0, 1), None)
}

/// As [`rig_with`], the worker being `worker` (index, count) and its port spreading
/// flows by `rss`.
fn rig_full(
    vlan: Option<u16>,
    diag: Vec<(std::net::SocketAddr, dataplane::diag::DiagMode)>,
    listeners: Vec<dataplane::relay::Listener>,
    worker: (u16, u16),
    rss: Option<dataplane::rss::Rss>,
) -> Rig {
    let pool = HeapPool::new(256);
    let clock = SimClock::new();
    let (peer, gw) = link(LinkConfig::default(), &pool, &clock);
    let addrs = [
        IfAddr {
            addr: GW4.into(),
            prefix: 24,
        },
        IfAddr {
            addr: GW6.into(),
            prefix: 64,
        },
    ];
    let mut host = HostPort::new(GW_MAC, &addrs, None, None);
    host.set_vlan(vlan);
    let (writer, reader) = counters();
    let (_tx, rx) = crossbeam::channel::bounded(1);
    let tcp = TcpSetup {
        table: TableConfig::default(),
        secrets: Secrets::new([7; 32]),
        mptcp: dataplane::mptcp::stack::Config::default(),
        keys: dataplane::mptcp::crypto::KeySource::from_seed([7; 32]),
        worker,
        signal: Vec::new(),
        diag,
        relay: dataplane::relay::RelayConfig {
            worker,
            ..Default::default()
        },
        listeners,
        path_manager: dataplane::pm::PathManager::new(
            dataplane::pm::PathManagerKind::Default,
            Vec::new(),
        ),
    };
    let peers = dataplane::worker::Peers {
        handoff: dataplane::handoff::handoffs(worker.1).remove(usize::from(worker.0)),
    };
    let port = WorkerPort::new(gw, host).with_rss(rss);
    let worker = Worker::new(vec![port], tcp, peers, writer, rx, 0);
    Rig {
        pool,
        peer,
        worker,
        counters: reader,
    }
}

impl Rig {
    /// Sends `frame` to the worker, polls once, returns what came back.
    fn exchange(&mut self, frame: &[u8]) -> Vec<Vec<u8>> {
        let mut burst = Burst::new();
        burst
            .push(self.pool.alloc_from(frame).unwrap())
            .ok()
            .unwrap();
        assert_eq!(self.peer.tx_burst(&mut burst), 1);
        assert_eq!(self.worker.poll(0), 1);
        let mut out = Burst::new();
        self.peer.rx_burst(&mut out);
        out.drain().map(|b| b.data().to_vec()).collect()
    }

    fn count(&self, c: Counter) -> u64 {
        self.counters.get(c)
    }
}

fn eth(dst: MacAddr, ethertype: u16, payload_len: usize) -> Vec<u8> {
    let repr = EthernetRepr {
        dst,
        src: PEER_MAC,
        vlan_tci: None,
        ethertype,
    };
    let mut f = vec![0u8; repr.len() + payload_len];
    repr.emit(&mut f).unwrap();
    f
}

fn arp_request(target: Ipv4Addr) -> Vec<u8> {
    let mut f = eth(MacAddr::BROADCAST, ethertype::ARP, arp::PACKET_LEN);
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    let mut a = ArpPacket::parse(&mut f[14..]).unwrap();
    a.set_sender(PEER_MAC, PEER4);
    a.set_target(MacAddr::ZERO, target);
    f
}

fn ipv4(dst: Ipv4Addr, protocol: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = eth(GW_MAC, ethertype::IPV4, 20 + l4.len());
    let ip = Ipv4Repr {
        src: PEER4,
        dst,
        protocol,
        payload_len: l4.len() as u16,
        ttl: 64,
        tos: 0,
        ident: 7,
        dont_frag: true,
    };
    ip.emit(&mut f[14..]).unwrap();
    f[34..].copy_from_slice(l4);
    f
}

fn icmp_echo_request() -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
    m.extend_from_slice(b"ping payload");
    let c = checksum::checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

fn ipv6(dst_mac: MacAddr, src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, icmp: &mut [u8]) -> Vec<u8> {
    let mut f = eth(dst_mac, ethertype::IPV6, 40 + icmp.len());
    let ip = Ipv6Repr {
        src,
        dst,
        next_header: ip_proto::ICMPV6,
        payload_len: icmp.len() as u16,
        hop_limit,
        traffic_class: 0,
        flow_label: 0,
    };
    ip.emit(&mut f[14..]).unwrap();
    let pseudo = checksum::pseudo_header_v6(&src, &dst, ip_proto::ICMPV6, icmp.len() as u32);
    icmp[2..4].fill(0);
    let c = !checksum::combine(pseudo, checksum::sum(icmp));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    f[54..].copy_from_slice(icmp);
    f
}

fn neighbor_solicit(target: Ipv6Addr) -> Vec<u8> {
    let mut m = vec![icmpv6::NEIGHBOR_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    m.extend_from_slice(&[1, 1]);
    m.extend_from_slice(&PEER_MAC.0);
    let group = solicited_node(&target);
    ipv6(
        MacAddr::from_ipv6_multicast(&group),
        PEER6,
        group,
        255,
        &mut m,
    )
}

/// A TCP SYN from the peer (port 40000) to `dst`, tagged `vlan`.
fn syn(dst: std::net::SocketAddr, vlan: Option<u16>) -> Vec<u8> {
    let src = std::net::SocketAddr::new(PEER4.into(), 40_000);
    let syn = dataplane::wire::tcp::TcpFlags::SYN;
    tcp_frame(src, dst, syn, (1000, 0), vlan)
}

/// A TCP segment from the peer's `src` to `dst` with `flags` and (seq, ack).
fn tcp_frame(
    src: std::net::SocketAddr,
    dst: std::net::SocketAddr,
    flags: dataplane::wire::tcp::TcpFlags,
    (seq, ack): (u32, u32),
    vlan: Option<u16>,
) -> Vec<u8> {
    use dataplane::tcp::emit::{emit_headers, ChecksumMode, L2};
    use dataplane::tcp::{FourTuple, SegmentOut};
    use dataplane::wire::tcp::OptionsBuf;
    let tuple = FourTuple {
        local: src,
        remote: dst,
    };
    let mut options = OptionsBuf::new();
    options.push_mss(1460).unwrap();
    let syn: SegmentOut<dataplane::port::heap::HeapShared> = SegmentOut {
        seq: dataplane::seq::TcpSeq::new(seq),
        ack: dataplane::seq::TcpSeq::new(ack),
        flags,
        window: 65_535,
        options,
        payload: None,
        path: Default::default(),
    };
    let l2 = L2 {
        src: PEER_MAC,
        dst: GW_MAC,
        vlan_tci: vlan,
    };
    let mut hdr = [0u8; 128];
    let n = emit_headers(&mut hdr, &l2, &tuple, &syn, ChecksumMode::Full).unwrap();
    hdr[..n].to_vec()
}

#[test]
fn arp_request_for_an_own_address_is_answered() {
    let mut r = rig();
    let out = r.exchange(&arp_request(GW4));
    assert_eq!(out.len(), 1);
    let e = EthernetFrame::parse(&out[0][..]).unwrap();
    assert_eq!((e.dst(), e.src()), (PEER_MAC, GW_MAC));
    let a = ArpPacket::parse(e.payload()).unwrap();
    assert_eq!(a.op(), arp::OP_REPLY);
    assert_eq!((a.sha(), a.spa()), (GW_MAC, GW4));
    assert_eq!((a.tha(), a.tpa()), (PEER_MAC, PEER4));
    assert_eq!(r.count(Counter::ArpReplies), 1);
    assert_eq!(r.count(Counter::TxPackets), 1);
    assert_eq!(
        r.worker.neighbors().get(0, PEER4.into()),
        Some(PEER_MAC),
        "requester learnt"
    );
}

#[test]
fn arp_request_for_another_address_is_dropped_and_counted() {
    let mut r = rig();
    assert!(r
        .exchange(&arp_request(Ipv4Addr::new(192, 0, 2, 77)))
        .is_empty());
    assert_eq!(r.count(Counter::DropNotForUs), 1);
    assert_eq!(
        r.pool.in_use(),
        MAX_SOURCES,
        "only the diagnostic pattern buffers"
    );
}

#[test]
fn icmp_echo_is_answered_with_valid_checksums() {
    let mut r = rig();
    let out = r.exchange(&ipv4(GW4, ip_proto::ICMP, &icmp_echo_request()));
    assert_eq!(out.len(), 1);
    let e = EthernetFrame::parse(&out[0][..]).unwrap();
    assert_eq!(e.dst(), PEER_MAC);
    let ip = Ipv4Packet::parse(e.payload()).unwrap();
    assert_eq!((ip.src(), ip.dst()), (GW4, PEER4));
    assert!(ip.verify_checksum());
    let icmp = ip.payload();
    assert_eq!(icmp[0], 0, "echo reply");
    assert_eq!(checksum::checksum(icmp), 0, "ICMP checksum verifies");
    assert_eq!(&icmp[8..], b"ping payload");
    assert_eq!(r.count(Counter::IcmpEchoReplies), 1);
}

#[test]
fn neighbor_solicitation_for_an_own_address_gets_an_advertisement() {
    let mut r = rig();
    let out = r.exchange(&neighbor_solicit(GW6));
    assert_eq!(out.len(), 1);
    let e = EthernetFrame::parse(&out[0][..]).unwrap();
    assert_eq!((e.dst(), e.src()), (PEER_MAC, GW_MAC));
    let ip = Ipv6Packet::parse(e.payload()).unwrap();
    assert_eq!((ip.src(), ip.dst(), ip.hop_limit()), (GW6, PEER6, 255));
    let na = NeighborAdvert::parse(ip.upper_payload()).unwrap();
    assert_eq!(na.target, GW6);
    assert_eq!(na.target_lla, Some(GW_MAC));
    assert_eq!(na.flags, icmpv6::NA_SOLICITED | icmpv6::NA_OVERRIDE);
    let pseudo = checksum::pseudo_header_v6(
        &GW6,
        &PEER6,
        ip_proto::ICMPV6,
        ip.upper_payload().len() as u32,
    );
    assert_eq!(
        checksum::combine(pseudo, checksum::sum(ip.upper_payload())),
        0xffff
    );
    assert_eq!(r.count(Counter::NdAdvertisements), 1);
    assert_eq!(
        r.worker.neighbors().get(0, PEER6.into()),
        Some(PEER_MAC),
        "solicitor learnt"
    );
}

#[test]
fn neighbor_solicitation_for_another_address_is_dropped() {
    let mut r = rig();
    let other = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x77);
    assert!(r.exchange(&neighbor_solicit(other)).is_empty());
    assert_eq!(r.count(Counter::DropNotForUs), 1);
}

#[test]
fn icmpv6_echo_is_answered() {
    let mut r = rig();
    let mut m = icmp_echo_request();
    m[0] = icmpv6::ECHO_REQUEST;
    let out = r.exchange(&ipv6(GW_MAC, PEER6, GW6, 64, &mut m));
    assert_eq!(out.len(), 1);
    let e = EthernetFrame::parse(&out[0][..]).unwrap();
    let ip = Ipv6Packet::parse(e.payload()).unwrap();
    assert_eq!((ip.src(), ip.dst()), (GW6, PEER6));
    let msg = ip.upper_payload();
    assert_eq!(msg[0], icmpv6::ECHO_REPLY);
    let pseudo = checksum::pseudo_header_v6(&GW6, &PEER6, ip_proto::ICMPV6, msg.len() as u32);
    assert_eq!(checksum::combine(pseudo, checksum::sum(msg)), 0xffff);
    assert_eq!(r.count(Counter::Icmp6EchoReplies), 1);
}

#[test]
fn everything_else_is_dropped_and_counted_without_leaks() {
    let mut r = rig();
    let cases: Vec<(Vec<u8>, Counter)> = vec![
        (
            ipv4(GW4, ip_proto::UDP, &[0, 9, 0, 9, 0, 8, 0, 0]),
            Counter::DropUnhandled,
        ),
        (
            ipv4(
                Ipv4Addr::new(203, 0, 113, 9),
                ip_proto::ICMP,
                &icmp_echo_request(),
            ),
            Counter::DropNotForUs,
        ),
        (eth(GW_MAC, 0x88b5, 46), Counter::DropUnknownEthertype),
        (vec![0xde, 0xad], Counter::DropMalformed),
        (
            ipv4(GW4, ip_proto::ICMP, &icmp_echo_request())[..30].to_vec(),
            Counter::DropMalformed,
        ),
    ];
    for (frame, counter) in cases {
        let before = r.count(counter);
        assert!(r.exchange(&frame).is_empty(), "{counter:?}");
        assert_eq!(r.count(counter), before + 1, "{counter:?}");
    }
    // A corrupted echo request is not answered.
    let mut bad = ipv4(GW4, ip_proto::ICMP, &icmp_echo_request());
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert!(r.exchange(&bad).is_empty());
    assert_eq!(r.count(Counter::IcmpEchoReplies), 0);
    assert_eq!(r.count(Counter::RxPackets), 6);
    assert_eq!(
        r.pool.in_use(),
        MAX_SOURCES,
        "every dropped buffer went back (the diagnostic patterns stay)"
    );
}

#[test]
fn commands_answer_snapshots_and_attach_a_monitor() {
    use dataplane::worker::Command;
    let mut rig = rig();
    let (tx, rx) = crossbeam::channel::bounded(1);
    assert!(rig.worker.command(Command::Snapshot(tx), 0));
    let snap = rx.try_recv().expect("an answer");
    assert_eq!(
        (snap.worker, snap.conns.len(), snap.truncated),
        (0, 0, false)
    );
    let (events, _rx) = crossbeam::channel::bounded(4);
    assert!(rig.worker.command(Command::Monitor(Some(events)), 0));
    assert!(rig.worker.stack().monitoring());
    assert!(rig.worker.command(Command::Monitor(None), 0));
    assert!(!rig.worker.stack().monitoring());
    assert!(!rig.worker.command(Command::Stop, 0));
}

#[test]
fn control_commands_time_failovers_and_reconfigure_the_stack() {
    use dataplane::mptcp::stack::{Config as MpConfig, SchedulerKind};
    use dataplane::worker::{Command, Reconfigure};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    let mut r = rig();
    let failover_us = Arc::new(AtomicU64::new(0));
    let detected = Instant::now() - Duration::from_millis(5);
    let down = Command::PortDown {
        port: 0,
        addrs: vec![GW4.into()],
        detected,
        failover_us: failover_us.clone(),
    };
    assert!(r.worker.command(down, 0));
    // No connection to move: the failover is over once the address is withdrawn.
    assert!(failover_us.load(Ordering::Relaxed) >= 5_000);
    assert_eq!(r.count(Counter::Failovers), 0);
    assert!(r.count(Counter::FailoverTimeUs) >= 5_000);
    let up = Command::PortUp {
        port: 0,
        addrs: vec![GW4.into()],
    };
    assert!(r.worker.command(up, 0));
    assert_eq!(r.count(Counter::Rejoins), 0);
    let reload = Command::Reconfigure(Box::new(Reconfigure {
        mptcp: MpConfig {
            scheduler: SchedulerKind::Blest,
            subflows: 5,
            recv_window: 1024,
            ..MpConfig::default()
        },
        signal: vec![GW4.into()],
        path_manager: dataplane::pm::PathManager::new(
            dataplane::pm::PathManagerKind::Default,
            Vec::new(),
        ),
    }));
    assert!(r.worker.command(reload, 0));
    let cfg = r.worker.stack().config();
    assert_eq!(cfg.scheduler, SchedulerKind::Blest);
    assert_eq!(cfg.subflows, 5);
    assert_ne!(cfg.recv_window, 1024, "buffers stay as created");
    assert_eq!(r.worker.stack().address_id_of(GW4.into()), Some(1));
    assert_eq!(r.count(Counter::Reconfigured), 1);
    assert!(!r.worker.command(Command::Stop, 0));
}

#[test]
fn an_armed_capture_copies_received_and_sent_frames_until_disarmed() {
    use dataplane::capture::{Direction, Tap};
    use dataplane::worker::Command;
    let mut rig = rig();
    let (tx, frames) = crossbeam::channel::bounded(8);
    assert!(rig.worker.command(
        Command::Capture(Some((0, Tap::new(0, 100, 1 << 20, tx)))),
        0
    ));
    let request = arp_request(GW4);
    let reply = rig.exchange(&request).remove(0);
    let got: Vec<_> = frames.try_iter().collect();
    assert_eq!(got.len(), 2, "the request in, the reply out");
    assert_eq!((got[0].dir, &got[0].data), (Direction::Rx, &request));
    assert_eq!((got[1].dir, &got[1].data), (Direction::Tx, &reply));
    assert!(got[0].ts_ns > 0 && got[1].ts_ns >= got[0].ts_ns);

    assert!(rig.worker.command(Command::Capture(None), 0));
    rig.exchange(&request);
    assert!(frames.try_recv().is_err(), "disarmed: nothing copied");
    assert_eq!(rig.count(Counter::CaptureDropped), 0);
}

#[test]
fn a_vlan_port_answers_arp_and_tcp_with_its_tag_and_ignores_other_frames() {
    let echo = std::net::SocketAddr::new(GW4.into(), 7);
    let mut r = rig_with(
        Some(100),
        vec![(echo, dataplane::diag::DiagMode::Echo)],
        Vec::new(),
    );
    // Untagged or on another VLAN: not for this port.
    assert!(r.exchange(&arp_request(GW4)).is_empty());
    let mut f = [0u8; 64];
    let n = arp::request_frame(&mut f, PEER_MAC, Some(200), PEER4, GW4).unwrap();
    assert!(r.exchange(&f[..n]).is_empty());
    assert_eq!(r.count(Counter::DropVlan), 2);
    // Tagged 100: answered with the tag (and the peer learnt).
    let n = arp::request_frame(&mut f, PEER_MAC, Some(100), PEER4, GW4).unwrap();
    let out = r.exchange(&f[..n]);
    assert_eq!(out.len(), 1);
    let eth = EthernetFrame::parse(&out[0][..]).unwrap();
    assert_eq!(
        (eth.vlan_id(), eth.ethertype()),
        (Some(100), ethertype::ARP)
    );
    // A tagged SYN to the echo service: the SYN-ACK leaves tagged.
    let out = r.exchange(&syn(echo, Some(100)));
    assert_eq!(out.len(), 1, "a SYN-ACK");
    let c = dataplane::wire::classify(&out[0]).unwrap();
    assert_eq!((c.vlan_tci, c.l3_offset), (Some(100), 18));
    let tcp = c.l4_bytes(&out[0]);
    assert_eq!(tcp[13], 0x12, "SYN|ACK");
    assert_eq!(r.count(Counter::DropVlan), 2);
}

#[test]
fn a_transparent_port_answers_a_matching_syn_as_its_destination_and_drops_the_rest() {
    use dataplane::relay::{Accept, Listener};
    use dataplane::transparent::Rule;
    let foreign = |port| std::net::SocketAddr::from(([203, 0, 113, 9], port));
    // Without a transparent listener, a SYN to a foreign address is not ours.
    let mut plain = rig();
    assert!(plain.exchange(&syn(foreign(80), None)).is_empty());
    assert_eq!(plain.count(Counter::DropNotForUs), 1);
    assert_eq!(plain.count(Counter::DropTransit), 0);

    let listener = Listener {
        accept: Accept::Transparent(Rule {
            ports: vec![0],
            dst_ports: vec![(80, 80)],
        }),
        backends: Vec::new(),
        mptcp: false,
    };
    let mut r = rig_with(None, Vec::new(), vec![listener]);
    // The peer asks for the gateway's own address (and is learnt).
    assert_eq!(r.exchange(&arp_request(GW4)).len(), 1);
    // Port 80: answered as 203.0.113.9 (the SYN-ACK's source).
    let out = r.exchange(&syn(foreign(80), None));
    assert_eq!(out.len(), 1, "a SYN-ACK");
    let c = dataplane::wire::classify(&out[0]).unwrap();
    let ip = Ipv4Packet::parse(&out[0][c.l3_offset..]).unwrap();
    assert_eq!((ip.src(), ip.dst()), (Ipv4Addr::new(203, 0, 113, 9), PEER4));
    let tcp = c.l4_bytes(&out[0]);
    assert_eq!(u16::from_be_bytes([tcp[0], tcp[1]]), 80);
    assert_eq!(tcp[13], 0x12, "SYN|ACK");
    // Another destination port: dropped and counted, no RST as someone else.
    assert!(r.exchange(&syn(foreign(443), None)).is_empty());
    assert_eq!(r.count(Counter::DropTransit), 1);
    // Not TCP: mpgw routes nothing.
    assert!(r
        .exchange(&ipv4(
            Ipv4Addr::new(203, 0, 113, 9),
            1,
            &icmp_echo_request()
        ))
        .is_empty());
    assert_eq!(r.count(Counter::DropNotForUs), 1);
    // ARP for the foreign address is not answered (the clients route through the
    // gateway's own address).
    assert!(r
        .exchange(&arp_request(Ipv4Addr::new(203, 0, 113, 9)))
        .is_empty());
}

#[test]
fn on_an_rss_port_syns_stay_and_opened_legs_take_ports_whose_replies_hash_home() {
    use dataplane::relay::{Accept, Listener};
    use dataplane::rss::{Rss, DEFAULT_KEY};
    use dataplane::wire::tcp::TcpFlags;
    use std::net::SocketAddr;
    let gw = SocketAddr::new(GW4.into(), 8080);
    let backend = SocketAddr::new(PEER4.into(), 9000);
    let client = SocketAddr::new(PEER4.into(), 40_000);
    let listener = || Listener {
        accept: Accept::Addr(gw),
        backends: vec![backend],
        mptcp: false,
    };
    let rss = Rss::spread(&DEFAULT_KEY, 128, 2).unwrap();
    let syn = tcp_frame(client, gw, TcpFlags::SYN, (1000, 0), None);
    // Without RSS, worker 1 of 2 sends a SYN it has no connection for round the ring.
    let mut plain = rig_full(None, Vec::new(), vec![listener()], (1, 2), None);
    assert!(plain.exchange(&syn).is_empty());
    assert_eq!(plain.count(Counter::HandoffOut), 1);

    // By RSS the queue is the owner: answered here.
    let mut r = rig_full(
        None,
        Vec::new(),
        vec![listener()],
        (1, 2),
        Some(rss.clone()),
    );
    assert_eq!(r.exchange(&arp_request(GW4)).len(), 1, "the peer is learnt");
    let out = r.exchange(&syn);
    assert_eq!(out.len(), 1, "a SYN-ACK");
    assert_eq!(r.count(Counter::HandoffOut), 0);
    // Each client's handshake completes: the relay opens its backend leg from a
    // local port that names this worker and whose replies RSS brings to its queue
    // (16 of them: by chance alone, 1 in 65 536).
    for client_port in 40_000..40_016 {
        let client = SocketAddr::new(PEER4.into(), client_port);
        let out = match client_port {
            40_000 => out.clone(),
            _ => r.exchange(&tcp_frame(client, gw, TcpFlags::SYN, (1000, 0), None)),
        };
        let c = dataplane::wire::classify(&out[0]).unwrap();
        let tcp = c.l4_bytes(&out[0]);
        assert_eq!(tcp[13], 0x12, "SYN|ACK");
        let their = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
        let ack = tcp_frame(
            client,
            gw,
            TcpFlags::ACK,
            (1001, their.wrapping_add(1)),
            None,
        );
        let out = r.exchange(&ack);
        let opened: Vec<u16> = out
            .iter()
            .filter_map(|f| {
                let c = dataplane::wire::classify(f).ok()?;
                let tcp = c.l4_bytes(f);
                let dst = u16::from_be_bytes([tcp[2], tcp[3]]);
                let src = u16::from_be_bytes([tcp[0], tcp[1]]);
                (dst == backend.port() && tcp[13] == 0x02).then_some(src)
            })
            .collect();
        assert_eq!(opened.len(), 1, "one SYN to the backend: {out:?}");
        let port = opened[0];
        assert_eq!((port - 32_768) % 2, 1, "the port names worker 1");
        let local = SocketAddr::new(GW4.into(), port);
        assert_eq!(rss.reply_queue(local, backend), Some(1), "port {port}");
    }
}
