//! `mpgw ss`: connections and their subflows, with the field names of `ss -M` (per
//! connection: `token`, `remote_key`, `fallback`, `csum_enabled`, `write_seq`,
//! `snd_una`, `rcv_nxt`, `bytes_*`, `add_addr_signal`; per subflow: `flags`, ids,
//! `seq`, `sfseq`, `ssnoff`, `maplen`), plus what `ss` cannot show: RTT, cwnd and
//! bytes per subflow and the relay pairing.

use super::columns;
use crate::admin::cell;
use dataplane::introspect::{phase_name, state_name, ConnInfo, Snapshot, SubflowInfo};
use serde_json::{json, Value};

/// The `ss` answer: every worker's connections (`lcores[i]` is worker `i`'s lcore).
pub fn answer(snapshots: &[Option<Snapshot>], lcores: &[u32]) -> Value {
    let mut conns = Vec::new();
    let mut missing = Vec::new();
    let mut truncated = false;
    for (i, s) in snapshots.iter().enumerate() {
        let lcore = lcores.get(i).copied();
        match s {
            Some(s) => {
                truncated |= s.truncated;
                conns.extend(s.conns.iter().map(|c| conn(c, s.worker, lcore)));
            }
            None => missing.extend(lcore),
        }
    }
    json!({ "connections": conns, "truncated": truncated, "workers_missing": missing })
}

/// A token as `ss` prints it (hex), `null` for none.
fn token(t: u32) -> Value {
    if t == 0 {
        Value::Null
    } else {
        json!(format!("{t:08x}"))
    }
}

fn conn(c: &ConnInfo, worker: u16, lcore: Option<u32>) -> Value {
    json!({
        "worker": worker,
        "lcore": lcore,
        "id": c.id,
        "phase": phase_name(c.phase),
        "local": c.local.to_string(),
        "remote": c.remote.to_string(),
        "token": token(c.token),
        "remote_token": token(c.remote_token),
        "remote_key": c.remote_key,
        "fallback": c.fallback,
        "csum_enabled": c.checksum,
        "fully_established": c.fully_established,
        "write_seq": c.write_seq,
        "snd_una": c.snd_una,
        "snd_nxt": c.snd_nxt,
        "rcv_nxt": c.rcv_nxt,
        "bytes_sent": c.bytes_sent,
        "bytes_acked": c.bytes_acked,
        "bytes_received": c.bytes_received,
        "bytes_retrans": c.bytes_retrans,
        "add_addr_signal": c.add_addr_signal,
        "relay": c.relay.map(|r| json!({
            "side": if r.client { "client" } else { "backend" },
            "peer": r.peer,
        })),
        "subflows": c.subflows.iter().map(subflow).collect::<Vec<_>>(),
    })
}

fn subflow(s: &SubflowInfo) -> Value {
    json!({
        "local": s.local.to_string(),
        "remote": s.remote.to_string(),
        "local_id": s.local_id,
        "remote_id": s.remote_id,
        "state": state_name(s.state),
        "flags": s.flags,
        "backup": s.backup,
        "stale": s.stale,
        "rtt_us": s.rtt_us,
        "rto_us": s.rto_us,
        "cwnd": s.cwnd,
        "mss": s.mss,
        "inflight": s.inflight,
        "bytes_sent": s.bytes_sent,
        "bytes_acked": s.bytes_acked,
        "bytes_received": s.bytes_received,
        "retransmits": s.retransmits,
        "ssnoff": s.ssnoff,
        "seq": s.seq,
        "sfseq": s.sfseq,
        "maplen": s.maplen,
    })
}

/// The `ss` answer as text: per connection a line of its fields (`ss -M` style, flags
/// only when set), then a table of its subflows.
pub fn render(v: &Value) -> String {
    let conns = v["connections"].as_array().map_or(&[][..], Vec::as_slice);
    let mptcp = conns.iter().filter(|c| !c["token"].is_null()).count();
    let mut out = format!("{} connections, {mptcp} MPTCP", conns.len());
    if v["truncated"].as_bool().unwrap_or(false) {
        out += " (truncated: a worker has more than it lists)";
    }
    if let Some(m) = v["workers_missing"].as_array().filter(|m| !m.is_empty()) {
        let lcores: Vec<String> = m.iter().map(cell).collect();
        out += &format!(
            " (no answer from the workers on lcores {})",
            lcores.join(", ")
        );
    }
    out.push('\n');
    for c in conns {
        out += &conn_text(c);
    }
    out
}

fn conn_text(c: &Value) -> String {
    let kind = if c["token"].is_null() { "TCP" } else { "MPTCP" };
    let mut out = format!(
        "\n{kind} {} {} -> {}  worker:{} id:{}\n   ",
        cell(&c["phase"]),
        cell(&c["local"]),
        cell(&c["remote"]),
        cell(&c["worker"]),
        cell(&c["id"])
    );
    let subflows = c["subflows"].as_array().map_or(&[][..], Vec::as_slice);
    let mut fields = vec![format!("subflows:{}", subflows.len())];
    for flag in ["fallback", "remote_key", "fully_established"] {
        if c[flag].as_bool().unwrap_or(false) {
            fields.push(flag.to_owned());
        }
    }
    for key in [
        "token",
        "remote_token",
        "write_seq",
        "snd_una",
        "rcv_nxt",
        "csum_enabled",
        "bytes_sent",
        "bytes_acked",
        "bytes_received",
        "bytes_retrans",
        "add_addr_signal",
    ] {
        let val = &c[key];
        let set = match val {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_u64() != Some(0),
            _ => true,
        };
        if set {
            let text = if val.is_boolean() {
                "1".to_owned()
            } else {
                cell(val)
            };
            fields.push(format!("{key}:{text}"));
        }
    }
    if let Some(r) = c["relay"].as_object() {
        fields.push(format!(
            "relay:{}/peer:{}",
            cell(&r["side"]),
            cell(&r["peer"])
        ));
    }
    out += &fields.join(" ");
    out.push('\n');
    let mut rows = vec![[
        "   state",
        "local",
        "remote",
        "flags",
        "rtt_ms",
        "cwnd",
        "bytes_sent",
        "bytes_acked",
        "bytes_received",
        "retrans",
        "seq",
        "sfseq",
        "ssnoff",
        "maplen",
    ]
    .map(str::to_owned)
    .to_vec()];
    for s in subflows {
        let rtt = s["rtt_us"]
            .as_u64()
            .map_or("-".to_owned(), |us| format!("{:.2}", us as f64 / 1000.0));
        let addr = |a: &str, id: &str| format!("{}({})", cell(&s[a]), cell(&s[id]));
        let mut flags = cell(&s["flags"]);
        if s["stale"].as_bool().unwrap_or(false) {
            flags += ",stale";
        }
        rows.push(vec![
            format!("   {}", cell(&s["state"])),
            addr("local", "local_id"),
            addr("remote", "remote_id"),
            flags,
            rtt,
            cell(&s["cwnd"]),
            cell(&s["bytes_sent"]),
            cell(&s["bytes_acked"]),
            cell(&s["bytes_received"]),
            cell(&s["retransmits"]),
            cell(&s["seq"]),
            cell(&s["sfseq"]),
            cell(&s["ssnoff"]),
            cell(&s["maplen"]),
        ]);
    }
    out + &columns(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::introspect::RelayLeg;
    use dataplane::mptcp::msk::Phase;
    use dataplane::tcp::State;

    fn sample() -> Snapshot {
        let sf = |local: &str, remote: &str, id, flags: &str| SubflowInfo {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            local_id: 0,
            remote_id: id,
            state: State::Established,
            flags: flags.into(),
            backup: false,
            stale: false,
            rtt_us: Some(1500),
            rto_us: 201_000,
            cwnd: 14_480,
            mss: 1448,
            inflight: 0,
            bytes_sent: 100,
            bytes_acked: 90,
            bytes_received: 5000,
            retransmits: 0,
            ssnoff: 12345,
            seq: Some(777),
            sfseq: Some(1),
            maplen: Some(1400),
        };
        Snapshot {
            worker: 0,
            truncated: false,
            conns: vec![ConnInfo {
                id: 3,
                phase: Phase::Established,
                local: "192.0.2.1:5201".parse().unwrap(),
                remote: "192.0.2.2:40000".parse().unwrap(),
                token: 0x8cf1_d4a0,
                remote_token: 0x1234,
                remote_key: true,
                fallback: false,
                checksum: false,
                fully_established: true,
                write_seq: 101,
                snd_una: 91,
                snd_nxt: 101,
                rcv_nxt: Some(5001),
                bytes_sent: 100,
                bytes_acked: 90,
                bytes_received: 5000,
                bytes_retrans: 0,
                add_addr_signal: 1,
                relay: Some(RelayLeg {
                    client: true,
                    peer: Some(4),
                }),
                subflows: vec![
                    sf("192.0.2.1:5201", "192.0.2.2:40000", 0, "Mmec"),
                    sf("192.0.2.1:5201", "198.51.100.2:40001", 1, "Jjecv"),
                ],
            }],
        }
    }

    #[test]
    fn the_answer_uses_ss_names_and_lists_subflows() {
        let v = answer(&[Some(sample()), None], &[1, 2]);
        let c = &v["connections"][0];
        assert_eq!(c["token"], "8cf1d4a0");
        assert_eq!(c["lcore"], 1);
        assert_eq!(c["relay"]["side"], "client");
        assert_eq!(c["relay"]["peer"], 4);
        assert_eq!(c["subflows"][1]["remote"], "198.51.100.2:40001");
        assert_eq!(c["subflows"][1]["state"], "ESTAB");
        assert_eq!(c["subflows"][1]["sfseq"], 1);
        assert_eq!(v["workers_missing"], json!([2]));
    }

    #[test]
    fn the_table_shows_fields_set_and_subflow_rows() {
        let text = render(&answer(&[Some(sample())], &[1]));
        assert!(text.starts_with("1 connections, 1 MPTCP\n"), "{text}");
        assert!(text.contains("MPTCP established 192.0.2.1:5201 -> 192.0.2.2:40000"));
        assert!(text.contains("subflows:2 remote_key fully_established token:8cf1d4a0"));
        assert!(!text.contains("csum_enabled"), "unset flags are left out");
        assert!(!text.contains("bytes_retrans"), "zero fields are left out");
        assert!(text.contains("relay:client/peer:4"));
        let row = text
            .lines()
            .find(|l| l.contains("198.51.100.2:40001(1)"))
            .expect("the join's row");
        assert!(row.trim_start().starts_with("ESTAB") && row.contains("Jjecv"));
        assert!(row.contains("1.50"), "RTT in ms: {row}");
    }
}
