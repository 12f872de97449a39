//! Congestion control: CUBIC (RFC 9438, the default) and NewReno (RFC 5681/6582),
//! chosen per connection through an enum so the packet path has no dynamic dispatch.
//!
//! The MPTCP layer couples subflows (LIA, OLIA) by replacing only the congestion-
//! avoidance increase: [`CongestionControl::on_ack`] takes an optional increase computed
//! by the connection's hook from a [`CcView`] of this subflow; slow start, loss response
//! and the window bookkeeping stay here.

use super::time::Instant;
use std::time::Duration;

/// CUBIC's multiplicative decrease factor β.
const CUBIC_BETA: f64 = 0.7;
/// CUBIC's scaling constant C, in segments per second³.
const CUBIC_C: f64 = 0.4;

/// Which congestion control a connection runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CcAlgorithm {
    /// CUBIC (RFC 9438).
    #[default]
    Cubic,
    /// NewReno (RFC 5681 with RFC 6582 recovery).
    NewReno,
}

/// What a coupled controller needs to know about one subflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CcView {
    /// Congestion window, bytes.
    pub cwnd: u32,
    /// Slow-start threshold, bytes.
    pub ssthresh: u32,
    /// Sender MSS, bytes.
    pub mss: u32,
    /// Smoothed RTT, if sampled.
    pub srtt: Option<Duration>,
}

/// CUBIC's per-epoch state, in segments and seconds.
#[derive(Clone, Debug, Default)]
struct Cubic {
    /// Window before the last reduction (W_max), segments.
    w_max: f64,
    /// Start of the current congestion-avoidance epoch.
    epoch: Option<Instant>,
    /// Time to reach `w_max` from the epoch start (K), seconds.
    k: f64,
    /// The Reno-friendly estimate W_est, segments.
    w_est: f64,
}

/// Per-algorithm state.
#[derive(Clone, Debug)]
enum Algo {
    Cubic(Cubic),
    /// Bytes acknowledged since the last one-MSS increase (appropriate byte counting).
    NewReno {
        acked: u32,
    },
}

/// A connection's congestion window and the algorithm that moves it.
#[derive(Clone, Debug)]
pub struct CongestionControl {
    /// Congestion window, bytes; at least one MSS.
    cwnd: u32,
    /// Slow-start threshold, bytes; at least two MSS after the first loss.
    ssthresh: u32,
    /// Sender MSS, bytes, > 0.
    mss: u32,
    /// The algorithm's own state.
    algo: Algo,
}

impl CongestionControl {
    /// A controller with an initial window of `initial_segments` × `mss`.
    pub fn new(algo: CcAlgorithm, mss: u32, initial_segments: u32) -> Self {
        let mss = mss.max(1);
        CongestionControl {
            cwnd: mss.saturating_mul(initial_segments.max(1)),
            ssthresh: u32::MAX,
            mss,
            algo: match algo {
                CcAlgorithm::Cubic => Algo::Cubic(Cubic::default()),
                CcAlgorithm::NewReno => Algo::NewReno { acked: 0 },
            },
        }
    }

    /// Congestion window, bytes.
    pub fn cwnd(&self) -> u32 {
        self.cwnd
    }

    /// Slow-start threshold, bytes.
    pub fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    /// The view a coupled controller works from.
    pub fn view(&self, srtt: Option<Duration>) -> CcView {
        CcView {
            cwnd: self.cwnd,
            ssthresh: self.ssthresh,
            mss: self.mss,
            srtt,
        }
    }

    /// Updates the MSS (after the handshake settles it).
    pub fn set_mss(&mut self, mss: u32) {
        let segs = self.cwnd / self.mss;
        self.mss = mss.max(1);
        self.cwnd = self.mss.saturating_mul(segs.max(1));
    }

    /// `acked` new bytes were acknowledged outside recovery. `coupled` replaces the
    /// congestion-avoidance increase (bytes) when a coupled controller computed one.
    /// The caller only reports ACKs of a window-limited flight (RFC 7661 spirit: an
    /// application-limited sender does not grow its window).
    pub fn on_ack(
        &mut self,
        acked: u32,
        now: Instant,
        srtt: Option<Duration>,
        coupled: Option<u32>,
    ) {
        if self.cwnd < self.ssthresh {
            // Slow start, at most 2 MSS per ACK (RFC 3465 L = 2).
            self.cwnd = self.cwnd.saturating_add(acked.min(2 * self.mss));
            return;
        }
        if let Some(inc) = coupled {
            self.cwnd = self.cwnd.saturating_add(inc);
            return;
        }
        let (cwnd, mss) = (self.cwnd, self.mss);
        match &mut self.algo {
            Algo::NewReno { acked: acc } => {
                *acc = acc.saturating_add(acked);
                if *acc >= cwnd {
                    *acc -= cwnd;
                    self.cwnd = cwnd.saturating_add(mss);
                }
            }
            Algo::Cubic(c) => {
                self.cwnd = c.increase(cwnd, mss, acked, now, srtt);
            }
        }
    }

    /// Restart after an idle period longer than the RTO (RFC 5681 §4.1): the window
    /// falls back to at most `initial_segments`; CUBIC starts a new epoch.
    pub fn restart_after_idle(&mut self, initial_segments: u32) {
        self.cwnd = self
            .cwnd
            .min(self.mss.saturating_mul(initial_segments.max(1)));
        if let Algo::Cubic(c) = &mut self.algo {
            c.epoch = None;
        }
    }

    /// A loss detected by duplicate ACKs or SACK: sets and returns the new ssthresh and
    /// drops the window to it (fast recovery then keeps it there).
    pub fn on_loss(&mut self, flight: u32) -> u32 {
        let base = self.cwnd.min(flight.max(self.mss));
        let ssthresh = match &mut self.algo {
            Algo::NewReno { acked } => {
                *acked = 0;
                base / 2
            }
            Algo::Cubic(c) => {
                c.reduce(self.cwnd, self.mss);
                (f64::from(base) * CUBIC_BETA) as u32
            }
        };
        self.ssthresh = ssthresh.max(2 * self.mss);
        self.cwnd = self.ssthresh;
        self.ssthresh
    }

    /// A retransmission timeout: ssthresh as for a loss, window down to one segment.
    pub fn on_rto(&mut self, flight: u32) {
        // Only the first timeout of a series reduces ssthresh (RFC 5681 §3.1 eq. 4 uses
        // the flight size, which is what it was before the timeout).
        if self.cwnd > self.mss {
            self.on_loss(flight);
        }
        self.cwnd = self.mss;
    }

    /// A retransmission timeout during fast recovery: the window collapses to one
    /// segment, but the loss was already answered (ssthresh and CUBIC's `W_max` set on
    /// entry), so it is not reduced a second time (Linux `tcp_enter_loss`).
    pub fn on_rto_in_recovery(&mut self) {
        self.cwnd = self.mss;
    }
}

impl Cubic {
    /// Records a reduction from `cwnd` bytes (with fast convergence, RFC 9438 §4.7).
    fn reduce(&mut self, cwnd: u32, mss: u32) {
        let w = f64::from(cwnd) / f64::from(mss);
        self.w_max = if w < self.w_max {
            w * (1.0 + CUBIC_BETA) / 2.0
        } else {
            w
        };
        self.epoch = None;
    }

    /// The window after `acked` bytes in congestion avoidance (RFC 9438 §4.2–4.4).
    fn increase(
        &mut self,
        cwnd: u32,
        mss: u32,
        acked: u32,
        now: Instant,
        srtt: Option<Duration>,
    ) -> u32 {
        let mssf = f64::from(mss);
        let w = f64::from(cwnd) / mssf;
        let epoch = *self.epoch.get_or_insert_with(|| {
            self.k = if w < self.w_max {
                ((self.w_max - w) / CUBIC_C).cbrt()
            } else {
                self.w_max = w;
                0.0
            };
            self.w_est = w;
            now
        });
        let rtt = srtt.unwrap_or(Duration::from_millis(100)).as_secs_f64();
        let t = now.since(epoch).as_secs_f64() + rtt;
        let target = (CUBIC_C * (t - self.k).powi(3) + self.w_max).clamp(w, 1.5 * w);
        let acked_segs = f64::from(acked) / mssf;
        let alpha = 3.0 * (1.0 - CUBIC_BETA) / (1.0 + CUBIC_BETA);
        self.w_est += alpha * acked_segs / w;
        let next = if target < self.w_est {
            self.w_est.max(w)
        } else {
            w + (target - w) / w * acked_segs
        };
        let bytes = (next * mssf) as u32;
        bytes.max(cwnd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newreno_slow_start_avoidance_and_loss() {
        let mut cc = CongestionControl::new(CcAlgorithm::NewReno, 1000, 10);
        let t = Instant::default();
        cc.on_ack(1000, t, None, None);
        assert_eq!(cc.cwnd(), 11_000);
        assert_eq!(cc.on_loss(11_000), 5_500);
        assert_eq!(cc.cwnd(), 5_500);
        // Congestion avoidance: one MSS per window acknowledged.
        for _ in 0..5 {
            cc.on_ack(1000, t, None, None);
        }
        assert_eq!(cc.cwnd(), 5_500);
        cc.on_ack(1000, t, None, None);
        assert_eq!(cc.cwnd(), 6_500);
        cc.on_rto(6_500);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (1000, 3_250));
        // A coupled increase replaces avoidance but not slow start.
        cc.on_ack(1000, t, None, Some(7));
        assert_eq!(cc.cwnd(), 2000);
    }

    #[test]
    fn cubic_reduces_by_beta_and_regrows_past_wmax() {
        let mut cc = CongestionControl::new(CcAlgorithm::Cubic, 1000, 100);
        assert_eq!(cc.on_loss(100_000), 70_000);
        let mut now = Instant::default();
        let rtt = Some(Duration::from_millis(50));
        let mut prev = cc.cwnd();
        for _ in 0..2000 {
            now = now + Duration::from_millis(5);
            cc.on_ack(1000, now, rtt, None);
            assert!(cc.cwnd() >= prev);
            prev = cc.cwnd();
        }
        assert!(cc.cwnd() > 100_000, "{}", cc.cwnd());
    }
}
