"""Per-port gateway features in the lab: the client's path 1 runs on 802.1Q VLAN 100
(its addresses on c1v100, a VLAN interface over c1; mpgw's down1 port has `vlan = 100`), down1 has a 1400-byte
MTU (MSS 1360) and is a `backup` port that mpgw also announces (`signal`).

- VLAN: ARP, neighbour discovery, ICMP echo and TCP work over the tag;
- MSS: connections to down1's address get down1's MSS, the others keep 1460;
- close_timeout (2 s here): a relayed MPTCP connection whose only subflow dies keeps
  its backend leg for close_timeout, then the pair is reset;
- backup: the client's join to the announced backup address is made a backup by
  MP_PRIO (the client's `ss` shows the remote-backup flag `B`, mpgw's `b`), and
  mpgw's own scheduler leaves it idle while the regular subflow works.
"""

import json
import shlex
import subprocess
import textwrap
import threading
import time

from mptcp_helpers import iface_bytes, ss_subflows
from relay_helpers import MPTCP, TCP, start_server, stop_server, transfer

LAB_VLAN = 100
LAB_DOWN1_EXTRA = 'mtu = 1400\nflags = ["signal", "subflow", "backup"]'
LAB_EXTRA_CONFIG = "[mptcp]\nclose_timeout = 2"

DOWN1 = "198.51.100.1"
BIG = 256 << 20
# The client's path-1 interface (see deploy/lab.sh LAB_VLAN).
VLAN_DEV = f"c1v{LAB_VLAN}"


# An untagged ARP request for down1's address, sent raw on c1 (below the VLAN).
_UNTAGGED_ARP = textwrap.dedent("""
    import socket
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind(("c1", 0))
    mac = s.getsockname()[4]
    arp = bytes([0, 1, 8, 0, 6, 4, 0, 1]) + mac + socket.inet_aton("198.51.100.2")
    arp += bytes(6) + socket.inet_aton("198.51.100.1")
    s.send(b"\\xff" * 6 + mac + b"\\x08\\x06" + arp + bytes(18))
""")


def _maxseg(lab, host, port=9, n=0):
    """TCP_MAXSEG of a connection from the client to host:port (the MSS the gateway
    announced, less 12 bytes of timestamps), after sending `n` bytes."""
    res = lab.sh(lab.cli, textwrap.dedent(f"""
        python3 -c '
import socket
s = socket.create_connection(("{host}", {port}), timeout=20)
s.sendall(b"x" * {n})
print(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG))
s.close()'"""), timeout=60)
    assert res.returncode == 0, res.stderr
    return int(res.stdout)


def test_arp_nd_echo_and_tcp_work_over_the_vlan(lab):
    before = iface_bytes(lab, lab.cli, VLAN_DEV)
    gw = lab.counters()
    for cmd in (f"ping -c 3 -i 0.2 -W 2 {DOWN1}", "ping -6 -c 3 -i 0.2 -W 2 2001:db8:0:2::1"):
        res = lab.sh(lab.cli, cmd, timeout=20)
        assert res.returncode == 0, res.stdout + res.stderr
    # 8 MiB to the discard service on down1's address: it arrives whole.
    n = 8 << 20
    assert _maxseg(lab, DOWN1, 9, n) > 0
    assert lab.wait_counter("diag_bytes_discarded", gw["diag_bytes_discarded"] + n) \
        == gw["diag_bytes_discarded"] + n
    after = iface_bytes(lab, lab.cli, VLAN_DEV)
    # The client's addresses live on c1v100 only: replies came tagged.
    assert after[0] - before[0] > 1000 and after[1] - before[1] > n, (before, after)
    gw = lab.counters()
    assert gw["icmp6_echo_replies"] >= 3 and gw["arp_replies"] >= 1
    # Untagged frames on gd1 (from c1, below the VLAN) are not taken: an ARP request
    # for down1's address is dropped, not answered.
    res = lab.sh(lab.cli, f"python3 -c {shlex.quote(_UNTAGGED_ARP)}", timeout=10)
    assert res.returncode == 0, res.stderr
    assert lab.wait_counter("drop_vlan", gw["drop_vlan"] + 1) > gw["drop_vlan"]
    assert lab.counters()["arp_replies"] == gw["arp_replies"]


def test_each_port_announces_its_own_mss(lab):
    assert _maxseg(lab, DOWN1) == 1360 - 12, "down1: MTU 1400"
    assert _maxseg(lab, "192.0.2.1") == 1460 - 12, "down0: MTU 1500"


def _mptcp_client(lab, add_addr_accepted):
    """Kernel MPTCP in the client without endpoints: it joins only what mpgw announces
    (down1), and only if `add_addr_accepted`."""
    for cmd in ("sysctl -qw net.mptcp.enabled=1", "ip mptcp endpoint flush",
                f"ip mptcp limits set subflows 2 add_addr_accepted {add_addr_accepted}"):
        lab.sh(lab.cli, cmd, check=True)


# Runs in the client namespace: one MPTCP connection through the relay that echoes a
# little and then idles (its subflow gets killed meanwhile).
_IDLE = textwrap.dedent("""
    import socket, time
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
    s.settimeout(10)
    s.connect(("192.0.2.1", 5201))
    s.sendall(b"E" + b"x" * 1000)
    got = 0
    while got < 1000:
        got += len(s.recv(2000))
    print("echoed", flush=True)
    time.sleep(8)
""")


def test_a_connection_whose_only_subflow_died_is_reset_after_close_timeout(lab):
    _mptcp_client(lab, 0)
    server = start_server(lab, lab.srv, "::", 5201, proto=TCP)
    client = subprocess.Popen(["ip", "netns", "exec", lab.cli, "python3", "-c", _IDLE],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert client.stdout.readline().strip() == "echoed"
        gw = lab.counters()
        assert gw["relay_pairs"] == 1 and gw["mptcp_orphans"] == 0, gw
        # Kill the client's only subflow (a RST, no MP_FASTCLOSE).
        lab.sh(lab.cli, "ss -K -t dst 192.0.2.1 dport = 5201", check=True)
        t0 = time.monotonic()
        assert lab.wait_counter("mptcp_orphans", 1) == 1
        mid = lab.counters()
        assert (mid["relay_pairs"], mid["relay_resets"]) == (1, gw["relay_resets"]), mid
        assert lab.wait_counter("relay_resets", gw["relay_resets"] + 1, timeout=10) \
            == gw["relay_resets"] + 1
        waited = time.monotonic() - t0
        after = lab.counters()
    finally:
        client.kill()
        client.wait(10)
        stop_server(lab, lab.srv, server)
    assert 1.5 < waited < 4, f"reset {waited:.2f} s after the subflow died"
    assert (after["mptcp_orphans"], after["relay_pairs"]) == (0, 0), after


def test_a_join_to_the_backup_port_is_a_backup_on_both_sides(lab):
    _mptcp_client(lab, 2)
    server = start_server(lab, lab.srv, "::", 5201, proto=TCP)
    try:
        result, seen = {}, []
        # Long enough to watch the join come up while data flows (a download of BIG
        # can end within a second now).
        t = threading.Thread(target=lambda: result.update(
            transfer(lab, lab.cli, "192.0.2.1", 5201, "D", 4 * BIG, proto=MPTCP)),
            daemon=True)
        before = iface_bytes(lab, lab.cli, VLAN_DEV)
        t.start()
        gw_ss = None
        deadline = time.monotonic() + 60
        while t.is_alive() and time.monotonic() < deadline:
            subs = [s for s in ss_subflows(lab, lab.cli, port=5201)
                    if s["peer_addr"] == DOWN1 and s["state"] == "ESTAB"]
            seen.extend(s["flags"] for s in subs)
            out = subprocess.run([lab.mpgw_bin, "ss", "--json", "--socket", lab.socket],
                                 text=True, capture_output=True, timeout=10).stdout
            for c in json.loads(out or "{}").get("connections", []):
                for s in c["subflows"]:
                    if s["local"].startswith(DOWN1 + ":"):
                        gw_ss = s
            if any("B" in f for f in seen) and gw_ss:
                break
            time.sleep(0.05)
        t.join(150)
        after = iface_bytes(lab, lab.cli, VLAN_DEV)
    finally:
        stop_server(lab, lab.srv, server)
    assert result.get("ok"), result
    assert seen, "the client joined the announced backup address"
    assert any("B" in f for f in seen), f"remote backup flag on the join: {seen}"
    assert gw_ss is not None and "b" in gw_ss["flags"], gw_ss
    # The join's MSS is down1's.
    assert gw_ss["mss"] == 1360, gw_ss
    # mpgw sends the download on the regular subflow only: the backup stays idle.
    down = after[0] - before[0]
    assert down < BIG // 100, f"{down} bytes came over the backup path"
