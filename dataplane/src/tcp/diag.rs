//! The diagnostic TCP service operators test a path with: `discard`, `echo` and
//! `source`, configured per listening (address, port). A sans-I/O application over a
//! [`Table`]; every mode is zero-copy: echo re-sends the received payload references,
//! source references one pre-built pattern buffer over and over.

use super::hook::{Hook, HookSink};
use super::payload::Payload;
use super::state::{Events, State};
use super::table::{ConnId, Table};
use super::time::Instant;
use crate::port::SharedBuf;
use std::collections::{HashMap, HashSet};
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

/// Source connections served at once per worker. Every segment a source connection has
/// queued or in flight holds a reference to the one pattern buffer, and a DPDK mbuf
/// counts references in 16 bits: this bound keeps the count far below 65535 (a
/// connection holds at most its send budget over the pattern size plus its in-flight
/// segments, about 1200 references with the defaults).
pub const MAX_SOURCES: usize = 16;

/// The service: modes by listening address and the source pattern.
pub struct DiagService<S> {
    /// Mode of each listening address.
    modes: HashMap<SocketAddr, DiagMode>,
    /// The pattern `source` streams; each segment references a slice of it.
    pattern: Option<Payload<S>>,
    /// Source connections being served (at most [`MAX_SOURCES`]).
    sources: HashSet<ConnId>,
    /// Counters.
    stats: DiagStats,
}

impl<S: SharedBuf> DiagService<S> {
    /// A service with no port; `pattern` is the buffer `source` mode streams (without
    /// one, source connections only read).
    pub fn new(pattern: Option<Payload<S>>) -> Self {
        DiagService {
            modes: HashMap::new(),
            pattern: pattern.filter(|p| !p.is_empty()),
            sources: HashSet::new(),
            stats: DiagStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &DiagStats {
        &self.stats
    }

    /// Serves `mode` on `addr`, listening on it in `table`.
    pub fn add<H: Hook<S>>(&mut self, table: &mut Table<S, H>, addr: SocketAddr, mode: DiagMode) {
        self.modes.insert(addr, mode);
        table.listen(addr);
    }

    /// Serves every connection of `table` with events.
    pub fn poll<H: Hook<S>>(
        &mut self,
        table: &mut Table<S, H>,
        now: Instant,
        out: &mut impl HookSink<S, H::Ctx>,
    ) {
        while let Some(id) = table.next_ready() {
            let Some(c) = table.get_mut(id) else { continue };
            let events = c.take_events();
            let Some(&mode) = self.modes.get(&c.tuple().local) else {
                table.flush(id, now, out);
                continue;
            };
            if events.contains(Events::CONNECTED) {
                self.stats.connections += 1;
            }
            match mode {
                DiagMode::Discard => {
                    while let Some(p) = c.recv() {
                        self.stats.discarded += p.len() as u64;
                    }
                }
                DiagMode::Echo => {
                    // Read only what can be sent back at once: what stays unread keeps
                    // the receive window closed, so backpressure reaches the peer.
                    while c.peek_recv_len().is_some_and(|n| n <= c.send_space()) {
                        let Some(p) = c.recv() else { break };
                        let n = p.len() as u64;
                        if c.send(p).is_ok() {
                            self.stats.echoed += n;
                        }
                    }
                }
                DiagMode::Source => {
                    if events.contains(Events::CONNECTED) && !self.sources.contains(&id) {
                        if self.sources.len() >= MAX_SOURCES {
                            self.stats.sources_refused += 1;
                            c.abort(out);
                            table.flush(id, now, out);
                            continue;
                        }
                        self.sources.insert(id);
                    }
                    while let Some(p) = c.recv() {
                        self.stats.discarded += p.len() as u64;
                    }
                    if let Some(pattern) = &self.pattern {
                        while c.send_space() > 0 && c.state().sends_data() {
                            let mut chunk = pattern.clone();
                            chunk.truncate(c.send_space());
                            let n = chunk.len() as u64;
                            if c.send(chunk).is_err() {
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
                self.sources.remove(&id);
            }
            // The peer closed and everything it sent was handled: close our side too.
            if c.recv_queued() == 0 && c.state() == State::CloseWait {
                c.close();
            }
            table.flush(id, now, out);
        }
    }
}
