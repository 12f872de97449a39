"""Helpers for MPTCP interop tests in the lab: kernel MPTCP client set-up, MIB counters,
interface byte counters, an MPTCP bulk transfer driven from the client namespace, and a
parser for `ss` subflow listings.

Every function takes the conftest `Lab` object (or anything with `.sh(ns, cmd, timeout)`
and `.cli/.gw/.srv` namespace names). Nothing here needs mpgw itself.
"""

import json
import re
import shlex
import subprocess
import textwrap
import time

IPPROTO_MPTCP = 262
CLI_PATH1 = ("198.51.100.2", "c1", "198.51.100.1")  # client addr, client dev, gateway addr


def _run(lab, ns, cmd, timeout=30):
    """Runs `cmd` in `ns`; returns stdout, raises RuntimeError with stderr on failure."""
    res = lab.sh(ns, cmd, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"{cmd!r} in {ns} failed ({res.returncode}): "
                           f"{res.stdout}{res.stderr}")
    return res.stdout


def nstat(lab, ns) -> dict:
    """Absolute MIB counters of namespace `ns` (Ip*, Tcp*, TcpExt*, MPTcpExt*, ...), zeros
    included, as {name: int}. Uses a private history file, so it neither reads nor moves
    the nstat history that other namespaces share by default."""
    out = _run(lab, ns, 'h=$(mktemp); NSTAT_HISTORY=$h nstat -azs --json; rc=$?; '
                        'rm -f "$h"; exit $rc', timeout=10)
    try:
        tables = json.loads(out)
        flat = {}
        for table in tables.values():  # {"kernel": {...}}
            flat.update({k: int(v) for k, v in table.items()})
        return flat
    except ValueError:  # an nstat without --json: "Name value rate" text
        return {f[0]: int(f[1]) for f in map(str.split, out.splitlines())
                if len(f) >= 2 and f[1].isdigit()}


def setup_mptcp_client(lab, subflows=4, add_addr_accepted=2, subflow_endpoint=True) -> str:
    """Prepares kernel MPTCP in the client namespace: enables MPTCP, sets the path
    manager limits, flushes endpoints and, if `subflow_endpoint`, adds a `subflow`
    endpoint 198.51.100.2 dev c1 (so every connection to 192.0.2.1 gets one MP_JOIN
    from 198.51.100.2 via c1).

    Routing: the join goes from 198.51.100.2 to the server's *initial* address
    (192.0.2.1), which only c0's connected route covers; `dev c1` restricts the lookup
    to c1, so it needs a route via 198.51.100.1 on c1. deploy/lab.sh already has one
    (policy table 101); if the route is missing it is added here (rule from 198.51.100.2
    → table 101, default via 198.51.100.1 dev c1). Returns the `ip route get` line that
    a join will use."""
    addr, dev, gw = CLI_PATH1
    _run(lab, lab.cli, "sysctl -qw net.mptcp.enabled=1")
    _run(lab, lab.cli, f"ip mptcp limits set subflows {int(subflows)} "
                       f"add_addr_accepted {int(add_addr_accepted)}")
    _run(lab, lab.cli, "ip mptcp endpoint flush")
    if subflow_endpoint:
        _run(lab, lab.cli, f"ip mptcp endpoint add {addr} dev {dev} subflow")
    route = _run(lab, lab.cli, f"ip route get 192.0.2.1 from {addr} oif {dev}")
    if f"via {gw} dev {dev}" not in route:
        if f"from {addr} lookup 101" not in _run(lab, lab.cli, "ip rule show"):
            _run(lab, lab.cli, f"ip rule add from {addr} table 101")
        _run(lab, lab.cli, f"ip route replace default via {gw} dev {dev} table 101")
        route = _run(lab, lab.cli, f"ip route get 192.0.2.1 from {addr} oif {dev}")
    return route.strip()


def set_checksum(lab, ns, on: bool) -> None:
    """Sets net.mptcp.checksum_enabled in `ns` (per namespace; affects connections made
    afterwards: DSS checksums are used if either end asks for them in MP_CAPABLE)."""
    _run(lab, ns, f"sysctl -qw net.mptcp.checksum_enabled={1 if on else 0}")


def iface_bytes(lab, ns, iface) -> tuple:
    """(rx_bytes, tx_bytes) of interface `iface` in namespace `ns`."""
    d = f"/sys/class/net/{iface}/statistics"
    rx, tx = _run(lab, ns, f"cat {d}/rx_bytes {d}/tx_bytes").split()
    return int(rx), int(tx)


# Runs in the client namespace. argv: host port nbytes mode seed timeout.
_TRANSFER = textwrap.dedent(r"""
    import hashlib, json, random, socket, struct, sys, threading, time
    host, port, n, mode, seed, tmo = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                      sys.argv[4], int(sys.argv[5]), float(sys.argv[6]))
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM, 262)
    s.settimeout(tmo)
    t0 = time.monotonic()
    s.connect((host, port))
    sent, got = hashlib.sha256(), hashlib.sha256()
    res = {"bytes_sent": 0, "bytes_received": 0, "eof": False}
    def info():                              # struct mptcp_info (uapi/linux/mptcp.h)
        try:
            b = s.getsockopt(284, 1, 96)     # SOL_MPTCP, MPTCP_INFO
        except OSError as e:
            return {"error": e.strerror}
        d = {"subflows": b[0], "subflows_max": b[3], "add_addr_accepted": b[2],
             "fallback": bool(b[8] & 1), "token": "%08x" % struct.unpack_from("I", b, 12)[0]}
        if len(b) > 42:
            d["csum_enabled"] = b[42]
        return d
    def writer():
        rng, left = random.Random(seed), n
        try:
            while left:
                chunk = rng.randbytes(min(left, 1 << 20))
                s.sendall(chunk); sent.update(chunk); left -= len(chunk)
                res["bytes_sent"] += len(chunk)
            res["mptcp_info"] = info()
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            res["writer_error"] = repr(e)
    w = threading.Thread(target=writer, daemon=True); w.start()
    try:
        while True:
            b = s.recv(1 << 20)
            if not b:
                res["eof"] = True; break
            got.update(b); res["bytes_received"] += len(b)
    except socket.timeout:
        if mode == "echo":
            raise
    w.join(tmo)
    res.update(elapsed=time.monotonic() - t0, sha256_sent=sent.hexdigest(),
               sha256_received=got.hexdigest())
    print(json.dumps(res))
    bad = res.get("writer_error") or res["bytes_sent"] != n
    if mode == "echo":
        bad = bad or res["bytes_received"] != n or res["sha256_received"] != res["sha256_sent"]
    else:
        bad = bad or res["bytes_received"] != 0
    sys.exit(1 if bad else 0)
""")


def mptcp_transfer(lab, host, port, nbytes, mode="echo", seed=1, timeout=120) -> dict:
    """Opens an MPTCP socket (IPPROTO_MPTCP) from the client namespace to host:port and
    sends `nbytes` of pseudo-random data (random.Random(seed), so reproducible), then
    half-closes.

    mode "echo": reads concurrently (writer thread) until EOF and checks that exactly
    the bytes sent came back (sha256). mode "discard": only sends; waits for the peer's
    EOF up to `timeout` (a silent peer is tolerated, data from it is an error).

    Returns {"bytes_sent", "bytes_received", "sha256_sent", "sha256_received",
    "elapsed" (s), "eof", "mptcp_info"}: mptcp_info is read from MPTCP_INFO just before
    the half-close: {"subflows" (additional ones, attempts in progress included),
    "subflows_max", "add_addr_accepted",
    "fallback" (fell back to plain TCP), "token", "csum_enabled" (DSS checksums
    negotiated; bookworm's ss 6.1 does not show it and no MIB counts it)}.
    Raises RuntimeError (with the snippet's stderr) on any failure or mismatch."""
    assert mode in ("echo", "discard"), mode
    cmd = (f"python3 -c {shlex.quote(_TRANSFER)} {shlex.quote(host)} {int(port)} "
           f"{int(nbytes)} {mode} {int(seed)} {float(timeout)}")
    res = lab.sh(lab.cli, cmd, timeout=timeout + 10)
    out = res.stdout.strip().splitlines()
    result = json.loads(out[-1]) if out and out[-1].startswith("{") else None
    if res.returncode != 0 or result is None:
        raise RuntimeError(f"mptcp_transfer {mode} {nbytes} B to {host}:{port} failed "
                           f"({res.returncode}): {result}\n{res.stderr}")
    return result


def echo_watching_subflows(lab, host, port, nbytes) -> tuple:
    """An `mptcp_transfer` echo of `nbytes` to host:port while `ip mptcp monitor` runs in
    the client namespace. Returns (result, lines): the monitor's SF_ESTABLISHED lines of
    that connection (by its token). The caller reads any counters around it."""
    monitor = subprocess.Popen(["ip", "netns", "exec", lab.cli, "ip", "mptcp", "monitor"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(0.5)  # subscribed before the connection starts
        res = mptcp_transfer(lab, host, port, nbytes, mode="echo", timeout=120)
        time.sleep(0.5)
    finally:
        monitor.terminate()
        events = monitor.communicate(timeout=10)[0]
    token = res["mptcp_info"]["token"]
    joined = [line for line in events.splitlines()
              if "SF_ESTABLISHED" in line and f"token={token}" in line]
    return res, joined


_ADDR = re.compile(r"^\[?(?P<addr>[^\]%]*?)(?:%(?P<dev>[^\]]+))?\]?:(?P<port>\d+|\*)$")


def _split_addr(text):
    """'198.51.100.2%c1:4000' / '[2001:db8::2]:80' → (addr, port, dev or None)."""
    m = _ADDR.match(text)
    if not m:
        return text, None, None
    port = m["port"]
    return m["addr"], (int(port) if port.isdigit() else None), m["dev"]


def _ss(lab, ns, flag):
    """Parses `ss -<flag>niH` into [{state, local, peer, *_addr, *_port, dev, info}]."""
    socks = []
    for line in _run(lab, ns, f"ss -{flag}niH", timeout=10).splitlines():
        if not line.strip():
            continue
        if line[0].isspace():  # the -i info line of the preceding socket
            if socks:
                socks[-1]["info"] = (socks[-1]["info"] + " " + line.strip()).strip()
            continue
        f = line.split()
        if len(f) < 5:
            continue
        la, lp, dev = _split_addr(f[3])
        pa, pp, _ = _split_addr(f[4])
        socks.append({"state": f[0], "local": f[3], "peer": f[4], "local_addr": la,
                      "local_port": lp, "peer_addr": pa, "peer_port": pp, "dev": dev,
                      "info": " ".join(f[5:])})
    return socks


def ss_subflows(lab, ns, port=None) -> list:
    """The MPTCP subflows (TCP sockets tagged `tcp-ulp-mptcp`) in namespace `ns`, from
    `ss -tniH`: dicts with state, local, peer, local_addr, local_port, peer_addr,
    peer_port, dev (e.g. "c1" for an endpoint bound with `dev c1`), flags (ss letters:
    M/m MP_CAPABLE, J/j JOIN, e fully established, ...), token, remote_id, local_id and
    info (the raw -i text). `port` keeps only subflows whose local or peer port it is.
    Group by token to count the subflows of one connection. A join still in SYN-SENT
    is listed too (state != ESTAB): count state == "ESTAB" and "e" in flags for joins
    that completed. (Neither the client's MPJoinSynAckRx nor its MPTCP_INFO subflows
    proves a join: a peer that rejects the join still answers the SYN, and subflows
    counts attempts.)"""
    subs = []
    for s in _ss(lab, ns, "t"):
        if "tcp-ulp-mptcp" not in s["info"]:
            continue
        if port is not None and port not in (s["local_port"], s["peer_port"]):
            continue
        m = re.search(r"tcp-ulp-mptcp flags:(\S*) token:(\w+)\(id:(\d+)\)/(\w+)\(id:(\d+)\)",
                      s["info"])
        if m:
            s.update(flags=m[1], token=m[4], remote_token=m[2], remote_id=int(m[3]),
                     local_id=int(m[5]))
        subs.append(s)
    return subs


def ss_mptcp(lab, ns) -> list:
    """The MPTCP-level sockets in `ns` (`ss -MniH`): same dicts as ss_subflows plus the
    numeric fields of the info line (e.g. "subflows" = *additional* subflows, absent
    when 0; "token" as hex text)."""
    socks = _ss(lab, ns, "M")
    for s in socks:
        for k, v in re.findall(r"(\w+):(\w+)", s["info"]):
            s.setdefault(k, v if k == "token" else (int(v) if v.isdigit() else v))
    return socks
