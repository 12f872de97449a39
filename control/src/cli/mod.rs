//! The operator commands over the admin socket: `mpgw ss`, `mpgw paths` and
//! `mpgw monitor`. Each module has both halves: the JSON the control thread answers
//! with (built from the workers' plain-data snapshots and events) and what the CLI
//! prints from it (readable tables, or the JSON itself with `--json`).

pub mod monitor;
pub mod paths;
pub mod ss;

use crate::admin;
use dataplane::introspect::Snapshot;
use dataplane::worker::Command;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the control thread waits for the workers' snapshots: a stuck worker
/// cannot hang the admin socket.
pub const SNAPSHOT_WAIT: Duration = Duration::from_millis(500);

/// Asks every worker (by its command channel) for a snapshot and waits at most
/// `wait` for the answers; `None` for a worker that did not answer in time.
pub fn snapshots(
    workers: &[&crossbeam::channel::Sender<Command>],
    wait: Duration,
) -> Vec<Option<Snapshot>> {
    let (tx, rx) = crossbeam::channel::bounded(workers.len().max(1));
    let mut asked = 0;
    for w in workers {
        if w.try_send(Command::Snapshot(tx.clone())).is_ok() {
            asked += 1;
        }
    }
    drop(tx);
    let deadline = Instant::now() + wait;
    let mut got: Vec<Option<Snapshot>> = workers.iter().map(|_| None).collect();
    for _ in 0..asked {
        let Ok(s) = rx.recv_deadline(deadline) else {
            break;
        };
        if let Some(slot) = got.get_mut(usize::from(s.worker)) {
            *slot = Some(s);
        }
    }
    got
}

/// Sends `req`, then prints the answer as JSON or as `render` lays it out.
pub fn print(
    socket: &Path,
    req: &str,
    json: bool,
    render: fn(&Value) -> String,
) -> anyhow::Result<()> {
    let v = admin::request(socket, req)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", render(&v));
    }
    Ok(())
}

/// Lays out rows as columns padded to their widest cell; the first column is left
/// aligned, the others right aligned.
pub(crate) fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i == 0 {
                line += &format!("{c:<w$}", w = widths[i]);
            } else {
                line += &format!("  {c:>w$}", w = widths[i]);
            }
        }
        out += line.trim_end();
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_wait_for_answers_and_skip_a_stuck_worker() {
        let (a_tx, a_rx) = crossbeam::channel::bounded(4);
        let (b_tx, _b_rx) = crossbeam::channel::bounded::<Command>(4);
        let worker = std::thread::spawn(move || {
            if let Ok(Command::Snapshot(reply)) = a_rx.recv() {
                let _ = reply.try_send(Snapshot {
                    worker: 0,
                    ..Snapshot::default()
                });
            }
        });
        let started = Instant::now();
        let got = snapshots(&[&a_tx, &b_tx], Duration::from_millis(200));
        worker.join().unwrap();
        assert!(got[0].is_some(), "the answering worker");
        assert!(got[1].is_none(), "the stuck worker");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn columns_align() {
        let rows = vec![
            vec!["a".to_owned(), "1".to_owned()],
            vec!["long".to_owned(), "100".to_owned()],
        ];
        assert_eq!(columns(&rows), "a       1\nlong  100\n");
    }
}
