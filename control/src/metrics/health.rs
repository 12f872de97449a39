//! Liveness and readiness: are the workers polling, is the gateway able to pass traffic.

use super::DeviceSnapshot;
use std::time::{Duration, Instant};

/// A worker whose poll counter has not moved for this long is stalled (workers poll
/// continuously; even a descheduled one moves within a few scheduler slices).
pub const STALL: Duration = Duration::from_secs(3);

/// When each worker's poll counter last moved.
#[derive(Debug)]
pub struct Liveness {
    seen: Vec<(u64, Instant)>,
}

impl Liveness {
    /// `workers` workers, all counted as alive at `now`.
    pub fn new(workers: usize, now: Instant) -> Self {
        Self {
            seen: vec![(0, now); workers],
        }
    }

    /// Takes note of the workers' poll counters (in the order given to [`Liveness::new`]).
    pub fn observe(&mut self, polls: impl IntoIterator<Item = u64>, now: Instant) {
        for ((last, at), p) in self.seen.iter_mut().zip(polls) {
            if p != *last {
                (*last, *at) = (p, now);
            }
        }
    }

    /// The indices of the workers that stopped polling.
    pub fn stalled(&self, now: Instant) -> Vec<usize> {
        self.seen
            .iter()
            .enumerate()
            .filter(|(_, (_, at))| now.saturating_duration_since(*at) >= STALL)
            .map(|(i, _)| i)
            .collect()
    }
}

/// `/healthz`: every worker is polling (the process answering is the rest of it).
pub fn health(stalled_lcores: &[u32], workers: usize) -> Result<String, String> {
    if stalled_lcores.is_empty() {
        Ok(format!("ok: {workers} workers polling\n"))
    } else {
        Err(format!(
            "workers on lcores {stalled_lcores:?} stopped polling\n"
        ))
    }
}

/// `/readyz`: healthy, the control loop answers, the ports are configured and at least
/// one link is up.
pub fn readiness(
    stalled_lcores: &[u32],
    workers: usize,
    devices: Option<&DeviceSnapshot>,
) -> Result<String, String> {
    health(stalled_lcores, workers)?;
    let Some(d) = devices else {
        return Err("the control loop does not answer\n".into());
    };
    if d.ports.is_empty() {
        return Err("no port is configured\n".into());
    }
    let up = d.ports.iter().filter(|p| p.link_up).count();
    if up == 0 {
        let names: Vec<&str> = d.ports.iter().map(|p| p.name.as_str()).collect();
        return Err(format!("no link is up (ports {})\n", names.join(", ")));
    }
    Ok(format!(
        "ready: {workers} workers, {up} of {} links up\n",
        d.ports.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::super::PortSample;
    use super::*;

    #[test]
    fn a_worker_whose_counter_stops_is_stalled_after_the_grace_time() {
        let t0 = Instant::now();
        let mut l = Liveness::new(2, t0);
        assert!(
            l.stalled(t0 + Duration::from_secs(1)).is_empty(),
            "start grace"
        );
        l.observe([10, 5], t0 + Duration::from_secs(1));
        l.observe([20, 5], t0 + Duration::from_secs(2));
        // Worker 1 last moved at 1 s, worker 0 at 2 s.
        let later = t0 + Duration::from_secs(1) + STALL;
        let none: Vec<usize> = Vec::new();
        assert_eq!(l.stalled(later - Duration::from_millis(1)), none);
        assert_eq!(l.stalled(later), vec![1]);
        let much_later = later + Duration::from_secs(1);
        l.observe([20, 6], much_later);
        assert_eq!(l.stalled(much_later), vec![0]);
    }

    fn port(name: &str, up: bool) -> PortSample {
        PortSample {
            name: name.into(),
            link_up: up,
            stats: None,
            ..PortSample::default()
        }
    }

    #[test]
    fn readiness_names_what_is_missing() {
        let down = DeviceSnapshot {
            ports: vec![port("a", false), port("b", false)],
            pools: vec![],
        };
        assert_eq!(
            readiness(&[], 1, Some(&down)).unwrap_err(),
            "no link is up (ports a, b)\n"
        );
        let one_up = DeviceSnapshot {
            ports: vec![port("a", false), port("b", true)],
            pools: vec![],
        };
        assert_eq!(
            readiness(&[], 1, Some(&one_up)).unwrap(),
            "ready: 1 workers, 1 of 2 links up\n"
        );
        assert!(readiness(&[3], 2, Some(&one_up))
            .unwrap_err()
            .contains("lcores [3]"));
        assert!(readiness(&[], 1, None)
            .unwrap_err()
            .contains("control loop"));
        assert!(readiness(&[], 1, Some(&DeviceSnapshot::default()))
            .unwrap_err()
            .contains("no port"));
    }
}
