//! One MPTCP connection at the data level ("msk" in Linux): keys, the subflows it
//! owns, the connection-level send queue numbered by DSN, DATA_ACK and the shared
//! window, the DSN reassembly, and DATA_FIN in both directions.
//!
//! It holds no TCP state of its own: each subflow is a [`crate::tcp::Connection`] in
//! the stack's table whose hook ([`super::subflow::Subflow`]) reaches this state
//! through the stack context. Everything here is plain bookkeeping the stack and the
//! hooks call into; nothing sends.

use super::coupled::Carry;
use super::crypto::{derive, ConnKeys, KeyIds};
use super::reassembly::{Limits, Reassembly};
use super::scheduler::Scheduler;
use crate::port::SharedBuf;
use crate::seq::Dsn;
use crate::tcp::{ConnId, Events, Instant, Payload};
use crate::wire::mptcp::AddAddr;
use arrayvec::ArrayVec;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

/// Addresses announced per connection at most.
pub const MAX_ANNOUNCED: usize = 8;

/// An address this side announces with ADD_ADDR.
#[derive(Clone, Copy, Debug)]
pub(super) struct Announce {
    /// Its address id.
    pub id: u8,
    /// The address.
    pub addr: IpAddr,
    /// When it was last sent; `None` before the first time.
    pub sent_at: Option<Instant>,
    /// The peer echoed it.
    pub echoed: bool,
}

/// Most subflows of one connection (Linux's limit is 8 additional ones).
pub const MAX_SUBFLOWS: usize = 9;

/// A signal from the peer the stack reports as a monitor event when it settles the
/// connection (the hook that reads it does not know its subflow's addresses).
#[derive(Clone, Copy, Debug)]
pub(super) enum Note {
    /// The peer announced `addr` (port 0: none named) with id `id`.
    Announced { id: u8, addr: SocketAddr },
    /// The peer changed the priority of subflow `sf` (MP_PRIO).
    Prio { sf: ConnId },
}

/// Monitor events already reported for a connection (bits of [`Msk::reported`]).
pub(super) mod reported {
    /// CREATED.
    pub const CREATED: u8 = 1;
    /// ESTABLISHED.
    pub const ESTABLISHED: u8 = 2;
    /// CLOSED.
    pub const CLOSED: u8 = 4;
}

/// A connection's handle: slot and generation, so a stale handle finds nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MskId {
    pub(super) index: u32,
    pub(super) generation: u32,
}

/// Where a connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The first subflow's handshake is running.
    Connecting,
    /// Data may flow.
    Established,
    /// Both DATA_FINs were exchanged, or the connection was reset.
    Closed,
}

/// Our DATA_FIN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SendFin {
    /// The application has not closed, or data is still unmapped.
    None,
    /// Sent (on pure ACKs) at this DSN, not yet acknowledged.
    Sent(Dsn),
    /// Acknowledged by a DATA_ACK.
    Acked,
}

/// One subflow as the connection sees it.
#[derive(Clone, Copy, Debug)]
pub(super) struct SfEntry {
    /// The subflow's TCP connection.
    pub id: ConnId,
    /// MPTCP-established: it may carry data.
    pub established: bool,
    /// The peer asked us to use it as backup only (MP_JOIN B flag or MP_PRIO).
    pub backup: bool,
    /// Marked stale after `stale_loss_cnt` timeouts: not scheduled until it recovers.
    pub stale: bool,
    /// Joined (not the initial subflow).
    pub join: bool,
    /// The peer's address id of the subflow's remote address.
    pub remote_id: u8,
    /// Congestion window at the last scheduling pass (for coupled increases).
    pub cwnd: u32,
    /// Sender MSS at the last scheduling pass.
    pub mss: u32,
    /// Smoothed RTT at the last scheduling pass, microseconds.
    pub srtt_us: u32,
    /// Fractional coupled increases not applied yet.
    pub carry: Carry,
}

impl SfEntry {
    /// A subflow not established yet.
    pub fn new(id: ConnId, join: bool, backup: bool, remote_id: u8) -> Self {
        SfEntry {
            id,
            established: false,
            backup,
            stale: false,
            join,
            remote_id,
            cwnd: 0,
            mss: 0,
            srtt_us: 0,
            carry: Carry::default(),
        }
    }
}

/// One MPTCP connection.
pub struct Msk<S> {
    /// Where it stands.
    pub(super) phase: Phase,
    /// Addresses of the initial subflow.
    pub(super) local: SocketAddr,
    /// Remote address of the initial subflow.
    pub(super) remote: SocketAddr,
    /// Our key.
    pub(super) local_key: u64,
    /// Our token (names this connection in the peer's MP_JOINs).
    pub(super) local_token: u32,
    /// Our IDSN.
    pub(super) local_idsn: Dsn,
    /// The peer's key, 0 until known.
    pub(super) remote_key: u64,
    /// The peer's token.
    pub(super) remote_token: u32,
    /// The peer's IDSN.
    pub(super) remote_idsn: Dsn,
    /// HMAC states, once both keys are known.
    pub(super) keys: Option<ConnKeys>,
    /// DSS checksums in use.
    pub(super) csum: bool,
    /// Fell back to plain TCP: one subflow, bytes mapped one to one.
    pub(super) fallback: bool,
    /// The subflows.
    pub(super) subflows: ArrayVec<SfEntry, MAX_SUBFLOWS>,
    /// MP_JOIN handshakes accepted and not yet completed.
    pub(super) half_open_joins: u8,
    /// A join ever completed (infinite-mapping fallback is then impossible).
    pub(super) joined: bool,
    /// The scheduler and its state.
    pub(super) scheduler: Scheduler,

    /// Data not yet DATA_ACKed, contiguous from `snd_una`.
    pub(super) sendq: VecDeque<(Dsn, Payload<S>)>,
    /// Bytes in `sendq`.
    pub(super) send_queued: usize,
    /// Oldest DSN not DATA_ACKed.
    pub(super) snd_una: Dsn,
    /// Next DSN never mapped to a subflow.
    pub(super) snd_nxt: Dsn,
    /// Next DSN the application's data gets.
    pub(super) snd_end: Dsn,
    /// Reinjection: data from here up to `snd_nxt` is sent again on other subflows.
    pub(super) retrans_nxt: Option<Dsn>,
    /// The peer's window: DSNs before this may be sent.
    pub(super) wnd_end: Dsn,
    /// Our DATA_FIN.
    pub(super) fin: SendFin,
    /// The peer sent a 64-bit DSN: our DATA_ACKs are 64-bit too.
    pub(super) peer_dsn64: bool,
    /// The peer acknowledged data at the connection level at least once.
    pub(super) data_ack_seen: bool,

    /// Incoming data by DSN, once the peer's IDSN is known.
    pub(super) rcv: Option<Reassembly<S>>,
    /// Receive buffer, bytes.
    pub(super) recv_window: u32,
    /// Our addresses to announce, until echoed.
    pub(super) announce: ArrayVec<Announce, MAX_ANNOUNCED>,
    /// Address ids the peer removed (REMOVE_ADDR) whose subflows are still to reset.
    pub(super) removed_ids: ArrayVec<u8, 8>,
    /// Echoes owed for the peer's announcements.
    pub(super) echo_due: ArrayVec<AddAddr, 4>,
    /// Our address ids to withdraw with a REMOVE_ADDR on the next pure ACK.
    pub(super) rm_due: ArrayVec<u8, 8>,
    /// Every subflow must be flushed at the next settle (the timer asked for ACKs).
    pub(super) flush_all: bool,
    /// The window last given to the subflows (`None`: give it again, a subflow joined).
    pub(super) offered: Option<u32>,
    /// A subflow handed data over since the window was last given out: the subflows'
    /// budgets need a refresh even if the window stayed the same.
    pub(super) data_taken: bool,
    /// A subflow holds something for the next settle: an MP_FAIL to answer or its
    /// local address withdrawn (spares every settle a visit to every subflow).
    pub(super) sf_attention: bool,
    /// The peer's DATA_FIN was reported to the application.
    pub(super) peer_fin_reported: bool,

    /// The application closed its sending direction.
    pub(super) app_closed: bool,
    /// Events for the application.
    pub(super) events: Events,
    /// Queued in the stack's ready list.
    pub(super) ready: bool,
    /// Queued in the stack's to-do list.
    pub(super) dirty: bool,
    /// The connection-level retransmission timer.
    pub(super) timer_at: Option<Instant>,
    /// Timer expiries without DATA_ACK progress.
    pub(super) backoffs: u32,
    /// `snd_una` when the timer was armed (progress check).
    pub(super) timer_una: Dsn,
    /// Bytes reinjected.
    pub(super) reinjected_bytes: u64,
    /// Aborting with MP_FASTCLOSE: RSTs on its subflows carry the peer's key.
    pub(super) fastclose: bool,
    /// The peer aborted with MP_FASTCLOSE: every subflow left is reset.
    pub(super) peer_fastclose: bool,
    /// A subflow was reset or timed out (the connection did not end cleanly).
    pub(super) subflow_failed: bool,
    /// Connection events already reported ([`reported`] bits).
    pub(super) reported: u8,
    /// Peer signals to report as events (a few at most between two settles).
    pub(super) notes: ArrayVec<Note, 4>,
    /// Orphaned (its last subflow died while established): reset at this time unless
    /// a subflow joins first (`close_timeout`); or lingering (below).
    pub(super) orphan_until: Option<Instant>,
    /// Its subflows ended after everything was exchanged with the peer but before the
    /// reader took the last data: `orphan_until` is the time left to read it (no
    /// orphan, no path manager).
    pub(super) lingering: bool,
    /// The orphan deadline is on the timer wheel.
    pub(super) orphan_armed: bool,
    /// Accepted by a listener (not opened by the gateway).
    pub(super) passive: bool,
    /// Accepted by transparent listener `tag` on a foreign destination (`local` is the
    /// address the client asked for).
    pub(super) transparent: Option<u16>,
    /// Addresses the peer announced (ADD_ADDR, HMAC verified) and that were accepted
    /// for new subflows, at most `add_addr_accepted`.
    pub(super) peer_addrs: ArrayVec<PeerAddr, MAX_ANNOUNCED>,
    /// The peer's MP_CAPABLE had flag C: no new subflows to its initial address and
    /// port (RFC 8684 §3.1).
    pub(super) peer_deny_join_id0: bool,
    /// The path manager should look at the connection at the next settle (the peer
    /// announced an address, or the last subflow went).
    pub(super) pm_wake: bool,
    /// Queued for the path manager.
    pub(super) pm_queued: bool,
}

/// An address the peer announced, accepted for new subflows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    /// The peer's address id.
    pub id: u8,
    /// The address; port 0 when the announcement named none (the initial subflow's
    /// port applies).
    pub addr: SocketAddr,
}

impl<S: SharedBuf> Msk<S> {
    /// A connection whose first subflow runs between `local` and `remote`, with our
    /// key `local_key` (0 for a fallback connection that never speaks MPTCP).
    pub(super) fn new(
        local: SocketAddr,
        remote: SocketAddr,
        local_key: u64,
        scheduler: Scheduler,
        recv_window: u32,
    ) -> Self {
        // The key-derived fields are set by `set_local_key` below.
        let unset = Dsn::new(0);
        let mut m = Msk {
            phase: Phase::Connecting,
            local,
            remote,
            local_key: 0,
            local_token: 0,
            local_idsn: unset,
            remote_key: 0,
            remote_token: 0,
            remote_idsn: Dsn::new(0),
            keys: None,
            csum: false,
            fallback: false,
            subflows: ArrayVec::new(),
            half_open_joins: 0,
            joined: false,
            scheduler,
            sendq: VecDeque::new(),
            send_queued: 0,
            snd_una: unset,
            snd_nxt: unset,
            snd_end: unset,
            retrans_nxt: None,
            wnd_end: unset,
            fin: SendFin::None,
            peer_dsn64: false,
            data_ack_seen: false,
            rcv: None,
            recv_window,
            offered: None,
            data_taken: false,
            sf_attention: false,
            announce: ArrayVec::new(),
            echo_due: ArrayVec::new(),
            rm_due: ArrayVec::new(),
            removed_ids: ArrayVec::new(),
            flush_all: false,
            peer_fin_reported: false,
            app_closed: false,
            events: Events::NONE,
            ready: false,
            dirty: false,
            timer_at: None,
            backoffs: 0,
            timer_una: unset,
            reinjected_bytes: 0,
            fastclose: false,
            peer_fastclose: false,
            subflow_failed: false,
            reported: 0,
            notes: ArrayVec::new(),
            orphan_until: None,
            lingering: false,
            orphan_armed: false,
            passive: false,
            transparent: None,
            peer_addrs: ArrayVec::new(),
            peer_deny_join_id0: false,
            pm_wake: false,
            pm_queued: false,
        };
        m.set_local_key(local_key, derive(local_key));
        m
    }

    /// Records our key `key`, whose token and IDSN are `ids`: the send side starts at
    /// the IDSN + 1. Only for a connection that has sent nothing yet.
    pub(super) fn set_local_key(&mut self, key: u64, ids: KeyIds) {
        let start = ids.idsn + 1;
        self.local_key = key;
        self.local_token = ids.token;
        self.local_idsn = ids.idsn;
        self.snd_una = start;
        self.snd_nxt = start;
        self.snd_end = start;
        self.wnd_end = start;
        self.timer_una = start;
    }

    /// The peer announced `addr` with id `id` (HMAC verified): recorded for new
    /// subflows unless it is the initial subflow's address, already known, or
    /// `limit` (`add_addr_accepted`) addresses are (Linux's in-kernel path manager
    /// counts the same way). A peer that set flag C takes one announcement even with
    /// a limit of 0: it can only be joined at announced addresses (Linux's rule too).
    /// True when recorded.
    pub(super) fn peer_announced(&mut self, id: u8, addr: SocketAddr, limit: u8) -> bool {
        let limit = if self.peer_deny_join_id0 {
            limit.max(1)
        } else {
            limit
        };
        let known = addr.ip() == self.remote.ip()
            || self
                .peer_addrs
                .iter()
                .any(|a| a.id == id || a.addr.ip() == addr.ip());
        if known || self.peer_addrs.len() >= usize::from(limit) {
            return false;
        }
        let recorded = self.peer_addrs.try_push(PeerAddr { id, addr }).is_ok();
        self.pm_wake |= recorded;
        recorded
    }

    /// Records the peer's key: HMAC states, token, and the receive side starting at
    /// its IDSN + 1.
    pub(super) fn set_remote_key(&mut self, key: u64) {
        let ids = derive(key);
        self.remote_key = key;
        self.remote_token = ids.token;
        self.remote_idsn = ids.idsn;
        self.keys = Some(ConnKeys::new(self.local_key, key));
        self.start_receiving(ids.idsn + 1);
    }

    /// Starts the receive side at `start` (a fallback connection picks any start).
    pub(super) fn start_receiving(&mut self, start: Dsn) {
        // Out-of-order pieces are bounded by the memory held, not a small count: two
        // paths whose RTTs differ 25-fold keep most of a window out of order (Linux
        // bounds its out-of-order queue by memory too). One piece per KiB of the most
        // data held, twice the buffer (`Reassembly::advertised`).
        let max_ooo = (2 * self.recv_window as usize / 1024).clamp(256, 16_384);
        let limits = Limits {
            buffer: self.recv_window,
            max_ooo,
            max_pieces: 2 * max_ooo,
        };
        self.rcv = Some(Reassembly::new(start, limits));
    }

    /// Falls back to plain TCP on the one subflow.
    pub(super) fn fall_back(&mut self) {
        self.fallback = true;
        if self.rcv.is_none() {
            self.start_receiving(Dsn::new(0));
        }
    }

    /// True while the connection may still fall back to plain TCP by an infinite
    /// mapping (RFC 8684 §3.7): one subflow, no join ever, no data reinjected.
    pub(super) fn infinite_fallback_allowed(&self) -> bool {
        !self.fallback
            && !self.joined
            && self.half_open_joins == 0
            && self.subflows.len() <= 1
            && self.reinjected_bytes == 0
    }

    /// The DATA_ACK to send, once receiving.
    pub(super) fn data_ack(&self) -> Option<Dsn> {
        self.rcv.as_ref().map(Reassembly::rcv_nxt)
    }

    /// Records that a segment offered `window` bytes beyond the current DATA_ACK.
    pub(super) fn advertised(&mut self, window: u32) {
        if let Some(r) = self.rcv.as_mut() {
            r.advertised(window);
        }
    }

    /// Adds `ev` for the application.
    pub(super) fn notify(&mut self, ev: Events) {
        self.events |= ev;
    }

    /// A DATA_ACK `ack` with window `window` arrived: frees acknowledged data, moves
    /// the send window's right edge (never back). An ACK beyond what was sent is
    /// ignored.
    pub(super) fn on_data_ack(&mut self, ack: Dsn, window: u32) {
        let sent_end = match self.fin {
            SendFin::Sent(dsn) => dsn + 1,
            _ => self.snd_nxt,
        };
        if ack.after(sent_end) || ack.before(self.snd_una) {
            return;
        }
        self.data_ack_seen = true;
        self.wnd_end = self.wnd_end.latest(ack + u64::from(window));
        if ack == self.snd_una {
            return;
        }
        let data_end = ack.earliest(self.snd_end);
        while let Some((dsn, p)) = self.sendq.front_mut() {
            let end = *dsn + p.len() as u64;
            if end.before_eq(data_end) {
                self.send_queued -= p.len();
                self.sendq.pop_front();
            } else {
                if dsn.before(data_end) {
                    let cut = data_end.offset_from(*dsn) as usize;
                    p.advance(cut);
                    self.send_queued -= cut;
                    *dsn = data_end;
                }
                break;
            }
        }
        self.snd_una = data_end;
        if let SendFin::Sent(dsn) = self.fin {
            if ack.after(dsn) {
                self.fin = SendFin::Acked;
            }
        }
        if self.retrans_nxt.is_some_and(|r| r.before(self.snd_una)) {
            self.retrans_nxt = Some(self.snd_una);
        }
        self.backoffs = 0;
        self.notify(Events::WRITABLE);
    }

    /// The queued payload holding `dsn`, sliced to start there.
    pub(super) fn payload_at(&self, dsn: Dsn) -> Option<Payload<S>> {
        let i = self
            .sendq
            .partition_point(|(d, p)| (*d + p.len() as u64).before_eq(dsn));
        let (d, p) = self.sendq.get(i)?;
        let off = dsn.offset_from(*d) as usize;
        (off < p.len()).then(|| {
            let mut q = p.clone();
            q.advance(off);
            q
        })
    }

    /// Reinjects everything not yet DATA_ACKed (a subflow died or went stale).
    pub(super) fn reinject_all(&mut self) {
        if self.snd_una.before(self.snd_nxt) {
            self.retrans_nxt = Some(self.snd_una);
        }
    }

    /// The next ADD_ADDR due at `now` (never sent, or unechoed for `timeout`).
    pub(super) fn announce_due(&self, now: Instant, timeout: std::time::Duration) -> Option<usize> {
        self.announce
            .iter()
            .position(|a| !a.echoed && a.sent_at.is_none_or(|t| now.since(t) >= timeout))
    }

    /// When the next ADD_ADDR retransmission falls due, if any is unechoed.
    pub(super) fn announce_deadline(&self, timeout: std::time::Duration) -> Option<Instant> {
        self.announce
            .iter()
            .filter(|a| !a.echoed)
            .filter_map(|a| a.sent_at.map(|t| t + timeout))
            .min()
    }

    /// The peer aborted the connection with MP_FASTCLOSE carrying our key.
    pub(super) fn on_peer_fastclose(&mut self) {
        self.phase = Phase::Closed;
        self.peer_fastclose = true;
        self.notify(Events::RESET);
    }

    /// True when the subflow `id` belongs to this connection.
    pub(super) fn entry_mut(&mut self, id: ConnId) -> Option<&mut SfEntry> {
        self.subflows.iter_mut().find(|e| e.id == id)
    }
}
