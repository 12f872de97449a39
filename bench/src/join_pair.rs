//! Two MPTCP stacks in one thread opening one connection after another and joining
//! [`JOINS`] subflows to each: the workload of the MP_JOIN benchmark
//! (`benches/mptcp_join.rs`), shared with its allocation test (`tests/join_alloc.rs`).
//! Segments go from stack to stack directly (no frames, no ports), so what runs is the
//! protocol work of both ends. With metering on ([`Pair::set_metered`]) the pair also
//! counts the CPU time spent inside each stack's calls ([`Cost`]): the passive side's
//! share is what a concentrator's core does per join.

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

/// A cycle counter: the TSC on x86-64 (≈ 14 ns per read here, a third of
/// `Instant::now`); on other targets, nanoseconds since the first call. Only
/// differences and ratios of its readings mean anything.
#[inline]
pub fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: RDTSC exists on every x86-64 CPU, reads a counter and has no other effect.
    unsafe {
        std::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        let start = START.get_or_init(std::time::Instant::now);
        u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The end of the pair a call belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The active side: the stack that connects and joins.
    Client,
    /// The passive side: the listening stack, a concentrator's role.
    Server,
}

/// Ticks ([`ticks`]) spent inside each stack's calls while metering was on, and how
/// many timed regions each side's total is made of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Ticks inside the client stack's calls.
    pub client: u64,
    /// Ticks inside the server stack's calls.
    pub server: u64,
    /// Timed regions around client calls.
    pub client_regions: u64,
    /// Timed regions around server calls.
    pub server_regions: u64,
}

impl Cost {
    /// `side`'s ticks, less `per_region` ticks (the meter's own cost, see
    /// [`region_overhead`]) for each of its regions.
    pub fn net(&self, side: Side, per_region: f64) -> f64 {
        let (t, n) = match side {
            Side::Client => (self.client, self.client_regions),
            Side::Server => (self.server, self.server_regions),
        };
        (t as f64 - n as f64 * per_region).max(0.0)
    }
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        self.client += o.client;
        self.server += o.server;
        self.client_regions += o.client_regions;
        self.server_regions += o.server_regions;
    }
}

/// Runs `f`, charging its ticks to `side` when `cost` is metering (`Some`).
#[inline]
fn timed<R>(cost: &mut Option<Cost>, side: Side, f: impl FnOnce() -> R) -> R {
    let Some(c) = cost else { return f() };
    let t0 = ticks();
    let r = f();
    let dt = ticks().wrapping_sub(t0);
    match side {
        Side::Client => {
            c.client += dt;
            c.client_regions += 1;
        }
        Side::Server => {
            c.server += dt;
            c.server_regions += 1;
        }
    }
    r
}

/// What an empty timed region reads, in ticks (median of 101 batches): the meter's
/// own cost in each region, to subtract from a side's total.
pub fn region_overhead() -> f64 {
    let mut cost = Some(Cost::default());
    let mut batches: Vec<f64> = (0..101)
        .map(|_| {
            let before = cost.unwrap_or_default().client;
            for _ in 0..1000 {
                timed(&mut cost, Side::Client, || std::hint::black_box(()));
            }
            (cost.unwrap_or_default().client - before) as f64 / 1000.0
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[batches.len() / 2]
}

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
type In = Vec<(FourTuple, SegmentIn<NoBuf>)>;

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
    /// The same, as the receiving stack takes them.
    arrived: In,
    now: Instant,
    port: u16,
    /// Time inside each stack's calls, when metering.
    cost: Option<Cost>,
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
            arrived: Vec::new(),
            now: Instant::from_nanos(1_000_000),
            port: 1024,
            cost: None,
        }
    }

    /// Switches metering on (from zero) or off; see [`Pair::take_cost`].
    pub fn set_metered(&mut self, on: bool) {
        self.cost = on.then(Cost::default);
    }

    /// The time spent inside each stack's calls since metering went on or since the
    /// last call (zero when not metering). Everything a stack does is inside such a
    /// call (segments in, timers, the application's event loop, connect, join,
    /// abort); outside are the conversion of one stack's segments into the other's
    /// input and the loop around them (a port's and the test's work).
    pub fn take_cost(&mut self) -> Cost {
        self.cost.as_mut().map(std::mem::take).unwrap_or_default()
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
            arrived,
            now,
            cost,
            ..
        } = self;
        let mut wires = Wires {
            in_flight,
            arrived,
            now: *now,
            cost,
        };
        while !to_server.is_empty() || !to_client.is_empty() {
            wires.deliver(server, Side::Server, to_server, to_client);
            wires.deliver(client, Side::Client, to_client, to_server);
        }
    }

    /// Hands every event to a do-nothing application so finished connections are freed.
    fn drain_events(&mut self) {
        let now = self.now;
        for (stack, out, side) in [
            (&mut self.client, &mut self.to_server, Side::Client),
            (&mut self.server, &mut self.to_client, Side::Server),
        ] {
            timed(&mut self.cost, side, || {
                while let Some(m) = stack.next_ready() {
                    let _: Events = stack.take_events(m);
                    stack.flush(m, now, out);
                }
            });
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
        let now = self.now;
        timed(&mut self.cost, Side::Client, || {
            self.client.on_timers(now, &mut self.to_server);
        });
        timed(&mut self.cost, Side::Server, || {
            self.server.on_timers(now, &mut self.to_client);
        });
        let local = SocketAddr::new([192, 0, 2, 1].into(), self.next_port());
        let connected = timed(&mut self.cost, Side::Client, || {
            self.client
                .connect(local, server_addr(), true, now, &mut self.to_server)
        });
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
            timed(&mut self.cost, Side::Client, || {
                self.client.join(m, &path, now, &mut self.to_server)
            });
            self.exchange();
        }
        around_joins(false);
        let joined = self.server.mib().get(Mib::MPJoinAckRx) - before;
        timed(&mut self.cost, Side::Client, || {
            self.client.abort(m, now, &mut self.to_server);
        });
        self.exchange();
        self.drain_events();
        self.exchange();
        joined
    }
}

/// The pair's delivery state: what `exchange` moves between the stacks.
struct Wires<'a> {
    in_flight: &'a mut Out,
    arrived: &'a mut In,
    now: Instant,
    cost: &'a mut Option<Cost>,
}

impl Wires<'_> {
    /// Hands `stack` the segments of `incoming` (converted first, outside the meter);
    /// its answers go to `outgoing`.
    fn deliver(
        &mut self,
        stack: &mut Stack<NoBuf>,
        side: Side,
        incoming: &mut Out,
        outgoing: &mut Out,
    ) {
        std::mem::swap(incoming, self.in_flight);
        self.arrived
            .extend(self.in_flight.drain(..).map(|(t, seg)| {
                let tuple = FourTuple {
                    local: t.remote,
                    remote: t.local,
                };
                (tuple, received(&seg))
            }));
        if self.arrived.is_empty() {
            return;
        }
        let (arrived, now) = (&mut *self.arrived, self.now);
        timed(self.cost, side, || {
            for (tuple, seg) in arrived.drain(..) {
                stack.on_segment(tuple, seg, now, outgoing);
            }
        });
    }
}

fn server_addr() -> SocketAddr {
    SocketAddr::new([198, 51, 100, 1].into(), 80)
}
