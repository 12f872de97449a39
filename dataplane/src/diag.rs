//! The diagnostic TCP service operators test a path with: `discard`, `echo` and
//! `source`, configured per listening (address, port). A sans-I/O application over
//! any [`Streams`] (TCP or MPTCP connections); every mode is zero-copy: echo re-sends the received payload references,
//! source references a pre-built pattern buffer over and over.

use crate::port::SharedBuf;
use crate::streams::Streams;
use crate::tcp::{Events, Instant, Payload, SegmentSink};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;

/// What a diagnostic port does with a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiagMode {
    /// Reads and drops everything (RFC 863).
    Discard,
    /// Sends back everything it reads (RFC 862).
    Echo,
    /// Streams the pattern until the peer closes (a speed test towards the peer).
    Source,
}

/// Service counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiagStats {
    /// Connections accepted.
    pub connections: u64,
    /// Bytes read and dropped.
    pub discarded: u64,
    /// Bytes echoed.
    pub echoed: u64,
    /// Bytes sourced.
    pub sourced: u64,
    /// Source connections refused (reset) because [`MAX_SOURCES`] were running.
    pub sources_refused: u64,
}

/// Source connections served at once per worker, each with its own pattern buffer.
/// Every chunk a source connection has queued, mapped onto subflows or in flight holds
/// a reference to its pattern buffer, and a DPDK mbuf counts references in 16 bits:
/// one buffer per connection keeps the count below 65535 (a connection holds at most
/// its send budget over the pattern size, times the copies the MPTCP layer keeps: a
/// few thousand references with the defaults).
pub const MAX_SOURCES: usize = 16;

/// The service: modes by listening address and the source pattern. `I` is the
/// connection id of the [`Streams`] it serves.
pub struct DiagService<S, I> {
    /// Mode of each listening address.
    modes: HashMap<SocketAddr, DiagMode>,
    /// Pattern buffers not in use; each source connection streams one.
    patterns: Vec<Payload<S>>,
    /// Source connections being served, with their pattern (at most [`MAX_SOURCES`]).
    sources: HashMap<I, Payload<S>>,
    /// Counters.
    stats: DiagStats,
}

impl<S: SharedBuf, I: Copy + Eq + Hash> DiagService<S, I> {
    /// A service with no port; `patterns` are the buffers `source` mode streams, one per
    /// connection served at once (at most [`MAX_SOURCES`] are used).
    pub fn new(mut patterns: Vec<Payload<S>>) -> Self {
        patterns.retain(|p| !p.is_empty());
        patterns.truncate(MAX_SOURCES);
        DiagService {
            modes: HashMap::new(),
            patterns,
            sources: HashMap::new(),
            stats: DiagStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &DiagStats {
        &self.stats
    }

    /// Serves `mode` on `addr`, listening on it in `streams`.
    pub fn add(&mut self, streams: &mut impl Streams<S, Id = I>, addr: SocketAddr, mode: DiagMode) {
        self.modes.insert(addr, mode);
        streams.listen(addr);
    }

    /// Serves every connection of `streams` with events (when it is the only service).
    pub fn poll(
        &mut self,
        streams: &mut impl Streams<S, Id = I>,
        now: Instant,
        out: &mut impl SegmentSink<S>,
    ) {
        while let Some(id) = streams.next_ready() {
            let events = streams.take_events(id);
            if !self.serve(streams, id, events, now, out) {
                streams.flush(id, now, out);
            }
        }
    }

    /// Handles the `events` of connection `id`; false when it is not a diagnostic
    /// connection (the caller gives it to another service or flushes it).
    pub fn serve(
        &mut self,
        streams: &mut impl Streams<S, Id = I>,
        id: I,
        events: Events,
        now: Instant,
        out: &mut impl SegmentSink<S>,
    ) -> bool {
        let mode = streams
            .local_addr(id)
            .and_then(|a| self.modes.get(&a).copied());
        let Some(mode) = mode else {
            return false;
        };
        if events.contains(Events::CONNECTED) {
            self.stats.connections += 1;
        }
        match mode {
            DiagMode::Discard => {
                while let Some(p) = streams.recv(id) {
                    self.stats.discarded += p.len() as u64;
                }
            }
            DiagMode::Echo => {
                // Read only what can be sent back at once: what stays unread keeps
                // the receive window closed, so backpressure reaches the peer.
                while streams
                    .peek_recv_len(id)
                    .is_some_and(|n| n <= streams.send_space(id))
                {
                    let Some(p) = streams.recv(id) else { break };
                    let n = p.len() as u64;
                    if streams.send(id, p).is_ok() {
                        self.stats.echoed += n;
                    }
                }
            }
            DiagMode::Source => {
                if events.contains(Events::CONNECTED) && !self.sources.contains_key(&id) {
                    let Some(pattern) = self.patterns.pop() else {
                        self.stats.sources_refused += 1;
                        streams.abort(id, now, out);
                        streams.flush(id, now, out);
                        return true;
                    };
                    self.sources.insert(id, pattern);
                }
                while let Some(p) = streams.recv(id) {
                    self.stats.discarded += p.len() as u64;
                }
                if let Some(pattern) = self.sources.get(&id) {
                    while streams.send_space(id) > 0 {
                        let mut chunk = pattern.clone();
                        chunk.truncate(streams.send_space(id));
                        let n = chunk.len() as u64;
                        if streams.send(id, chunk).is_err() {
                            break;
                        }
                        self.stats.sourced += n;
                    }
                }
            }
        }
        if events.contains(Events::CLOSED)
            || events.contains(Events::RESET)
            || events.contains(Events::TIMED_OUT)
        {
            if let Some(p) = self.sources.remove(&id) {
                self.patterns.push(p);
            }
        }
        // The peer closed and everything it sent was handled: close our side too.
        if streams.peer_done(id) {
            streams.close(id);
        }
        streams.flush(id, now, out);
        true
    }
}
