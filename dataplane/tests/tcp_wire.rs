#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Header emission and frame ingress round trips, IPv4 and IPv6, full and offloaded
//! checksums.

use dataplane::port::heap::{HeapPool, HeapShared};
use dataplane::port::PacketBuf;
use dataplane::seq::TcpSeq;
use dataplane::tcp::emit::{emit_headers, ChecksumMode, L2};
use dataplane::tcp::ingress::segment_from_frame;
use dataplane::tcp::{FourTuple, Payload, SegmentOut};
use dataplane::wire::tcp::{OptionsBuf, TcpFlags};
use dataplane::wire::{MacAddr, WireError};

fn segment(pool: &HeapPool) -> SegmentOut<HeapShared> {
    let mut options = OptionsBuf::new();
    options.push_mss(1440).unwrap();
    options.push_timestamps(11, 22, true).unwrap();
    options.push_window_scale(7).unwrap();
    SegmentOut {
        seq: TcpSeq::new(0xdead_beef),
        ack: TcpSeq::new(42),
        flags: TcpFlags::SYN | TcpFlags::ACK,
        window: 29200,
        options,
        payload: Some(Payload::new(
            pool.alloc_from(b"odd-length payload!")
                .unwrap()
                .into_shared(),
        )),
        path: Default::default(),
    }
}

fn round_trip(tuple: FourTuple) {
    let pool = HeapPool::new(8);
    let seg = segment(&pool);
    let l2 = L2 {
        src: MacAddr([2, 0, 0, 0, 0, 1]),
        dst: MacAddr([2, 0, 0, 0, 0, 2]),
        vlan_tci: Some(100),
    };
    let mut hdr = [0u8; 128];
    let hl = emit_headers(&mut hdr, &l2, &tuple, &seg, ChecksumMode::Full).unwrap();
    let mut frame = hdr[..hl].to_vec();
    frame.extend_from_slice(seg.payload.as_ref().unwrap().bytes());
    let buf = pool.alloc_from(&frame).unwrap();
    let (t, got) = segment_from_frame(buf, true).unwrap();
    assert_eq!(t.local, tuple.remote);
    assert_eq!(t.remote, tuple.local);
    assert_eq!(
        (got.seq, got.ack, got.flags, got.window),
        (seg.seq, seg.ack, seg.flags, seg.window)
    );
    assert_eq!(got.options.mss, Some(1440));
    assert_eq!(got.options.timestamps, Some((11, 22)));
    assert_eq!(got.options.window_scale, Some(7));
    assert!(got.options.sack_permitted);
    assert_eq!(
        got.payload.as_ref().unwrap().bytes(),
        b"odd-length payload!"
    );
    // A flipped payload bit fails the checksum.
    frame[hl + 3] ^= 4;
    let bad = pool.alloc_from(&frame).unwrap();
    assert_eq!(
        segment_from_frame(bad, true).err(),
        Some(WireError::BadChecksum)
    );
    // Offload mode leaves the pseudo-header sum for the NIC: not a valid checksum yet.
    let hl2 = emit_headers(&mut hdr, &l2, &tuple, &seg, ChecksumMode::Offload).unwrap();
    assert_eq!(hl, hl2);
}

#[test]
fn ipv4_round_trip() {
    round_trip(FourTuple {
        local: "192.0.2.1:443".parse().unwrap(),
        remote: "198.51.100.7:51515".parse().unwrap(),
    });
}

#[test]
fn ipv6_round_trip() {
    round_trip(FourTuple {
        local: "[2001:db8::1]:443".parse().unwrap(),
        remote: "[2001:db8::2]:51515".parse().unwrap(),
    });
}

#[test]
fn mixed_families_and_small_buffers_are_errors() {
    let pool = HeapPool::new(4);
    let seg = segment(&pool);
    let l2 = L2 {
        src: MacAddr::ZERO,
        dst: MacAddr::ZERO,
        vlan_tci: None,
    };
    let mixed = FourTuple {
        local: "192.0.2.1:1".parse().unwrap(),
        remote: "[2001:db8::2]:2".parse().unwrap(),
    };
    let mut hdr = [0u8; 128];
    assert!(emit_headers(&mut hdr, &l2, &mixed, &seg, ChecksumMode::Full).is_err());
    let v4 = FourTuple {
        local: "192.0.2.1:1".parse().unwrap(),
        remote: "192.0.2.2:2".parse().unwrap(),
    };
    assert_eq!(
        emit_headers(&mut hdr[..40], &l2, &v4, &seg, ChecksumMode::Full),
        Err(WireError::NoRoom)
    );
    // Not TCP: refused, never a panic.
    let junk = pool.alloc_from(&[0u8; 60]).unwrap();
    assert!(segment_from_frame(junk, true).is_err());
}
