"""Hot reload in the lab: `mpgw reload` (and SIGHUP) re-reads the configuration file
while a relayed transfer runs; run-time settings are applied, a broken file or a change
that needs a restart is refused with its reason and changes nothing."""

import subprocess
import threading
import time
from pathlib import Path

import pytest

from mptcp_helpers import nstat, setup_mptcp_client
from relay_helpers import MPTCP, TCP, start_server, stop_server, transfer

MIB = "MPTcpExt"
LAB_EXTRA_CONFIG = '[mptcp]\nscheduler = "default"\nsubflows = 2\n'


@pytest.fixture(scope="module")
def rl_lab(lab):
    setup_mptcp_client(lab, subflows=4, add_addr_accepted=2, subflow_endpoint=True)
    backend = start_server(lab, lab.srv, "::", 5201, proto=TCP)
    path = Path(f"/run/{lab.name}/mpgw.toml")
    original = path.read_text()
    yield lab, path, original
    path.write_text(original)
    stop_server(lab, lab.srv, backend)


def _reload(lab):
    return subprocess.run([lab.mpgw_bin, "reload", "--socket", lab.socket], text=True,
                          capture_output=True, timeout=10)


def _wait_until(predicate, seconds):
    """Polls `predicate` every 50 ms until it holds or `seconds` passed."""
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)


def _echo_in_background(lab, size):
    """Starts an MPTCP echo of `size` bytes through the relay; returns its thread and
    the dict its result lands in."""
    res = {}
    t = threading.Thread(target=lambda: res.update(
        transfer(lab, lab.cli, "192.0.2.1", 5201, "E", size, proto=MPTCP, timeout=300)))
    t.start()
    return t, res


def _state(lab):
    s = lab.stats()
    return s["control"], s["total"]["reconfigured"]


def test_reload_under_traffic_applies_what_changed_and_refuses_the_rest(rl_lab):
    lab, path, original = rl_lab
    t, res = _echo_in_background(lab, 256 << 20)
    try:
        control0, reconf0 = _state(lab)
        path.write_text(original.replace('scheduler = "default"', 'scheduler = "roundrobin"')
                        .replace("subflows = 2", "subflows = 3"))
        ok = _reload(lab)
        assert ok.returncode == 0, ok.stderr
        assert "mptcp.subflows: 2 → 3" in ok.stdout, ok.stdout
        assert "mptcp.scheduler: Default → Roundrobin" in ok.stdout, ok.stdout
        # Workers apply it between bursts, moments after `mpgw reload` returns.
        _wait_until(lambda: _state(lab)[1] >= reconf0 + 1, 5)
        control1, reconf1 = _state(lab)
        assert control1["reloads"] == control0["reloads"] + 1
        assert reconf1 == reconf0 + 1, "every worker applied it"
        applied = path.read_text()

        # A syntax error: refused, nothing applied.
        path.write_text(applied + "\n[mptcp\n")
        bad = _reload(lab)
        assert bad.returncode != 0
        assert "reload refused" in bad.stderr and "invalid configuration" in bad.stderr, bad.stderr
        # A change that needs a restart, beside a run-time one: all refused.
        path.write_text(applied.replace("iface=gd1", "iface=gd9")
                        .replace("subflows = 3", "subflows = 4"))
        dev = _reload(lab)
        assert dev.returncode != 0
        assert "ports[1].device: cannot change at runtime, restart mpgw" in dev.stderr, dev.stderr
        control2, reconf2 = _state(lab)
        assert control2["reloads_refused"] == control1["reloads_refused"] + 2
        assert control2["reloads"] == control1["reloads"]
        assert reconf2 == reconf1, "no worker was told anything"

        # SIGHUP reloads too (the file back as applied, plus a log level).
        path.write_text(applied.replace('level = "info"', 'level = "debug"'))
        pid = Path(f"/run/{lab.name}/mpgw.pid").read_text().strip()
        subprocess.run(["kill", "-HUP", pid], check=True)
        _wait_until(lambda: _state(lab)[0]["reloads"] == control2["reloads"] + 1, 5)
        assert _state(lab)[0]["reloads"] == control2["reloads"] + 1
        assert "log.level" in lab.log()
    finally:
        t.join(320)
    assert res.get("ok"), res
    assert lab.counters()["relay_resets"] == 0


def test_a_port_made_backup_at_run_time_sends_mp_prio_on_its_subflows(rl_lab):
    lab, path, original = rl_lab
    t, res = _echo_in_background(lab, 128 << 20)
    try:
        # Once the client joined the announced address (its subflow from c1 reaches
        # mpgw's down1 address), make down1 a backup port.
        def mib():
            return lab.stats()["mptcp_mib"]

        _wait_until(lambda: mib()[MIB + "MPJoinAckRx"] >= 2, 20)
        tx0 = lab.stats()["mptcp_mib"][MIB + "MPPrioTx"]
        rx0 = nstat(lab, lab.cli).get(MIB + "MPPrioRx", 0)
        path.write_text(original.replace('flags = ["signal", "subflow"]',
                                         'flags = ["signal", "subflow", "backup"]'))
        ok = _reload(lab)
        assert ok.returncode == 0, ok.stderr
        assert "ports[1].flags" in ok.stdout, ok.stdout
        _wait_until(lambda: mib()[MIB + "MPPrioTx"] > tx0, 5)
        assert lab.stats()["mptcp_mib"][MIB + "MPPrioTx"] > tx0, "MP_PRIO sent at once"
        assert nstat(lab, lab.cli).get(MIB + "MPPrioRx", 0) > rx0, "the client took it"
    finally:
        path.write_text(original)
        _reload(lab)
        t.join(320)
    assert res.get("ok"), res
