#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The diagnostic service end to end: a client table against a server table running
//! discard, echo and source, over a lossy in-memory link.

use dataplane::diag::{DiagMode, DiagService};
use dataplane::port::heap::{HeapPool, HeapShared};
use dataplane::port::mem::{link, Faults, LinkConfig, MemPort, SimClock};
use dataplane::port::{Burst, PacketBuf, Port};
use dataplane::tcp::emit::{emit_headers, ChecksumMode, L2};
use dataplane::tcp::ingress::segment_from_frame;
use dataplane::tcp::{
    Events, FourTuple, Instant, NoHook, Payload, Secrets, SegmentOut, Table, TableConfig,
};
use dataplane::wire::MacAddr;
use std::time::Duration;

type S = HeapShared;

struct Node {
    port: MemPort,
    table: Table<S, NoHook>,
    l2: L2,
    out: Vec<(FourTuple, SegmentOut<S>)>,
}

impl Node {
    fn rx(&mut self, now: Instant) {
        let mut rx = Burst::new();
        while self.port.rx_burst(&mut rx) > 0 {
            for buf in rx.drain() {
                if let Ok((tuple, seg)) = segment_from_frame(buf, true) {
                    self.table.on_segment(tuple, seg, now, &mut self.out);
                }
            }
        }
        self.table.on_timers(now, &mut self.out);
    }

    fn tx(&mut self, pool: &HeapPool) {
        let mut tx = Burst::new();
        for (tuple, seg) in self.out.drain(..) {
            let mut frame = [0u8; 128].to_vec();
            let hl = emit_headers(&mut frame, &self.l2, &tuple, &seg, ChecksumMode::Full).unwrap();
            frame.truncate(hl);
            if let Some(p) = &seg.payload {
                frame.extend_from_slice(p.bytes());
            }
            if tx.is_full() {
                self.port.tx_burst(&mut tx);
            }
            tx.push(pool.alloc_from(&frame).unwrap()).ok().unwrap();
        }
        self.port.tx_burst(&mut tx);
    }
}

/// Connects to `mode`'s port, sends `upload` bytes, reads until `want` bytes came back
/// (or the peer closed), then closes; returns what was read.
fn session(mode: DiagMode, upload: usize, want: usize, faults: Faults) -> (Vec<u8>, Vec<u8>) {
    let pool = HeapPool::new(16_384);
    let clock = SimClock::new();
    let (pc, ps) = link(
        LinkConfig {
            a_to_b: faults.clone(),
            b_to_a: faults,
            seed: 5,
            capacity: 4096,
        },
        &pool,
        &clock,
    );
    let mac_c = MacAddr([2, 0, 0, 0, 0, 1]);
    let mac_s = MacAddr([2, 0, 0, 0, 0, 2]);
    let now = Instant::default();
    let mut client = Node {
        port: pc,
        table: Table::new(TableConfig::default(), Secrets::new([1; 32]), now),
        l2: L2 {
            src: mac_c,
            dst: mac_s,
            vlan_tci: None,
        },
        out: Vec::new(),
    };
    let mut server = Node {
        port: ps,
        table: Table::new(TableConfig::default(), Secrets::new([2; 32]), now),
        l2: L2 {
            src: mac_s,
            dst: mac_c,
            vlan_tci: None,
        },
        out: Vec::new(),
    };
    let pattern = pool.alloc_from(&[b'x'; 1400]).unwrap().into_shared();
    let mut diag = DiagService::new(vec![Payload::new(pattern)]);
    let server_addr = "192.0.2.1:9".parse().unwrap();
    diag.add(&mut server.table, server_addr, mode);
    let tuple = FourTuple {
        local: "192.0.2.2:50000".parse().unwrap(),
        remote: server_addr,
    };
    let id = client
        .table
        .connect(tuple, NoHook, now, &mut client.out)
        .unwrap();
    let data: Vec<u8> = (0..upload).map(|i| (i * 7 % 251) as u8).collect();
    let (mut sent, mut got, mut closed) = (0, Vec::new(), false);
    for _ in 0..2_000_000 {
        let now = Instant::from_nanos(clock.now());
        client.rx(now);
        server.rx(now);
        diag.poll(&mut server.table, now, &mut server.out);
        while client.table.next_ready().is_some() {}
        if let Some(c) = client.table.get_mut(id) {
            let ev = c.take_events();
            while let Some(p) = c.recv() {
                got.extend_from_slice(p.bytes());
            }
            while sent < upload && c.send_space() > 0 && c.state().sends_data() {
                let n = (upload - sent).min(1400).min(c.send_space());
                let b = pool
                    .alloc_from(&data[sent..sent + n])
                    .unwrap()
                    .into_shared();
                c.send(Payload::new(b)).unwrap();
                sent += n;
            }
            if !closed && sent == upload && (got.len() >= want || ev.contains(Events::PEER_FIN)) {
                c.close();
                closed = true;
            }
            client.table.flush(id, now, &mut client.out);
        }
        client.tx(&pool);
        server.tx(&pool);
        if client.table.is_empty() && server.table.is_empty() {
            break;
        }
        clock.advance(Duration::from_micros(500).as_nanos() as u64);
    }
    assert!(
        client.table.is_empty() && server.table.is_empty(),
        "not closed"
    );
    drop(diag);
    drop((client, server));
    assert_eq!(pool.in_use(), 0);
    (data, got)
}

fn lossy() -> Faults {
    Faults {
        drop: 0.02,
        reorder: 0.02,
        reorder_delay_ns: 2_000_000,
        delay_ns: 2_000_000,
        ..Faults::default()
    }
}

#[test]
fn echo_returns_every_byte() {
    let (data, got) = session(DiagMode::Echo, 300_000, 300_000, lossy());
    assert!(got == data);
}

#[test]
fn discard_reads_and_closes() {
    let (_, got) = session(DiagMode::Discard, 200_000, 0, lossy());
    assert!(got.is_empty());
}

#[test]
fn source_streams_the_pattern() {
    let (_, got) = session(DiagMode::Source, 0, 500_000, lossy());
    assert!(got.len() >= 500_000);
    assert!(got.iter().all(|&b| b == b'x'));
}
