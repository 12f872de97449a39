//! Hand-off between workers: segments that reached a worker other than their
//! connection's owner (already parsed and checksum-verified, payload by reference),
//! and neighbours one worker learnt that the others need.
//!
//! Each worker has one bounded lock-free inbox (a crossbeam `ArrayQueue`, written by
//! every other worker, read by its owner between bursts). No locks, no allocation per
//! message; a full inbox drops the segment and counts it (TCP retransmits it).
//!
//! Who owns a TCP segment ([`Steering::owner`]), without shared state:
//! - a connection this worker already has, or a SYN to a listener: this worker (the
//!   port's RSS or `net_af_packet`'s fanout hash keeps a 4-tuple on one queue);
//! - an MP_JOIN SYN: the worker its token names ([`crate::mptcp::token::owner_of`]);
//!   the rest of that subflow follows through a bounded redirect table;
//! - a segment to a local port of a connection the gateway opened: the worker the
//!   port names (relay ports are handed out ≡ worker modulo workers) — only on the
//!   gateway's own addresses: a connection a transparent listener accepted has the
//!   original destination's address and port, which name nothing;
//! - any other segment this worker has no connection for, SYNs included: on a port
//!   with RSS, this worker (the NIC's Toeplitz hash and table put every segment of a
//!   4-tuple on one queue, so the queue is the owner); elsewhere the next worker, and
//!   so on around the ring until one has it (the last one answers as TCP does: a SYN
//!   to a listener opens the connection there). A queue mapping without RSS is not
//!   always flow-stable — `net_af_packet`'s fanout rolls over to another queue when
//!   one is full — and then this finds the owner of an accepted connection, and a
//!   retransmitted SYN finds the connection its first copy opened.
//!
//! On ports with RSS the local ports the gateway opens from are also chosen so the
//! replies' hash lands on the opener's queue ([`crate::relay::Relay::local_port`]):
//! those replies need no hand-off at all.

use crate::mptcp::token::owner_of;
use crate::tcp::{FourTuple, SegmentIn};
use crate::transparent::Addressed;
use crate::wire::mptcp::{MpJoin, MptcpOption};
use crate::wire::tcp::{TcpFlags, TcpOption, TcpOptions};
use crate::wire::MacAddr;
use crossbeam::queue::ArrayQueue;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// Messages one inbox holds at most.
pub const INBOX_CAPACITY: usize = 4096;

/// A message for another worker; `S` is the shared-buffer type of payloads.
pub enum Message<S> {
    /// A received segment for the receiver, with the workers it already visited
    /// looking for its connection's owner (0 when the sender knew the owner), to whom
    /// it is addressed (decided where it arrived: transparent listeners match by
    /// ingress port) and the index of the port it came in by.
    Segment {
        /// The segment's connection, our side local.
        tuple: FourTuple,
        /// The segment, parsed and verified.
        seg: SegmentIn<S>,
        /// Workers visited looking for the owner.
        hops: u16,
        /// To whom it is addressed.
        to: Addressed,
        /// The port it came in by (index).
        port: u16,
    },
    /// A neighbour learnt on port `port` (index).
    Neighbor(u16, IpAddr, MacAddr),
}

/// One worker's ends of the hand-off: its own inbox and the others', and every
/// worker's memory-pressure level.
pub struct Handoff<S> {
    me: u16,
    inboxes: Arc<[ArrayQueue<Message<S>>]>,
    pressure: Arc<[AtomicU8]>,
}

/// The hand-off ends of `workers` workers, in worker order.
pub fn handoffs<S>(workers: u16) -> Vec<Handoff<S>> {
    let inboxes: Arc<[ArrayQueue<Message<S>>]> = (0..workers.max(1))
        .map(|_| ArrayQueue::new(INBOX_CAPACITY))
        .collect();
    let pressure: Arc<[AtomicU8]> = (0..workers.max(1)).map(|_| AtomicU8::new(0)).collect();
    (0..workers.max(1))
        .map(|me| Handoff {
            me,
            inboxes: inboxes.clone(),
            pressure: pressure.clone(),
        })
        .collect()
}

impl<S> Handoff<S> {
    /// This worker's index.
    pub fn me(&self) -> u16 {
        self.me
    }

    /// Number of workers.
    pub fn workers(&self) -> u16 {
        self.inboxes.len() as u16
    }

    /// Puts `msg` into worker `to`'s inbox; false (and `msg` dropped, its buffers
    /// freed) when that inbox is full or there is no such worker.
    pub fn send(&self, to: u16, msg: Message<S>) -> bool {
        self.inboxes
            .get(usize::from(to))
            .is_some_and(|q| q.push(msg).is_ok())
    }

    /// The next message for this worker.
    pub fn recv(&self) -> Option<Message<S>> {
        self.inboxes.get(usize::from(self.me))?.pop()
    }

    /// Messages waiting in this worker's inbox.
    pub fn pending(&self) -> usize {
        self.inboxes
            .get(usize::from(self.me))
            .map_or(0, ArrayQueue::len)
    }

    /// Records this worker's pool pressure level (0 none, higher is worse).
    pub fn publish_pressure(&self, level: u8) {
        if let Some(p) = self.pressure.get(usize::from(self.me)) {
            p.store(level, Ordering::Relaxed);
        }
    }

    /// The worst pressure level any worker published.
    pub fn worst_pressure(&self) -> u8 {
        self.pressure
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }
}

/// Redirected subflows kept at most per worker.
const MAX_REDIRECTS: usize = 65_536;
/// A redirect unused this long is forgotten (ns).
const REDIRECT_IDLE_NS: u64 = 120_000_000_000;

/// Decides which worker owns a received TCP segment.
pub struct Steering {
    me: u16,
    workers: u16,
    /// Local ports of connections the gateway opens: `[first, first + count)`.
    ports: (u16, u16),
    /// Connections whose SYN (MP_JOIN's by token, others round the ring) went to
    /// another worker: tuple → (owner, last use).
    redirects: HashMap<FourTuple, (u16, u64)>,
    /// Redirects not recorded because the table was full.
    pub redirects_full: u64,
}

impl Steering {
    /// Steering for worker `me` of `workers`, with the relay's local port range.
    pub fn new(me: u16, workers: u16, ports: (u16, u16)) -> Self {
        Steering {
            me,
            workers: workers.max(1),
            ports,
            redirects: HashMap::new(),
            redirects_full: 0,
        }
    }

    /// True with more than one worker (otherwise every segment is this worker's).
    pub fn active(&self) -> bool {
        self.workers > 1
    }

    /// The worker to hand the segment of `tuple`, a connection this worker does not
    /// have, to and the hop count it travels with; `None` for this worker. `flags`
    /// and `options` are the segment's; `foreign` when it is addressed to a foreign
    /// destination (transparent mode); `hops` is how many workers it already visited
    /// looking for an owner; `rss` when the port's RSS put it on this worker's queue
    /// (not handed over): then a segment that names no owner is this worker's. `now`
    /// in ns.
    #[allow(clippy::too_many_arguments)]
    pub fn owner(
        &mut self,
        tuple: &FourTuple,
        flags: TcpFlags,
        options: &[u8],
        foreign: bool,
        hops: u16,
        rss: bool,
        now: u64,
    ) -> Option<(u16, u16)> {
        if !self.active() {
            return None;
        }
        match self.owner_of_unknown(tuple, flags, options, foreign, now) {
            Some(w) if w == self.me => None,
            Some(w) => Some((w, 0)),
            // RSS keeps a 4-tuple on one queue: this one.
            None if rss => None,
            // Look further, once around the ring at most; the last worker takes it.
            // SYNs too: a retransmitted SYN that reached another queue must find the
            // connection its first copy opened, not open a second one.
            None if hops + 1 < self.workers => {
                if hops == 0 && flags.contains(TcpFlags::SYN) && !flags.contains(TcpFlags::ACK) {
                    // The worker at the ring's end will open the connection: the
                    // segments that follow (the third ACK may overtake the SYN, which
                    // waits in that worker's inbox) go straight there.
                    let taker = (self.me + self.workers - 1) % self.workers;
                    self.redirect(tuple, taker, now);
                }
                Some(((self.me + 1) % self.workers, hops + 1))
            }
            None => None,
        }
    }

    /// Records that the segments of `tuple` belong to worker `owner`.
    fn redirect(&mut self, tuple: &FourTuple, owner: u16, now: u64) {
        if self.redirects.len() < MAX_REDIRECTS {
            self.redirects.insert(*tuple, (owner, now));
        } else {
            self.redirects_full += 1;
        }
    }

    /// The owner a segment names (its MP_JOIN token, its redirect, its local port
    /// unless `foreign`), for a connection this worker does not have.
    fn owner_of_unknown(
        &mut self,
        tuple: &FourTuple,
        flags: TcpFlags,
        options: &[u8],
        foreign: bool,
        now: u64,
    ) -> Option<u16> {
        if let Some((owner, last)) = self.redirects.get_mut(tuple) {
            *last = now;
            return Some(*owner);
        }
        if flags.contains(TcpFlags::SYN) && !flags.contains(TcpFlags::ACK) {
            let token = TcpOptions::new(options).find_map(|o| match o {
                Ok(TcpOption::Mptcp(b)) => match MptcpOption::parse(b) {
                    Ok(MptcpOption::MpJoin(MpJoin::Syn { token, .. })) => Some(token),
                    _ => None,
                },
                _ => None,
            })?;
            let owner = owner_of(token, self.workers);
            if owner != self.me {
                self.redirect(tuple, owner, now);
            }
            return Some(owner);
        }
        let (first, count) = self.ports;
        let port = tuple.local.port();
        (!foreign && port >= first && u32::from(port - first) < u32::from(count))
            .then(|| (port - first) % self.workers)
    }

    /// Forgets redirects unused for a while; call now and then.
    pub fn expire(&mut self, now: u64) {
        self.redirects
            .retain(|_, &mut (_, last)| now.saturating_sub(last) < REDIRECT_IDLE_NS);
    }

    /// Redirects held.
    pub fn redirects(&self) -> usize {
        self.redirects.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tcp::OptionsBuf;
    use std::net::SocketAddr;

    fn tuple(local_port: u16) -> FourTuple {
        FourTuple {
            local: SocketAddr::from(([192, 0, 2, 1], local_port)),
            remote: SocketAddr::from(([192, 0, 2, 2], 40_000)),
        }
    }

    fn join_syn(token: u32) -> OptionsBuf {
        let mut o = OptionsBuf::new();
        let join = MptcpOption::MpJoin(MpJoin::Syn {
            backup: false,
            addr_id: 1,
            token,
            nonce: 7,
        });
        assert!(o.push_mptcp(&join).is_ok());
        o
    }

    #[test]
    fn a_join_goes_to_its_tokens_owner_and_the_subflow_follows() {
        let mut s = Steering::new(0, 2, (32_768, 28_232));
        let token = (0..u32::MAX)
            .step_by(7919)
            .find(|&t| owner_of(t, 2) == 1)
            .unwrap_or(u32::MAX);
        let syn = join_syn(token);
        let (t, opts) = (tuple(80), syn.as_bytes());
        assert_eq!(
            s.owner(&t, TcpFlags::SYN, opts, false, 0, false, 1),
            Some((1, 0))
        );
        assert_eq!(
            s.owner(&t, TcpFlags::ACK, &[], false, 0, false, 2),
            Some((1, 0))
        );
        assert_eq!(s.redirects(), 1);
        s.expire(2 + REDIRECT_IDLE_NS);
        assert_eq!(s.redirects(), 0);
        // A join to a foreign destination (a transparent connection's) goes by its
        // token too.
        let t = FourTuple {
            local: SocketAddr::from(([203, 0, 113, 9], 32_770)),
            ..t
        };
        assert_eq!(
            s.owner(&t, TcpFlags::SYN, opts, true, 0, false, 3),
            Some((1, 0))
        );
    }

    #[test]
    fn opened_connections_are_owned_by_their_ports_worker() {
        let mut s = Steering::new(0, 2, (32_768, 28_232));
        let ack = TcpFlags::ACK;
        assert_eq!(
            s.owner(&tuple(32_769), ack, &[], false, 0, false, 0),
            Some((1, 0))
        );
        assert_eq!(s.owner(&tuple(32_770), ack, &[], false, 0, false, 0), None);
        // A foreign destination's port names no worker: the segment looks around the
        // ring (a transparent connection to port 32769 is wherever its SYN opened it).
        assert_eq!(
            s.owner(&tuple(32_769), ack, &[], true, 0, false, 0),
            Some((1, 1))
        );
        // One worker: always here.
        let mut one = Steering::new(0, 1, (32_768, 28_232));
        assert_eq!(
            one.owner(&tuple(32_769), ack, &[], false, 0, false, 0),
            None
        );
    }

    #[test]
    fn unknown_segments_and_syns_go_once_around_the_ring() {
        let mut s = Steering::new(1, 3, (32_768, 28_232));
        let ack = TcpFlags::ACK;
        assert_eq!(
            s.owner(&tuple(80), ack, &[], false, 0, false, 0),
            Some((2, 1))
        );
        assert_eq!(
            s.owner(&tuple(80), ack, &[], false, 1, false, 0),
            Some((2, 2))
        );
        assert_eq!(s.owner(&tuple(80), ack, &[], false, 2, false, 0), None);
        assert_eq!(
            s.owner(&tuple(80), TcpFlags::SYN, &[], false, 0, false, 0),
            Some((2, 1))
        );
        // The SYN will open the connection at the ring's end (worker 0): what
        // follows goes straight there, even before that worker has seen the SYN.
        assert_eq!(
            s.owner(&tuple(80), ack, &[], false, 0, false, 0),
            Some((0, 0))
        );
        assert_eq!(s.redirects(), 1);
        assert_eq!(
            s.owner(&tuple(81), TcpFlags::SYN, &[], false, 2, false, 0),
            None
        );
        assert_eq!(s.redirects(), 1);
    }

    #[test]
    fn on_rss_ports_the_queue_owns_what_names_no_owner() {
        let mut s = Steering::new(1, 3, (32_768, 28_232));
        let ack = TcpFlags::ACK;
        // A SYN to a listener, an unknown segment, a transparent one: here.
        assert_eq!(
            s.owner(&tuple(80), TcpFlags::SYN, &[], false, 0, true, 0),
            None
        );
        assert_eq!(s.owner(&tuple(80), ack, &[], false, 0, true, 0), None);
        assert_eq!(s.owner(&tuple(80), ack, &[], true, 0, true, 0), None);
        assert_eq!(s.redirects(), 0, "no ring walk, no redirect");
        // What names an owner still goes there: a local port of another worker, a
        // join's token.
        assert_eq!(
            s.owner(&tuple(32_770), ack, &[], false, 0, true, 0),
            Some((2, 0))
        );
        let token = (0..u32::MAX)
            .step_by(7919)
            .find(|&t| owner_of(t, 3) == 0)
            .unwrap_or(u32::MAX);
        let syn = join_syn(token);
        let join = s.owner(&tuple(81), TcpFlags::SYN, syn.as_bytes(), false, 0, true, 0);
        assert_eq!(join, Some((0, 0)));
    }

    #[test]
    fn inboxes_are_bounded_and_addressed() {
        let h = handoffs::<()>(2);
        let ip = IpAddr::from([192, 0, 2, 9]);
        let msg = |port| Message::Neighbor(port, ip, MacAddr([2, 0, 0, 0, 0, 1]));
        assert!(h[0].send(1, msg(5)));
        assert!(h[0].recv().is_none());
        assert!(matches!(h[1].recv(), Some(Message::Neighbor(5, ..))));
        assert!(!h[0].send(7, msg(1)));
        for _ in 0..INBOX_CAPACITY {
            assert!(h[1].send(0, msg(0)));
        }
        assert!(!h[1].send(0, msg(0)));
    }
}
