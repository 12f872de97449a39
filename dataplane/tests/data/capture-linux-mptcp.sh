#!/usr/bin/env bash
# Records linux-mptcp.pcap: real Linux kernel MPTCP v1 traffic between two namespaces
# joined by two veth pairs, for the wire tests (parse every MPTCP option, re-emit it
# byte for byte). Run as root; needs iproute2, ethtool, tcpdump, mergecap (tshark).
#
# Three connections, all client 192.0.2.10 -> server 192.0.2.20:8080:
#  1. MP_CAPABLE handshake; ADD_ADDR (server signals 198.51.100.20) and its echo; two
#     MP_JOINs (client subflow endpoint 198.51.100.10, and to the announced address);
#     data both ways (DSS with mappings and DATA_ACKs); MP_PRIO (client endpoint
#     switched to backup); REMOVE_ADDR (server endpoint deleted); DATA_FIN both ways.
#  2. The same handshake with DSS checksums (client net.mptcp.checksum_enabled=1).
#  3. An abortive close with unread data: MP_FASTCLOSE in RSTs carrying MP_TCPRST.
set -euo pipefail
cd "$(dirname "$0")"
A=mpcap-a-$$ B=mpcap-b-$$ TMP=$(mktemp -d)
cleanup() { ip netns del "$A" 2>/dev/null || true; ip netns del "$B" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
a() { ip netns exec "$A" "$@"; }
b() { ip netns exec "$B" "$@"; }

ip netns add "$A"; ip netns add "$B"
ip link add a0 netns "$A" type veth peer name b0 netns "$B"
ip link add a1 netns "$A" type veth peer name b1 netns "$B"
for ns in "$A" "$B"; do
  ip netns exec "$ns" sysctl -qw net.mptcp.enabled=1 net.ipv6.conf.all.disable_ipv6=1
  ip netns exec "$ns" ip link set lo up
done
for d in a0 a1; do a ethtool -K "$d" tx off tso off gso off gro off >/dev/null; a ip link set "$d" up; done
for d in b0 b1; do b ethtool -K "$d" tx off tso off gso off gro off >/dev/null; b ip link set "$d" up; done
a ip addr add 192.0.2.10/24 dev a0;    b ip addr add 192.0.2.20/24 dev b0
a ip addr add 198.51.100.10/24 dev a1; b ip addr add 198.51.100.20/24 dev b1
a ip mptcp limits set subflows 4 add_addr_accepted 4
b ip mptcp limits set subflows 4 add_addr_accepted 4
a ip mptcp endpoint add 198.51.100.10 dev a1 id 2 subflow
b ip mptcp endpoint add 198.51.100.20 dev b1 id 5 signal

for d in b0 b1; do
  b tcpdump -i "$d" -s 0 -U -w "$TMP/$d.pcap" tcp port 8080 2>/dev/null &
done
sleep 1

cat >"$TMP/server.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(4)
for n in range(3):
    c, _ = s.accept()
    got = b""
    while len(got) < 4000:
        chunk = c.recv(65536)
        if not chunk: break
        got += chunk
    c.sendall(bytes(range(256)) * 16)
    if n < 2:
        while c.recv(65536): pass          # until the client's DATA_FIN
    else:
        import time; time.sleep(1.5)       # the client aborts
    c.close()
PY
cat >"$TMP/client.py" <<'PY'
import socket, struct, subprocess, sys, time
ns = sys.argv[1]; srv_ns = sys.argv[2]
def conn():
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
    c.bind(("192.0.2.10", 0)); c.connect(("192.0.2.20", 8080))
    return c
def ip(nsname, *args):
    subprocess.run(["ip", "netns", "exec", nsname, "ip", "mptcp", *args], check=True)
# 1: joins, ADD_ADDR, data, MP_PRIO, REMOVE_ADDR, DATA_FIN
c = conn(); time.sleep(0.5)
c.sendall(b"m" * 4000)
got = b""
while len(got) < 4096: got += c.recv(65536)
ip(ns, "endpoint", "change", "id", "2", "backup"); time.sleep(0.3)
ip(srv_ns, "endpoint", "delete", "id", "5"); time.sleep(0.3)
c.shutdown(socket.SHUT_WR)
while c.recv(65536): pass
c.close(); time.sleep(0.3)
ip(ns, "endpoint", "change", "id", "2", "nobackup")
ip(srv_ns, "endpoint", "add", "198.51.100.20", "dev", "b1", "id", "5", "signal")
# 2: DSS checksums
subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.mptcp.checksum_enabled=1"], check=True)
c = conn(); time.sleep(0.3)
c.sendall(b"c" * 4000)
got = b""
while len(got) < 4096: got += c.recv(65536)
c.shutdown(socket.SHUT_WR)
while c.recv(65536): pass
c.close(); time.sleep(0.3)
subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.mptcp.checksum_enabled=0"], check=True)
# 3: abortive close with unread data -> MP_FASTCLOSE
c = conn(); time.sleep(0.3)
c.sendall(b"f" * 4000); time.sleep(0.3)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close(); time.sleep(0.5)
PY
b python3 "$TMP/server.py" &
srv=$!
sleep 0.5
a python3 "$TMP/client.py" "$A" "$B"
wait "$srv" || true
sleep 0.5
b pkill tcpdump || true
sleep 0.5
mergecap -F pcap -w linux-mptcp.pcap "$TMP/b0.pcap" "$TMP/b1.pcap"
echo "wrote $(pwd)/linux-mptcp.pcap ($(stat -c %s linux-mptcp.pcap) bytes)"
