//! From one scrape's figures to Prometheus text, through `prometheus-client`.
//!
//! Names: the `mpgw_` prefix, base units (seconds, bytes), `_total` on counters (added
//! by the encoder). Labels are bounded by the configuration or the code: `lcore` (a
//! worker), `port` (a `[[ports]]` name), `pool`, `state` and `reason` (fixed sets),
//! never a connection. The families:
//! - `mpgw_<counter>_total{lcore}` / `mpgw_<gauge>{lcore}`: every worker counter of
//!   `mpgw stats` under its own name (gauges are those documented as such), except
//!   `drop_not_for_us`, which is `drop_not_for_gateway` (promtool reads `us` as a unit),
//!   and those below that carry a `state` or `reason` label instead;
//! - `mpgw_lcore_poll_seconds_total{lcore,state}`: poll-loop time, busy or idle;
//! - `mpgw_mptcp_connections_by_state{lcore,state}`: connecting, established, closing,
//!   orphan, fallback;
//! - `mpgw_mptcp_fallbacks_total{lcore,reason}`: fallbacks to TCP from the MIB;
//! - `mpgw_path_subflows{port}`, `mpgw_path_srtt_seconds{port}`: established MPTCP
//!   subflows by the port their segments leave through, and their mean smoothed RTT;
//! - `mpgw_path_{sent,received,retransmitted,reinjected}_bytes_total{port}`: MPTCP
//!   subflows' payload through the port (sent: by the port it leaves by; received: by
//!   the port it came in by), TCP retransmissions and MPTCP reinjections among what
//!   was sent; failovers per port are `mpgw_port_link_downs_total`;
//! - `mpgw_mptcp_mib_<name>_total{lcore}`: the MPTCP MIB, Linux's `MPTcpExt<Name>`
//!   in snake case (the kernel-mirror exception to generated names);
//! - `mpgw_port_*{port}`: `rte_eth_stats`, the link state and its changes (and the
//!   LSC interrupts of ports that have them), the `rte_flow` steering of joined
//!   subflows (`port_flow_steering`, `port_flow_rules` and its counters);
//! - `mpgw_mempool_{available,in_use}_mbufs{pool}`, `mpgw_mempool_alloc_failures_total{pool}`;
//! - `mpgw_burst_duration_seconds`: histogram of busy poll iterations, all workers;
//! - `mpgw_connection_setup_duration_seconds`: histogram of handshake times, all workers.

use dataplane::mptcp::mib::Mib;
use dataplane::stats::{
    Counter, PathBytes, PathCounter, PathSample, Timing, COUNTERS, MIBS, PATH_PORTS,
};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::{DeviceSnapshot, PortSample};

/// Upper bounds of the burst-duration buckets, seconds (1 µs … 100 ms, 1-2-5 steps).
const BURST_BOUNDS: [f64; 16] = [
    1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1,
];

/// Upper bounds of the connection-setup buckets, seconds (100 µs … 10 s).
const SETUP_BOUNDS: [f64; 16] = [
    1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `state` label of `mptcp_connections_by_state` and each state's gauge.
const CONNECTION_STATES: [(&str, Counter); 5] = [
    ("connecting", Counter::MptcpConnecting),
    ("established", Counter::MptcpEstablished),
    ("closing", Counter::MptcpClosing),
    ("orphan", Counter::MptcpOrphans),
    ("fallback", Counter::MptcpFallbackOpen),
];

/// The `reason` label of `mptcp_fallbacks_total` and the MIB counter it sums (their
/// sum is the `mptcp_fallbacks` counter of `mpgw stats`).
const FALLBACK_REASONS: [(&str, Mib); 6] = [
    ("mp_capable_not_echoed_ack", Mib::MPCapableFallbackACK),
    ("mp_capable_not_echoed_synack", Mib::MPCapableFallbackSYNACK),
    ("dss_stripped", Mib::DssFallback),
    ("token_init", Mib::MPFallbackTokenInit),
    ("infinite_mapping_sent", Mib::InfiniteMapTx),
    ("infinite_mapping_received", Mib::InfiniteMapRx),
];

/// A path counter's family: its name (before `_bytes_total`) and help.
fn path_family(c: PathCounter) -> (&'static str, &'static str) {
    match c {
        PathCounter::Sent => (
            "path_sent",
            "Payload bytes MPTCP subflows sent through the port, retransmissions and \
             reinjections included, all workers.",
        ),
        PathCounter::Received => (
            "path_received",
            "Payload bytes MPTCP subflows received in order on the port (each byte \
             once per subflow), all workers.",
        ),
        PathCounter::Retransmitted => (
            "path_retransmitted",
            "Payload bytes TCP retransmitted on MPTCP subflows through the port \
             (part of path_sent), all workers.",
        ),
        PathCounter::Reinjected => (
            "path_reinjected",
            "Payload bytes MPTCP connections sent again through the port after \
             another subflow had carried them (reinjections, part of path_sent), all \
             workers.",
        ),
    }
}

/// A timing's histogram: its name (before `_seconds`), help and bucket bounds.
pub fn histogram_family(t: Timing) -> (&'static str, &'static str, &'static [f64]) {
    match t {
        Timing::Burst => (
            "burst_duration",
            "Duration of poll-loop iterations that received packets (RX burst to TX burst), \
             all workers.",
            &BURST_BOUNDS,
        ),
        Timing::Setup => (
            "connection_setup_duration",
            "Handshake time of connections: our first SYN or SYN-ACK out to established \
             (initial subflows; not for connections from SYN cookies), all workers.",
            &SETUP_BOUNDS,
        ),
    }
}

/// A histogram ready to encode: per-bucket (not cumulative) counts, the last one `+Inf`.
#[derive(Clone, Debug, Default)]
pub struct HistogramSample {
    /// Sum of the values, seconds.
    pub sum: f64,
    /// `(upper bound in seconds, values in this bucket)`, ascending, ending with
    /// `f64::INFINITY`.
    pub buckets: Vec<(f64, u64)>,
}

impl HistogramSample {
    /// The number of values.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|&(_, n)| n).sum()
    }
}

/// One worker's counters at scrape time.
#[derive(Clone, Debug)]
pub struct WorkerSample {
    /// Its lcore.
    pub lcore: u32,
    /// Indexed like [`Counter::ALL`].
    pub counters: [u64; COUNTERS],
    /// Indexed like [`Mib::ALL`].
    pub mib: [u64; MIBS],
    /// Its paths, indexed by port.
    pub paths: [PathSample; PATH_PORTS],
    /// Its path byte counters, indexed by port.
    pub path_bytes: [PathBytes; PATH_PORTS],
}

/// Everything one scrape shows.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    /// Per worker.
    pub workers: Vec<WorkerSample>,
    /// Ports and pools.
    pub devices: DeviceSnapshot,
    /// Every [`Timing`]'s histogram, all workers, since the start.
    pub histograms: [HistogramSample; 2],
}

/// The exposition formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics text 1.0.0 (what Prometheus asks for first).
    OpenMetrics,
    /// Prometheus text 0.0.4 (everything else: curl, promtool, older scrapers).
    Text,
}

impl Format {
    /// The format an `Accept` header asks for.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// Its `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// Renders a scrape.
pub fn render(scrape: Scrape, format: Format) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("mpgw");
    registry.register_collector(Box::new(scrape));
    let mut out = String::new();
    match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry)?,
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?,
    }
    Ok(out)
}

/// Linux's MIB name (`MPCapableSYNACKRX`) in snake case (`mp_capable_syn_ack_rx`):
/// all-caps protocol words become words first so that they split.
pub fn mib_metric_name(linux: &str) -> String {
    let mut s = linux.to_owned();
    for (from, to) in [
        ("SYNACK", "SynAck"),
        ("SYN", "Syn"),
        ("ACK", "Ack"),
        ("RX", "Rx"),
        ("TX", "Tx"),
        ("HMac", "Hmac"),
    ] {
        s = s.replace(from, to);
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// A worker counter's metric name: its `mpgw stats` name, except where promtool would
/// read a word as an abbreviated unit (`_us_`: microseconds).
fn counter_metric_name(c: Counter) -> &'static str {
    match c {
        Counter::DropNotForUs => "drop_not_for_gateway",
        _ => c.name(),
    }
}

/// A counter's help text: its doc comment on one line.
fn help(doc: &[&str]) -> String {
    doc.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ")
}

fn counter(m: &mut MetricEncoder, v: u64) -> std::fmt::Result {
    m.encode_counter::<NoLabelSet, u64, u64>(&v, None)
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        self.encode_workers(&mut enc)?;
        self.encode_mib(&mut enc)?;
        self.encode_ports(&mut enc)?;
        self.encode_paths(&mut enc)?;
        self.encode_pools(&mut enc)?;
        for t in Timing::ALL {
            let (name, help, _) = histogram_family(t);
            let h = &self.histograms[t as usize];
            let mut m =
                enc.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
            m.encode_histogram::<NoLabelSet>(h.sum, h.count(), &h.buckets, None)?;
        }
        Ok(())
    }
}

impl Scrape {
    fn encode_workers(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        let lcores: Vec<String> = self.workers.iter().map(|w| w.lcore.to_string()).collect();
        for &c in Counter::ALL {
            let labelled = c == Counter::MptcpFallbacks
                || CONNECTION_STATES
                    .iter()
                    .any(|&(_, s)| s == c && s != Counter::MptcpOrphans);
            if labelled
                || matches!(
                    c,
                    Counter::PollBusyNs | Counter::PollIdleNs | Counter::FailoverTimeUs
                )
            {
                continue;
            }
            let kind = if c.is_gauge() {
                MetricType::Gauge
            } else {
                MetricType::Counter
            };
            let mut m =
                enc.encode_descriptor(counter_metric_name(c), &help(c.doc()), None, kind)?;
            for (w, lcore) in self.workers.iter().zip(&lcores) {
                let labels = [("lcore", lcore.as_str())];
                let mut f = m.encode_family(&labels)?;
                let v = w.counters[c as usize];
                match kind {
                    MetricType::Gauge => f.encode_gauge(&v)?,
                    _ => counter(&mut f, v)?,
                }
            }
        }
        let mut m = enc.encode_descriptor(
            "lcore_poll",
            "Time workers spent in poll-loop iterations, by whether they received packets.",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?;
        for (w, lcore) in self.workers.iter().zip(&lcores) {
            for (state, c) in [("busy", Counter::PollBusyNs), ("idle", Counter::PollIdleNs)] {
                let labels = [("lcore", lcore.as_str()), ("state", state)];
                let secs = w.counters[c as usize] as f64 / 1e9;
                m.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, f64, f64>(&secs, None)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "mptcp_connections_by_state",
            "MPTCP-level connections by state: connecting (first handshake running), \
             established (MPTCP, data may flow), closing (a DATA_FIN or FIN sent or \
             received, or closed and not yet freed), orphan (no subflow left, waiting \
             close_timeout for a join), fallback (fell back to TCP, still open).",
            None,
            MetricType::Gauge,
        )?;
        for (w, lcore) in self.workers.iter().zip(&lcores) {
            for (state, c) in CONNECTION_STATES {
                let labels = [("lcore", lcore.as_str()), ("state", state)];
                m.encode_family(&labels)?
                    .encode_gauge(&w.counters[c as usize])?;
            }
        }
        let mut m = enc.encode_descriptor(
            "mptcp_fallbacks",
            "Connections that fell back to TCP, by reason (MIB MPCapableFallbackACK: \
             the third ACK lacked MP_CAPABLE; MPCapableFallbackSYNACK: the SYN-ACK \
             lacked it; DssFallback: DSS options stripped; MPFallbackTokenInit: no \
             token; InfiniteMapTx/InfiniteMapRx: infinite mapping sent/received).",
            None,
            MetricType::Counter,
        )?;
        for (w, lcore) in self.workers.iter().zip(&lcores) {
            for (reason, mib) in FALLBACK_REASONS {
                let labels = [("lcore", lcore.as_str()), ("reason", reason)];
                counter(&mut m.encode_family(&labels)?, w.mib[mib as usize])?;
            }
        }
        let mut m = enc.encode_descriptor(
            "failover",
            "Failover time summed over the ports whose link went down: detection until \
             the moved connections' data in flight was acknowledged.",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?;
        for (w, lcore) in self.workers.iter().zip(&lcores) {
            let secs = w.counters[Counter::FailoverTimeUs as usize] as f64 / 1e6;
            m.encode_family(&[("lcore", lcore.as_str())])?
                .encode_counter::<NoLabelSet, f64, f64>(&secs, None)?;
        }
        Ok(())
    }

    fn encode_mib(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        for &mib in Mib::ALL {
            let name = format!("mptcp_mib_{}", mib_metric_name(mib.name()));
            let help = format!("Linux's MPTcpExt{} (nstat), for this worker.", mib.name());
            let mut m = enc.encode_descriptor(&name, &help, None, MetricType::Counter)?;
            for w in &self.workers {
                let lcore = w.lcore.to_string();
                let labels = [("lcore", lcore.as_str())];
                counter(&mut m.encode_family(&labels)?, w.mib[mib as usize])?;
            }
        }
        Ok(())
    }

    fn encode_ports(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        type Field = fn(&PortSample) -> Option<u64>;
        let fields: [(&str, &str, Field); 8] = [
            (
                "port_rx_packets",
                "Packets received (rte_eth_stats ipackets).",
                |p| p.stats.map(|s| s.rx_packets),
            ),
            ("port_tx_packets", "Packets sent (opackets).", |p| {
                p.stats.map(|s| s.tx_packets)
            }),
            ("port_rx_bytes", "Bytes received (ibytes).", |p| {
                p.stats.map(|s| s.rx_bytes)
            }),
            ("port_tx_bytes", "Bytes sent (obytes).", |p| {
                p.stats.map(|s| s.tx_bytes)
            }),
            (
                "port_rx_missed_packets",
                "Packets the device dropped: RX queues full (imissed).",
                |p| p.stats.map(|s| s.rx_missed),
            ),
            (
                "port_rx_nombuf",
                "RX mbuf allocation failures (rx_nombuf).",
                |p| p.stats.map(|s| s.rx_nombuf),
            ),
            (
                "port_rx_errors",
                "Erroneous packets received (ierrors).",
                |p| p.stats.map(|s| s.rx_errors),
            ),
            ("port_tx_errors", "Failed transmissions (oerrors).", |p| {
                p.stats.map(|s| s.tx_errors)
            }),
        ];
        for (name, help, field) in fields {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for p in &self.devices.ports {
                if let Some(v) = field(p) {
                    let labels = [("port", p.name.as_str())];
                    counter(&mut m.encode_family(&labels)?, v)?;
                }
            }
        }
        let mut m = enc.encode_descriptor(
            "port_link_up",
            "1 while the port's link is up.",
            None,
            MetricType::Gauge,
        )?;
        for p in &self.devices.ports {
            let labels = [("port", p.name.as_str())];
            m.encode_family(&labels)?
                .encode_gauge(&u64::from(p.link_up))?;
        }
        let mut m = enc.encode_descriptor(
            "port_link_downs",
            "Times the port's link went down (each one a failover of its subflows).",
            None,
            MetricType::Counter,
        )?;
        for p in &self.devices.ports {
            let labels = [("port", p.name.as_str())];
            counter(&mut m.encode_family(&labels)?, p.link_downs)?;
        }
        let mut m = enc.encode_descriptor(
            "port_last_failover",
            "The port's last failover time: link-down detection until the moved \
             connections' data in flight was acknowledged (0: none yet).",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        for p in &self.devices.ports {
            let labels = [("port", p.name.as_str())];
            let secs = p.last_failover_us as f64 / 1e6;
            m.encode_family(&labels)?.encode_gauge(&secs)?;
        }
        let mut m = enc.encode_descriptor(
            "port_lsc_events",
            "Link-state-change interrupts of the port (only ports whose PMD has them; \
             each wakes the link monitor at once).",
            None,
            MetricType::Counter,
        )?;
        for p in &self.devices.ports {
            if let Some(n) = p.lsc_events {
                let labels = [("port", p.name.as_str())];
                counter(&mut m.encode_family(&labels)?, n)?;
            }
        }
        self.encode_flows(enc)
    }

    fn encode_flows(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        let ports = &self.devices.ports;
        let mut m = enc.encode_descriptor(
            "port_flow_steering",
            "1 when the port's PMD validated the rte_flow rule that steers joined \
             subflows to their owner worker's queue (probed at start; [dataplane] \
             flow_rules > 0).",
            None,
            MetricType::Gauge,
        )?;
        for p in ports {
            let labels = [("port", p.name.as_str())];
            m.encode_family(&labels)?
                .encode_gauge(&u64::from(p.flow_steering))?;
        }
        let mut m = enc.encode_descriptor(
            "port_flow_rules",
            "rte_flow rules steering joined subflows to their owner worker's queue in \
             place on the port.",
            None,
            MetricType::Gauge,
        )?;
        for p in ports {
            let labels = [("port", p.name.as_str())];
            m.encode_family(&labels)?.encode_gauge(&p.flows.active)?;
        }
        type Field = fn(&crate::flow::FlowStats) -> u64;
        let counters: [(&str, &str, Field); 4] = [
            (
                "port_flow_rules_installed",
                "Steering rules installed on the port at the workers' request.",
                |f| f.installed,
            ),
            (
                "port_flow_rules_removed",
                "Steering rules removed from the port (their subflow closed, or shutdown).",
                |f| f.removed,
            ),
            (
                "port_flow_rules_failed",
                "Steering rules the port's PMD refused to install or remove.",
                |f| f.failed,
            ),
            (
                "port_flow_rules_refused",
                "Steering requests refused: the port had [dataplane] flow_rules rules.",
                |f| f.refused,
            ),
        ];
        for (name, help, field) in counters {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for p in ports {
                let labels = [("port", p.name.as_str())];
                counter(&mut m.encode_family(&labels)?, field(&p.flows))?;
            }
        }
        Ok(())
    }

    fn encode_paths(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        let ports = &self.devices.ports;
        let mut total = vec![PathSample::default(); ports.len().min(PATH_PORTS)];
        for w in &self.workers {
            for (t, p) in total.iter_mut().zip(&w.paths) {
                t.subflows += p.subflows;
                t.rtt_samples += p.rtt_samples;
                t.srtt_sum_ns = t.srtt_sum_ns.saturating_add(p.srtt_sum_ns);
            }
        }
        let mut m = enc.encode_descriptor(
            "path_subflows",
            "Established subflows of established MPTCP connections whose segments leave \
             through the port (the peer is on its subnet, else the port has the local \
             address), all workers.",
            None,
            MetricType::Gauge,
        )?;
        for (p, t) in ports.iter().zip(&total) {
            let labels = [("port", p.name.as_str())];
            m.encode_family(&labels)?.encode_gauge(&t.subflows)?;
        }
        let mut m = enc.encode_descriptor(
            "path_srtt",
            "Mean smoothed RTT of those subflows that measured one (absent without any).",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        for (p, t) in ports.iter().zip(&total) {
            if t.rtt_samples > 0 {
                let secs = t.srtt_sum_ns as f64 / t.rtt_samples as f64 / 1e9;
                let labels = [("port", p.name.as_str())];
                m.encode_family(&labels)?.encode_gauge(&secs)?;
            }
        }
        let mut bytes = vec![PathBytes::default(); ports.len().min(PATH_PORTS)];
        for w in &self.workers {
            for (t, p) in bytes.iter_mut().zip(&w.path_bytes) {
                for (t, v) in t.iter_mut().zip(p) {
                    *t = t.wrapping_add(*v);
                }
            }
        }
        for c in PathCounter::ALL {
            let (name, help) = path_family(c);
            let mut m =
                enc.encode_descriptor(name, help, Some(&Unit::Bytes), MetricType::Counter)?;
            for (p, b) in ports.iter().zip(&bytes) {
                let labels = [("port", p.name.as_str())];
                counter(&mut m.encode_family(&labels)?, b[c as usize])?;
            }
        }
        Ok(())
    }

    fn encode_pools(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        type Field = fn(&super::PoolSample) -> u64;
        let fields: [(&str, &str, Field); 2] = [
            (
                "mempool_available_mbufs",
                "Mbufs that can still be allocated (per-lcore caches count as free).",
                |p| p.available,
            ),
            (
                "mempool_in_use_mbufs",
                "Mbufs allocated: in rings, in flight, or held by connections.",
                |p| p.in_use,
            ),
        ];
        for (name, help, field) in fields {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for p in &self.devices.pools {
                let labels = [("pool", p.name.as_str())];
                m.encode_family(&labels)?.encode_gauge(&field(p))?;
            }
        }
        let mut m = enc.encode_descriptor(
            "mempool_alloc_failures",
            "Mbuf allocations that failed: the ports' RX refills (rx_nombuf, all ports) \
             plus segments the workers could not send for want of a buffer \
             (tx_no_buffer, all workers). Every port and worker allocates from this \
             pool, mpgw's only one.",
            None,
            MetricType::Counter,
        )?;
        if let Some(pool) = self.devices.pools.first() {
            let rx: u64 = self
                .devices
                .ports
                .iter()
                .filter_map(|p| p.stats)
                .map(|s| s.rx_nombuf)
                .sum();
            let tx: u64 = self
                .workers
                .iter()
                .map(|w| w.counters[Counter::TxNoBuffer as usize])
                .sum();
            let labels = [("pool", pool.name.as_str())];
            counter(&mut m.encode_family(&labels)?, rx.wrapping_add(tx))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{PoolSample, PortCounters};
    use super::*;
    use std::collections::HashMap;

    /// Name parts promtool flags as abbreviated units.
    const ABBREVIATIONS: [&str; 14] = [
        "s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d",
    ];

    fn scrape() -> Scrape {
        let mut counters = [0; COUNTERS];
        counters[Counter::RxPackets as usize] = 42;
        counters[Counter::TcpConnections as usize] = 3;
        counters[Counter::PollBusyNs as usize] = 1_500_000_000;
        counters[Counter::MptcpEstablished as usize] = 4;
        counters[Counter::MptcpOrphans as usize] = 1;
        counters[Counter::TxNoBuffer as usize] = 5;
        let mut mib = [0; MIBS];
        mib[Mib::MPCapableSYNRX as usize] = 7;
        mib[Mib::DssFallback as usize] = 2;
        mib[Mib::InfiniteMapRx as usize] = 1;
        let mut paths = [PathSample::default(); PATH_PORTS];
        paths[0] = PathSample {
            subflows: 3,
            rtt_samples: 2,
            srtt_sum_ns: 30_000_000,
        };
        // A port the snapshot does not know: not shown.
        paths[1].subflows = 9;
        let mut path_bytes = [PathBytes::default(); PATH_PORTS];
        path_bytes[0] = [5000, 7000, 300, 200];
        path_bytes[1] = [1, 1, 1, 1];
        let worker = |lcore| WorkerSample {
            lcore,
            counters,
            mib,
            paths,
            path_bytes,
        };
        Scrape {
            workers: vec![worker(1), worker(2)],
            devices: DeviceSnapshot {
                ports: vec![PortSample {
                    name: "down0".into(),
                    link_up: true,
                    link_downs: 2,
                    last_failover_us: 1_500,
                    lsc_events: Some(4),
                    flow_steering: true,
                    flows: crate::flow::FlowStats {
                        installed: 5,
                        removed: 3,
                        refused: 1,
                        active: 2,
                        ..Default::default()
                    },
                    stats: Some(PortCounters {
                        rx_packets: 10,
                        rx_bytes: 1000,
                        rx_nombuf: 3,
                        ..PortCounters::default()
                    }),
                }],
                pools: vec![PoolSample {
                    name: "mpgw_pool".into(),
                    in_use: 100,
                    available: 900,
                }],
            },
            histograms: [
                HistogramSample {
                    sum: 0.25,
                    buckets: BURST_BOUNDS
                        .iter()
                        .map(|&b| (b, 1))
                        .chain([(f64::INFINITY, 2)])
                        .collect(),
                },
                HistogramSample::default(),
            ],
        }
    }

    /// `name` → (TYPE, samples as `(series, value)`), from Prometheus text 0.0.4.
    fn parse(text: &str) -> HashMap<String, (String, Vec<(String, String)>)> {
        let mut families: HashMap<String, (String, Vec<(String, String)>)> = HashMap::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                current = name.to_owned();
                families.insert(current.clone(), (kind.to_owned(), Vec::new()));
            } else if !line.starts_with('#') && !line.is_empty() {
                let (series, value) = line.rsplit_once(' ').unwrap();
                let name = series.split('{').next().unwrap();
                assert!(
                    name.starts_with(&current),
                    "{name} outside its family {current}"
                );
                let fam = families.get_mut(&current).unwrap();
                fam.1.push((series.to_owned(), value.to_owned()));
            }
        }
        families
    }

    #[test]
    fn names_types_and_total_suffixes() {
        let text = render(scrape(), Format::Text).unwrap();
        let f = parse(&text);
        for (name, (kind, samples)) in &f {
            assert!(name.starts_with("mpgw_"), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
            assert_eq!(
                kind == "counter",
                name.ends_with("_total"),
                "{name}: {kind}"
            );
            assert!(
                name.split('_')
                    .all(|w| !w.is_empty() && !ABBREVIATIONS.contains(&w)),
                "{name}"
            );
            if kind != "histogram" {
                assert!(samples.iter().all(|(s, _)| s.starts_with(name.as_str())));
            }
        }
        assert_eq!(f["mpgw_rx_packets_total"].0, "counter");
        assert!(f["mpgw_rx_packets_total"]
            .1
            .contains(&("mpgw_rx_packets_total{lcore=\"2\"}".into(), "42".into())));
        assert_eq!(f["mpgw_tcp_connections"].0, "gauge");
        assert_eq!(f["mpgw_tcp_connections"].1.len(), 2);
        assert!(f["mpgw_lcore_poll_seconds_total"].1.contains(&(
            "mpgw_lcore_poll_seconds_total{lcore=\"1\",state=\"busy\"}".into(),
            "1.5".into()
        )));
        assert!(!f.contains_key("mpgw_poll_busy_ns_total"));
        assert_eq!(
            f["mpgw_mptcp_mib_mp_capable_syn_rx_total"].1[0].1, "7",
            "MIB"
        );
        assert!(f["mpgw_port_rx_bytes_total"].1.contains(&(
            "mpgw_port_rx_bytes_total{port=\"down0\"}".into(),
            "1000".into()
        )));
        assert_eq!(f["mpgw_port_link_up"].1[0].1, "1");
        assert_eq!(f["mpgw_port_link_downs_total"].0, "counter");
        assert_eq!(f["mpgw_port_link_downs_total"].1[0].1, "2");
        assert_eq!(f["mpgw_port_last_failover_seconds"].0, "gauge");
        assert_eq!(f["mpgw_port_last_failover_seconds"].1[0].1, "0.0015");
        assert_eq!(f["mpgw_port_lsc_events_total"].0, "counter");
        assert_eq!(f["mpgw_port_lsc_events_total"].1[0].1, "4");
        for (name, kind, value) in [
            ("mpgw_port_flow_steering", "gauge", "1"),
            ("mpgw_port_flow_rules", "gauge", "2"),
            ("mpgw_port_flow_rules_installed_total", "counter", "5"),
            ("mpgw_port_flow_rules_removed_total", "counter", "3"),
            ("mpgw_port_flow_rules_failed_total", "counter", "0"),
            ("mpgw_port_flow_rules_refused_total", "counter", "1"),
        ] {
            assert_eq!(f[name].0, kind, "{name}");
            assert_eq!(
                f[name].1,
                [(format!("{name}{{port=\"down0\"}}"), value.to_owned())],
                "{name}"
            );
        }
        assert_eq!(f["mpgw_mempool_available_mbufs"].1[0].1, "900");
        // Every worker counter and MIB counter is there, under its own name or in a
        // labelled family: poll time (2 counters), connections by state (4 gauges and
        // the orphans, which keep their own gauge too) and fallbacks.
        let per_worker = f
            .keys()
            .filter(|n| f[*n].1.iter().any(|(s, _)| s.contains("lcore=\"1\"}")))
            .count();
        assert_eq!(per_worker, COUNTERS - 2 - 4 - 1 + MIBS);
        assert!(!f.contains_key("mpgw_mptcp_established"));
        assert_eq!(f["mpgw_mptcp_orphans"].0, "gauge");
    }

    #[test]
    fn connection_states_fallback_reasons_paths_and_alloc_failures() {
        let f = parse(&render(scrape(), Format::Text).unwrap());
        let (kind, states) = &f["mpgw_mptcp_connections_by_state"];
        assert_eq!(kind, "gauge");
        assert_eq!(states.len(), 2 * 5);
        for (state, v) in [("established", "4"), ("orphan", "1"), ("connecting", "0")] {
            let series =
                format!("mpgw_mptcp_connections_by_state{{lcore=\"2\",state=\"{state}\"}}");
            assert!(states.contains(&(series, v.into())), "{state}: {states:?}");
        }
        let (kind, reasons) = &f["mpgw_mptcp_fallbacks_total"];
        assert_eq!(kind, "counter");
        assert_eq!(reasons.len(), 2 * FALLBACK_REASONS.len());
        let sum: u64 = reasons.iter().map(|(_, v)| v.parse::<u64>().unwrap()).sum();
        assert_eq!(sum, 2 * 3, "DssFallback + InfiniteMapRx, two workers");
        assert!(reasons.contains(&(
            "mpgw_mptcp_fallbacks_total{lcore=\"1\",reason=\"dss_stripped\"}".into(),
            "2".into()
        )));
        assert_eq!(
            f["mpgw_path_subflows"],
            (
                "gauge".into(),
                vec![("mpgw_path_subflows{port=\"down0\"}".into(), "6".into())]
            )
        );
        // Path byte counters: summed over the two workers, known ports only.
        for (name, v) in [
            ("mpgw_path_sent_bytes_total", "10000"),
            ("mpgw_path_received_bytes_total", "14000"),
            ("mpgw_path_retransmitted_bytes_total", "600"),
            ("mpgw_path_reinjected_bytes_total", "400"),
        ] {
            assert_eq!(
                f[name],
                (
                    "counter".into(),
                    vec![(format!("{name}{{port=\"down0\"}}"), v.into())]
                ),
                "{name}"
            );
        }
        // 60 ms over 4 measured subflows.
        assert_eq!(
            f["mpgw_path_srtt_seconds"].1,
            [(
                "mpgw_path_srtt_seconds{port=\"down0\"}".into(),
                "0.015".into()
            )]
        );
        assert_eq!(
            f["mpgw_mempool_alloc_failures_total"],
            (
                "counter".into(),
                vec![(
                    "mpgw_mempool_alloc_failures_total{pool=\"mpgw_pool\"}".into(),
                    "13".into()
                )]
            ),
            "3 rx_nombuf + 2 × 5 tx_no_buffer"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_the_count() {
        let text = render(scrape(), Format::Text).unwrap();
        let f = parse(&text);
        let (kind, samples) = &f["mpgw_burst_duration_seconds"];
        assert_eq!(kind, "histogram");
        let buckets: Vec<(f64, u64)> = samples
            .iter()
            .filter(|(s, _)| s.contains("_bucket"))
            .map(|(s, v)| {
                let le = s.split("le=\"").nth(1).unwrap().trim_end_matches("\"}");
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                (le, v.parse().unwrap())
            })
            .collect();
        assert_eq!(buckets.len(), BURST_BOUNDS.len() + 1);
        assert!(buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        let count = samples.iter().find(|(s, _)| s.ends_with("_count")).unwrap();
        assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, 18));
        assert_eq!(count.1, "18");
        assert!(samples.contains(&("mpgw_burst_duration_seconds_sum".into(), "0.25".into())));
    }

    #[test]
    fn openmetrics_has_units_and_eof() {
        let text = render(scrape(), Format::OpenMetrics).unwrap();
        assert!(text.ends_with("# EOF\n"));
        assert!(text.contains("# TYPE mpgw_rx_packets counter\n"));
        assert!(text.contains("# UNIT mpgw_burst_duration_seconds seconds\n"));
        assert!(text.contains("mpgw_rx_packets_total{lcore=\"1\"} 42\n"));
    }

    #[test]
    fn accept_picks_the_format() {
        let prom = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
        assert_eq!(Format::from_accept(Some(prom)), Format::OpenMetrics);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Text);
        assert_eq!(Format::from_accept(None), Format::Text);
        assert!(Format::Text
            .content_type()
            .starts_with("text/plain; version=0.0.4"));
    }

    #[test]
    fn mib_names_are_snake_case_words() {
        for (linux, want) in [
            ("MPCapableSYNACKRX", "mp_capable_syn_ack_rx"),
            ("MPCapableFallbackSYNACK", "mp_capable_fallback_syn_ack"),
            ("MPJoinSynAckHMacFailure", "mp_join_syn_ack_hmac_failure"),
            ("MPTCPRetrans", "mptcp_retrans"),
            ("NoDSSInWindow", "no_dss_in_window"),
            ("OFOQueue", "ofo_queue"),
            ("MPCapableSYNTXDrop", "mp_capable_syn_tx_drop"),
        ] {
            assert_eq!(mib_metric_name(linux), want);
        }
        let mut names: Vec<String> = Mib::ALL.iter().map(|m| mib_metric_name(m.name())).collect();
        for n in &names {
            assert!(
                n.split('_')
                    .all(|w| !w.is_empty() && !ABBREVIATIONS.contains(&w)),
                "{n}"
            );
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), MIBS);
    }
}
