//! A gateway worker relaying connections between two in-memory hosts: the workloads
//! of the gateway-core benchmark (`src/bin/relay_core.rs`) and of its correctness
//! test (`tests/relay_rig.rs`).
//!
//! The gateway is the product's own per-core loop ([`Worker::poll`]) on three
//! in-memory ports ([`MemPort`]): two paths to an MPTCP client (192.0.2.0/24 and
//! 198.51.100.0/24, the second address announced with ADD_ADDR as in the lab) and one
//! to a plain TCP server (203.0.113.0/24). It relays `192.0.2.1:5201` to the server's
//! `203.0.113.2:5201`. Both hosts are MPTCP stacks of this project that speak real
//! frames (Ethernet, IPv4, TCP with checksums) over the links.
//!
//! The workloads ([`Workload`]) are the lab's: the connection-rate run
//! (`cps_load.c`: the client keeps `parallel` connections in flight; each is an MPTCP
//! connection that joins two more subflows once established, sends one byte and
//! closes once the server's end of data arrived; the server reads the byte and closes
//! first), and a stream either way over one connection with its two joins (the
//! goodput runs, the applications sending whenever their stacks take more). Virtual
//! time advances a fixed step per round, so timers, TIME-WAIT and the tables' bounds
//! act as in a worker. With [`Rig::gateway_ticks`] the time inside the gateway's
//! polls is metered with the TSC: everything a gateway core does, with a NIC whose
//! bursts cost what the in-memory link's do. That link costs more than a DPDK ring
//! (a mutex and a heap per direction, an `Arc` per shared buffer, the payload's
//! checksum in software both ways), so the figures are upper bounds of the gateway's
//! own work.

use crate::join_pair::ticks;
use dataplane::host::{HostPort, IfAddr};
use dataplane::mptcp::crypto::KeySource;
use dataplane::mptcp::msk::MskId;
use dataplane::mptcp::stack::{Config as MpConfig, JoinPath, Stack};
use dataplane::pm::{PathManager, PathManagerKind};
use dataplane::port::heap::{HeapPool, HeapShared};
use dataplane::port::mem::{link, LinkConfig, MemPort, SimClock};
use dataplane::port::{Burst, PacketBuf, Port};
use dataplane::relay::{Accept, Listener, RelayConfig};
use dataplane::stats::{counters, Counter, CounterReader};
use dataplane::tcp::emit::{emit_headers, ChecksumMode, L2};
use dataplane::tcp::ingress::segment_from_frame;
use dataplane::tcp::{Events, FourTuple, Instant, Payload, Secrets, SegmentOut, TableConfig};
use dataplane::wire::{arp, MacAddr};
use dataplane::worker::{Peers, TcpSetup, Worker, WorkerPort, CONTROL_EVERY};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

const GW_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 1]);
const CLIENT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 2]);
const SERVER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 3]);
/// The gateway's address on each of its ports: client path 0, client path 1, server.
const GW: [Ipv4Addr; 3] = [
    Ipv4Addr::new(192, 0, 2, 1),
    Ipv4Addr::new(198, 51, 100, 1),
    Ipv4Addr::new(203, 0, 113, 1),
];
/// The client's address on each path.
const CLIENT: [Ipv4Addr; 2] = [Ipv4Addr::new(192, 0, 2, 2), Ipv4Addr::new(198, 51, 100, 2)];
const SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const PORT: u16 = 5201;
/// Virtual time per round: a poll of the gateway and a turn of each host.
const STEP_NS: u64 = 20_000;

type Out = Vec<(FourTuple, SegmentOut<HeapShared>)>;

/// An end host: an MPTCP stack (this project's) on one or more in-memory ports.
struct Host {
    ports: Vec<MemPort>,
    /// The host's address on each port.
    addrs: Vec<Ipv4Addr>,
    /// The gateway's address on each port.
    gw: Vec<Ipv4Addr>,
    mac: MacAddr,
    stack: Stack<HeapShared>,
    out: Out,
    rx: Burst<<MemPort as Port>::Buf>,
    /// Where each frame is built before it is copied into a packet buffer.
    frame: Vec<u8>,
}

impl Host {
    fn new(
        ports: Vec<MemPort>,
        addrs: &[Ipv4Addr],
        gw: &[Ipv4Addr],
        mac: MacAddr,
        seed: u8,
        table: TableConfig,
    ) -> Self {
        Host {
            ports,
            addrs: addrs.to_vec(),
            gw: gw.to_vec(),
            mac,
            stack: Stack::new(
                table,
                Secrets::new([seed; 32]),
                MpConfig {
                    add_addr_accepted: 0,
                    ..MpConfig::default()
                },
                KeySource::from_seed([seed; 32]),
                (0, 1),
                Instant::default(),
            ),
            out: Vec::new(),
            rx: Burst::new(),
            frame: Vec::with_capacity(2048),
        }
    }

    /// An ARP request for the gateway's address on each port: the gateway learns the
    /// host's MAC from it.
    fn greet(&mut self, pool: &HeapPool) {
        for ((port, addr), target) in self.ports.iter_mut().zip(&self.addrs).zip(&self.gw) {
            let mut f = [0u8; 64];
            let Ok(len) = arp::request_frame(&mut f, self.mac, None, *addr, *target) else {
                continue;
            };
            let mut burst = Burst::new();
            if let Some(b) = pool.alloc_from(&f[..len]) {
                let _ = burst.push(b);
            }
            port.tx_burst(&mut burst);
        }
    }

    /// Takes every frame that arrived and runs the stack's timers.
    fn receive(&mut self, now: Instant) {
        for port in &mut self.ports {
            while port.rx_burst(&mut self.rx) > 0 {
                for buf in self.rx.drain() {
                    // ARP replies and the like are no segments.
                    if let Ok((tuple, seg)) = segment_from_frame(buf, true) {
                        self.stack.on_segment(tuple, seg, now, &mut self.out);
                    }
                }
            }
        }
        self.stack.on_timers(now, &mut self.out);
    }

    /// Sends what the stack queued: to a gateway address through the port facing it
    /// (a segment from the client's second address to the gateway's first takes the
    /// first path, as the lab client's routing sends it), else from the port of its
    /// local address.
    fn transmit(&mut self, pool: &HeapPool) {
        let l2 = |src: MacAddr| L2 {
            src,
            dst: GW_MAC,
            vlan_tci: None,
        };
        let frame = &mut self.frame;
        for (tuple, seg) in self.out.drain(..) {
            let by =
                |addrs: &[Ipv4Addr], ip: IpAddr| addrs.iter().position(|a| IpAddr::V4(*a) == ip);
            let Some(i) =
                by(&self.gw, tuple.remote.ip()).or_else(|| by(&self.addrs, tuple.local.ip()))
            else {
                continue;
            };
            frame.clear();
            frame.resize(128, 0);
            let Ok(hl) = emit_headers(frame, &l2(self.mac), &tuple, &seg, ChecksumMode::Full)
            else {
                continue;
            };
            frame.truncate(hl);
            if let Some(p) = &seg.payload {
                frame.extend_from_slice(p.bytes());
            }
            let mut burst = Burst::new();
            if let Some(b) = pool.alloc_from(frame) {
                let _ = burst.push(b);
            }
            self.ports[i].tx_burst(&mut burst);
        }
    }
}

/// What the client does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Short connections, `parallel` at a time: each joins two subflows, sends one
    /// byte and closes once the server, which closes first, answered with its end of
    /// data (the lab's connection-rate run).
    Connections {
        /// Connections in flight.
        parallel: usize,
    },
    /// One connection, joined by two subflows, carrying data without end from the
    /// client to the server (`upload`) or back (the lab's goodput runs).
    Stream {
        /// The client sends; else the server does.
        upload: bool,
    },
}

/// Payload bytes an application hands its stack at once in a stream.
const CHUNK: usize = 1400;

/// What the rig counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Client connections that ended cleanly (both ends of data exchanged).
    pub completed: u64,
    /// Client connections reset.
    pub failed: u64,
    /// Connections the client could not open (its tuple was still taken).
    pub connect_failures: u64,
    /// Joins the client could not start (tuple taken, connection gone).
    pub join_failures: u64,
    /// Bytes the server read (one per connection).
    pub server_bytes: u64,
    /// Bytes the client read.
    pub client_bytes: u64,
}

/// The gateway, the two hosts and the links between them.
pub struct Rig {
    pool: HeapPool,
    clock: SimClock,
    gw: Worker<MemPort>,
    counters: CounterReader,
    client: Host,
    server: Host,
    /// Client connections in flight.
    open: Vec<MskId>,
    /// Connections the client keeps in flight.
    parallel: usize,
    /// The stream's sender, if any: the client (upload) or the server.
    stream: Option<bool>,
    /// The server's connections a stream is sent on.
    server_conns: Vec<MskId>,
    /// What a stream sends, [`CHUNK`] bytes at a time.
    chunk: Vec<u8>,
    next_port: u16,
    tally: Tally,
    /// TSC ticks inside the gateway's polls.
    gw_ticks: u64,
    /// The gateway's polls so far.
    polls: u32,
}

impl Rig {
    /// A rig running `workload`.
    pub fn new(workload: Workload) -> Self {
        let (parallel, stream) = match workload {
            Workload::Connections { parallel } => (parallel, None),
            Workload::Stream { upload } => (1, Some(upload)),
        };
        let pool = HeapPool::new(1 << 17);
        let clock = SimClock::new();
        let cfg = LinkConfig {
            capacity: 1 << 14,
            ..LinkConfig::default()
        };
        let mut gw_ports = Vec::new();
        let mut ends = Vec::new();
        for (i, addr) in GW.iter().enumerate() {
            let (end, g) = link(
                LinkConfig {
                    seed: 31 + i as u64,
                    ..cfg.clone()
                },
                &pool,
                &clock,
            );
            ends.push(end);
            let host = HostPort::new(
                GW_MAC,
                &[IfAddr {
                    addr: (*addr).into(),
                    prefix: 24,
                }],
                None,
                None,
            );
            gw_ports.push(WorkerPort::new(g, host));
        }
        let (writer, counters) = counters();
        let (_commands, rx) = crossbeam::channel::bounded(1);
        let peers = Peers {
            handoff: dataplane::handoff::handoffs(1).remove(0),
        };
        let gw = Worker::new(gw_ports, gateway_setup(), peers, writer, rx, 0);
        let server_port = ends.pop().into_iter().collect();
        let table = TableConfig::default();
        let mut server = Host::new(
            server_port,
            &[SERVER],
            &GW[2..],
            SERVER_MAC,
            3,
            table.clone(),
        );
        server.stack.listen(SocketAddr::from((SERVER, PORT)));
        // The client reuses its ports at once, as the lab's does (`tcp_tw_reuse`): its
        // three ports per connection come round far within TIME-WAIT's 60 s.
        let no_time_wait = TableConfig {
            max_time_wait: 0,
            ..table
        };
        let client = Host::new(ends, &CLIENT, &GW[..2], CLIENT_MAC, 2, no_time_wait);
        let mut rig = Rig {
            pool,
            clock,
            gw,
            counters,
            client,
            server,
            open: Vec::new(),
            parallel,
            stream,
            server_conns: Vec::new(),
            chunk: (0..CHUNK).map(|i| i as u8).collect(),
            next_port: 1024,
            tally: Tally::default(),
            gw_ticks: 0,
            polls: 0,
        };
        rig.client.greet(&rig.pool);
        rig.server.greet(&rig.pool);
        rig
    }

    /// One round: the gateway polls (metered; every [`CONTROL_EVERY`] polls it also
    /// publishes its counters, as its own loop does), then each host takes its frames, its
    /// application runs and it sends; virtual time advances [`STEP_NS`].
    pub fn step(&mut self) {
        let now_ns = self.clock.now();
        let now = Instant::from_nanos(now_ns);
        let t0 = ticks();
        self.gw.poll(now_ns);
        self.polls += 1;
        if self.polls % CONTROL_EVERY == 0 {
            // As the worker's own loop does: its gauges and relay counters.
            self.gw.publish_gauges();
        }
        self.gw_ticks += ticks().wrapping_sub(t0);
        self.server.receive(now);
        self.serve(now);
        self.server.transmit(&self.pool);
        self.client.receive(now);
        self.run_client(now);
        self.client.transmit(&self.pool);
        self.clock.advance(STEP_NS);
    }

    /// The server's application: reads what arrives; in the connection workload it
    /// closes once it read something (first, as the lab's server does), in a download
    /// it sends without end.
    fn serve(&mut self, now: Instant) {
        let s = &mut self.server.stack;
        while let Some(m) = s.next_ready() {
            let ev = s.take_events(m);
            if ev.contains(Events::CONNECTED) && self.stream == Some(false) {
                self.server_conns.push(m);
            }
            let mut read = 0;
            while let Some(p) = s.recv(m) {
                read += p.len();
            }
            self.tally.server_bytes += read as u64;
            if self.stream.is_none() && (read > 0 || ev.contains(Events::PEER_FIN)) {
                s.close(m);
            }
            s.flush(m, now, &mut self.server.out);
        }
        for &m in &self.server_conns {
            fill(s, m, &self.pool, &self.chunk);
            s.flush(m, now, &mut self.server.out);
        }
    }

    /// The client's application: opens connections up to `parallel`; on each, once
    /// established, joins two subflows and sends one byte; closes on the server's end
    /// of data.
    fn run_client(&mut self, now: Instant) {
        while self.open.len() < self.parallel {
            let local = SocketAddr::from((CLIENT[0], self.take_port()));
            let remote = SocketAddr::from((GW[0], PORT));
            match self
                .client
                .stack
                .connect(local, remote, true, now, &mut self.client.out)
            {
                Some(m) => self.open.push(m),
                None => {
                    self.tally.connect_failures += 1;
                    break;
                }
            }
        }
        let s = &mut self.client.stack;
        while let Some(m) = s.next_ready() {
            let ev = s.take_events(m);
            if ev.contains(Events::CONNECTED) {
                for (from, to) in [(CLIENT[1], GW[0]), (CLIENT[1], GW[1])] {
                    self.next_port = next(self.next_port);
                    let path = JoinPath {
                        local: SocketAddr::from((from, self.next_port)),
                        remote: SocketAddr::from((to, PORT)),
                        local_id: 1,
                        backup: false,
                    };
                    if !s.join(m, &path, now, &mut self.client.out) {
                        self.tally.join_failures += 1;
                    }
                }
                if self.stream.is_none() {
                    if let Some(b) = self.pool.alloc_from(b"x") {
                        let _ = s.send(m, Payload::new(b.into_shared()));
                    }
                }
            }
            while let Some(p) = s.recv(m) {
                self.tally.client_bytes += p.len() as u64;
            }
            if ev.contains(Events::PEER_FIN) {
                s.close(m);
            }
            if ev.contains(Events::RESET) {
                self.open.retain(|&o| o != m);
                self.tally.failed += 1;
            } else if ev.contains(Events::CLOSED) {
                self.open.retain(|&o| o != m);
                self.tally.completed += 1;
            }
            s.flush(m, now, &mut self.client.out);
        }
        if self.stream == Some(true) {
            for &m in &self.open {
                fill(s, m, &self.pool, &self.chunk);
                s.flush(m, now, &mut self.client.out);
            }
        }
    }

    fn take_port(&mut self) -> u16 {
        self.next_port = next(self.next_port);
        self.next_port
    }

    /// Keeps `parallel` connections in flight from now on (0: opens no more).
    pub fn set_parallel(&mut self, parallel: usize) {
        self.parallel = parallel;
    }

    /// Client connections in flight.
    pub fn in_flight(&self) -> usize {
        self.open.len()
    }

    /// What the client and server counted so far.
    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// TSC ticks spent inside the gateway's polls so far.
    pub fn gateway_ticks(&self) -> u64 {
        self.gw_ticks
    }

    /// A gateway counter (as last published by its worker).
    pub fn counter(&self, c: Counter) -> u64 {
        self.counters.get(c)
    }
}

/// Queues copies of `chunk` on `m` while its send buffer takes them.
fn fill(s: &mut Stack<HeapShared>, m: MskId, pool: &HeapPool, chunk: &[u8]) {
    while s.send_space(m) >= chunk.len() {
        let Some(b) = pool.alloc_from(chunk) else {
            return;
        };
        if s.send(m, Payload::new(b.into_shared())).is_err() {
            return;
        }
    }
}

/// The next local port, 1024–65535 round.
fn next(p: u16) -> u16 {
    if p == u16::MAX {
        1024
    } else {
        p + 1
    }
}

/// The gateway: a relay listener on `GW[0]:5201` to the server, `GW[1]` announced.
fn gateway_setup() -> TcpSetup {
    TcpSetup {
        table: TableConfig::default(),
        secrets: Secrets::new([7; 32]),
        mptcp: MpConfig::default(),
        keys: KeySource::from_seed([7; 32]),
        worker: (0, 1),
        signal: vec![GW[1].into()],
        diag: Vec::new(),
        relay: RelayConfig::default(),
        listeners: vec![Listener {
            accept: Accept::Addr(SocketAddr::from((GW[0], PORT))),
            backends: vec![SocketAddr::from((SERVER, PORT))],
            mptcp: false,
        }],
        path_manager: PathManager::new(PathManagerKind::Default, Vec::new()),
    }
}
