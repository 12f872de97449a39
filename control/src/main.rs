//! `mpgw`: the DPDK MPTCP gateway's binary.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod admin;
mod capture;
mod cli;
mod config;
#[cfg_attr(not(dpdk), allow(dead_code))]
mod flow;
// Served by `mpgw run`, which needs DPDK.
mod link;
#[cfg_attr(not(dpdk), allow(dead_code))]
mod metrics;
mod reload;
mod run;
#[cfg(dpdk)]
mod telemetry;

/// mpgw — a DPDK-accelerated Multipath TCP gateway.
#[derive(Parser)]
#[command(name = "mpgw", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the gateway until SIGINT or SIGTERM.
    Run {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Extra EAL arguments, after `--`, appended to those the configuration implies.
        #[arg(last = true)]
        eal: Vec<String>,
    },
    /// Checks a configuration file, prints what it would run, and exits.
    CheckConfig {
        /// The configuration file (TOML).
        file: PathBuf,
    },
    /// Shows the counters of a running gateway.
    Stats(Query),
    /// Lists connections and their subflows (`ss -M` field names).
    Ss(Query),
    /// Shows ports and addresses: flags, link, subflows using them, bytes.
    Paths(Query),
    /// Prints connection events as they happen (`ip mptcp monitor` names) until
    /// interrupted.
    Monitor(Query),
    /// Makes a running gateway re-read its configuration file and apply what changed
    /// (or refuse, naming the key that needs a restart); same as SIGHUP.
    Reload {
        /// The gateway's admin socket (`[admin] socket` in its configuration).
        #[arg(long, default_value = "/run/mpgw/mpgw.sock")]
        socket: PathBuf,
    },
    /// Captures a port's frames (received and sent) into a pcapng file, until
    /// `--count` frames, `--duration` seconds or Ctrl-C.
    Capture {
        /// The port's name (`[[ports]] name`).
        #[arg(long)]
        port: String,
        /// Stop after this many frames.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
        /// Bytes kept of each frame; 0 keeps whole frames.
        #[arg(long, default_value_t = 256)]
        snaplen: u32,
        /// The pcapng file to write (by the gateway).
        #[arg(long)]
        out: PathBuf,
        /// The gateway's admin socket.
        #[arg(long, default_value = "/run/mpgw/mpgw.sock")]
        socket: PathBuf,
    },
}

/// Where a running gateway is, and how to print its answer.
#[derive(clap::Args)]
struct Query {
    /// The gateway's admin socket (`[admin] socket` in its configuration).
    #[arg(long, default_value = "/run/mpgw/mpgw.sock")]
    socket: PathBuf,
    /// Print JSON instead of a table (one object per line for `monitor`).
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Run { config, eal } => run::run(&config, &eal),
        Cmd::CheckConfig { file } => run::check_config(&file),
        Cmd::Stats(q) => admin::print_stats(&q.socket, q.json),
        Cmd::Ss(q) => cli::print(&q.socket, "ss", q.json, cli::ss::render),
        Cmd::Paths(q) => cli::print(&q.socket, "paths", q.json, cli::paths::render),
        Cmd::Monitor(q) => cli::monitor::run(&q.socket, q.json),
        Cmd::Reload { socket } => reload::print_reload(&socket),
        Cmd::Capture {
            port,
            count,
            duration,
            snaplen,
            out,
            socket,
        } => capture::run(
            &socket,
            &capture::Request {
                port,
                count,
                duration,
                snaplen,
                out,
            },
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mpgw: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
