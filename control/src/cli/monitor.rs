//! `mpgw monitor`: connection events as they happen, named and laid out like
//! `ip mptcp monitor`'s (`[       CREATED] token=… saddr4=… daddr4=… sport=… dport=…`),
//! or one JSON object per line with `--json` (the same attribute names).

use crate::admin;
use dataplane::introspect::MonitorEvent;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

/// Attributes in the order `ip mptcp monitor` prints them.
const ORDER: [&str; 10] = [
    "token", "remid", "locid", "saddr4", "saddr6", "daddr4", "daddr6", "sport", "dport", "backup",
];

/// An event as the control thread streams it; `worker` is the worker it came from.
pub fn event(ev: &MonitorEvent, worker: usize) -> Value {
    let mut m = Map::new();
    m.insert("event".into(), json!(ev.kind.name()));
    m.insert("token".into(), json!(format!("{:08x}", ev.token)));
    if let Some(id) = ev.remote_id {
        m.insert("remid".into(), json!(id));
    }
    if let Some(id) = ev.local_id {
        m.insert("locid".into(), json!(id));
    }
    let mut addr = |a: Option<SocketAddr>, side: &str, port: &str| {
        if let Some(a) = a {
            let family = if a.is_ipv4() { "4" } else { "6" };
            m.insert(format!("{side}{family}"), json!(a.ip().to_string()));
            if a.port() != 0 {
                m.insert(port.into(), json!(a.port()));
            }
        }
    };
    addr(ev.local, "saddr", "sport");
    addr(ev.remote, "daddr", "dport");
    if let Some(b) = ev.backup {
        m.insert("backup".into(), json!(u8::from(b)));
    }
    m.insert("worker".into(), json!(worker));
    Value::Object(m)
}

/// An event as `ip mptcp monitor` prints it.
pub fn line(v: &Value) -> String {
    let mut out = format!("[{:>16}]", v["event"].as_str().unwrap_or("UNKNOWN"));
    for key in ORDER {
        match &v[key] {
            Value::Null => {}
            Value::String(s) => out += &format!(" {key}={s}"),
            other => out += &format!(" {key}={other}"),
        }
    }
    out
}

/// `mpgw monitor`: prints events until the gateway stops or stdout closes.
pub fn run(socket: &Path, json: bool) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    admin::stream(socket, "monitor", |v| {
        let text = if json { v.to_string() } else { line(&v) };
        let mut out = stdout.lock();
        writeln!(out, "{text}").and_then(|()| out.flush()).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::introspect::EventKind;

    #[test]
    fn events_read_like_ip_mptcp_monitor() {
        let mut ev = MonitorEvent::new(EventKind::SfEstablished, 0x0abc_def0);
        ev.local = Some("192.0.2.1:5201".parse().unwrap());
        ev.remote = Some("[2001:db8::2]:40001".parse().unwrap());
        ev.local_id = Some(0);
        ev.remote_id = Some(1);
        ev.backup = Some(false);
        let v = event(&ev, 1);
        assert_eq!(v["event"], "SF_ESTABLISHED");
        assert_eq!(v["daddr6"], "2001:db8::2");
        assert_eq!(v["worker"], 1);
        assert_eq!(
            line(&v),
            "[  SF_ESTABLISHED] token=0abcdef0 remid=1 locid=0 saddr4=192.0.2.1 \
             daddr6=2001:db8::2 sport=5201 dport=40001 backup=0"
        );
        let closed = event(&MonitorEvent::new(EventKind::Closed, 5), 0);
        assert_eq!(line(&closed), "[          CLOSED] token=00000005");
    }
}
