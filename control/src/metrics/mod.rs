//! The Prometheus endpoint (`[metrics] listen`): `/metrics`, `/healthz`, `/readyz`.
//!
//! One plain std thread serves it, away from the worker lcores: a small hand-written
//! HTTP/1.1 handler ([`http`]) on a `TcpListener` — a crate like tiny_http would only add
//! a thread pool that a loopback scrape endpoint does not need, and nothing async is
//! wanted in this process. Connections are served one at a time with short timeouts, so
//! a slow client delays the others by at most those timeouts and never the workers.
//!
//! Where the figures come from, without a lock on the packet path:
//! - worker counters and the MPTCP MIB: the workers' single-writer atomics
//!   ([`dataplane::stats::CounterReader`]), read directly at scrape time;
//! - the burst-duration and connection-setup histograms: each worker records into its
//!   own HDR histograms and ships them every 256 polls over a bounded channel with `try_send`, swapping in a
//!   spare that this thread handed back ([`dataplane::stats::latency`]); this thread
//!   collects every [`DRAIN_EVERY`] (and at each scrape), adds what arrived into one
//!   cumulative histogram per kind (never reset, so buckets only grow) and encodes fixed
//!   second-based buckets from it;
//! - ports and the mbuf pool: DPDK handles the control loop owns. This thread asks the
//!   control loop for a [`DeviceSnapshot`] through a channel the loop polls on its tick
//!   ([`Server::poll`]); a snapshot is reused for [`DEVICE_MAX_AGE`] so that frequent
//!   scrapes don't keep the control loop busy.
//!
//! `/metrics` answers OpenMetrics 1.0.0 when the `Accept` header asks for it (Prometheus
//! does) and Prometheus text 0.0.4 otherwise, with the matching `Content-Type`; see
//! [`encode`] for the names.

mod encode;
mod health;
mod http;

use anyhow::Context;
use crossbeam::channel::{bounded, Receiver, Sender};
use dataplane::stats::{Counter, CounterReader, Latencies, Timing};
use encode::{Format, HistogramSample, Scrape, WorkerSample};
use health::Liveness;
use http::Response;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a device snapshot is reused.
pub const DEVICE_MAX_AGE: Duration = Duration::from_millis(500);
/// How long a scrape waits for the control loop's device snapshot.
const CONTROL_WAIT: Duration = Duration::from_secs(2);
/// How long one client may take to send its request or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause of the accept loop when no client waits.
const IDLE_WAIT: Duration = Duration::from_millis(10);
/// How often the workers' shipped histograms are collected (and their spares returned)
/// between scrapes.
pub const DRAIN_EVERY: Duration = Duration::from_millis(100);

/// A port's counters (`rte_eth_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets the device dropped because RX queues were full.
    pub rx_missed: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
    /// Erroneous packets received.
    pub rx_errors: u64,
    /// Failed transmissions.
    pub tx_errors: u64,
}

/// One port as the control loop sees it.
#[derive(Clone, Debug, Default)]
pub struct PortSample {
    /// The port's configured name.
    pub name: String,
    /// Link up, as the link monitor sees it (the kernel's view for `net_af_packet`).
    pub link_up: bool,
    /// Times the link went down.
    pub link_downs: u64,
    /// The last failover's time, µs (0: none yet).
    pub last_failover_us: u64,
    /// Link-state-change interrupts so far; `None` when the port has none.
    pub lsc_events: Option<u64>,
    /// The port's PMD validated the rule that steers joined subflows (probed at
    /// start unless `[dataplane] flow_rules` is 0).
    pub flow_steering: bool,
    /// Its steering rules' counters.
    pub flows: crate::flow::FlowStats,
    /// Its counters; `None` when the driver could not tell.
    pub stats: Option<PortCounters>,
}

/// One mbuf pool.
#[derive(Clone, Debug, Default)]
pub struct PoolSample {
    /// The pool's name.
    pub name: String,
    /// Mbufs allocated.
    pub in_use: u64,
    /// Mbufs that can still be allocated.
    pub available: u64,
}

/// What only the control loop can read: ports and pools.
#[derive(Clone, Debug, Default)]
pub struct DeviceSnapshot {
    /// Every configured port.
    pub ports: Vec<PortSample>,
    /// Every mbuf pool.
    pub pools: Vec<PoolSample>,
}

/// The bound listening socket, before the workers run.
pub struct Endpoint {
    listener: TcpListener,
    addr: SocketAddr,
}

impl Endpoint {
    /// Listens on `addr` (`[metrics] listen`).
    pub fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .with_context(|| format!("metrics.listen: cannot listen on {addr}"))?;
        listener.set_nonblocking(true)?;
        Ok(Self { listener, addr })
    }

    /// Starts serving the workers' counters, given as `(lcore, reader)`.
    pub fn serve(self, workers: Vec<(u32, CounterReader)>) -> anyhow::Result<Server> {
        let (request_tx, requests) = bounded(4);
        let stop = Arc::new(AtomicBool::new(false));
        let mut state = State {
            liveness: Liveness::new(workers.len(), Instant::now()),
            workers,
            control: request_tx,
            devices: None,
            totals: Timing::ALL.map(|_| Latencies::new()),
            drained: Instant::now(),
        };
        let listener = self.listener;
        let thread = std::thread::Builder::new()
            .name("mpgw-metrics".into())
            .spawn({
                let stop = stop.clone();
                move || state.run(&listener, &stop)
            })
            .context("cannot start the metrics thread")?;
        tracing::info!(addr = %self.addr, "metrics endpoint listening");
        Ok(Server {
            requests,
            stop,
            thread,
        })
    }
}

/// The running endpoint, as the control loop holds it.
pub struct Server {
    requests: Receiver<Sender<DeviceSnapshot>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Server {
    /// Answers the endpoint's requests for a device snapshot, if any (call on every
    /// control-loop tick); `snapshot` runs at most once.
    pub fn poll(&self, snapshot: impl FnOnce() -> DeviceSnapshot) {
        let mut snapshot = Some(snapshot);
        let mut taken = None;
        while let Ok(reply) = self.requests.try_recv() {
            if taken.is_none() {
                taken = snapshot.take().map(|f| f());
            }
            if let Some(s) = &taken {
                let _ = reply.try_send(s.clone());
            }
        }
    }

    /// Stops the endpoint and waits for its thread (it drops its counter readers).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        if self.thread.join().is_err() {
            tracing::error!("the metrics thread panicked");
        }
    }
}

/// The serving thread's state.
struct State {
    workers: Vec<(u32, CounterReader)>,
    liveness: Liveness,
    control: Sender<Sender<DeviceSnapshot>>,
    devices: Option<(Instant, DeviceSnapshot)>,
    /// Every worker's durations so far, indexed by [`Timing`].
    totals: [Option<Latencies>; 2],
    /// When the workers' histograms were last collected.
    drained: Instant,
}

impl State {
    fn run(&mut self, listener: &TcpListener, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            self.observe();
            match listener.accept() {
                Ok((stream, peer)) => {
                    if let Err(e) = self.serve(stream) {
                        tracing::debug!(%peer, "metrics client: {e}");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(IDLE_WAIT)
                }
                Err(e) => {
                    tracing::warn!("metrics endpoint: accept failed: {e}");
                    std::thread::sleep(IDLE_WAIT);
                }
            }
        }
    }

    /// Notes the workers' progress; collects their histograms when due.
    fn observe(&mut self) {
        let polls = self.workers.iter().map(|(_, r)| r.get(Counter::Polls));
        self.liveness.observe(polls, Instant::now());
        if self.drained.elapsed() >= DRAIN_EVERY {
            self.drain();
        }
    }

    /// Adds what the workers shipped into the cumulative histograms.
    fn drain(&mut self) {
        for t in Timing::ALL {
            if let Some(total) = &mut self.totals[t as usize] {
                for (_, r) in &self.workers {
                    r.drain(t, total);
                }
            }
        }
        self.drained = Instant::now();
    }

    fn serve(&mut self, mut stream: TcpStream) -> std::io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
        let req = match http::read_request(&mut stream) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Response::text(400, format!("{e}\n")).write_to(&mut stream, false);
            }
            Err(e) => return Err(e),
        };
        let head_only = req.method == "HEAD";
        let response = if req.method != "GET" && !head_only {
            Response::text(405, "only GET and HEAD\n")
        } else {
            self.route(&req.path, req.accept.as_deref())
        };
        response.write_to(&mut stream, head_only)
    }

    fn route(&mut self, path: &str, accept: Option<&str>) -> Response {
        match path {
            "/metrics" => self.metrics(Format::from_accept(accept)),
            "/healthz" => {
                self.observe();
                status(health::health(&self.stalled(), self.workers.len()))
            }
            "/readyz" => {
                self.observe();
                let devices = self.devices().cloned();
                status(health::readiness(
                    &self.stalled(),
                    self.workers.len(),
                    devices.as_ref(),
                ))
            }
            _ => Response::text(404, "not found: try /metrics, /healthz or /readyz\n"),
        }
    }

    fn stalled(&self) -> Vec<u32> {
        let stalled = self.liveness.stalled(Instant::now());
        stalled.iter().map(|&i| self.workers[i].0).collect()
    }

    fn metrics(&mut self, format: Format) -> Response {
        let devices = self.devices().cloned().unwrap_or_default();
        let workers = self
            .workers
            .iter()
            .map(|(lcore, r)| WorkerSample {
                lcore: *lcore,
                counters: r.snapshot(),
                mib: r.mib_snapshot(),
                paths: r.paths(),
                path_bytes: r.path_bytes(),
            })
            .collect();
        let scrape = Scrape {
            workers,
            devices,
            histograms: {
                self.drain();
                Timing::ALL.map(|t| self.histogram(t))
            },
        };
        match encode::render(scrape, format) {
            Ok(body) => Response {
                status: 200,
                content_type: format.content_type(),
                body,
            },
            Err(_) => Response::text(500, "encoding failed\n"),
        }
    }

    /// The workers' durations of `t` so far, as Prometheus buckets.
    fn histogram(&self, t: Timing) -> HistogramSample {
        let Some(total) = &self.totals[t as usize] else {
            return HistogramSample::default();
        };
        let (_, _, bounds) = encode::histogram_family(t);
        let bounds_ns: Vec<u64> = bounds.iter().map(|s| (s * 1e9) as u64).collect();
        let counts = total.bucket_counts(&bounds_ns);
        HistogramSample {
            sum: total.sum_ns() as f64 / 1e9,
            buckets: bounds
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .zip(counts)
                .collect(),
        }
    }

    /// A device snapshot at most [`DEVICE_MAX_AGE`] old, asked from the control loop
    /// when needed; `None` if the loop does not answer in time.
    fn devices(&mut self) -> Option<&DeviceSnapshot> {
        let fresh = matches!(&self.devices, Some((at, _)) if at.elapsed() < DEVICE_MAX_AGE);
        if !fresh {
            let (reply, answer) = bounded(1);
            self.devices = None;
            if self.control.try_send(reply).is_ok() {
                match answer.recv_timeout(CONTROL_WAIT) {
                    Ok(d) => self.devices = Some((Instant::now(), d)),
                    Err(_) => tracing::warn!("metrics: the control loop did not answer"),
                }
            }
        }
        self.devices.as_ref().map(|(_, d)| d)
    }
}

/// 200 with the message, or 503 with the reason.
fn status(r: Result<String, String>) -> Response {
    match r {
        Ok(msg) => Response::text(200, msg),
        Err(reason) => Response::text(503, reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::stats::counters;
    use std::io::{Read, Write};

    fn get(addr: SocketAddr, request: &str) -> (u16, String, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let code = head[9..12].parse().unwrap();
        let ctype = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Type: "))
            .unwrap_or_default()
            .to_owned();
        (code, ctype, body.to_owned())
    }

    #[test]
    fn the_endpoint_serves_metrics_health_and_readiness() {
        let endpoint = Endpoint::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = endpoint.listener.local_addr().unwrap();
        let (mut w, r) = counters();
        w.inc(Counter::Polls);
        w.add(Counter::RxPackets, 5);
        w.record_poll(true, 2_000);
        w.record(Timing::Setup, 3_000_000);
        w.ship_histograms();
        let server = endpoint.serve(vec![(1, r)]).unwrap();
        let link_up = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let control = std::thread::spawn({
            let (link_up, done) = (link_up.clone(), done.clone());
            move || {
                while !done.load(Ordering::Relaxed) {
                    server.poll(|| DeviceSnapshot {
                        ports: vec![PortSample {
                            name: "p0".into(),
                            link_up: link_up.load(Ordering::Relaxed),
                            stats: Some(PortCounters::default()),
                            ..PortSample::default()
                        }],
                        pools: vec![],
                    });
                    std::thread::sleep(Duration::from_millis(5));
                }
                server.stop();
            }
        });
        let (code, ctype, body) = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((code, ctype.as_str()), (200, Format::Text.content_type()));
        assert!(
            body.contains("mpgw_rx_packets_total{lcore=\"1\"} 5\n"),
            "{body}"
        );
        assert!(
            body.contains("mpgw_port_link_up{port=\"p0\"} 0\n"),
            "{body}"
        );
        for line in [
            "mpgw_burst_duration_seconds_count 1\n",
            "mpgw_connection_setup_duration_seconds_bucket{le=\"0.0025\"} 0\n",
            "mpgw_connection_setup_duration_seconds_bucket{le=\"0.005\"} 1\n",
            "mpgw_connection_setup_duration_seconds_sum 0.003\n",
        ] {
            assert!(body.contains(line), "{line}: {body}");
        }
        let om = "GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text\r\n\r\n";
        let (code, ctype, body) = get(addr, om);
        assert_eq!(
            (code, ctype.as_str()),
            (200, Format::OpenMetrics.content_type())
        );
        assert!(body.ends_with("# EOF\n"));
        let (code, _, body) = get(addr, "GET /healthz HTTP/1.1\r\n\r\n");
        assert_eq!((code, body.as_str()), (200, "ok: 1 workers polling\n"));
        let (code, _, body) = get(addr, "GET /readyz HTTP/1.1\r\n\r\n");
        assert_eq!((code, body.as_str()), (503, "no link is up (ports p0)\n"));
        link_up.store(true, Ordering::Relaxed);
        std::thread::sleep(DEVICE_MAX_AGE);
        let (code, _, _) = get(addr, "GET /readyz HTTP/1.1\r\n\r\n");
        assert_eq!(code, 200);
        assert_eq!(get(addr, "GET /nope HTTP/1.1\r\n\r\n").0, 404);
        assert_eq!(get(addr, "POST /metrics HTTP/1.1\r\n\r\n").0, 405);
        assert_eq!(get(addr, "BREW\r\n\r\n").0, 400);
        let (code, _, body) = get(addr, "HEAD /metrics HTTP/1.1\r\n\r\n");
        assert_eq!((code, body.as_str()), (200, ""));
        done.store(true, Ordering::Relaxed);
        control.join().unwrap();
        assert!(TcpStream::connect(addr).is_err(), "closed after stop");
    }

    #[test]
    fn a_taken_address_is_an_error_naming_the_key() {
        let first = Endpoint::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let e = Endpoint::bind(first.listener.local_addr().unwrap())
            .err()
            .unwrap();
        assert!(format!("{e:#}").starts_with("metrics.listen: cannot listen on 127.0.0.1:"));
    }
}
