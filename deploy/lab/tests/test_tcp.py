"""mpgw's own TCP against the Linux kernel: the diagnostic services (discard :9, echo :7,
source :19 on 192.0.2.1; discard and echo on 2001:db8:0:1::1) driven from the client
namespace with plain sockets."""

import hashlib
import os
import re
import socket
import struct
import subprocess
import textwrap
import time

import pytest

GW4, GW6 = "192.0.2.1", "2001:db8:0:1::1"

# Runs in the client namespace: echo `n` bytes through host:port, check sha256 both ways.
ECHO = textwrap.dedent(r"""
    import hashlib, os, socket, sys, threading, time
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect((host, port))
    block = os.urandom(1 << 20)
    sent, got = hashlib.sha256(), hashlib.sha256()
    def writer():
        left = n
        while left:
            chunk = block[: min(left, len(block))]
            s.sendall(chunk); sent.update(chunk); left -= len(chunk)
        s.shutdown(socket.SHUT_WR)          # half-close: mpgw keeps echoing
    t0 = time.time()
    w = threading.Thread(target=writer); w.start()
    total = 0
    while True:
        b = s.recv(1 << 20)
        if not b: break
        got.update(b); total += len(b)
    w.join()
    dt = time.time() - t0
    print(total, sent.hexdigest(), got.hexdigest(), f"{total * 8 / dt / 1e6:.0f}")
""")


def echo(lab, host, port, n, timeout=120):
    res = lab.sh(lab.cli, f"python3 -c '{ECHO}' {host} {port} {n}", timeout=timeout)
    assert res.returncode == 0, res.stdout + res.stderr
    total, sent, got, mbps = res.stdout.split()
    assert int(total) == n, f"echoed {total} of {n} bytes"
    assert sent == got, "sha256 of the echoed stream differs"
    return float(mbps)


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("addr,max_mss", [(GW4, 1448), (GW6, 1428)])
def test_handshake_negotiates_every_option(lab, addr, max_mss):
    # struct tcp_info: byte 5 = options (1 timestamps, 2 SACK, 4 window scale), byte 6 =
    # send (low nibble: the peer's) and receive window scales.
    fam = "socket.AF_INET6" if ":" in addr else "socket.AF_INET"
    res = lab.sh(lab.cli, textwrap.dedent(f"""
        python3 -c '
import socket
s = socket.socket({fam}); s.connect(("{addr}", 9))
info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
print(info[5], info[6] & 0x0f, s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG))
s.close()'"""))
    assert res.returncode == 0, res.stderr
    options, peer_wscale, mss = map(int, res.stdout.split())
    assert options & 7 == 7, f"timestamps, SACK and window scaling all on: {options:#x}"
    assert peer_wscale == 7, "mpgw offers window scale 7"
    # mpgw announces MTU - IP - TCP headers; Linux then takes 12 for timestamps.
    assert mss == max_mss, f"MSS {mss}, expected {max_mss} for a 1500-byte MTU"


def test_mpgw_resolves_a_neighbour_it_has_not_heard_from(lab):
    # The client knows mpgw's MAC on path 1 statically, so it never ARPs: mpgw must ask.
    mac = lab.sh(lab.gw, "cat /sys/class/net/gd1/address", check=True).stdout.strip()
    lab.sh(lab.cli, f"ip neigh replace 198.51.100.1 lladdr {mac} nud permanent dev c1", check=True)
    before = lab.counters()["neighbor_solicitations"]
    res = lab.sh(lab.cli, "head -c 100000 /dev/zero | nc -N -w 10 -s 198.51.100.2 198.51.100.1 9",
                 timeout=30)
    assert res.returncode == 0, (res.stderr, lab.counters())
    assert lab.counters()["neighbor_solicitations"] > before


def test_256_mib_each_way_through_echo_is_exact(lab):
    before = lab.counters()
    mbps = echo(lab, GW4, 7, 256 << 20)
    print(f"echo 256 MiB each way: {mbps:.0f} Mbit/s per direction")
    after = lab.counters()
    assert after["diag_bytes_echoed"] - before["diag_bytes_echoed"] == 256 << 20
    assert after["tcp_bad_checksum"] == before["tcp_bad_checksum"]


def test_ipv6_echo_is_exact(lab):
    echo(lab, GW6, 7, 32 << 20)


def test_discard_counts_every_byte_and_source_streams(lab):
    before = lab.counters()
    res = lab.sh(lab.cli, f"head -c 50000000 /dev/zero | nc -N -s 192.0.2.2 {GW4} 9", timeout=60)
    assert res.returncode == 0, res.stderr
    assert lab.wait_counter("diag_bytes_discarded", before["diag_bytes_discarded"] + 50_000_000) \
        == before["diag_bytes_discarded"] + 50_000_000
    res = lab.sh(lab.cli, textwrap.dedent(f"""
        python3 -c '
import socket
s = socket.create_connection(("{GW4}", 19)); n = 0
while n < 64 << 20:
    b = s.recv(1 << 20)
    assert b, "source closed early"
    assert set(b) <= set(b"abcdefghijklmnopqrstuvwxyz"), "unexpected bytes"
    n += len(b)
s.close(); print(n)'"""), timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert int(res.stdout) >= 64 << 20


def test_source_connections_are_bounded(lab):
    # 16 source connections run at once per worker; the 17th is reset, not served.
    res = lab.sh(lab.cli, textwrap.dedent(f"""
        python3 -c '
import socket, time
held = []
for i in range(16):
    s = socket.create_connection(("{GW4}", 19)); s.recv(1000); held.append(s)
try:
    # The reset may overtake connect() itself: mpgw accepts, then refuses at once.
    extra = socket.create_connection(("{GW4}", 19)); extra.settimeout(5)
    print("served" if extra.recv(1000) else "closed")
except ConnectionResetError:
    print("reset")
for s in held: s.close()'"""), timeout=60)
    assert res.stdout.strip() == "reset", res.stdout + res.stderr
    assert lab.wait_counter("diag_sources_refused", 1) >= 1
    assert wait_for(lambda: lab.counters()["tcp_connections"] == 0, timeout=10)


def test_reset_from_the_client_frees_the_connection(lab):
    lab.sh(lab.cli, textwrap.dedent(f"""
        python3 -c '
import socket, struct, time
s = socket.create_connection(("{GW4}", 9)); s.sendall(b"x" * 1000); time.sleep(0.2)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); s.close()'"""),
           check=True)
    assert wait_for(lambda: lab.counters()["tcp_connections"] == 0), lab.counters()


def test_reset_from_mpgw_refuses_a_closed_port(lab):
    before = lab.counters()["tcp_resets_sent"]
    res = lab.sh(lab.cli, textwrap.dedent(f"""
        python3 -c '
import socket
try:
    socket.create_connection(("{GW4}", 5555), timeout=3)
except ConnectionRefusedError:
    print("refused")'"""))
    assert res.stdout.strip() == "refused", res.stdout + res.stderr
    assert lab.counters()["tcp_resets_sent"] > before


def test_shaped_path_with_losses_is_still_exact(lab):
    # 40 Mbit/s with a small queue on both directions of path 0: the bottleneck drops
    # packets, so both TCPs (Linux's and mpgw's) recover losses.
    shape = "rate 40mbit burst 8kb limit 30kb"
    lab.sh(lab.cli, f"tc qdisc add dev c0 root tbf {shape}", check=True)
    lab.sh(lab.gw, f"tc qdisc add dev gd0 root tbf {shape}", check=True)
    try:
        before = lab.counters()
        mbps = echo(lab, GW4, 7, 24 << 20, timeout=120)
        print(f"echo through 40 Mbit/s tbf: {mbps:.1f} Mbit/s per direction")
        assert mbps >= 20, "goodput collapsed on the shaped path"
        drops = lab.sh(lab.gw, "tc -s qdisc show dev gd0", check=True).stdout
        dropped = int(re.search(r"dropped (\d+)", drops).group(1))
        assert dropped > 0 or lab.counters()["tcp_segments_out"] > before["tcp_segments_out"], drops
    finally:
        lab.sh(lab.cli, "tc qdisc del dev c0 root")
        lab.sh(lab.gw, "tc qdisc del dev gd0 root")


# A SYN flood from spoofed, never-answering sources on the client's subnet, sent with a
# raw socket from the client namespace.
FLOOD = textwrap.dedent(r"""
    import random, socket, struct, sys
    n, dst, dport = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    def csum(b):
        if len(b) % 2: b += b"\0"
        s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
        while s >> 16: s = (s & 0xffff) + (s >> 16)
        return ~s & 0xffff
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    d = socket.inet_aton(dst)
    rnd = random.Random(7)
    for i in range(n):
        src = socket.inet_aton("192.0.2.%d" % rnd.randrange(100, 250))
        sport, seq = rnd.randrange(1024, 65535), rnd.getrandbits(32)
        opts = struct.pack("!BBH", 2, 4, 1460)
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, (6 << 4), 0x02, 64240, 0, 0) + opts
        pseudo = src + d + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xffff, 0, 64, 6, 0, src, d)
        raw.sendto(ip + tcp, (dst, 0))
""")


def rss_kib(lab):
    pid = open(f"/run/{lab.name}/mpgw.pid").read().strip()
    # `ip netns exec` runs mpgw as a child of the recorded pid: take the largest RSS of
    # the process tree.
    out = subprocess.run(["ps", "-o", "rss=", "--ppid", pid, "-p", pid], text=True,
                         capture_output=True).stdout
    return max(int(x) for x in out.split())


def test_syn_flood_engages_cookies_and_a_real_client_still_connects(lab):
    lab.sh(lab.cli, f"ping -c 1 -W 2 {GW4}", check=True)  # mpgw learns the client
    before = lab.counters()
    rss_before = rss_kib(lab)
    res = lab.sh(lab.cli, f"python3 -c '{FLOOD}' 20000 {GW4} 9", timeout=120)
    assert res.returncode == 0, res.stderr
    # Most SYNs arrive (the af_packet ring may overflow under the burst; some spoofed
    # 4-tuples repeat and count as retransmissions).
    syns = lab.wait_counter("tcp_syns_received", before["tcp_syns_received"] + 15000)
    assert syns - before["tcp_syns_received"] >= 10000, syns
    after = lab.counters()
    assert after["tcp_syn_cookies_sent"] > before["tcp_syn_cookies_sent"], after
    assert after["tcp_half_open"] <= 4096, "half-open state stays bounded"
    # A legitimate connection during the aftermath of the flood.
    res = lab.sh(lab.cli, f"head -c 1000000 /dev/urandom | nc -N -w 5 -s 192.0.2.2 {GW4} 9", timeout=30)
    assert res.returncode == 0, (res.stderr, lab.counters())
    grown = rss_kib(lab) - rss_before
    assert grown < 16 * 1024, f"mpgw grew by {grown} KiB during the flood"
