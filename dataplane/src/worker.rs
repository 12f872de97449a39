//! The per-core poll loop.
//!
//! A worker owns one RX/TX queue pair of every port and everything that arrives on
//! them. One iteration of [`Worker::poll`]:
//! 1. segments and neighbours other workers handed over ([`crate::handoff`]) are taken
//!    in;
//! 2. for each port, RX burst → classify each frame → the gateway's own L2/L3 presence
//!    ([`crate::host`]) answers in place, TCP segments go to the worker's MPTCP stack
//!    ([`crate::mptcp::stack::Stack`], plain TCP included) — or to the worker that owns
//!    their connection — the rest is dropped and counted; new neighbours are passed to
//!    the other workers;
//! 3. the services run over connections with events: the relay (and the path manager
//!    for the MPTCP connections it opens), then the diagnostic service;
//! 4. due TCP timers fire;
//! 5. the segments produced go out as frames ([`crate::egress`]): headers in a small
//!    buffer, payload chained by reference;
//! 6. TX burst on every port, bulk free of what was dropped.
//!
//! Between iterations the worker polls its command channel (stop, connection
//! snapshots, attaching a monitor of connection events).

use crate::diag::{DiagMode, DiagService, MAX_SOURCES};
use crate::egress;
use crate::handoff::{Handoff, Message, Steering};
use crate::host::{HostPort, Verdict};
use crate::introspect::{MonitorEvent, Snapshot, SNAPSHOT_LIMIT};
use crate::mptcp::crypto::KeySource;
use crate::mptcp::mib::Mib;
use crate::mptcp::msk::MskId;
use crate::mptcp::stack::{Config as MptcpConfig, Stack};
use crate::neigh::{NeighborConfig, NeighborTable};
use crate::pm::PathManager;
use crate::port::{Burst, PacketBuf, Port};
use crate::relay::{Listener, Relay, RelayConfig};
use crate::stats::{Counter, CounterWriter};
use crate::tcp::ingress::segment_from_classified;
use crate::tcp::secrets::Secrets;
use crate::tcp::table::TableConfig;
use crate::tcp::{FourTuple, Instant, Payload, SegmentIn, SegmentOut};
use crate::wire::{Frame, WireError};
use crossbeam::channel::{Receiver, Sender, TryRecvError};
use std::net::{IpAddr, SocketAddr};

/// How long a connection the relay opened may take to become fully established
/// before its subflows are given up (nothing was exchanged yet).
const JOIN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Iterations between two looks at the command channel (and counter refreshes).
const CONTROL_EVERY: u32 = 256;

/// The shared-buffer type of a port's packets.
pub type SharedOf<P> = <<P as Port>::Buf as PacketBuf>::Shared;

/// Commands from the control thread, polled between bursts.
#[derive(Debug)]
pub enum Command {
    /// Leave the poll loop.
    Stop,
    /// Answer with a snapshot of the worker's connections (`try_send`: a control
    /// thread that stopped waiting gets nothing).
    Snapshot(Sender<Snapshot>),
    /// Send connection events to this channel (`try_send`; dropped and counted in
    /// `monitor_events_dropped` when full) while a monitor is attached; `None`
    /// detaches it, and the stack stops recording events.
    Monitor(Option<Sender<MonitorEvent>>),
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
    /// Relay limits and local ports.
    pub relay: RelayConfig,
    /// Relay listeners.
    pub listeners: Vec<Listener>,
    /// The subflows added to MPTCP connections the relay opens.
    pub path_manager: PathManager,
}

/// What a worker shares with the other workers.
pub struct Peers<P: Port> {
    /// Its ends of the hand-off inboxes.
    pub handoff: Handoff<SharedOf<P>>,
}

/// A poll-mode worker: owns its ports' queues, its connections and its counters.
pub struct Worker<P: Port> {
    ports: Vec<WorkerPort<P>>,
    neighbors: NeighborTable,
    tcp: Stack<SharedOf<P>>,
    diag: DiagService<SharedOf<P>, MskId>,
    relay: Relay<MskId>,
    pm: PathManager,
    /// Connections the relay opened, waiting to be fully established before the path
    /// manager adds their subflows, each with when to give up.
    awaiting_joins: Vec<(MskId, Instant)>,
    handoff: Handoff<SharedOf<P>>,
    steering: Steering,
    /// Segments produced in this iteration, sent at its end.
    out: Vec<(FourTuple, SegmentOut<SharedOf<P>>)>,
    /// Segments waiting for a neighbour's MAC.
    parked: egress::Parked<SharedOf<P>>,
    counters: CounterWriter,
    commands: Receiver<Command>,
    /// Where connection events go while a monitor is attached.
    monitor: Option<Sender<MonitorEvent>>,
}

impl<P: Port> Worker<P> {
    /// A worker over `ports` with the TCP endpoint `tcp`, counting into `counters`,
    /// commanded through `commands`; `now` is the worker clock's current time (ns).
    pub fn new(
        mut ports: Vec<WorkerPort<P>>,
        tcp: TcpSetup,
        peers: Peers<P>,
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
        let steering = Steering::new(tcp.worker.0, tcp.worker.1, tcp.relay.ports);
        let mut relay = Relay::new(tcp.relay);
        for l in tcp.listeners {
            relay.add(&mut table, l);
        }
        Self {
            ports,
            neighbors: NeighborTable::new(NeighborConfig::default()),
            tcp: table,
            diag,
            relay,
            pm: tcp.path_manager,
            awaiting_joins: Vec::new(),
            handoff: peers.handoff,
            steering,
            out: Vec::new(),
            parked: Vec::new(),
            counters,
            commands,
            monitor: None,
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
        let mut swept = 0;
        loop {
            for _ in 0..CONTROL_EVERY {
                let now = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
                self.poll(now);
            }
            self.publish_gauges();
            self.watch_memory();
            let now = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            if now.saturating_sub(swept) >= 1_000_000_000 {
                self.steering.expire(now);
                swept = now;
            }
            loop {
                match self.commands.try_recv() {
                    Ok(cmd) => {
                        if !self.command(cmd) {
                            return;
                        }
                    }
                    Err(TryRecvError::Disconnected) => return,
                    Err(TryRecvError::Empty) => break,
                }
            }
        }
    }

    /// Carries out a command from the control thread; false for [`Command::Stop`].
    pub fn command(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Stop => return false,
            Command::Snapshot(reply) => {
                let _ = reply.try_send(self.snapshot());
            }
            Command::Monitor(events) => {
                self.tcp.set_monitor(events.is_some());
                self.monitor = events;
            }
        }
        true
    }

    /// The worker's connections (at most [`SNAPSHOT_LIMIT`]), with their relay pairs.
    pub fn snapshot(&self) -> Snapshot {
        let mut conns = Vec::new();
        let relay = &self.relay;
        let truncated = self
            .tcp
            .snapshot(SNAPSHOT_LIMIT, |m| relay.leg(m), &mut conns);
        Snapshot {
            worker: self.handoff.me(),
            conns,
            truncated,
        }
    }

    /// Passes the stack's connection events to the attached monitor.
    fn pass_on_events(&mut self) {
        let Some(tx) = &self.monitor else { return };
        let mut dropped = self.tcp.take_monitor_dropped();
        for ev in self.tcp.take_monitor_events() {
            if tx.try_send(ev).is_err() {
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.counters.add(Counter::MonitorEventsDropped, dropped);
        }
    }

    /// One pass over every port at `now` (ns); returns the number of packets received.
    pub fn poll(&mut self, now: u64) -> usize {
        let at = Instant::from_nanos(now);
        let mut received = self.take_handed_over(now);
        for (index, wp) in self.ports.iter_mut().enumerate() {
            // At most u16::MAX ports: DPDK port ids are u16.
            let mut rx = Rx {
                index: index as u16,
                neighbors: &mut self.neighbors,
                tcp: &mut self.tcp,
                out: &mut self.out,
                counters: &mut self.counters,
                steering: &mut self.steering,
                handoff: &self.handoff,
                now,
            };
            received += rx.poll_port(wp);
        }
        if self.steering.active() {
            self.pass_on_neighbors();
        }
        self.serve(at);
        self.tcp.on_timers(at, &mut self.out);
        egress::transmit(
            &mut self.ports,
            &mut self.neighbors,
            &mut self.out,
            &mut self.parked,
            &mut self.counters,
            now,
        );
        for wp in &mut self.ports {
            wp.flush(&mut self.counters);
        }
        if self.monitor.is_some() {
            self.pass_on_events();
        }
        self.counters.inc(Counter::Polls);
        if received > 0 {
            self.counters.inc(Counter::BusyPolls);
        }
        received
    }

    /// Takes in what other workers handed over; returns the segments taken.
    fn take_handed_over(&mut self, now: u64) -> usize {
        let mut n = 0;
        while let Some(msg) = self.handoff.recv() {
            match msg {
                Message::Segment(tuple, seg, hops) => {
                    n += 1;
                    self.counters.inc(Counter::HandoffIn);
                    let mut rx = Rx {
                        index: 0,
                        neighbors: &mut self.neighbors,
                        tcp: &mut self.tcp,
                        out: &mut self.out,
                        counters: &mut self.counters,
                        steering: &mut self.steering,
                        handoff: &self.handoff,
                        now,
                    };
                    rx.segment_in(tuple, seg, hops);
                }
                Message::Neighbor(port, ip, mac) => self.neighbors.adopt(port, ip, mac, now),
            }
        }
        n
    }

    /// Tells the other workers the neighbours this one learnt.
    fn pass_on_neighbors(&mut self) {
        let me = self.handoff.me();
        for (port, ip, mac) in self.neighbors.take_learned() {
            for w in (0..self.handoff.workers()).filter(|&w| w != me) {
                if !self.handoff.send(w, Message::Neighbor(port, ip, mac)) {
                    self.counters.inc(Counter::HandoffDropped);
                }
            }
        }
    }

    /// Runs the services over every connection with events, then adds the subflows of
    /// the MPTCP connections the relay opened.
    fn serve(&mut self, now: Instant) {
        let ports = &self.ports;
        let source = |dst: IpAddr| source_address(ports, dst);
        while let Some(id) = self.tcp.next_ready() {
            let events = self.tcp.take_events(id);
            let served = self
                .relay
                .serve(&mut self.tcp, id, events, source, now, &mut self.out)
                || self
                    .diag
                    .serve(&mut self.tcp, id, events, now, &mut self.out);
            if !served {
                self.tcp.flush(id, now, &mut self.out);
            }
        }
        self.awaiting_joins
            .extend(self.relay.take_connected().map(|m| (m, now + JOIN_WAIT)));
        let mut i = 0;
        while i < self.awaiting_joins.len() {
            let (m, until) = self.awaiting_joins[i];
            match self.tcp.info(m) {
                // Joins are refused until the peer has our keys: wait for that.
                Some(info) if !info.fallback && !info.fully_established && now < until => {
                    i += 1;
                    continue;
                }
                Some(info) if !info.fallback && info.fully_established => {
                    let relay = &mut self.relay;
                    for path in self
                        .pm
                        .paths(info.local, info.remote, || relay.local_port())
                    {
                        if !self.tcp.join(m, &path, now, &mut self.out) {
                            self.counters.inc(Counter::PmJoinsFailed);
                        }
                    }
                }
                _ => {}
            }
            self.awaiting_joins.swap_remove(i);
        }
    }

    /// Puts the stack under memory pressure while the packet-buffer pool has less
    /// than a quarter left (received data holds pool buffers until it is read or
    /// acknowledged; the rest is kept for receiving the ACKs that free them).
    fn watch_memory(&mut self) {
        let Some((free, size)) = self.ports.first().and_then(|p| p.port.pool_room()) else {
            return;
        };
        let pressure = free < size / 4;
        self.tcp.set_memory_pressure(pressure);
        self.counters
            .set(Counter::MemoryPressure, u64::from(pressure));
    }

    /// Copies the connection table's and services' own statistics into the counters.
    pub fn publish_gauges(&mut self) {
        let t = *self.tcp.tcp().stats();
        let d = *self.diag.stats();
        let r = self.relay.stats();
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
        c.set(Counter::RelayAccepted, r.accepted);
        c.set(Counter::RelayConnected, r.connected);
        c.set(Counter::RelayConnectFailures, r.connect_failures);
        c.set(Counter::RelayRefused, r.refused);
        c.set(Counter::RelayResets, r.resets);
        c.set(Counter::RelayBytesUp, r.bytes_up);
        c.set(Counter::RelayBytesDown, r.bytes_down);
        c.set(Counter::RelayPairs, r.pairs);
        c.set(Counter::HandoffRedirects, self.steering.redirects() as u64);
        let mib = self.tcp.mib();
        let sum = |ms: &[Mib]| ms.iter().map(|&m| mib.get(m)).sum::<u64>();
        c.set(Counter::MptcpConnections, self.tcp.len() as u64);
        c.set(Counter::MptcpOrphans, self.tcp.orphans() as u64);
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
                // Fallbacks by an infinite mapping, on either side (RFC 8684 §3.7).
                Mib::InfiniteMapTx,
                Mib::InfiniteMapRx,
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
    steering: &'a mut Steering,
    handoff: &'a Handoff<S>,
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
                self.segment_in(tuple, seg, 0);
            }
            Err(WireError::BadChecksum) => self.counters.inc(Counter::TcpBadChecksum),
            Err(_) => self.counters.inc(Counter::DropMalformed),
        }
    }
}

/// The local address for a connection to `dst`: the address of the port on whose
/// subnet `dst` lies, else the first address of `dst`'s family on a port with a next
/// hop for it.
fn source_address<P: Port>(ports: &[WorkerPort<P>], dst: IpAddr) -> Option<IpAddr> {
    ports
        .iter()
        .find_map(|p| p.host.address_on_link(dst))
        .or_else(|| {
            ports
                .iter()
                .filter(|p| p.host.next_hop(dst).is_some())
                .find_map(|p| p.host.address_of_family(dst.is_ipv4()))
        })
}

impl<S: crate::port::SharedBuf> Rx<'_, S> {
    /// Gives a segment to the stack, or hands it to the worker that owns (or may
    /// own) its connection; `hops` is how many workers it already visited.
    fn segment_in(&mut self, tuple: FourTuple, seg: SegmentIn<S>, hops: u16) {
        if self.steering.active() {
            let known = self.tcp.tcp().lookup(&tuple).is_some();
            let owner =
                self.steering
                    .owner(&tuple, known, seg.flags, &seg.raw_options, hops, self.now);
            if let Some((to, hops)) = owner {
                let handed = self.handoff.send(to, Message::Segment(tuple, seg, hops));
                self.counters.inc(if handed {
                    Counter::HandoffOut
                } else {
                    Counter::HandoffDropped
                });
                return;
            }
        }
        self.tcp
            .on_segment(tuple, seg, Instant::from_nanos(self.now), self.out);
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
