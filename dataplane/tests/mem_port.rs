//! The in-memory port: delivery, each fault mode, determinism, TX backpressure, leaks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use dataplane::port::heap::{HeapBuf, HeapPool, HeapShared};
use dataplane::port::mem::{link, Faults, LinkConfig, MemPort, SimClock};
use dataplane::port::{Burst, PacketBuf, Port};

/// Sends `n` packets whose payload is their index (4 bytes) padded to `size`.
fn send_numbered(port: &mut MemPort, n: u32, size: usize) {
    let mut i = 0;
    while i < n {
        let mut burst = Burst::new();
        while !burst.is_full() && i < n {
            let mut buf = port.alloc().expect("pool");
            let bytes = buf.append(size).expect("room");
            bytes.fill(0xab);
            bytes[..4].copy_from_slice(&i.to_be_bytes());
            burst.push(buf).ok().expect("room in burst");
            i += 1;
        }
        let want = burst.len();
        assert_eq!(port.tx_burst(&mut burst), want);
    }
}

/// Receives everything deliverable now, returning the packets' contents.
fn recv_all(port: &mut MemPort) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    loop {
        let mut burst = Burst::new();
        if port.rx_burst(&mut burst) == 0 {
            return got;
        }
        got.extend(burst.drain().map(|b| b.data().to_vec()));
    }
}

fn index(pkt: &[u8]) -> u32 {
    u32::from_be_bytes(pkt[..4].try_into().unwrap())
}

fn setup(a_to_b: Faults, seed: u64) -> (HeapPool, SimClock, MemPort, MemPort) {
    let pool = HeapPool::new(30_000);
    let clock = SimClock::new();
    let cfg = LinkConfig {
        a_to_b,
        seed,
        capacity: 30_000,
        ..LinkConfig::default()
    };
    let (a, b) = link(cfg, &pool, &clock);
    (pool, clock, a, b)
}

#[test]
fn clean_link_delivers_everything_in_order_and_leaks_nothing() {
    let (pool, _clock, mut a, mut b) = setup(Faults::default(), 1);
    send_numbered(&mut a, 1000, 100);
    let got = recv_all(&mut b);
    assert_eq!(got.len(), 1000);
    assert!(got.iter().enumerate().all(|(i, p)| index(p) == i as u32));
    assert!(got
        .iter()
        .all(|p| p.len() == 100 && p[4..].iter().all(|&x| x == 0xab)));
    assert_eq!(a.tx_stats().sent, 1000);
    assert_eq!(b.rx_stats().delivered, 1000);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn drop_fault_loses_about_the_configured_share() {
    let faults = Faults {
        drop: 0.1,
        ..Faults::default()
    };
    let (pool, _clock, mut a, mut b) = setup(faults, 7);
    send_numbered(&mut a, 10_000, 64);
    let got = recv_all(&mut b);
    let st = a.tx_stats();
    assert_eq!(st.dropped + got.len() as u64, 10_000);
    assert!((800..1200).contains(&st.dropped), "dropped {}", st.dropped);
    // Survivors keep their order.
    assert!(got.windows(2).all(|w| index(&w[0]) < index(&w[1])));
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn the_same_seed_replays_the_same_faults() {
    let faults = Faults {
        drop: 0.2,
        ..Faults::default()
    };
    let run = |seed| {
        let (_pool, _clock, mut a, mut b) = setup(faults.clone(), seed);
        send_numbered(&mut a, 500, 64);
        recv_all(&mut b)
            .iter()
            .map(|p| index(p))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
}

#[test]
fn duplicate_fault_delivers_identical_extra_copies() {
    let faults = Faults {
        duplicate: 0.05,
        ..Faults::default()
    };
    let (pool, _clock, mut a, mut b) = setup(faults, 3);
    send_numbered(&mut a, 2000, 80);
    let got = recv_all(&mut b);
    let st = a.tx_stats();
    assert!(st.duplicated > 50, "duplicated {}", st.duplicated);
    assert_eq!(got.len() as u64, 2000 + st.duplicated);
    let mut ids: Vec<u32> = got.iter().map(|p| index(p)).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2000, "every packet arrives, copies are exact");
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn reorder_fault_lets_later_packets_overtake() {
    let faults = Faults {
        reorder: 0.1,
        reorder_delay_ns: 1_000,
        ..Faults::default()
    };
    let (_pool, clock, mut a, mut b) = setup(faults, 5);
    let mut got = Vec::new();
    for i in 0..1000u32 {
        clock.set(u64::from(i) * 100);
        let mut burst = Burst::new();
        let mut buf = a.alloc().unwrap();
        buf.append(4).unwrap().copy_from_slice(&i.to_be_bytes());
        burst.push(buf).ok().unwrap();
        a.tx_burst(&mut burst);
        got.extend(recv_all(&mut b));
    }
    clock.advance(10_000);
    got.extend(recv_all(&mut b));
    let ids: Vec<u32> = got.iter().map(|p| index(p)).collect();
    let inversions = ids.windows(2).filter(|w| w[0] > w[1]).count();
    assert!(a.tx_stats().reordered > 50);
    assert!(inversions > 50, "inversions {inversions}");
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
}

#[test]
fn corrupt_fault_flips_exactly_one_bit() {
    let faults = Faults {
        corrupt: 0.5,
        ..Faults::default()
    };
    let (_pool, _clock, mut a, mut b) = setup(faults, 11);
    let mut burst = Burst::new();
    for _ in 0..32 {
        let mut buf = a.alloc().unwrap();
        buf.append(200).unwrap().fill(0);
        burst.push(buf).ok().unwrap();
    }
    a.tx_burst(&mut burst);
    let got = recv_all(&mut b);
    let flipped: Vec<u32> = got
        .iter()
        .map(|p| p.iter().map(|x| x.count_ones()).sum())
        .collect();
    assert!(flipped.iter().all(|&bits| bits <= 1));
    let corrupted = flipped.iter().filter(|&&bits| bits == 1).count() as u64;
    assert_eq!(corrupted, a.tx_stats().corrupted);
    assert!(corrupted > 5);
}

#[test]
fn rate_limit_paces_delivery_and_drops_beyond_its_queue() {
    // 8 Mbit/s: a 1000-byte packet takes 1 ms on the wire.
    let faults = Faults {
        rate_bps: Some(8_000_000),
        queue_bytes: 20_000,
        delay_ns: 500_000,
        ..Faults::default()
    };
    let (pool, clock, mut a, mut b) = setup(faults, 1);
    send_numbered(&mut a, 100, 1000);
    let st = a.tx_stats();
    // About 20 packets fit in the queue behind the first.
    assert!((19..=23).contains(&(100 - st.queue_dropped)), "{st:?}");
    assert!(recv_all(&mut b).is_empty(), "nothing before 1 ms + delay");
    clock.set(10_500_000);
    assert_eq!(recv_all(&mut b).len(), 10, "10 packets after 10 ms");
    clock.set(1_000_000_000);
    assert_eq!(recv_all(&mut b).len() as u64, 100 - st.queue_dropped - 10);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn delay_holds_packets_until_their_time() {
    let faults = Faults {
        delay_ns: 5_000,
        ..Faults::default()
    };
    let (_pool, clock, mut a, mut b) = setup(faults, 1);
    send_numbered(&mut a, 3, 64);
    assert_eq!(b.next_arrival(), Some(5_000));
    clock.set(4_999);
    assert!(recv_all(&mut b).is_empty());
    clock.set(5_000);
    assert_eq!(recv_all(&mut b).len(), 3);
}

#[test]
fn full_link_hands_unsent_packets_back_in_order() {
    let pool = HeapPool::new(64);
    let clock = SimClock::new();
    let cfg = LinkConfig {
        capacity: 10,
        ..LinkConfig::default()
    };
    let (mut a, mut b) = link(cfg, &pool, &clock);
    let mut burst = Burst::new();
    for i in 0..16u32 {
        let mut buf = a.alloc().unwrap();
        buf.append(4).unwrap().copy_from_slice(&i.to_be_bytes());
        burst.push(buf).ok().unwrap();
    }
    assert_eq!(a.tx_burst(&mut burst), 10);
    let left: Vec<u32> = burst.as_slice().iter().map(|p| index(p.data())).collect();
    assert_eq!(left, (10..16).collect::<Vec<_>>());
    assert_eq!(recv_all(&mut b).len(), 10);
    assert_eq!(a.tx_burst(&mut burst), 6);
    assert!(burst.is_empty());
    drop(recv_all(&mut b));
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn pool_exhaustion_is_reported_not_fatal() {
    let pool = HeapPool::new(4);
    let clock = SimClock::new();
    let (mut a, _b) = link(LinkConfig::default(), &pool, &clock);
    let held: Vec<_> = (0..4).map(|_| a.alloc().unwrap()).collect();
    assert!(a.alloc().is_none());
    drop(held);
    assert!(a.alloc().is_some());
}

/// A burst of one packet from `a`: "HEAD" followed by 7 bytes ("payload") of a shared
/// buffer, returned too (the caller drops it when it likes).
fn chained_packet(pool: &HeapPool, a: &mut MemPort) -> (HeapShared, Burst<HeapBuf>) {
    let payload = pool.alloc_from(b"..payload..").unwrap().into_shared();
    let mut head = a.alloc().unwrap();
    head.append(4).unwrap().copy_from_slice(b"HEAD");
    head.chain(&payload, 2, 7).unwrap();
    let mut burst = Burst::new();
    burst.push(head).ok().unwrap();
    (payload, burst)
}

#[test]
fn a_chained_packet_arrives_as_one_frame() {
    let (pool, _clock, mut a, mut b) = setup(Faults::default(), 1);
    let (payload, mut burst) = chained_packet(&pool, &mut a);
    assert_eq!(a.tx_burst(&mut burst), 1);
    drop(payload);
    assert_eq!(recv_all(&mut b), vec![b"HEADpayload".to_vec()]);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn a_single_segment_end_loses_a_chained_packet_s_payload_as_af_xdp_does() {
    let (pool, _clock, a, mut b) = setup(Faults::default(), 1);
    assert!(a.tx_chains());
    let mut a = a.single_segment();
    assert!(!a.tx_chains());
    let (payload, mut burst) = chained_packet(&pool, &mut a);
    // A single-segment packet goes as it is.
    burst.push(pool.alloc_from(b"whole").unwrap()).ok().unwrap();
    assert_eq!(a.tx_burst(&mut burst), 2);
    drop(payload);
    // The frame has the packet's length, but only the first segment's bytes.
    assert_eq!(
        recv_all(&mut b),
        vec![b"HEAD\0\0\0\0\0\0\0".to_vec(), b"whole".to_vec()]
    );
    assert_eq!(pool.in_use(), 0);
}
