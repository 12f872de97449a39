//! `mpgw paths`: per port, its flags, link state and addresses, the subflows now
//! going through it with their bytes (from the workers' snapshots), the path's byte
//! totals since the start (MPTCP payload sent, received, retransmitted, reinjected:
//! the workers' path counters, closed connections included), its link losses
//! (failovers) and the port's own counters. A subflow goes through the port its peer
//! is on-link on (as the gateway routes: weak host model, so a client's join from its
//! second path to the gateway's first address uses the second port), else the port of
//! its local address.

use super::columns;
use crate::admin::cell;
use dataplane::introspect::{Snapshot, SubflowInfo};
use dataplane::stats::{PathBytes, PathCounter};
use ipnet::IpNet;
use serde_json::{json, Value};

/// One port as the control thread knows it.
pub struct Port {
    /// Operator name.
    pub name: String,
    /// `signal`, `subflow`, `backup`, `fullmesh`.
    pub flags: Vec<String>,
    /// Link up (as the link monitor sees it).
    pub link_up: bool,
    /// Times the link went down (each a failover).
    pub link_downs: u64,
    /// The path's byte totals, all workers.
    pub path: PathBytes,
    /// Its addresses with their prefixes.
    pub addrs: Vec<IpNet>,
    /// Bytes received by the port.
    pub rx_bytes: u64,
    /// Bytes sent by the port.
    pub tx_bytes: u64,
}

/// Subflows and their bytes on one port.
#[derive(Default)]
struct Usage {
    subflows: u64,
    connections: u64,
    bytes_sent: u64,
    bytes_acked: u64,
    bytes_received: u64,
}

/// The port subflow `s` goes through.
fn port_of(ports: &[Port], s: &SubflowInfo) -> Option<usize> {
    let remote = s.remote.ip();
    let local = s.local.ip();
    ports
        .iter()
        .position(|p| p.addrs.iter().any(|n| n.contains(&remote)))
        .or_else(|| {
            ports
                .iter()
                .position(|p| p.addrs.iter().any(|n| n.addr() == local))
        })
}

/// The `paths` answer.
pub fn answer(ports: &[Port], snapshots: &[Option<Snapshot>]) -> Value {
    let mut usage: Vec<Usage> = ports.iter().map(|_| Usage::default()).collect();
    for c in snapshots.iter().flatten().flat_map(|s| &s.conns) {
        let mut seen = vec![false; ports.len()];
        for s in &c.subflows {
            let Some(i) = port_of(ports, s) else { continue };
            let u = &mut usage[i];
            u.subflows += 1;
            u.bytes_sent += s.bytes_sent;
            u.bytes_acked += s.bytes_acked;
            u.bytes_received += s.bytes_received;
            if !std::mem::replace(&mut seen[i], true) {
                u.connections += 1;
            }
        }
    }
    let local_subflows = |a: IpNet| {
        snapshots
            .iter()
            .flatten()
            .flat_map(|s| &s.conns)
            .flat_map(|c| &c.subflows)
            .filter(|s| s.local.ip() == a.addr())
            .count()
    };
    let ports: Vec<Value> = ports
        .iter()
        .zip(usage)
        .map(|(p, u)| {
            let addrs: Vec<Value> = p
                .addrs
                .iter()
                .map(|&a| json!({ "addr": a.addr().to_string(), "subflows": local_subflows(a) }))
                .collect();
            let mut port = json!({
                "name": p.name,
                "flags": p.flags,
                "link_up": p.link_up,
                "link_downs": p.link_downs,
                "subflows": u.subflows,
                "connections": u.connections,
                "bytes_sent": u.bytes_sent,
                "bytes_acked": u.bytes_acked,
                "bytes_received": u.bytes_received,
                "rx_bytes": p.rx_bytes,
                "tx_bytes": p.tx_bytes,
                "addresses": addrs,
            });
            for c in PathCounter::ALL {
                port[format!("path_{}", c.name())] = json!(p.path[c as usize]);
            }
            port
        })
        .collect();
    let truncated = snapshots.iter().flatten().any(|s| s.truncated);
    let missing = snapshots.iter().filter(|s| s.is_none()).count();
    json!({ "ports": ports, "truncated": truncated, "workers_missing": missing })
}

/// The `paths` answer as a table, one row per port; each address shows how many
/// subflows use it as their local address.
pub fn render(v: &Value) -> String {
    let mut rows = vec![[
        "port",
        "link",
        "flags",
        "addresses(subflows)",
        "subflows",
        "connections",
        "bytes_sent",
        "bytes_acked",
        "bytes_received",
        "total_sent",
        "total_received",
        "retransmitted",
        "reinjected",
        "link_downs",
        "port_rx_bytes",
        "port_tx_bytes",
    ]
    .map(str::to_owned)
    .to_vec()];
    for p in v["ports"].as_array().into_iter().flatten() {
        let flags: Vec<String> = p["flags"]
            .as_array()
            .into_iter()
            .flatten()
            .map(cell)
            .collect();
        let flags = if flags.is_empty() {
            "-".to_owned()
        } else {
            flags.join(",")
        };
        let link = if p["link_up"].as_bool().unwrap_or(false) {
            "up"
        } else {
            "down"
        };
        let addrs: Vec<String> = p["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| format!("{}({})", cell(&a["addr"]), cell(&a["subflows"])))
            .collect();
        rows.push(vec![
            cell(&p["name"]),
            link.to_owned(),
            flags,
            addrs.join(","),
            cell(&p["subflows"]),
            cell(&p["connections"]),
            cell(&p["bytes_sent"]),
            cell(&p["bytes_acked"]),
            cell(&p["bytes_received"]),
            cell(&p["path_sent_bytes"]),
            cell(&p["path_received_bytes"]),
            cell(&p["path_retransmitted_bytes"]),
            cell(&p["path_reinjected_bytes"]),
            cell(&p["link_downs"]),
            cell(&p["rx_bytes"]),
            cell(&p["tx_bytes"]),
        ]);
    }
    let mut out = columns(&rows);
    if v["truncated"].as_bool().unwrap_or(false) {
        out += "(truncated: a worker has more connections than it lists)\n";
    }
    if v["workers_missing"].as_u64().unwrap_or(0) > 0 {
        out += &format!("({} workers did not answer)\n", cell(&v["workers_missing"]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::introspect::{ConnInfo, SubflowInfo};
    use dataplane::mptcp::msk::Phase;
    use dataplane::tcp::State;

    fn subflow(local: &str, remote: &str, sent: u64) -> SubflowInfo {
        SubflowInfo {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            local_id: 0,
            remote_id: 0,
            state: State::Established,
            flags: String::new(),
            backup: false,
            stale: false,
            rtt_us: None,
            rto_us: 0,
            cwnd: 0,
            mss: 0,
            inflight: 0,
            bytes_sent: sent,
            bytes_acked: sent,
            bytes_received: 0,
            retransmits: 0,
            ssnoff: 0,
            seq: None,
            sfseq: None,
            maplen: None,
        }
    }

    #[test]
    fn subflows_are_counted_on_the_port_they_go_through() {
        let conn = ConnInfo {
            id: 0,
            phase: Phase::Established,
            local: "192.0.2.1:80".parse().unwrap(),
            remote: "192.0.2.2:40000".parse().unwrap(),
            token: 1,
            remote_token: 0,
            remote_key: true,
            fallback: false,
            checksum: false,
            fully_established: true,
            write_seq: 0,
            snd_una: 0,
            snd_nxt: 0,
            rcv_nxt: None,
            bytes_sent: 0,
            bytes_acked: 0,
            bytes_received: 0,
            bytes_retrans: 0,
            add_addr_signal: 0,
            relay: None,
            // The initial subflow, a join to the first address over the second
            // path, a join to the second address.
            subflows: vec![
                subflow("192.0.2.1:80", "192.0.2.2:40000", 10),
                subflow("192.0.2.1:80", "198.51.100.2:40001", 20),
                subflow("198.51.100.1:80", "198.51.100.2:40002", 30),
            ],
        };
        let snap = Snapshot {
            worker: 0,
            conns: vec![conn],
            truncated: false,
        };
        let ports = [
            Port {
                name: "down0".into(),
                flags: vec![],
                link_up: true,
                link_downs: 0,
                path: [100, 200, 0, 0],
                addrs: vec!["192.0.2.1/24".parse().unwrap()],
                rx_bytes: 1,
                tx_bytes: 2,
            },
            Port {
                name: "down1".into(),
                flags: vec!["signal".into()],
                link_up: false,
                link_downs: 1,
                path: [9000, 8000, 700, 600],
                addrs: vec!["198.51.100.1/24".parse().unwrap()],
                rx_bytes: 3,
                tx_bytes: 4,
            },
        ];
        let v = answer(&ports, &[Some(snap)]);
        assert_eq!(v["ports"][0]["subflows"], 1);
        assert_eq!(v["ports"][1]["subflows"], 2);
        assert_eq!(v["ports"][1]["connections"], 1);
        assert_eq!(v["ports"][1]["bytes_sent"], 50);
        assert_eq!(v["ports"][1]["path_sent_bytes"], 9000);
        assert_eq!(v["ports"][1]["path_retransmitted_bytes"], 700);
        assert_eq!(v["ports"][1]["path_reinjected_bytes"], 600);
        assert_eq!(v["ports"][1]["link_downs"], 1);
        assert_eq!(
            v["ports"][0]["addresses"][0]["subflows"], 2,
            "by local address"
        );
        let text = render(&v);
        let row = text.lines().find(|l| l.starts_with("down1")).unwrap();
        assert!(row.contains("down") && row.contains("signal") && row.contains(" 50 "));
        assert!(
            row.contains(" 9000 ") && row.contains(" 8000 ") && row.contains(" 700 "),
            "{row}"
        );
        assert!(row.contains("198.51.100.1(1)"), "{row}");
    }
}
