#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! An MP_JOIN costs no heap allocation once a worker's tables are warm: the joins of
//! a connection (SYN, SYN/ACK with the truncated HMAC, third ACK with the full one,
//! fourth ACK), both ends in one thread — the MP_JOIN benchmark's workload
//! ([`mpgw_bench::join_pair`]) — under an allocator that counts. Virtual time advances
//! 1 ms per connection and the timers run, as in a worker, so the timer wheel and the
//! half-open list reach their steady size during the warm-up.

use mpgw_bench::join_pair::{Pair, JOINS};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

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

/// One round of the pair; the allocations made during its joins and the joins that
/// completed.
fn counted_round(pair: &mut Pair) -> (u64, u64) {
    let joined = pair.round(|on| {
        if on {
            ALLOCS.with(|n| n.set(0));
        }
        COUNTING.with(|c| c.set(on));
    });
    (ALLOCS.with(Cell::get), joined)
}

#[test]
fn joins_allocate_nothing_once_the_tables_are_warm() {
    let mut pair = Pair::new();
    let (first, _) = counted_round(&mut pair);
    assert!(
        first > 0,
        "the counter counts: the first joins grow the tables"
    );
    // A wheel turn (4096 ms) and more: the wheel's slots and the half-open list
    // (compacted at twice `max_half_open`) have grown to their working size.
    for _ in 0..5000 {
        pair.round(|_| ());
    }
    for _ in 0..256 {
        let (allocs, joined) = counted_round(&mut pair);
        assert_eq!(joined, u64::from(JOINS), "every join completed");
        assert_eq!(allocs, 0, "allocations during {JOINS} warm joins");
    }
    assert!(pair.is_empty());
}
