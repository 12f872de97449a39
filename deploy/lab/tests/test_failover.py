"""Link failover in the lab: a kernel MPTCP client relayed by the concentrator over two
paths loses one of them (the gateway's veth gd1, port down1, goes down) mid-transfer.

mpgw sees the link go down (net_af_packet reports its link up regardless: the kernel
interface's operstate is watched), resets the subflow on down1, reinjects its data on
the other path (counted as reinjected bytes on down0's path) and withdraws down1's
address with REMOVE_ADDR; the transfer finishes byte-exact. When the link is back, down1 (`signal`) is announced again with ADD_ADDR
and the client joins it again. In the edge role (plain TCP in, MPTCP out over both
downstream ports) mpgw itself re-creates the subflow from down1 when its link is back.
"""

import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from mptcp_helpers import nstat, setup_mptcp_client
from relay_helpers import MPTCP, TCP, start_server, stop_server, transfer

MIB = "MPTcpExt"
# Big enough to outlast the down/up cycle even on a loaded 2-core machine.
BIG = 512 << 20
LAB_EXTRA_CONFIG = '[mptcp]\nscheduler = "default"\n'


@pytest.fixture(scope="module")
def fo_lab(lab):
    # No `subflow` endpoint: the only join is the one to down1's announced address.
    setup_mptcp_client(lab, subflows=4, add_addr_accepted=2, subflow_endpoint=False)
    backend = start_server(lab, lab.srv, "::", 5201, proto=TCP)
    wan_server = start_server(lab, lab.cli, "2001:db8:0:100::1", 5202, proto=MPTCP)
    yield lab
    lab.sh(lab.gw, "ip link set gd1 up")
    stop_server(lab, lab.srv, backend)
    stop_server(lab, lab.cli, wan_server)


def _wait(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def _mib(lab, name):
    return nstat(lab, lab.cli).get(MIB + name, 0)


def _port(lab, name):
    return next(p for p in lab.stats()["ports"] if p["name"] == name)


@contextmanager
def _scheduler(lab, name):
    """Runs with mpgw's scheduler reloaded to `name` (for connections made meanwhile)."""
    path = Path(f"/run/{lab.name}/mpgw.toml")
    original = path.read_text()

    def reload():
        res = subprocess.run([lab.mpgw_bin, "reload", "--socket", lab.socket], text=True,
                             capture_output=True, timeout=10)
        assert res.returncode == 0, res.stderr

    path.write_text(original.replace('scheduler = "default"', f'scheduler = "{name}"'))
    reload()
    try:
        yield
    finally:
        path.write_text(original)
        reload()


def test_a_path_going_down_mid_transfer_fails_over_and_comes_back(fo_lab):
    lab = fo_lab
    assert _port(lab, "down1")["link_source"] == "kernel"
    gw0 = lab.counters()
    reinjected0 = _port(lab, "down0")["path_reinjected_bytes"]
    joins0, rm0 = _mib(lab, "MPJoinSynAckRx"), _mib(lab, "RmAddr")
    res = {}
    t = threading.Thread(target=lambda: res.update(
        transfer(lab, lab.cli, "192.0.2.1", 5201, "E", BIG, proto=MPTCP, timeout=400)))
    try:
        # Round robin: mpgw keeps data in flight on both paths (the default scheduler
        # may leave one idle on veths), so the dying one always has some to reinject.
        with _scheduler(lab, "roundrobin"):
            t.start()
            # The client joined down1's announced address before the failure.
            assert _wait(lambda: _mib(lab, "MPJoinSynAckRx") > joins0, 15), "no join before"
        add0 = _mib(lab, "AddAddr")
        time.sleep(1.0)
        lab.sh(lab.gw, "ip link set gd1 down", check=True)
        assert _wait(lambda: lab.counters()["failovers"] > gw0["failovers"], 5), \
            "mpgw did not fail over"
        down1 = _port(lab, "down1")
        assert not down1["link_up"] and down1["link_downs"] >= 1
        assert _wait(lambda: _mib(lab, "RmAddr") > rm0, 10), "no REMOVE_ADDR at the client"
        assert _wait(lambda: _port(lab, "down1")["last_failover_us"] > 0, 10)
        time.sleep(1.0)
        joins1 = _mib(lab, "MPJoinSynAckRx")
        lab.sh(lab.gw, "ip link set gd1 up", check=True)
        assert _wait(lambda: _mib(lab, "AddAddr") > add0, 10), "not announced again"
        assert _wait(lambda: _mib(lab, "MPJoinSynAckRx") > joins1, 20), "the client did not rejoin"
    finally:
        lab.sh(lab.gw, "ip link set gd1 up")
        if t.ident is not None:
            t.join(420)
    assert res.get("ok"), res
    gw = lab.counters()
    assert gw["failovers"] - gw0["failovers"] == 1
    assert gw["reannounced"] - gw0["reannounced"] == 1
    assert gw["failover_time_us"] > gw0["failover_time_us"]
    assert gw["relay_resets"] == gw0["relay_resets"]
    assert _port(lab, "down1")["link_up"]
    # What was in flight on down1 went again over down0.
    assert _port(lab, "down0")["path_reinjected_bytes"] > reinjected0


def test_the_edge_recreates_its_subflow_when_the_link_is_back(fo_lab):
    lab = fo_lab
    gw0 = lab.counters()
    rm0, join0 = _mib(lab, "RmAddr"), _mib(lab, "MPJoinAckRx")
    res = {}
    t = threading.Thread(target=lambda: res.update(
        transfer(lab, lab.srv, "203.0.113.1", 5202, "E", BIG, proto=TCP, timeout=400)))
    t.start()
    try:
        # The MPTCP server (client namespace) accepted mpgw's join from down1.
        assert _wait(lambda: _mib(lab, "MPJoinAckRx") > join0, 15), "no join before"
        time.sleep(1.0)
        lab.sh(lab.gw, "ip link set gd1 down", check=True)
        assert _wait(lambda: lab.counters()["failovers"] > gw0["failovers"], 5)
        assert _wait(lambda: _mib(lab, "RmAddr") > rm0, 10), "no REMOVE_ADDR at the server"
        time.sleep(1.0)
        join1 = _mib(lab, "MPJoinAckRx")
        lab.sh(lab.gw, "ip link set gd1 up", check=True)
        assert _wait(lambda: lab.counters()["rejoins"] > gw0["rejoins"], 5), "no rejoin"
        assert _wait(lambda: _mib(lab, "MPJoinAckRx") > join1, 10), "the join did not complete"
    finally:
        lab.sh(lab.gw, "ip link set gd1 up")
        t.join(420)
    assert res.get("ok"), res
    gw = lab.counters()
    assert gw["failovers"] - gw0["failovers"] == 1
    assert gw["rejoins"] - gw0["rejoins"] == 1
    assert gw["relay_resets"] == gw0["relay_resets"]
