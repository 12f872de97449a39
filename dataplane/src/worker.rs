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
//! snapshots, attaching a monitor of connection events, arming a packet capture).
//! With flow steering ([`crate::flow_steer`]) it asks the control thread for a rule
//! when a handed-over segment completes a join it owns, and once a second for the
//! removal of the rules of subflows it no longer has.

use crate::capture::{Direction, Tap};
use crate::diag::{DiagMode, DiagService, MAX_SOURCES};
use crate::egress;
use crate::flow_steer::{FlowSteer, Sent};
use crate::handoff::{Handoff, Message, Steering};
use crate::host::{HostPort, Verdict};
use crate::introspect::{MonitorEvent, Snapshot, SNAPSHOT_LIMIT};
use crate::mptcp::crypto::KeySource;
use crate::mptcp::mib::Mib;
use crate::mptcp::msk::{MskId, Phase};
use crate::mptcp::stack::{Config as MptcpConfig, MemoryPressure, Stack};
use crate::neigh::{NeighborConfig, NeighborTable};
use crate::pm::{Opened, PathAgent, PathManager};
use crate::port::{Burst, PacketBuf, Port};
use crate::relay::{Listener, Relay, RelayConfig};
use crate::rss::Rss;
use crate::seq::Dsn;
use crate::stats::{Counter, CounterWriter, PathCounter, PathSample, Timing, PATH_PORTS};
use crate::tcp::ingress::segment_from_classified;
use crate::tcp::secrets::Secrets;
use crate::tcp::table::TableConfig;
use crate::tcp::{Events, FourTuple, Instant, Payload, SegmentIn, SegmentOut};
use crate::transparent::{Addressed, Rules};
use crate::wire::{Frame, WireError};
use crossbeam::channel::{Receiver, Sender, TryRecvError};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Iterations between two looks at the command channel (and counter refreshes).
pub const CONTROL_EVERY: u32 = 256;

/// The shared-buffer type of a port's packets.
pub type SharedOf<P> = <<P as Port>::Buf as PacketBuf>::Shared;

/// How long a failover may take to show DATA_ACK progress before it is no longer
/// timed (its connections are then counted as moved, without a duration).
const FAILOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

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
    /// The link of port `port` went down (detected at `detected`): the MPTCP
    /// subflows from its addresses are reset and their unacknowledged data reinjected
    /// on the others, the addresses are withdrawn (REMOVE_ADDR) and no longer used
    /// for new subflows. The failover time (see [`Counter::FailoverTimeUs`]) is also
    /// raised into `failover_us` (µs), so the slowest worker's shows.
    PortDown {
        /// The port's index.
        port: u16,
        /// Its addresses.
        addrs: Vec<IpAddr>,
        /// When the control thread saw the link go down.
        detected: std::time::Instant,
        /// The port's last failover time, µs.
        failover_us: Arc<AtomicU64>,
    },
    /// The link of port `port` is back: its `signal` addresses are announced again on
    /// existing connections and the path manager re-creates the subflows from its
    /// endpoints on the connections the gateway opened.
    PortUp {
        /// The port's index.
        port: u16,
        /// Its addresses.
        addrs: Vec<IpAddr>,
    },
    /// A reloaded configuration's run-time settings.
    Reconfigure(Box<Reconfigure>),
    /// Copy the frames of the port at this index (in the worker's port order) into
    /// the tap's channel; `None` disarms every port.
    Capture(Option<(usize, Tap)>),
}

/// The settings a configuration reload changes in a running worker.
#[derive(Debug)]
pub struct Reconfigure {
    /// MPTCP settings (only those [`Stack::reconfigure`] changes take effect).
    pub mptcp: MptcpConfig,
    /// The addresses to announce: new ones are announced on existing connections,
    /// those no longer listed are withdrawn (REMOVE_ADDR).
    pub signal: Vec<IpAddr>,
    /// The path manager for connections opened from now on.
    pub path_manager: PathManager,
}

/// A failover being timed: connections moved off a port, each with the DSN it had
/// sent up to then.
struct Failover {
    port: u16,
    detected: std::time::Instant,
    failover_us: Arc<AtomicU64>,
    moved: Vec<(MskId, Dsn)>,
}

/// One port as a worker sees it: its queue pair, its addresses, its pending bursts.
pub struct WorkerPort<P: Port> {
    pub(crate) port: P,
    pub(crate) host: HostPort,
    pub(crate) tx: Burst<P::Buf>,
    rx: Burst<P::Buf>,
    dropped: Burst<P::Buf>,
    /// The armed packet capture, if any.
    tap: Option<Tap>,
    /// The port's RSS key and table when the NIC spreads flows by RSS.
    rss: Option<Rss>,
    /// The port sends chained packets whole ([`Port::tx_chains`]); else egress copies
    /// payloads behind the headers.
    pub(crate) chains: bool,
}

impl<P: Port> WorkerPort<P> {
    /// A port's queue pair together with the gateway's addresses on it.
    pub fn new(port: P, host: HostPort) -> Self {
        Self {
            chains: port.tx_chains(),
            port,
            host,
            tx: Burst::new(),
            rx: Burst::new(),
            dropped: Burst::new(),
            tap: None,
            rss: None,
        }
    }

    /// The port spreads flows over its RX queues by RSS with `rss` (worker `i` polls
    /// queue `i`): local ports of connections opened from its addresses are chosen so
    /// replies land on the opener's queue, and segments naming no owner stay on the
    /// queue they arrived on.
    pub fn with_rss(mut self, rss: Option<Rss>) -> Self {
        self.rss = rss;
        self
    }

    /// The queue pair.
    pub fn port(&self) -> &P {
        &self.port
    }

    /// Sends the pending TX burst; what the port does not take is dropped and counted.
    pub(crate) fn flush(&mut self, counters: &mut CounterWriter) {
        if !self.tx.is_empty() {
            if let Some(tap) = &mut self.tap {
                counters.add(
                    Counter::CaptureDropped,
                    tap.record(self.tx.as_slice(), Direction::Tx),
                );
            }
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
    /// The path manager over the MPTCP connections the relay opens.
    paths: PathAgent,
    /// The transparent listeners' matches (which foreign destinations are taken).
    transparent: Rules,
    handoff: Handoff<SharedOf<P>>,
    steering: Steering,
    /// Flow-rule requests for joined subflows that arrive by hand-off (`None`: one
    /// worker, or no port takes rules).
    flows: Option<FlowSteer>,
    /// The memory pressure in force ([`Worker::watch_memory`]).
    pressure: MemoryPressure,
    /// Segments produced in this iteration, sent at its end.
    out: Vec<(FourTuple, SegmentOut<SharedOf<P>>)>,
    /// Segments waiting for a neighbour's MAC.
    parked: egress::Parked<SharedOf<P>>,
    counters: CounterWriter,
    commands: Receiver<Command>,
    /// Where connection events go while a monitor is attached.
    monitor: Option<Sender<MonitorEvent>>,
    /// Our addresses configured `signal` (announced while their link is up).
    signal: Vec<IpAddr>,
    /// Our addresses whose port's link is down.
    down: Vec<IpAddr>,
    /// Failovers being timed, one per port at most.
    failovers: Vec<Failover>,
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
        relay.set_rss(
            ports
                .iter()
                .filter_map(|p| Some((&p.host, p.rss.as_ref()?)))
                .flat_map(|(host, rss)| host.addresses().map(move |a| (a, rss.clone())))
                .collect(),
        );
        for l in tcp.listeners {
            relay.add(&mut table, l);
        }
        let transparent = relay.transparent_rules();
        for (i, wp) in ports.iter_mut().enumerate() {
            // At most u16::MAX ports: DPDK port ids are u16.
            wp.host.set_transit(transparent.on_port(i as u16));
        }
        Self {
            ports,
            neighbors: NeighborTable::new(NeighborConfig::default()),
            tcp: table,
            diag,
            relay,
            paths: PathAgent::new(tcp.path_manager),
            transparent,
            handoff: peers.handoff,
            steering,
            flows: None,
            pressure: MemoryPressure::None,
            out: Vec::new(),
            parked: Vec::new(),
            counters,
            commands,
            monitor: None,
            signal: tcp.signal,
            down: Vec::new(),
            failovers: Vec::new(),
        }
    }

    /// Asks the control thread through `flows` for flow rules that steer the joined
    /// subflows whose segments reach this worker by hand-off to its own queue.
    pub fn with_flow_steering(mut self, flows: Option<FlowSteer>) -> Self {
        self.flows = flows;
        self
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
    /// clock in ns since the worker started; one more reading after each iteration times
    /// it (busy or idle, see [`CounterWriter::record_poll`]).
    pub fn run(&mut self) {
        let epoch = std::time::Instant::now();
        let clock = || u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut swept = 0;
        loop {
            for _ in 0..CONTROL_EVERY {
                let now = clock();
                let received = self.poll(now);
                self.counters
                    .record_poll(received > 0, clock().saturating_sub(now));
            }
            self.publish_gauges();
            self.watch_memory();
            let now = clock();
            if now.saturating_sub(swept) >= 1_000_000_000 {
                self.steering.expire(now);
                self.release_flows();
                swept = now;
            }
            self.time_failovers();
            loop {
                match self.commands.try_recv() {
                    Ok(cmd) => {
                        let now = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
                        if !self.command(cmd, now) {
                            return;
                        }
                    }
                    Err(TryRecvError::Disconnected) => return,
                    Err(TryRecvError::Empty) => break,
                }
            }
        }
    }

    /// Carries out a command at `now` (ns); false for [`Command::Stop`].
    pub fn command(&mut self, cmd: Command, now: u64) -> bool {
        match cmd {
            Command::Stop => return false,
            Command::PortDown {
                port,
                addrs,
                detected,
                failover_us,
            } => self.port_down(port, &addrs, detected, failover_us),
            Command::PortUp { port, addrs } => {
                self.greet(port, &addrs);
                self.port_up(&addrs, Instant::from_nanos(now));
            }
            Command::Reconfigure(r) => self.reconfigure(*r),
            Command::Snapshot(reply) => {
                let _ = reply.try_send(self.snapshot());
            }
            Command::Monitor(events) => {
                self.tcp.set_monitor(events.is_some());
                self.monitor = events;
            }
            Command::Capture(tap) => {
                self.ports.iter_mut().for_each(|wp| wp.tap = None);
                if let Some((i, t)) = tap {
                    if let Some(wp) = self.ports.get_mut(i) {
                        wp.tap = Some(t);
                    }
                }
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

    /// Moves the MPTCP connections off the addresses of a port whose link went down.
    fn port_down(
        &mut self,
        port: u16,
        addrs: &[IpAddr],
        detected: std::time::Instant,
        failover_us: Arc<AtomicU64>,
    ) {
        let mut moved: Vec<MskId> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for &a in addrs {
            if !self.down.contains(&a) {
                self.down.push(a);
            }
            self.paths.manager_mut().set_down(a, true);
            self.tcp.withdraw_address(a, |m| {
                if seen.insert(m) {
                    moved.push(m);
                }
            });
        }
        let tcp = &self.tcp;
        // Connections already closed (subflows lingering in TIME-WAIT) move nowhere.
        moved.retain(|&m| tcp.info(m).is_some_and(|i| i.phase != Phase::Closed));
        self.counters.add(Counter::Failovers, moved.len() as u64);
        let moved = moved
            .into_iter()
            .filter_map(|m| {
                let (una, nxt) = tcp.data_in_flight(m)?;
                una.before(nxt).then_some((m, nxt))
            })
            .collect();
        self.failovers.retain(|f| f.port != port);
        self.failovers.push(Failover {
            port,
            detected,
            failover_us,
            moved,
        });
        self.time_failovers();
    }

    /// Records the failovers whose moved connections have all had the data in flight
    /// at the link's loss DATA_ACKed (reinjected where it was lost; at once when none
    /// had data in flight; a connection gone meanwhile counts as done); gives up on
    /// those older than [`FAILOVER_WAIT`].
    fn time_failovers(&mut self) {
        let Worker {
            failovers,
            tcp,
            counters,
            ..
        } = self;
        failovers.retain(|f| {
            let elapsed = f.detected.elapsed();
            let done = f.moved.iter().all(|&(m, sent)| {
                tcp.data_in_flight(m)
                    .is_none_or(|(una, _)| !una.before(sent))
            });
            if done {
                let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
                counters.add(Counter::FailoverTimeUs, us);
                f.failover_us.fetch_max(us, Ordering::Relaxed);
            }
            !done && elapsed < FAILOVER_WAIT
        });
    }

    /// Announces the port's IPv4 addresses (gratuitous ARP) when its link is back, in
    /// two bursts: a kernel-backed port (`net_af_packet`) fails the first send after
    /// the link returns (the socket reports the link's loss), holding its frames until
    /// the next one.
    fn greet(&mut self, port: u16, addrs: &[IpAddr]) {
        let Some(wp) = self.ports.get_mut(usize::from(port)) else {
            return;
        };
        for _ in 0..2 {
            for &a in addrs.iter().filter(|a| a.is_ipv4()) {
                egress::solicit(wp, a, &mut self.counters);
            }
            wp.flush(&mut self.counters);
        }
    }

    /// Puts the addresses of a port whose link is back to use again.
    fn port_up(&mut self, addrs: &[IpAddr], now: Instant) {
        let mut announced = 0;
        for &a in addrs {
            self.down.retain(|&d| d != a);
            if self.signal.contains(&a) {
                announced += self.tcp.announce(a);
            }
        }
        self.counters.add(Counter::Reannounced, announced as u64);
        let ports = &self.ports;
        let relay = &mut self.relay;
        let opened = self.paths.link_up(
            &mut self.tcp,
            addrs,
            |dst| source_address(ports, dst),
            |ip, remote| relay.local_port(ip, remote),
            now,
            &mut self.out,
        );
        self.count_opened(opened);
    }

    /// Counts the subflows the path manager opened.
    fn count_opened(&mut self, n: Opened) {
        self.counters.add(Counter::PmJoins, n.joins);
        self.counters.add(Counter::Rejoins, n.rejoins);
        self.counters.add(Counter::PmJoinsFailed, n.failed);
    }

    /// Applies a reloaded configuration's run-time settings.
    fn reconfigure(&mut self, r: Reconfigure) {
        self.tcp.reconfigure(&r.mptcp);
        let old = std::mem::replace(&mut self.signal, r.signal);
        for a in old.iter().filter(|a| !self.signal.contains(a)) {
            self.tcp.remove_address(*a);
        }
        let mut announced = 0;
        for &a in self.signal.iter().filter(|a| !old.contains(a)) {
            if !self.down.contains(&a) {
                announced += self.tcp.announce(a);
            }
        }
        self.counters.add(Counter::Reannounced, announced as u64);
        let mut pm = r.path_manager;
        let tcp = &self.tcp;
        pm.renumber(|ip| tcp.address_id_of(ip));
        for &a in &self.down {
            pm.set_down(a, true);
        }
        *self.paths.manager_mut() = pm;
        self.counters.inc(Counter::Reconfigured);
    }

    /// One pass over every port at `now` (ns); returns the number of packets received.
    pub fn poll(&mut self, now: u64) -> usize {
        let at = Instant::from_nanos(now);
        let mut received = self.take_handed_over(now);
        for (index, wp) in self.ports.iter_mut().enumerate() {
            // At most u16::MAX ports: DPDK port ids are u16.
            let mut rx = Rx {
                index: index as u16,
                rss: wp.rss.is_some(),
                neighbors: &mut self.neighbors,
                tcp: &mut self.tcp,
                out: &mut self.out,
                counters: &mut self.counters,
                steering: &mut self.steering,
                handoff: &self.handoff,
                transparent: &self.transparent,
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
                Message::Segment {
                    tuple,
                    seg,
                    hops,
                    to,
                    port,
                } => {
                    n += 1;
                    self.counters.inc(Counter::HandoffIn);
                    let mut rx = Rx {
                        index: port,
                        rss: false,
                        neighbors: &mut self.neighbors,
                        tcp: &mut self.tcp,
                        out: &mut self.out,
                        counters: &mut self.counters,
                        steering: &mut self.steering,
                        handoff: &self.handoff,
                        transparent: &self.transparent,
                        now,
                    };
                    rx.segment_in(tuple, seg, hops, to);
                    self.steer_flow(port, &tuple);
                }
                Message::Neighbor(port, ip, mac) => self.neighbors.adopt(port, ip, mac, now),
            }
        }
        n
    }

    /// Asks for a flow rule when the handed-over segment of `tuple` (arrived on port
    /// `port`) completed an MP_JOIN this worker owns: its later segments would
    /// otherwise keep reaching another worker's queue.
    fn steer_flow(&mut self, port: u16, tuple: &FourTuple) {
        let Some(flows) = &mut self.flows else {
            return;
        };
        if flows.on_port(port) && !flows.asked(tuple) && self.tcp.is_established_join(tuple) {
            let counter = match flows.steer(port, *tuple) {
                Sent::Queued => Counter::FlowSteerRequests,
                Sent::Dropped => Counter::FlowRequestsDropped,
            };
            self.counters.inc(counter);
        }
    }

    /// Asks for the removal of the flow rules of subflows no longer in the table.
    pub fn release_flows(&mut self) {
        let Some(flows) = &mut self.flows else {
            return;
        };
        let tcp = self.tcp.tcp();
        let (queued, dropped) = flows.sweep(|t| tcp.lookup(t).is_some());
        self.counters.add(Counter::FlowReleaseRequests, queued);
        self.counters.add(Counter::FlowRequestsDropped, dropped);
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

    /// Runs the services over every connection with events, then the path manager
    /// over the MPTCP connections the gateway opened.
    fn serve(&mut self, now: Instant) {
        let ports = &self.ports;
        let source = |dst: IpAddr| source_address(ports, dst);
        while let Some(id) = self.tcp.next_ready() {
            let events = self.tcp.take_events(id);
            if events.contains(Events::CONNECTED) {
                record_setup(&self.tcp, &mut self.counters, id, now);
            }
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
        for m in self.relay.take_connected() {
            self.paths.opened(m, now);
        }
        let ports = &self.ports;
        let relay = &mut self.relay;
        let opened = self.paths.run(
            &mut self.tcp,
            |dst| source_address(ports, dst),
            |ip, remote| relay.local_port(ip, remote),
            now,
            &mut self.out,
        );
        self.count_opened(opened);
    }

    /// Puts the stack under memory pressure while a packet-buffer pool runs low:
    /// received data holds pool buffers until it is read or acknowledged, and the
    /// rest must stay free for receiving the ACKs that free them (and for sending
    /// ours). Below a quarter free windows stop opening; below an eighth (a sixth
    /// once there, so it does not flap) received payload is dropped. Every worker's
    /// pool counts: payload handed over holds a buffer of the worker that received it.
    fn watch_memory(&mut self) {
        if let Some((free, size)) = self.ports.first().and_then(|p| p.port.pool_room()) {
            let hard_below = if self.pressure == MemoryPressure::Hard {
                size / 6
            } else {
                size / 8
            };
            let level = if free < hard_below {
                MemoryPressure::Hard
            } else if free < size / 4 {
                MemoryPressure::Soft
            } else {
                MemoryPressure::None
            };
            self.handoff.publish_pressure(level as u8);
        }
        self.pressure = match self.handoff.worst_pressure() {
            0 => MemoryPressure::None,
            1 => MemoryPressure::Soft,
            _ => MemoryPressure::Hard,
        };
        self.tcp.set_memory_pressure(self.pressure);
        self.counters
            .set(Counter::MemoryPressure, self.pressure as u64);
    }

    /// Copies the connection table's and services' own statistics into the counters,
    /// and hands the timing histograms to the control side when it can; every few
    /// calls also counts the connections by state and the subflows per port.
    pub fn publish_gauges(&mut self) {
        self.counters.ship_histograms();
        let t = *self.tcp.tcp().stats();
        let d = *self.diag.stats();
        let r = self.relay.stats();
        let c = &mut self.counters;
        c.set(Counter::TcpConnections, self.tcp.tcp().len() as u64);
        c.set(Counter::TcpHalfOpen, self.tcp.tcp().half_open() as u64);
        c.set(Counter::TcpTimeWait, self.tcp.tcp().time_wait() as u64);
        c.set(Counter::TcpTimeWaitOverflow, t.time_wait_overflow);
        c.set(Counter::TcpSynsReceived, t.syns);
        c.set(Counter::TcpSynCookiesSent, t.cookies_sent);
        c.set(Counter::TcpSynCookiesAccepted, t.cookies_accepted);
        c.set(Counter::TcpSynCookiesRejected, t.cookies_rejected);
        c.set(Counter::TcpHalfOpenEvicted, t.half_open_evicted);
        c.set(Counter::TcpSynsDropped, t.syns_dropped);
        c.set(Counter::TcpResetsSent, t.resets_sent);
        c.set(Counter::TcpConnectionsClosed, t.closed);
        c.set(Counter::TcpPayloadShed, t.shed);
        c.set(Counter::DiagConnections, d.connections);
        c.set(Counter::DiagBytesDiscarded, d.discarded);
        c.set(Counter::DiagBytesEchoed, d.echoed);
        c.set(Counter::DiagBytesSourced, d.sourced);
        c.set(Counter::DiagSourcesRefused, d.sources_refused);
        c.set(Counter::RelayAccepted, r.accepted);
        c.set(Counter::RelayTransparent, r.transparent);
        c.set(Counter::RelayConnected, r.connected);
        c.set(Counter::RelayConnectFailures, r.connect_failures);
        c.set(Counter::RelayRefused, r.refused);
        c.set(Counter::RelayRssMisses, r.rss_misses);
        c.set(Counter::RelayResets, r.resets);
        c.set(Counter::RelayBackendResets, r.backend_resets);
        c.set(Counter::RelayTimeouts, r.timeouts);
        c.set(Counter::RelayBytesUp, r.bytes_up);
        c.set(Counter::RelayBytesDown, r.bytes_down);
        c.set(Counter::RelayPairs, r.pairs);
        c.set(Counter::HandoffRedirects, self.steering.redirects() as u64);
        c.set(Counter::HandoffPending, self.handoff.pending() as u64);
        let mib = self.tcp.mib();
        let sum = |ms: &[Mib]| ms.iter().map(|&m| mib.get(m)).sum::<u64>();
        c.set(Counter::MptcpConnections, self.tcp.len() as u64);
        c.set(Counter::MptcpOrphans, self.tcp.orphans() as u64);
        /// Polls between two walks over the connection table for the by-state and
        /// per-path gauges (a multiple of [`CONTROL_EVERY`]).
        const WALK_EVERY: u64 = 8 * CONTROL_EVERY as u64;
        if c.get(Counter::Polls) % WALK_EVERY < u64::from(CONTROL_EVERY) {
            let states = self.tcp.count_states();
            c.set(Counter::MptcpConnecting, states.connecting);
            c.set(Counter::MptcpEstablished, states.established);
            c.set(Counter::MptcpClosing, states.closing);
            c.set(Counter::MptcpFallbackOpen, states.fallback);
            let mut paths = [PathSample::default(); PATH_PORTS];
            let ports = &self.ports;
            // A subflow's path is the port its segments leave through.
            self.tcp.each_mptcp_subflow(|tuple, srtt| {
                let Some((i, _)) = crate::egress::route(ports, tuple) else {
                    return;
                };
                if let Some(p) = paths.get_mut(i) {
                    p.subflows += 1;
                    if let Some(rtt) = srtt {
                        p.rtt_samples += 1;
                        p.srtt_sum_ns += u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX);
                    }
                }
            });
            c.set_paths(&paths);
        }
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
    /// The port's index (that of the port a handed-over segment came in by).
    index: u16,
    /// The segments came from the port's RSS to this worker's queue (not handed over).
    rss: bool,
    neighbors: &'a mut NeighborTable,
    tcp: &'a mut Stack<S>,
    out: &'a mut Vec<(FourTuple, SegmentOut<S>)>,
    counters: &'a mut CounterWriter,
    steering: &'a mut Steering,
    handoff: &'a Handoff<S>,
    transparent: &'a Rules,
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
        if let Some(tap) = &mut wp.tap {
            let dropped = tap.record(wp.rx.as_slice(), Direction::Rx);
            self.counters.add(Counter::CaptureDropped, dropped);
        }
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
                Verdict::Tcp(f) => self.tcp_in(buf, &f, false),
                Verdict::Transit(f) => self.tcp_in(buf, &f, true),
                Verdict::Drop(reason) => {
                    self.counters.inc(reason);
                    let _ = wp.dropped.push(buf);
                }
            }
        }
        n
    }

    /// Hands a TCP frame to the stack; `transit` when it is addressed to a foreign
    /// destination (the transparent listeners of the port decide who takes it).
    fn tcp_in<B: PacketBuf<Shared = S>>(&mut self, buf: B, f: &Frame, transit: bool) {
        match segment_from_classified(buf, f, true) {
            Ok((tuple, seg)) => {
                self.counters.inc(Counter::TcpSegmentsIn);
                let addressed = if transit {
                    self.transparent.classify(self.index, &tuple)
                } else {
                    Addressed::Us
                };
                self.segment_in(tuple, seg, 0, addressed);
            }
            Err(WireError::BadChecksum) => self.counters.inc(Counter::TcpBadChecksum),
            Err(_) => self.counters.inc(Counter::DropMalformed),
        }
    }
}

/// Records how long connection `m`'s handshake took (its initial subflow's first SYN or
/// SYN-ACK out → established; not for connections from SYN cookies).
fn record_setup<S: crate::port::SharedBuf>(
    stack: &Stack<S>,
    counters: &mut CounterWriter,
    m: MskId,
    now: Instant,
) {
    let Some(info) = stack.info(m) else {
        return;
    };
    let tuple = FourTuple {
        local: info.local,
        remote: info.remote,
    };
    let tcp = stack.tcp();
    let started = tcp
        .lookup(&tuple)
        .and_then(|c| tcp.get(c)?.handshake_started());
    if let Some(at) = started {
        let ns = u64::try_from(now.since(at).as_nanos()).unwrap_or(u64::MAX);
        counters.record(Timing::Setup, ns);
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
    /// own) its connection; `hops` is how many workers it already visited. A segment
    /// to a foreign destination that nothing here takes is dropped and counted.
    fn segment_in(&mut self, tuple: FourTuple, seg: SegmentIn<S>, hops: u16, to: Addressed) {
        let foreign = to != Addressed::Us;
        if self.steering.active() && self.tcp.tcp().lookup(&tuple).is_none() {
            let (flags, now) = (seg.flags, self.now);
            let owner = self.steering.owner(
                &tuple,
                flags,
                &seg.raw_options,
                foreign,
                hops,
                self.rss,
                now,
            );
            if let Some((w, hops)) = owner {
                let handed = self.handoff.send(
                    w,
                    Message::Segment {
                        tuple,
                        seg,
                        hops,
                        to,
                        port: self.index,
                    },
                );
                self.counters.inc(if handed {
                    Counter::HandoffOut
                } else {
                    Counter::HandoffDropped
                });
                return;
            }
        }
        let now = Instant::from_nanos(self.now);
        if !foreign {
            self.tcp.on_segment(tuple, seg, now, self.out);
        } else if !self.tcp.on_foreign_segment(tuple, seg, to, now, self.out) {
            self.counters.inc(Counter::DropTransit);
        }
        let received = self.tcp.take_received();
        if received > 0 {
            let port = usize::from(self.index);
            self.counters
                .add_path(port, PathCounter::Received, received);
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
