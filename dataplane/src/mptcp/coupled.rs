//! Coupled congestion avoidance across the subflows of one connection: LIA (RFC 6356)
//! and OLIA (Khalili, Gast, Popovic, Le Boudec, "MPTCP is not Pareto-optimal",
//! CoNEXT 2012).
//!
//! Both only replace the congestion-avoidance increase of a subflow (slow start and the
//! Reno-style halving on loss stay with the subflow's own controller, see
//! [`crate::tcp::cc`]). The functions are pure: given views of every subflow of the
//! connection, they return the increase, in bytes, that `acked` newly acknowledged bytes
//! on subflow `i` earn. Degenerate inputs are clamped (an RTT of 0 counts as 1 µs, a
//! window below one MSS as one MSS, an MSS of 0 as 1), so the result is always finite.
//! Increases are fractions of a byte per ACK; [`Carry`] turns them into whole bytes
//! without losing the remainders.

/// What coupling needs to know about one subflow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathView {
    /// Congestion window, bytes.
    pub cwnd: u32,
    /// Sender MSS, bytes.
    pub mss: u32,
    /// Smoothed RTT, microseconds.
    pub srtt_us: u32,
    /// OLIA's ℓ: bytes sent between the last two losses, or since the last loss if more.
    pub inter_loss_bytes: u64,
}

impl PathView {
    /// MSS, at least 1.
    fn mss(&self) -> f64 {
        f64::from(self.mss.max(1))
    }

    /// Window in bytes, at least one MSS.
    fn window(&self) -> f64 {
        f64::from(self.cwnd).max(self.mss())
    }

    /// Window in segments, at least 1.
    fn segments(&self) -> f64 {
        self.window() / self.mss()
    }

    /// RTT in microseconds, at least 1.
    fn rtt(&self) -> f64 {
        f64::from(self.srtt_us.max(1))
    }
}

/// LIA (RFC 6356 §3): per ACK of `acked` bytes on subflow `i`,
/// `min(α · acked · mss_i / cwnd_total, acked · mss_i / cwnd_i)` bytes, with
/// `α = cwnd_total · max_p(cwnd_p / rtt_p²) / (Σ_p cwnd_p / rtt_p)²`. The first term caps
/// the connection at what one TCP would take on its best path; the second keeps any
/// subflow from growing faster than a TCP alone. 0 when `i` is out of range.
pub fn lia_increase(paths: &[PathView], i: usize, acked: u32) -> f64 {
    let Some(me) = paths.get(i) else {
        return 0.0;
    };
    let total: f64 = paths.iter().map(PathView::window).sum();
    let best = paths
        .iter()
        .map(|p| p.window() / (p.rtt() * p.rtt()))
        .fold(0.0, f64::max);
    let rate: f64 = paths.iter().map(|p| p.window() / p.rtt()).sum();
    let alpha = total * best / (rate * rate);
    let per_byte = f64::from(acked) * me.mss();
    (alpha * per_byte / total).min(per_byte / me.window())
}

/// OLIA: per ACK of `acked` bytes on subflow `i`,
/// `acked · ((w_i / rtt_i²) / (Σ_p w_p / rtt_p)² + α_i / w_i)` bytes, windows `w` in
/// segments. The first term is the increase that makes the connection as aggressive as
/// one TCP on its best path; α moves window from the paths with the largest window (set
/// M) to the presumably best paths (set B: largest ℓ / rtt², ℓ being bytes between
/// losses, since a TCP's rate² ∝ ℓ / rtt²) that do not have it yet: with `n` paths, each
/// path in B \ M gets `α = 1 / (n · |B \ M|)`, each path in M gets
/// `α = −1 / (n · |M|)` when B \ M is not empty, and every other path 0. So the result
/// may be negative (a path in M gives way); [`Carry`] accumulates that as debt. 0 when
/// `i` is out of range.
pub fn olia_increase(paths: &[PathView], i: usize, acked: u32) -> f64 {
    let Some(me) = paths.get(i) else {
        return 0.0;
    };
    let score = |p: &PathView| p.inter_loss_bytes as f64 / (p.rtt() * p.rtt());
    let max_w = paths.iter().map(PathView::segments).fold(0.0, f64::max);
    let max_score = paths.iter().map(score).fold(0.0, f64::max);
    let in_m = |p: &PathView| p.segments() >= max_w;
    let in_b_not_m = |p: &PathView| score(p) >= max_score && !in_m(p);
    let n = paths.len() as f64;
    let b_not_m = paths.iter().filter(|p| in_b_not_m(p)).count() as f64;
    let m = paths.iter().filter(|p| in_m(p)).count() as f64;
    let alpha = if in_b_not_m(me) {
        1.0 / (n * b_not_m)
    } else if in_m(me) && b_not_m > 0.0 {
        -1.0 / (n * m)
    } else {
        0.0
    };
    let rate: f64 = paths.iter().map(|p| p.segments() / p.rtt()).sum();
    let coupled = (me.segments() / (me.rtt() * me.rtt())) / (rate * rate);
    f64::from(acked) * (coupled + alpha / me.segments())
}

/// Fractional window increases accumulated into whole bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Carry {
    /// Not yet applied, bytes: in [−`u32::MAX`, 1); negative after OLIA decreases, which later
    /// increases pay back first.
    pending: f64,
}

impl Carry {
    /// Adds `increase` bytes (non-finite values are ignored) and returns the whole bytes
    /// to add to the window now.
    pub fn add(&mut self, increase: f64) -> u32 {
        if !increase.is_finite() {
            return 0;
        }
        let bound = f64::from(u32::MAX);
        self.pending = (self.pending + increase).clamp(-bound, bound);
        if self.pending < 1.0 {
            return 0;
        }
        let whole = self.pending.floor();
        self.pending -= whole;
        whole as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(cwnd: u32, mss: u32, srtt_us: u32, inter_loss_bytes: u64) -> PathView {
        PathView {
            cwnd,
            mss,
            srtt_us,
            inter_loss_bytes,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6 * b.abs().max(1.0)
    }

    #[test]
    fn lia_single_path_is_reno() {
        let p = [path(14480, 1448, 100_000, 0)];
        // acked · mss / cwnd = 1448 · 1448 / 14480.
        assert!(close(lia_increase(&p, 0, 1448), 144.8));
    }

    #[test]
    fn lia_two_equal_paths_each_get_half_a_tcp() {
        let p = [path(14480, 1448, 100_000, 0); 2];
        // One TCP with the total window 28960 would get 1448² / 28960 = 72.4.
        for i in 0..2 {
            assert!(close(lia_increase(&p, i, 1448), 36.2));
        }
    }

    #[test]
    fn lia_unequal_paths_by_hand() {
        // w/rtt²: 2e-4 and 6.25e-6; Σ w/rtt = 2.25; α = 30000 · 2e-4 / 2.25² = 1.185185…
        let p = [path(20000, 1000, 10_000, 0), path(10000, 1000, 40_000, 0)];
        let coupled = 1.185_185_185 * 1000.0 * 1000.0 / 30000.0;
        assert!(close(lia_increase(&p, 0, 1000), coupled));
        assert!(close(lia_increase(&p, 1, 1000), coupled));
        // Capped by the uncoupled increase on the large-window path.
        let p = [path(20000, 1000, 10_000, 0), path(1000, 1000, 10_000, 0)];
        assert!(lia_increase(&p, 0, 1000) <= 1000.0 * 1000.0 / 20000.0 + 1e-9);
    }

    #[test]
    fn olia_equal_paths_by_hand() {
        let p = [path(10000, 1000, 100_000, 5000); 2];
        // (10 / r²) / (20 / r)² = 0.025 per acked byte; B = M, so α = 0.
        for i in 0..2 {
            assert!(close(olia_increase(&p, i, 1000), 25.0));
        }
        assert!(close(olia_increase(&p[..1], 0, 1000), 100.0));
    }

    #[test]
    fn olia_moves_window_to_the_best_path() {
        // A: 10 segments, best ℓ/rtt² → α = +1/2; B: 20 segments (M) → α = −1/2.
        // Σ w/rtt = 30e-4, squared 9e-6.
        let p = [
            path(10000, 1000, 10_000, 50_000),
            path(20000, 1000, 10_000, 10_000),
        ];
        assert!(close(
            olia_increase(&p, 0, 1000),
            1000.0 * (1e-7 / 9e-6 + 0.05)
        ));
        assert!(close(
            olia_increase(&p, 1, 1000),
            1000.0 * (2e-7 / 9e-6 - 0.025)
        ));
        assert!(olia_increase(&p, 1, 1000) < 0.0);
    }

    #[test]
    fn degenerate_inputs_stay_finite() {
        let zero = PathView::default();
        let cases: [&[PathView]; 3] = [
            &[zero],
            &[zero, zero],
            &[zero, path(u32::MAX, 1, 1, u64::MAX)],
        ];
        for paths in cases {
            for i in 0..paths.len() {
                for acked in [0, 1, u32::MAX] {
                    assert!(lia_increase(paths, i, acked).is_finite());
                    assert!(olia_increase(paths, i, acked).is_finite());
                }
            }
        }
        assert_eq!(lia_increase(&[], 0, 1000), 0.0);
        assert_eq!(olia_increase(&[zero], 3, 1000), 0.0);
    }

    #[test]
    fn carry_keeps_fractions_and_debt() {
        let mut c = Carry::default();
        assert_eq!(c.add(0.4), 0);
        assert_eq!(c.add(0.7), 1);
        assert_eq!(c.add(-2.0), 0);
        assert_eq!(c.add(2.5), 0);
        assert_eq!(c.add(0.5), 1);
        assert_eq!(c.add(f64::NAN), 0);
        assert_eq!(c.add(f64::INFINITY), 0);
        assert_eq!(c.add(1e30), u32::MAX);
        assert_eq!(c.add(0.0), 0);
    }
}
