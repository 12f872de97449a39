//! From TCP segment descriptions to frames on the right port.
//!
//! For each segment: the port is the one the remote address is on-link on, else the one
//! owning the connection's local address (else one with a next hop for it); the
//! neighbour is the remote address when it is on-link, else the port's next hop; its
//! MAC comes from the worker's neighbour table, which is asked to resolve what it lacks
//! (ARP request or neighbour solicitation). The Ethernet/IP/TCP headers are written into
//! a fresh small buffer and the payload is chained behind it by reference — zero copy:
//! the bytes that leave are the bytes that arrived (or the service's own buffer). On a
//! port whose driver sends single-segment frames only ([`Port::tx_chains`] false) the
//! payload is copied behind the headers instead (`tx_linearized`): such a driver copies
//! every frame into its own ring anyway.

use crate::neigh::{Lookup, NeighborTable};
use crate::port::{PacketBuf, Port};
use crate::stats::{Counter, CounterWriter, PathCounter};
use crate::tcp::emit::{emit_headers, ChecksumMode, L2};
use crate::tcp::{FourTuple, PathTx, SegmentOut};
use crate::wire::MacAddr;
use crate::worker::{SharedOf, WorkerPort};
use std::net::IpAddr;

/// Room reserved for the headers of one segment: Ethernet with a VLAN tag (18), IPv6
/// (40), TCP with a full option space (60).
const MAX_HEADERS: usize = 18 + 40 + 60;
/// Room for a solicitation: Ethernet with a VLAN tag (18), IPv6 (40), NS with its
/// option (32).
const MAX_SOLICITATION: usize = 18 + 40 + 32;

/// Segments waiting for their next hop's MAC, held at most this long (ns).
const PARK_NS: u64 = 3_000_000_000;
/// Segments waiting for a next hop's MAC, at most (Linux keeps a few per neighbour:
/// `unres_qlen`).
const MAX_PARKED: usize = 256;

/// Segments waiting for their next hop's MAC, each with the time it was first parked.
pub(crate) type Parked<S> = Vec<(u64, FourTuple, SegmentOut<S>)>;

/// Sends every segment of `out` (draining it) into its port's TX burst, flushing a
/// burst when it fills. A segment whose next hop is not resolved yet waits in
/// `parked` (bounded, for [`PARK_NS`]) and goes with a later call once the neighbour
/// answered, so the first segments to a new neighbour do not wait for a
/// retransmission. Segments that cannot go are dropped and counted: the TCP
/// connection retransmits them. An unknown or old neighbour is solicited (at most once
/// per retry interval, see [`NeighborTable::lookup`]). The payload of a segment that
/// goes counts on its port's path ([`SegmentOut::path`]).
pub(crate) fn transmit<P: Port>(
    ports: &mut [WorkerPort<P>],
    neighbors: &mut NeighborTable,
    out: &mut Vec<(FourTuple, SegmentOut<SharedOf<P>>)>,
    parked: &mut Parked<SharedOf<P>>,
    counters: &mut CounterWriter,
    now: u64,
) {
    let waiting = std::mem::take(parked);
    let fresh = out.drain(..).map(|(tuple, seg)| (now, tuple, seg));
    for (since, tuple, seg) in waiting.into_iter().chain(fresh) {
        let Some((index, hop)) = route(ports, &tuple) else {
            counters.inc(Counter::TxNoRoute);
            continue;
        };
        let wp = &mut ports[index];
        // At most u16::MAX ports: DPDK port ids are u16.
        let dst = match neighbors.lookup(index as u16, hop, now) {
            Lookup::Reachable(mac) => Some(mac),
            Lookup::Stale(mac) => {
                solicit(wp, hop, counters);
                Some(mac)
            }
            Lookup::Solicit => {
                solicit(wp, hop, counters);
                None
            }
            Lookup::Waiting => None,
        };
        let Some(dst) = dst else {
            if now.saturating_sub(since) < PARK_NS && parked.len() < MAX_PARKED {
                parked.push((since, tuple, seg));
            } else {
                counters.inc(Counter::TxNoNeighbor);
            }
            continue;
        };
        match frame(wp, dst, &tuple, &seg) {
            Ok(buf) => {
                if !wp.chains && seg.payload.is_some() {
                    counters.inc(Counter::TxLinearized);
                }
                counters.inc(Counter::TcpSegmentsOut);
                counters.add(Counter::TxBytes, buf.pkt_len() as u64);
                count_path(counters, index, seg.path, seg.data_len() as u64);
                push(wp, buf, counters);
            }
            Err(reason) => counters.inc(reason),
        }
    }
}

/// Counts `len` payload bytes of kind `path` sent through the port at `index`.
#[inline(always)]
fn count_path(counters: &mut CounterWriter, index: usize, path: PathTx, len: u64) {
    let extra = match path {
        PathTx::None => return,
        PathTx::New => None,
        PathTx::Retransmitted => Some(PathCounter::Retransmitted),
        PathTx::Reinjected => Some(PathCounter::Reinjected),
    };
    counters.add_path(index, PathCounter::Sent, len);
    if let Some(c) = extra {
        counters.add_path(index, c, len);
    }
}

/// The port and next hop towards `tuple.remote`: the port on whose subnet it lies,
/// else the port owning the local address (through its gateway), else — a
/// transparent connection, whose local address is a foreign destination — the first
/// port with a next hop for it. The source address stays the connection's, whichever
/// port carries it (a client may reach any gateway address over any path).
pub(crate) fn route<P: Port>(
    ports: &[WorkerPort<P>],
    tuple: &FourTuple,
) -> Option<(usize, IpAddr)> {
    let remote = tuple.remote.ip();
    let index = ports
        .iter()
        .position(|p| p.host.on_link(remote))
        .or_else(|| ports.iter().position(|p| p.host.owns(tuple.local.ip())))
        .or_else(|| ports.iter().position(|p| p.host.next_hop(remote).is_some()))?;
    let hop = ports[index].host.next_hop(tuple.remote.ip())?;
    Some((index, hop))
}

/// Queues a frame on the port, flushing its TX burst first when full.
fn push<P: Port>(wp: &mut WorkerPort<P>, buf: P::Buf, counters: &mut CounterWriter) {
    if wp.tx.is_full() {
        wp.flush(counters);
    }
    // Cannot fail: flushed above when full.
    let _ = wp.tx.push(buf);
}

/// Sends an ARP request or neighbour solicitation for `hop` out of the port.
pub(crate) fn solicit<P: Port>(wp: &mut WorkerPort<P>, hop: IpAddr, counters: &mut CounterWriter) {
    let Some(mut buf) = wp.port.alloc() else {
        counters.inc(Counter::TxNoBuffer);
        return;
    };
    let Some(room) = buf.append(MAX_SOLICITATION) else {
        counters.inc(Counter::TxNoBuffer);
        return;
    };
    match wp.host.solicit(room, hop) {
        Some(len) => {
            buf.trim_back(MAX_SOLICITATION - len);
            counters.inc(Counter::NeighborSolicitations);
            counters.add(Counter::TxBytes, len as u64);
            push(wp, buf, counters);
        }
        None => counters.inc(Counter::TxNoRoute),
    }
}

/// Builds the frame of one segment to the neighbour `dst`: headers, then the payload
/// chained by reference, or copied behind them where the port cannot send chains.
fn frame<P: Port>(
    wp: &mut WorkerPort<P>,
    dst: MacAddr,
    tuple: &FourTuple,
    seg: &SegmentOut<SharedOf<P>>,
) -> Result<P::Buf, Counter> {
    let l2 = L2 {
        src: wp.host.mac(),
        dst,
        vlan_tci: wp.host.vlan_tci(),
    };
    let mut buf = wp.port.alloc().ok_or(Counter::TxNoBuffer)?;
    let hdr = buf.append(MAX_HEADERS).ok_or(Counter::TxNoBuffer)?;
    let len = emit_headers(hdr, &l2, tuple, seg, ChecksumMode::Full)
        .map_err(|_| Counter::DropMalformed)?;
    buf.trim_back(MAX_HEADERS - len);
    match &seg.payload {
        Some(p) if wp.chains => buf
            .chain(p.buf(), p.offset(), p.len())
            .map_err(|_| Counter::TxNoBuffer)?,
        Some(p) => {
            let bytes = p.bytes();
            buf.append(bytes.len())
                .ok_or(Counter::TxOversize)?
                .copy_from_slice(bytes);
        }
        None => {}
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::host::IfAddr;
    use crate::neigh::NeighborConfig;
    use crate::port::heap::{HeapPool, HEADROOM};
    use crate::port::mem::{link, LinkConfig, MemPort, SimClock};
    use crate::seq::TcpSeq;
    use crate::stats::counters;
    use crate::tcp::Payload;
    use crate::wire::tcp::{OptionsBuf, TcpFlags};

    const GW: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const PEER: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    /// Sends one segment with `payload` from 192.0.2.1 to its reachable neighbour
    /// 192.0.2.2 through a port that sends chains (or not); returns the frames queued
    /// for TX and the worker's counters.
    fn send(chains: bool, payload: &[u8]) -> (Vec<Vec<u8>>, usize, CounterWriter) {
        let pool = HeapPool::new(16);
        let (_peer, gw) = link(LinkConfig::default(), &pool, &SimClock::new());
        let gw: MemPort = if chains { gw } else { gw.single_segment() };
        let addr = IfAddr {
            addr: "192.0.2.1".parse().unwrap(),
            prefix: 24,
        };
        let mut ports = vec![WorkerPort::new(
            gw,
            crate::host::HostPort::new(GW, &[addr], None, None),
        )];
        let mut neighbors = NeighborTable::new(NeighborConfig::default());
        neighbors.learn(0, "192.0.2.2".parse().unwrap(), PEER, 0);
        let seg = SegmentOut {
            seq: TcpSeq::new(1),
            ack: TcpSeq::new(1),
            flags: TcpFlags::ACK,
            window: 1000,
            options: OptionsBuf::new(),
            payload: Some(Payload::new(
                pool.alloc_from(payload).unwrap().into_shared(),
            )),
            path: PathTx::None,
        };
        let tuple = FourTuple {
            local: "192.0.2.1:5201".parse().unwrap(),
            remote: "192.0.2.2:40000".parse().unwrap(),
        };
        let (mut w, _r) = counters();
        let mut out = vec![(tuple, seg)];
        transmit(
            &mut ports,
            &mut neighbors,
            &mut out,
            &mut Vec::new(),
            &mut w,
            0,
        );
        let tx = ports[0].tx.as_slice();
        let segments = tx.iter().map(|b| 1 + b.chained().len()).sum();
        (tx.iter().map(|b| b.gather()).collect(), segments, w)
    }

    #[test]
    fn a_port_that_sends_chains_gets_the_payload_by_reference() {
        let payload: Vec<u8> = (0..1448u32).map(|i| i as u8).collect();
        let (frames, segments, w) = send(true, &payload);
        assert_eq!(frames.len(), 1);
        assert_eq!(segments, 2, "header buffer + payload by reference");
        assert!(frames[0].ends_with(&payload));
        assert_eq!(frames[0].len(), 14 + 20 + 20 + payload.len());
        assert_eq!(w.get(Counter::TxLinearized), 0);
    }

    #[test]
    fn a_port_without_multi_segment_tx_gets_one_buffer_with_the_payload_copied() {
        let payload: Vec<u8> = (0..1448u32).map(|i| (i * 7) as u8).collect();
        let (frames, segments, w) = send(false, &payload);
        assert_eq!((frames.len(), segments), (1, 1));
        assert!(frames[0].ends_with(&payload));
        assert_eq!(frames[0].len(), 14 + 20 + 20 + payload.len());
        let chained = send(true, &payload).0;
        assert_eq!(frames, chained, "the same bytes either way");
        assert_eq!(w.get(Counter::TxLinearized), 1);
        assert_eq!(w.get(Counter::TcpSegmentsOut), 1);
        assert_eq!(w.get(Counter::TxOversize), 0);
    }

    #[test]
    fn a_frame_larger_than_one_buffer_is_dropped_and_counted_where_chains_cannot_go() {
        // A whole buffer of payload leaves no room for the headers in front of it.
        let payload = vec![0x5a; crate::port::heap::DATA_ROOM - HEADROOM];
        let (frames, _, w) = send(false, &payload);
        assert!(frames.is_empty());
        assert_eq!(w.get(Counter::TxOversize), 1);
        assert_eq!(w.get(Counter::TcpSegmentsOut), 0);
        assert_eq!(w.get(Counter::TxLinearized), 0);
        // Chained, the same segment goes.
        let (frames, _, w) = send(true, &payload);
        assert_eq!(frames.len(), 1);
        assert_eq!(w.get(Counter::TxOversize), 0);
    }
}
