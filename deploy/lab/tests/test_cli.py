"""The operator CLI against a running gateway: `mpgw ss`, `mpgw paths` and
`mpgw monitor` while a kernel MPTCP client on two paths goes through the concentrator
(192.0.2.1:5201 → plain TCP to the server namespace).

The client accepts no ADD_ADDR (add_addr_accepted 0), so each connection has exactly
two subflows: the initial one over c0 and the `subflow` endpoint's join over c1.
"""

import json
import subprocess
import threading
import time

import pytest

from mptcp_helpers import setup_mptcp_client
from relay_helpers import MPTCP, TCP, start_server, stop_server, transfer

CLIENT_ADDRS = {"192.0.2.2", "198.51.100.2"}


@pytest.fixture(scope="module")
def cli_lab(lab):
    setup_mptcp_client(lab, subflows=2, add_addr_accepted=0, subflow_endpoint=True)
    server = start_server(lab, lab.srv, "::", 5201, proto=TCP)
    yield lab
    stop_server(lab, lab.srv, server)


def mpgw(lab, *args, timeout=10) -> str:
    res = subprocess.run([lab.mpgw_bin, *args, "--socket", lab.socket], text=True,
                         capture_output=True, timeout=timeout)
    assert res.returncode == 0, res.stderr
    return res.stdout


def _two_path_connection(ss: dict):
    """The relayed MPTCP connection of the concentrator with both subflows established."""
    for c in ss["connections"]:
        subs = c["subflows"]
        if (c["token"] and c["local"] == "192.0.2.1:5201" and len(subs) == 2
                and all(s["state"] == "ESTAB" for s in subs) and c["bytes_received"] > 0):
            return c
    return None


def test_ss_lists_the_connection_with_both_subflows_during_a_transfer(cli_lab):
    lab = cli_lab
    result = {}
    t = threading.Thread(target=lambda: result.update(
        transfer(lab, lab.cli, "192.0.2.1", 5201, "E", 256 << 20, proto=MPTCP)), daemon=True)
    t.start()
    conn = ss = None
    deadline = time.monotonic() + 60
    while conn is None and t.is_alive() and time.monotonic() < deadline:
        ss = json.loads(mpgw(lab, "ss", "--json"))
        conn = _two_path_connection(ss)
        time.sleep(0.1)
    table = mpgw(lab, "ss")
    paths = json.loads(mpgw(lab, "paths", "--json"))
    t.join(150)
    assert result.get("ok"), result
    assert conn is not None, ss
    assert not ss["truncated"] and ss["workers_missing"] == []
    # Connection level: DSNs in order, acknowledged no further than sent.
    assert conn["remote_key"] and conn["fully_established"] and not conn["fallback"]
    assert conn["snd_una"] <= conn["snd_nxt"] <= conn["write_seq"]
    assert conn["bytes_acked"] <= conn["bytes_sent"]
    assert len(conn["token"]) == 8 and conn["remote_token"]
    # Subflows: one from each client path, the initial one MP_CAPABLE, the other a join.
    subs = conn["subflows"]
    assert {s["remote"].rsplit(":", 1)[0] for s in subs} == CLIENT_ADDRS, subs
    initial = next(s for s in subs if s["remote"].startswith("192.0.2.2:"))
    join = next(s for s in subs if s["remote"].startswith("198.51.100.2:"))
    assert initial["flags"].startswith("Mm") and join["flags"].startswith("Jj"), subs
    assert join["remote_id"] != 0, "the join names the client's endpoint id"
    for s in subs:
        assert s["bytes_acked"] <= s["bytes_sent"], s
        assert s["rtt_us"] is not None and s["cwnd"] > 0, s
        assert "e" in s["flags"] and "c" in s["flags"], s
    # The relay pair: the backend leg is plain TCP to the server.
    assert conn["relay"]["side"] == "client"
    backend = next(c for c in ss["connections"] if c["id"] == conn["relay"]["peer"]
                   and c["worker"] == conn["worker"])
    assert backend["token"] is None and backend["fallback"]
    assert backend["remote"] == "203.0.113.2:5201"
    assert backend["relay"] == {"side": "backend", "peer": conn["id"]}
    # The table shows the same connection.
    assert f"token:{conn['token']}" in table and "(0)" in table, table
    # Paths: a subflow over each downstream port (the join goes to the first address
    # over the second path), the backend leg over the upstream port.
    ports = {p["name"]: p for p in paths["ports"]}
    for name in ("down0", "down1", "up0"):
        assert ports[name]["link_up"] and ports[name]["subflows"] >= 1, paths
    assert "signal" in ports["down1"]["flags"]
    assert ports["down0"]["addresses"][0] == {"addr": "192.0.2.1",
                                              "subflows": ports["down0"]["addresses"][0]["subflows"]}
    assert ports["down0"]["addresses"][0]["subflows"] >= 2, paths


def test_monitor_reports_a_connection_from_creation_to_close(cli_lab):
    lab = cli_lab
    mon = subprocess.Popen([lab.mpgw_bin, "monitor", "--json", "--socket", lab.socket],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(mon.stdout), daemon=True)
    reader.start()
    try:
        # Attached once the gateway has answered; the workers attach within a tick.
        time.sleep(1.0)
        assert mon.poll() is None, mon.stderr.read()
        res = transfer(lab, lab.cli, "192.0.2.1", 5201, "E", 4 << 20, proto=MPTCP)
        assert res["ok"], res
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any('"CLOSED"' in line for line in list(lines)):
                break
            time.sleep(0.1)
        stats = lab.stats()
    finally:
        mon.terminate()
        mon.wait(10)
    reader.join(5)
    events = [json.loads(line) for line in lines]
    tokens = {e["token"] for e in events if e["event"] == "CREATED"}
    assert len(tokens) == 1, events
    token = tokens.pop()
    names = [e["event"] for e in events if e["token"] == token]
    for name in ("CREATED", "ESTABLISHED", "SF_ESTABLISHED", "CLOSED"):
        assert names.count(name) == 1, (name, names)
    order = [names.index(n) for n in ("CREATED", "ESTABLISHED", "SF_ESTABLISHED", "CLOSED")]
    assert order == sorted(order), names
    created = next(e for e in events if e["event"] == "CREATED")
    assert (created["saddr4"], created["sport"], created["daddr4"]) == \
        ("192.0.2.1", 5201, "192.0.2.2"), created
    joined = next(e for e in events if e["event"] == "SF_ESTABLISHED")
    assert joined["daddr4"] == "198.51.100.2" and joined["remid"] != 0, joined
    assert stats["total"]["monitor_events_dropped"] == 0


def test_monitor_text_reads_like_ip_mptcp_monitor(cli_lab):
    lab = cli_lab
    mon = subprocess.Popen([lab.mpgw_bin, "monitor", "--socket", lab.socket],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        res = transfer(lab, lab.cli, "192.0.2.1", 5201, "U", 1 << 20, proto=MPTCP)
        assert res["ok"], res
        time.sleep(1.0)
    finally:
        mon.terminate()
        out = mon.communicate(timeout=10)[0]
    created = [l for l in out.splitlines() if l.startswith("[         CREATED] token=")]
    assert len(created) == 1, out
    assert "saddr4=192.0.2.1 daddr4=192.0.2.2 sport=5201" in created[0], out
