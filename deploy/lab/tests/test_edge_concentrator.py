"""Two mpgw gateways back to back (deploy/lab/e2e.sh): a plain TCP client → mpgw edge
⇒ MPTCP over three WAN paths ⇒ mpgw concentrator → a plain TCP server.

    $LAB-lan  l0 192.0.2.2 ── e0 192.0.2.1  [$LAB-edge: mpgw edge]
                                   w0 198.51.100.1/28  ── k0 198.51.100.2/28 (+ .100/32)
                                   w1 198.51.100.17/28 ── k1 198.51.100.18/28
                                   w2 198.51.100.33/28 ── k2 198.51.100.34/28
                              [$LAB-conc: mpgw concentrator]
                                   s0 203.0.113.1/24 ── t0 203.0.113.2  $LAB-srv

The edge relays 192.0.2.1:5201 to the concentrator's service address
198.51.100.100:5201 (on none of the edge's subnets, reached through each WAN port's
gateway): the initial subflow from 198.51.100.1 over wan0, one MP_JOIN from each of
its other `subflow` addresses (198.51.100.17 over wan1, 198.51.100.33 over wan2). The
concentrator relays to the server's 203.0.113.2:5201. Each mpgw has its own namespace,
EAL file prefix and admin socket (deploy/lab/e2e-edge.toml, e2e-concentrator.toml).

Every transfer is checked byte for byte (sha256 of seeded data); every connection must
be MPTCP between the gateways with each of the three paths carrying at least 10 % of
the bytes in each direction that carries data.
"""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, Lab
from relay_helpers import TCP, start_server, stop_server, transfer

E2E_SH = ROOT / "deploy" / "lab" / "e2e.sh"
MIB = "MPTcpExt"
SIZE = 64 << 20
TIMEOUT = 60  # per transfer, seconds
WAN_DEVS = ("k0", "k1", "k2")  # the concentrator's ends of the three WAN paths


class E2ELab(Lab):
    """The two-gateway lab: namespaces lan/edge/conc/srv, an mpgw in edge and conc."""

    def __init__(self, name: str, mpgw_bin: str):
        super().__init__(name, mpgw_bin)
        self.lan, self.edge, self.conc, self.srv = (f"{name}-{n}" for n in
                                                    ("lan", "edge", "conc", "srv"))

    def script(self, verb: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(E2E_SH), verb], env=self.env, text=True,
                              capture_output=True, timeout=120)

    def gw_stats(self, gw: str) -> dict:
        """`mpgw stats --json` of gateway `gw` ("edge" or "conc")."""
        res = subprocess.run([self.mpgw_bin, "stats", "--json", "--socket",
                              f"/run/{self.name}/{gw}.sock"],
                             text=True, capture_output=True, timeout=10)
        assert res.returncode == 0, f"mpgw {gw} stats: {res.stderr}"
        return json.loads(res.stdout)

    def gw_log(self, gw: str) -> str:
        try:
            return Path(f"/run/{self.name}/{gw}.log").read_text()
        except OSError:
            return ""

    def gw_alive(self, gw: str) -> bool:
        try:
            pid = int(Path(f"/run/{self.name}/{gw}.pid").read_text())
            os.kill(pid, 0)
            return True
        except (OSError, ValueError):
            return False

    def wan_bytes(self) -> list:
        """[(rx_bytes, tx_bytes)] of k0, k1, k2: the concentrator's ends of the paths
        (the kernel counts the frames of af_packet ports too). rx is edge → concentrator
        (upload), tx concentrator → edge (download)."""
        out = self.sh(self.conc, " ".join(
            f"cat /sys/class/net/{d}/statistics/rx_bytes /sys/class/net/{d}/statistics/tx_bytes;"
            for d in WAN_DEVS), timeout=10, check=True).stdout.split()
        vals = [int(v) for v in out]
        return [(vals[2 * i], vals[2 * i + 1]) for i in range(len(WAN_DEVS))]


@pytest.fixture(scope="module")
def e2e():
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    mpgw_bin = os.environ.get("MPGW_BIN", str(ROOT / "target" / "release" / "mpgw"))
    lab = E2ELab(f"e2e{os.getpid() % 100000}", mpgw_bin)
    up = lab.script("up")
    if up.returncode != 0:
        logs = lab.gw_log("edge") + lab.gw_log("conc")
        lab.script("down")
        pytest.fail(f"e2e lab up failed:\n{up.stdout}\n{up.stderr}\n{logs}")
    server = None
    try:
        server = start_server(lab, lab.srv, "0.0.0.0", 5201, proto=TCP)
        yield lab
    finally:
        if server:
            stop_server(lab, lab.srv, server)
        logs = {gw: lab.gw_log(gw) for gw in ("edge", "conc")}
        down = lab.script("down")
    assert down.returncode == 0, down.stderr
    for gw, log in logs.items():
        assert "panick" not in log, f"mpgw {gw} log:\n{log}"


def _delta(before: dict, after: dict, name: str) -> int:
    return after.get(name, 0) - before.get(name, 0)


def _snapshot(lab: E2ELab) -> dict:
    return {gw: lab.gw_stats(gw) for gw in ("edge", "conc")}


def _moved(before: dict, after: dict) -> dict:
    """The counters of each gateway (totals and MPTCP MIB) that changed since `before`."""
    return {gw: {k: v - before[gw][part].get(k, 0)
                 for part in ("total", "mptcp_mib")
                 for k, v in after[gw][part].items()
                 if isinstance(v, int) and v != before[gw][part].get(k, 0)}
            for gw in ("edge", "conc")}


def _snapshot_after_joins(lab, before) -> dict:
    """`_snapshot` once the concentrator took both joins since `before` (their ACKs and
    the relays' counters are in by the end of a transfer; this gives them a moment)."""
    deadline = time.monotonic() + 5
    while True:
        after = _snapshot(lab)
        if (_delta(before["conc"]["mptcp_mib"], after["conc"]["mptcp_mib"],
                   MIB + "MPJoinAckRx") >= 2 or time.monotonic() > deadline):
            return after
        time.sleep(0.1)


@pytest.mark.parametrize("kind", ["U", "D", "E"])
def test_tcp_client_to_tcp_server_through_edge_and_concentrator_over_three_paths(e2e, kind):
    lab = e2e
    before, wan_before = _snapshot(lab), lab.wan_bytes()
    res = transfer(lab, lab.lan, "192.0.2.1", 5201, kind, SIZE, proto=TCP, seed=7,
                   timeout=TIMEOUT)
    assert res["ok"], res
    wan_after = lab.wan_bytes()
    after = _snapshot_after_joins(lab, before)

    moved = {"U": res["bytes_sent"], "D": res["bytes_received"],
             "E": res["bytes_sent"] + res["bytes_received"]}[kind]
    up = [a[0] - b[0] for a, b in zip(wan_after, wan_before)]    # edge → concentrator
    down = [a[1] - b[1] for a, b in zip(wan_after, wan_before)]  # concentrator → edge
    name = {"U": "upload", "D": "download", "E": "echo"}[kind]
    emib = {k: _delta(before["edge"]["mptcp_mib"], after["edge"]["mptcp_mib"], MIB + k)
            for k in ("MPCapableSYNTX", "MPCapableSYNACKRX", "MPCapableFallbackSYNACK",
                      "MPJoinSynTx", "MPJoinSynAckRx", "MPRstRx", "MPTCPRetrans", "RcvPruned")}
    cmib = {k: _delta(before["conc"]["mptcp_mib"], after["conc"]["mptcp_mib"], MIB + k)
            for k in ("MPCapableSYNRX", "MPCapableACKRX", "MPCapableFallbackACK",
                      "MPJoinSynRx", "MPJoinAckRx", "MPJoinNotEstablished", "MPJoinRejected",
                      "MPRstTx", "MPFastcloseTx", "MPTCPRetrans", "RcvPruned")}

    def shares(path):
        return ", ".join(f"{100 * p / max(sum(path), 1):.0f} %" for p in path)

    print(f"\n{name} {SIZE >> 20} MiB: {moved * 8 / res['elapsed'] / 1e6:.1f} Mbit/s goodput "
          f"({moved} B in {res['elapsed']:.2f} s, longest stall {res['longest_stall']:.2f} s)\n"
          f"  WAN bytes k0/k1/k2 edge→conc {up} ({shares(up)}), "
          f"conc→edge {down} ({shares(down)})\n"
          f"  edge MIB {emib}\n  conc MIB {cmib}")

    # Both relays carried the connection, in full, without resets.
    for gw in ("edge", "conc"):
        b, a = before[gw]["total"], after[gw]["total"]
        assert _delta(b, a, "relay_connected") == 1, (gw, a)
        assert _delta(b, a, "relay_resets") == 0, (gw, a)
        assert _delta(b, a, "mptcp_fallbacks") == 0, (gw, a)
        if kind in ("U", "E"):
            assert _delta(b, a, "relay_bytes_up") >= SIZE, (gw, a)
        if kind in ("D", "E"):
            assert _delta(b, a, "relay_bytes_down") >= SIZE, (gw, a)
    # The edge opened the connection with MP_CAPABLE and joined from its two other WAN
    # addresses; the concentrator took all three subflows.
    assert emib["MPCapableSYNACKRX"] == 1, emib
    assert emib["MPCapableFallbackSYNACK"] == 0, emib
    assert cmib["MPCapableACKRX"] == 1, cmib
    assert cmib["MPCapableFallbackACK"] == 0, cmib
    # A join the concentrator refuses (MPJoinNotEstablished: it came before the
    # concentrator took the MP_CAPABLE third ACK, and was answered with MP_TCPRST) is
    # never retried, and its path stays unused.
    assert emib["MPJoinSynAckRx"] >= 2, (emib, cmib)
    assert cmib["MPJoinAckRx"] >= 2, (emib, cmib)
    # Each of the three WAN paths carried at least 10 % of the bytes, in each direction
    # that carried data (rx+tx alone would hide one direction confined to one path).
    directions = {"U": [up], "D": [down], "E": [up, down]}[kind]
    for path in directions:
        assert sum(path) >= SIZE, (up, down)
        assert all(p >= sum(path) // 10 for p in path), (up, down)
    assert sum(up) + sum(down) >= moved, (up, down, moved)
    # Neither reassembly dropped data its subflows had acknowledged (the plain legs'
    # MSS makes every relayed segment one MPTCP segment: no 28-byte pieces).
    assert emib["RcvPruned"] == 0 and cmib["RcvPruned"] == 0, (emib, cmib)
    assert lab.gw_alive("edge") and lab.gw_alive("conc")


def test_transparent_edge_and_concentrator_compose(e2e):
    # The LAN client connects to the server's own address: the edge answers as the
    # server and opens MPTCP to it through the WAN (its routes: wan0's gateway, the
    # concentrator), joins from its other WAN addresses to that same address; the
    # concentrator, a transparent one, terminates the MPTCP connection (taking the
    # joins by token) and relays plain TCP to the server.
    lab = e2e
    server = start_server(lab, lab.srv, "0.0.0.0", 5205, proto=TCP)
    try:
        before = _snapshot(lab)
        # A download (the echo and upload directions are covered by the test above).
        try:
            res = transfer(lab, lab.lan, "203.0.113.2", 5205, "D", SIZE, proto=TCP, seed=9,
                           timeout=TIMEOUT)
        except AssertionError as e:
            # Session 6 saw about 1 download in 70 reset near its end here (a plain
            # leg's unread data dropped when the server's RST ended its TIME-WAIT;
            # fixed in session 7). What both gateways counted meanwhile says where.
            raise AssertionError(f"{e}\ncounters that moved: {_moved(before, _snapshot(lab))}")
        assert res["ok"], res
        after = _snapshot_after_joins(lab, before)
    finally:
        stop_server(lab, lab.srv, server)
    for gw in ("edge", "conc"):
        b, a = before[gw]["total"], after[gw]["total"]
        assert _delta(b, a, "relay_transparent") == 1, (gw, a)
        assert _delta(b, a, "relay_connected") == 1, (gw, a)
        assert _delta(b, a, "relay_resets") == 0, (gw, a)
        assert _delta(b, a, "drop_transit") == 0, (gw, a)
    mib = {gw: (before[gw]["mptcp_mib"], after[gw]["mptcp_mib"]) for gw in ("edge", "conc")}
    assert _delta(*mib["edge"], MIB + "MPCapableSYNACKRX") == 1, "MPTCP between the gateways"
    assert _delta(*mib["conc"], MIB + "MPJoinAckRx") >= 2, "joins to the foreign address"
