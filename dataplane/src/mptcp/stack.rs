//! The per-core MPTCP stack: a TCP [`Table`] whose connections are subflows
//! ([`Subflow`] hooks) plus the connection-level state they share ([`Ctx`]: the
//! connections, the token table, the key source, the MIB counters).
//!
//! The application sees connections ([`MskId`]), not subflows: the same loop as over a
//! TCP table — [`Stack::next_ready`], then `take_events` / `recv` / `send` / `close`,
//! then [`Stack::flush`]. A listener accepts MPTCP and plain TCP alike; a plain or
//! fallen-back connection is a connection with one subflow whose bytes map one to one.
//!
//! After every input the stack settles what changed: subflow events (handshake done,
//! FIN, gone), then each connection marked by its hooks — schedule data onto subflows,
//! DATA_FIN, the shared window, closing — then flushes the subflows it touched.

use super::coupled::{lia_increase, olia_increase, PathView};
use super::crypto::KeySource;
use super::mib::{Mib, MibCounters};
use super::msk::{
    reported, Msk, MskId, Note, PeerAddr, Phase, SendFin, MAX_ANNOUNCED, MAX_SUBFLOWS,
};
use super::scheduler::{Blest, RoundRobin, Scheduler, SendContext, SubflowView};
use super::subflow::Subflow;
use super::token::{Rejected, TokenTable};
use crate::introspect::{ConnInfo, EventKind, MonitorEvent, RelayLeg, SubflowInfo, EVENT_QUEUE};
use crate::port::SharedBuf;
use crate::seq::Dsn;
use crate::tcp::wheel::TimerWheel;
use crate::tcp::{
    CcView, ConnId, Events, FourTuple, HookSink, Instant, Payload, Secrets, SegmentOut,
    SegmentSink, State, Table, TableConfig,
};
use crate::transparent::Addressed;
use crate::wire::mptcp::{reset_reason, MpCapable, MpJoin, MpcVariant, MptcpOption};
use crate::wire::tcp::OptionsBuf;
use arrayvec::ArrayVec;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Most addresses of [`Config::backup_addrs`] used.
pub const MAX_BACKUP_ADDRS: usize = 64;

/// How long an orphan whose wait ran out still waits for a join in its handshake.
const JOIN_GRACE: Duration = Duration::from_secs(1);

/// How long a connection whose subflows ended after everything was exchanged keeps
/// its unread data for the reader: as long as a subflow's TIME-WAIT (Linux
/// `TCP_TIMEWAIT_LEN`), which a peer's RST may have cut short.
const LINGER: Duration = Duration::from_secs(60);

/// The scheduler a connection uses (`scheduler` in the configuration).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SchedulerKind {
    /// Lowest RTT with space; backups only when nothing else is usable.
    #[default]
    Default,
    /// In turn.
    RoundRobin,
    /// Every segment on every subflow.
    Redundant,
    /// Lowest RTT, skipping subflows that would block the window (BLEST).
    Blest,
}

impl SchedulerKind {
    fn scheduler(self) -> Scheduler {
        match self {
            SchedulerKind::Default => Scheduler::Default,
            SchedulerKind::RoundRobin => Scheduler::RoundRobin(RoundRobin::default()),
            SchedulerKind::Redundant => Scheduler::Redundant,
            SchedulerKind::Blest => Scheduler::Blest(Blest::default()),
        }
    }
}

/// Congestion control across the subflows of a connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Coupling {
    /// Each subflow on its own (CUBIC or NewReno as the TCP configuration says).
    #[default]
    None,
    /// LIA (RFC 6356).
    Lia,
    /// OLIA.
    Olia,
}

/// How short the packet-buffer pool runs (see [`Stack::set_memory_pressure`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MemoryPressure {
    /// Enough buffers.
    #[default]
    None,
    /// Windows stop opening.
    Soft,
    /// Windows stop opening, out-of-order data is given up and refused.
    Hard,
}

/// MPTCP settings (Linux sysctl and `ip mptcp limits` names where they exist).
#[derive(Clone, Debug)]
pub struct Config {
    /// Listeners answer MP_CAPABLE (otherwise every connection is plain TCP).
    pub enabled: bool,
    /// Ask for DSS checksums (`checksum_enabled`); used if either side asks.
    pub checksum: bool,
    /// Additional subflows per connection (`subflows` limit).
    pub subflows: u8,
    /// Addresses the peer announces (ADD_ADDR) that are accepted for new subflows
    /// per connection (`add_addr_accepted` limit; Linux's default is 0).
    pub add_addr_accepted: u8,
    /// Peers may join at the address and port of a connection's initial subflow
    /// (Linux `allow_join_initial_addr_port`); false sets MP_CAPABLE's flag C, e.g.
    /// for a gateway behind a load balancer that only the announced addresses reach.
    pub allow_join_initial_addr_port: bool,
    /// MP_JOIN handshakes in progress per connection.
    pub half_open_joins: u8,
    /// Connection-level receive buffer, bytes (the shared window's size).
    pub recv_window: u32,
    /// Connection-level send buffer, bytes.
    pub send_budget: u32,
    /// The scheduler.
    pub scheduler: SchedulerKind,
    /// Coupled congestion control.
    pub coupling: Coupling,
    /// SYN retransmissions with MP_CAPABLE before trying without.
    pub syn_retrans_before_tcp_fallback: u8,
    /// Connection-level timeouts without progress before a subflow with unacknowledged
    /// data counts as stale.
    pub stale_loss_cnt: u8,
    /// Most connections.
    pub max_conns: usize,
    /// Floor of the connection-level retransmission timer.
    pub rtx_min: Duration,
    /// ADD_ADDR retransmission interval until echoed (`add_addr_timeout`).
    pub add_addr_timeout: Duration,
    /// How long an established connection outlives its last subflow, waiting for the
    /// peer to join again (`close_timeout`, make-after-break); zero resets it at once.
    pub close_timeout: Duration,
    /// Our addresses on `backup` ports: every MPTCP subflow from them (joins and
    /// initial subflows, passive or active) is a backup once established — an
    /// MP_PRIO with B=1 asks the peer to send on it only when nothing else is left,
    /// and our scheduler does the same. At most [`MAX_BACKUP_ADDRS`] are used.
    pub backup_addrs: Vec<IpAddr>,
    /// Bytes the relay's plain-TCP legs leave off the MSS they offer: the plain
    /// connections the stack opens and those accepted on `fit_listeners` or by a
    /// transparent listener. A relay
    /// sets it to [`DATA_OPTION_SPACE`](super::subflow::DATA_OPTION_SPACE) so each
    /// segment a plain peer sends fits one MPTCP segment whole: payload moves by
    /// reference, so a full-size plain segment would otherwise leave as a full MPTCP
    /// segment plus a tiny one.
    pub plain_mss_reserve: u16,
    /// The relay's listening addresses (see `plain_mss_reserve`).
    pub fit_listeners: Vec<SocketAddr>,
}

impl Default for Config {
    /// Linux's defaults: checksums off, 2 additional subflows, no announced address
    /// accepted, 2 SYN retransmissions before fallback, `stale_loss_cnt` 4; 4 MiB
    /// buffers.
    fn default() -> Self {
        Config {
            enabled: true,
            checksum: false,
            subflows: 2,
            add_addr_accepted: 0,
            allow_join_initial_addr_port: true,
            half_open_joins: 4,
            recv_window: 4 << 20,
            send_budget: 4 << 20,
            scheduler: SchedulerKind::Default,
            coupling: Coupling::None,
            syn_retrans_before_tcp_fallback: 2,
            stale_loss_cnt: 4,
            max_conns: 65_536,
            rtx_min: Duration::from_millis(200),
            add_addr_timeout: Duration::from_secs(120),
            close_timeout: Duration::from_secs(60),
            backup_addrs: Vec::new(),
            plain_mss_reserve: 0,
            fit_listeners: Vec::new(),
        }
    }
}

/// What a listener accepted a SYN as.
pub(super) enum Accepted {
    /// An MP_CAPABLE initial subflow.
    Capable,
    /// A plain TCP connection.
    Plain,
    /// An MP_JOIN subflow of an existing connection.
    Join {
        remote_nonce: u32,
        local_nonce: u32,
        local_id: u8,
        remote_id: u8,
        backup: bool,
    },
}

/// The connection-level state the subflow hooks share.
pub struct Ctx<S> {
    /// Settings.
    pub(super) cfg: Config,
    /// Connections by slot.
    slots: Vec<Option<Msk<S>>>,
    /// Generation of each slot's next occupant.
    generations: Vec<u32>,
    /// Free slots.
    free: Vec<u32>,
    /// Our tokens.
    tokens: TokenTable<MskId>,
    /// Keys and nonces.
    keys: KeySource,
    /// Address ids of our addresses (MP_JOIN, ADD_ADDR); unknown addresses get 0.
    addr_ids: HashMap<IpAddr, u8>,
    /// MIB counters.
    pub(super) mib: MibCounters,
    /// MPTCP options that failed to parse.
    pub(super) bad_options: u64,
    /// Connections to settle.
    dirty: VecDeque<MskId>,
    /// Connections with events for the application.
    ready: VecDeque<MskId>,
    /// Our addresses announced on every passive connection (`signal`), with their ids.
    signal: Vec<(u8, IpAddr)>,
    /// The time of the input being processed.
    pub(super) now: Instant,
    /// Memory pressure: windows stay closed (see [`Stack::set_memory_pressure`]).
    pub(super) pressure: bool,
    /// Severe memory pressure: out-of-order payload is dropped.
    pub(super) shedding: bool,
    /// A monitor is attached: connection events are queued.
    monitor: bool,
    /// Connection events for the worker, at most [`EVENT_QUEUE`].
    events: VecDeque<MonitorEvent>,
    /// Events dropped because the queue was full.
    events_dropped: u64,
    /// Connections without subflows waiting for a join (`close_timeout`).
    orphans: usize,
    /// To whom the segment being processed is addressed (foreign destinations are
    /// taken only by transparent listeners and joins to transparent connections).
    pub(super) addressed: Addressed,
    /// Connections the gateway opened that the path manager should look at.
    pm_due: VecDeque<MskId>,
    /// Payload bytes MPTCP subflows took in (in order) since [`Stack::take_received`].
    pub(super) received: u64,
}

impl<S: SharedBuf> Ctx<S> {
    /// The ids of every live connection.
    fn live_ids(&self) -> impl Iterator<Item = MskId> + '_ {
        (0..self.slots.len())
            .map(|index| MskId {
                index: index as u32,
                generation: self.generations[index].wrapping_sub(1),
            })
            .filter(|&m| self.msk(m).is_some())
    }

    /// The connection `id`.
    pub(super) fn msk(&self, id: MskId) -> Option<&Msk<S>> {
        self.slots[self.live(id)?].as_ref()
    }

    /// The connection `id`, writable.
    pub(super) fn msk_mut(&mut self, id: MskId) -> Option<&mut Msk<S>> {
        let i = self.live(id)?;
        self.slots[i].as_mut()
    }

    /// The connection `id` beside the counters and settings (split borrows).
    pub(super) fn split(&mut self, id: MskId) -> Option<(&mut Msk<S>, &mut MibCounters, &Config)> {
        let i = self.live(id)?;
        Some((self.slots[i].as_mut()?, &mut self.mib, &self.cfg))
    }

    /// The slot of `id` when it still holds that connection (not a later one).
    fn live(&self, id: MskId) -> Option<usize> {
        let i = id.index as usize;
        let current = self.generations.get(i)? == &id.generation.wrapping_add(1);
        (current && self.slots.get(i)?.is_some()).then_some(i)
    }

    /// Queues `id` to be settled.
    pub(super) fn mark(&mut self, id: MskId) {
        if let Some(m) = self.msk_mut(id) {
            if !m.dirty {
                m.dirty = true;
                self.dirty.push_back(id);
            }
        }
    }

    /// A connection slot for `msk`, `None` when the table is full.
    fn insert(&mut self, msk: Msk<S>) -> Option<MskId> {
        if self.slots.len() - self.free.len() >= self.cfg.max_conns {
            return None;
        }
        let index = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.generations.push(0);
            (self.slots.len() - 1) as u32
        });
        let generation = self.generations[index as usize];
        self.generations[index as usize] = generation.wrapping_add(1);
        self.slots[index as usize] = Some(msk);
        Some(MskId { index, generation })
    }

    /// A new connection with a fresh key whose token is unique and names this worker;
    /// a plain (fallback) connection when no token can be had.
    fn new_msk(&mut self, local: SocketAddr, remote: SocketAddr) -> Option<(MskId, bool)> {
        let scheduler = self.cfg.scheduler.scheduler();
        let window = self.cfg.recv_window;
        let id = self.insert(Msk::new(local, remote, 0, scheduler, window))?;
        for _ in 0..64 {
            let key = self.keys.key();
            match self.tokens.try_insert(key, id) {
                Ok(ids) => {
                    if let Some(m) = self.msk_mut(id) {
                        m.set_local_key(key, ids);
                    }
                    return Some((id, true));
                }
                Err(Rejected::Redraw) => continue,
                Err(Rejected::Full) => break,
            }
        }
        self.mib.inc(Mib::MPFallbackTokenInit);
        Some((id, false))
    }

    /// Queues a connection event while a monitor is attached.
    fn emit(&mut self, ev: MonitorEvent) {
        if !self.monitor {
            return;
        }
        if self.events.len() < EVENT_QUEUE {
            self.events.push_back(ev);
        } else {
            self.events_dropped += 1;
        }
    }

    /// Ends the orphan wait of `id`, if it was waiting (a subflow joined, the wait
    /// expired or the connection goes).
    fn unorphan(&mut self, id: MskId) {
        if let Some(m) = self.msk_mut(id) {
            m.orphan_armed = false;
            if m.orphan_until.take().is_some() && !std::mem::take(&mut m.lingering) {
                self.orphans = self.orphans.saturating_sub(1);
            }
        }
    }

    /// Frees connection `id` and its token.
    fn remove(&mut self, id: MskId) {
        self.unorphan(id);
        let Some(m) = self.msk(id) else { return };
        // Only a connection with a key holds a token (unique, so it is this one's).
        if m.local_key != 0 {
            self.tokens.remove(m.local_token);
        }
        self.slots[id.index as usize] = None;
        self.free.push(id.index);
    }

    /// Decides on a listener's SYN with MPTCP options `opts`.
    pub(super) fn accept(
        &mut self,
        tuple: &FourTuple,
        opts: &[MptcpOption],
    ) -> Result<(MskId, Accepted), OptionsBuf> {
        let join = opts.iter().find_map(|o| match o {
            MptcpOption::MpJoin(MpJoin::Syn {
                backup,
                addr_id,
                token,
                nonce,
            }) => Some((*backup, *addr_id, *token, *nonce)),
            _ => None,
        });
        if let Some((backup, remote_id, token, remote_nonce)) = join {
            self.mib.inc(Mib::MPJoinSynRx);
            if backup {
                self.mib.inc(Mib::MPJoinSynBackupRx);
            }
            return self.accept_join(tuple, token, remote_nonce, remote_id, backup);
        }
        let transparent = match self.addressed {
            Addressed::Us => None,
            Addressed::Transparent(tag) => Some(tag),
            // Only joins are taken for a foreign destination no listener names.
            Addressed::Foreign => return Err(OptionsBuf::new()),
        };
        let capable = opts.iter().find_map(|o| match o {
            MptcpOption::MpCapable(MpCapable {
                variant: MpcVariant::Syn,
                checksum_required,
                ..
            }) => Some(*checksum_required),
            _ => None,
        });
        match capable {
            Some(csum) if self.cfg.enabled => {
                self.mib.inc(Mib::MPCapableSYNRX);
                let (id, mptcp) = self
                    .new_msk(tuple.local, tuple.remote)
                    .ok_or_else(OptionsBuf::new)?;
                let checksum = self.cfg.checksum;
                let m = self.msk_mut(id).ok_or_else(OptionsBuf::new)?;
                m.passive = true;
                m.transparent = transparent;
                if mptcp {
                    m.csum = checksum || csum;
                    Ok((id, Accepted::Capable))
                } else {
                    m.fall_back();
                    Ok((id, Accepted::Plain))
                }
            }
            _ => {
                let scheduler = self.cfg.scheduler.scheduler();
                let mut m = Msk::new(
                    tuple.local,
                    tuple.remote,
                    0,
                    scheduler,
                    self.cfg.recv_window,
                );
                m.fall_back();
                m.passive = true;
                m.transparent = transparent;
                let id = self.insert(m).ok_or_else(OptionsBuf::new)?;
                Ok((id, Accepted::Plain))
            }
        }
    }

    fn accept_join(
        &mut self,
        tuple: &FourTuple,
        token: u32,
        remote_nonce: u32,
        remote_id: u8,
        backup: bool,
    ) -> Result<(MskId, Accepted), OptionsBuf> {
        let refuse = |reason| {
            let mut o = OptionsBuf::new();
            let _ = o.push_mptcp(&MptcpOption::MpTcpRst { flags: 0, reason });
            o
        };
        let Some(id) = self.tokens.lookup(token) else {
            self.mib.inc(Mib::MPJoinNoTokenFound);
            self.mib.inc(Mib::MPRstTx);
            return Err(refuse(reset_reason::MPTCP_ERROR));
        };
        let limit = 1 + usize::from(self.cfg.subflows);
        let half_open_limit = self.cfg.half_open_joins;
        let foreign = self.addressed != Addressed::Us;
        let Some(m) = self.msk_mut(id) else {
            self.mib.inc(Mib::MPJoinNoTokenFound);
            return Err(refuse(reset_reason::MPTCP_ERROR));
        };
        // A join to a foreign address is taken only for a transparent connection to
        // that same destination (the gateway answers as nobody else).
        if foreign && !(m.transparent.is_some() && m.local.ip() == tuple.local.ip()) {
            self.mib.inc(Mib::MPJoinNoTokenFound);
            self.mib.inc(Mib::MPRstTx);
            return Err(refuse(reset_reason::MPTCP_ERROR));
        }
        if m.phase != Phase::Established || m.fallback || m.keys.is_none() {
            self.mib.inc(Mib::MPJoinNotEstablished);
            self.mib.inc(Mib::MPRstTx);
            return Err(refuse(reset_reason::PROHIBITED));
        }
        if m.subflows.len() >= limit.min(MAX_SUBFLOWS) || m.half_open_joins >= half_open_limit {
            self.mib.inc(Mib::MPJoinRejected);
            self.mib.inc(Mib::MPRstTx);
            return Err(refuse(reset_reason::NO_RESOURCES));
        }
        m.half_open_joins += 1;
        let local_id = self.addr_ids.get(&tuple.local.ip()).copied().unwrap_or(0);
        let local_nonce = self.keys.nonce();
        Ok((
            id,
            Accepted::Join {
                remote_nonce,
                local_nonce,
                local_id,
                remote_id,
                backup,
            },
        ))
    }

    /// Subflow `sf` of `id` was freed; `half_open` when it was a join not yet
    /// established, `had_data` when it still held unacknowledged mappings.
    pub(super) fn subflow_gone(&mut self, id: MskId, sf: ConnId, half_open: bool, had_data: bool) {
        let (timeout, now) = (self.cfg.close_timeout, self.now);
        let Some(m) = self.msk_mut(id) else { return };
        m.subflows.retain(|e| e.id != sf);
        if half_open {
            m.half_open_joins = m.half_open_joins.saturating_sub(1);
        }
        if had_data {
            m.reinject_all();
        }
        // Nothing is left to exchange with the peer: its FIN (DATA_FIN) and all data
        // before it arrived, and ours was acknowledged (for a plain connection: the
        // subflow closed cleanly — a RST in TIME-WAIT, e.g. after a retransmitted FIN,
        // is no failure). Losing the subflows then loses nothing: what the reader has
        // not taken yet stays readable, and `check_closed` ends the connection once it
        // was read (ending it now would drop data that was acknowledged).
        let peer_fin = m.rcv.as_ref().is_some_and(|r| r.fin_in_order());
        let finished = if m.fallback {
            m.app_closed && m.snd_una == m.snd_end || !m.subflow_failed
        } else {
            m.fin == SendFin::Acked
        };
        let over = peer_fin && finished && !m.fastclose;
        // An established MPTCP connection waits `close_timeout` for the peer to join
        // again (make-after-break); its data stays queued for the new subflow.
        let wait = m.phase == Phase::Established
            && !m.fallback
            && m.keys.is_some()
            && !m.fastclose
            && !over
            && !timeout.is_zero();
        let mut orphaned = false;
        if m.subflows.is_empty() && wait {
            // The path manager may open subflows again (connections the gateway
            // opened), each time the connection is left without any.
            m.pm_wake = true;
            orphaned = m.orphan_until.is_none();
            m.orphan_until = m.orphan_until.or(Some(now + timeout));
        } else if m.subflows.is_empty() && m.phase != Phase::Closed {
            if !over {
                m.phase = Phase::Closed;
                m.notify(Events::RESET);
            } else if m.peer_fin_reported {
                m.phase = Phase::Closed;
                m.notify(Events::CLOSED);
            } else if m.orphan_until.is_none() {
                // A reader that never takes the rest: reset after TIME-WAIT's length.
                m.lingering = true;
                m.orphan_until = Some(now + LINGER);
            }
        }
        self.orphans += usize::from(orphaned);
        self.mark(id);
    }

    /// Queues our `signal` addresses for announcement on `id` (all but the one the
    /// connection came to, of its family).
    pub(super) fn queue_announcements(&mut self, id: MskId) {
        let signal = std::mem::take(&mut self.signal);
        if let Some(m) = self.msk_mut(id) {
            let local = m.local.ip();
            for &(aid, addr) in &signal {
                if addr != local && addr.is_ipv4() == local.is_ipv4() {
                    let _ = m.announce.try_push(super::msk::Announce {
                        id: aid,
                        addr,
                        sent_at: None,
                        echoed: false,
                    });
                }
            }
        }
        self.signal = signal;
    }

    /// The peer's key for an MP_FASTCLOSE, when `id` is being aborted.
    pub(super) fn fastclose_key(&self, id: MskId) -> Option<u64> {
        self.msk(id)
            .filter(|m| m.fastclose && m.keys.is_some())
            .map(|m| m.remote_key)
    }

    /// The coupled increase for subflow `sf` of `id`, if coupling is configured.
    pub(super) fn coupled_increase(
        &mut self,
        id: MskId,
        sf: ConnId,
        view: &CcView,
        acked: u32,
    ) -> Option<u32> {
        let coupling = self.cfg.coupling;
        if coupling == Coupling::None {
            return None;
        }
        // A connection that fell back is plain TCP: its own controller decides.
        let m = self.msk_mut(id).filter(|m| !m.fallback)?;
        let i = m.subflows.iter().position(|e| e.id == sf)?;
        let e = &mut m.subflows[i];
        e.cwnd = view.cwnd;
        e.mss = view.mss;
        e.srtt_us = view
            .srtt
            .map_or(0, |d| d.as_micros().min(u128::from(u32::MAX)) as u32);
        let paths: ArrayVec<PathView, MAX_SUBFLOWS> = m
            .subflows
            .iter()
            .filter(|e| e.established)
            .map(|e| PathView {
                cwnd: e.cwnd,
                mss: e.mss,
                srtt_us: e.srtt_us,
                inter_loss_bytes: u64::from(e.cwnd),
            })
            .collect();
        let j = m
            .subflows
            .iter()
            .filter(|e| e.established)
            .position(|e| e.id == sf)?;
        let inc = match coupling {
            Coupling::Lia => lia_increase(&paths, j, acked),
            Coupling::Olia => olia_increase(&paths, j, acked),
            Coupling::None => return None,
        };
        Some(m.subflows[i].carry.add(inc))
    }
}

/// A segment sink that lends the stack context to the subflow hooks.
struct Out<'a, S, O> {
    sink: &'a mut O,
    ctx: &'a mut Ctx<S>,
}

impl<S, O: SegmentSink<S>> SegmentSink<S> for Out<'_, S, O> {
    #[inline]
    fn send(&mut self, tuple: &FourTuple, seg: SegmentOut<S>) {
        self.sink.send(tuple, seg);
    }
}

impl<S, O: SegmentSink<S>> HookSink<S, Ctx<S>> for Out<'_, S, O> {
    #[inline]
    fn with_ctx<R>(&mut self, f: impl FnOnce(&mut Ctx<S>) -> R) -> R {
        f(self.ctx)
    }
}

/// The token of an MP_JOIN SYN's options, if they carry one.
fn join_token(raw: &[u8]) -> Option<u32> {
    crate::wire::tcp::TcpOptions::new(raw).find_map(|o| match o {
        Ok(crate::wire::tcp::TcpOption::Mptcp(b)) => match MptcpOption::parse(b) {
            Ok(MptcpOption::MpJoin(MpJoin::Syn { token, .. })) => Some(token),
            _ => None,
        },
        _ => None,
    })
}

/// The bit set of the first `n` subflows.
fn all(n: usize) -> u32 {
    1u32.checked_shl(n as u32).map_or(u32::MAX, |b| b - 1)
}

/// Facts about a connection for the application and operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MskInfo {
    /// Where it stands.
    pub phase: Phase,
    /// Local address of the initial subflow.
    pub local: SocketAddr,
    /// Remote address of the initial subflow.
    pub remote: SocketAddr,
    /// Our token (0 for a plain connection).
    pub token: u32,
    /// Fell back to (or always was) plain TCP.
    pub fallback: bool,
    /// DSS checksums in use.
    pub checksum: bool,
    /// Subflows (established or not).
    pub subflows: usize,
    /// A subflow is fully established: the peer has our keys, so it accepts joins
    /// (Linux's client adds subflows only from then on).
    pub fully_established: bool,
    /// Bytes reinjected at the connection level.
    pub reinjected_bytes: u64,
}

/// Where an additional subflow runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinPath {
    /// Our address and port.
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
    /// Our address id for `local`.
    pub local_id: u8,
    /// Ask the peer to use the subflow as backup only.
    pub backup: bool,
}

/// What the path manager sees of a connection ([`Stack::pm_view`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PmView {
    /// Local address of the initial subflow.
    pub local: SocketAddr,
    /// Remote address of the initial subflow.
    pub remote: SocketAddr,
    /// Opened by the gateway (the path manager adds subflows only to those).
    pub opened: bool,
    /// Established with MPTCP and keys known: subflows may join.
    pub joinable: bool,
    /// A subflow is fully established (the peer has our keys and accepts joins).
    pub fully_established: bool,
    /// Left without subflows, waiting `close_timeout` for one.
    pub orphan: bool,
    /// Subflows it may still add (the `subflows` limit less those it has).
    pub room: usize,
    /// Local and remote address of every subflow it has (established or not).
    pub pairs: ArrayVec<(IpAddr, IpAddr), MAX_SUBFLOWS>,
    /// Addresses the peer announced that were accepted (`add_addr_accepted`).
    pub peer_addrs: ArrayVec<PeerAddr, MAX_ANNOUNCED>,
    /// The peer set MP_CAPABLE's flag C: no subflow may go to `remote`.
    pub deny_join_initial: bool,
}

/// MPTCP-level connections by state ([`Stack::count_states`]); each is in one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// The first subflow's handshake is running.
    pub connecting: u64,
    /// Open with MPTCP, data may flow.
    pub established: u64,
    /// Either side closed its sending direction, or closed and not yet freed.
    pub closing: u64,
    /// Established without a subflow, waiting `close_timeout` for a join.
    pub orphan: u64,
    /// Fell back to plain TCP, still open.
    pub fallback: u64,
}

/// The per-core MPTCP stack.
pub struct Stack<S> {
    tcp: Table<S, Subflow<S>>,
    ctx: Ctx<S>,
    timers: TimerWheel<MskId>,
    fired: Vec<MskId>,
}

impl<S: SharedBuf> Stack<S> {
    /// A stack for worker `worker` of `workers` (tokens name their owner).
    pub fn new(
        tcp: TableConfig,
        secrets: Secrets,
        cfg: Config,
        keys: KeySource,
        (worker, workers): (u16, u16),
        now: Instant,
    ) -> Self {
        let tokens = TokenTable::new(worker, workers, cfg.max_conns);
        let wheel_slots = tcp.wheel_slots;
        // A subflow's window is the connection's: it must never offer more than the
        // shared buffer, not even before the first settle (the right edge never moves
        // back); and it must take whatever the connection schedules on it. It starts
        // at the whole buffer, what the first settle offers a connection with nothing
        // unread: a smaller start would make that settle open the window, and a new
        // subflow would repeat its third or fourth ACK as a window update.
        let mut cfg = cfg;
        cfg.backup_addrs.truncate(MAX_BACKUP_ADDRS);
        let mut tcp = tcp;
        tcp.conn.recv_budget = cfg.recv_window;
        tcp.conn.send_budget = tcp.conn.send_budget.max(cfg.send_budget);
        Stack {
            tcp: Table::new(tcp, secrets, now),
            ctx: Ctx {
                cfg,
                slots: Vec::new(),
                generations: Vec::new(),
                free: Vec::new(),
                tokens,
                keys,
                addr_ids: HashMap::new(),
                mib: MibCounters::default(),
                bad_options: 0,
                dirty: VecDeque::new(),
                ready: VecDeque::new(),
                signal: Vec::new(),
                now,
                pressure: false,
                shedding: false,
                monitor: false,
                events: VecDeque::new(),
                events_dropped: 0,
                orphans: 0,
                addressed: Addressed::Us,
                pm_due: VecDeque::new(),
                received: 0,
            },
            timers: TimerWheel::new(wheel_slots, now),
            fired: Vec::new(),
        }
    }

    /// The subflow table (for statistics).
    pub fn tcp(&self) -> &Table<S, Subflow<S>> {
        &self.tcp
    }

    /// MIB counters.
    pub fn mib(&self) -> &MibCounters {
        &self.ctx.mib
    }

    /// MPTCP options that failed to parse.
    pub fn bad_options(&self) -> u64 {
        self.ctx.bad_options
    }

    /// Established connections without a subflow, waiting `close_timeout` for the
    /// peer to join again (gauge `mptcp_orphans`).
    pub fn orphans(&self) -> usize {
        self.ctx.orphans
    }

    /// The connections held, by state (a walk over the table: call it now and then).
    pub fn count_states(&self) -> StateCounts {
        let mut n = StateCounts::default();
        for k in self.ctx.live_ids().filter_map(|m| self.ctx.msk(m)) {
            let state = if k.phase == Phase::Connecting {
                &mut n.connecting
            } else if k.orphan_until.is_some() && !k.lingering && k.phase != Phase::Closed {
                &mut n.orphan
            } else if k.phase == Phase::Closed || k.app_closed || k.peer_fin_reported {
                &mut n.closing
            } else if k.fallback {
                &mut n.fallback
            } else {
                &mut n.established
            };
            *state += 1;
        }
        n
    }

    /// Calls `each` with the addresses and smoothed RTT (once measured) of every
    /// established subflow of the established MPTCP connections (not fallen back): what
    /// the per-path metrics count. A walk over the table: call it now and then.
    pub fn each_mptcp_subflow(&self, mut each: impl FnMut(&FourTuple, Option<Duration>)) {
        let live = self.ctx.live_ids().filter_map(|m| self.ctx.msk(m));
        for k in live.filter(|k| k.phase == Phase::Established && !k.fallback) {
            for c in k.subflows.iter().filter_map(|e| self.tcp.get(e.id)) {
                if c.state() == State::Established {
                    each(c.tuple(), c.srtt());
                }
            }
        }
    }

    /// True when `tuple` is an MP_JOIN subflow whose handshake completed (it may
    /// carry connection data).
    pub fn is_established_join(&self, tuple: &FourTuple) -> bool {
        self.tcp
            .lookup(tuple)
            .and_then(|id| self.tcp.get(id))
            .is_some_and(|c| c.hook().view().join && c.hook().usable())
    }

    /// Connections held.
    pub fn len(&self) -> usize {
        self.ctx.slots.len() - self.ctx.free.len()
    }

    /// True when no connection is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies the memory pressure of the packet-buffer pool (Linux's `tcp_mem`
    /// levels). Received data holds pool buffers until read or acknowledged, so from
    /// [`MemoryPressure::Soft`] on no connection opens its receive window further and
    /// peers must stop sending until buffers come back. At [`MemoryPressure::Hard`]
    /// the out-of-order data of every connection is given up and no more is taken, at
    /// the TCP or the connection level (`RcvPruned`): what is held then waits only to
    /// be read or acknowledged, acknowledgements (which need buffers to be received)
    /// still get in, and data that continues a stream still moves it on. Every
    /// connection re-offers its window when the pressure changes.
    pub fn set_memory_pressure(&mut self, level: MemoryPressure) {
        let windows_closed = level != MemoryPressure::None;
        let hard = level == MemoryPressure::Hard;
        let was_hard = self.ctx.shedding;
        self.tcp.set_shedding(hard);
        self.ctx.shedding = hard;
        if self.ctx.pressure == windows_closed && was_hard == hard {
            return;
        }
        self.ctx.pressure = windows_closed;
        let live: Vec<MskId> = self.ctx.live_ids().collect();
        for m in live {
            let mut pruned = false;
            if let Some(k) = self.ctx.msk_mut(m) {
                k.offered = None;
                if hard && !was_hard {
                    pruned = k.rcv.as_mut().is_some_and(|r| r.prune() > 0);
                }
            }
            if pruned {
                self.ctx.mib.inc(Mib::RcvPruned);
            }
            self.ctx.mark(m);
        }
    }

    /// Names our address `ip` with address id `id` in MP_JOIN and ADD_ADDR.
    pub fn set_address_id(&mut self, ip: IpAddr, id: u8) {
        self.ctx.addr_ids.insert(ip, id);
    }

    /// Announces `addrs` (ADD_ADDR, ids 1, 2, … in order) on every connection a
    /// listener accepts, except the address the connection came to; at most
    /// [`super::msk::MAX_ANNOUNCED`].
    pub fn set_signal(&mut self, addrs: &[IpAddr]) {
        self.ctx.signal.clear();
        for (i, &ip) in addrs.iter().take(super::msk::MAX_ANNOUNCED).enumerate() {
            let id = i as u8 + 1;
            self.ctx.signal.push((id, ip));
            self.ctx.addr_ids.insert(ip, id);
        }
    }

    /// Asks the peer to treat the subflows of `m` from our address `local_addr` as
    /// backup (`backup`), or as regular subflows again: an MP_PRIO goes on a pure ACK
    /// of each (RFC 8684 §3.3.8) at the next [`Stack::flush`]. Returns how many
    /// subflows it concerns (0 when `m` is gone or plain TCP).
    pub fn set_backup(&mut self, m: MskId, local_addr: IpAddr, backup: bool) -> usize {
        let Some(k) = self.ctx.msk_mut(m) else {
            return 0;
        };
        if k.fallback {
            return 0;
        }
        let mut n = 0;
        for e in &k.subflows {
            let Some(c) = self.tcp.get_mut(e.id) else {
                continue;
            };
            if c.tuple().local.ip() == local_addr && c.hook_mut().set_backup(backup) {
                c.ack_soon();
                n += 1;
            }
        }
        if n > 0 {
            k.flush_all = true;
            self.ctx.mark(m);
        }
        n
    }

    /// Withdraws our address `ip` (its interface went down, say) from every MPTCP
    /// connection that announced it (ADD_ADDR) or has subflows from it: a REMOVE_ADDR
    /// with its address id goes on another subflow, and the subflows from `ip` are
    /// reset (their unacknowledged data is reinjected on the others). `ip` is no longer
    /// announced to new connections either. Takes effect at the next settle
    /// ([`Stack::flush`], [`Stack::on_segment`] or [`Stack::on_timers`]). Returns how
    /// many connections it concerns.
    pub fn remove_address(&mut self, ip: IpAddr) -> usize {
        self.withdraw_address(ip, |_| {})
    }

    /// [`Stack::remove_address`], calling `affected` with each connection concerned.
    pub fn withdraw_address(&mut self, ip: IpAddr, mut affected: impl FnMut(MskId)) -> usize {
        self.ctx.signal.retain(|&(_, a)| a != ip);
        let mut n = 0;
        let live: Vec<MskId> = self.ctx.live_ids().collect();
        for m in live {
            let Some(k) = self.ctx.msk_mut(m) else {
                continue;
            };
            if k.fallback {
                continue;
            }
            let mut ids = ArrayVec::<u8, MAX_SUBFLOWS>::new();
            if let Some(i) = k.announce.iter().position(|a| a.addr == ip) {
                let a = k.announce.remove(i);
                if a.sent_at.is_some() {
                    let _ = ids.try_push(a.id);
                }
            }
            for e in &k.subflows {
                let Some(c) = self.tcp.get_mut(e.id) else {
                    continue;
                };
                if c.tuple().local.ip() != ip {
                    continue;
                }
                c.hook_mut().withdraw();
                k.sf_attention = true;
                let id = c.hook().local_id();
                if !ids.contains(&id) {
                    let _ = ids.try_push(id);
                }
            }
            if ids.is_empty() {
                continue;
            }
            for id in ids {
                if !k.rm_due.contains(&id) {
                    let _ = k.rm_due.try_push(id);
                }
            }
            self.ctx.mark(m);
            affected(m);
            n += 1;
        }
        n
    }

    /// The address id of our address `ip`: the one it was given, else the lowest id
    /// no address has (then kept for it), so re-announcing an address reuses its id.
    pub fn address_id(&mut self, ip: IpAddr) -> u8 {
        if let Some(&id) = self.ctx.addr_ids.get(&ip) {
            return id;
        }
        let id = (1..=u8::MAX)
            .find(|id| !self.ctx.addr_ids.values().any(|v| v == id))
            .unwrap_or(u8::MAX);
        self.ctx.addr_ids.insert(ip, id);
        id
    }

    /// The address id our address `ip` was given, if any.
    pub fn address_id_of(&self, ip: IpAddr) -> Option<u8> {
        self.ctx.addr_ids.get(&ip).copied()
    }

    /// Announces our address `ip` (ADD_ADDR, under [`Stack::address_id`]) from now on:
    /// to connections a listener accepts later, and now to every established MPTCP
    /// connection a listener accepted (except those that came to `ip`, or of the other
    /// family) — an address back after its link recovered, or newly flagged `signal`.
    /// Takes effect at the next settle; returns the connections it is announced on.
    pub fn announce(&mut self, ip: IpAddr) -> usize {
        let id = self.address_id(ip);
        if !self.ctx.signal.iter().any(|&(_, a)| a == ip) {
            if self.ctx.signal.len() >= super::msk::MAX_ANNOUNCED {
                return 0;
            }
            self.ctx.signal.push((id, ip));
        }
        let mut n = 0;
        let live: Vec<MskId> = self.ctx.live_ids().collect();
        for m in live {
            let passive = self.accepted(m);
            let Some(k) = self.ctx.msk_mut(m) else {
                continue;
            };
            let local = k.local.ip();
            if !passive
                || k.fallback
                || k.phase != Phase::Established
                || local == ip
                || local.is_ipv4() != ip.is_ipv4()
                || k.announce.iter().any(|a| a.addr == ip)
            {
                continue;
            }
            let fresh = super::msk::Announce {
                id,
                addr: ip,
                sent_at: None,
                echoed: false,
            };
            if k.announce.try_push(fresh).is_ok() {
                self.ctx.mark(m);
                n += 1;
            }
        }
        n
    }

    /// The connections held, MPTCP or plain.
    pub fn connections(&self) -> Vec<MskId> {
        self.ctx.live_ids().collect()
    }

    /// True when `m` was accepted by a listener, transparent ones included (not
    /// opened by [`Stack::connect`]).
    pub fn accepted(&self, m: MskId) -> bool {
        self.ctx.msk(m).is_some_and(|k| k.passive)
    }

    /// The transparent listener (its tag) that accepted `m` on a foreign destination,
    /// if one did.
    pub fn transparent(&self, m: MskId) -> Option<u16> {
        self.ctx.msk(m)?.transparent
    }

    /// The next connection the gateway opened that its path manager should look at:
    /// the peer announced an address accepted for subflows, or the connection was
    /// left without subflows (waiting `close_timeout`). See [`Stack::pm_view`].
    pub fn next_pm_due(&mut self) -> Option<MskId> {
        while let Some(m) = self.ctx.pm_due.pop_front() {
            if let Some(k) = self.ctx.msk_mut(m) {
                k.pm_queued = false;
                return Some(m);
            }
        }
        None
    }

    /// What the path manager needs to know of connection `m`.
    pub fn pm_view(&self, m: MskId) -> Option<PmView> {
        let k = self.ctx.msk(m)?;
        let limit = (1 + usize::from(self.ctx.cfg.subflows)).min(MAX_SUBFLOWS);
        let mut pairs = ArrayVec::new();
        let mut fully_established = false;
        for c in k.subflows.iter().filter_map(|e| self.tcp.get(e.id)) {
            let t = c.tuple();
            let _ = pairs.try_push((t.local.ip(), t.remote.ip()));
            fully_established |= c.hook().fully_established();
        }
        Some(PmView {
            local: k.local,
            remote: k.remote,
            opened: !k.passive,
            joinable: k.phase == Phase::Established && !k.fallback && k.keys.is_some(),
            fully_established,
            orphan: k.orphan_until.is_some() && !k.lingering,
            room: limit.saturating_sub(k.subflows.len()),
            pairs,
            peer_addrs: k.peer_addrs.clone(),
            deny_join_initial: k.peer_deny_join_id0,
        })
    }

    /// The oldest DSN of `m` the peer has not DATA_ACKed, and the next DSN never sent:
    /// the data in flight at the connection level lies between them.
    pub fn data_in_flight(&self, m: MskId) -> Option<(Dsn, Dsn)> {
        self.ctx.msk(m).map(|k| (k.snd_una, k.snd_nxt))
    }

    /// Changes the settings that may change at run time: `enabled`, `checksum`,
    /// `subflows`, `add_addr_accepted`, `scheduler` (for connections made from now on),
    /// `coupling`, `syn_retrans_before_tcp_fallback`, `stale_loss_cnt`,
    /// `add_addr_timeout`, `close_timeout` and `backup_addrs` — the subflows of every
    /// connection from an address that became (or stopped being) a backup address
    /// tell the peer with an MP_PRIO at once; the buffers and table sizes stay as
    /// created.
    pub fn reconfigure(&mut self, cfg: &Config) {
        let mut new = cfg.backup_addrs.clone();
        new.truncate(MAX_BACKUP_ADDRS);
        let old = std::mem::replace(&mut self.ctx.cfg.backup_addrs, new);
        let new = &self.ctx.cfg.backup_addrs;
        let changed = old
            .iter()
            .filter(|a| !new.contains(a))
            .map(|&a| (a, false))
            .chain(new.iter().filter(|a| !old.contains(a)).map(|&a| (a, true)));
        let changed: Vec<(IpAddr, bool)> = changed.collect();
        if !changed.is_empty() {
            let live: Vec<MskId> = self.ctx.live_ids().collect();
            for m in live {
                for &(addr, backup) in &changed {
                    self.set_backup(m, addr, backup);
                }
            }
        }
        let c = &mut self.ctx.cfg;
        c.enabled = cfg.enabled;
        c.checksum = cfg.checksum;
        c.subflows = cfg.subflows;
        c.add_addr_accepted = cfg.add_addr_accepted;
        c.allow_join_initial_addr_port = cfg.allow_join_initial_addr_port;
        c.scheduler = cfg.scheduler;
        c.coupling = cfg.coupling;
        c.syn_retrans_before_tcp_fallback = cfg.syn_retrans_before_tcp_fallback;
        c.stale_loss_cnt = cfg.stale_loss_cnt;
        c.add_addr_timeout = cfg.add_addr_timeout;
        c.close_timeout = cfg.close_timeout;
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.ctx.cfg
    }

    /// Accepts connections on `addr`.
    pub fn listen(&mut self, addr: SocketAddr) {
        self.tcp.listen(addr);
    }

    /// Facts about connection `m`.
    pub fn info(&self, m: MskId) -> Option<MskInfo> {
        let k = self.ctx.msk(m)?;
        Some(MskInfo {
            phase: k.phase,
            local: k.local,
            remote: k.remote,
            token: if k.local_key == 0 { 0 } else { k.local_token },
            fallback: k.fallback,
            checksum: k.csum,
            subflows: k.subflows.len(),
            fully_established: k.subflows.iter().any(|e| {
                self.tcp
                    .get(e.id)
                    .is_some_and(|c| c.hook().fully_established())
            }),
            reinjected_bytes: k.reinjected_bytes,
        })
    }

    /// Starts or stops queueing connection events for
    /// [`Stack::take_monitor_events`]; stopping discards what is queued.
    pub fn set_monitor(&mut self, on: bool) {
        self.ctx.monitor = on;
        if !on {
            self.ctx.events.clear();
        }
    }

    /// True while connection events are queued.
    pub fn monitoring(&self) -> bool {
        self.ctx.monitor
    }

    /// The connection events queued since the last call, oldest first.
    pub fn take_monitor_events(&mut self) -> std::collections::vec_deque::Drain<'_, MonitorEvent> {
        self.ctx.events.drain(..)
    }

    /// Events dropped since the last call because the queue was full.
    pub fn take_monitor_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.ctx.events_dropped)
    }

    /// Appends facts about up to `limit` connections (plain TCP ones included), each
    /// with its subflows, to `out`; `relay` tells whether the relay serves a
    /// connection (accepted on a listener, and the other connection of its pair).
    /// True when connections were left out.
    pub fn snapshot(
        &self,
        limit: usize,
        relay: impl Fn(MskId) -> Option<(bool, Option<MskId>)>,
        out: &mut Vec<ConnInfo>,
    ) -> bool {
        for (n, m) in self.ctx.live_ids().enumerate() {
            if n >= limit {
                return true;
            }
            let Some(k) = self.ctx.msk(m) else { continue };
            out.push(self.conn_info(m, k, relay(m)));
        }
        false
    }

    fn conn_info(&self, m: MskId, k: &Msk<S>, relay: Option<(bool, Option<MskId>)>) -> ConnInfo {
        let snd_start = k.local_idsn + 1;
        // A connection that never learnt the peer's key receives from DSN 0.
        let rcv_start = if k.remote_key != 0 {
            k.remote_idsn + 1
        } else {
            Dsn::new(0)
        };
        let rcv_nxt = k.rcv.as_ref().map(|r| r.rcv_nxt());
        // The peer's DATA_FIN takes a DSN but is no byte.
        let fin = k.rcv.as_ref().is_some_and(|r| r.fin_in_order());
        ConnInfo {
            id: m.index,
            phase: k.phase,
            local: k.local,
            remote: k.remote,
            token: if k.local_key == 0 { 0 } else { k.local_token },
            remote_token: if k.remote_key == 0 { 0 } else { k.remote_token },
            remote_key: k.remote_key != 0,
            fallback: k.fallback,
            checksum: k.csum,
            fully_established: k.subflows.iter().any(|e| {
                self.tcp
                    .get(e.id)
                    .is_some_and(|c| c.hook().fully_established())
            }),
            write_seq: k.snd_end.get(),
            snd_una: k.snd_una.get(),
            snd_nxt: k.snd_nxt.get(),
            rcv_nxt: rcv_nxt.map(Dsn::get),
            bytes_sent: k.snd_nxt.offset_from(snd_start),
            bytes_acked: k.snd_una.offset_from(snd_start),
            bytes_received: rcv_nxt.map_or(0, |r| r.offset_from(rcv_start) - u64::from(fin)),
            bytes_retrans: k.reinjected_bytes,
            add_addr_signal: k.announce.iter().filter(|a| a.sent_at.is_some()).count() as u8,
            relay: relay.map(|(client, peer)| RelayLeg {
                client,
                peer: peer.map(|p| p.index),
            }),
            subflows: k
                .subflows
                .iter()
                .filter_map(|e| subflow_info(&self.tcp, e))
                .collect(),
        }
    }

    /// Opens a connection from `local` to `remote`, MPTCP when `mptcp` is true and the
    /// stack has MPTCP enabled, plain TCP otherwise; its SYN goes out now. `None` when
    /// the connection table is full or the tuple is taken.
    pub fn connect(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        mptcp: bool,
        now: Instant,
        out: &mut impl SegmentSink<S>,
    ) -> Option<MskId> {
        let (m, mptcp) = if mptcp && self.ctx.cfg.enabled {
            self.ctx.new_msk(local, remote)?
        } else {
            let scheduler = self.ctx.cfg.scheduler.scheduler();
            let msk = Msk::new(local, remote, 0, scheduler, self.ctx.cfg.recv_window);
            (self.ctx.insert(msk)?, false)
        };
        let hook = if mptcp {
            Subflow::capable(m)
        } else {
            if let Some(k) = self.ctx.msk_mut(m) {
                k.fall_back();
            }
            Subflow::plain(m, self.ctx.cfg.plain_mss_reserve)
        };
        let tuple = FourTuple { local, remote };
        let mut o = Out {
            sink: out,
            ctx: &mut self.ctx,
        };
        if self.tcp.connect(tuple, hook, now, &mut o).is_none() {
            self.ctx.remove(m);
            return None;
        }
        Some(m)
    }

    /// Adds an MP_JOIN subflow to `m` on `path` (a REMOVE_ADDR of `path`'s address id
    /// not sent yet is dropped: the address is back). False when the connection
    /// cannot take one (not established, fallen back, at its subflow limit) or the
    /// tuple is taken.
    pub fn join(
        &mut self,
        m: MskId,
        path: &JoinPath,
        now: Instant,
        out: &mut impl SegmentSink<S>,
    ) -> bool {
        let JoinPath {
            local,
            remote,
            local_id,
            backup,
        } = *path;
        let limit = (1 + usize::from(self.ctx.cfg.subflows)).min(MAX_SUBFLOWS);
        let ok = self.ctx.msk(m).is_some_and(|k| {
            k.phase == Phase::Established
                && !k.fallback
                && k.keys.is_some()
                && k.subflows.len() < limit
        });
        if !ok {
            return false;
        }
        let nonce = self.ctx.keys.nonce();
        let hook = Subflow::join(m, nonce, local_id, backup);
        let mut o = Out {
            sink: out,
            ctx: &mut self.ctx,
        };
        let opened = self
            .tcp
            .connect(FourTuple { local, remote }, hook, now, &mut o)
            .is_some();
        if let (true, Some(k)) = (opened, self.ctx.msk_mut(m)) {
            // The address is in use again: a REMOVE_ADDR for it still waiting for a
            // subflow to go on (none was left) would take the new subflow down.
            k.rm_due.retain(|id| *id != local_id);
        }
        opened
    }

    /// Processes a received segment for `tuple`.
    pub fn on_segment(
        &mut self,
        tuple: FourTuple,
        mut seg: crate::tcp::SegmentIn<S>,
        now: Instant,
        out: &mut impl SegmentSink<S>,
    ) {
        self.ctx.now = now;
        let mut o = Out {
            sink: out,
            ctx: &mut self.ctx,
        };
        self.tcp
            .on_segment_listened(tuple, &mut seg, false, now, &mut o);
        self.settle(now, out);
    }

    /// Processes a segment to a foreign destination, `tuple.local` (transparent
    /// mode, see [`crate::transparent`]): a segment of a subflow held goes to it;
    /// with `addressed` naming a transparent listener, a new connection is accepted
    /// *as* that destination; an MP_JOIN SYN is taken by its token, for a transparent
    /// connection to the same destination only. False for anything else, left alone:
    /// the caller drops and counts it (the gateway answers for no address nobody
    /// asked it to take, not even with a RST).
    pub fn on_foreign_segment(
        &mut self,
        tuple: FourTuple,
        mut seg: crate::tcp::SegmentIn<S>,
        addressed: Addressed,
        now: Instant,
        out: &mut impl SegmentSink<S>,
    ) -> bool {
        let listened = matches!(addressed, Addressed::Transparent(_));
        let bare_syn = seg.flags.contains(crate::wire::tcp::TcpFlags::SYN)
            && !seg.flags.contains(crate::wire::tcp::TcpFlags::ACK);
        // Without a listener, only a join whose token names a transparent connection
        // to this very destination (anything else would be answered with a RST as
        // that address).
        let token = join_token(&seg.raw_options).filter(|_| bare_syn);
        let joined = token.and_then(|t| self.ctx.tokens.lookup(t));
        let join = joined
            .and_then(|m| self.ctx.msk(m))
            .is_some_and(|k| k.transparent.is_some() && k.local.ip() == tuple.local.ip());
        if !listened && !join && self.tcp.lookup(&tuple).is_none() {
            return false;
        }
        self.ctx.now = now;
        self.ctx.addressed = addressed;
        let mut o = Out {
            sink: out,
            ctx: &mut self.ctx,
        };
        self.tcp
            .on_segment_listened(tuple, &mut seg, listened, now, &mut o);
        self.ctx.addressed = Addressed::Us;
        self.settle(now, out);
        true
    }

    /// Payload bytes MPTCP subflows (not plain or fallen-back connections) took in, in
    /// order, since the last call: what the segments given to [`Stack::on_segment`]
    /// since then delivered (the worker counts them on the port they came in by).
    pub fn take_received(&mut self) -> u64 {
        std::mem::take(&mut self.ctx.received)
    }

    /// Runs the subflow and connection timers due at `now`.
    pub fn on_timers(&mut self, now: Instant, out: &mut impl SegmentSink<S>) {
        self.ctx.now = now;
        let mut o = Out {
            sink: out,
            ctx: &mut self.ctx,
        };
        self.tcp.on_timers(now, &mut o);
        let mut fired = std::mem::take(&mut self.fired);
        self.timers.advance(now, |m| fired.push(m));
        for m in fired.drain(..) {
            self.on_msk_timer(m, now);
        }
        self.fired = fired;
        self.settle(now, out);
    }

    /// The next connection with events for the application.
    pub fn next_ready(&mut self) -> Option<MskId> {
        while let Some(m) = self.ctx.ready.pop_front() {
            if let Some(k) = self.ctx.msk_mut(m) {
                k.ready = false;
                return Some(m);
            }
        }
        None
    }

    /// Takes the events of `m` since the last call.
    pub fn take_events(&mut self, m: MskId) -> Events {
        self.ctx
            .msk_mut(m)
            .map_or(Events::NONE, |k| std::mem::take(&mut k.events))
    }

    /// The next in-order payload of `m`. Call [`Stack::flush`] afterwards (the window
    /// may have opened).
    pub fn recv(&mut self, m: MskId) -> Option<Payload<S>> {
        let k = self.ctx.msk_mut(m)?;
        let p = k.rcv.as_mut()?.pop()?;
        self.ctx.mark(m);
        Some(p)
    }

    /// Length of the payload [`Stack::recv`] would return next.
    pub fn peek_recv_len(&self, m: MskId) -> Option<usize> {
        self.ctx.msk(m)?.rcv.as_ref()?.peek_len()
    }

    /// Bytes [`Stack::send`] still accepts for `m`.
    pub fn send_space(&self, m: MskId) -> usize {
        self.ctx.msk(m).map_or(0, |k| {
            if k.app_closed || k.phase == Phase::Closed {
                0
            } else {
                (self.ctx.cfg.send_budget as usize).saturating_sub(k.send_queued)
            }
        })
    }

    /// Queues `p` on `m` (zero copy); gives it back when the connection no longer
    /// sends or its send buffer is full. Call [`Stack::flush`] to transmit.
    pub fn send(&mut self, m: MskId, p: Payload<S>) -> Result<(), Payload<S>> {
        if p.len() > self.send_space(m) {
            return Err(p);
        }
        let Some(k) = self.ctx.msk_mut(m) else {
            return Err(p);
        };
        let len = p.len();
        if len == 0 {
            return Ok(());
        }
        k.sendq.push_back((k.snd_end, p));
        k.send_queued += len;
        k.snd_end += len as u64;
        self.ctx.mark(m);
        Ok(())
    }

    /// True once the peer's DATA_FIN (or the plain subflow's FIN) was reached.
    pub fn peer_closed(&self, m: MskId) -> bool {
        self.ctx.msk(m).is_some_and(|k| k.peer_fin_reported)
    }

    /// Closes our sending direction: a DATA_FIN (or FIN) follows the queued data.
    pub fn close(&mut self, m: MskId) {
        if let Some(k) = self.ctx.msk_mut(m) {
            k.app_closed = true;
            self.ctx.mark(m);
        }
    }

    /// Aborts `m`: every subflow is reset, with MP_FASTCLOSE once keys are known.
    pub fn abort(&mut self, m: MskId, now: Instant, out: &mut impl SegmentSink<S>) {
        let Some(k) = self.ctx.msk_mut(m) else { return };
        k.fastclose = true;
        k.app_closed = true;
        k.phase = Phase::Closed;
        self.reset_subflows(m, now, out);
        self.ctx.mark(m);
        self.settle(now, out);
    }

    /// Resets every subflow of `m`.
    fn reset_subflows(&mut self, m: MskId, now: Instant, out: &mut impl SegmentSink<S>) {
        let Some(k) = self.ctx.msk(m) else { return };
        let ids: ArrayVec<ConnId, MAX_SUBFLOWS> = k.subflows.iter().map(|e| e.id).collect();
        for &id in &ids {
            self.subflow_event(EventKind::SfClosed, m, id);
        }
        let mut o = Out {
            sink: out,
            ctx: &mut self.ctx,
        };
        for id in ids {
            if let Some(c) = self.tcp.get_mut(id) {
                c.abort(&mut o);
            }
            self.tcp.flush(id, now, &mut o);
        }
    }

    /// Reports event `kind` of subflow `id` of `m`, an MPTCP connection, while a
    /// monitor is attached.
    fn subflow_event(&mut self, kind: EventKind, m: MskId, id: ConnId) {
        if !self.ctx.monitor {
            return;
        }
        if let Some(ev) = self
            .ctx
            .msk(m)
            .and_then(|k| sf_event(&self.tcp, k, kind, id))
        {
            self.ctx.emit(ev);
        }
    }

    /// Reports the connection-level events `m` reached (CREATED, ESTABLISHED,
    /// CLOSED, each once) and the peer signals its hooks noted.
    fn report(&mut self, m: MskId) {
        let Stack { tcp, ctx, .. } = self;
        let monitor = ctx.monitor;
        let Some(k) = ctx.msk_mut(m) else { return };
        if k.local_key == 0 {
            k.notes.clear();
            return;
        }
        let was = k.reported;
        let mut now = was;
        let mptcp = k.phase == Phase::Established && !k.fallback;
        if mptcp {
            now |= reported::CREATED;
        }
        if mptcp
            && now & (reported::CREATED | reported::ESTABLISHED) == reported::CREATED
            && k.subflows
                .iter()
                .any(|e| tcp.get(e.id).is_some_and(|c| c.hook().fully_established()))
        {
            now |= reported::ESTABLISHED;
        }
        if now & reported::CREATED != 0 && k.phase == Phase::Closed {
            now |= reported::CLOSED;
        }
        k.reported = now;
        if !monitor {
            // Notes only feed monitor events (and moving the list out costs a copy).
            k.notes.clear();
            return;
        }
        let notes = std::mem::take(&mut k.notes);
        let Some(k) = ctx.msk(m) else { return };
        let mut evs = ArrayVec::<MonitorEvent, 8>::new();
        for (bit, kind) in [
            (reported::CREATED, EventKind::Created),
            (reported::ESTABLISHED, EventKind::Established),
            (reported::CLOSED, EventKind::Closed),
        ] {
            if now & bit != 0 && was & bit == 0 {
                let mut ev = MonitorEvent::new(kind, k.local_token);
                if kind != EventKind::Closed {
                    ev.local = Some(k.local);
                    ev.remote = Some(k.remote);
                }
                let _ = evs.try_push(ev);
            }
        }
        for n in notes {
            let ev = match n {
                Note::Announced { id, addr } => {
                    let mut ev = MonitorEvent::new(EventKind::Announced, k.local_token);
                    ev.remote_id = Some(id);
                    ev.remote = Some(addr);
                    Some(ev)
                }
                Note::Prio { sf } => sf_event(tcp, k, EventKind::SfPrio, sf),
            };
            if let Some(ev) = ev {
                let _ = evs.try_push(ev);
            }
        }
        for ev in evs {
            ctx.emit(ev);
        }
    }

    /// Transmits what `m` has to send and frees it once closed and unused.
    pub fn flush(&mut self, m: MskId, now: Instant, out: &mut impl SegmentSink<S>) {
        self.ctx.now = now;
        self.ctx.mark(m);
        self.settle(now, out);
    }

    /// Settles everything that changed: subflow events, then marked connections.
    fn settle(&mut self, now: Instant, out: &mut impl SegmentSink<S>) {
        // Each round handles what the previous one caused; a handful always suffices,
        // the bound only guards against a bug turning this into a busy loop.
        for _ in 0..8 {
            let mut busy = false;
            while let Some(id) = self.tcp.next_ready() {
                busy = true;
                self.on_subflow_events(id, now, out);
            }
            while let Some(m) = self.ctx.dirty.pop_front() {
                busy = true;
                self.run(m, now, out);
            }
            if !busy {
                break;
            }
        }
    }

    fn on_subflow_events(&mut self, id: ConnId, now: Instant, out: &mut impl SegmentSink<S>) {
        let Some(c) = self.tcp.get_mut(id) else {
            return;
        };
        let ev = c.take_events();
        let usable = c.hook().usable();
        let m = c.hook().msk();
        if self.ctx.monitor {
            let join = self
                .ctx
                .msk(m)
                .and_then(|k| k.subflows.iter().find(|e| e.id == id))
                .is_some_and(|e| e.join);
            if join && ev.contains(Events::CONNECTED) {
                self.subflow_event(EventKind::SfEstablished, m, id);
            }
            if ev.contains(Events::CLOSED)
                || ev.contains(Events::RESET)
                || ev.contains(Events::TIMED_OUT)
            {
                self.subflow_event(EventKind::SfClosed, m, id);
            }
        }
        let Some(c) = self.tcp.get_mut(id) else {
            return;
        };
        let on_backup_port = ev.contains(Events::CONNECTED)
            && self.ctx.cfg.backup_addrs.contains(&c.tuple().local.ip());
        if let Some(k) = self.ctx.msk_mut(m) {
            if ev.contains(Events::CONNECTED) {
                if on_backup_port && !k.fallback && !c.hook().view().backup {
                    // Our backup port: MP_PRIO B=1 on the next pure ACK.
                    if c.hook_mut().set_backup(true) {
                        c.ack_soon();
                    }
                }
                if k.fallback && k.phase == Phase::Connecting {
                    k.phase = Phase::Established;
                }
                let initial = k.entry_mut(id).is_some_and(|e| {
                    e.established |= usable;
                    !e.join
                });
                if initial {
                    k.notify(Events::CONNECTED | Events::WRITABLE);
                }
            }
            if ev.contains(Events::PEER_FIN) {
                if k.fallback {
                    if let Some(r) = k.rcv.as_mut() {
                        let at = r.rcv_nxt();
                        let _ = r.set_fin(at);
                    }
                } else if let Some(e) = k.entry_mut(id) {
                    // A subflow FIN closes only that subflow.
                    e.established = false;
                    c.close();
                    k.reinject_all();
                }
            }
            if ev.contains(Events::RESET) || ev.contains(Events::TIMED_OUT) {
                k.subflow_failed = true;
            }
        }
        self.ctx.mark(m);
        let mut o = Out {
            sink: out,
            ctx: &mut self.ctx,
        };
        self.tcp.flush(id, now, &mut o);
    }

    /// Settles connection `m`: schedules data, DATA_FIN, window, close, events.
    fn run(&mut self, m: MskId, now: Instant, out: &mut impl SegmentSink<S>) {
        let Some(k) = self.ctx.msk_mut(m) else { return };
        k.dirty = false;
        let wake = std::mem::take(&mut k.pm_wake) && !k.passive && !k.pm_queued;
        k.pm_queued |= wake;
        if wake {
            self.ctx.pm_due.push_back(m);
        }
        let Some(k) = self.ctx.msk_mut(m) else { return };
        if k.orphan_until.is_some() && k.subflows.iter().any(|e| e.established) {
            // Joined again in time: what was in flight goes again on the new subflow.
            k.reinject_all();
            self.ctx.unorphan(m);
        }
        let Some(k) = self.ctx.msk_mut(m) else { return };
        // Subflows (bit i: `subflows[i]`) that were given something to send.
        let mut touched = if std::mem::take(&mut k.flush_all) {
            all(k.subflows.len())
        } else {
            0
        };
        if std::mem::take(&mut k.peer_fastclose) {
            self.reset_subflows(m, now, out);
        }
        let Some(k) = self.ctx.msk(m) else { return };
        let established = k.phase == Phase::Established;
        touched |= self.answer_mp_fail(m);
        if established {
            touched |= self.push(m);
        }
        touched |= self.data_fin(m);
        touched |= self.sync_window(m);
        touched |= self.check_closed(m);
        touched |= self.signal_addresses(m, now);
        let Some(k) = self.ctx.msk_mut(m) else { return };
        // Named before removals shift the subflows' indices.
        let ids: ArrayVec<ConnId, MAX_SUBFLOWS> = k
            .subflows
            .iter()
            .enumerate()
            .filter(|(i, _)| touched & (1 << i) != 0)
            .map(|(_, e)| e.id)
            .collect();
        self.remove_subflows(m, now, out);
        let add_addr_timeout = self.ctx.cfg.add_addr_timeout;
        let Some(k) = self.ctx.msk_mut(m) else { return };
        if let Some(at) = k.orphan_until.filter(|_| !k.orphan_armed) {
            k.orphan_armed = true;
            self.timers.schedule(m, at);
        }
        let outstanding = k.snd_una.before(k.snd_nxt) || matches!(k.fin, SendFin::Sent(_));
        let announce_at = k.announce_deadline(add_addr_timeout);
        // Armed when something waits, and re-armed earlier when data became
        // outstanding under a later deadline (an ADD_ADDR retransmission minutes
        // away must not hold back the data retransmission). A superseded wheel entry
        // fires harmlessly: the timer checks `timer_at`.
        let armed = k.timer_at;
        if outstanding || announce_at.is_some() {
            let rtx = outstanding.then(|| now + self.rtx_interval(m));
            let at = match (rtx, announce_at) {
                (Some(r), Some(a)) => r.min(a),
                (Some(t), None) | (None, Some(t)) => t,
                (None, None) => now,
            };
            if armed.is_none_or(|t| at < t && rtx.is_some_and(|r| r < t)) {
                if let Some(k) = self.ctx.msk_mut(m) {
                    k.timer_at = Some(at);
                    k.timer_una = k.snd_una;
                }
                self.timers.schedule(m, at);
            }
        }
        let mut o = Out {
            sink: out,
            ctx: &mut self.ctx,
        };
        for id in ids {
            self.tcp.flush(id, now, &mut o);
        }
        self.report(m);
        let Some(k) = self.ctx.msk_mut(m) else { return };
        if !k.events.is_empty() && !k.ready {
            k.ready = true;
            self.ctx.ready.push_back(m);
        } else if k.phase == Phase::Closed
            && k.subflows.is_empty()
            && !k.ready
            && k.events.is_empty()
        {
            self.ctx.remove(m);
        }
    }

    /// Answers a received MP_FAIL while infinite fallback is possible (RFC 8684 §3.7):
    /// the connection falls back, the subflow's next segment carries an infinite
    /// mapping from the failed DSN and everything from that DSN is sent again in plain
    /// TCP. Returns the subflows told to send.
    fn answer_mp_fail(&mut self, m: MskId) -> u32 {
        let Stack { tcp, ctx, .. } = self;
        let Some((k, mib, _)) = ctx.split(m) else {
            return 0;
        };
        if !k.sf_attention {
            return 0;
        }
        let mut touched = 0;
        let ids: ArrayVec<ConnId, MAX_SUBFLOWS> = k.subflows.iter().map(|e| e.id).collect();
        for (i, id) in ids.into_iter().enumerate() {
            let Some(c) = tcp.get_mut(id) else { continue };
            let Some(dsn) = c.hook_mut().take_fail_rx() else {
                continue;
            };
            // A DSN outside what is sent and not acknowledged is no mapping of ours.
            if !k.infinite_fallback_allowed() || dsn.before(k.snd_una) || dsn.after(k.snd_nxt) {
                continue;
            }
            let at = c.send_seq_end();
            c.hook_mut().start_infinite(at, dsn);
            k.snd_nxt = dsn;
            k.retrans_nxt = None;
            k.fall_back();
            mib.inc(Mib::InfiniteMapTx);
            touched |= 1 << i;
        }
        touched
    }

    /// Maps queued data onto subflows as the scheduler picks them; returns the
    /// subflows sent on.
    fn push(&mut self, m: MskId) -> u32 {
        let Stack { tcp, ctx, .. } = self;
        let Some((k, mib, _)) = ctx.split(m) else {
            return 0;
        };
        let mut touched = 0u32;
        if k.fallback {
            // One subflow, bytes in order: hand everything over as it fits.
            let Some(e) = k.subflows.first() else {
                return 0;
            };
            let Some(c) = tcp.get_mut(e.id) else {
                return 0;
            };
            while k.snd_nxt.before(k.snd_end) {
                let Some(mut p) = k.payload_at(k.snd_nxt) else {
                    break;
                };
                p.truncate(c.send_space());
                if p.is_empty() {
                    break;
                }
                let seq = c.send_seq_end();
                let len = p.len();
                // Sent first, recorded after: a refused payload leaves no mapping.
                if c.send(p.clone()).is_err()
                    || !c.hook_mut().record_tx(seq, k.snd_nxt, &p, false, false)
                {
                    break;
                }
                k.snd_nxt += len as u64;
                touched = 1;
            }
            return touched;
        }
        loop {
            let (dsn, retrans) = match k.retrans_nxt {
                Some(r) if r.before(k.snd_nxt) => (r, true),
                _ => {
                    k.retrans_nxt = None;
                    if k.snd_nxt.before(k.snd_end) && k.snd_nxt.before(k.wnd_end) {
                        (k.snd_nxt, false)
                    } else {
                        break;
                    }
                }
            };
            let Some(mut chunk) = k.payload_at(dsn) else {
                break;
            };
            let mut limit = usize::from(u16::MAX);
            if retrans {
                limit = limit.min(k.snd_nxt.offset_from(dsn) as usize);
            } else {
                limit = limit.min(k.wnd_end.offset_from(dsn) as usize);
            }
            chunk.truncate(limit);
            let mut views = ArrayVec::<SubflowView, MAX_SUBFLOWS>::new();
            for e in k.subflows.iter_mut() {
                let Some(c) = tcp.get_mut(e.id) else {
                    views.push(SubflowView::default());
                    continue;
                };
                if e.stale && c.backoffs() == 0 {
                    e.stale = false;
                    mib.inc(Mib::SubflowRecover);
                }
                e.cwnd = c.cwnd();
                e.mss = c.mss();
                e.srtt_us = c
                    .srtt()
                    .map_or(0, |d| d.as_micros().min(u128::from(u32::MAX)) as u32);
                let room = c.send_room().min(c.send_space() as u32);
                let want = (chunk.len() as u32).min(e.mss);
                let usable = e.established
                    && !e.stale
                    && c.state().sends_data()
                    && c.state() != State::SynSent
                    && c.hook().usable();
                views.push(SubflowView {
                    id: e.id.index(),
                    srtt_us: e.srtt_us,
                    cwnd: e.cwnd,
                    inflight: c.flight_bytes(),
                    space: if room >= want { room } else { 0 },
                    mss: e.mss,
                    // A backup either way: the peer asked, or it is ours.
                    backup: e.backup || c.hook().view().backup,
                    usable,
                });
            }
            let ctx_send = SendContext {
                send_window: k.wnd_end.offset_from(k.snd_una),
                seg_len: chunk.len() as u32,
            };
            let sel = k.scheduler.pick(&views, &ctx_send);
            let Some(first) = sel.first() else { break };
            let space = sel.iter().map(|i| views[i].space).min().unwrap_or(0) as usize;
            chunk.truncate(space.max(1).min(views[first].space as usize));
            if chunk.is_empty() {
                break;
            }
            let len = chunk.len();
            let mut sent = false;
            for i in sel.iter() {
                let Some(c) = tcp.get_mut(k.subflows[i].id) else {
                    continue;
                };
                let seq = c.send_seq_end();
                if c.send(chunk.clone()).is_ok() {
                    sent |= c.hook_mut().record_tx(seq, dsn, &chunk, k.csum, retrans);
                    touched |= 1 << i;
                }
            }
            if !sent {
                break;
            }
            if retrans {
                k.retrans_nxt = Some(dsn + len as u64);
                k.reinjected_bytes += len as u64;
                mib.inc(Mib::MPTCPRetrans);
            } else {
                k.snd_nxt = dsn + len as u64;
            }
        }
        touched
    }

    /// Sends the DATA_FIN once the application closed and all data is mapped (a FIN
    /// on the one subflow of a plain connection); returns the subflows told to send.
    fn data_fin(&mut self, m: MskId) -> u32 {
        let Some(k) = self.ctx.msk_mut(m) else {
            return 0;
        };
        if !k.app_closed || k.phase == Phase::Connecting || k.snd_nxt != k.snd_end {
            return 0;
        }
        if k.fallback {
            for e in &k.subflows {
                if let Some(c) = self.tcp.get_mut(e.id) {
                    c.close();
                }
            }
            return all(k.subflows.len());
        }
        if k.fin == SendFin::None && k.phase == Phase::Established {
            k.fin = SendFin::Sent(k.snd_end);
            for e in &k.subflows {
                if let Some(c) = self.tcp.get_mut(e.id) {
                    c.ack_soon();
                }
            }
            return all(k.subflows.len());
        }
        0
    }

    /// Offers the shared receive window on every subflow when it changed (or a
    /// subflow joined); returns the subflows given a new budget.
    fn sync_window(&mut self, m: MskId) -> u32 {
        let pressure = self.ctx.pressure;
        let Some(k) = self.ctx.msk_mut(m) else {
            return 0;
        };
        let Some(r) = k.rcv.as_mut() else { return 0 };
        // The window is what the buffer holds beyond the unread in-order bytes: held
        // out-of-order data lies inside it.
        let mut free = (k.recv_window as usize).saturating_sub(r.ready_bytes()) as u32;
        if pressure {
            free = 0;
        }
        let changed = k.offered != Some(free);
        if changed {
            k.offered = Some(free);
            r.set_window(free);
        }
        if !std::mem::take(&mut k.data_taken) && !changed {
            return 0;
        }
        // A subflow that handed data over since its budget was set counts it against
        // that budget until told the connection's new free space; only subflows whose
        // window opened enough to announce need to send.
        let mut touched = 0;
        for (i, e) in k.subflows.iter().enumerate() {
            if let Some(c) = self.tcp.get_mut(e.id) {
                let refresh = changed || c.took_since_budget();
                if refresh && c.set_recv_budget(free) {
                    touched |= 1 << i;
                }
            }
        }
        touched
    }

    /// Reports the peer's DATA_FIN and ends the connection once both are done; returns
    /// the subflows closed.
    fn check_closed(&mut self, m: MskId) -> u32 {
        let Some(k) = self.ctx.msk_mut(m) else {
            return 0;
        };
        let peer_done = k.rcv.as_ref().is_some_and(|r| r.fin_reached());
        if peer_done && !k.peer_fin_reported {
            k.peer_fin_reported = true;
            k.notify(Events::PEER_FIN);
        }
        // Both ends of data done: an MPTCP connection closes its subflows; one whose
        // subflows already ended (`subflow_gone`: the reader had not taken the last
        // data yet), plain or not, ends with them.
        let acked = k.fallback || k.fin == SendFin::Acked;
        let live = !k.fallback && k.phase == Phase::Established;
        if peer_done && acked && k.phase != Phase::Closed && (live || k.subflows.is_empty()) {
            k.phase = Phase::Closed;
            k.notify(Events::CLOSED);
            for e in &k.subflows {
                if let Some(c) = self.tcp.get_mut(e.id) {
                    c.close();
                }
            }
            let closed = all(k.subflows.len());
            self.ctx.unorphan(m);
            return closed;
        }
        0
    }

    /// Resets the subflows whose remote address the peer removed (REMOVE_ADDR) and
    /// those from our own addresses withdrawn by [`Stack::remove_address`].
    fn remove_subflows(&mut self, m: MskId, now: Instant, out: &mut impl SegmentSink<S>) {
        let Some(k) = self.ctx.msk_mut(m) else { return };
        let removed = std::mem::take(&mut k.removed_ids);
        k.peer_addrs.retain(|a| !removed.contains(&a.id));
        if removed.is_empty() && !std::mem::take(&mut k.sf_attention) {
            return;
        }
        let tcp = &self.tcp;
        let gone: ArrayVec<ConnId, MAX_SUBFLOWS> = k
            .subflows
            .iter()
            .filter(|e| {
                removed.contains(&e.remote_id)
                    || tcp.get(e.id).is_some_and(|c| c.hook().withdrawn())
            })
            .map(|e| e.id)
            .collect();
        for _ in &gone {
            self.ctx.mib.inc(Mib::RmSubflow);
        }
        if self.ctx.monitor {
            let token = self.ctx.msk(m).map_or(0, |k| k.local_token);
            for &rid in &removed {
                let mut ev = MonitorEvent::new(EventKind::Removed, token);
                ev.remote_id = Some(rid);
                self.ctx.emit(ev);
            }
            for &id in &gone {
                self.subflow_event(EventKind::SfClosed, m, id);
            }
        }
        let mut o = Out {
            sink: out,
            ctx: &mut self.ctx,
        };
        for id in gone {
            if let Some(c) = self.tcp.get_mut(id) {
                c.abort(&mut o);
            }
            self.tcp.flush(id, now, &mut o);
        }
    }

    /// Asks a subflow for an ACK when an ADD_ADDR, an echo or a REMOVE_ADDR is due (not
    /// one from a withdrawn address); returns it.
    fn signal_addresses(&mut self, m: MskId, now: Instant) -> u32 {
        let timeout = self.ctx.cfg.add_addr_timeout;
        let Some(k) = self.ctx.msk_mut(m) else {
            return 0;
        };
        if k.phase != Phase::Established || k.fallback {
            return 0;
        }
        if k.announce_due(now, timeout).is_none() && k.echo_due.is_empty() && k.rm_due.is_empty() {
            return 0;
        }
        for (i, e) in k.subflows.iter().enumerate() {
            if !e.established {
                continue;
            }
            if let Some(c) = self.tcp.get_mut(e.id) {
                if c.hook().withdrawn() {
                    continue;
                }
                c.ack_soon();
                return 1 << i;
            }
        }
        // No subflow is left to carry a REMOVE_ADDR.
        k.rm_due.clear();
        0
    }

    /// The connection-level retransmission interval: the largest subflow RTO, at
    /// least `rtx_min`, backed off.
    fn rtx_interval(&mut self, m: MskId) -> Duration {
        let Some(k) = self.ctx.msk(m) else {
            return self.ctx.cfg.rtx_min;
        };
        let rto = k
            .subflows
            .iter()
            .filter_map(|e| self.tcp.get_mut(e.id).map(|c| c.rto()))
            .max()
            .unwrap_or_default()
            .max(self.ctx.cfg.rtx_min);
        rto * (1u32 << k.backoffs.min(6))
    }

    /// The connection-level timer: retransmits the DATA_FIN, marks stuck subflows
    /// stale and reinjects their data elsewhere.
    fn on_msk_timer(&mut self, m: MskId, now: Instant) {
        let stale_after = u32::from(self.ctx.cfg.stale_loss_cnt);
        let Some(k) = self.ctx.msk_mut(m) else { return };
        if k.orphan_until.is_some_and(|t| t <= now) {
            if k.subflows.is_empty() {
                // Nobody joined within `close_timeout` (or the reader left lingering
                // data unread): the connection is reset (Linux fastcloses it; no
                // subflow is left to carry anything).
                k.phase = Phase::Closed;
                k.notify(Events::RESET);
                self.ctx.unorphan(m);
            } else {
                // A join is in its handshake: it gets a moment more (if it fails,
                // the connection is an orphan again and this fires once more).
                k.orphan_until = Some(now + JOIN_GRACE);
                k.orphan_armed = false;
            }
            self.ctx.mark(m);
            return;
        }
        if k.timer_at.is_none_or(|t| t > now) {
            return;
        }
        k.timer_at = None;
        if k.snd_una == k.snd_nxt && !matches!(k.fin, SendFin::Sent(_)) {
            // Only an ADD_ADDR retransmission was due.
            self.ctx.mark(m);
            return;
        }
        let progressed = k.snd_una != k.timer_una;
        if !progressed {
            k.backoffs += 1;
        }
        if let SendFin::Sent(_) = k.fin {
            for e in &k.subflows {
                if let Some(c) = self.tcp.get_mut(e.id) {
                    c.ack_soon();
                }
            }
            k.flush_all = true;
        }
        // A due ADD_ADDR retransmission is picked up by the settle this mark causes.
        if !progressed && k.snd_una.before(k.snd_nxt) {
            let mut newly_stale = 0;
            let usable_others = k
                .subflows
                .iter()
                .filter(|e| e.established && !e.stale)
                .count();
            for e in k.subflows.iter_mut() {
                let Some(c) = self.tcp.get_mut(e.id) else {
                    continue;
                };
                if !e.stale
                    && c.flight_bytes() > 0
                    && c.backoffs() >= stale_after
                    && usable_others > 1
                {
                    e.stale = true;
                    newly_stale += 1;
                }
            }
            for _ in 0..newly_stale {
                self.ctx.mib.inc(Mib::SubflowStale);
            }
            let Some(k) = self.ctx.msk_mut(m) else { return };
            if newly_stale > 0 || k.backoffs >= 2 {
                k.reinject_all();
            }
        }
        self.ctx.mark(m);
    }
}

/// An event of `kind` about subflow `id` of `k`, with its addresses and ids; `None`
/// when `k` is no MPTCP connection or the subflow is gone.
fn sf_event<S: SharedBuf>(
    tcp: &Table<S, Subflow<S>>,
    k: &Msk<S>,
    kind: EventKind,
    id: ConnId,
) -> Option<MonitorEvent> {
    if k.local_key == 0 || k.fallback {
        return None;
    }
    let c = tcp.get(id)?;
    let e = k.subflows.iter().find(|e| e.id == id);
    let mut ev = MonitorEvent::new(kind, k.local_token);
    ev.local = Some(c.tuple().local);
    ev.remote = Some(c.tuple().remote);
    ev.local_id = Some(c.hook().local_id());
    ev.remote_id = e.map(|e| e.remote_id);
    ev.backup = e.map(|e| e.backup);
    Some(ev)
}

/// Facts about subflow `e` for operators; `None` when it is gone.
fn subflow_info<S: SharedBuf>(
    tcp: &Table<S, Subflow<S>>,
    e: &super::msk::SfEntry,
) -> Option<SubflowInfo> {
    let c = tcp.get(e.id)?;
    let h = c.hook().view();
    // Sequence space holds the SYN and, in these states, a FIN: not bytes.
    let state = c.state();
    let synced = state.is_synchronized();
    let our_fin_acked = matches!(state, State::FinWait2 | State::TimeWait);
    let peer_fin = matches!(
        state,
        State::CloseWait | State::LastAck | State::Closing | State::TimeWait
    );
    let acked = if synced {
        let seq = c.snd_una().offset_from(c.iss());
        seq.saturating_sub(1 + u32::from(our_fin_acked))
    } else {
        0
    };
    let received = if synced {
        let seq = c.rcv_nxt().offset_from(c.irs());
        seq.saturating_sub(1 + u32::from(peer_fin))
    } else {
        0
    };
    let mut flags = String::new();
    for (on, letter) in [
        (h.capable, 'M'),
        (h.capable, 'm'),
        (h.join, 'J'),
        (h.join, 'j'),
        (e.backup, 'B'),
        (h.backup, 'b'),
        (h.fully_established, 'e'),
        (synced, 'c'),
        (h.map.is_some(), 'v'),
    ] {
        if on {
            flags.push(letter);
        }
    }
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    Some(SubflowInfo {
        local: c.tuple().local,
        remote: c.tuple().remote,
        local_id: h.local_id,
        remote_id: e.remote_id,
        state: c.state(),
        flags,
        backup: e.backup,
        stale: e.stale,
        rtt_us: c.srtt().map(micros),
        rto_us: micros(c.rto()),
        cwnd: c.cwnd(),
        mss: c.mss(),
        inflight: c.flight_bytes(),
        bytes_sent: u64::from(acked) + u64::from(c.flight_bytes()),
        bytes_acked: u64::from(acked),
        bytes_received: u64::from(received),
        retransmits: c.stats().retransmits,
        ssnoff: c.iss().get(),
        seq: h.map.map(|m| m.0),
        sfseq: h.map.map(|m| m.1),
        maplen: h.map.map(|m| m.2),
    })
}
