//! The admin Unix socket: a line-based request/response protocol between the running
//! gateway's control thread and the `mpgw` CLI.
//!
//! A client connects, writes one request line (`stats`, `ss`, `paths`), reads one JSON
//! document and the server closes the connection. `monitor` streams instead: the
//! server answers `{"monitor": "attached"}` and then writes one JSON line per event
//! until the client goes away. `capture {json}` is held: the control thread takes the
//! client ([`AdminServer::take_held`]) and answers when the capture ends. The server
//! side is polled from the control loop and
//! never blocks it for longer than a short per-connection timeout; monitor clients are
//! written without blocking, and one that falls too far behind is dropped.

use anyhow::{bail, Context};
use serde_json::Value;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one client may take to send its request or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(500);
/// Longest accepted request line (a capture request carries a file path).
const MAX_REQUEST: u64 = 4096;
/// Requests (first word) answered later by the control thread, not by `poll`.
const HELD: &[&str] = &["capture"];
/// Monitor clients at once.
const MAX_MONITORS: usize = 8;
/// Bytes a monitor client may fall behind before it is dropped.
const MONITOR_BACKLOG: usize = 1 << 20;

/// The listening side, owned by the control thread.
pub struct AdminServer {
    listener: UnixListener,
    path: PathBuf,
    monitors: Vec<Monitor>,
    held: Vec<(String, UnixStream)>,
}

/// A client streaming events (`monitor`): its socket, non-blocking, and the bytes
/// not yet written to it.
struct Monitor {
    stream: UnixStream,
    pending: Vec<u8>,
}

impl Monitor {
    /// Writes what the socket takes now; false when the client is gone or too slow.
    fn flush(&mut self) -> bool {
        while !self.pending.is_empty() {
            match (&self.stream).write(&self.pending) {
                Ok(0) => return false,
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        self.pending.len() <= MONITOR_BACKLOG
    }

    /// False once the client hung up (what it sends is ignored).
    fn alive(&mut self) -> bool {
        let mut buf = [0u8; 64];
        loop {
            match (&self.stream).read(&mut buf) {
                Ok(0) => return false,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
}

impl AdminServer {
    /// Listens at `path`, replacing a stale socket file left by a previous run.
    pub fn bind(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("admin.socket: cannot create {}", dir.display()))?;
        }
        if UnixStream::connect(path).is_ok() {
            bail!(
                "admin.socket: {} is in use by a running mpgw",
                path.display()
            );
        }
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)
            .with_context(|| format!("admin.socket: cannot listen on {}", path.display()))?;
        listener.set_nonblocking(true)?;
        Ok(Self {
            listener,
            path: path.to_owned(),
            monitors: Vec::new(),
            held: Vec::new(),
        })
    }

    /// Answers every client waiting now; `answer` maps a request line to a response.
    /// A `monitor` request makes the client a monitor; monitors that hung up are
    /// dropped.
    pub fn poll(&mut self, mut answer: impl FnMut(&str) -> Value) {
        while let Ok((stream, _)) = self.listener.accept() {
            let served = read_request(&stream).and_then(|req| {
                if req == "monitor" {
                    self.attach(stream)
                } else if HELD.contains(&req.split_whitespace().next().unwrap_or_default()) {
                    self.held.push((req, stream));
                    Ok(())
                } else {
                    respond(&stream, &answer(&req))
                }
            });
            if let Err(e) = served {
                tracing::debug!("admin client: {e:#}");
            }
        }
        self.monitors.retain_mut(|m| m.alive() && m.flush());
    }

    /// The held requests (see [`HELD`]) received since the last call, each with its
    /// client, for the control thread to answer with [`respond`].
    pub fn take_held(&mut self) -> Vec<(String, UnixStream)> {
        std::mem::take(&mut self.held)
    }

    /// Monitor clients attached.
    pub fn monitors(&self) -> usize {
        self.monitors.len()
    }

    /// Writes `events`, one JSON line each, to every monitor client; a client that
    /// fell too far behind or went away is dropped.
    pub fn broadcast(&mut self, events: &[Value]) {
        if events.is_empty() || self.monitors.is_empty() {
            return;
        }
        let mut lines = Vec::new();
        for ev in events {
            if serde_json::to_writer(&mut lines, ev).is_ok() {
                lines.push(b'\n');
            }
        }
        self.monitors.retain_mut(|m| {
            m.pending.extend_from_slice(&lines);
            m.flush()
        });
    }

    fn attach(&mut self, stream: UnixStream) -> anyhow::Result<()> {
        if self.monitors.len() >= MAX_MONITORS {
            let busy = serde_json::json!({ "error": "too many monitors attached" });
            return respond(&stream, &busy);
        }
        respond(&stream, &serde_json::json!({ "monitor": "attached" }))?;
        stream.set_nonblocking(true)?;
        self.monitors.push(Monitor {
            stream,
            pending: Vec::new(),
        });
        Ok(())
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads a client's request line (blocking, bounded by [`CLIENT_TIMEOUT`]).
fn read_request(stream: &UnixStream) -> anyhow::Result<String> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new(stream.take(MAX_REQUEST)).read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

/// Writes one JSON line.
pub(crate) fn respond(mut stream: &UnixStream, v: &Value) -> anyhow::Result<()> {
    let mut out = serde_json::to_vec(v)?;
    out.push(b'\n');
    stream.write_all(&out)?;
    Ok(())
}

/// Connects to the gateway and sends request `req`.
fn connect(socket: &Path, req: &str) -> anyhow::Result<UnixStream> {
    let mut stream = UnixStream::connect(socket)
        .with_context(|| format!("cannot reach mpgw at {} (is it running?)", socket.display()))?;
    stream.write_all(format!("{req}\n").as_bytes())?;
    Ok(stream)
}

/// A JSON answer, or the error it carries.
fn parse_answer(text: &str) -> anyhow::Result<Value> {
    let v: Value = serde_json::from_str(text).context("malformed answer from mpgw")?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        bail!("mpgw: {e}");
    }
    Ok(v)
}

/// Sends one request and returns the parsed response.
pub fn request(socket: &Path, req: &str) -> anyhow::Result<Value> {
    request_waiting(socket, req, Some(Duration::from_secs(5)))
}

/// Sends one request and waits for the answer at most `wait` (`None`: as long as it
/// takes).
pub fn request_waiting(socket: &Path, req: &str, wait: Option<Duration>) -> anyhow::Result<Value> {
    let mut stream = connect(socket, req)?;
    stream.set_read_timeout(wait)?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    parse_answer(&text)
}

/// Sends `req` and calls `each` with every JSON line the gateway streams back after
/// its first answer, until the gateway closes the connection or `each` returns false.
pub fn stream(socket: &Path, req: &str, mut each: impl FnMut(Value) -> bool) -> anyhow::Result<()> {
    let stream = connect(socket, req)?;
    let mut lines = BufReader::new(stream).lines();
    let first = lines.next().context("mpgw closed the connection")??;
    parse_answer(&first)?;
    for line in lines {
        let v: Value = serde_json::from_str(&line?).context("malformed event from mpgw")?;
        if !each(v) {
            break;
        }
    }
    Ok(())
}

/// `mpgw stats`: prints the counters of a running gateway.
pub fn print_stats(socket: &Path, json: bool) -> anyhow::Result<()> {
    let v = request(socket, "stats")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    print!("{}", stats_table(&v));
    Ok(())
}

/// Renders the `stats` answer as four aligned tables: counters by worker, ports, the
/// ports' paths (MPTCP payload bytes, link losses, LSC interrupts), and their
/// `rte_flow` steering of joined subflows (rules and whether the port takes them).
fn stats_table(v: &Value) -> String {
    let mut out = String::new();
    let workers = v["workers"].as_array().cloned().unwrap_or_default();
    let mut header = format!("{:<24}{:>14}", "counter", "total");
    for w in &workers {
        header += &format!("{:>14}", format!("lcore {}", cell(&w["lcore"])));
    }
    out += &header;
    out.push('\n');
    if let Some(total) = v["total"].as_object() {
        for (name, val) in total {
            let mut row = format!("{name:<24}{:>14}", cell(val));
            for w in &workers {
                row += &format!("{:>14}", cell(&w["counters"][name]));
            }
            out += &row;
            out.push('\n');
        }
    }
    out.push('\n');
    out += &format!(
        "{:<10}{:>6}{:>14}{:>14}{:>16}{:>16}{:>10}{:>10}{:>10}\n",
        "port",
        "link",
        "rx_packets",
        "tx_packets",
        "rx_bytes",
        "tx_bytes",
        "missed",
        "nombuf",
        "errors"
    );
    for p in v["ports"].as_array().into_iter().flatten() {
        let errors = p["rx_errors"].as_u64().unwrap_or(0) + p["tx_errors"].as_u64().unwrap_or(0);
        let link = if p["link_up"].as_bool().unwrap_or(false) {
            "up"
        } else {
            "down"
        };
        out += &format!(
            "{:<10}{:>6}{:>14}{:>14}{:>16}{:>16}{:>10}{:>10}{:>10}\n",
            cell(&p["name"]),
            link,
            cell(&p["rx_packets"]),
            cell(&p["tx_packets"]),
            cell(&p["rx_bytes"]),
            cell(&p["tx_bytes"]),
            cell(&p["rx_missed"]),
            cell(&p["rx_nombuf"]),
            errors
        );
    }
    out.push('\n');
    out += &format!(
        "{:<10}{:>16}{:>16}{:>16}{:>16}{:>12}{:>12}\n",
        "path",
        "sent_bytes",
        "received_bytes",
        "retransmitted",
        "reinjected",
        "link_downs",
        "lsc_events"
    );
    for p in v["ports"].as_array().into_iter().flatten() {
        out += &format!(
            "{:<10}{:>16}{:>16}{:>16}{:>16}{:>12}{:>12}\n",
            cell(&p["name"]),
            cell(&p["path_sent_bytes"]),
            cell(&p["path_received_bytes"]),
            cell(&p["path_retransmitted_bytes"]),
            cell(&p["path_reinjected_bytes"]),
            cell(&p["link_downs"]),
            cell(&p["lsc_events"]),
        );
    }
    out.push('\n');
    out += &format!(
        "{:<10}{:>8}{:>11}{:>9}{:>8}{:>9}  steering\n",
        "flow", "rules", "installed", "removed", "failed", "refused"
    );
    for p in v["ports"].as_array().into_iter().flatten() {
        out += &format!(
            "{:<10}{:>8}{:>11}{:>9}{:>8}{:>9}  {}\n",
            cell(&p["name"]),
            cell(&p["flow_rules_active"]),
            cell(&p["flow_rules_installed"]),
            cell(&p["flow_rules_removed"]),
            cell(&p["flow_rules_failed"]),
            cell(&p["flow_rules_refused"]),
            p["flow_steering"].as_str().unwrap_or("-"),
        );
    }
    out
}

/// A JSON value as table text (`Value`'s own `Display` ignores width and alignment).
pub(crate) fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_request_gets_the_servers_answer() {
        let dir = std::env::temp_dir().join(format!("mpgw-admin-test-{}", std::process::id()));
        let path = dir.join("admin.sock");
        let mut server = AdminServer::bind(&path).unwrap();
        assert!(AdminServer::bind(&path).is_err(), "second server refused");
        let client = std::thread::spawn({
            let path = path.clone();
            move || request(&path, "stats")
        });
        let mut seen = String::new();
        for _ in 0..200 {
            server.poll(|req| {
                seen = req.to_owned();
                json!({"total": {"rx_packets": 3}})
            });
            if !seen.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let v = client.join().unwrap().unwrap();
        assert_eq!(seen, "stats");
        assert_eq!(v["total"]["rx_packets"], 3);
        drop(server);
        assert!(!path.exists(), "socket file removed on drop");
        let _ = std::fs::remove_dir(dir);
    }

    #[test]
    fn an_error_answer_becomes_an_error() {
        let dir = std::env::temp_dir().join(format!("mpgw-admin-err-{}", std::process::id()));
        let path = dir.join("admin.sock");
        let mut server = AdminServer::bind(&path).unwrap();
        let client = std::thread::spawn({
            let path = path.clone();
            move || request(&path, "bogus")
        });
        let mut served = false;
        for _ in 0..200 {
            server.poll(|_| {
                served = true;
                json!({"error": "unknown request"})
            });
            if served {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let e = client.join().unwrap().unwrap_err();
        assert!(format!("{e}").contains("unknown request"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_monitor_gets_broadcast_events_until_it_leaves() {
        let dir = std::env::temp_dir().join(format!("mpgw-admin-mon-{}", std::process::id()));
        let path = dir.join("admin.sock");
        let mut server = AdminServer::bind(&path).unwrap();
        let client = std::thread::spawn({
            let path = path.clone();
            move || {
                let mut got = Vec::new();
                stream(&path, "monitor", |v| {
                    got.push(v);
                    got.len() < 2
                })
                .map(|()| got)
            }
        });
        for _ in 0..400 {
            server.poll(|_| json!({"error": "not a monitor"}));
            if server.monitors() == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(server.monitors(), 1);
        server.broadcast(&[json!({"event": "CREATED"}), json!({"event": "CLOSED"})]);
        let got = client.join().unwrap().unwrap();
        assert_eq!(
            got,
            vec![json!({"event": "CREATED"}), json!({"event": "CLOSED"})]
        );
        for _ in 0..400 {
            server.poll(|_| json!({}));
            if server.monitors() == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(server.monitors(), 0, "the client that left is dropped");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_table_lists_counters_and_ports() {
        let v = json!({
            "total": {"rx_packets": 5},
            "workers": [{"lcore": 1, "counters": {"rx_packets": 5}}],
            "ports": [{"name": "down0", "link_up": true, "rx_packets": 5, "tx_packets": 4,
                       "rx_bytes": 500, "tx_bytes": 400, "rx_missed": 0, "rx_nombuf": 0,
                       "rx_errors": 0, "tx_errors": 0, "link_downs": 1, "lsc_events": null,
                       "path_sent_bytes": 4321, "path_received_bytes": 8765,
                       "path_retransmitted_bytes": 21, "path_reinjected_bytes": 43,
                       "flow_steering": "unsupported: rte_flow_validate: no flow ops",
                       "flow_rules_active": 0, "flow_rules_installed": 0,
                       "flow_rules_removed": 0, "flow_rules_failed": 0,
                       "flow_rules_refused": 0}]
        });
        let t = stats_table(&v);
        assert!(t.contains("rx_packets") && t.contains("lcore 1") && t.contains("down0"));
        assert!(t
            .lines()
            .any(|l| l.starts_with("down0") && l.contains(" up ")));
        let path = t
            .lines()
            .find(|l| l.starts_with("down0") && l.contains("4321"))
            .unwrap();
        let fields: Vec<&str> = path.split_whitespace().collect();
        assert_eq!(fields, ["down0", "4321", "8765", "21", "43", "1", "-"]);
        let flow = t
            .lines()
            .find(|l| l.starts_with("down0") && l.contains("unsupported"))
            .unwrap();
        assert!(
            flow.ends_with("0  unsupported: rte_flow_validate: no flow ops"),
            "{flow}"
        );
    }
}
