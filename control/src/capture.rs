//! `mpgw capture`: a port's frames, as the gateway receives and sends them, into a
//! pcapng file.
//!
//! The CLI sends `capture {json}` over the admin socket and waits. The control thread
//! ([`Server`]) creates the file, arms a [`Tap`] on the port in every worker (one
//! bounded channel shared by all), writes what arrives each control tick, and stops
//! after `count` frames, after `duration`, at the size cap, or when the client hangs up
//! (Ctrl-C); then it disarms the workers, finishes the file and answers with a summary.
//! The gateway writes the file itself (the admin socket is root's).

pub mod pcapng;

use crate::admin;
use anyhow::{bail, Context};
use dataplane::capture::{Direction, Frame, Tap};
use dataplane::worker::Command;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::fs::File;
use std::io::{BufWriter, ErrorKind, Read};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Frames queued between the workers and the control thread.
const QUEUE: usize = 16384;
/// Largest capture file (and bytes copied by each worker), bytes.
const MAX_BYTES: u64 = 1 << 30;
/// How long arming or disarming may wait for a worker's command queue.
const COMMAND_WAIT: Duration = Duration::from_millis(200);

/// A capture request (the JSON after `capture` on the admin socket).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The port's name (`[[ports]] name`).
    pub port: String,
    /// Stop after this many frames.
    pub count: Option<u64>,
    /// Stop after this many seconds.
    pub duration: Option<f64>,
    /// Bytes kept of each frame; 0 keeps whole frames.
    pub snaplen: u32,
    /// The pcapng file (absolute: the gateway writes it).
    pub out: PathBuf,
}

/// `mpgw capture`: asks the gateway for a capture and prints its summary.
pub fn run(socket: &Path, req: &Request) -> anyhow::Result<()> {
    let out =
        std::path::absolute(&req.out).with_context(|| format!("--out {}", req.out.display()))?;
    let req = Request { out, ..req.clone() };
    let wait = req
        .duration
        .map(|d| Duration::from_secs_f64(d.max(0.0)) + Duration::from_secs(10));
    let line = format!("capture {}", serde_json::to_string(&req)?);
    let v = admin::request_waiting(socket, &line, wait)?;
    println!(
        "{} frames ({} received, {} sent) from {} in {}, {} dropped, {} bytes",
        admin::cell(&v["frames"]),
        admin::cell(&v["rx"]),
        admin::cell(&v["tx"]),
        admin::cell(&v["port"]),
        admin::cell(&v["out"]),
        admin::cell(&v["dropped"]),
        admin::cell(&v["bytes"]),
    );
    Ok(())
}

/// One capture in progress.
struct Session {
    client: UnixStream,
    req: Request,
    writer: pcapng::Writer<BufWriter<File>>,
    iface: u32,
    frames: crossbeam::channel::Receiver<Frame>,
    deadline: Option<Instant>,
    rx: u64,
    tx: u64,
    /// `capture_dropped` of all workers when the capture started.
    dropped_before: u64,
}

/// The control thread's side: at most one capture at a time.
#[derive(Default)]
pub struct Server {
    running: Option<Session>,
}

impl Server {
    /// Starts the capture `line` asks for, on `ports` (names in the workers' port
    /// order); answers the client at once when it cannot.
    pub fn accept(
        &mut self,
        line: &str,
        client: UnixStream,
        ports: &[String],
        workers: &[&crossbeam::channel::Sender<Command>],
        dropped_now: u64,
    ) {
        let started = match &self.running {
            Some(s) => Err(anyhow::anyhow!(
                "a capture of {} into {} is running",
                s.req.port,
                s.req.out.display()
            )),
            None => Session::start(line, client.try_clone(), ports, workers, dropped_now),
        };
        match started {
            Ok(s) => {
                tracing::info!(port = %s.req.port, out = %s.req.out.display(), "capture started");
                self.running = Some(s);
            }
            Err(e) => {
                let _ = admin::respond(&client, &json!({ "error": format!("{e:#}") }));
            }
        }
    }

    /// Writes the frames that arrived; finishes the capture when it is done.
    pub fn poll(&mut self, workers: &[&crossbeam::channel::Sender<Command>], dropped_now: u64) {
        let Some(s) = &mut self.running else { return };
        let done = match s.drain() {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!("capture: {e:#}");
                true
            }
        };
        if done {
            self.stop(workers, dropped_now);
        }
    }

    /// Ends a running capture (also at shutdown).
    pub fn stop(&mut self, workers: &[&crossbeam::channel::Sender<Command>], dropped_now: u64) {
        if let Some(s) = self.running.take() {
            s.finish(workers, dropped_now);
        }
    }
}

impl Session {
    fn start(
        line: &str,
        client: std::io::Result<UnixStream>,
        ports: &[String],
        workers: &[&crossbeam::channel::Sender<Command>],
        dropped_before: u64,
    ) -> anyhow::Result<Session> {
        let client = client?;
        let json = line.strip_prefix("capture").unwrap_or(line).trim();
        let req: Request = serde_json::from_str(json).context("malformed capture request")?;
        let Some(index) = ports.iter().position(|p| *p == req.port) else {
            bail!("no port named '{}' (ports: {})", req.port, ports.join(", "));
        };
        if !req.out.is_absolute() {
            bail!("the output path must be absolute");
        }
        let file = File::create(&req.out)
            .with_context(|| format!("cannot create {}", req.out.display()))?;
        let mut writer = pcapng::Writer::new(BufWriter::new(file), "mpgw")?;
        let iface = writer.interface(&req.port, req.snaplen)?;
        let (tx, frames) = crossbeam::channel::bounded(QUEUE);
        for w in workers {
            let tap = Tap::new(
                req.snaplen as usize,
                req.count.unwrap_or(u64::MAX),
                MAX_BYTES,
                tx.clone(),
            );
            if w.send_timeout(Command::Capture(Some((index, tap))), COMMAND_WAIT)
                .is_err()
            {
                disarm(workers);
                bail!("a worker did not take the capture command");
            }
        }
        client.set_nonblocking(true)?;
        let deadline = req
            .duration
            .map(|d| Instant::now() + Duration::from_secs_f64(d.clamp(0.0, 1e9)));
        Ok(Session {
            client,
            req,
            writer,
            iface,
            frames,
            deadline,
            rx: 0,
            tx: 0,
            dropped_before,
        })
    }

    /// Writes what arrived; true when the capture is complete.
    fn drain(&mut self) -> anyhow::Result<bool> {
        let limit = self.req.count.unwrap_or(u64::MAX);
        while self.rx + self.tx < limit && self.writer.written() < MAX_BYTES {
            let Ok(f) = self.frames.try_recv() else { break };
            let dir = match f.dir {
                Direction::Rx => {
                    self.rx += 1;
                    pcapng::Direction::Inbound
                }
                Direction::Tx => {
                    self.tx += 1;
                    pcapng::Direction::Outbound
                }
            };
            self.writer
                .packet(self.iface, f.ts_ns, dir, f.orig_len, &f.data)
                .with_context(|| format!("writing {}", self.req.out.display()))?;
        }
        Ok(self.rx + self.tx >= limit
            || self.writer.written() >= MAX_BYTES
            || self.deadline.is_some_and(|d| Instant::now() >= d)
            || client_gone(&self.client))
    }

    /// Disarms the workers, writes what is left, closes the file and answers.
    fn finish(mut self, workers: &[&crossbeam::channel::Sender<Command>], dropped_now: u64) {
        disarm(workers);
        let drained = self.drain();
        let answer = match drained.and_then(|_| Ok(self.writer.finish()?)) {
            Ok(file) => {
                drop(file);
                json!({
                    "port": self.req.port,
                    "out": self.req.out,
                    "frames": self.rx + self.tx,
                    "rx": self.rx,
                    "tx": self.tx,
                    "dropped": dropped_now.saturating_sub(self.dropped_before),
                    "bytes": std::fs::metadata(&self.req.out).map(|m| m.len()).unwrap_or(0),
                })
            }
            Err(e) => json!({ "error": format!("{e:#}") }),
        };
        tracing::info!(%answer, "capture finished");
        let _ = self.client.set_nonblocking(false);
        let _ = admin::respond(&self.client, &answer);
    }
}

/// Disarms the capture in every worker.
fn disarm(workers: &[&crossbeam::channel::Sender<Command>]) {
    for w in workers {
        if w.send_timeout(Command::Capture(None), COMMAND_WAIT)
            .is_err()
        {
            tracing::warn!("capture: a worker did not take the disarm command");
        }
    }
}

/// True once the client hung up (what it sends is ignored).
fn client_gone(mut client: &UnixStream) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match client.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::port::heap::HeapPool;
    use serde_json::Value;

    /// A worker stand-in: takes commands and, while armed, records `frames` once.
    fn fake_worker(
        commands: crossbeam::channel::Receiver<Command>,
        frames: Vec<Vec<u8>>,
    ) -> std::thread::JoinHandle<usize> {
        std::thread::spawn(move || {
            let pool = HeapPool::new(64);
            let mut armed_at = None;
            while let Ok(cmd) = commands.recv() {
                match cmd {
                    Command::Capture(Some((port, mut tap))) => {
                        armed_at = Some(port);
                        let bufs: Vec<_> =
                            frames.iter().map(|f| pool.alloc_from(f).unwrap()).collect();
                        let (rx, tx) = bufs.split_at(1);
                        tap.record(rx, Direction::Rx);
                        tap.record(tx, Direction::Tx);
                    }
                    Command::Capture(None) => break,
                    _ => {}
                }
            }
            armed_at.unwrap_or(usize::MAX)
        })
    }

    #[test]
    fn a_capture_is_written_and_summarised() {
        let dir = std::env::temp_dir().join(format!("mpgw-capture-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("c.pcapng");
        let (cmd_tx, cmd_rx) = crossbeam::channel::bounded(4);
        let worker = fake_worker(cmd_rx, vec![vec![1u8; 80], vec![2u8; 300]]);
        let (client, server_end) = UnixStream::pair().unwrap();
        let req = Request {
            port: "down1".into(),
            count: Some(2),
            duration: None,
            snaplen: 256,
            out: out.clone(),
        };
        let line = format!("capture {}", serde_json::to_string(&req).unwrap());
        let ports = ["down0".to_owned(), "down1".to_owned()];
        let mut server = Server::default();
        server.accept(&line, server_end, &ports, &[&cmd_tx], 5);
        assert!(server.running.is_some());
        for _ in 0..200 {
            server.poll(&[&cmd_tx], 5);
            if server.running.is_none() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(server.running.is_none(), "count reached: finished");
        assert_eq!(worker.join().unwrap(), 1, "armed on down1's index");
        let mut answer = String::new();
        (&client).read_to_string(&mut answer).unwrap();
        let v: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!((v["frames"].as_u64(), v["rx"].as_u64()), (Some(2), Some(1)));
        assert_eq!(v["dropped"], 0);
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(v["bytes"].as_u64(), Some(bytes.len() as u64));
        // SHB, IDB, then two EPBs: the TX frame cut at the snaplen.
        assert_eq!(&bytes[..4], &[0x0a, 0x0d, 0x0d, 0x0a]);
        assert!(bytes.windows(80).any(|w| w.iter().all(|&b| b == 1)));
        assert!(!bytes.windows(300).any(|w| w.iter().all(|&b| b == 2)));
        assert!(bytes.windows(256).any(|w| w.iter().all(|&b| b == 2)));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bad_requests_are_answered_with_an_error() {
        let (cmd_tx, _cmd_rx) = crossbeam::channel::bounded(4);
        let ports = ["down0".to_owned()];
        let mut server = Server::default();
        for line in [
            "capture {",
            r#"capture {"port":"nope","count":1,"duration":null,"snaplen":0,"out":"/tmp/x"}"#,
            r#"capture {"port":"down0","count":1,"duration":null,"snaplen":0,"out":"rel.pcapng"}"#,
        ] {
            let (client, server_end) = UnixStream::pair().unwrap();
            server.accept(line, server_end, &ports, &[&cmd_tx], 0);
            assert!(server.running.is_none());
            let mut answer = String::new();
            (&client).read_to_string(&mut answer).unwrap();
            assert!(answer.contains("error"), "{line}: {answer}");
        }
    }
}
