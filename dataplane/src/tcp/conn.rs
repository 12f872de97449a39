//! One TCP connection as a sans-I/O state machine (RFC 9293 §3.10).
//!
//! Input: parsed segments ([`Connection::on_segment`]), timer expiries
//! ([`Connection::on_timer`], due at [`Connection::poll_at`]) and application calls
//! (`send`, `recv`, `close`, `abort`), each with the current [`Instant`]. Output:
//! segment descriptions written to a [`super::SegmentSink`] by [`Connection::flush`] (which the
//! segment and timer entry points call themselves) and [`Events`].
//!
//! Design notes:
//! - The scoreboard ([`SendQueue`]) keeps one entry per transmitted segment, so RFC 6675
//!   loss marking, RACK-free tail-loss probes and Karn's rule work per segment. Without
//!   SACK, NewReno recovery (RFC 6582) uses the same machinery: the first unacknowledged
//!   segment is marked lost on entry and on every partial ACK, and each duplicate ACK
//!   counts one segment out of `pipe`.
//! - The advertised right edge never moves left: `rcv_adv` is the furthest edge ever
//!   promised and the acceptability test uses it; the window field is that edge rounded
//!   down to the scale unit (RFC 7323 §2.4 allows the rounding).
//! - Challenge ACKs (RFC 5961) are rate-limited per connection, not per host as in
//!   Linux: a per-core engine has no cheap global, and a per-connection limit bounds
//!   the same amplification.
//! - A segment never spans two queued payloads: coalescing would copy. Small writes
//!   therefore make small segments (the relay writes whole received payloads).

use super::cc::CongestionControl;
use super::config::{Config, DEFAULT_MSS_V4, DEFAULT_MSS_V6, MAX_WINDOW_SCALE, MIN_MSS};
use super::hook::{Delivery, Hook, HookSink, NoHook, Verdict};
use super::payload::Payload;
use super::reassembly::Reassembly;
use super::rtt::RttEstimator;
use super::segment::{FourTuple, PathTx, SegOptions, SegmentIn, SegmentMeta, SegmentOut};
use super::send_queue::{SendQueue, Sent, DUP_THRESH};
use super::state::{Events, State};
use super::time::{earliest, Instant};
use crate::port::SharedBuf;
use crate::seq::TcpSeq;
use crate::wire::tcp::{OptionsBuf, TcpFlags};
use arrayvec::ArrayVec;
use std::collections::VecDeque;
use std::time::Duration;

/// Timestamps older than this no longer protect against wrapped sequence numbers
/// (RFC 7323 §5.5: 24 days).
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);
/// Floor of the tail-loss probe timeout.
const TLP_MIN: Duration = Duration::from_millis(10);
/// Extra probe delay when a single segment is in flight (the peer may delay its ACK).
const TLP_DELACK: Duration = Duration::from_millis(200);
/// What a held payload costs at least, whatever its length: each pins a whole packet
/// buffer. Tiny in-order segments past `recv_budget` of such overhead are dropped (the
/// peer retransmits them), as Linux drops past `rcvbuf` counted in `truesize`;
/// otherwise one-byte segments would pin a buffer per byte of the window.
const PAYLOAD_MIN_CHARGE: usize = 512;

/// Counters of one connection. `copied_bytes` counts payload bytes copied; no data
/// path copies, so it stays 0 (it is here to prove it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Segments received.
    pub segs_in: u64,
    /// Segments sent.
    pub segs_out: u64,
    /// Segments retransmitted (any cause).
    pub retransmits: u64,
    /// Fast-recovery episodes.
    pub fast_recoveries: u64,
    /// Retransmission timeouts.
    pub timeouts: u64,
    /// Tail-loss probes sent.
    pub tail_loss_probes: u64,
    /// Zero-window probes sent.
    pub zero_window_probes: u64,
    /// Keepalive probes sent.
    pub keepalive_probes: u64,
    /// Challenge ACKs sent (RFC 5961).
    pub challenge_acks: u64,
    /// Challenge ACKs suppressed by the rate limit.
    pub challenge_acks_limited: u64,
    /// Segments dropped by PAWS.
    pub paws_drops: u64,
    /// Segments outside the receive window.
    pub unacceptable: u64,
    /// Payload bytes received again (already acknowledged).
    pub duplicate_bytes: u64,
    /// Segments dropped for lack of room: out of order, or tiny in-order ones past the
    /// buffer-overhead cap (bytes in `ooo_dropped_bytes`).
    pub ooo_dropped_segs: u64,
    /// Bytes of the segments counted in `ooo_dropped_segs`.
    pub ooo_dropped_bytes: u64,
    /// Payload bytes copied (always 0: every data path is zero-copy).
    pub copied_bytes: u64,
}

/// What the retransmission-family timer is armed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RtxKind {
    /// SYN or SYN-ACK retransmission.
    Syn,
    /// Data retransmission timeout.
    Rto,
    /// Tail-loss probe.
    Tlp,
    /// Zero-window probe.
    Persist,
}

/// A TCP connection. `S` is the shared buffer payloads live in, `H` the hook (MPTCP
/// subflow logic; [`NoHook`] for plain TCP).
pub struct Connection<S, H = NoHook> {
    /// Addresses, fixed for the connection's life.
    tuple: FourTuple,
    /// Settings, copied at creation.
    cfg: Config,
    /// RFC 9293 state; `Closed` means every queue and timer is empty.
    state: State,
    /// The extension (MPTCP subflow logic).
    hook: H,
    /// Events not yet taken.
    events: Events,
    /// Counters.
    stats: ConnStats,

    /// Our initial sequence number.
    iss: TcpSeq,
    /// Oldest unacknowledged sequence number.
    snd_una: TcpSeq,
    /// Next new sequence number to send; `snd_una ≤ snd_nxt`.
    snd_nxt: TcpSeq,
    /// Peer's receive window, bytes (scaled).
    snd_wnd: u32,
    /// Largest window the peer ever offered (RFC 5961 ACK check).
    max_snd_wnd: u32,
    /// Segment sequence of the last window update.
    snd_wl1: TcpSeq,
    /// Segment acknowledgement of the last window update.
    snd_wl2: TcpSeq,
    /// Peer's window scale shift (0 without the option).
    snd_wscale: u8,
    /// Largest payload plus options we put in a segment: min(peer MSS, our MSS).
    snd_mss: u32,
    /// Unsent data and the scoreboard of `[snd_una, snd_nxt)`.
    sendq: SendQueue<S>,
    /// The application closed: a FIN follows the queued data.
    fin_queued: bool,
    /// Our FIN has been sent (it is the last sequence number, `snd_nxt - 1`).
    fin_sent: bool,

    /// Peer's initial sequence number.
    irs: TcpSeq,
    /// Next sequence number expected from the peer.
    rcv_nxt: TcpSeq,
    /// Furthest right edge ever advertised; never moves left.
    rcv_adv: TcpSeq,
    /// `rcv_nxt` when the window was last advertised (Linux `rcv_wup`): the peer's
    /// view of our window starts there, so its pure ACKs may carry a sequence number
    /// back to it (see [`Connection::ack_seq`]).
    rcv_wup: TcpSeq,
    /// Our window scale shift (0 without the option).
    rcv_wscale: u8,
    /// Window last advertised, bytes (for window-update decisions).
    last_adv_wnd: u32,
    /// Receive budget set by the relay, bytes.
    recv_budget: u32,
    /// Severe memory pressure: received payload is dropped, ACKs still count.
    shed: bool,
    /// In-order data not yet taken by the application.
    delivered: VecDeque<Payload<S>>,
    /// Sum of `delivered` lengths.
    delivered_bytes: usize,
    /// Bytes the hook took since the budget was last set: the budget is what may
    /// arrive beyond `rcv_nxt` as of that moment, so what was taken since counts
    /// against it (else the window's right edge would run ahead of the hook's buffer).
    taken_since_budget: usize,
    /// Sum over `delivered` of what each payload costs beyond its length (see
    /// [`PAYLOAD_MIN_CHARGE`]).
    delivered_overhead: usize,
    /// Data received beyond `rcv_nxt`, within `rcv_adv`.
    ooo: Reassembly<S>,
    /// Sequence number of a FIN that arrived out of order.
    ooo_fin: Option<TcpSeq>,
    /// Duplicate data to report in the next ACK's first SACK block (RFC 2883).
    dsack: Option<(TcpSeq, TcpSeq)>,

    /// SACK negotiated.
    sack_ok: bool,
    /// Timestamps negotiated.
    ts_ok: bool,
    /// TS.Recent (RFC 7323 §4.3).
    ts_recent: u32,
    /// When `ts_recent` was last updated.
    ts_recent_at: Instant,
    /// Per-connection offset added to our timestamp clock (RFC 7323 §5.4).
    ts_offset: u32,

    /// RTT estimate and RTO.
    rtt: RttEstimator,
    /// Congestion window.
    cc: CongestionControl,
    /// `recover` of RFC 6582 while recovering from a loss (fast or after a timeout).
    recovery: Option<TcpSeq>,
    /// The current recovery started with a timeout: the window slow-starts meanwhile.
    after_rto: bool,
    /// Duplicate ACKs since the last ACK of new data.
    dupacks: u32,
    /// When new data was last sent (restart after idle, RFC 5681 §4.1).
    last_data_at: Option<Instant>,
    /// A tail-loss probe was sent and no ACK of new data came since.
    tlp_out: bool,
    /// Fast retransmit: the first lost segment goes out whatever `pipe` says (RFC 6675
    /// §5 step 4.2, RFC 6582 §3.2 step 2).
    fast_rtx: bool,
    /// The retransmission-family timer.
    rtx_timer: Option<(Instant, RtxKind)>,
    /// When the first SYN (or SYN-ACK) left, for the handshake RTT sample.
    syn_sent_at: Option<Instant>,
    /// A SYN or SYN-ACK must be (re)sent by the next flush.
    send_syn: bool,
    /// Delayed-ACK deadline.
    delack_at: Option<Instant>,
    /// Full in-order segments received since our last ACK.
    ack_pending: u32,
    /// An ACK must go out by the end of this call.
    ack_now: bool,
    /// The every-second-segment ACK is owed: it goes out at the end of the receive
    /// burst ([`Connection::release_owed_ack`]), one for all the burst brought, unless
    /// a segment we send before carries it.
    ack_owed: bool,
    /// Next keepalive event.
    keepalive_at: Option<Instant>,
    /// Unanswered keepalive probes.
    keepalive_sent: u8,
    /// End of TIME_WAIT.
    time_wait_until: Option<Instant>,
    /// Start of the current challenge-ACK second.
    challenge_epoch: Instant,
    /// Challenge ACKs sent this second.
    challenge_count: u32,
}

impl<S: SharedBuf, H: Hook<S>> Connection<S, H> {
    fn new(
        cfg: &Config,
        tuple: FourTuple,
        iss: TcpSeq,
        ts_offset: u32,
        hook: H,
        now: Instant,
    ) -> Self {
        let cfg = cfg.for_family(tuple.is_ipv6());
        let mss = u32::from(cfg.mss.max(MIN_MSS));
        let rtt = RttEstimator::new(cfg.rto_initial, cfg.rto_min, cfg.rto_max);
        let cc = CongestionControl::new(cfg.cc, mss, cfg.initial_cwnd);
        Connection {
            tuple,
            state: State::Closed,
            hook,
            events: Events::NONE,
            stats: ConnStats::default(),
            iss,
            snd_una: iss,
            snd_nxt: iss + 1,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: TcpSeq::default(),
            snd_wl2: iss,
            snd_wscale: 0,
            snd_mss: mss,
            sendq: SendQueue::default(),
            fin_queued: false,
            fin_sent: false,
            irs: TcpSeq::default(),
            rcv_nxt: TcpSeq::default(),
            rcv_adv: TcpSeq::default(),
            rcv_wup: TcpSeq::default(),
            rcv_wscale: 0,
            last_adv_wnd: 0,
            recv_budget: cfg.recv_budget,
            shed: false,
            delivered: VecDeque::new(),
            delivered_bytes: 0,
            taken_since_budget: 0,
            delivered_overhead: 0,
            ooo: Reassembly::new(cfg.max_ooo_segments, cfg.recv_budget as usize),
            ooo_fin: None,
            dsack: None,
            sack_ok: false,
            ts_ok: false,
            ts_recent: 0,
            ts_recent_at: now,
            ts_offset,
            rtt,
            cc,
            recovery: None,
            after_rto: false,
            dupacks: 0,
            last_data_at: None,
            tlp_out: false,
            fast_rtx: false,
            rtx_timer: None,
            syn_sent_at: None,
            send_syn: true,
            delack_at: None,
            ack_pending: 0,
            ack_now: false,
            ack_owed: false,
            keepalive_at: None,
            keepalive_sent: 0,
            time_wait_until: None,
            challenge_epoch: now,
            challenge_count: 0,
            // Last: the fields above read it before it moves in.
            cfg,
        }
    }

    /// Active open: a connection in SYN-SENT whose SYN goes out on the first
    /// [`Connection::flush`]. `iss` comes from [`super::Secrets::isn`].
    pub fn connect(
        cfg: &Config,
        tuple: FourTuple,
        iss: TcpSeq,
        ts_offset: u32,
        hook: H,
        now: Instant,
    ) -> Self {
        let mut c = Self::new(cfg, tuple, iss, ts_offset, hook, now);
        c.state = State::SynSent;
        c
    }

    /// Passive open from a listener's SYN: a connection in SYN-RECEIVED whose SYN-ACK
    /// goes out on the first [`Connection::flush`]. The hook already saw the SYN's
    /// options in [`Hook::accept`].
    pub fn accept(
        cfg: &Config,
        tuple: FourTuple,
        syn: &SegmentIn<S>,
        iss: TcpSeq,
        ts_offset: u32,
        hook: H,
        now: Instant,
    ) -> Self {
        let mut c = Self::new(cfg, tuple, iss, ts_offset, hook, now);
        c.state = State::SynReceived;
        c.take_syn(syn, now);
        c
    }

    /// An established connection rebuilt from a SYN cookie's final ACK: `syn_opts`
    /// carries what the cookie encoded (MSS, window scale, SACK, timestamps).
    pub fn from_cookie(
        cfg: &Config,
        tuple: FourTuple,
        ack: &SegmentIn<S>,
        syn_opts: &SegOptions,
        ts_offset: u32,
        hook: H,
        now: Instant,
    ) -> Self {
        let iss = ack.ack - 1;
        let mut c = Self::new(cfg, tuple, iss, ts_offset, hook, now);
        c.irs = ack.seq - 1;
        c.rcv_nxt = ack.seq;
        c.negotiate(syn_opts);
        c.ts_ok &= ack.options.timestamps.is_some();
        if let Some((tsval, _)) = ack.options.timestamps {
            c.ts_recent = tsval;
        }
        c.rcv_adv = c.rcv_nxt + c.rcv_window();
        c.rcv_wup = c.rcv_nxt;
        c.snd_una = ack.ack;
        c.snd_nxt = ack.ack;
        c.snd_wnd = u32::from(ack.window) << c.snd_wscale;
        c.max_snd_wnd = c.snd_wnd;
        (c.snd_wl1, c.snd_wl2) = (ack.seq, ack.ack);
        c.send_syn = false;
        c.state = State::Established;
        c.events |= Events::CONNECTED;
        c.arm_keepalive(now);
        c
    }

    /// The 4-tuple.
    pub fn tuple(&self) -> &FourTuple {
        &self.tuple
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// When our first SYN or SYN-ACK went out (`None` for a connection made from a SYN
    /// cookie): where its handshake time starts.
    pub fn handshake_started(&self) -> Option<Instant> {
        self.syn_sent_at
    }

    /// Counters.
    pub fn stats(&self) -> ConnStats {
        ConnStats {
            ooo_dropped_segs: self.ooo.dropped_segs,
            ooo_dropped_bytes: self.ooo.dropped_bytes,
            ..self.stats
        }
    }

    /// The hook.
    pub fn hook(&self) -> &H {
        &self.hook
    }

    /// The hook, writable.
    pub fn hook_mut(&mut self) -> &mut H {
        &mut self.hook
    }

    /// Congestion window, bytes.
    pub fn cwnd(&self) -> u32 {
        self.cc.cwnd()
    }

    /// Current RTO.
    pub fn rto(&self) -> Duration {
        self.rtt.rto()
    }

    /// Sender MSS (payload plus options per segment).
    pub fn mss(&self) -> u32 {
        self.snd_mss
    }

    /// Our initial sequence number.
    pub fn iss(&self) -> TcpSeq {
        self.iss
    }

    /// Peer's initial sequence number.
    pub fn irs(&self) -> TcpSeq {
        self.irs
    }

    /// The peer's window scale shift and ours (0 when not negotiated).
    pub fn window_scales(&self) -> (u8, u8) {
        (self.snd_wscale, self.rcv_wscale)
    }

    /// Whether SACK and timestamps were negotiated.
    pub fn sack_and_timestamps(&self) -> (bool, bool) {
        (self.sack_ok, self.ts_ok)
    }

    /// Smoothed RTT, `None` before the first sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }

    /// Oldest unacknowledged sequence number.
    pub fn snd_una(&self) -> TcpSeq {
        self.snd_una
    }

    /// Next sequence number expected from the peer.
    pub fn rcv_nxt(&self) -> TcpSeq {
        self.rcv_nxt
    }

    /// Bytes sent and not yet acknowledged.
    pub fn flight_bytes(&self) -> u32 {
        self.sendq.flight_bytes()
    }

    /// Bytes new data may take now: the free congestion window within the peer's
    /// window, less what is queued and not sent yet.
    pub fn send_room(&self) -> u32 {
        let wnd_end = self.snd_una + self.snd_wnd;
        let usable = if wnd_end.after(self.snd_nxt) {
            wnd_end.offset_from(self.snd_nxt)
        } else {
            0
        };
        let cwnd_room = self.cc.cwnd().saturating_sub(self.pipe());
        usable
            .min(cwnd_room)
            .saturating_sub(self.sendq.unsent_bytes() as u32)
    }

    /// The sequence number the next byte given to [`Connection::send`] will have.
    pub fn send_seq_end(&self) -> TcpSeq {
        self.snd_nxt + self.sendq.unsent_bytes() as u32
    }

    /// Retransmission timeouts in a row without progress (0 after any new ACK).
    pub fn backoffs(&self) -> u32 {
        self.rtt.backoffs()
    }

    /// Asks for an ACK on the next [`Connection::flush`] (to carry new hook options).
    pub fn ack_soon(&mut self) {
        if self.state.is_synchronized() {
            self.ack_now = true;
        }
    }

    /// True when events are waiting for [`Connection::take_events`].
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Takes the events that happened since the last call.
    pub fn take_events(&mut self) -> Events {
        std::mem::take(&mut self.events)
    }

    /// The every-second-segment ACK is owed (see [`Connection::release_owed_ack`]).
    pub fn ack_owed(&self) -> bool {
        self.ack_owed
    }

    /// Sends the owed ACK, if a segment sent since did not carry it: the driver
    /// calls this (through [`crate::tcp::Table::on_timers`]) once per receive burst,
    /// so a burst of in-order segments costs the peer one ACK, as Linux's ACK per GRO
    /// packet does, instead of one per two segments.
    pub fn release_owed_ack(&mut self, now: Instant, out: &mut impl HookSink<S, H::Ctx>) {
        if std::mem::take(&mut self.ack_owed) {
            self.ack_now = true;
            self.flush(now, out);
        }
    }

    /// When [`Connection::on_timer`] must run next, `None` for never.
    pub fn poll_at(&self) -> Option<Instant> {
        let t = earliest(self.time_wait_until, self.delack_at);
        let t = earliest(t, self.rtx_timer.map(|(t, _)| t));
        earliest(t, self.keepalive_at)
    }

    /// A TIME-WAIT connection accepts a new SYN for its 4-tuple (RFC 9293 §3.10.7.4
    /// with RFC 6191): the SYN's timestamp is newer, or without timestamps its sequence
    /// number is beyond what this incarnation received.
    pub fn time_wait_accepts(&self, syn: &SegmentIn<S>) -> bool {
        if self.state != State::TimeWait {
            return false;
        }
        match (self.ts_ok, syn.options.timestamps) {
            (true, Some((tsval, _))) => tsval.wrapping_sub(self.ts_recent) as i32 > 0,
            _ => syn.seq.after(self.rcv_nxt),
        }
    }

    // ----- application interface -------------------------------------------------

    /// Bytes `send` still accepts.
    pub fn send_space(&self) -> usize {
        let used = self.sendq.unsent_bytes() + self.sendq.flight_bytes() as usize;
        (self.cfg.send_budget as usize).saturating_sub(used)
    }

    /// Queues `p` for sending (zero-copy: the reference is kept until acknowledged).
    /// Gives it back when the connection no longer sends or the send budget is full.
    /// Call [`Connection::flush`] to transmit.
    pub fn send(&mut self, p: Payload<S>) -> Result<(), Payload<S>> {
        if !self.state.sends_data() || self.fin_queued || p.len() > self.send_space() {
            return Err(p);
        }
        self.sendq.push(p);
        Ok(())
    }

    /// Takes the next in-order payload. May open the window: call
    /// [`Connection::flush`] afterwards so a window update goes out.
    pub fn recv(&mut self) -> Option<Payload<S>> {
        let p = self.delivered.pop_front()?;
        self.delivered_bytes -= p.len();
        self.delivered_overhead -= PAYLOAD_MIN_CHARGE.saturating_sub(p.len());
        self.consider_window_update();
        Some(p)
    }

    /// Length of the payload [`Connection::recv`] would return next.
    pub fn peek_recv_len(&self) -> Option<usize> {
        self.delivered.front().map(Payload::len)
    }

    /// Bytes of in-order data waiting in [`Connection::recv`].
    pub fn recv_queued(&self) -> usize {
        self.delivered_bytes
    }

    /// Under severe memory pressure, drops the out-of-order payload received (the
    /// segments' acknowledgements, windows and options still count), as Linux drops
    /// data it cannot charge to `tcp_mem` once its out-of-order queue is pruned.
    pub fn set_shedding(&mut self, on: bool) {
        self.shed = on;
    }

    /// Sets the receive budget (the relay's backpressure): what may arrive beyond
    /// `rcv_nxt` from now on. The window follows it, but the right edge already
    /// advertised is kept. True when the window opened enough that an ACK is due.
    pub fn set_recv_budget(&mut self, bytes: u32) -> bool {
        self.recv_budget = bytes;
        self.taken_since_budget = 0;
        self.consider_window_update();
        self.ack_now
    }

    /// True when the hook took data since the budget was last set.
    pub fn took_since_budget(&self) -> bool {
        self.taken_since_budget > 0
    }

    /// Closes our sending direction: a FIN follows the queued data (half-close; the
    /// peer may keep sending until it closes too).
    pub fn close(&mut self) {
        match self.state {
            State::SynSent if self.sendq.unsent_bytes() == 0 => self.terminate(Events::CLOSED),
            // The FIN waits for the handshake (RFC 9293 §3.10.4); `establish` moves on.
            State::SynSent | State::SynReceived => self.fin_queued = true,
            State::Established => {
                self.fin_queued = true;
                self.state = State::FinWait1;
            }
            State::CloseWait => {
                self.fin_queued = true;
                self.state = State::LastAck;
            }
            _ => {}
        }
    }

    /// Aborts: sends a RST when synchronised and drops all state.
    pub fn abort(&mut self, out: &mut impl HookSink<S, H::Ctx>) {
        if self.state.is_synchronized() || self.state == State::SynReceived {
            self.send_rst(self.snd_nxt, out);
        }
        self.terminate(Events::CLOSED);
    }

    // ----- input ----------------------------------------------------------------

    /// Processes one incoming segment for this connection, then flushes. The segment
    /// is passed by reference (it is over a hundred bytes: moving it through the call
    /// levels cost more than the reading); its payload is taken out.
    pub fn on_segment(
        &mut self,
        seg: &mut SegmentIn<S>,
        now: Instant,
        out: &mut impl HookSink<S, H::Ctx>,
    ) {
        self.stats.segs_in += 1;
        match self.state {
            State::Closed => return,
            State::SynSent => self.on_segment_syn_sent(seg, now, out),
            _ => self.on_segment_synchronized(seg, now, out),
        }
        self.flush(now, out);
    }

    fn on_segment_syn_sent(
        &mut self,
        seg: &SegmentIn<S>,
        now: Instant,
        out: &mut impl HookSink<S, H::Ctx>,
    ) {
        let f = seg.flags;
        if f.contains(TcpFlags::ACK) && (seg.ack.before_eq(self.iss) || seg.ack.after(self.snd_nxt))
        {
            if !f.contains(TcpFlags::RST) {
                self.send_rst(seg.ack, out);
            }
            return;
        }
        if f.contains(TcpFlags::RST) {
            if f.contains(TcpFlags::ACK) {
                out.with_ctx(|ctx| self.hook.on_reset(ctx, &seg.raw_options));
                self.terminate(Events::RESET);
            }
            return;
        }
        if !f.contains(TcpFlags::SYN) {
            return;
        }
        let meta = self.take_syn(seg, now);
        let verdict = out.with_ctx(|ctx| self.hook.on_options(ctx, &seg.raw_options, &meta));
        if verdict == Verdict::Reset {
            if f.contains(TcpFlags::ACK) {
                self.send_rst(seg.ack, out);
            }
            self.terminate(Events::RESET);
            return;
        }
        if f.contains(TcpFlags::ACK) {
            self.establish(seg, now);
            self.ack_now = true;
        } else {
            // Simultaneous open: SYN-ACK with our original ISS.
            self.state = State::SynReceived;
            self.send_syn = true;
            self.rtx_timer = None;
        }
    }

    fn on_segment_synchronized(
        &mut self,
        seg: &mut SegmentIn<S>,
        now: Instant,
        out: &mut impl HookSink<S, H::Ctx>,
    ) {
        let f = seg.flags;
        let rst = f.contains(TcpFlags::RST);
        if self.paws_rejects(seg, now) {
            self.stats.paws_drops += 1;
            self.ack_now = true;
            return;
        }
        if self.state == State::SynReceived && f.contains(TcpFlags::SYN) && seg.seq == self.irs {
            if f.contains(TcpFlags::ACK) && !rst && seg.ack == self.snd_nxt {
                // Simultaneous open: the peer's SYN-ACK acknowledges our SYN (Linux
                // passes it too); answering with another SYN-ACK would ping-pong forever.
                self.establish(seg, now);
                self.ack_now = true;
                return;
            }
            // The peer did not get our SYN-ACK.
            self.send_syn = true;
            return;
        }
        if !self.acceptable(seg) {
            let zero_window_probe = self.rcv_window_now() == 0 && seg.seq == self.rcv_nxt;
            if rst || !zero_window_probe {
                if !rst {
                    self.stats.unacceptable += 1;
                    self.ack_now = true;
                    if self.state == State::TimeWait && f.contains(TcpFlags::FIN) {
                        // A retransmitted FIN: re-ACK and restart 2 MSL (RFC 9293 §3.10.7.4).
                        self.time_wait_until = Some(now + self.cfg.time_wait);
                    }
                }
                return;
            }
            // RFC 9293 §3.10.7.4: with a zero window, still take the ACK. A bare FIN
            // needs no buffer and is taken too (as Linux does): refusing it would make
            // a peer that sends FIN into a zero window time out while we ACK it.
            if seg.data_len() > 0 {
                seg.flags = TcpFlags(seg.flags.0 & !TcpFlags::FIN.0);
            }
            seg.payload = None;
            self.ack_now = true;
        }
        if rst {
            if seg.seq == self.rcv_nxt && self.state == State::TimeWait {
                // Both directions already finished: the peer forgot the connection
                // first (Linux, `tcp_rfc1337` = 0). A normal end, not a reset.
                self.terminate(Events::CLOSED);
            } else if seg.seq == self.rcv_nxt {
                out.with_ctx(|ctx| self.hook.on_reset(ctx, &seg.raw_options));
                self.terminate(Events::RESET);
            } else {
                self.challenge_ack(now);
            }
            return;
        }
        if f.contains(TcpFlags::SYN) {
            self.challenge_ack(now);
            return;
        }
        if !f.contains(TcpFlags::ACK) {
            return;
        }
        // Only acceptable segments prove the peer alive.
        self.arm_keepalive(now);
        if self.state == State::SynReceived {
            if !(seg.ack.after(self.snd_una) && seg.ack.before_eq(self.snd_nxt)) {
                self.send_rst(seg.ack, out);
                return;
            }
            self.establish(seg, now);
        }
        self.update_ts_recent(seg, now);
        let meta = SegmentMeta {
            seq: seg.seq,
            ack: seg.ack,
            flags: seg.flags,
            data_len: seg.data_len(),
            window: u32::from(seg.window) << self.snd_wscale,
        };
        match out.with_ctx(|ctx| self.hook.on_options(ctx, &seg.raw_options, &meta)) {
            Verdict::Continue => {}
            Verdict::AckNow => self.ack_now = true,
            Verdict::AckBurst => self.ack_owed = true,
            Verdict::Reset => {
                self.abort(out);
                self.events |= Events::RESET;
                return;
            }
        }
        if !self.process_ack(seg, now, out) || self.state == State::Closed {
            return;
        }
        if self.state == State::TimeWait {
            if f.contains(TcpFlags::FIN) {
                self.ack_now = true;
                self.time_wait_until = Some(now + self.cfg.time_wait);
            }
            return;
        }
        self.process_data(seg, now, out);
    }

    /// Records the peer's SYN (or SYN-ACK): initial sequence and negotiated options.
    /// Returns what the hook is shown with its options.
    fn take_syn(&mut self, syn: &SegmentIn<S>, now: Instant) -> SegmentMeta {
        self.irs = syn.seq;
        self.rcv_nxt = syn.seq + 1;
        self.rcv_wup = self.rcv_nxt;
        self.negotiate(&syn.options);
        if let Some((tsval, _)) = syn.options.timestamps {
            self.ts_recent = tsval;
            self.ts_recent_at = now;
        }
        // The window of a SYN is never scaled (RFC 7323 §2.2).
        self.snd_wnd = u32::from(syn.window);
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = syn.seq;
        self.rcv_adv = self.rcv_nxt + self.rcv_window().min(u32::from(u16::MAX));
        SegmentMeta {
            seq: syn.seq,
            ack: syn.ack,
            flags: syn.flags,
            data_len: syn.data_len(),
            window: u32::from(syn.window),
        }
    }

    /// Settles MSS, window scaling, SACK and timestamps from the peer's SYN options.
    fn negotiate(&mut self, o: &SegOptions) {
        let default_mss = if self.tuple.is_ipv6() {
            DEFAULT_MSS_V6
        } else {
            DEFAULT_MSS_V4
        };
        let peer_mss = o.mss.unwrap_or(default_mss).max(MIN_MSS);
        self.snd_mss = u32::from(peer_mss.min(self.cfg.mss.max(MIN_MSS)));
        self.cc.set_mss(self.snd_mss);
        match o.window_scale {
            Some(s) if self.cfg.window_scale > 0 => {
                self.snd_wscale = s.min(MAX_WINDOW_SCALE);
                self.rcv_wscale = self.cfg.window_scale.min(MAX_WINDOW_SCALE);
            }
            _ => (self.snd_wscale, self.rcv_wscale) = (0, 0),
        }
        self.sack_ok = self.cfg.sack && o.sack_permitted;
        self.ts_ok = self.cfg.timestamps && o.timestamps.is_some();
    }

    /// The handshake completed (SYN-SENT or SYN-RECEIVED → ESTABLISHED).
    fn establish(&mut self, seg: &SegmentIn<S>, now: Instant) {
        self.state = State::Established;
        self.snd_una = seg.ack;
        self.events |= Events::CONNECTED;
        if let (Some(at), 0) = (self.syn_sent_at, self.rtt.backoffs()) {
            self.rtt.sample(now.since(at));
        }
        self.rtt.reset_backoff();
        self.rtx_timer = None;
        self.snd_wnd = u32::from(seg.window) << self.snd_wscale;
        if seg.flags.contains(TcpFlags::SYN) {
            self.snd_wnd = u32::from(seg.window);
        }
        self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
        (self.snd_wl1, self.snd_wl2) = (seg.seq, seg.ack);
        if self.fin_queued {
            self.state = State::FinWait1;
        }
        self.arm_keepalive(now);
    }

    fn paws_rejects(&self, seg: &SegmentIn<S>, now: Instant) -> bool {
        if !self.ts_ok || seg.flags.contains(TcpFlags::RST) {
            return false;
        }
        match seg.options.timestamps {
            Some((tsval, _)) => {
                (tsval.wrapping_sub(self.ts_recent) as i32) < 0
                    && now.since(self.ts_recent_at) < PAWS_IDLE
            }
            None => false,
        }
    }

    fn update_ts_recent(&mut self, seg: &SegmentIn<S>, now: Instant) {
        if let (true, Some((tsval, _))) = (self.ts_ok, seg.options.timestamps) {
            if seg.seq.before_eq(self.rcv_nxt) && tsval.wrapping_sub(self.ts_recent) as i32 >= 0 {
                self.ts_recent = tsval;
                self.ts_recent_at = now;
            }
        }
    }

    /// Receive window the acceptability test uses: up to the furthest edge advertised.
    fn rcv_window_now(&self) -> u32 {
        if self.rcv_adv.after(self.rcv_nxt) {
            self.rcv_adv.offset_from(self.rcv_nxt)
        } else {
            0
        }
    }

    /// RFC 9293 §3.10.7.4's four cases.
    fn acceptable(&self, seg: &SegmentIn<S>) -> bool {
        let wnd = self.rcv_window_now();
        let len = seg.seg_len();
        let starts_in = seg.seq.in_window(self.rcv_nxt, wnd);
        // A pure ACK from a peer whose view of our window ended before data it had
        // already sent past it (Linux `tcp_sequence`: not before `rcv_wup`).
        let behind = seg.seq.after_eq(self.rcv_wup) && seg.seq.before(self.rcv_nxt);
        match (len, wnd) {
            (0, 0) => seg.seq == self.rcv_nxt || behind,
            (0, _) => starts_in || behind,
            (_, 0) => false,
            _ => starts_in || (seg.seq + (len - 1)).in_window(self.rcv_nxt, wnd),
        }
    }

    fn challenge_ack(&mut self, now: Instant) {
        if now.since(self.challenge_epoch) >= Duration::from_secs(1) {
            self.challenge_epoch = now;
            self.challenge_count = 0;
        }
        if self.challenge_count < self.cfg.challenge_acks_per_sec {
            self.challenge_count += 1;
            self.stats.challenge_acks += 1;
            self.ack_now = true;
        } else {
            self.stats.challenge_acks_limited += 1;
        }
    }

    /// The ACK field and window (RFC 9293 §3.10.7.4 fifth check, RFC 5961 §5); false
    /// when the segment must be dropped.
    fn process_ack(
        &mut self,
        seg: &SegmentIn<S>,
        now: Instant,
        out: &mut impl HookSink<S, H::Ctx>,
    ) -> bool {
        let ack = seg.ack;
        if ack.after(self.snd_nxt) || ack.before(self.snd_una - self.max_snd_wnd.max(1)) {
            self.challenge_ack(now);
            return false;
        }
        let wnd = u32::from(seg.window) << self.snd_wscale;
        let window_changed = wnd != self.snd_wnd;
        if self.snd_wl1.before(seg.seq) || (self.snd_wl1 == seg.seq && self.snd_wl2.before_eq(ack))
        {
            self.snd_wnd = wnd;
            self.max_snd_wnd = self.max_snd_wnd.max(wnd);
            (self.snd_wl1, self.snd_wl2) = (seg.seq, ack);
            if wnd > 0 && self.rtx_timer.is_some_and(|(_, k)| k == RtxKind::Persist) {
                self.rtx_timer = None;
                self.rtt.reset_backoff();
            }
        }
        if self.sack_ok {
            for &(l, r) in &seg.options.sack {
                if self.snd_una.before(r) && r.before_eq(self.snd_nxt) && l.before(r) {
                    self.sendq.sack(l, r);
                }
            }
        }
        if ack.after(self.snd_una) {
            self.on_new_ack(seg, now, out);
        } else if ack == self.snd_una
            && seg.seg_len() == 0
            && !window_changed
            && !self.sendq.flight_is_empty()
        {
            self.dupacks = self.dupacks.saturating_add(1);
        }
        self.detect_loss();
        true
    }

    fn on_new_ack(&mut self, seg: &SegmentIn<S>, now: Instant, out: &mut impl HookSink<S, H::Ctx>) {
        // Window-limited: the flight filled at least half the window when this was sent.
        let cwnd_limited = self.sendq.flight_bytes() >= self.cc.cwnd() / 2;
        let (acked, sent_at) = self.sendq.ack(seg.ack);
        self.snd_una = seg.ack;
        let ts_rtt = match (self.ts_ok, seg.options.timestamps) {
            (true, Some((_, tsecr))) if tsecr != 0 => {
                let ms = self.ts_now(now).wrapping_sub(tsecr);
                (ms < 1 << 30).then(|| Duration::from_millis(u64::from(ms)))
            }
            _ => None,
        };
        match ts_rtt.or_else(|| sent_at.map(|t| now.since(t))) {
            Some(rtt) => self.rtt.sample(rtt),
            None => self.rtt.reset_backoff(),
        }
        self.dupacks = 0;
        self.tlp_out = false;
        match self.recovery {
            Some(recover) if seg.ack.after_eq(recover) => {
                self.recovery = None;
                self.after_rto = false;
            }
            Some(_) if self.after_rto => {
                self.cc.on_ack(acked, now, self.rtt.srtt(), None);
            }
            None if !cwnd_limited => {}
            Some(_) => {
                if !self.sack_ok {
                    // RFC 6582 §3.2 step 3: a partial ACK retransmits the next hole now.
                    self.sendq.mark_first_lost();
                    self.fast_rtx = true;
                }
            }
            None => {
                let srtt = self.rtt.srtt();
                let view = self.cc.view(srtt);
                let coupled = out.with_ctx(|ctx| self.hook.cc_increase(ctx, &view, acked));
                self.cc.on_ack(acked, now, srtt, coupled);
            }
        }
        self.rtx_timer = None;
        if self.fin_sent && self.snd_una == self.snd_nxt {
            self.on_fin_acked(now);
        }
        if self.state.sends_data() && self.send_space() > 0 {
            self.events |= Events::WRITABLE;
        }
    }

    fn detect_loss(&mut self) {
        if self.sendq.flight_is_empty() {
            return;
        }
        let mss = self.snd_mss;
        let by_sack = self.sack_ok && self.sendq.mark_lost_by_sack(mss);
        if self.sack_ok {
            // RACK's reordering window: a quarter of the smoothed RTT (RFC 8985 §6.2).
            let reo_wnd = self.rtt.srtt().map_or(Duration::ZERO, |srtt| srtt / 4);
            self.sendq.mark_lost_retransmissions(reo_wnd);
        }
        if self.recovery.is_some() {
            return;
        }
        if by_sack || self.dupacks >= DUP_THRESH {
            if !by_sack {
                self.sendq.mark_first_lost();
            }
            self.recovery = Some(self.snd_nxt);
            self.cc.on_loss(self.sendq.flight_bytes());
            self.stats.fast_recoveries += 1;
            self.fast_rtx = true;
        }
    }

    fn on_fin_acked(&mut self, now: Instant) {
        match self.state {
            State::FinWait1 => self.state = State::FinWait2,
            State::Closing => self.enter_time_wait(now),
            State::LastAck => self.terminate(Events::CLOSED),
            _ => {}
        }
    }

    fn process_data(
        &mut self,
        seg: &mut SegmentIn<S>,
        now: Instant,
        out: &mut impl HookSink<S, H::Ctx>,
    ) {
        if !self.state.receives_data() {
            return;
        }
        let fin = seg.flags.contains(TcpFlags::FIN);
        let mut seq = seg.seq;
        let fin_seq = seq + seg.data_len();
        if let Some(mut p) = seg.payload.take() {
            if seq.before(self.rcv_nxt) {
                let cut = self.rcv_nxt.offset_from(seq) as usize;
                let dup = cut.min(p.len());
                self.stats.duplicate_bytes += dup as u64;
                if self.sack_ok {
                    self.dsack = Some((seq, seq + dup as u32));
                }
                p.advance(cut);
                seq = self.rcv_nxt;
                self.ack_now = true;
            }
            // Shedding takes only what continues the stream (it lets held data
            // move on and frees the peer's queue); out-of-order payload is dropped as
            // if the window were closed, and sent again once buffers are back.
            let room = if self.shed && seq != self.rcv_nxt {
                0
            } else {
                self.rcv_window_now() as usize
            };
            let in_window = p
                .len()
                .min(room.saturating_sub(seq.offset_from(self.rcv_nxt) as usize));
            let truncated = in_window < p.len();
            p.truncate(in_window);
            if truncated {
                self.ack_now = true;
            }
            if !p.is_empty() {
                if seq == self.rcv_nxt {
                    let overhead = PAYLOAD_MIN_CHARGE.saturating_sub(p.len());
                    if overhead > 0
                        && self.delivered_overhead + overhead > self.recv_budget as usize
                    {
                        self.ooo.dropped_segs += 1;
                        self.ooo.dropped_bytes += p.len() as u64;
                        self.ack_now = true;
                        return;
                    }
                    if !self.deliver(p, out) {
                        return;
                    }
                    let filled = !self.ooo.is_empty();
                    while let Some(q) = self.ooo.pop_ready(self.rcv_nxt) {
                        if !self.deliver(q, out) {
                            return;
                        }
                    }
                    if filled {
                        self.ack_now = true;
                    } else {
                        self.ack_pending += 1;
                        if self.ack_pending >= 2 {
                            self.ack_owed = true;
                        } else if self.delack_at.is_none() {
                            self.delack_at = Some(now + self.cfg.delayed_ack);
                        }
                    }
                } else {
                    self.ooo.insert(self.rcv_nxt, seq, p);
                    self.ack_now = true;
                }
            }
            if truncated {
                return;
            }
        }
        if fin {
            if fin_seq == self.rcv_nxt {
                self.on_peer_fin(now);
            } else if fin_seq.after(self.rcv_nxt) {
                self.ooo_fin = Some(fin_seq);
                self.ack_now = true;
            }
        } else if self.ooo_fin == Some(self.rcv_nxt) {
            self.on_peer_fin(now);
        }
    }

    /// Hands an in-order payload up (to the hook, then the application); false when
    /// the hook reset the connection.
    fn deliver(&mut self, p: Payload<S>, out: &mut impl HookSink<S, H::Ctx>) -> bool {
        let len = p.len();
        let seq = self.rcv_nxt;
        match out.with_ctx(|ctx| self.hook.on_data(ctx, seq, p)) {
            Delivery::Reset => {
                self.abort(out);
                self.events |= Events::RESET;
                return false;
            }
            Delivery::Taken => self.taken_since_budget += len,
            Delivery::Deliver(p) => {
                self.delivered_bytes += len;
                self.delivered_overhead += PAYLOAD_MIN_CHARGE.saturating_sub(len);
                self.delivered.push_back(p);
                self.events |= Events::READABLE;
            }
        }
        self.rcv_nxt += len as u32;
        true
    }

    fn on_peer_fin(&mut self, now: Instant) {
        self.ooo_fin = None;
        self.ooo.clear();
        self.rcv_nxt += 1;
        self.ack_now = true;
        self.events |= Events::PEER_FIN;
        match self.state {
            State::Established => self.state = State::CloseWait,
            State::FinWait1 if self.fin_sent && self.snd_una == self.snd_nxt => {
                self.enter_time_wait(now)
            }
            State::FinWait1 => self.state = State::Closing,
            State::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.time_wait_until = Some(now + self.cfg.time_wait);
        self.rtx_timer = None;
        self.keepalive_at = None;
        self.delack_at = None;
        self.sendq.clear();
        self.ooo.clear();
    }

    /// Ends TIME-WAIT at once (the table holds too many): the connection closes as
    /// if the TIME-WAIT period had passed.
    pub fn skip_time_wait(&mut self) {
        if self.state == State::TimeWait {
            self.terminate(Events::CLOSED);
        }
    }

    /// Drops all state and reports `why`.
    fn terminate(&mut self, why: Events) {
        self.state = State::Closed;
        self.events |= why;
        self.rtx_timer = None;
        self.delack_at = None;
        self.keepalive_at = None;
        self.time_wait_until = None;
        self.send_syn = false;
        self.ack_now = false;
        self.sendq.clear();
        self.ooo.clear();
        self.delivered.clear();
        self.delivered_bytes = 0;
        self.delivered_overhead = 0;
    }

    // ----- timers ---------------------------------------------------------------

    /// Runs the timers due at `now`, then flushes.
    pub fn on_timer(&mut self, now: Instant, out: &mut impl HookSink<S, H::Ctx>) {
        if self.time_wait_until.is_some_and(|t| t <= now) {
            self.terminate(Events::CLOSED);
            return;
        }
        if self.delack_at.is_some_and(|t| t <= now) {
            self.delack_at = None;
            self.ack_now = true;
        }
        if let Some((_, kind)) = self.rtx_timer.filter(|(t, _)| *t <= now) {
            self.rtx_timer = None;
            self.on_rtx_timer(kind, now, out);
        }
        if self.keepalive_at.is_some_and(|t| t <= now) {
            self.on_keepalive_timer(now, out);
        }
        self.flush(now, out);
    }

    fn on_rtx_timer(&mut self, kind: RtxKind, now: Instant, out: &mut impl HookSink<S, H::Ctx>) {
        match kind {
            RtxKind::Syn => {
                if self.rtt.backoffs() >= u32::from(self.cfg.syn_retries) {
                    self.terminate(Events::TIMED_OUT);
                    return;
                }
                self.rtt.back_off();
                self.send_syn = true;
            }
            RtxKind::Rto => {
                if self.rtt.backoffs() >= u32::from(self.cfg.data_retries) {
                    self.terminate(Events::TIMED_OUT);
                    return;
                }
                self.stats.timeouts += 1;
                if self.recovery.is_some() && !self.after_rto {
                    self.cc.on_rto_in_recovery();
                } else {
                    self.cc.on_rto(self.sendq.flight_bytes());
                }
                self.sendq.mark_all_lost();
                // RFC 6582 §3.2 step 4: no fast retransmit for what was sent before.
                self.recovery = Some(self.snd_nxt);
                self.after_rto = true;
                self.dupacks = 0;
                self.rtt.back_off();
            }
            RtxKind::Tlp => {
                self.stats.tail_loss_probes += 1;
                self.tlp_out = true;
                if !self.send_new_segment(now, out, true) {
                    if let Some(i) = self.sendq.last_index() {
                        self.retransmit(i, now, out);
                    }
                }
                self.arm_rto(now);
            }
            RtxKind::Persist => {
                self.stats.zero_window_probes += 1;
                self.send_probe(out, now);
                self.rtt.back_off();
                self.rtx_timer = Some((now + self.rtt.rto(), RtxKind::Persist));
            }
        }
    }

    fn on_keepalive_timer(&mut self, now: Instant, out: &mut impl HookSink<S, H::Ctx>) {
        let Some(idle) = self.cfg.keepalive_idle else {
            self.keepalive_at = None;
            return;
        };
        if !self.sendq.flight_is_empty() || self.sendq.unsent_bytes() > 0 {
            self.keepalive_at = Some(now + idle);
            return;
        }
        if self.keepalive_sent >= self.cfg.keepalive_probes {
            self.send_rst(self.snd_nxt, out);
            self.terminate(Events::TIMED_OUT);
            return;
        }
        self.keepalive_sent += 1;
        self.stats.keepalive_probes += 1;
        self.send_probe(out, now);
        self.keepalive_at = Some(now + self.cfg.keepalive_interval);
    }

    fn arm_keepalive(&mut self, now: Instant) {
        self.keepalive_sent = 0;
        self.keepalive_at = self
            .cfg
            .keepalive_idle
            .filter(|_| self.state.is_synchronized() && self.state != State::TimeWait)
            .map(|idle| now + idle);
    }

    fn arm_rto(&mut self, now: Instant) {
        self.rtx_timer = Some((now + self.rtt.rto(), RtxKind::Rto));
    }

    /// Arms the retransmission-family timer for what is outstanding, keeping a running
    /// one (RFC 6298 §5.1).
    fn arm_timers(&mut self, now: Instant) {
        if self.rtx_timer.is_some() {
            return;
        }
        match self.state {
            State::SynSent | State::SynReceived => {
                self.rtx_timer = Some((now + self.rtt.rto(), RtxKind::Syn));
            }
            State::Closed | State::TimeWait => {}
            _ if !self.sendq.flight_is_empty() => {
                let tlp = !self.tlp_out
                    && self.recovery.is_none()
                    && self.sendq.pipe() == self.sendq.flight_bytes();
                match (tlp, self.rtt.srtt()) {
                    (true, Some(srtt)) => {
                        let mut pto = (srtt * 2).max(TLP_MIN);
                        if self.sendq.flight_bytes() <= self.snd_mss {
                            pto += TLP_DELACK;
                        }
                        let rto = self.rtt.rto();
                        let kind = if pto < rto {
                            RtxKind::Tlp
                        } else {
                            RtxKind::Rto
                        };
                        self.rtx_timer = Some((now + pto.min(rto), kind));
                    }
                    _ => self.arm_rto(now),
                }
            }
            _ if self.sendq.unsent_bytes() > 0 && self.snd_wnd == 0 => {
                self.rtx_timer = Some((now + self.rtt.rto(), RtxKind::Persist));
            }
            _ => {}
        }
    }

    // ----- output ---------------------------------------------------------------

    /// Sends whatever is due: handshake segments, retransmissions, new data within the
    /// congestion and receive windows, FIN, and owed ACKs; then arms timers.
    pub fn flush(&mut self, now: Instant, out: &mut impl HookSink<S, H::Ctx>) {
        match self.state {
            State::Closed => return,
            State::SynSent | State::SynReceived => {
                if std::mem::take(&mut self.send_syn) {
                    self.send_syn_segment(now, out);
                }
                self.arm_timers(now);
                return;
            }
            State::TimeWait => {
                if self.ack_now {
                    self.send_ack(now, out);
                }
                return;
            }
            _ => {}
        }
        if std::mem::take(&mut self.fast_rtx) {
            if let Some((i, _)) = self.sendq.next_lost() {
                self.retransmit(i, now, out);
            }
        }
        loop {
            if self.pipe() >= self.cc.cwnd() {
                break;
            }
            if let Some((i, _)) = self.sendq.next_lost() {
                self.retransmit(i, now, out);
                continue;
            }
            if !self.send_new_segment(now, out, false) {
                break;
            }
        }
        if self.ack_now {
            self.send_ack(now, out);
        }
        self.arm_timers(now);
    }

    /// RFC 6675 `pipe`, with each duplicate ACK counting one segment out when SACK is
    /// off (NewReno).
    fn pipe(&self) -> u32 {
        let pipe = self.sendq.pipe();
        if self.sack_ok || self.recovery.is_none() {
            pipe
        } else {
            pipe.saturating_sub(self.dupacks.saturating_mul(self.snd_mss))
        }
    }

    /// Sends one new segment (data and/or FIN) if the windows allow; `probe` ignores
    /// the congestion window (tail-loss probe). Returns whether one was sent.
    fn send_new_segment(
        &mut self,
        now: Instant,
        out: &mut impl HookSink<S, H::Ctx>,
        probe: bool,
    ) -> bool {
        let wnd_end = self.snd_una + self.snd_wnd;
        let usable = if wnd_end.after(self.snd_nxt) {
            wnd_end.offset_from(self.snd_nxt)
        } else {
            0
        };
        if self.sendq.flight_is_empty()
            && self
                .last_data_at
                .is_some_and(|t| now.since(t) > self.rtt.rto())
        {
            self.cc.restart_after_idle(self.cfg.initial_cwnd);
        }
        let cwnd_room = if probe {
            self.snd_mss
        } else {
            self.cc.cwnd().saturating_sub(self.pipe())
        };
        let room = usable.min(cwnd_room) as usize;
        let mut payload = None;
        if self.sendq.unsent_bytes() > 0 {
            let max_data = self.max_data_len(false);
            let want = self.sendq.next_unsent_len().min(max_data);
            if room == 0 || (room < want && !self.sendq.flight_is_empty()) {
                return false;
            }
            payload = self.sendq.take_unsent(want.min(room));
        }
        let fin = self.fin_queued && !self.fin_sent && self.sendq.unsent_bytes() == 0;
        if payload.is_none() && !fin {
            return false;
        }
        let seq = self.snd_nxt;
        let mut flags = TcpFlags::ACK;
        if fin {
            flags = flags | TcpFlags::FIN;
            self.fin_sent = true;
        }
        let sent = Sent {
            seq,
            payload,
            fin,
            sent_at: now,
            retransmitted: false,
            sacked: false,
            lost: false,
        };
        self.snd_nxt += sent.len();
        self.last_data_at = Some(now);
        self.emit(seq, flags, sent.payload.clone(), false, now, out);
        self.sendq.record_sent(sent);
        true
    }

    fn retransmit(&mut self, i: usize, now: Instant, out: &mut impl HookSink<S, H::Ctx>) {
        if let Some(s) = self.sendq.retransmit(i, now) {
            self.stats.retransmits += 1;
            let mut flags = TcpFlags::ACK;
            if s.fin {
                flags = flags | TcpFlags::FIN;
            }
            self.emit(s.seq, flags, s.payload, true, now, out);
        }
    }

    /// Most payload bytes per segment after this segment's TCP and hook options.
    fn max_data_len(&self, syn: bool) -> usize {
        let opts = self.tcp_options(syn, true, Instant::default()).padded_len()
            + self.hook.option_space(true);
        (self.snd_mss as usize).saturating_sub(opts).max(1)
    }

    /// Our timestamp clock: milliseconds plus the per-connection offset.
    fn ts_now(&self, now: Instant) -> u32 {
        (now.as_millis() as u32).wrapping_add(self.ts_offset)
    }

    /// TCP's own options for a segment (the hook adds its own afterwards); `data`
    /// when it carries payload (the hook may need more room then).
    fn tcp_options(&self, syn: bool, data: bool, now: Instant) -> OptionsBuf {
        let mut o = OptionsBuf::new();
        // Every push below fits the 40-byte budget in this order, so results are ignored.
        if syn {
            let offer = self.state == State::SynSent;
            let (ts, sack, ws) = if offer {
                (
                    self.cfg.timestamps,
                    self.cfg.sack,
                    self.cfg.window_scale > 0,
                )
            } else {
                (self.ts_ok, self.sack_ok, self.rcv_wscale > 0)
            };
            let mss = self.cfg.mss.saturating_sub(self.hook.mss_reserve());
            let _ = o.push_mss(mss.max(MIN_MSS));
            if ts {
                let ecr = if offer { 0 } else { self.ts_recent };
                let _ = o.push_timestamps(self.ts_now(now), ecr, sack);
            } else if sack {
                let _ = o.push_sack_permitted();
            }
            if ws {
                let _ = o.push_window_scale(self.cfg.window_scale.min(MAX_WINDOW_SCALE));
            }
            return o;
        }
        if self.ts_ok {
            let _ = o.push_timestamps(self.ts_now(now), self.ts_recent, false);
        }
        if self.sack_ok && (!self.ooo.is_empty() || self.dsack.is_some()) {
            // Leave the hook its space (Linux also trims SACK blocks for MPTCP).
            let room = o.remaining().saturating_sub(self.hook.option_space(data));
            let max = room.saturating_sub(4) / 8;
            // A D-SACK block goes first (RFC 2883 §4), the others after it.
            let mut blocks = ArrayVec::<(TcpSeq, TcpSeq), 4>::new();
            blocks.extend(self.dsack.filter(|_| max > 0));
            let rest = max.saturating_sub(blocks.len());
            blocks.extend(
                self.ooo
                    .sack_blocks(rest)
                    .into_iter()
                    .take(4 - blocks.len()),
            );
            if !blocks.is_empty() {
                let _ = o.push_sack(&blocks);
            }
        }
        o
    }

    /// The receive window the budget allows now, before the never-shrink rule.
    fn rcv_window(&self) -> u32 {
        let free = (self.recv_budget as usize)
            .saturating_sub(self.delivered_bytes + self.taken_since_budget);
        let max = u32::from(u16::MAX) << self.rcv_wscale;
        (free.min(max as usize)) as u32
    }

    /// The window field for a non-SYN segment; advances `rcv_adv`, never backwards.
    fn advertise(&mut self) -> u16 {
        let budget_edge = self.rcv_nxt + self.rcv_window();
        if budget_edge.after(self.rcv_adv) {
            self.rcv_adv = budget_edge;
        }
        let wnd = self.rcv_window_now();
        let units = (wnd >> self.rcv_wscale).min(u32::from(u16::MAX));
        self.last_adv_wnd = units << self.rcv_wscale;
        self.rcv_wup = self.rcv_nxt;
        units as u16
    }

    /// After the application read or the budget changed: ACK now if the window opened
    /// enough to matter (RFC 9293 §3.8.6.2.2 receiver SWS avoidance).
    fn consider_window_update(&mut self) {
        if !self.state.receives_data() {
            return;
        }
        let wnd = self.rcv_window();
        let threshold = (self.recv_budget / 2).min(2 * self.snd_mss).max(1);
        if wnd >= self.last_adv_wnd.saturating_add(threshold) {
            self.ack_now = true;
        }
    }

    fn send_syn_segment(&mut self, now: Instant, out: &mut impl HookSink<S, H::Ctx>) {
        self.syn_sent_at.get_or_insert(now);
        let mut flags = TcpFlags::SYN;
        if self.state == State::SynReceived {
            flags = flags | TcpFlags::ACK;
        }
        self.emit(self.iss, flags, None, false, now, out);
    }

    fn send_ack(&mut self, now: Instant, out: &mut impl HookSink<S, H::Ctx>) {
        self.emit(self.ack_seq(), TcpFlags::ACK, None, false, now, out);
    }

    /// The sequence number of a pure ACK: `snd_nxt`, unless that lies beyond the
    /// peer's window (it shrank, or data went out past it), where the peer would find
    /// the ACK unacceptable and ignore what it acknowledges (RFC 9293 §3.10.7.4; Linux
    /// `tcp_acceptable_seq`): then the window's end.
    fn ack_seq(&self) -> TcpSeq {
        let wnd_end = self.snd_una + self.snd_wnd;
        // Linux's tolerance: less than one unit of *our* window scale past the end.
        if !self.snd_nxt.after(wnd_end) || self.snd_nxt.offset_from(wnd_end) < 1 << self.rcv_wscale
        {
            self.snd_nxt
        } else {
            wnd_end
        }
    }

    /// A zero-window or keepalive probe: an ACK one byte below `snd_una`.
    fn send_probe(&mut self, out: &mut impl HookSink<S, H::Ctx>, now: Instant) {
        self.emit(self.snd_una - 1, TcpFlags::ACK, None, false, now, out);
    }

    fn send_rst(&mut self, seq: TcpSeq, out: &mut impl HookSink<S, H::Ctx>) {
        self.stats.segs_out += 1;
        let mut options = OptionsBuf::new();
        let meta = SegmentMeta {
            seq,
            ack: TcpSeq::default(),
            flags: TcpFlags::RST,
            data_len: 0,
            window: 0,
        };
        out.with_ctx(|ctx| self.hook.add_options(ctx, &mut options, &meta));
        out.send(
            &self.tuple,
            SegmentOut {
                seq,
                ack: TcpSeq::default(),
                flags: TcpFlags::RST,
                window: 0,
                options,
                payload: None,
                path: PathTx::None,
            },
        );
    }

    /// Builds and sends one segment (`retransmit`: its payload was sent before); every
    /// ACK-bearing segment settles the owed ACK.
    fn emit(
        &mut self,
        seq: TcpSeq,
        flags: TcpFlags,
        payload: Option<Payload<S>>,
        retransmit: bool,
        now: Instant,
        out: &mut impl HookSink<S, H::Ctx>,
    ) {
        let syn = flags.contains(TcpFlags::SYN);
        let mut options = self.tcp_options(syn, payload.is_some(), now);
        let has_ack = flags.contains(TcpFlags::ACK);
        let ack = if has_ack {
            self.rcv_nxt
        } else {
            TcpSeq::default()
        };
        let meta = SegmentMeta {
            seq,
            ack,
            flags,
            data_len: payload.as_ref().map_or(0, |p| p.len() as u32),
            window: 0,
        };
        let window = if syn {
            self.rcv_window().min(u32::from(u16::MAX)) as u16
        } else {
            self.advertise()
        };
        let meta = SegmentMeta {
            window: u32::from(window) << self.rcv_wscale,
            ..meta
        };
        let data = payload.is_some();
        let path = out.with_ctx(|ctx| {
            self.hook.add_options(ctx, &mut options, &meta);
            if data {
                self.hook.path_tx(ctx, &meta, retransmit)
            } else {
                PathTx::None
            }
        });
        if has_ack {
            self.dsack = None;
            self.ack_now = false;
            self.ack_owed = false;
            self.ack_pending = 0;
            self.delack_at = None;
        }
        self.stats.segs_out += 1;
        out.send(
            &self.tuple,
            SegmentOut {
                seq,
                ack,
                flags,
                window,
                options,
                payload,
                path,
            },
        );
    }
}
