//! The worker side of flow-rule steering: a worker that owns a subflow whose segments
//! reach it only by hand-off asks the control thread for an `rte_flow` rule that
//! steers the subflow's 4-tuple to its own RX queue, and for the rule's removal once
//! the subflow is gone.
//!
//! Subflows the peer opens (MP_JOINs) land on whichever queue the port's RSS hashes
//! their 4-tuple to, and their owner is the worker the token names
//! ([`crate::handoff`]): without a rule, every segment of such a subflow may cost a
//! hand-off for the subflow's whole life. Workers never call `rte_flow_create` (on
//! PMDs without thread-safe flow operations ethdev serialises it with a per-port
//! lock): they send a [`FlowRequest`] over a bounded channel (`try_send`; a full
//! channel drops the request and the worker counts it) and the control thread
//! installs and removes the rules, within its per-port bound.
//!
//! A worker asks once per subflow, when a handed-over segment completes an MP_JOIN
//! handshake on a port that takes such rules, and remembers the subflows it asked for
//! (bounded); every second it releases those its table no longer holds (closed and
//! past TIME-WAIT). With one worker, or no port that takes rules, there is no
//! [`FlowSteer`] at all and the packet path does not look.

use crate::tcp::FourTuple;
use crossbeam::channel::{Sender, TrySendError};
use std::collections::HashMap;

/// Requests the workers may queue for the control thread.
pub const REQUEST_QUEUE: usize = 1024;

/// A worker's request to the control thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowRequest {
    /// Steer the segments of `tuple` (our side local) arriving on port `port` (index)
    /// to RX queue `queue`.
    Steer {
        /// The port's index.
        port: u16,
        /// The subflow, our side local.
        tuple: FourTuple,
        /// The owner worker's queue.
        queue: u16,
    },
    /// The subflow of `tuple` is gone: remove its rule on port `port`, if it still
    /// steers to `queue` (the same 4-tuple may meanwhile belong to another worker).
    Release {
        /// The port's index.
        port: u16,
        /// The subflow, our side local.
        tuple: FourTuple,
        /// The queue it was steered to.
        queue: u16,
    },
}

/// What became of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Queued for the control thread.
    Queued,
    /// Not queued: the channel was full (or closed), or this worker already tracks
    /// as many subflows as it may.
    Dropped,
}

/// One worker's flow-rule requests.
#[derive(Debug)]
pub struct FlowSteer {
    queue: u16,
    /// Per port index: it takes steering rules.
    ports: Vec<bool>,
    requests: Sender<FlowRequest>,
    /// Subflows asked for: tuple → port.
    steered: HashMap<FourTuple, u16>,
    /// Subflows tracked at most.
    limit: usize,
}

impl FlowSteer {
    /// The requests of the worker polling RX queue `queue` of every port, one of
    /// `workers`; `ports[i]` tells whether port `i` takes steering rules, `rules` is
    /// the control thread's bound per port. `None` (nothing to ask, no cost) with one
    /// worker, a bound of 0, or no port that takes rules.
    pub fn new(
        queue: u16,
        workers: u16,
        ports: Vec<bool>,
        rules: usize,
        requests: Sender<FlowRequest>,
    ) -> Option<FlowSteer> {
        let steering = ports.iter().filter(|&&p| p).count();
        (workers > 1 && rules > 0 && steering > 0).then(|| FlowSteer {
            queue,
            ports,
            requests,
            steered: HashMap::new(),
            limit: rules.saturating_mul(steering),
        })
    }

    /// True when port `port` takes steering rules.
    #[inline]
    pub fn on_port(&self, port: u16) -> bool {
        self.ports.get(usize::from(port)).copied().unwrap_or(false)
    }

    /// True when a rule was already asked for `tuple`.
    #[inline]
    pub fn asked(&self, tuple: &FourTuple) -> bool {
        self.steered.contains_key(tuple)
    }

    /// Asks for a rule steering `tuple`'s segments on port `port` to this worker's
    /// queue; a request that is not queued is not remembered, so the subflow's next
    /// handed-over segment asks again.
    pub fn steer(&mut self, port: u16, tuple: FourTuple) -> Sent {
        if self.steered.len() >= self.limit {
            return Sent::Dropped;
        }
        let req = FlowRequest::Steer {
            port,
            tuple,
            queue: self.queue,
        };
        match self.requests.try_send(req) {
            Ok(()) => {
                self.steered.insert(tuple, port);
                Sent::Queued
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Sent::Dropped,
        }
    }

    /// Asks for the removal of the rules of the subflows `alive` says are gone;
    /// returns the requests queued and dropped (a dropped one is asked again at the
    /// next sweep).
    pub fn sweep(&mut self, alive: impl Fn(&FourTuple) -> bool) -> (u64, u64) {
        let (mut queued, mut dropped) = (0, 0);
        let (requests, queue) = (&self.requests, self.queue);
        self.steered.retain(|tuple, &mut port| {
            if alive(tuple) {
                return true;
            }
            let req = FlowRequest::Release {
                port,
                tuple: *tuple,
                queue,
            };
            if requests.try_send(req).is_ok() {
                queued += 1;
                false
            } else {
                dropped += 1;
                true
            }
        });
        (queued, dropped)
    }

    /// Subflows asked for and not yet released.
    pub fn len(&self) -> usize {
        self.steered.len()
    }

    /// True when no subflow is tracked.
    pub fn is_empty(&self) -> bool {
        self.steered.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam::channel::bounded;
    use std::net::SocketAddr;

    fn tuple(remote_port: u16) -> FourTuple {
        FourTuple {
            local: SocketAddr::from(([192, 0, 2, 1], 5201)),
            remote: SocketAddr::from(([198, 51, 100, 2], remote_port)),
        }
    }

    /// Takes one slot of `f`'s request channel with a release of port 9.
    fn fill_one(f: &FlowSteer) {
        let release = FlowRequest::Release {
            port: 9,
            tuple: tuple(9),
            queue: 0,
        };
        assert!(f.requests.try_send(release).is_ok());
    }

    #[test]
    fn nothing_to_ask_with_one_worker_no_bound_or_no_steering_port() {
        let (tx, _rx) = bounded(4);
        assert!(FlowSteer::new(0, 1, vec![true], 8, tx.clone()).is_none());
        assert!(FlowSteer::new(0, 2, vec![true], 0, tx.clone()).is_none());
        assert!(FlowSteer::new(0, 2, vec![false, false], 8, tx.clone()).is_none());
        let f = FlowSteer::new(1, 2, vec![false, true], 8, tx);
        assert!(f
            .as_ref()
            .is_some_and(|f| f.on_port(1) && !f.on_port(0) && !f.on_port(7)));
    }

    #[test]
    fn steer_and_release_requests_are_bounded_and_counted() {
        let (tx, rx) = bounded(2);
        let mut f = FlowSteer::new(1, 2, vec![true], 2, tx).unwrap();
        assert_eq!(f.steer(0, tuple(1)), Sent::Queued);
        assert!(f.asked(&tuple(1)));
        assert_eq!(
            rx.try_recv(),
            Ok(FlowRequest::Steer {
                port: 0,
                tuple: tuple(1),
                queue: 1
            })
        );
        assert_eq!(f.steer(0, tuple(2)), Sent::Queued);
        // The worker's own bound (2 rules × 1 port).
        assert_eq!(f.steer(0, tuple(3)), Sent::Dropped);
        assert!(!f.asked(&tuple(3)));
        assert_eq!(f.len(), 2);
        // Both gone, but the channel has room for one: the other waits for the next
        // sweep.
        assert!(rx.try_recv().is_ok());
        fill_one(&f);
        assert_eq!(f.sweep(|_| false), (1, 1));
        assert_eq!(f.len(), 1);
        assert!(matches!(
            rx.try_recv(),
            Ok(FlowRequest::Release { port: 9, .. })
        ));
        assert!(matches!(
            rx.try_recv(),
            Ok(FlowRequest::Release {
                port: 0,
                queue: 1,
                ..
            })
        ));
        assert_eq!(f.sweep(|_| false), (1, 0));
        assert!(f.is_empty());
        assert!(matches!(rx.try_recv(), Ok(FlowRequest::Release { .. })));
        // Alive subflows stay.
        assert_eq!(f.steer(0, tuple(4)), Sent::Queued);
        assert_eq!(f.sweep(|_| true), (0, 0));
        assert_eq!(f.len(), 1);
        // A full channel: not remembered, so asked again later.
        fill_one(&f);
        assert_eq!(f.steer(0, tuple(5)), Sent::Dropped);
        assert!(!f.asked(&tuple(5)));
    }
}
