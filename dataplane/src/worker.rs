//! The per-core poll loop.
//!
//! A worker owns one RX/TX queue pair of every port and everything that arrives on
//! them. One iteration of [`Worker::poll`]: for each port, RX burst → classify each frame
//! → dispatch (today: the gateway's own L2/L3 presence in [`crate::host`]) → TX burst of
//! the replies → bulk free of what was dropped. Between iterations the worker polls its
//! command channel; later layers add their timers to the same loop.

use crate::host::{HostPort, Verdict};
use crate::neigh::{NeighborConfig, NeighborTable};
use crate::port::{Burst, PacketBuf, Port};
use crate::stats::{Counter, CounterWriter};
use crossbeam::channel::{Receiver, TryRecvError};
use std::time::Instant;

/// Iterations between two looks at the command channel.
const CONTROL_EVERY: u32 = 256;

/// Commands from the control thread, polled between bursts.
#[derive(Debug)]
pub enum Command {
    /// Leave the poll loop.
    Stop,
}

/// One port as a worker sees it: its queue pair, its addresses, its pending TX burst.
pub struct WorkerPort<P: Port> {
    port: P,
    host: HostPort,
    tx: Burst<P::Buf>,
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
}

/// A poll-mode worker: owns its ports' queues and its counters.
pub struct Worker<P: Port> {
    ports: Vec<WorkerPort<P>>,
    neighbors: NeighborTable,
    counters: CounterWriter,
    commands: Receiver<Command>,
}

impl<P: Port> Worker<P> {
    /// A worker over `ports`, counting into `counters`, commanded through `commands`.
    pub fn new(
        ports: Vec<WorkerPort<P>>,
        counters: CounterWriter,
        commands: Receiver<Command>,
    ) -> Self {
        Self {
            ports,
            neighbors: NeighborTable::new(NeighborConfig::default()),
            counters,
            commands,
        }
    }

    /// The neighbours this worker has learnt.
    pub fn neighbors(&self) -> &NeighborTable {
        &self.neighbors
    }

    /// The worker's ports.
    pub fn ports(&self) -> &[WorkerPort<P>] {
        &self.ports
    }

    /// Polls until told to stop (or the control side hangs up). Time is the monotonic
    /// clock in ns since the worker started.
    pub fn run(&mut self) {
        let epoch = Instant::now();
        loop {
            for _ in 0..CONTROL_EVERY {
                let now = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
                self.poll(now);
            }
            match self.commands.try_recv() {
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => {}
            }
        }
    }

    /// One pass over every port at `now` (ns); returns the number of packets received.
    pub fn poll(&mut self, now: u64) -> usize {
        let mut received = 0;
        for (index, wp) in self.ports.iter_mut().enumerate() {
            // At most u16::MAX ports: DPDK port ids are u16.
            let index = index as u16;
            received += poll_port(wp, index, &mut self.neighbors, &mut self.counters, now);
        }
        self.counters.inc(Counter::Polls);
        if received > 0 {
            self.counters.inc(Counter::BusyPolls);
        }
        received
    }
}

/// RX → dispatch → TX for one port, the `index`-th of the worker.
fn poll_port<P: Port>(
    wp: &mut WorkerPort<P>,
    index: u16,
    neighbors: &mut NeighborTable,
    counters: &mut CounterWriter,
    now: u64,
) -> usize {
    let n = wp.port.rx_burst(&mut wp.rx);
    if n == 0 {
        return 0;
    }
    counters.add(Counter::RxPackets, n as u64);
    for mut buf in wp.rx.drain() {
        counters.add(Counter::RxBytes, buf.len() as u64);
        let verdict = wp.host.handle(buf.data_mut(), index, neighbors, now);
        match verdict {
            Verdict::Reply { len, counter } => {
                counters.inc(counter);
                let cur = buf.len();
                let fits = if len <= cur {
                    buf.trim_back(cur - len)
                } else {
                    buf.append(len - cur).is_some()
                };
                if fits {
                    counters.add(Counter::TxBytes, len as u64);
                    // Cannot fail: `tx` is flushed below before it can hold more than
                    // one RX burst.
                    if let Err(b) = wp.tx.push(buf) {
                        let _ = wp.dropped.push(b);
                    }
                } else {
                    counters.inc(Counter::DropMalformed);
                    let _ = wp.dropped.push(buf);
                }
            }
            Verdict::Drop(reason) => {
                counters.inc(reason);
                let _ = wp.dropped.push(buf);
            }
        }
    }
    if !wp.tx.is_empty() {
        let sent = wp.port.tx_burst(&mut wp.tx);
        counters.add(Counter::TxPackets, sent as u64);
        if !wp.tx.is_empty() {
            counters.add(Counter::TxDropFull, wp.tx.len() as u64);
            P::Buf::free_burst(&mut wp.tx);
        }
    }
    P::Buf::free_burst(&mut wp.dropped);
    n
}
