//! The relay: every connection accepted on a relay listener is paired with one the
//! gateway opens to a backend, and the bytes of each side are sent on the other.
//!
//! A sans-I/O application over [`Streams`], like the diagnostic service. Both legs
//! of a pair live in the same worker's stack (one owner core per connection), so
//! moving data is handing a payload reference from one connection's receive queue to
//! the other's send queue: zero copy, the bytes that leave are the buffers that
//! arrived, with new headers. A payload moves only when the other side can take it
//! whole; what stays unread keeps the receiving side's window closed, so a slow reader
//! slows the writer, and the memory held per pair is bounded by the two connections'
//! buffers.
//!
//! Each listener names its backends and whether the opened leg speaks MPTCP:
//! - concentrator: MPTCP (or plain TCP) accepted, plain TCP opened to a server;
//! - edge: plain TCP accepted, MPTCP opened to a concentrator or MPTCP server (the
//!   worker adds subflows once it is established, see [`Relay::take_connected`]).
//!
//! A listener accepts on an own address and port, or transparently
//! ([`crate::transparent`]): on any foreign destination its rule takes, answering as
//! that destination; the other leg then goes to the original destination (address
//! and port the client asked for), or to the listener's backends when it has some
//! (an edge sending everything to one concentrator).
//!
//! Closing maps across: a FIN (or DATA_FIN) read to the end closes the other side's
//! sending direction after its queued data (half-close both ways); a reset (RST,
//! MP_FASTCLOSE, timeout) on one side resets the other (MP_FASTCLOSE towards an MPTCP
//! peer). A backend that fails before its handshake completes is held down for
//! [`RelayConfig::hold_down`] and the next one is tried; client data waits in the
//! client connection meanwhile, so nothing is lost.

use crate::port::SharedBuf;
use crate::rss::Rss;
use crate::streams::Streams;
use crate::tcp::{Events, Instant, SegmentSink};
use crate::transparent::{Rule, Rules};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// A relay listener: where it accepts, where it relays to, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// Where it accepts.
    pub accept: Accept,
    /// Backends, used in turn (round robin over the healthy ones). Empty for a
    /// transparent listener that relays to each connection's original destination.
    pub backends: Vec<SocketAddr>,
    /// Open the backend leg as MPTCP (the edge role) rather than plain TCP.
    pub mptcp: bool,
}

/// Where a listener accepts connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accept {
    /// On this gateway address and port.
    Addr(SocketAddr),
    /// On any foreign destination the rule takes (transparent mode).
    Transparent(Rule),
}

/// Relay limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayConfig {
    /// Pairs relayed at once; a connection beyond is reset.
    pub max_pairs: usize,
    /// How long a backend that failed a handshake is skipped.
    pub hold_down: Duration,
    /// Local ports for opened connections: `[first, first + count)`, of which this
    /// worker uses those ≡ `worker` modulo `workers` (the port names its owner).
    pub ports: (u16, u16),
    /// This worker and the number of workers.
    pub worker: (u16, u16),
    /// Where in the range the hand-out starts: random per process (RFC 6056), so a
    /// restarted gateway does not reuse the ports its last run left in TIME-WAIT at
    /// the backends.
    pub start: u16,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            max_pairs: 65_536,
            hold_down: Duration::from_secs(10),
            ports: (32_768, 28_232),
            worker: (0, 1),
            start: 0,
        }
    }
}

/// Relay counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Client connections accepted for relaying.
    pub accepted: u64,
    /// Of those, accepted by transparent listeners on a foreign destination.
    pub transparent: u64,
    /// Backend connections established.
    pub connected: u64,
    /// Backend handshakes that failed (each attempt).
    pub connect_failures: u64,
    /// Client connections reset because no backend could be reached, the relay was
    /// full or no local port was free.
    pub refused: u64,
    /// Pairs ended by a reset on either side.
    pub resets: u64,
    /// Of those, pairs whose backend leg went first (its server reset it, or it
    /// timed out); the rest were ended by their client leg.
    pub backend_resets: u64,
    /// Of those, pairs ended by a leg whose retransmissions, keepalives or
    /// `close_timeout` ran out rather than by a reset from its peer.
    pub timeouts: u64,
    /// Bytes relayed from clients to backends.
    pub bytes_up: u64,
    /// Bytes relayed from backends to clients.
    pub bytes_down: u64,
    /// Pairs being relayed now.
    pub pairs: u64,
    /// Local ports taken by the modulo rule alone on a port with RSS: none of the
    /// candidates brought replies to this worker's queue.
    pub rss_misses: u64,
}

/// Candidates tried per worker for a local port whose replies the port's RSS brings
/// to this worker's queue: one in `workers` qualifies, so a miss is ~e^-32.
const RSS_TRIES_PER_WORKER: u16 = 32;

/// Which side of a pair a connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// Accepted on a listener.
    Client,
    /// Opened by the relay to a backend.
    Backend,
}

/// One connection of a pair.
#[derive(Clone, Copy, Debug)]
struct Leg<I> {
    side: Side,
    /// The other connection; `None` while the backend leg is being opened.
    peer: Option<I>,
    /// Index of the listener the pair belongs to.
    listener: usize,
    /// Index of the backend (of the listener) the pair uses or tries.
    backend: usize,
    /// Backends tried so far.
    attempts: u8,
    /// The handshake of this leg completed.
    connected: bool,
    /// This leg's end-of-data was passed on (the peer's sending side closed).
    fin_forwarded: bool,
}

/// Round-robin state and health of a listener's backends.
struct Backends {
    next: usize,
    down_until: Vec<Option<Instant>>,
}

/// The relay service of one worker. `I` is the connection id of its [`Streams`].
pub struct Relay<I> {
    cfg: RelayConfig,
    listeners: Vec<Listener>,
    by_addr: HashMap<SocketAddr, usize>,
    backends: Vec<Backends>,
    legs: HashMap<I, Leg<I>>,
    /// The next local port to try.
    next_port: u16,
    /// Our addresses on ports with RSS, each with its port's key and table.
    rss: Vec<(IpAddr, Rss)>,
    /// MPTCP backend legs that just completed their handshake.
    connected: Vec<I>,
    stats: RelayStats,
}

impl<I: Copy + Eq + Hash> Relay<I> {
    /// A relay with no listener.
    pub fn new(cfg: RelayConfig) -> Self {
        let (worker, workers) = cfg.worker;
        Relay {
            cfg,
            listeners: Vec::new(),
            by_addr: HashMap::new(),
            backends: Vec::new(),
            legs: HashMap::new(),
            next_port: {
                let step = workers.max(1);
                let start = cfg.start % cfg.ports.1.max(1);
                let port = start - start % step + worker % step;
                if port < cfg.ports.1 {
                    port
                } else {
                    worker % step
                }
            },
            rss: Vec::new(),
            connected: Vec::new(),
            stats: RelayStats::default(),
        }
    }

    /// Our addresses on ports with RSS, with each port's key and table: local ports
    /// for connections from them are chosen so replies land on this worker's queue
    /// (worker `i` polls queue `i` of every port).
    pub fn set_rss(&mut self, by_address: Vec<(IpAddr, Rss)>) {
        self.rss = by_address;
    }

    /// Counters.
    pub fn stats(&self) -> RelayStats {
        RelayStats {
            pairs: self
                .legs
                .values()
                .filter(|l| l.side == Side::Client)
                .count() as u64,
            ..self.stats
        }
    }

    /// Relays connections accepted by `l`, listening on its address in `streams`
    /// (a transparent listener's rule is the worker's: [`Relay::transparent_rules`]).
    pub fn add<S>(&mut self, streams: &mut impl Streams<S, Id = I>, l: Listener) {
        if let Accept::Addr(addr) = l.accept {
            streams.listen(addr);
            self.by_addr.insert(addr, self.listeners.len());
        }
        self.backends.push(Backends {
            next: 0,
            down_until: vec![None; l.backends.len()],
        });
        self.listeners.push(l);
    }

    /// The transparent listeners' rules, each tagged with its listener's index (what
    /// [`Streams::transparent`] reports for the connections it accepts).
    pub fn transparent_rules(&self) -> Rules {
        let mut rules = Rules::default();
        for (i, l) in self.listeners.iter().enumerate() {
            if let (Accept::Transparent(rule), Ok(tag)) = (&l.accept, u16::try_from(i)) {
                rules.add(tag, rule.clone());
            }
        }
        rules
    }

    /// Whether the relay serves connection `id`: accepted on a listener (`true`) or
    /// opened to a backend, and the other connection of its pair once it exists.
    pub fn leg(&self, id: I) -> Option<(bool, Option<I>)> {
        self.legs.get(&id).map(|l| (l.side == Side::Client, l.peer))
    }

    /// MPTCP backend connections established since the last call (the worker's path
    /// manager adds their subflows).
    pub fn take_connected(&mut self) -> std::vec::Drain<'_, I> {
        self.connected.drain(..)
    }

    /// Handles the `events` of connection `id`; false when it is not the relay's (the
    /// caller gives it to another service). `source` picks the local address for a
    /// backend address.
    #[allow(clippy::too_many_arguments)]
    pub fn serve<S: SharedBuf>(
        &mut self,
        streams: &mut impl Streams<S, Id = I>,
        id: I,
        events: Events,
        source: impl Fn(IpAddr) -> Option<IpAddr>,
        now: Instant,
        out: &mut impl SegmentSink<S>,
    ) -> bool {
        let leg = match self.legs.get(&id) {
            Some(l) => *l,
            None => {
                let by_addr = streams.local_addr(id).and_then(|a| self.by_addr.get(&a));
                let listener = by_addr.copied().or_else(|| {
                    let tag = usize::from(streams.transparent(id)?);
                    (tag < self.listeners.len()).then_some(tag)
                });
                let Some(listener) = listener else {
                    return false;
                };
                if events.contains(Events::CONNECTED) {
                    self.accept(streams, id, listener, &source, now, out);
                }
                streams.flush(id, now, out);
                return true;
            }
        };
        let gone = events.contains(Events::RESET) || events.contains(Events::TIMED_OUT);
        if leg.side == Side::Backend && !leg.connected {
            if gone {
                self.retry(streams, id, leg, &source, now, out);
                return true;
            }
            if events.contains(Events::CONNECTED) {
                self.stats.connected += 1;
                if let Some(l) = self.legs.get_mut(&id) {
                    l.connected = true;
                }
                if let Some(d) = self.backends[leg.listener].down_until.get_mut(leg.backend) {
                    *d = None;
                }
                if self.listeners[leg.listener].mptcp {
                    self.connected.push(id);
                }
            }
        }
        if gone {
            self.stats.resets += 1;
            self.stats.backend_resets += u64::from(leg.side == Side::Backend);
            self.stats.timeouts += u64::from(events.contains(Events::TIMED_OUT));
            self.legs.remove(&id);
            if let Some(peer) = leg.peer {
                self.legs.remove(&peer);
                streams.abort(peer, now, out);
                streams.flush(peer, now, out);
            }
            streams.flush(id, now, out);
            return true;
        }
        if let Some(peer) = leg.peer {
            let (client, backend) = match leg.side {
                Side::Client => (id, peer),
                Side::Backend => (peer, id),
            };
            if self.legs.get(&backend).is_some_and(|l| l.connected) {
                self.stats.bytes_up += self.pump(streams, client, backend);
                self.stats.bytes_down += self.pump(streams, backend, client);
            }
            streams.flush(peer, now, out);
        }
        if events.contains(Events::CLOSED) {
            self.legs.remove(&id);
        }
        streams.flush(id, now, out);
        true
    }

    /// A client connection completed its handshake on `listener`: pair it with a
    /// backend connection.
    fn accept<S: SharedBuf>(
        &mut self,
        streams: &mut impl Streams<S, Id = I>,
        id: I,
        listener: usize,
        source: &impl Fn(IpAddr) -> Option<IpAddr>,
        now: Instant,
        out: &mut impl SegmentSink<S>,
    ) {
        self.stats.accepted += 1;
        if streams.transparent(id).is_some() {
            self.stats.transparent += 1;
        }
        if self.legs.len() / 2 >= self.cfg.max_pairs {
            self.refuse(streams, id, now, out);
            return;
        }
        let leg = Leg {
            side: Side::Client,
            peer: None,
            listener,
            backend: 0,
            attempts: 0,
            connected: true,
            fin_forwarded: false,
        };
        self.legs.insert(id, leg);
        self.open_backend(streams, id, source, now, out);
    }

    /// Opens the next backend connection for client `client` (its original
    /// destination for a transparent listener without backends), or resets the
    /// client when every backend was tried.
    fn open_backend<S: SharedBuf>(
        &mut self,
        streams: &mut impl Streams<S, Id = I>,
        client: I,
        source: &impl Fn(IpAddr) -> Option<IpAddr>,
        now: Instant,
        out: &mut impl SegmentSink<S>,
    ) {
        let Some(leg) = self.legs.get(&client).copied() else {
            return;
        };
        let l = &self.listeners[leg.listener];
        let original = if l.backends.is_empty() {
            streams.local_addr(client)
        } else {
            None
        };
        if usize::from(leg.attempts) >= l.backends.len().max(1)
            || l.backends.is_empty() && original.is_none()
        {
            self.refuse(streams, client, now, out);
            return;
        }
        let (b, remote) = match original {
            Some(dst) => (0, dst),
            None => {
                let b = self.pick_backend(leg.listener, now);
                (b, self.listeners[leg.listener].backends[b])
            }
        };
        let mptcp = self.listeners[leg.listener].mptcp;
        let opened =
            source(remote.ip()).and_then(|ip| self.connect(streams, ip, remote, mptcp, now, out));
        let Some(up) = opened else {
            self.refuse(streams, client, now, out);
            return;
        };
        self.legs.insert(
            up,
            Leg {
                side: Side::Backend,
                peer: Some(client),
                backend: b,
                attempts: leg.attempts + 1,
                connected: false,
                ..leg
            },
        );
        if let Some(c) = self.legs.get_mut(&client) {
            c.peer = Some(up);
            c.backend = b;
            c.attempts = leg.attempts + 1;
        }
    }

    /// Opens a connection from `ip` to `remote` on a free local port of this worker.
    fn connect<S: SharedBuf>(
        &mut self,
        streams: &mut impl Streams<S, Id = I>,
        ip: IpAddr,
        remote: SocketAddr,
        mptcp: bool,
        now: Instant,
        out: &mut impl SegmentSink<S>,
    ) -> Option<I> {
        // A few tries: a taken tuple is rare (ports are handed out in turn), a full
        // table fails every time.
        (0..8).find_map(|_| {
            let local = SocketAddr::new(ip, self.local_port(ip, remote));
            streams.connect(local, remote, mptcp, now, out)
        })
    }

    /// The local port for a connection or subflow this worker opens from `local` to
    /// `remote`: ports are handed out in turn, each ≡ this worker's index modulo the
    /// number of workers (the port names the owner, see [`crate::handoff`]). When
    /// `local` is on a port with RSS, the first of the next few such ports whose
    /// replies the port's Toeplitz hash and table bring to this worker's queue (none
    /// of them: the next one, counted in [`RelayStats::rss_misses`]).
    pub fn local_port(&mut self, local: IpAddr, remote: SocketAddr) -> u16 {
        let cfg = &self.cfg;
        let next = &mut self.next_port;
        let Some((_, rss)) = self.rss.iter().find(|(a, _)| *a == local) else {
            return next_in_turn(next, cfg);
        };
        let (worker, workers) = cfg.worker;
        let tries = RSS_TRIES_PER_WORKER.saturating_mul(workers.max(1));
        let candidates = (0..tries).map(|_| next_in_turn(next, cfg));
        match rss.port_for_queue(worker, local, remote, candidates) {
            Some(port) => port,
            None => {
                self.stats.rss_misses += 1;
                next_in_turn(next, cfg)
            }
        }
    }

    /// The next backend of `listener` in turn, skipping those held down (all held
    /// down: the one whose hold-down ends first).
    fn pick_backend(&mut self, listener: usize, now: Instant) -> usize {
        let b = &mut self.backends[listener];
        let n = b.down_until.len();
        let up = |t: &Option<Instant>| t.is_none_or(|t| now >= t);
        let chosen = (0..n)
            .map(|k| (b.next + k) % n)
            .find(|&i| up(&b.down_until[i]))
            .unwrap_or_else(|| {
                (0..n)
                    .min_by_key(|&i| b.down_until[i].map_or(0, |t| t.as_nanos()))
                    .unwrap_or(0)
            });
        b.next = (chosen + 1) % n.max(1);
        chosen
    }

    /// Backend leg `id` failed its handshake: hold its backend down and try another.
    fn retry<S: SharedBuf>(
        &mut self,
        streams: &mut impl Streams<S, Id = I>,
        id: I,
        leg: Leg<I>,
        source: &impl Fn(IpAddr) -> Option<IpAddr>,
        now: Instant,
        out: &mut impl SegmentSink<S>,
    ) {
        self.stats.connect_failures += 1;
        if let Some(d) = self.backends[leg.listener].down_until.get_mut(leg.backend) {
            *d = Some(now + self.cfg.hold_down);
        }
        self.legs.remove(&id);
        streams.flush(id, now, out);
        if let Some(client) = leg.peer {
            if let Some(c) = self.legs.get_mut(&client) {
                c.peer = None;
            }
            self.open_backend(streams, client, source, now, out);
            streams.flush(client, now, out);
        }
    }

    /// Resets client connection `id`: it cannot be relayed.
    fn refuse<S: SharedBuf>(
        &mut self,
        streams: &mut impl Streams<S, Id = I>,
        id: I,
        now: Instant,
        out: &mut impl SegmentSink<S>,
    ) {
        self.stats.refused += 1;
        self.legs.remove(&id);
        streams.abort(id, now, out);
    }

    /// Moves every payload `to` can take whole from `from`'s receive queue to `to`'s
    /// send queue (by reference), and passes on `from`'s end of data; returns the
    /// bytes moved.
    fn pump<S: SharedBuf>(&mut self, streams: &mut impl Streams<S, Id = I>, from: I, to: I) -> u64 {
        let mut moved = 0u64;
        while streams
            .peek_recv_len(from)
            .is_some_and(|n| n <= streams.send_space(to))
        {
            let Some(p) = streams.recv(from) else { break };
            let n = p.len() as u64;
            // Cannot fail: the payload fits the space just checked, and the same
            // worker changes nothing in between.
            if streams.send(to, p).is_err() {
                break;
            }
            moved += n;
        }
        if streams.peer_done(from) {
            if let Some(l) = self.legs.get_mut(&from) {
                if !l.fin_forwarded {
                    l.fin_forwarded = true;
                    streams.close(to);
                }
            }
        }
        moved
    }
}

/// The next local port in turn for worker `cfg.worker` (advancing `next`, the offset
/// into `cfg.ports`): each ≡ the worker's index modulo the number of workers.
fn next_in_turn(next: &mut u16, cfg: &RelayConfig) -> u16 {
    let (first, count) = cfg.ports;
    let (worker, workers) = cfg.worker;
    let step = workers.max(1);
    let port = first.wrapping_add(*next);
    *next = next.wrapping_add(step);
    if *next >= count {
        *next = worker % step;
    }
    port
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rss::DEFAULT_KEY;

    #[test]
    fn local_ports_on_rss_ports_bring_replies_back_to_the_chooser() {
        let local: IpAddr = [192, 0, 2, 1].into();
        let other: IpAddr = [192, 0, 2, 2].into();
        for workers in 2..=4u16 {
            let Some(rss) = crate::rss::Rss::spread(&DEFAULT_KEY, 128, workers) else {
                panic!("valid set-up refused");
            };
            for worker in 0..workers {
                let mut relay = Relay::<u32>::new(RelayConfig {
                    worker: (worker, workers),
                    start: 1234,
                    ..RelayConfig::default()
                });
                relay.set_rss(vec![(local, rss.clone())]);
                for i in 0..200u16 {
                    let remote = SocketAddr::from(([198, 51, 100, (i % 250) as u8], 80 + i));
                    let port = relay.local_port(local, remote);
                    let (first, count) = relay.cfg.ports;
                    assert!(port >= first && port - first < count, "{port}");
                    assert_eq!((port - first) % workers, worker, "names its owner");
                    let reply = rss.reply_queue(SocketAddr::new(local, port), remote);
                    assert_eq!(reply, Some(worker), "port {port} of {worker}/{workers}");
                    // An address on a port without RSS: today's rule alone.
                    let plain = relay.local_port(other, remote);
                    assert_eq!((plain - first) % workers, worker);
                }
                assert_eq!(relay.stats().rss_misses, 0);
            }
        }
    }
}
