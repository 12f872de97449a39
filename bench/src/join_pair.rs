//! Two MPTCP stacks in one thread opening one connection after another and joining
//! [`JOINS`] subflows to each: the workload of the MP_JOIN benchmark
//! (`benches/mptcp_join.rs`), shared with its allocation test (`tests/join_alloc.rs`).
//! Segments go from stack to stack directly (no frames, no ports), so what runs is the
//! protocol work of both ends.

use dataplane::mptcp::crypto::KeySource;
use dataplane::mptcp::mib::Mib;
use dataplane::mptcp::msk::MskId;
use dataplane::mptcp::stack::{Config, JoinPath, Stack};
use dataplane::port::SharedBuf;
use dataplane::tcp::{
    Events, FourTuple, Instant, Secrets, SegOptions, SegmentIn, SegmentOut, TableConfig,
};
use std::net::SocketAddr;
use std::time::Duration;

/// Subflows joined per connection (Linux's most).
pub const JOINS: u16 = 8;

/// Handshakes carry no payload: a buffer type that is never used.
#[derive(Clone, Copy)]
pub struct NoBuf;

impl SharedBuf for NoBuf {
    fn data(&self) -> &[u8] {
        &[]
    }

    fn refcount(&self) -> u16 {
        1
    }
}

type Out = Vec<(FourTuple, SegmentOut<NoBuf>)>;

/// What the peer receives for a segment we sent.
fn received(seg: &SegmentOut<NoBuf>) -> SegmentIn<NoBuf> {
    let mut s = SegmentIn::bare(seg.seq, seg.ack, seg.flags, seg.window);
    s.raw_options.extend(seg.options.as_bytes().iter().copied());
    s.options = SegOptions::parse(&s.raw_options);
    s
}

/// The two stacks and the segments between them.
pub struct Pair {
    client: Stack<NoBuf>,
    server: Stack<NoBuf>,
    to_server: Out,
    to_client: Out,
    /// The segments being delivered.
    in_flight: Out,
    now: Instant,
    port: u16,
}

impl Default for Pair {
    fn default() -> Self {
        Self::new()
    }
}

impl Pair {
    /// A client stack and a listening server stack, joins limited to [`JOINS`].
    pub fn new() -> Self {
        let cfg = Config {
            subflows: JOINS as u8,
            half_open_joins: JOINS as u8,
            ..Config::default()
        };
        let stack = |seed: u8| {
            Stack::new(
                TableConfig::default(),
                Secrets::new([seed; 32]),
                cfg.clone(),
                KeySource::from_seed([seed; 32]),
                (0, 1),
                Instant::default(),
            )
        };
        let mut server = stack(2);
        server.listen(server_addr());
        Pair {
            client: stack(1),
            server,
            to_server: Vec::new(),
            to_client: Vec::new(),
            in_flight: Vec::new(),
            now: Instant::from_nanos(1_000_000),
            port: 1024,
        }
    }

    /// Delivers segments both ways until nothing is left. The segment vectors are
    /// reused, as a port reuses its bursts.
    fn exchange(&mut self) {
        let Pair {
            client,
            server,
            to_server,
            to_client,
            in_flight,
            now,
            ..
        } = self;
        while !to_server.is_empty() || !to_client.is_empty() {
            deliver(server, to_server, in_flight, to_client, *now);
            deliver(client, to_client, in_flight, to_server, *now);
        }
    }

    /// Hands every event to a do-nothing application so finished connections are freed.
    fn drain_events(&mut self) {
        for (stack, out) in [
            (&mut self.client, &mut self.to_server),
            (&mut self.server, &mut self.to_client),
        ] {
            while let Some(m) = stack.next_ready() {
                let _: Events = stack.take_events(m);
                stack.flush(m, self.now, out);
            }
        }
    }

    fn next_port(&mut self) -> u16 {
        self.port = if self.port == u16::MAX {
            1024
        } else {
            self.port + 1
        };
        self.port
    }

    /// True when neither stack holds a connection.
    pub fn is_empty(&self) -> bool {
        self.client.is_empty() && self.server.is_empty()
    }

    /// One connection, `JOINS` joins, abort; returns the joins that completed.
    /// `around_joins` is called with `true` just before the first join and `false`
    /// just after the last (the allocation test counts in between). Virtual time
    /// advances 1 ms per round and the timers run, as in a worker (entries of freed
    /// connections leave the timer wheel when their slot comes up).
    pub fn round(&mut self, mut around_joins: impl FnMut(bool)) -> u64 {
        self.now = self.now + Duration::from_millis(1);
        self.client.on_timers(self.now, &mut self.to_server);
        self.server.on_timers(self.now, &mut self.to_client);
        let local = SocketAddr::new([192, 0, 2, 1].into(), self.next_port());
        let connected =
            self.client
                .connect(local, server_addr(), true, self.now, &mut self.to_server);
        let Some(m): Option<MskId> = connected else {
            return 0;
        };
        self.exchange();
        self.drain_events();
        let before = self.server.mib().get(Mib::MPJoinAckRx);
        around_joins(true);
        for _ in 0..JOINS {
            let path = JoinPath {
                local: SocketAddr::new([192, 0, 2, 2].into(), self.next_port()),
                remote: server_addr(),
                local_id: 1,
                backup: false,
            };
            self.client.join(m, &path, self.now, &mut self.to_server);
            self.exchange();
        }
        around_joins(false);
        let joined = self.server.mib().get(Mib::MPJoinAckRx) - before;
        self.client.abort(m, self.now, &mut self.to_server);
        self.exchange();
        self.drain_events();
        self.exchange();
        joined
    }
}

/// Hands `stack` the segments of `incoming` (through `in_flight`); its answers go to
/// `outgoing`.
fn deliver(
    stack: &mut Stack<NoBuf>,
    incoming: &mut Out,
    in_flight: &mut Out,
    outgoing: &mut Out,
    now: Instant,
) {
    std::mem::swap(incoming, in_flight);
    for (t, seg) in in_flight.drain(..) {
        let tuple = FourTuple {
            local: t.remote,
            remote: t.local,
        };
        stack.on_segment(tuple, received(&seg), now, outgoing);
    }
}

fn server_addr() -> SocketAddr {
    SocketAddr::new([198, 51, 100, 1].into(), 80)
}
