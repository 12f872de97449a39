//! Hot reload (`mpgw reload`, SIGHUP): the configuration file `mpgw run` was given is
//! read again and validated in full; what differs from the configuration in force is
//! applied at run time when it can be (log level, port flags, MPTCP settings but the
//! buffers), and otherwise the reload is refused naming the key — all or nothing.

use crate::config::{Change, Config};
use anyhow::Context;
use std::path::Path;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Changes the log filter of the running process.
pub type LogHandle = reload::Handle<EnvFilter, Registry>;

/// A reload checked and ready to apply.
#[derive(Debug)]
pub struct Prepared {
    /// The new configuration.
    pub config: Config,
    /// What changes, every one applicable at run time.
    pub changes: Vec<Change>,
}

/// Reads and validates `path` and works out what changes from `current`; an error
/// when the file is invalid or changes a setting that needs a restart.
pub fn prepare(path: &Path, current: &Config) -> anyhow::Result<Prepared> {
    let config = Config::load(path)?;
    let changes = current.runtime_changes(&config)?;
    if config.log.level != current.log.level {
        EnvFilter::try_new(&config.log.level)
            .with_context(|| format!("log.level: '{}' is not a filter", config.log.level))?;
    }
    Ok(Prepared { config, changes })
}

/// Sets the log filter to `level`, unless `RUST_LOG` chose it at start.
pub fn set_log_level(handle: Option<&LogHandle>, level: &str) -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        return Ok(());
    }
    let Some(handle) = handle else {
        return Ok(());
    };
    let filter = EnvFilter::try_new(level).context("log.level")?;
    handle.reload(filter).context("log.level: cannot reload")
}

/// `mpgw reload`: asks a running gateway to reload and prints what it applied; an
/// error (non-zero exit) when it refused.
pub fn print_reload(socket: &Path) -> anyhow::Result<()> {
    let v = crate::admin::request(socket, "reload")?;
    let applied: Vec<&str> = v
        .get("applied")
        .and_then(serde_json::Value::as_array)
        .map(|a| a.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default();
    if applied.is_empty() {
        println!("reloaded: nothing changed");
    } else {
        println!("reloaded:");
        for c in applied {
            println!("  {c}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const BASE: &str = r#"
[dataplane]
main_lcore = 0
workers = [1]

[[ports]]
name = "down0"
device = "net_af_packet0,iface=gd0"
ipv4 = ["192.0.2.1/24"]
"#;

    fn file(name: &str, text: &str) -> std::path::PathBuf {
        let p =
            std::env::temp_dir().join(format!("mpgw-reload-{}-{name}.toml", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_valid_change_is_prepared_and_an_invalid_file_refused() {
        let current = Config::parse(BASE).unwrap();
        let ok = file("ok", &format!("{BASE}\n[mptcp]\nscheduler = \"blest\"\n"));
        let p = prepare(&ok, &current).unwrap();
        assert_eq!(p.changes.len(), 1);
        assert_eq!(p.changes[0].key, "mptcp.scheduler");
        let bad = file("bad", &format!("{BASE}\n[mptcp\n"));
        let e = format!("{:#}", prepare(&bad, &current).unwrap_err());
        assert!(e.contains("invalid configuration"), "{e}");
        let level = file(
            "level",
            &format!("{BASE}\n[log]\nlevel = \"info,mpgw=loud\"\n"),
        );
        let e = format!("{:#}", prepare(&level, &current).unwrap_err());
        assert!(e.starts_with("log.level"), "{e}");
        for p in [ok, bad, level] {
            std::fs::remove_file(p).unwrap();
        }
    }
}
