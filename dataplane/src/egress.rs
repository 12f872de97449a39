//! From TCP segment descriptions to frames on the right port.
//!
//! For each segment: the port is the one owning the connection's local address; the
//! neighbour is the remote address when it is on-link, else the port's next hop; its MAC
//! comes from the worker's neighbour table. The Ethernet/IP/TCP headers are written into
//! a fresh small buffer and the payload is chained behind it by reference — zero copy:
//! the bytes that leave are the bytes that arrived (or the service's own buffer).

use crate::neigh::{Lookup, NeighborTable};
use crate::port::{PacketBuf, Port};
use crate::stats::{Counter, CounterWriter};
use crate::tcp::emit::{emit_headers, ChecksumMode, L2};
use crate::tcp::{FourTuple, SegmentOut};
use crate::worker::{SharedOf, WorkerPort};

/// Room reserved for the headers of one segment: Ethernet with a VLAN tag (18), IPv6
/// (40), TCP with a full option space (60).
const MAX_HEADERS: usize = 18 + 40 + 60;

/// Sends every segment of `out` (draining it) into its port's TX burst, flushing a
/// burst when it fills. Segments that cannot go are dropped and counted: the TCP
/// connection retransmits them.
pub(crate) fn transmit<P: Port>(
    ports: &mut [WorkerPort<P>],
    neighbors: &mut NeighborTable,
    out: &mut Vec<(FourTuple, SegmentOut<SharedOf<P>>)>,
    counters: &mut CounterWriter,
    now: u64,
) {
    for (tuple, seg) in out.drain(..) {
        match frame(ports, neighbors, &tuple, &seg, now) {
            Ok((index, buf)) => {
                let wp = &mut ports[index];
                counters.inc(Counter::TcpSegmentsOut);
                counters.add(Counter::TxBytes, buf.pkt_len() as u64);
                if wp.tx.is_full() {
                    wp.flush(counters);
                }
                // Cannot fail: flushed above when full.
                let _ = wp.tx.push(buf);
            }
            Err(reason) => counters.inc(reason),
        }
    }
}

/// Builds the frame of one segment; returns the index of the port it leaves on.
fn frame<P: Port>(
    ports: &mut [WorkerPort<P>],
    neighbors: &mut NeighborTable,
    tuple: &FourTuple,
    seg: &SegmentOut<SharedOf<P>>,
    now: u64,
) -> Result<(usize, P::Buf), Counter> {
    let index = ports
        .iter()
        .position(|p| p.host.owns(tuple.local.ip()))
        .ok_or(Counter::TxNoRoute)?;
    let wp = &mut ports[index];
    let hop = wp
        .host
        .next_hop(tuple.remote.ip())
        .ok_or(Counter::TxNoRoute)?;
    // At most u16::MAX ports: DPDK port ids are u16.
    let dst = match neighbors.lookup(index as u16, hop, now) {
        Lookup::Reachable(mac) | Lookup::Stale(mac) => mac,
        Lookup::Solicit | Lookup::Waiting => return Err(Counter::TxNoNeighbor),
    };
    let l2 = L2 {
        src: wp.host.mac(),
        dst,
        vlan_tci: None,
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
    Ok((index, buf))
}
