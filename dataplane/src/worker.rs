//! The per-core poll loop.
//!
//! A worker owns one RX/TX queue pair of every port and everything that arrives on
//! them. One iteration of [`Worker::poll`]:
//! 1. for each port, RX burst → classify each frame → the gateway's own L2/L3 presence
//!    ([`crate::host`]) answers in place, TCP segments go to the worker's MPTCP stack
//!    ([`crate::mptcp::stack::Stack`], plain TCP included), the rest is dropped and
//!    counted;
//! 2. the services run over connections with events (today the diagnostic service);
//! 3. due TCP timers fire;
//! 4. the segments produced go out as frames ([`crate::egress`]): headers in a small
//!    buffer, payload chained by reference;
//! 5. TX burst on every port, bulk free of what was dropped.
//!
//! Between iterations the worker polls its command channel.

use crate::diag::{DiagMode, DiagService, MAX_SOURCES};
use crate::egress;
use crate::host::{HostPort, Verdict};
use crate::mptcp::crypto::KeySource;
use crate::mptcp::mib::Mib;
use crate::mptcp::msk::MskId;
use crate::mptcp::stack::{Config as MptcpConfig, Stack};
use crate::neigh::{NeighborConfig, NeighborTable};
use crate::port::{Burst, PacketBuf, Port};
use crate::stats::{Counter, CounterWriter};
use crate::tcp::ingress::segment_from_classified;
use crate::tcp::secrets::Secrets;
use crate::tcp::table::TableConfig;
use crate::tcp::{FourTuple, Instant, Payload, SegmentOut};
use crate::wire::{Frame, WireError};
use crossbeam::channel::{Receiver, TryRecvError};
use std::net::{IpAddr, SocketAddr};

/// Iterations between two looks at the command channel (and counter refreshes).
const CONTROL_EVERY: u32 = 256;

/// The shared-buffer type of a port's packets.
pub type SharedOf<P> = <<P as Port>::Buf as PacketBuf>::Shared;

/// Commands from the control thread, polled between bursts.
#[derive(Debug)]
pub enum Command {
    /// Leave the poll loop.
    Stop,
}

/// One port as a worker sees it: its queue pair, its addresses, its pending bursts.
pub struct WorkerPort<P: Port> {
    pub(crate) port: P,
    pub(crate) host: HostPort,
    pub(crate) tx: Burst<P::Buf>,
    rx: Burst<P::Buf>,
    dropped: Burst<P::Buf>,
}

impl<P: Port> WorkerPort<P> {
    /// A port's queue pair together with the gateway's addresses on it.
    pub fn new(port: P, host: HostPort) -> Self {
        Self {
            port,
            host,
            tx: Burst::new(),
            rx: Burst::new(),
            dropped: Burst::new(),
        }
    }

    /// The queue pair.
    pub fn port(&self) -> &P {
        &self.port
    }

    /// Sends the pending TX burst; what the port does not take is dropped and counted.
    pub(crate) fn flush(&mut self, counters: &mut CounterWriter) {
        if !self.tx.is_empty() {
            let sent = self.port.tx_burst(&mut self.tx);
            counters.add(Counter::TxPackets, sent as u64);
            if !self.tx.is_empty() {
                counters.add(Counter::TxDropFull, self.tx.len() as u64);
                P::Buf::free_burst(&mut self.tx);
            }
        }
        P::Buf::free_burst(&mut self.dropped);
    }
}

/// The worker's TCP and MPTCP endpoint settings.
pub struct TcpSetup {
    /// Subflow table limits and per-connection settings.
    pub table: TableConfig,
    /// Secrets for ISNs, SYN cookies and the table hash.
    pub secrets: Secrets,
    /// MPTCP settings.
    pub mptcp: MptcpConfig,
    /// Keys and nonces for MPTCP.
    pub keys: KeySource,
    /// This worker's index and the number of workers (tokens name their owner).
    pub worker: (u16, u16),
    /// Addresses announced (ADD_ADDR) on every MPTCP connection accepted.
    pub signal: Vec<IpAddr>,
    /// Diagnostic services by listening address.
    pub diag: Vec<(SocketAddr, DiagMode)>,
}

/// A poll-mode worker: owns its ports' queues, its connections and its counters.
pub struct Worker<P: Port> {
    ports: Vec<WorkerPort<P>>,
    neighbors: NeighborTable,
    tcp: Stack<SharedOf<P>>,
    diag: DiagService<SharedOf<P>, MskId>,
    /// Segments produced in this iteration, sent at its end.
    out: Vec<(FourTuple, SegmentOut<SharedOf<P>>)>,
    counters: CounterWriter,
    commands: Receiver<Command>,
}

impl<P: Port> Worker<P> {
    /// A worker over `ports` with the TCP endpoint `tcp`, counting into `counters`,
    /// commanded through `commands`; `now` is the worker clock's current time (ns).
    pub fn new(
        mut ports: Vec<WorkerPort<P>>,
        tcp: TcpSetup,
        counters: CounterWriter,
        commands: Receiver<Command>,
        now: u64,
    ) -> Self {
        let mut table = Stack::new(
            tcp.table,
            tcp.secrets,
            tcp.mptcp,
            tcp.keys,
            tcp.worker,
            Instant::from_nanos(now),
        );
        table.set_signal(&tcp.signal);
        let patterns = match ports.first_mut() {
            Some(p) => (0..MAX_SOURCES)
                .map_while(|_| source_pattern(&mut p.port))
                .collect(),
            None => Vec::new(),
        };
        let mut diag = DiagService::new(patterns);
        for (addr, mode) in tcp.diag {
            diag.add(&mut table, addr, mode);
        }
        Self {
            ports,
            neighbors: NeighborTable::new(NeighborConfig::default()),
            tcp: table,
            diag,
            out: Vec::new(),
            counters,
            commands,
        }
    }

    /// The neighbours this worker has learnt.
    pub fn neighbors(&self) -> &NeighborTable {
        &self.neighbors
    }

    /// The worker's MPTCP stack.
    pub fn stack(&self) -> &Stack<SharedOf<P>> {
        &self.tcp
    }

    /// Polls until told to stop (or the control side hangs up). Time is the monotonic
    /// clock in ns since the worker started.
    pub fn run(&mut self) {
        let epoch = std::time::Instant::now();
        loop {
            for _ in 0..CONTROL_EVERY {
                let now = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
                self.poll(now);
            }
            self.publish_gauges();
            match self.commands.try_recv() {
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => {}
            }
        }
    }

    /// One pass over every port at `now` (ns); returns the number of packets received.
    pub fn poll(&mut self, now: u64) -> usize {
        let at = Instant::from_nanos(now);
        let mut received = 0;
        for (index, wp) in self.ports.iter_mut().enumerate() {
            // At most u16::MAX ports: DPDK port ids are u16.
            let mut rx = Rx {
                index: index as u16,
                neighbors: &mut self.neighbors,
                tcp: &mut self.tcp,
                out: &mut self.out,
                counters: &mut self.counters,
                now,
            };
            received += rx.poll_port(wp);
        }
        self.diag.poll(&mut self.tcp, at, &mut self.out);
        self.tcp.on_timers(at, &mut self.out);
        egress::transmit(
            &mut self.ports,
            &mut self.neighbors,
            &mut self.out,
            &mut self.counters,
            now,
        );
        for wp in &mut self.ports {
            wp.flush(&mut self.counters);
        }
        self.counters.inc(Counter::Polls);
        if received > 0 {
            self.counters.inc(Counter::BusyPolls);
        }
        received
    }

    /// Copies the connection table's and services' own statistics into the counters.
    pub fn publish_gauges(&mut self) {
        let t = *self.tcp.tcp().stats();
        let d = *self.diag.stats();
        let c = &mut self.counters;
        c.set(Counter::TcpConnections, self.tcp.tcp().len() as u64);
        c.set(Counter::TcpHalfOpen, self.tcp.tcp().half_open() as u64);
        c.set(Counter::TcpSynsReceived, t.syns);
        c.set(Counter::TcpSynCookiesSent, t.cookies_sent);
        c.set(Counter::TcpSynCookiesAccepted, t.cookies_accepted);
        c.set(Counter::TcpSynCookiesRejected, t.cookies_rejected);
        c.set(Counter::TcpHalfOpenEvicted, t.half_open_evicted);
        c.set(Counter::TcpSynsDropped, t.syns_dropped);
        c.set(Counter::TcpResetsSent, t.resets_sent);
        c.set(Counter::TcpConnectionsClosed, t.closed);
        c.set(Counter::DiagConnections, d.connections);
        c.set(Counter::DiagBytesDiscarded, d.discarded);
        c.set(Counter::DiagBytesEchoed, d.echoed);
        c.set(Counter::DiagBytesSourced, d.sourced);
        c.set(Counter::DiagSourcesRefused, d.sources_refused);
        let mib = self.tcp.mib();
        let sum = |ms: &[Mib]| ms.iter().map(|&m| mib.get(m)).sum::<u64>();
        c.set(Counter::MptcpConnections, self.tcp.len() as u64);
        c.set(Counter::MptcpCapableSynRx, mib.get(Mib::MPCapableSYNRX));
        c.set(
            Counter::MptcpCapableEstablished,
            sum(&[Mib::MPCapableACKRX, Mib::MPCapableSYNACKRX]),
        );
        c.set(
            Counter::MptcpFallbacks,
            sum(&[
                Mib::MPCapableFallbackACK,
                Mib::MPCapableFallbackSYNACK,
                Mib::DssFallback,
                Mib::MPFallbackTokenInit,
            ]),
        );
        c.set(
            Counter::MptcpJoins,
            sum(&[Mib::MPJoinAckRx, Mib::MPJoinSynAckRx]),
        );
        c.set(
            Counter::MptcpJoinsRefused,
            sum(&[
                Mib::MPJoinNoTokenFound,
                Mib::MPJoinAckHMacFailure,
                Mib::MPJoinSynAckHMacFailure,
                Mib::MPJoinRejected,
                Mib::MPJoinNotEstablished,
            ]),
        );
        c.set(Counter::MptcpRetrans, mib.get(Mib::MPTCPRetrans));
        c.set(Counter::MptcpChecksumErrors, mib.get(Mib::DataCsumErr));
        c.set_mib(mib);
    }
}

/// What receiving on one port needs besides the port.
struct Rx<'a, S> {
    index: u16,
    neighbors: &'a mut NeighborTable,
    tcp: &'a mut Stack<S>,
    out: &'a mut Vec<(FourTuple, SegmentOut<S>)>,
    counters: &'a mut CounterWriter,
    now: u64,
}

impl<S: crate::port::SharedBuf> Rx<'_, S> {
    /// RX burst and dispatch for one port; returns the number of packets received.
    fn poll_port<P: Port>(&mut self, wp: &mut WorkerPort<P>) -> usize
    where
        P::Buf: PacketBuf<Shared = S>,
    {
        let n = wp.port.rx_burst(&mut wp.rx);
        if n == 0 {
            return 0;
        }
        self.counters.add(Counter::RxPackets, n as u64);
        for mut buf in wp.rx.drain() {
            self.counters.add(Counter::RxBytes, buf.len() as u64);
            let verdict = wp
                .host
                .handle(buf.data_mut(), self.index, self.neighbors, self.now);
            match verdict {
                Verdict::Reply { len, counter } => {
                    self.counters.inc(counter);
                    let cur = buf.len();
                    let fits = if len <= cur {
                        buf.trim_back(cur - len)
                    } else {
                        buf.append(len - cur).is_some()
                    };
                    if !fits {
                        self.counters.inc(Counter::DropMalformed);
                        let _ = wp.dropped.push(buf);
                        continue;
                    }
                    self.counters.add(Counter::TxBytes, len as u64);
                    // Cannot fail: every poll ends with an empty TX burst, and one RX
                    // burst holds no more packets than a TX burst.
                    if let Err(b) = wp.tx.push(buf) {
                        let _ = wp.dropped.push(b);
                    }
                }
                Verdict::Tcp(f) => self.tcp_in(buf, &f),
                Verdict::Drop(reason) => {
                    self.counters.inc(reason);
                    let _ = wp.dropped.push(buf);
                }
            }
        }
        n
    }

    /// Hands a TCP frame to the stack.
    fn tcp_in<B: PacketBuf<Shared = S>>(&mut self, buf: B, f: &Frame) {
        match segment_from_classified(buf, f, true) {
            Ok((tuple, seg)) => {
                self.counters.inc(Counter::TcpSegmentsIn);
                self.tcp
                    .on_segment(tuple, seg, Instant::from_nanos(self.now), self.out);
            }
            Err(WireError::BadChecksum) => self.counters.inc(Counter::TcpBadChecksum),
            Err(_) => self.counters.inc(Counter::DropMalformed),
        }
    }
}

/// The buffer the diagnostic `source` mode streams: one port buffer filled with a
/// printable pattern, shared by every segment it sends.
fn source_pattern<P: Port>(port: &mut P) -> Option<Payload<SharedOf<P>>> {
    let mut buf = port.alloc()?;
    let room = buf.tailroom();
    let bytes = buf.append(room)?;
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = b'a' + (i % 26) as u8;
    }
    Some(Payload::new(buf.into_shared()))
}
