"""Packet capture and telemetry against a running gateway, during short kernel MPTCP
transfers (two client paths) through the concentrator (192.0.2.1:5201 → plain TCP to
the server namespace):

- `mpgw capture` (in-gateway, over the admin socket) writes a pcapng in which tshark
  decodes MPTCP DSS mappings, with frames of both directions;
- `dpdk-dumpcap`, a DPDK secondary process, captures a port through mpgw's pdump
  server. DPDK 22.11's secondary processes cannot attach to a primary started with
  `--no-huge` (the lab's default: dumpcap fails with "Cannot get hugepage
  information"), so this module runs mpgw on hugepages: it reserves them
  (/proc/sys/vm/nr_hugepages), mounts a private hugetlbfs and passes it to the lab
  (MPGW_HUGE_DIR), and undoes all of it afterwards. Where that is impossible the
  dumpcap test is skipped with the reason and the others run on --no-huge;
- DPDK's telemetry socket answers `/mpgw/stats`, `/mpgw/ports` and `/mpgw/workers`.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from mptcp_helpers import setup_mptcp_client
from relay_helpers import MPTCP, TCP, start_server, stop_server, transfer

GW_ADDR = "192.0.2.1"
# mpgw's lab configuration preallocates 512 MiB (256 pages of 2 MiB).
HUGEPAGES = 300


def _meminfo(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


@pytest.fixture(scope="module")
def hugepages():
    """Hugepages for mpgw, set up before the lab starts; yields None when in use, else
    the reason they could not be set up."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    nr = Path("/proc/sys/vm/nr_hugepages")
    before = int(nr.read_text())
    mnt = Path(tempfile.mkdtemp(prefix="mpgw-huge-"))
    mounted = False
    reason = None
    try:
        nr.write_text(str(before + HUGEPAGES))
        if _meminfo("HugePages_Free") < 256:
            reason = f"only {_meminfo('HugePages_Free')} free hugepages after reserving {HUGEPAGES}"
        else:
            res = subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "nodev",
                                  str(mnt)], capture_output=True, text=True)
            mounted = res.returncode == 0
            if not mounted:
                reason = f"cannot mount hugetlbfs: {res.stderr.strip()}"
    except OSError as e:
        reason = f"cannot reserve hugepages: {e}"
    if reason is None:
        os.environ["MPGW_HUGE_DIR"] = str(mnt)
    yield reason
    os.environ.pop("MPGW_HUGE_DIR", None)
    # The lab (torn down before this) leaves DPDK's runtime directory and any page files.
    shutil.rmtree(f"/var/run/dpdk/mpgw-t{os.getpid() % 100000}", ignore_errors=True)
    if mounted:
        for f in mnt.iterdir():
            f.unlink()
        subprocess.run(["umount", str(mnt)], check=True)
    mnt.rmdir()
    nr.write_text(str(before))


@pytest.fixture(scope="module")
def cap_lab(hugepages, lab):
    setup_mptcp_client(lab, subflows=2, add_addr_accepted=0, subflow_endpoint=True)
    server = start_server(lab, lab.srv, "::", 5201, proto=TCP)
    lab.huge_reason = hugepages
    yield lab
    stop_server(lab, lab.srv, server)


def _transfer_in_background(lab, nbytes=4 << 20):
    result = {}

    def run():
        try:
            result.update(transfer(lab, lab.cli, GW_ADDR, 5201, "E", nbytes, proto=MPTCP))
        except AssertionError as e:
            result["error"] = str(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


def _tshark(path: str, display_filter: str, *fields: str) -> list:
    cmd = ["tshark", "-r", path, "-Y", display_filter, "-T", "fields"]
    for f in fields:
        cmd += ["-e", f]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return [line.split("\t") for line in res.stdout.splitlines()]


def _assert_mptcp_decoded(path: str) -> list:
    """tshark decodes DSS mappings on data segments and finds nothing malformed;
    returns the rows (direction, DSN, IPv4 source, IPv4 destination)."""
    assert not _tshark(path, "_ws.malformed", "frame.number"), "malformed frames"
    rows = _tshark(path, "mptcp.dss.dsn", "frame.packet_flags_direction", "mptcp.dss.dsn",
                   "ip.src", "ip.dst")
    assert len(rows) >= 20, rows
    assert all(r[1].isdigit() for r in rows), rows[:5]
    return rows


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_mpgw_capture_writes_pcapng_with_mptcp_both_ways(cap_lab, tmp_path):
    lab = cap_lab
    out = tmp_path / "down0.pcapng"
    cap = subprocess.Popen([lab.mpgw_bin, "capture", "--socket", lab.socket, "--port", "down0",
                            "--count", "3000", "--duration", "30", "--out", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 5
        while "capture started" not in lab.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "capture started" in lab.log(), lab.log()[-2000:]
        t, result = _transfer_in_background(lab)
        t.join(120)
        assert result.get("ok"), result
        stdout, stderr = cap.communicate(timeout=40)
    finally:
        if cap.poll() is None:
            cap.kill()
            cap.wait()
    assert cap.returncode == 0, stderr
    # "<n> frames (<rx> received, <tx> sent) from down0 in <file>, <d> dropped, <b> bytes"
    words = stdout.split()
    frames, rx, tx = int(words[0]), int(words[2].lstrip("(")), int(words[4])
    assert frames == rx + tx and rx > 0 and tx > 0, stdout
    assert out.stat().st_size > 0

    rows = _assert_mptcp_decoded(str(out))
    print(f"mpgw capture: {stdout.strip()}; {len(rows)} frames with a DSS mapping")
    inbound = [r for r in rows if r[0] == "0x00000001"]
    outbound = [r for r in rows if r[0] == "0x00000002"]
    assert inbound and outbound, rows[:5]
    # The direction flag agrees with the addresses: received frames are to the
    # gateway, sent ones from it.
    assert all(r[3] == GW_ADDR for r in inbound), inbound[:5]
    assert all(r[2] == GW_ADDR for r in outbound), outbound[:5]
    # Only down0's traffic: the second path's address never appears.
    assert not any("198.51.100." in r[2] + r[3] for r in rows)
    all_frames = _tshark(str(out), "frame", "frame.interface_name", "frame.cap_len")
    assert len(all_frames) == frames
    assert {f[0] for f in all_frames} == {"down0"}
    assert max(int(f[1]) for f in all_frames) <= 256, "default snaplen"


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.skipif(shutil.which("dpdk-dumpcap") is None, reason="dpdk-dumpcap is not installed")
def test_dpdk_dumpcap_captures_a_port_of_mpgw(cap_lab, tmp_path):
    lab = cap_lab
    if lab.huge_reason is not None:
        pytest.skip("dpdk-dumpcap needs mpgw on hugepages (DPDK 22.11 secondary processes "
                    f"cannot attach to a --no-huge primary): {lab.huge_reason}")
    out = tmp_path / "dumpcap.pcapng"
    # stdbuf: dumpcap's "Capturing on" goes to a buffered stdout.
    dump = subprocess.Popen(["ip", "netns", "exec", lab.gw, "stdbuf", "-oL", "dpdk-dumpcap",
                             f"--file-prefix={lab.name}", "-i", "net_af_packet0", "-s", "256",
                             "-a", "duration:40", "-w", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(dump.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 20
        while not any("Capturing on" in l for l in seen) and dump.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert any("Capturing on" in l for l in seen), "".join(seen)
        t, result = _transfer_in_background(lab)
        t.join(120)
        assert result.get("ok"), result
        time.sleep(0.5)
        dump.send_signal(signal.SIGINT)
        dump.wait(timeout=20)
    finally:
        if dump.poll() is None:
            dump.kill()
            dump.wait()
    reader.join(5)
    log = "".join(seen)
    assert dump.returncode == 0, log
    rows = _assert_mptcp_decoded(str(out))
    print(f"dpdk-dumpcap: {len(rows)} frames with a DSS mapping; {log.strip()}")
    assert any(r[3] == GW_ADDR for r in rows) and any(r[2] == GW_ADDR for r in rows), rows[:5]
    # The gateway still runs and counts normally after the secondary detached.
    assert lab.counters()["rx_packets"] > 0
    assert "panick" not in lab.log()


def _telemetry(lab, *cmds) -> list:
    """Answers of DPDK's telemetry socket (v2 protocol: one JSON message per
    SOCK_SEQPACKET read) to `cmds`."""
    path = f"/var/run/dpdk/{lab.name}/dpdk_telemetry.v2"
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(5)
        s.connect(path)
        hello = json.loads(s.recv(16384))
        assert "pid" in hello and hello["max_output_len"] >= 16384
        answers = []
        for cmd in cmds:
            s.send(cmd.encode())
            (answer,) = json.loads(s.recv(65536)).values()
            answers.append(answer)
        return answers


def test_telemetry_answers_mpgw_commands_with_moving_counters(cap_lab):
    lab = cap_lab
    (before,) = _telemetry(lab, "/mpgw/stats")
    t, result = _transfer_in_background(lab, 1 << 20)
    t.join(120)
    assert result.get("ok"), result
    deadline = time.monotonic() + 5
    while True:
        after, ports, workers, help_text = _telemetry(
            lab, "/mpgw/stats", "/mpgw/ports", "/mpgw/workers", "/help,/mpgw/stats")
        if after["rx_packets"] > before["rx_packets"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    print(f"telemetry rx_packets {before['rx_packets']} -> {after['rx_packets']}")
    assert after["rx_packets"] > before["rx_packets"], (before, after)
    assert after["tcp_segments_in"] > before["tcp_segments_in"]
    assert after["relay_accepted"] > before["relay_accepted"]
    assert after["mptcp_mib"]["MPTcpExtMPCapableSYNRX"] >= 1
    assert set(ports) == {"down0", "down1", "up0"}, ports
    assert ports["down0"]["link_up"] == 1 and ports["down0"]["rx_packets"] > 0
    assert list(workers) == ["lcore_1"], workers
    assert workers["lcore_1"]["rx_packets"] <= after["rx_packets"]
    assert "merged" in help_text["/mpgw/stats"], help_text
