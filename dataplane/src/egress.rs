//! From TCP segment descriptions to frames on the right port.
//!
//! For each segment: the port is the one the remote address is on-link on, else the one
//! owning the connection's local address (else one with a next hop for it); the
//! neighbour is the remote address when it is on-link, else the port's next hop; its
//! MAC comes from the worker's neighbour table, which is asked to resolve what it lacks
//! (ARP request or neighbour solicitation). The Ethernet/IP/TCP headers are written into
//! a fresh small buffer and the payload is chained behind it by reference — zero copy:
//! the bytes that leave are the bytes that arrived (or the service's own buffer).

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

/// Builds the frame of one segment to the neighbour `dst`.
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
    if let Some(p) = &seg.payload {
        buf.chain(p.buf(), p.offset(), p.len())
            .map_err(|_| Counter::TxNoBuffer)?;
    }
    Ok(buf)
}
