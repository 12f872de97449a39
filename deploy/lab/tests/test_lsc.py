"""Link-state-change interrupts in the lab: mpgw gets a fourth port, `net_vhost` (whose
PMD raises LSC events when its vhost-user peer comes and goes), and `dpdk-testpmd` runs
the peer (a `virtio_user` port on the same socket) at its prompt. The peer coming up
and dying (three times) must reach mpgw's link monitor through the LSC callback
(`lsc_events` grows, `link_downs` counts each loss) and the loss must be acted on at
the interrupt, not at the next 20 ms poll: the time from the callback
(`lsc_last_unix_us`) to mpgw's "link down: failing over" log line is measured.

(`net_tap` would be the obvious PMD, but DPDK 22.11's tap never calls the
application's LSC callbacks; `net_af_packet`, the lab's PMD, has no LSC at all.)
"""

import os
import re
import shutil
import subprocess
import time
from datetime import datetime

import pytest

SOCK = f"/tmp/mpgw-lsc-{os.getpid()}.sock"
LAB_EXTRA_CONFIG = f"""
[[ports]]
name = "vh0"
device = "net_vhost0,iface={SOCK},queues=1"
ipv6 = ["2001:db8:0:9::1/64"]
"""
POLL_PERIOD = 0.020  # the control loop's link poll (CONTROL_TICK)
LINE = re.compile(r"^(\S+Z)\s+WARN .*link down: failing over.*port=vh0")


def _port(lab, name="vh0"):
    return next(p for p in lab.stats()["ports"] if p["name"] == name)


def _wait(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


class Peer:
    """dpdk-testpmd with a virtio_user port on mpgw's vhost socket, at its prompt (no
    forwarding: nothing polls), fed commands through stdin."""

    def __init__(self, lab, n):
        self.log = open(f"/run/{lab.name}/testpmd-{n}.log", "w")
        # Two lcores (testpmd insists on a forwarding one), both idle at the prompt.
        self.proc = subprocess.Popen(
            ["dpdk-testpmd", "-l", "0,1", "--no-huge", "-m", "128", "--no-pci",
             "--no-shconf", f"--file-prefix=lsc-peer-{os.getpid()}-{n}",
             f"--vdev=virtio_user0,path={SOCK},queues=1",
             "--", "-i", "--nb-cores=1", "--total-num-mbufs=2048"],
            stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT, text=True)

    def command(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self):
        try:
            self.command("quit")
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def vhost(lab):
    if not shutil.which("dpdk-testpmd"):
        pytest.skip("dpdk-testpmd missing (Debian's dpdk package)")
    yield lab
    if os.path.exists(SOCK):
        os.unlink(SOCK)


def _log_downs(lab):
    """Timestamps (s since the epoch) of mpgw's "link down" lines for vh0."""
    out = []
    for line in lab.log().splitlines():
        m = LINE.match(line)
        if m:
            out.append(datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp())
    return out


def test_the_peer_dying_is_acted_on_at_its_lsc_event(vhost):
    lab = vhost
    vh0 = _port(lab)
    assert vh0["link_source"] == "dpdk"
    assert vh0["lsc_events"] is not None, "no LSC callback registered"
    reactions, totals = [], []
    for n in range(3):
        peer = Peer(lab, n)
        try:
            assert _wait(lambda: _port(lab)["link_up"], 15), "the peer did not bring the link up"
            before = _port(lab)
            downs = len(_log_downs(lab))
            # The peer dies: its vhost-user connection closes, vhost destroys the device
            # (LSC down). (testpmd's own `port stop` + `port close` take it 0.3 s.)
            t0 = time.time()
            peer.proc.kill()
            assert _wait(lambda: not _port(lab)["link_up"], 5), "link still up"
            assert _wait(lambda: len(_log_downs(lab)) > downs, 2), "no link-down line"
            acted = _log_downs(lab)[-1]
            after = _port(lab)
            assert after["link_downs"] == before["link_downs"] + 1
            assert after["lsc_events"] > before["lsc_events"], "the LSC callback did not fire"
            reactions.append(acted - after["lsc_last_unix_us"] / 1e6)
            totals.append(acted - t0)
        finally:
            peer.close()
    print("LSC event → mpgw acts:", [f"{x * 1e3:.2f} ms" for x in reactions],
          "kill → mpgw acts:", [f"{x * 1e3:.2f} ms" for x in totals])
    # Acted on when the interrupt came, not at the next poll.
    assert all(-0.001 < r < POLL_PERIOD for r in reactions), reactions
    # The other ports (net_af_packet) have no LSC: they are polled.
    assert _port(lab, "down0")["lsc_events"] is None
