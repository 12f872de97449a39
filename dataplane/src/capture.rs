//! In-gateway packet capture: the worker side.
//!
//! The control thread arms a [`Tap`] on one port of every worker
//! ([`crate::worker::Command::Capture`]); the worker then copies the frames it receives
//! on that port and hands to it for sending (before the TX burst, so a frame the queue
//! refuses is seen too) into a bounded channel, with `try_send`: a full channel drops
//! the copy and counts it (`capture_dropped`), the worker never waits. A tap stops
//! copying after its frame or byte budget; a disarmed port costs one `Option` check per
//! burst.

use crate::port::PacketBuf;
use crossbeam::channel::{Sender, TrySendError};

/// Which way a captured frame went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Received by the gateway.
    Rx,
    /// Sent by the gateway.
    Tx,
}

/// One captured frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// When the worker saw it: ns since the Unix epoch.
    pub ts_ns: u64,
    /// Received or sent.
    pub dir: Direction,
    /// The frame's length on the wire.
    pub orig_len: u32,
    /// Its first bytes (the snapshot length), or all of it.
    pub data: Vec<u8>,
}

/// A worker's capture on one port: what to copy, how much more, and where to.
#[derive(Debug)]
pub struct Tap {
    snaplen: usize,
    frames_left: u64,
    bytes_left: u64,
    out: Sender<Frame>,
}

impl Tap {
    /// Copies at most `snaplen` bytes of each frame (0: whole frames), at most
    /// `max_frames` frames and `max_bytes` copied bytes in all, into `out`.
    pub fn new(snaplen: usize, max_frames: u64, max_bytes: u64, out: Sender<Frame>) -> Self {
        Self {
            snaplen: if snaplen == 0 { usize::MAX } else { snaplen },
            frames_left: max_frames,
            bytes_left: max_bytes,
            out,
        }
    }

    /// True once the budget is spent or the control thread hung up: nothing more is
    /// copied.
    pub fn done(&self) -> bool {
        self.frames_left == 0 || self.bytes_left == 0
    }

    /// Copies `pkts` going `dir`; returns how many copies were dropped (channel full).
    pub fn record<B: PacketBuf>(&mut self, pkts: &[B], dir: Direction) -> u64 {
        if self.done() || pkts.is_empty() {
            return 0;
        }
        let ts_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let mut dropped = 0;
        for p in pkts {
            if self.done() {
                break;
            }
            let len = p.pkt_len();
            let take = len.min(self.snaplen).min(self.bytes_left as usize);
            let mut data = Vec::with_capacity(take);
            p.copy_to(take, &mut data);
            self.frames_left -= 1;
            self.bytes_left = self.bytes_left.saturating_sub(take as u64);
            let frame = Frame {
                ts_ns,
                dir,
                orig_len: u32::try_from(len).unwrap_or(u32::MAX),
                data,
            };
            match self.out.try_send(frame) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => dropped += 1,
                Err(TrySendError::Disconnected(_)) => self.frames_left = 0,
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::heap::HeapPool;

    #[test]
    fn a_tap_copies_up_to_its_budgets_and_counts_what_does_not_fit() {
        let pool = HeapPool::new(16);
        let mut head = pool.alloc_from(&[1u8; 60]).unwrap();
        let payload = pool.alloc_from(&[2u8; 40]).unwrap().into_shared();
        head.chain(&payload, 0, 40).unwrap();
        let plain = pool.alloc_from(&[3u8; 10]).unwrap();

        let (tx, rx) = crossbeam::channel::bounded(2);
        let mut tap = Tap::new(64, 4, 1 << 20, tx);
        assert_eq!(tap.record(&[head], Direction::Tx), 0);
        let f = rx.try_recv().unwrap();
        assert_eq!((f.dir, f.orig_len, f.data.len()), (Direction::Tx, 100, 64));
        assert_eq!(
            &f.data[58..],
            &[1, 1, 2, 2, 2, 2],
            "snaplen cuts inside the chain"
        );

        let more = [plain, pool.alloc_from(&[4u8; 10]).unwrap()];
        // Three frames left in the budget; the channel has room for two.
        assert_eq!(tap.record(&more, Direction::Rx), 0);
        assert!(!tap.done());
        let last = [pool.alloc_from(&[5u8; 10]).unwrap()];
        assert_eq!(tap.record(&last, Direction::Rx), 1, "channel full: dropped");
        assert!(tap.done());
        assert_eq!(
            tap.record(&last, Direction::Rx),
            0,
            "nothing after the budget"
        );
        assert_eq!(rx.try_iter().count(), 2);
    }

    #[test]
    fn snaplen_zero_takes_whole_frames_within_the_byte_budget() {
        let pool = HeapPool::new(4);
        let (tx, rx) = crossbeam::channel::bounded(8);
        let mut tap = Tap::new(0, 100, 150, tx);
        let pkts = [
            pool.alloc_from(&[7u8; 100]).unwrap(),
            pool.alloc_from(&[8u8; 100]).unwrap(),
        ];
        tap.record(&pkts, Direction::Rx);
        let lens: Vec<usize> = rx.try_iter().map(|f| f.data.len()).collect();
        assert_eq!(lens, vec![100, 50]);
        assert!(tap.done());
    }
}
