"""Fixtures for the lab tests: a lab (namespaces + mpgw) per test module, torn down after."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
LAB_SH = ROOT / "deploy" / "lab.sh"


class Lab:
    """A running lab: run commands in its namespaces and read mpgw's counters."""

    def __init__(self, name: str, mpgw_bin: str):
        self.name = name
        self.mpgw_bin = mpgw_bin
        self.env = dict(os.environ, LAB=name, MPGW_BIN=mpgw_bin)
        self.cli, self.gw, self.srv = f"{name}-cli", f"{name}-gw", f"{name}-srv"
        self.socket = f"/run/{name}/admin.sock"

    def script(self, verb: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(LAB_SH), verb], env=self.env, text=True,
                              capture_output=True, timeout=120)

    def sh(self, ns: str, cmd: str, timeout: float = 60, check: bool = False):
        """Runs a shell command in namespace `ns`."""
        res = subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", cmd], text=True,
                             capture_output=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"{cmd!r} in {ns} failed ({res.returncode}): {res.stdout}{res.stderr}")
        return res

    def stats(self) -> dict:
        res = subprocess.run([self.mpgw_bin, "stats", "--json", "--socket", self.socket],
                             text=True, capture_output=True, timeout=10)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    def counters(self) -> dict:
        return self.stats()["total"]

    def wait_counter(self, name: str, at_least: int, timeout: float = 5.0) -> int:
        """Waits until counter `name` reaches `at_least`; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.counters()[name]
            if value >= at_least or time.monotonic() > deadline:
                return value
            time.sleep(0.05)

    def log(self) -> str:
        try:
            return Path(f"/run/{self.name}/mpgw.log").read_text()
        except OSError:
            return ""


@pytest.fixture(scope="module")
def lab(request):
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    mpgw_bin = os.environ.get("MPGW_BIN", str(ROOT / "target" / "release" / "mpgw"))
    # A module may set LAB_EXTRA_CONFIG: TOML appended to mpgw's lab configuration.
    extra = getattr(request.module, "LAB_EXTRA_CONFIG", "")
    lab = Lab(f"mpgw-t{os.getpid() % 100000}", mpgw_bin)
    lab.env["MPGW_EXTRA_CONFIG"] = extra
    # A module may set LAB_WORKERS = 2 to run mpgw with two workers.
    lab.env["MPGW_WORKERS"] = str(getattr(request.module, "LAB_WORKERS", 1))
    # A module may set LAB_VLAN (path 1 on that 802.1Q VLAN) and LAB_DOWN1_EXTRA (TOML
    # keys for mpgw's down1 port); see deploy/lab.sh.
    lab.env["LAB_VLAN"] = str(getattr(request.module, "LAB_VLAN", ""))
    lab.env["MPGW_DOWN1_EXTRA"] = getattr(request.module, "LAB_DOWN1_EXTRA", "")
    # A module may set LAB_PMD ("af_packet" or "af_xdp": the DPDK driver of mpgw's
    # ports); else LAB_PMD from the environment applies, as in deploy/lab.sh.
    lab.env["LAB_PMD"] = getattr(request.module, "LAB_PMD", os.environ.get("LAB_PMD", "af_packet"))
    up = lab.script("up")
    if up.returncode != 0:
        lab.script("down")
        pytest.fail(f"lab up failed:\n{up.stdout}\n{up.stderr}\n{lab.log()}")
    yield lab
    log = lab.log()
    down = lab.script("down")
    assert down.returncode == 0, down.stderr
    assert "panick" not in log, log
