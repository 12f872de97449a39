//! The per-core connection table: connections by 4-tuple, listeners by address, a
//! bounded half-open set (evicted before anything established), SYN cookies past a
//! watermark, and the timer wheel that drives every connection's `poll_at`.
//!
//! Contract with the application: every [`ConnId`] from [`Table::next_ready`] has new
//! events; after handling them (`get_mut` → `take_events`, `recv`, `send`, `close`) the
//! application calls [`Table::flush`], which transmits, re-arms the timer and frees the
//! connection once it is closed.

use super::config::{Config, IPV4_TCP_HEADERS, IPV6_TCP_HEADERS};
use super::conn::Connection;
use super::cookie::{check_cookie, cookie_syn_ack, restored_options, COOKIE_VALID};
use super::hash::SeededHash;
use super::hook::{Hook, HookSink};
use super::secrets::Secrets;
use super::segment::{FourTuple, SegmentIn, SegmentOut};
use super::state::State;
use super::time::Instant;
use super::wheel::TimerWheel;
use crate::port::SharedBuf;
use crate::wire::tcp::{OptionsBuf, TcpFlags};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};

/// Most local addresses with an MSS limit of their own ([`TableConfig::local_mss`]).
pub const MAX_LOCAL_MSS: usize = 256;

/// A connection's handle: slot and generation, so a stale handle never reaches a new
/// connection in a reused slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

impl ConnId {
    /// The slot index: unique among live connections (not over time).
    pub fn index(self) -> u32 {
        self.index
    }
}

/// Table limits and SYN-flood defence.
#[derive(Clone, Debug)]
pub struct TableConfig {
    /// Settings of every connection.
    pub conn: Config,
    /// Connections held at most (all states).
    pub max_conns: usize,
    /// Half-open (SYN-RECEIVED) connections held at most; the oldest is evicted.
    pub max_half_open: usize,
    /// Connections held in TIME-WAIT at most: one that would enter TIME-WAIT beyond
    /// it closes at once instead (counted), as Linux does past `tcp_max_tw_buckets`.
    /// At high connection rates TIME-WAIT would otherwise fill the table and refuse
    /// new connections (thousands of connections a second, each subflow 60 s).
    pub max_time_wait: usize,
    /// Half-open count from which SYNs are answered with cookies instead of state.
    pub cookie_watermark: usize,
    /// Answer with SYN cookies past the watermark (else evict the oldest half-open).
    pub syn_cookies: bool,
    /// Slots of the timer wheel (1 ms each).
    pub wheel_slots: usize,
    /// MSS limit of connections from a local address (its port's MTU less the headers
    /// of the address's family, or a lower clamp): announced in our SYN or SYN-ACK and
    /// the most we send whatever the peer announces. Connections from other addresses
    /// use `conn.mss`. At most [`MAX_LOCAL_MSS`] entries are used.
    pub local_mss: Vec<(IpAddr, u16)>,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            conn: Config::default(),
            max_conns: 65_536,
            max_half_open: 4096,
            max_time_wait: 32_768,
            cookie_watermark: 1024,
            syn_cookies: true,
            wheel_slots: 4096,
            local_mss: Vec::new(),
        }
    }
}

/// Table counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// SYNs that reached a listener.
    pub syns: u64,
    /// SYN-ACKs sent with a cookie.
    pub cookies_sent: u64,
    /// Connections created from a valid cookie.
    pub cookies_accepted: u64,
    /// ACKs to a listener whose cookie did not verify.
    pub cookies_rejected: u64,
    /// Half-open connections evicted for room.
    pub half_open_evicted: u64,
    /// SYNs dropped for lack of room.
    pub syns_dropped: u64,
    /// RSTs sent for segments no connection or listener took.
    pub resets_sent: u64,
    /// Connections freed.
    pub closed: u64,
    /// Segments with payload received under severe memory pressure (their payload
    /// is dropped unless it continues the stream).
    pub shed: u64,
    /// Connections closed at once instead of entering TIME-WAIT: `max_time_wait`
    /// were held already.
    pub time_wait_overflow: u64,
}

/// One occupied slot.
struct Entry<S, H> {
    /// The connection; its tuple is this slot's key in `by_tuple`.
    conn: Connection<S, H>,
    /// Generation of the `ConnId`s that name this connection.
    generation: u32,
    /// Deadline of the earliest wheel entry for this connection.
    armed: Option<Instant>,
    /// Queued in `ready`.
    ready: bool,
    /// Counted in `half_open`.
    half_open: bool,
    /// Listed in `owed`.
    owed: bool,
    /// Counted in `time_wait`.
    time_wait: bool,
}

/// The connection table of one core.
pub struct Table<S, H> {
    /// Limits and connection settings.
    cfg: TableConfig,
    /// ISN, timestamp-offset and cookie keys.
    secrets: Secrets,
    /// Connection slots; `None` slots are listed in `free`.
    slots: Vec<Option<Entry<S, H>>>,
    /// Generation to give the next connection of each slot.
    generations: Vec<u32>,
    /// Indices of empty slots.
    free: Vec<u32>,
    /// Occupied slot of each connection; `len() ≤ cfg.max_conns`.
    by_tuple: HashMap<FourTuple, u32, SeededHash>,
    /// Addresses accepting connections.
    listeners: HashSet<SocketAddr, SeededHash>,
    /// Wake-ups of connections at their `poll_at`.
    wheel: TimerWheel<ConnId>,
    /// Half-open connections, oldest first (may hold stale ids; compacted when long).
    half_open_order: VecDeque<ConnId>,
    /// Live half-open connections.
    half_open: usize,
    /// Connections in TIME-WAIT.
    time_wait: usize,
    /// Connections with events for the application.
    ready: VecDeque<ConnId>,
    /// Scratch for fired timers.
    fired: Vec<ConnId>,
    /// Connections owing the ACK of the current receive burst (no duplicates: at most
    /// one entry per connection).
    owed: Vec<ConnId>,
    /// When the last cookie SYN-ACK went out: cookies are checked only shortly after.
    last_cookie_at: Option<Instant>,
    /// Counters.
    stats: TableStats,
    /// Received payload is dropped ([`Table::set_shedding`]).
    shed: bool,
}

impl<S: SharedBuf, H: Hook<S>> Table<S, H> {
    /// An empty table.
    pub fn new(mut cfg: TableConfig, secrets: Secrets, now: Instant) -> Self {
        cfg.local_mss.truncate(MAX_LOCAL_MSS);
        let hash = SeededHash::new(secrets.table_seed());
        Table {
            wheel: TimerWheel::new(cfg.wheel_slots, now),
            cfg,
            secrets,
            slots: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            by_tuple: HashMap::with_hasher(hash),
            listeners: HashSet::with_hasher(hash),
            half_open_order: VecDeque::new(),
            half_open: 0,
            time_wait: 0,
            ready: VecDeque::new(),
            fired: Vec::new(),
            owed: Vec::new(),
            last_cookie_at: None,
            stats: TableStats::default(),
            shed: false,
        }
    }

    /// The settings of a connection on `tuple`: the MSS limited by its local address.
    fn conn_config(&self, tuple: &FourTuple) -> Config {
        let mut c = self.cfg.conn.clone();
        let local = tuple.local.ip();
        if let Some(&(_, mss)) = self.cfg.local_mss.iter().find(|(a, _)| *a == local) {
            // `Config::mss` counts IPv4 headers: the connection takes IPv6's longer
            // header off again.
            let v6 = if tuple.is_ipv6() {
                IPV6_TCP_HEADERS - IPV4_TCP_HEADERS
            } else {
                0
            };
            c.mss = c.mss.min(mss.saturating_add(v6));
        }
        c
    }

    /// Under severe memory pressure, every connection drops the out-of-order payload
    /// it receives (acknowledgements still count, so what peers acknowledge frees
    /// buffers, and in-order data still moves held data on).
    pub fn set_shedding(&mut self, on: bool) {
        self.shed = on;
    }

    /// Counters.
    pub fn stats(&self) -> &TableStats {
        &self.stats
    }

    /// Connections held.
    pub fn len(&self) -> usize {
        self.by_tuple.len()
    }

    /// True when no connection is held.
    pub fn is_empty(&self) -> bool {
        self.by_tuple.is_empty()
    }

    /// Half-open connections held.
    pub fn half_open(&self) -> usize {
        self.half_open
    }

    /// Connections in TIME-WAIT.
    pub fn time_wait(&self) -> usize {
        self.time_wait
    }

    /// Timer-wheel entries held.
    pub fn timers(&self) -> usize {
        self.wheel.len()
    }

    /// Accepts connections to `addr`.
    pub fn listen(&mut self, addr: SocketAddr) {
        self.listeners.insert(addr);
    }

    /// Stops accepting connections to `addr` (existing ones stay).
    pub fn unlisten(&mut self, addr: &SocketAddr) {
        self.listeners.remove(addr);
    }

    /// The connection `id`, if it still exists.
    pub fn get(&self, id: ConnId) -> Option<&Connection<S, H>> {
        self.slots
            .get(id.index as usize)?
            .as_ref()
            .filter(|e| e.generation == id.generation)
            .map(|e| &e.conn)
    }

    /// The connection `id`, writable, if it still exists.
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Connection<S, H>> {
        self.entry_mut(id).map(|e| &mut e.conn)
    }

    /// The id of the connection on `tuple`.
    pub fn lookup(&self, tuple: &FourTuple) -> Option<ConnId> {
        let &index = self.by_tuple.get(tuple)?;
        let generation = self.slots.get(index as usize)?.as_ref()?.generation;
        Some(ConnId { index, generation })
    }

    /// The next connection with events, if any.
    pub fn next_ready(&mut self) -> Option<ConnId> {
        while let Some(id) = self.ready.pop_front() {
            if let Some(e) = self.entry_mut(id) {
                e.ready = false;
                return Some(id);
            }
        }
        None
    }

    /// Opens a connection to `tuple.remote` (its SYN goes out now). `None` when the
    /// table is full or the tuple is taken.
    pub fn connect(
        &mut self,
        tuple: FourTuple,
        hook: H,
        now: Instant,
        out: &mut impl HookSink<S, H::Ctx>,
    ) -> Option<ConnId> {
        if self.by_tuple.contains_key(&tuple) || self.len() >= self.cfg.max_conns {
            return None;
        }
        let iss = self.secrets.isn(&tuple, now);
        let ts = self.secrets.ts_offset(&tuple);
        let cfg = self.conn_config(&tuple);
        let id = self.insert(
            || Connection::connect(&cfg, tuple, iss, ts, hook, now),
            false,
            out,
        );
        self.flush(id, now, out);
        Some(id)
    }

    /// Transmits for `id`, re-arms its timer, and frees it when closed. Events the
    /// application left untaken are not queued again (no busy loop on a careless
    /// caller); they are reported with the connection's next change.
    pub fn flush(&mut self, id: ConnId, now: Instant, out: &mut impl HookSink<S, H::Ctx>) {
        if let Some(e) = self.entry_mut(id) {
            e.conn.flush(now, out);
            if e.conn.state() == State::Closed {
                self.remove(id, out);
            } else {
                self.settle(id, false, out);
            }
        }
    }

    /// Dispatches a received segment for `tuple` (our side local).
    pub fn on_segment(
        &mut self,
        tuple: FourTuple,
        mut seg: SegmentIn<S>,
        now: Instant,
        out: &mut impl HookSink<S, H::Ctx>,
    ) {
        self.on_segment_listened(tuple, &mut seg, false, now, out);
    }

    /// [`Table::on_segment`] for a segment the caller found a listener for (a
    /// transparent listener takes `tuple.local`, a foreign destination, without
    /// being registered): a segment of no connection goes to the listener path.
    /// The segment is passed by reference down to the connection (see
    /// [`Connection::on_segment`]); its payload is taken out.
    pub fn on_segment_listened(
        &mut self,
        tuple: FourTuple,
        seg: &mut SegmentIn<S>,
        listened: bool,
        now: Instant,
        out: &mut impl HookSink<S, H::Ctx>,
    ) {
        let bare_syn = seg.flags.contains(TcpFlags::SYN) && !seg.flags.contains(TcpFlags::ACK);
        if let Some(id) = self.lookup(&tuple) {
            let shed = self.shed;
            if shed && seg.payload.is_some() {
                self.stats.shed += 1;
            }
            let Some(e) = self.entry_mut(id) else { return };
            if !(bare_syn && e.conn.time_wait_accepts(seg)) {
                e.conn.set_shedding(shed);
                e.conn.on_segment(seg, now, out);
                self.settle(id, true, out);
                return;
            }
            // A new incarnation replaces the TIME-WAIT connection (RFC 6191).
            self.remove(id, out);
        }
        let taken = listened
            || self.listeners.contains(&tuple.local)
            || bare_syn && H::claims_unlistened(seg);
        if !taken {
            self.reset(&tuple, seg, OptionsBuf::new(), out);
            return;
        }
        if seg.flags.contains(TcpFlags::RST) {
            return;
        }
        if seg.flags.contains(TcpFlags::ACK) && !seg.flags.contains(TcpFlags::SYN) {
            self.on_listener_ack(tuple, seg, now, out);
        } else if bare_syn {
            self.on_listener_syn(tuple, seg, now, out);
        }
    }

    fn on_listener_syn(
        &mut self,
        tuple: FourTuple,
        seg: &SegmentIn<S>,
        now: Instant,
        out: &mut impl HookSink<S, H::Ctx>,
    ) {
        self.stats.syns += 1;
        if self.cfg.syn_cookies && self.half_open >= self.cfg.cookie_watermark {
            self.stats.cookies_sent += 1;
            self.last_cookie_at = Some(now);
            out.send(
                &tuple,
                cookie_syn_ack(&self.conn_config(&tuple), &self.secrets, &tuple, seg, now),
            );
            return;
        }
        let full = self.half_open >= self.cfg.max_half_open || self.len() >= self.cfg.max_conns;
        if full && !self.evict_half_open(out) {
            self.stats.syns_dropped += 1;
            return;
        }
        let hook = match out.with_ctx(|ctx| H::accept(ctx, &tuple, seg)) {
            Ok(hook) => hook,
            Err(options) => {
                self.reset(&tuple, seg, options, out);
                return;
            }
        };
        let iss = self.secrets.isn(&tuple, now);
        let ts = self.secrets.ts_offset(&tuple);
        let cfg = self.conn_config(&tuple);
        let id = self.insert(
            || Connection::accept(&cfg, tuple, seg, iss, ts, hook, now),
            true,
            out,
        );
        self.flush(id, now, out);
    }

    fn on_listener_ack(
        &mut self,
        tuple: FourTuple,
        seg: &mut SegmentIn<S>,
        now: Instant,
        out: &mut impl HookSink<S, H::Ctx>,
    ) {
        let recent = self
            .last_cookie_at
            .is_some_and(|t| now.since(t) <= COOKIE_VALID);
        let mss = if self.cfg.syn_cookies && recent {
            check_cookie(&self.secrets, &tuple, seg, now)
        } else {
            None
        };
        let Some(mss) = mss.filter(|_| self.len() < self.cfg.max_conns) else {
            self.stats.cookies_rejected += u64::from(self.cfg.syn_cookies);
            self.reset(&tuple, seg, OptionsBuf::new(), out);
            return;
        };
        let hook = match out.with_ctx(|ctx| H::accept_cookie(ctx, &tuple, seg)) {
            Ok(hook) => hook,
            Err(options) => {
                self.reset(&tuple, seg, options, out);
                return;
            }
        };
        self.stats.cookies_accepted += 1;
        let opts = restored_options(mss, seg);
        let ts = self.secrets.ts_offset(&tuple);
        let cfg = self.conn_config(&tuple);
        let id = self.insert(
            || Connection::from_cookie(&cfg, tuple, seg, &opts, ts, hook, now),
            false,
            out,
        );
        // The ACK may carry data.
        if let Some(e) = self.entry_mut(id) {
            e.conn.on_segment(seg, now, out);
        }
        self.settle(id, true, out);
    }

    fn reset(
        &mut self,
        tuple: &FourTuple,
        seg: &SegmentIn<S>,
        options: OptionsBuf,
        out: &mut impl HookSink<S, H::Ctx>,
    ) {
        if let Some(rst) = seg.reset_reply() {
            self.stats.resets_sent += 1;
            out.send(tuple, SegmentOut { options, ..rst });
        }
    }

    /// Sends the ACKs the receive burst since the last call left owed, then runs
    /// every connection timer due at `now`. Drivers call it once per burst.
    pub fn on_timers(&mut self, now: Instant, out: &mut impl HookSink<S, H::Ctx>) {
        let mut owed = std::mem::take(&mut self.owed);
        for id in owed.drain(..) {
            let Some(e) = self.entry_mut(id) else {
                continue;
            };
            e.owed = false;
            e.conn.release_owed_ack(now, out);
            self.settle(id, true, out);
        }
        self.owed = owed;
        let mut fired = std::mem::take(&mut self.fired);
        self.wheel.advance(now, |id| fired.push(id));
        for id in fired.drain(..) {
            let Some(e) = self.entry_mut(id) else {
                continue;
            };
            if e.armed.is_some_and(|t| t <= now) {
                e.armed = None;
            }
            if e.conn.poll_at().is_some_and(|t| t <= now) {
                e.conn.on_timer(now, out);
            }
            self.settle(id, true, out);
        }
        self.fired = fired;
    }

    fn entry_mut(&mut self, id: ConnId) -> Option<&mut Entry<S, H>> {
        self.slots
            .get_mut(id.index as usize)?
            .as_mut()
            .filter(|e| e.generation == id.generation)
    }

    /// Stores the connection `make` builds in a free slot. It is built straight into
    /// the slot (a `Connection` is over a kilobyte: moving it through the callers'
    /// frames cost more than the rest of storing it).
    fn insert(
        &mut self,
        make: impl FnOnce() -> Connection<S, H>,
        half_open: bool,
        out: &mut impl HookSink<S, H::Ctx>,
    ) -> ConnId {
        let index = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.generations.push(0);
            (self.slots.len() - 1) as u32
        });
        let generation = self.generations[index as usize];
        self.generations[index as usize] = generation.wrapping_add(1);
        let id = ConnId { index, generation };
        let entry = self.slots[index as usize].insert(Entry {
            conn: make(),
            generation,
            armed: None,
            ready: false,
            half_open,
            owed: false,
            time_wait: false,
        });
        out.with_ctx(|ctx| entry.conn.hook_mut().attach(ctx, id));
        self.by_tuple.insert(*entry.conn.tuple(), index);
        if half_open {
            self.half_open += 1;
            self.half_open_order.push_back(id);
            if self.half_open_order.len() > 2 * self.cfg.max_half_open.max(1) {
                let slots = &self.slots;
                self.half_open_order.retain(|id| {
                    slots
                        .get(id.index as usize)
                        .and_then(Option::as_ref)
                        .is_some_and(|e| e.generation == id.generation && e.half_open)
                });
            }
        }
        id
    }

    /// Frees `id` silently (its hook is told).
    fn remove(&mut self, id: ConnId, out: &mut impl HookSink<S, H::Ctx>) {
        let Some(slot) = self.slots.get_mut(id.index as usize) else {
            return;
        };
        // Released and dropped in its slot: moving a connection out to drop it costs
        // a copy of over a kilobyte.
        let Some(e) = slot.as_mut().filter(|e| e.generation == id.generation) else {
            return;
        };
        out.with_ctx(|ctx| e.conn.hook_mut().release(ctx));
        if e.half_open {
            self.half_open -= 1;
        }
        if e.time_wait {
            self.time_wait -= 1;
        }
        self.by_tuple.remove(e.conn.tuple());
        *slot = None;
        self.free.push(id.index);
        self.stats.closed += 1;
    }

    /// Evicts the oldest half-open connection; false when there is none.
    fn evict_half_open(&mut self, out: &mut impl HookSink<S, H::Ctx>) -> bool {
        while let Some(id) = self.half_open_order.pop_front() {
            if self.entry_mut(id).is_some_and(|e| e.half_open) {
                self.remove(id, out);
                self.stats.half_open_evicted += 1;
                return true;
            }
        }
        false
    }

    /// Bookkeeping after a connection ran: half-open count, readiness (when `notify`),
    /// timer, freeing.
    fn settle(&mut self, id: ConnId, notify: bool, out: &mut impl HookSink<S, H::Ctx>) {
        let Some(e) = self
            .slots
            .get_mut(id.index as usize)
            .and_then(Option::as_mut)
        else {
            return;
        };
        if e.half_open && e.conn.state() != State::SynReceived {
            e.half_open = false;
            self.half_open -= 1;
        }
        if e.conn.state() == State::TimeWait && !e.time_wait {
            if self.time_wait >= self.cfg.max_time_wait {
                e.conn.skip_time_wait();
                self.stats.time_wait_overflow += 1;
            } else {
                e.time_wait = true;
                self.time_wait += 1;
            }
        }
        if notify && e.conn.has_events() && !e.ready {
            e.ready = true;
            self.ready.push_back(id);
        }
        if e.conn.ack_owed() && !e.owed {
            e.owed = true;
            self.owed.push(id);
        }
        if e.conn.state() == State::Closed {
            if !e.ready {
                self.remove(id, out);
            }
            return;
        }
        if let Some(t) = e.conn.poll_at() {
            if e.armed.is_none_or(|a| t < a) {
                e.armed = Some(t);
                self.wheel.schedule(id, t);
            }
        }
    }
}
