#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! An MP_JOIN costs no heap allocation once a worker's tables are warm: the joins of
//! a connection (SYN, SYN/ACK with the truncated HMAC, third ACK with the full one,
//! fourth ACK), both ends in one thread, under an allocator that counts. Virtual time
//! advances 1 ms per connection and the timers run, as in a worker, so the timer wheel
//! and the half-open list reach their steady size during the warm-up.

use dataplane::mptcp::crypto::KeySource;
use dataplane::mptcp::mib::Mib;
use dataplane::mptcp::stack::{Config, JoinPath, Stack};
use dataplane::port::heap::HeapShared;
use dataplane::tcp::{FourTuple, Instant, Secrets, SegOptions, SegmentIn, SegmentOut, TableConfig};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::Duration;

/// Counts the allocations of the thread that switched counting on.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    if COUNTING.with(Cell::get) {
        ALLOCS.with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

type S = HeapShared;
type Out = Vec<(FourTuple, SegmentOut<S>)>;

const JOINS: u16 = 8;

fn server_addr() -> SocketAddr {
    SocketAddr::new([198, 51, 100, 1].into(), 80)
}

/// What the peer receives for a segment we sent.
fn received(seg: &SegmentOut<S>) -> SegmentIn<S> {
    let mut s = SegmentIn::bare(seg.seq, seg.ack, seg.flags, seg.window);
    s.raw_options.extend(seg.options.as_bytes().iter().copied());
    s.options = SegOptions::parse(&s.raw_options);
    s
}

/// Delivers `incoming` to `stack` (through `scratch`); answers go to `outgoing`.
fn deliver(
    stack: &mut Stack<S>,
    incoming: &mut Out,
    scratch: &mut Out,
    outgoing: &mut Out,
    now: Instant,
) {
    std::mem::swap(incoming, scratch);
    for (t, seg) in scratch.drain(..) {
        let tuple = FourTuple {
            local: t.remote,
            remote: t.local,
        };
        stack.on_segment(tuple, received(&seg), now, outgoing);
    }
}

struct Pair {
    client: Stack<S>,
    server: Stack<S>,
    to_server: Out,
    to_client: Out,
    scratch: Out,
    now: Instant,
}

impl Pair {
    fn exchange(&mut self) {
        while !self.to_server.is_empty() || !self.to_client.is_empty() {
            deliver(
                &mut self.server,
                &mut self.to_server,
                &mut self.scratch,
                &mut self.to_client,
                self.now,
            );
            deliver(
                &mut self.client,
                &mut self.to_client,
                &mut self.scratch,
                &mut self.to_server,
                self.now,
            );
        }
    }

    fn drain_events(&mut self) {
        for (stack, out) in [
            (&mut self.client, &mut self.to_server),
            (&mut self.server, &mut self.to_client),
        ] {
            while let Some(m) = stack.next_ready() {
                let _ = stack.take_events(m);
                stack.flush(m, self.now, out);
            }
        }
    }

    /// One connection with `JOINS` joins, then an abort; returns the allocations made
    /// during the joins and how many joins completed.
    fn round(&mut self, port: u16) -> (u64, u64) {
        self.now = self.now + Duration::from_millis(1);
        let now = self.now;
        self.client.on_timers(now, &mut self.to_server);
        self.server.on_timers(now, &mut self.to_client);
        let local = SocketAddr::new([192, 0, 2, 1].into(), port);
        let m = self
            .client
            .connect(local, server_addr(), true, now, &mut self.to_server)
            .expect("connect");
        self.exchange();
        self.drain_events();
        let before = self.server.mib().get(Mib::MPJoinAckRx);
        ALLOCS.with(|n| n.set(0));
        COUNTING.with(|c| c.set(true));
        for j in 0..JOINS {
            let path = JoinPath {
                local: SocketAddr::new([192, 0, 2, 2].into(), port + 1 + j),
                remote: server_addr(),
                local_id: 1,
                backup: false,
            };
            assert!(
                self.client.join(m, &path, now, &mut self.to_server),
                "join {j}: {:?}",
                self.client.info(m)
            );
            self.exchange();
        }
        COUNTING.with(|c| c.set(false));
        let joined = self.server.mib().get(Mib::MPJoinAckRx) - before;
        self.client.abort(m, now, &mut self.to_server);
        self.exchange();
        self.drain_events();
        self.exchange();
        (ALLOCS.with(Cell::get), joined)
    }
}

#[test]
fn joins_allocate_nothing_once_the_tables_are_warm() {
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
    let mut pair = Pair {
        client: stack(1),
        server: stack(2),
        to_server: Vec::new(),
        to_client: Vec::new(),
        scratch: Vec::new(),
        now: Instant::default(),
    };
    pair.server.listen(server_addr());
    let next = |port: u16| {
        if port > 60_000 {
            1024
        } else {
            port + 2 * JOINS
        }
    };
    let mut port = 1024;
    let (first, _) = pair.round(port);
    assert!(
        first > 0,
        "the counter counts: the first joins grow the tables"
    );
    // A wheel turn (4096 ms) and more: the wheel's slots and the half-open list
    // (compacted at twice `max_half_open`) have grown to their working size.
    for _ in 0..5000 {
        port = next(port);
        pair.round(port);
    }
    for _ in 0..256 {
        port = next(port);
        let (allocs, joined) = pair.round(port);
        assert_eq!(joined, u64::from(JOINS), "every join completed");
        assert_eq!(allocs, 0, "allocations during {JOINS} warm joins");
    }
    assert!(pair.client.is_empty() && pair.server.is_empty());
}
