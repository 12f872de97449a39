//! The admin Unix socket: a line-based request/response protocol between the running
//! gateway's control thread and the `mpgw` CLI.
//!
//! A client connects, writes one request line (`stats`), reads one JSON document and the
//! server closes the connection. The server side is polled from the control loop and
//! never blocks it for longer than a short per-connection timeout.

use anyhow::{bail, Context};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one client may take to send its request or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(500);
/// Longest accepted request line.
const MAX_REQUEST: u64 = 256;

/// The listening side, owned by the control thread.
pub struct AdminServer {
    listener: UnixListener,
    path: PathBuf,
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
        })
    }

    /// Answers every client waiting now; `answer` maps a request line to a response.
    pub fn poll(&self, mut answer: impl FnMut(&str) -> Value) {
        while let Ok((stream, _)) = self.listener.accept() {
            if let Err(e) = serve(stream, &mut answer) {
                tracing::debug!("admin client: {e:#}");
            }
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(stream: UnixStream, answer: &mut impl FnMut(&str) -> Value) -> anyhow::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new((&stream).take(MAX_REQUEST)).read_line(&mut line)?;
    let response = answer(line.trim());
    let mut out = serde_json::to_vec(&response)?;
    out.push(b'\n');
    (&stream).write_all(&out)?;
    Ok(())
}

/// Sends one request and returns the parsed response.
pub fn request(socket: &Path, req: &str) -> anyhow::Result<Value> {
    let mut stream = UnixStream::connect(socket)
        .with_context(|| format!("cannot reach mpgw at {} (is it running?)", socket.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{req}\n").as_bytes())?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let v: Value = serde_json::from_str(&text).context("malformed answer from mpgw")?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        bail!("mpgw: {e}");
    }
    Ok(v)
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

/// Renders the `stats` answer as two aligned tables: counters by worker, and ports.
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
    out
}

/// A JSON value as table text (`Value`'s own `Display` ignores width and alignment).
fn cell(v: &Value) -> String {
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
        let server = AdminServer::bind(&path).unwrap();
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
        let server = AdminServer::bind(&path).unwrap();
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
    fn the_table_lists_counters_and_ports() {
        let v = json!({
            "total": {"rx_packets": 5},
            "workers": [{"lcore": 1, "counters": {"rx_packets": 5}}],
            "ports": [{"name": "down0", "link_up": true, "rx_packets": 5, "tx_packets": 4,
                       "rx_bytes": 500, "tx_bytes": 400, "rx_missed": 0, "rx_nombuf": 0,
                       "rx_errors": 0, "tx_errors": 0}]
        });
        let t = stats_table(&v);
        assert!(t.contains("rx_packets") && t.contains("lcore 1") && t.contains("down0"));
        assert!(t
            .lines()
            .any(|l| l.starts_with("down0") && l.contains(" up ")));
    }
}
