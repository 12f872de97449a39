//! The relayed-connection-rate workload (`mpgw_bench::relay_rig`) does what its
//! benchmark claims: every connection is relayed, joined, answered and closed cleanly;
//! a stream flows both ways, relayed exactly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use dataplane::stats::Counter;
use mpgw_bench::relay_rig::{Rig, Workload};

#[test]
fn every_relayed_connection_joins_two_subflows_and_closes_cleanly() {
    let mut rig = Rig::new(Workload::Connections { parallel: 8 });
    let mut rounds = 0;
    while rig.tally().completed < 300 {
        rig.step();
        rounds += 1;
        assert!(rounds < 200_000, "stuck: {:?}", rig.tally());
    }
    // No new connections; the last ones finish and the gateway publishes its counters.
    rig.set_parallel(0);
    while rig.in_flight() > 0 {
        rig.step();
        rounds += 1;
        assert!(rounds < 200_000, "stuck: {:?}", rig.tally());
    }
    for _ in 0..1000 {
        rig.step();
    }
    let t = rig.tally();
    assert_eq!(t.failed, 0, "{t:?}");
    assert_eq!(rig.counter(Counter::RelayAccepted), t.completed, "{t:?}");
    assert_eq!(rig.counter(Counter::RelayConnected), t.completed, "{t:?}");
    // One byte up per connection, each reached the server.
    assert_eq!(t.server_bytes, t.completed, "{t:?}");
    assert_eq!(rig.counter(Counter::RelayPairs), 0);
    assert_eq!(rig.counter(Counter::RelayResets), 0);
    assert_eq!(rig.counter(Counter::RelayRefused), 0);
    // Two joins on every connection, taken by the gateway.
    assert_eq!(rig.counter(Counter::MptcpJoins), 2 * t.completed, "{t:?}");
    assert_eq!(rig.counter(Counter::MptcpFallbacks), 0);
}

#[test]
fn a_stream_is_relayed_in_either_direction_over_three_subflows() {
    for upload in [true, false] {
        let mut rig = Rig::new(Workload::Stream { upload });
        for _ in 0..1500 {
            rig.step();
        }
        let t = rig.tally();
        assert_eq!(t.failed, 0, "{t:?}");
        let (read, relayed) = if upload {
            (t.server_bytes, rig.counter(Counter::RelayBytesUp))
        } else {
            (t.client_bytes, rig.counter(Counter::RelayBytesDown))
        };
        // 1500 rounds are 30 ms of virtual time: megabytes on an unlimited link.
        assert!(read > 1 << 20, "upload {upload}: {t:?}");
        // What the gateway relayed (published every few hundred polls) arrived.
        assert!(
            relayed <= read && relayed > read / 2,
            "{relayed} relayed, {read} read"
        );
        assert_eq!(rig.counter(Counter::MptcpJoins), 2);
    }
}
