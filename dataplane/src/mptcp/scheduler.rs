//! Packet schedulers: which subflows carry the next segment of connection-level data.
//!
//! Each scheduler is a decision over a slice of [`SubflowView`]s — no I/O, no
//! allocation — dispatched through the [`Scheduler`] enum (no dynamic dispatch).
//! Backup semantics are common to all (RFC 8684 §3.3.8, Linux `mptcp_subflow_get_send`):
//! backup subflows are candidates only when no non-backup subflow is usable; a usable
//! non-backup subflow that merely lacks window makes the scheduler wait rather than
//! spill onto a backup.

/// Most subflows a decision considers; views beyond it are ignored (Linux allows 8
/// subflows per connection).
pub const MAX_SUBFLOWS: usize = 32;

/// What a scheduler needs to know about one subflow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubflowView {
    /// The subflow's identity, stable for its life (round robin remembers it).
    pub id: u32,
    /// Smoothed RTT, microseconds; 0 when not sampled yet (then it counts as fastest,
    /// so a new subflow gets probed).
    pub srtt_us: u32,
    /// Congestion window, bytes.
    pub cwnd: u32,
    /// Bytes sent and not yet acknowledged on the subflow.
    pub inflight: u32,
    /// Bytes it may send now: the smaller of its free congestion window and its send
    /// window.
    pub space: u32,
    /// Maximum segment size, bytes.
    pub mss: u32,
    /// Backup priority (MP_JOIN or MP_PRIO B flag).
    pub backup: bool,
    /// Established, not stale, not closing: it may carry data.
    pub usable: bool,
}

impl SubflowView {
    /// Usable with room for data now.
    #[inline]
    fn has_space(&self) -> bool {
        self.usable && self.space > 0
    }
}

/// A set of subflows, as indices into the slice a decision was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Selection(
    /// Bit `i` set: the subflow at index `i` is selected (`i` < [`MAX_SUBFLOWS`]).
    u32,
);

impl Selection {
    /// No subflow: wait for window or for a subflow to become usable.
    pub const NONE: Selection = Selection(0);

    /// Just the subflow at index `i`.
    #[inline]
    fn one(i: usize) -> Selection {
        Selection(1u32.checked_shl(i as u32).unwrap_or(0))
    }

    /// True when nothing is selected.
    #[inline]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The first selected index.
    #[inline]
    pub fn first(self) -> Option<usize> {
        (!self.is_empty()).then(|| self.0.trailing_zeros() as usize)
    }

    /// The selected indices, ascending.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..MAX_SUBFLOWS).filter(move |i| self.0 & (1 << i) != 0)
    }
}

/// Connection-level state a decision may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendContext {
    /// The connection-level send window, bytes: the peer's shared receive window
    /// (right edge − oldest unacknowledged DSN).
    pub send_window: u64,
    /// Bytes of the segment to schedule.
    pub seg_len: u32,
}

/// The candidate subflows: those (within [`MAX_SUBFLOWS`]) of the preferred class —
/// non-backup if any non-backup subflow is usable, else backup — with their indices.
fn candidates(subflows: &[SubflowView]) -> impl Iterator<Item = (usize, &SubflowView)> {
    let subflows = &subflows[..subflows.len().min(MAX_SUBFLOWS)];
    let backup = !subflows.iter().any(|s| s.usable && !s.backup);
    subflows
        .iter()
        .enumerate()
        .filter(move |(_, s)| s.usable && s.backup == backup)
}

/// The candidate with the lowest RTT among those `keep` accepts.
fn fastest(subflows: &[SubflowView], keep: impl Fn(&SubflowView) -> bool) -> Option<usize> {
    candidates(subflows)
        .filter(|(_, s)| keep(s))
        .min_by_key(|(_, s)| s.srtt_us)
        .map(|(i, _)| i)
}

/// The out-of-tree kernel's default: the lowest-RTT candidate with space.
fn lowest_rtt(subflows: &[SubflowView]) -> Selection {
    fastest(subflows, SubflowView::has_space).map_or(Selection::NONE, Selection::one)
}

/// Round robin: the candidates with space in turn, by id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundRobin {
    /// The id last picked, `None` before the first pick.
    last: Option<u32>,
}

impl RoundRobin {
    fn pick(&mut self, subflows: &[SubflowView]) -> Selection {
        let after = |id: u32| self.last.is_none_or(|last| id > last);
        let ready = || candidates(subflows).filter(|(_, s)| s.has_space());
        let next = ready()
            .filter(|(_, s)| after(s.id))
            .min_by_key(|(_, s)| s.id)
            .or_else(|| ready().min_by_key(|(_, s)| s.id));
        match next {
            Some((i, s)) => {
                self.last = Some(s.id);
                Selection::one(i)
            }
            None => Selection::NONE,
        }
    }
}

/// Every candidate with space carries the segment; the receiver keeps the first copy.
fn redundant(subflows: &[SubflowView]) -> Selection {
    let bits = candidates(subflows)
        .filter(|(_, s)| s.has_space())
        .fold(0, |acc, (i, _)| acc | Selection::one(i).0);
    Selection(bits)
}

/// BLEST (Ferlin, Alay, Mehani, Boreli: "BLEST: Blocking Estimation-based MPTCP
/// Scheduler for Heterogeneous Networks", IFIP Networking 2016).
///
/// When the fastest candidate has no space and the lowest-RTT one that has is slower,
/// BLEST asks whether a segment sent on the slow subflow would block the connection's
/// send window: while it is in flight (one slow RTT), the fast subflow goes through
/// `n = rtt_slow / rtt_fast` rounds and, its window growing by one segment a round,
/// could send about `mss_fast × n × (cwnd_fast + (n − 1) / 2)` bytes (cwnd in segments).
/// Scaled by a safety factor λ, if that exceeds what the send window leaves once the
/// slow subflow's flight and this segment are counted, the slow subflow is skipped and
/// the segment waits for the fast one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Blest {
    /// The safety factor λ, between [`Blest::LAMBDA_MIN`] and [`Blest::LAMBDA_MAX`].
    lambda: f64,
}

impl Default for Blest {
    fn default() -> Self {
        Blest {
            lambda: Self::LAMBDA_MIN,
        }
    }
}

impl Blest {
    /// Smallest λ: the plain estimate.
    pub const LAMBDA_MIN: f64 = 1.0;
    /// Largest λ.
    pub const LAMBDA_MAX: f64 = 1.3;
    /// Added to λ when a round saw head-of-line blocking anyway (the estimate was low).
    const LAMBDA_UP: f64 = 0.04;
    /// Taken from λ after a round without.
    const LAMBDA_DOWN: f64 = 0.01;

    /// The current safety factor λ.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// Adapts λ once per round: up when the connection was send-window-blocked (or had to
    /// retransmit for it) despite the estimate, down slowly otherwise.
    pub fn adapt(&mut self, blocked: bool) {
        let step = if blocked {
            Self::LAMBDA_UP
        } else {
            -Self::LAMBDA_DOWN
        };
        self.lambda = (self.lambda + step).clamp(Self::LAMBDA_MIN, Self::LAMBDA_MAX);
    }

    fn pick(&self, subflows: &[SubflowView], ctx: &SendContext) -> Selection {
        let Some(chosen) = fastest(subflows, SubflowView::has_space) else {
            return Selection::NONE;
        };
        let Some(fast) = fastest(subflows, |_| true) else {
            return Selection::NONE;
        };
        let (Some(s), Some(f)) = (subflows.get(chosen), subflows.get(fast)) else {
            return Selection::NONE;
        };
        if chosen == fast || s.srtt_us <= f.srtt_us {
            return Selection::one(chosen);
        }
        let rounds = f64::from(s.srtt_us) / f64::from(f.srtt_us.max(1));
        let cwnd_segs = f64::from(f.cwnd) / f64::from(f.mss.max(1));
        let fast_bytes = f64::from(f.mss) * rounds * (cwnd_segs + (rounds - 1.0) / 2.0);
        let left = ctx.send_window as f64 - f64::from(ctx.seg_len) - f64::from(s.inflight);
        if fast_bytes * self.lambda > left {
            Selection::NONE
        } else {
            Selection::one(chosen)
        }
    }
}

/// The configured scheduler, with its state.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Scheduler {
    /// The lowest-RTT candidate with space (the multipath-tcp.org default; upstream
    /// Linux ranks by the time to drain the subflow's queue instead).
    #[default]
    Default,
    /// Candidates in turn.
    RoundRobin(RoundRobin),
    /// Every candidate with space.
    Redundant,
    /// The default, skipping slow subflows that would block the send window.
    Blest(Blest),
}

impl Scheduler {
    /// The subflows to send the next segment on; [`Selection::NONE`] means wait.
    pub fn pick(&mut self, subflows: &[SubflowView], ctx: &SendContext) -> Selection {
        match self {
            Scheduler::Default => lowest_rtt(subflows),
            Scheduler::RoundRobin(rr) => rr.pick(subflows),
            Scheduler::Redundant => redundant(subflows),
            Scheduler::Blest(b) => b.pick(subflows, ctx),
        }
    }
}
