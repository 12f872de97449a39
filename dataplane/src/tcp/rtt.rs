//! Retransmission timeout estimation (RFC 6298).

use std::time::Duration;

/// Clock granularity G of RFC 6298 §2 (the timestamp clock ticks in milliseconds).
const GRANULARITY: Duration = Duration::from_millis(1);
/// Longest backoff shift (2^16 × rto_min already exceeds any sane rto_max).
const MAX_BACKOFF: u32 = 16;

/// Smoothed RTT, RTT variance and the RTO derived from them, with exponential backoff.
#[derive(Clone, Debug)]
pub struct RttEstimator {
    /// `None` until the first sample.
    srtt: Option<Duration>,
    /// RTTVAR; meaningful once `srtt` is set.
    rttvar: Duration,
    /// Un-backed-off RTO, within `[min, max]`.
    rto: Duration,
    /// Number of consecutive timeouts (the RTO is doubled this many times).
    backoff: u32,
    /// Lower RTO bound.
    min: Duration,
    /// Upper RTO bound, ≥ `min`.
    max: Duration,
}

impl RttEstimator {
    /// An estimator starting at `initial`, bounded by `[min, max]`.
    pub fn new(initial: Duration, min: Duration, max: Duration) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            rto: initial.clamp(min, max),
            backoff: 0,
            min,
            max,
        }
    }

    /// Takes one RTT measurement (never from a retransmitted segment, Karn's rule) and
    /// clears the backoff (RFC 6298 §5.7 lets a new sample reset it).
    pub fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let err = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + err) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(rtt);
        self.rto = (srtt + (self.rttvar * 4).max(GRANULARITY)).clamp(self.min, self.max);
        self.backoff = 0;
    }

    /// The smoothed RTT, if sampled.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The current RTO, backoff included.
    pub fn rto(&self) -> Duration {
        self.rto
            .saturating_mul(1 << self.backoff.min(MAX_BACKOFF))
            .min(self.max)
    }

    /// Doubles the RTO after a timeout (RFC 6298 §5.5). The count keeps going past the
    /// largest shift, so retry limits above it still end the connection.
    pub fn back_off(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    /// Consecutive timeouts since the last sample or [`RttEstimator::reset_backoff`].
    pub fn backoffs(&self) -> u32 {
        self.backoff
    }

    /// Clears the backoff (an ACK for new data arrived).
    pub fn reset_backoff(&mut self) {
        self.backoff = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoffs_count_past_the_largest_shift() {
        let mut e = RttEstimator::new(
            Duration::from_secs(1),
            Duration::from_millis(200),
            Duration::from_secs(60),
        );
        for _ in 0..20 {
            e.back_off();
        }
        assert_eq!(e.backoffs(), 20, "a retry limit of 20 must be reachable");
        assert_eq!(e.rto(), Duration::from_secs(60), "the RTO stays capped");
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn first_sample_then_smoothing_and_bounds() {
        let mut e = RttEstimator::new(ms(1000), ms(200), ms(60_000));
        assert_eq!(e.rto(), ms(1000));
        e.sample(ms(100));
        // srtt 100, rttvar 50: rto = 100 + 200 = 300.
        assert_eq!(e.rto(), ms(300));
        e.sample(ms(100));
        // rttvar 37.5, srtt 100: 250.
        assert_eq!(e.rto(), Duration::from_micros(250_000));
        for _ in 0..50 {
            e.sample(ms(1));
        }
        assert_eq!(e.rto(), ms(200), "clamped to the minimum");
    }

    #[test]
    fn backoff_doubles_up_to_max_and_sample_resets() {
        let mut e = RttEstimator::new(ms(1000), ms(200), ms(5000));
        e.back_off();
        assert_eq!(e.rto(), ms(2000));
        e.back_off();
        e.back_off();
        assert_eq!(e.rto(), ms(5000));
        assert_eq!(e.backoffs(), 3);
        e.sample(ms(100));
        assert_eq!((e.backoffs(), e.rto()), (0, ms(300)));
    }
}
