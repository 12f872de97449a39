//! Per-worker counters, written by one worker without contention and read by the
//! control thread.
//!
//! Each worker owns a [`CounterWriter`]: a cache-line-aligned array of relaxed atomics
//! that only it writes (a load and a store, no read-modify-write bus lock). Any number of
//! [`CounterReader`]s may read them at any time; the control thread sums the readers of
//! all workers when asked.
//!
//! The writer also times the poll loop ([`CounterWriter::record_poll`]): busy and idle
//! nanoseconds as counters, and the duration of every busy iteration in a histogram the
//! worker owns and ships to the control side now and then ([`latency`]); likewise the
//! handshake time of every connection ([`Timing::Setup`]).
//!
//! Per port it also keeps what MPTCP subflows moved through it ([`PathCounter`],
//! totals that survive the connections) and, refreshed now and then, the subflows now
//! using it ([`PathSample`]).

use crate::mptcp::mib::{Mib, MibCounters};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub mod latency;

pub use latency::Latencies;

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident => $text:literal,)*) => {
        /// A worker counter.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub enum Counter {
            $($(#[doc = $doc])* $name,)*
        }

        impl Counter {
            /// Every counter, in declaration order.
            pub const ALL: &'static [Counter] = &[$(Counter::$name,)*];

            /// The counter's stable snake_case name (used in stats output and metrics).
            pub const fn name(self) -> &'static str {
                match self {
                    $(Counter::$name => $text,)*
                }
            }

            /// The counter's documentation, one entry per line (the metrics' help text).
            pub const fn doc(self) -> &'static [&'static str] {
                match self {
                    $(Counter::$name => &[$($doc),*],)*
                }
            }
        }
    };
}

counters! {
    /// Packets received on any port.
    RxPackets => "rx_packets",
    /// Bytes received on any port.
    RxBytes => "rx_bytes",
    /// Packets handed to a port for transmission.
    TxPackets => "tx_packets",
    /// Bytes handed to a port for transmission.
    TxBytes => "tx_bytes",
    /// Packets dropped because a TX queue stayed full.
    TxDropFull => "tx_drop_full",
    /// ARP requests for an own address answered.
    ArpReplies => "arp_replies",
    /// ICMP echo requests to an own address answered.
    IcmpEchoReplies => "icmp_echo_replies",
    /// IPv6 neighbour solicitations for an own address answered.
    NdAdvertisements => "nd_advertisements",
    /// ICMPv6 echo requests to an own address answered.
    Icmp6EchoReplies => "icmp6_echo_replies",
    /// ARP replies received for an own address (their sender is learnt).
    ArpRepliesReceived => "arp_replies_received",
    /// Neighbour advertisements received (their target is learnt).
    NdAdvertisementsReceived => "nd_advertisements_received",
    /// ARP requests and neighbour solicitations sent to resolve a next hop.
    NeighborSolicitations => "neighbor_solicitations",
    /// Frames that failed to parse (truncated, bad lengths or checksums).
    DropMalformed => "drop_malformed",
    /// Frames with an EtherType mpgw does not handle.
    DropUnknownEthertype => "drop_unknown_ethertype",
    /// Frames tagged for another VLAN than their port's, or untagged on a VLAN port.
    DropVlan => "drop_vlan",
    /// IP packets addressed to someone else (mpgw is no router).
    DropNotForUs => "drop_not_for_us",
    /// TCP segments to a foreign destination, on a port a transparent listener names,
    /// that no transparent listener (destination port) and no connection took.
    DropTransit => "drop_transit",
    /// Packets to an own address of a protocol or type mpgw does not serve.
    DropUnhandled => "drop_unhandled",
    /// IP fragments (mpgw does not reassemble).
    DropFragment => "drop_fragment",
    /// TCP segments handed to the connection table.
    TcpSegmentsIn => "tcp_segments_in",
    /// TCP segments sent.
    TcpSegmentsOut => "tcp_segments_out",
    /// TCP segments with a bad checksum (dropped).
    TcpBadChecksum => "tcp_bad_checksum",
    /// Segments not sent: no port owns the local address or no next hop.
    TxNoRoute => "tx_no_route",
    /// Segments dropped: the next hop's MAC stayed unknown (or too many waited).
    TxNoNeighbor => "tx_no_neighbor",
    /// Segments not sent: no buffer for the headers or the chained payload.
    TxNoBuffer => "tx_no_buffer",
    /// Segments whose payload was copied behind their headers into one buffer instead
    /// of chained by reference: their port's driver sends single-segment frames only
    /// (no multi-segment TX, e.g. DPDK 22.11's `net_af_xdp`).
    TxLinearized => "tx_linearized",
    /// Segments dropped on such a port because headers and payload do not fit one
    /// buffer (the MSS keeps them within; the TCP connection retransmits).
    TxOversize => "tx_oversize",
    /// Connections in the table now (gauge).
    TcpConnections => "tcp_connections",
    /// Half-open connections in the table now (gauge).
    TcpHalfOpen => "tcp_half_open",
    /// Connections in TIME-WAIT now (gauge).
    TcpTimeWait => "tcp_time_wait",
    /// Connections closed at once instead of entering TIME-WAIT, the table holding
    /// its most (`max_time_wait`) already, as Linux past `tcp_max_tw_buckets`.
    TcpTimeWaitOverflow => "tcp_time_wait_overflow",
    /// SYNs that reached a listener.
    TcpSynsReceived => "tcp_syns_received",
    /// SYN-ACKs sent with a SYN cookie instead of state.
    TcpSynCookiesSent => "tcp_syn_cookies_sent",
    /// Connections created from a valid SYN cookie.
    TcpSynCookiesAccepted => "tcp_syn_cookies_accepted",
    /// ACKs whose SYN cookie did not verify.
    TcpSynCookiesRejected => "tcp_syn_cookies_rejected",
    /// Half-open connections evicted for room.
    TcpHalfOpenEvicted => "tcp_half_open_evicted",
    /// SYNs dropped for lack of room.
    TcpSynsDropped => "tcp_syns_dropped",
    /// RSTs sent for segments no connection or listener took.
    TcpResetsSent => "tcp_resets_sent",
    /// Connections freed.
    TcpConnectionsClosed => "tcp_connections_closed",
    /// Segments with payload received under severe memory pressure
    /// (`memory_pressure` 2: out-of-order payload is dropped).
    TcpPayloadShed => "tcp_payload_shed",
    /// Connections the diagnostic service accepted.
    DiagConnections => "diag_connections",
    /// Bytes the diagnostic service read and dropped.
    DiagBytesDiscarded => "diag_bytes_discarded",
    /// Bytes the diagnostic service echoed.
    DiagBytesEchoed => "diag_bytes_echoed",
    /// Bytes the diagnostic service's source mode sent.
    DiagBytesSourced => "diag_bytes_sourced",
    /// Source connections refused because the most allowed were running.
    DiagSourcesRefused => "diag_sources_refused",
    /// Client connections accepted on relay listeners.
    RelayAccepted => "relay_accepted",
    /// Of those, connections transparent listeners accepted on a foreign destination.
    RelayTransparent => "relay_transparent",
    /// Backend connections the relay established.
    RelayConnected => "relay_connected",
    /// Backend handshakes that failed (each attempt).
    RelayConnectFailures => "relay_connect_failures",
    /// Client connections reset: no backend reachable, relay full or no local port.
    RelayRefused => "relay_refused",
    /// Relayed pairs ended by a reset on either side.
    RelayResets => "relay_resets",
    /// Of those, pairs whose backend leg went first (reset by its server, or timed
    /// out); the others were ended by their client leg.
    RelayBackendResets => "relay_backend_resets",
    /// Of those, pairs ended by a leg that timed out (retransmissions, keepalives,
    /// `close_timeout`) rather than by a reset from its peer.
    RelayTimeouts => "relay_timeouts",
    /// Local ports chosen by the modulo rule alone on a port with RSS (no candidate's
    /// replies hashed to the opener's queue: they are handed over).
    RelayRssMisses => "relay_rss_misses",
    /// Bytes relayed from clients to backends.
    RelayBytesUp => "relay_bytes_up",
    /// Bytes relayed from backends to clients.
    RelayBytesDown => "relay_bytes_down",
    /// Pairs being relayed now (gauge).
    RelayPairs => "relay_pairs",
    /// The packet-buffer pools' pressure, the worst of all workers' pools (gauge): 1
    /// when one has less than a quarter free, receive windows stay closed; 2 below an
    /// eighth, out-of-order data is given up and refused too. (A
    /// handed-over payload holds a buffer of the worker that received it.)
    MemoryPressure => "memory_pressure",
    /// Segments handed to the worker that owns their connection.
    HandoffOut => "handoff_out",
    /// Segments another worker handed to this one.
    HandoffIn => "handoff_in",
    /// Segments or neighbours not handed over: the other worker's inbox was full.
    HandoffDropped => "handoff_dropped",
    /// Subflows followed to another worker (redirect table size, gauge).
    HandoffRedirects => "handoff_redirects",
    /// Messages waiting in this worker's inbox (gauge).
    HandoffPending => "handoff_pending",
    /// Flow rules asked of the control thread: MP_JOIN subflows this worker owns
    /// whose segments reached it by hand-off, to be steered to its RX queue (ports
    /// that take `rte_flow` rules, `[dataplane] flow_rules`).
    FlowSteerRequests => "flow_steer_requests",
    /// Removals of those rules asked of the control thread (the subflow is gone).
    FlowReleaseRequests => "flow_release_requests",
    /// Flow-rule requests not queued: the control thread's channel was full, or this
    /// worker already tracks as many steered subflows as `flow_rules` allows.
    FlowRequestsDropped => "flow_requests_dropped",
    /// Subflows the path manager could not add (connection not ready, limit, tuple
    /// taken).
    PmJoinsFailed => "pm_joins_failed",
    /// Subflows the path manager opened on connections the gateway opened: once a
    /// connection is fully established, and to addresses its peer announced.
    PmJoins => "pm_joins",
    /// MPTCP-level connections now, plain TCP ones included (gauge).
    MptcpConnections => "mptcp_connections",
    /// Established MPTCP connections without a subflow, waiting `close_timeout` for a
    /// join (gauge).
    MptcpOrphans => "mptcp_orphans",
    /// SYNs with MP_CAPABLE received (MIB MPCapableSYNRX).
    MptcpCapableSynRx => "mptcp_capable_syn_rx",
    /// Initial subflows established with MPTCP (MIB MPCapableACKRX + MPCapableSYNACKRX).
    MptcpCapableEstablished => "mptcp_capable_established",
    /// Connections that fell back to TCP (MIB MPCapableFallbackACK +
    /// MPCapableFallbackSYNACK + DssFallback + MPFallbackTokenInit + InfiniteMapTx +
    /// InfiniteMapRx).
    MptcpFallbacks => "mptcp_fallbacks",
    /// MP_JOIN subflows established (MIB MPJoinAckRx + MPJoinSynAckRx).
    MptcpJoins => "mptcp_joins",
    /// MP_JOINs refused: unknown token, bad HMAC, limits (MIB MPJoinNoTokenFound,
    /// MPJoinAckHMacFailure, MPJoinSynAckHMacFailure, MPJoinRejected,
    /// MPJoinNotEstablished).
    MptcpJoinsRefused => "mptcp_joins_refused",
    /// Connection-level retransmissions (MIB MPTCPRetrans).
    MptcpRetrans => "mptcp_retrans",
    /// DSS checksum failures (MIB DataCsumErr).
    MptcpChecksumErrors => "mptcp_checksum_errors",
    /// Connection events not passed to an attached monitor (its queue was full).
    MonitorEventsDropped => "monitor_events_dropped",
    /// Captured frames not passed to the control thread (its queue was full).
    CaptureDropped => "capture_dropped",
    /// Poll-loop iterations.
    Polls => "polls",
    /// Poll-loop iterations that received at least one packet.
    BusyPolls => "busy_polls",
    /// Nanoseconds spent in poll-loop iterations that received packets.
    PollBusyNs => "poll_busy_ns",
    /// Nanoseconds spent in poll-loop iterations that received nothing.
    PollIdleNs => "poll_idle_ns",
    /// MPTCP connections moved off a port whose link went down (its subflows reset,
    /// their data reinjected, its addresses withdrawn with REMOVE_ADDR).
    Failovers => "failovers",
    /// Failover time summed over the ports that went down, µs: from the link-down
    /// detection until every moved connection has had the data it had sent by then
    /// DATA_ACKed (what was lost reinjected and delivered over the other paths); to
    /// the withdrawal when none had data in flight.
    FailoverTimeUs => "failover_time_us",
    /// ADD_ADDR announcements queued on existing connections after a link came back
    /// (or a reload flagged an address `signal`).
    Reannounced => "reannounced",
    /// Subflows re-created by the path manager: after a link came back, and on
    /// connections left without subflows (waiting `close_timeout`).
    Rejoins => "rejoins",
    /// Configuration changes applied at run time (`mpgw reload`, SIGHUP).
    Reconfigured => "reconfigured",
    /// MPTCP-level connections whose first subflow's handshake is running (gauge).
    MptcpConnecting => "mptcp_connecting",
    /// MPTCP connections open with MPTCP, data may flow (gauge).
    MptcpEstablished => "mptcp_established",
    /// MPTCP-level connections closing: either side sent its DATA_FIN (or FIN), or
    /// closed and not yet freed (gauge).
    MptcpClosing => "mptcp_closing",
    /// Connections that fell back to plain TCP and are still open (gauge).
    MptcpFallbackOpen => "mptcp_fallback_open",
}

impl Counter {
    /// A level that goes up and down (documented "(gauge)" or "…, gauge)") rather than a
    /// running total.
    pub fn is_gauge(self) -> bool {
        self.doc().iter().any(|line| line.contains("gauge)"))
    }
}

/// Number of counters.
pub const COUNTERS: usize = Counter::ALL.len();

/// Number of MPTCP MIB counters.
pub const MIBS: usize = Mib::ALL.len();

/// Ports whose paths a worker reports ([`PathSample`]); ports beyond are not counted.
pub const PATH_PORTS: usize = 32;

/// One port's established MPTCP subflows as a worker saw them last (gauges).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathSample {
    /// Established subflows of established MPTCP connections whose segments leave
    /// through the port (the peer is on its subnet, else it owns the local address).
    pub subflows: u64,
    /// How many of them have measured their RTT.
    pub rtt_samples: u64,
    /// The sum of those smoothed RTTs, ns.
    pub srtt_sum_ns: u64,
}

/// Per-port byte counters of MPTCP subflows' payload (totals since the worker
/// started). A segment sent counts on the port it leaves by; one received on the port
/// it came in by. Plain TCP (fallen-back connections included) does not count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum PathCounter {
    /// Payload bytes sent, retransmissions and reinjections included.
    Sent,
    /// Payload bytes received in order (each byte once, duplicates not counted).
    Received,
    /// Payload bytes TCP retransmitted on the subflow (part of `Sent`).
    Retransmitted,
    /// Payload bytes the MPTCP connection sent again on this port, usually after
    /// another subflow carried them first: reinjections (part of `Sent`).
    Reinjected,
}

impl PathCounter {
    /// Every path counter, in declaration order.
    pub const ALL: [PathCounter; 4] = [
        PathCounter::Sent,
        PathCounter::Received,
        PathCounter::Retransmitted,
        PathCounter::Reinjected,
    ];

    /// Its snake_case name (`mpgw stats`, `mpgw paths`, metrics).
    pub const fn name(self) -> &'static str {
        match self {
            PathCounter::Sent => "sent_bytes",
            PathCounter::Received => "received_bytes",
            PathCounter::Retransmitted => "retransmitted_bytes",
            PathCounter::Reinjected => "reinjected_bytes",
        }
    }
}

/// One port's [`PathCounter`]s, indexed like [`PathCounter::ALL`].
pub type PathBytes = [u64; PathCounter::ALL.len()];

/// The durations a worker keeps histograms of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Timing {
    /// A poll-loop iteration that received packets (RX burst to TX burst).
    Burst,
    /// A connection's handshake: our first SYN or SYN-ACK out → established.
    Setup,
}

impl Timing {
    /// Every timing.
    pub const ALL: [Timing; 2] = [Timing::Burst, Timing::Setup];
}

#[repr(align(64))]
struct Cells {
    counters: [AtomicU64; COUNTERS],
    /// The MPTCP MIB, named like Linux's `MPTcpExt*` counters.
    mib: [AtomicU64; MIBS],
    /// Where the histograms arrive, indexed by [`Timing`].
    timings: [Option<latency::Inbox>; 2],
    /// Per port: [`PathSample`]'s fields in declaration order.
    paths: [[AtomicU64; 3]; PATH_PORTS],
    /// Per port: the [`PathCounter`]s.
    path_bytes: [[AtomicU64; PathCounter::ALL.len()]; PATH_PORTS],
}

/// The owning worker's handle: the only one that writes. Not `Clone`.
pub struct CounterWriter {
    cells: Arc<Cells>,
    timings: [Option<latency::Outbox>; 2],
}

/// A read-only handle on one worker's counters.
#[derive(Clone)]
pub struct CounterReader(Arc<Cells>);

/// A new, zeroed counter set and its first reader.
pub fn counters() -> (CounterWriter, CounterReader) {
    let [(burst_out, burst_in), (setup_out, setup_in)] =
        Timing::ALL.map(|_| latency::channel().unzip());
    let cells = Arc::new(Cells {
        counters: std::array::from_fn(|_| AtomicU64::new(0)),
        mib: std::array::from_fn(|_| AtomicU64::new(0)),
        timings: [burst_in, setup_in],
        paths: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
        path_bytes: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
    });
    let writer = CounterWriter {
        cells: cells.clone(),
        timings: [burst_out, setup_out],
    };
    (writer, CounterReader(cells))
}

impl CounterWriter {
    /// Adds `n` to counter `c`.
    #[inline(always)]
    pub fn add(&mut self, c: Counter, n: u64) {
        let cell = &self.cells.counters[c as usize];
        // Single writer: a plain load/store pair is exact and avoids a locked RMW.
        cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Sets counter `c` (for gauges and totals kept elsewhere).
    #[inline(always)]
    pub fn set(&mut self, c: Counter, v: u64) {
        self.cells.counters[c as usize].store(v, Ordering::Relaxed);
    }

    /// Publishes the MPTCP MIB (totals kept by the stack).
    pub fn set_mib(&mut self, mib: &MibCounters) {
        for (m, v) in mib.iter() {
            self.cells.mib[m as usize].store(v, Ordering::Relaxed);
        }
    }

    /// The current value of counter `c`.
    pub fn get(&self, c: Counter) -> u64 {
        self.cells.counters[c as usize].load(Ordering::Relaxed)
    }

    /// Publishes the paths, indexed by port (at most [`PATH_PORTS`]).
    pub fn set_paths(&mut self, paths: &[PathSample]) {
        for (cells, p) in self.cells.paths.iter().zip(paths) {
            for (cell, v) in cells.iter().zip([p.subflows, p.rtt_samples, p.srtt_sum_ns]) {
                cell.store(v, Ordering::Relaxed);
            }
        }
    }

    /// Adds `n` to path counter `c` of the port at `port` (in the worker's port order;
    /// ports from [`PATH_PORTS`] on are not counted).
    #[inline(always)]
    pub fn add_path(&mut self, port: usize, c: PathCounter, n: u64) {
        if let Some(cells) = self.cells.path_bytes.get(port) {
            let cell = &cells[c as usize];
            // Single writer, as in `add`.
            cell.store(
                cell.load(Ordering::Relaxed).wrapping_add(n),
                Ordering::Relaxed,
            );
        }
    }

    /// Adds 1 to counter `c`.
    #[inline(always)]
    pub fn inc(&mut self, c: Counter) {
        self.add(c, 1);
    }

    /// Accounts one poll-loop iteration that took `ns`: busy (it received packets; its
    /// duration also goes into the burst histogram) or idle.
    #[inline(always)]
    pub fn record_poll(&mut self, busy: bool, ns: u64) {
        if busy {
            self.add(Counter::PollBusyNs, ns);
            self.record(Timing::Burst, ns);
        } else {
            self.add(Counter::PollIdleNs, ns);
        }
    }

    /// Records one duration of `t`, ns.
    #[inline(always)]
    pub fn record(&mut self, t: Timing, ns: u64) {
        if let Some(h) = &mut self.timings[t as usize] {
            h.record(ns);
        }
    }

    /// Hands the histograms recorded since the last call to the control side when it
    /// can (see [`latency`]); never blocks.
    pub fn ship_histograms(&mut self) {
        for h in self.timings.iter_mut().flatten() {
            h.ship();
        }
    }

    /// A reader of these counters.
    pub fn reader(&self) -> CounterReader {
        CounterReader(self.cells.clone())
    }
}

impl CounterReader {
    /// The current value of counter `c`.
    pub fn get(&self, c: Counter) -> u64 {
        self.0.counters[c as usize].load(Ordering::Relaxed)
    }

    /// The MPTCP MIB, indexed like [`Mib::ALL`].
    pub fn mib_snapshot(&self) -> [u64; MIBS] {
        std::array::from_fn(|i| self.0.mib[i].load(Ordering::Relaxed))
    }

    /// The paths as the worker last published them, indexed by port.
    pub fn paths(&self) -> [PathSample; PATH_PORTS] {
        std::array::from_fn(|i| {
            let [subflows, rtt_samples, srtt_sum_ns] =
                std::array::from_fn(|f| self.0.paths[i][f].load(Ordering::Relaxed));
            PathSample {
                subflows,
                rtt_samples,
                srtt_sum_ns,
            }
        })
    }

    /// The path counters, indexed by port.
    pub fn path_bytes(&self) -> [PathBytes; PATH_PORTS] {
        std::array::from_fn(|i| {
            std::array::from_fn(|c| self.0.path_bytes[i][c].load(Ordering::Relaxed))
        })
    }

    /// All counters, indexed like [`Counter::ALL`].
    pub fn snapshot(&self) -> [u64; COUNTERS] {
        std::array::from_fn(|i| self.0.counters[i].load(Ordering::Relaxed))
    }

    /// Adds the durations of `t` the worker shipped since the last call into `total`.
    /// The values are taken: one collector (the metrics server) should call this.
    pub fn drain(&self, t: Timing, total: &mut Latencies) {
        if let Some(inbox) = &self.0.timings[t as usize] {
            inbox.drain_into(total);
        }
    }
}

/// Sums the MPTCP MIBs of several workers.
pub fn merge_mib<'a>(readers: impl IntoIterator<Item = &'a CounterReader>) -> [u64; MIBS] {
    let mut sum = [0u64; MIBS];
    for r in readers {
        for (s, v) in sum.iter_mut().zip(r.mib_snapshot()) {
            *s = s.wrapping_add(v);
        }
    }
    sum
}

/// Sums the path counters of several workers, per port.
pub fn merge_path_bytes<'a>(
    readers: impl IntoIterator<Item = &'a CounterReader>,
) -> [PathBytes; PATH_PORTS] {
    let mut sum = [[0u64; PathCounter::ALL.len()]; PATH_PORTS];
    for r in readers {
        for (s, p) in sum.iter_mut().zip(r.path_bytes()) {
            for (s, v) in s.iter_mut().zip(p) {
                *s = s.wrapping_add(v);
            }
        }
    }
    sum
}

/// Sums snapshots of several workers.
pub fn merge<'a>(readers: impl IntoIterator<Item = &'a CounterReader>) -> [u64; COUNTERS] {
    let mut sum = [0u64; COUNTERS];
    for r in readers {
        for (s, v) in sum.iter_mut().zip(r.snapshot()) {
            *s = s.wrapping_add(v);
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_visible_to_readers_and_merge_sums_workers() {
        let (mut w1, r1) = counters();
        let (mut w2, r2) = counters();
        w1.inc(Counter::RxPackets);
        w1.add(Counter::RxBytes, 60);
        w2.add(Counter::RxBytes, 40);
        assert_eq!(r1.get(Counter::RxPackets), 1);
        let sum = merge([&r1, &r2]);
        assert_eq!(sum[Counter::RxBytes as usize], 100);
        assert_eq!(sum[Counter::TxPackets as usize], 0);
    }

    #[test]
    fn path_counters_are_per_port_and_merge_per_port() {
        let (mut w1, r1) = counters();
        let (mut w2, r2) = counters();
        w1.add_path(0, PathCounter::Sent, 1000);
        w1.add_path(1, PathCounter::Reinjected, 300);
        w2.add_path(1, PathCounter::Reinjected, 200);
        w2.add_path(PATH_PORTS, PathCounter::Sent, 7); // beyond the bound: ignored
        assert_eq!(r1.path_bytes()[0], [1000, 0, 0, 0]);
        let sum = merge_path_bytes([&r1, &r2]);
        assert_eq!(sum[1][PathCounter::Reinjected as usize], 500);
        assert_eq!(sum.iter().flatten().sum::<u64>(), 1500);
        assert_eq!(PathCounter::Retransmitted.name(), "retransmitted_bytes");
    }

    #[test]
    fn gauges_are_the_documented_ones() {
        let gauges: Vec<_> = Counter::ALL.iter().filter(|c| c.is_gauge()).collect();
        assert_eq!(
            gauges,
            [
                &Counter::TcpConnections,
                &Counter::TcpHalfOpen,
                &Counter::TcpTimeWait,
                &Counter::RelayPairs,
                &Counter::MemoryPressure,
                &Counter::HandoffRedirects,
                &Counter::HandoffPending,
                &Counter::MptcpConnections,
                &Counter::MptcpOrphans,
                &Counter::MptcpConnecting,
                &Counter::MptcpEstablished,
                &Counter::MptcpClosing,
                &Counter::MptcpFallbackOpen,
            ]
        );
        assert_eq!(Counter::RxPackets.doc(), [" Packets received on any port."]);
    }

    #[test]
    fn poll_time_splits_busy_and_idle_and_busy_durations_reach_the_reader() {
        let (mut w, r) = counters();
        w.record_poll(true, 3_000);
        w.record_poll(false, 500);
        w.record_poll(true, 7_000);
        assert_eq!(r.get(Counter::PollBusyNs), 10_000);
        assert_eq!(r.get(Counter::PollIdleNs), 500);
        w.record(Timing::Setup, 40_000);
        let mut total = Latencies::new().unwrap();
        r.drain(Timing::Burst, &mut total);
        assert_eq!(total.count(), 0, "nothing shipped yet");
        w.ship_histograms();
        r.drain(Timing::Burst, &mut total);
        assert_eq!((total.count(), total.sum_ns()), (2, 10_000));
        let mut setups = Latencies::new().unwrap();
        r.drain(Timing::Setup, &mut setups);
        assert_eq!((setups.count(), setups.sum_ns()), (1, 40_000));
    }

    #[test]
    fn names_are_unique_and_snake_case() {
        let mut names: Vec<_> = Counter::ALL.iter().map(|c| c.name()).collect();
        assert!(names.iter().all(|n| n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), COUNTERS);
    }
}
