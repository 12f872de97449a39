//! The worker times what it does: a connection's handshake lands in its setup histogram
//! (SYN-ACK out → ACK in, on the worker's clock), busy polls in the burst histogram.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use crossbeam::channel::Sender;
use dataplane::diag::DiagMode;
use dataplane::host::{HostPort, IfAddr};
use dataplane::mptcp::stack::Stack;
use dataplane::port::heap::{HeapPool, HeapShared};
use dataplane::port::mem::{link, LinkConfig, MemPort, SimClock};
use dataplane::port::{Burst, Port};
use dataplane::stats::{counters, Counter, CounterReader, Latencies, Timing};
use dataplane::tcp::emit::{emit_headers, ChecksumMode, L2};
use dataplane::tcp::ingress::segment_from_frame;
use dataplane::tcp::secrets::Secrets;
use dataplane::tcp::table::TableConfig;
use dataplane::tcp::{FourTuple, Instant, NoHook, SegmentOut, Table};
use dataplane::wire::MacAddr;
use dataplane::worker::{Peers, TcpSetup, Worker, WorkerPort};
use std::net::{Ipv4Addr, SocketAddr};

const GW_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 1]);
const PEER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 2]);
const GW4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// An ARP request from the peer for the gateway's address (the gateway learns the
/// peer's MAC from it).
fn arp_request() -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&PEER_MAC.0);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&PEER_MAC.0);
    f.extend_from_slice(&PEER4.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&GW4.octets());
    f
}

fn send(peer: &mut MemPort, pool: &HeapPool, frames: impl IntoIterator<Item = Vec<u8>>) {
    let mut burst = Burst::new();
    for f in frames {
        burst.push(pool.alloc_from(&f).unwrap()).ok().unwrap();
    }
    peer.tx_burst(&mut burst);
}

/// The client's segments as frames to the gateway.
fn frames(out: &mut Vec<(FourTuple, SegmentOut<HeapShared>)>) -> Vec<Vec<u8>> {
    let l2 = L2 {
        src: PEER_MAC,
        dst: GW_MAC,
        vlan_tci: None,
    };
    out.drain(..)
        .map(|(tuple, seg)| {
            let mut f = vec![0u8; 128];
            let hl = emit_headers(&mut f, &l2, &tuple, &seg, ChecksumMode::Full).unwrap();
            f.truncate(hl);
            f
        })
        .collect()
}

/// The gateway's discard service.
const LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(GW4), 9);

/// A worker with one port serving the discard service on [`LISTEN`], the peer's end of
/// its link, its counters and its (idle) command channel.
fn gateway(
    pool: &HeapPool,
    clock: &SimClock,
) -> (
    MemPort,
    Worker<MemPort>,
    CounterReader,
    Sender<dataplane::worker::Command>,
) {
    let (peer, gw) = link(LinkConfig::default(), pool, clock);
    let addrs = [IfAddr {
        addr: GW4.into(),
        prefix: 24,
    }];
    let listen = LISTEN;
    let (writer, reader) = counters();
    let (tx, rx) = crossbeam::channel::bounded(1);
    let tcp = TcpSetup {
        table: TableConfig::default(),
        secrets: Secrets::new([7; 32]),
        mptcp: dataplane::mptcp::stack::Config::default(),
        keys: dataplane::mptcp::crypto::KeySource::from_seed([7; 32]),
        worker: (0, 1),
        signal: Vec::new(),
        diag: vec![(listen, DiagMode::Discard)],
        relay: dataplane::relay::RelayConfig::default(),
        listeners: Vec::new(),
        path_manager: dataplane::pm::PathManager::new(
            dataplane::pm::PathManagerKind::Default,
            Vec::new(),
        ),
    };
    let peers = Peers {
        handoff: dataplane::handoff::handoffs(1).remove(0),
    };
    let host = HostPort::new(GW_MAC, &addrs, None, None);
    let worker = Worker::new(vec![WorkerPort::new(gw, host)], tcp, peers, writer, rx, 0);
    (peer, worker, reader, tx)
}

#[test]
fn a_handshake_is_timed_from_syn_ack_to_ack() {
    let pool = HeapPool::new(256);
    let clock = SimClock::new();
    let (mut peer, mut worker, reader, _commands) = gateway(&pool, &clock);
    let listen = LISTEN;
    let t0 = Instant::default();
    let mut client: Table<HeapShared, NoHook> =
        Table::new(TableConfig::default(), Secrets::new([1; 32]), t0);
    let mut out = Vec::new();
    let tuple = FourTuple {
        local: SocketAddr::from((PEER4, 40_000)),
        remote: listen,
    };
    client.connect(tuple, NoHook, t0, &mut out).unwrap();
    // ARP and SYN at 1 ms: the SYN-ACK goes out in the same poll.
    send(
        &mut peer,
        &pool,
        [arp_request()].into_iter().chain(frames(&mut out)),
    );
    assert_eq!(worker.poll(1_000_000), 2);
    let mut replies = Burst::new();
    peer.rx_burst(&mut replies);
    let mut syn_acks = 0;
    for buf in replies.drain() {
        if let Ok((tuple, seg)) = segment_from_frame(buf, true) {
            syn_acks += 1;
            client.on_segment(tuple, seg, t0, &mut out);
        }
    }
    assert_eq!(syn_acks, 1);
    // The handshake's ACK arrives 4 ms later.
    send(&mut peer, &pool, frames(&mut out));
    assert_eq!(worker.poll(5_000_000), 1);
    worker.publish_gauges();

    let mut setups = Latencies::new().unwrap();
    reader.drain(Timing::Setup, &mut setups);
    assert_eq!((setups.count(), setups.sum_ns()), (1, 4_000_000));
    assert_eq!(reader.get(Counter::DiagConnections), 1);
    // Both polls received packets, but `poll` alone is not timed: only `run` times
    // iterations, so the burst histogram stays empty here.
    let mut bursts = Latencies::new().unwrap();
    reader.drain(Timing::Burst, &mut bursts);
    assert_eq!(bursts.count(), 0);
}

#[test]
fn published_gauges_count_an_established_mptcp_connection_by_state_and_port() {
    let pool = HeapPool::new(256);
    let clock = SimClock::new();
    let (mut peer, mut worker, reader, _commands) = gateway(&pool, &clock);
    let t0 = Instant::default();
    let mut client: Stack<HeapShared> = Stack::new(
        TableConfig::default(),
        Secrets::new([1; 32]),
        dataplane::mptcp::stack::Config::default(),
        dataplane::mptcp::crypto::KeySource::from_seed([1; 32]),
        (0, 1),
        t0,
    );
    let mut out = Vec::new();
    let local = SocketAddr::from((PEER4, 40_000));
    assert!(client.connect(local, LISTEN, true, t0, &mut out).is_some());
    send(
        &mut peer,
        &pool,
        [arp_request()].into_iter().chain(frames(&mut out)),
    );
    worker.poll(1_000_000);
    worker.publish_gauges();
    assert_eq!(reader.get(Counter::MptcpEstablished), 0, "half-open");
    let mut replies = Burst::new();
    peer.rx_burst(&mut replies);
    for buf in replies.drain() {
        if let Ok((tuple, seg)) = segment_from_frame(buf, true) {
            client.on_segment(tuple, seg, t0, &mut out);
        }
    }
    // The third ACK (with MP_CAPABLE and both keys).
    send(&mut peer, &pool, frames(&mut out));
    worker.poll(2_000_000);
    worker.publish_gauges();
    assert_eq!(reader.get(Counter::MptcpEstablished), 1);
    assert_eq!(reader.get(Counter::MptcpFallbackOpen), 0);
    let paths = reader.paths();
    assert_eq!((paths[0].subflows, paths[0].rtt_samples), (1, 1));
    assert!(paths[0].srtt_sum_ns > 0);
    assert_eq!(paths[1].subflows, 0);
}
