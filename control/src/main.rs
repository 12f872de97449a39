//! `mpgw`: the DPDK MPTCP gateway's binary.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod admin;
mod config;
mod link;
mod reload;
mod run;

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
    Stats {
        /// The gateway's admin socket (`[admin] socket` in its configuration).
        #[arg(long, default_value = "/run/mpgw/mpgw.sock")]
        socket: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Makes a running gateway re-read its configuration file and apply what changed
    /// (or refuse, naming the key that needs a restart); same as SIGHUP.
    Reload {
        /// The gateway's admin socket (`[admin] socket` in its configuration).
        #[arg(long, default_value = "/run/mpgw/mpgw.sock")]
        socket: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Run { config, eal } => run::run(&config, &eal),
        Cmd::CheckConfig { file } => run::check_config(&file),
        Cmd::Stats { socket, json } => admin::print_stats(&socket, json),
        Cmd::Reload { socket } => reload::print_reload(&socket),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mpgw: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
