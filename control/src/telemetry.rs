//! mpgw's commands on DPDK's telemetry socket: `/mpgw/stats` (merged worker counters
//! and the MPTCP MIB), `/mpgw/ports` (per-port link and ethdev counters) and
//! `/mpgw/workers` (each worker's counters, by lcore).
//!
//! DPDK answers them from its telemetry thread: the handlers only read the last
//! `stats` document the control loop [`Published::update`]s (every few ticks), never
//! worker state.

use dataplane::dpdk::telemetry::{self, Answer, Scalar, Value as Tel};
use serde_json::{Map, Value};
use std::sync::{Arc, Mutex, PoisonError};

/// The counters document the telemetry handlers answer from.
#[derive(Clone, Default)]
pub struct Published(Arc<Mutex<Value>>);

impl Published {
    /// Replaces the published document (the admin socket's `stats` answer).
    pub fn update(&self, stats: Value) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = stats;
    }

    fn read<T>(&self, f: impl FnOnce(&Value) -> T) -> T {
        f(&self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Registers the `/mpgw/…` commands.
    pub fn register(&self) -> anyhow::Result<()> {
        let p = self.clone();
        telemetry::register(
            "/mpgw/stats",
            "mpgw counters of all workers merged, and the MPTcpExt MIB",
            move |_| p.read(stats),
        )?;
        let p = self.clone();
        telemetry::register(
            "/mpgw/ports",
            "mpgw ports: link state and ethdev counters by port name",
            move |_| p.read(ports),
        )?;
        let p = self.clone();
        telemetry::register(
            "/mpgw/workers",
            "mpgw counters of each worker, by lcore",
            move |_| p.read(workers),
        )?;
        Ok(())
    }
}

/// A JSON scalar as a telemetry scalar (booleans as 0/1); `None` for the rest.
fn scalar(v: &Value) -> Option<Scalar> {
    match v {
        Value::Number(n) => n.as_u64().map(Scalar::U64),
        Value::Bool(b) => Some(Scalar::U64(u64::from(*b))),
        Value::String(s) => Some(Scalar::Str(s.clone())),
        _ => None,
    }
}

/// A JSON object as a dictionary of scalars (nested values left out).
fn dict(m: Option<&Map<String, Value>>) -> Vec<(String, Scalar)> {
    m.into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), scalar(v)?)))
        .collect()
}

/// `/mpgw/stats`: the merged counters, then the MIB as a nested dictionary.
fn stats(doc: &Value) -> Answer {
    let mut out: Answer = dict(doc["total"].as_object())
        .into_iter()
        .map(|(k, v)| match v {
            Scalar::U64(n) => (k, Tel::U64(n)),
            Scalar::Str(s) => (k, Tel::Str(s)),
        })
        .collect();
    out.push((
        "mptcp_mib".into(),
        Tel::Dict(dict(doc["mptcp_mib"].as_object())),
    ));
    out
}

/// `/mpgw/ports`: one dictionary per port name.
fn ports(doc: &Value) -> Answer {
    doc["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let name = p["name"].as_str().unwrap_or("?").to_owned();
            (name, Tel::Dict(dict(p.as_object())))
        })
        .collect()
}

/// `/mpgw/workers`: one dictionary per worker, `lcore_<id>`.
fn workers(doc: &Value) -> Answer {
    doc["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            let name = format!("lcore_{}", w["lcore"]);
            (name, Tel::Dict(dict(w["counters"].as_object())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "total": {"rx_packets": 7, "tx_packets": 5},
            "mptcp_mib": {"MPTcpExtMPCapableSYNRX": 1},
            "workers": [{"lcore": 1, "counters": {"rx_packets": 7}}],
            "ports": [{"name": "down0", "link_up": true, "rx_packets": 4}],
        })
    }

    #[test]
    fn the_stats_document_maps_to_telemetry_dictionaries() {
        let s = stats(&doc());
        assert_eq!(s[0], ("rx_packets".into(), Tel::U64(7)));
        assert_eq!(
            s[2],
            (
                "mptcp_mib".into(),
                Tel::Dict(vec![("MPTcpExtMPCapableSYNRX".into(), Scalar::U64(1))])
            )
        );
        let p = ports(&doc());
        assert_eq!(p[0].0, "down0");
        assert_eq!(
            p[0].1,
            Tel::Dict(vec![
                ("name".into(), Scalar::Str("down0".into())),
                ("link_up".into(), Scalar::U64(1)),
                ("rx_packets".into(), Scalar::U64(4)),
            ])
        );
        let w = workers(&doc());
        assert_eq!(w[0].0, "lcore_1");
        assert!(
            stats(&Value::Null).len() == 1,
            "nothing published yet: only the empty MIB"
        );
    }
}
