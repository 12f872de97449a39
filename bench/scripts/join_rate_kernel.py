#!/usr/bin/env python3
"""Reference figure: the Linux kernel's MPTCP MP_JOIN handshake rate on this machine.

Two namespaces (jrk-cli, jrk-srv) joined by two veth pairs:

    jrk-cli  jc0 192.0.2.2/24     <-->  js0 192.0.2.1/24     jrk-srv
             jc1 198.51.100.2/24  <-->  js1 198.51.100.1/24
             (+ 198.51.100.3.. with --joins-per-conn > 1)

A kernel MPTCP server (IPPROTO_MPTCP, one Python process pinned to --server-cpu)
listens on 192.0.2.1. Client worker processes (pinned to --client-cpus) keep
--concurrency connections each in flight: connect to 192.0.2.1 (MP_CAPABLE via jc0) and
send one byte; the client's in-kernel path manager then opens one MP_JOIN per `subflow`
endpoint on jc1 (to 192.0.2.1 via 198.51.100.1, policy-routed). The server echoes the
byte once its side of the connection counts all expected joins (MPTCP_INFO
mptcpi_subflows; a join raises no socket event, so pending connections are polled every
0.5 ms) or after 1 s; the client then closes with SO_LINGER 0 (MP_FASTCLOSE + RST, so
no TIME_WAIT eats ports) and opens the next connection.

Counted over a fixed wall-clock window from `nstat -az` absolute counters: completed
joins = server MPTcpExtMPJoinAckRx (shown beside it: server MPJoinSynRx, client
MPJoinSynTx/MPJoinSynAckRx), connections = server MPTcpExtMPCapableACKRX. CPU use in
the window comes from /proc/stat (per core) and the drivers' /proc/<pid>/stat: kernel
CPU per join = (drivers' sys time + all softirq time) / joins. That covers BOTH ends
(client and server share this machine) and the per-connection work (MP_CAPABLE
handshake, fastclose), so the server-only cost of a join is below it.

Last line: kernel_joins_per_sec=<N> kernel_mpc_conns_per_sec=<M>

Run as root. Namespaces are removed on exit and leftovers (jrk-*) at start; two runs
at once are not supported (fixed namespace names).
"""

import argparse
import collections
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

IPPROTO_MPTCP = 262
SOL_MPTCP = 284
MPTCP_INFO = 1
PREFIX = "jrk-"
CLI, SRV = PREFIX + "cli", PREFIX + "srv"
SRV_ADDR, PORT = "192.0.2.1", 5999
LINGER0 = struct.pack("ii", 1, 0)


# ---------------------------------------------------------------- roles (in a netns)

def run_server(joins: int, wait: float) -> None:
    """Accepts MPTCP connections; echoes a client's byte once its connection counts `joins`
    completed joins (MPTCP_INFO mptcpi_subflows, server side) or after `wait` seconds."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((SRV_ADDR, PORT))
    ls.listen(65535)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, None)
    pending = {}  # fd -> (sock, give-up time)
    print("ready", flush=True)
    while True:
        # A join raises no event on the MPTCP socket: poll the pending ones briefly.
        for key, _ in sel.select(0.0005 if pending else 1.0):
            if key.data is None:
                while True:
                    try:
                        c, _ = ls.accept()
                    except BlockingIOError:
                        break
                    c.setblocking(False)
                    sel.register(c, selectors.EVENT_READ, 1)
                continue
            c = key.fileobj
            try:
                if c.recv(64):
                    pending[c.fileno()] = (c, time.monotonic() + wait)
                    continue
            except OSError:
                pass
            pending.pop(c.fileno(), None)
            sel.unregister(c)
            c.close()
        now = time.monotonic()
        for fd, (c, give_up) in list(pending.items()):
            try:
                done = c.getsockopt(SOL_MPTCP, MPTCP_INFO, 1)[0] >= joins
            except OSError:
                done = True  # fell back to TCP: don't hold the client
            if done or now > give_up:
                del pending[fd]
                try:
                    c.send(b"y")
                except OSError:
                    pass


def run_client(concurrency: int, hold: float) -> None:
    """Keeps `concurrency` MPTCP connections in flight, forever (killed by the parent).

    Each connection: connect, send a byte, read the echo (the server sends it once the
    joins completed), stay open `hold` more seconds, close with SO_LINGER 0."""
    sel = selectors.DefaultSelector()
    held = collections.deque()  # (close-at, sock), in deadline order

    def open_one():
        """Starts one non-blocking MPTCP connect."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
        try:
            s.connect((SRV_ADDR, PORT))
        except BlockingIOError:
            pass
        sel.register(s, selectors.EVENT_WRITE, "connecting")

    for _ in range(concurrency):
        open_one()
    while True:
        now = time.monotonic()
        while held and held[0][0] <= now:
            held.popleft()[1].close()
            open_one()
        timeout = max(0.0, held[0][0] - now) if held else 1.0
        for key, _ in sel.select(timeout):
            s = key.fileobj
            if key.data == "connecting":
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    try:
                        s.send(b"x")
                        sel.modify(s, selectors.EVENT_READ, "waiting")
                        continue
                    except OSError:
                        pass
            else:
                try:
                    if s.recv(64):
                        sel.unregister(s)
                        held.append((time.monotonic() + hold, s))
                        continue
                except OSError:
                    pass
            sel.unregister(s)
            s.close()
            open_one()


# ---------------------------------------------------------------- orchestration

def sh(cmd, check=True, timeout=20):
    """Runs argv `cmd`; raises with its stderr on failure when `check`."""
    res = subprocess.run(cmd, text=True, capture_output=True, timeout=timeout)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {res.stderr.strip()}")
    return res


def ns(name, *cmd, check=True):
    """Runs a command inside namespace `name`."""
    return sh(["ip", "netns", "exec", name, *cmd], check=check)


def cleanup() -> None:
    """Kills processes left in jrk-* namespaces and deletes those namespaces."""
    for line in sh(["ip", "netns", "list"], check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(PREFIX):
            continue
        for pid in sh(["ip", "netns", "pids", name], check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        sh(["ip", "netns", "del", name], check=False)


def topology(joins: int) -> None:
    """Builds the two namespaces, veths, addresses, routes, MPTCP limits/endpoints."""
    for n in (CLI, SRV):
        sh(["ip", "netns", "add", n])
        ns(n, "ip", "link", "set", "lo", "up")
        ns(n, "sysctl", "-qw", "net.mptcp.enabled=1", "net.core.somaxconn=65535",
           "net.ipv4.tcp_max_syn_backlog=65535", "net.ipv4.ip_local_port_range=1024 65535",
           "net.ipv4.tcp_tw_reuse=1")
    for i in (0, 1):
        sh(["ip", "link", "add", f"jc{i}", "netns", CLI, "type", "veth",
            "peer", "name", f"js{i}", "netns", SRV])
    ns(CLI, "ip", "addr", "add", "192.0.2.2/24", "dev", "jc0")
    ns(SRV, "ip", "addr", "add", "192.0.2.1/24", "dev", "js0")
    ns(SRV, "ip", "addr", "add", "198.51.100.1/24", "dev", "js1")
    extra = [f"198.51.100.{2 + k}" for k in range(joins)]
    for a in extra:
        ns(CLI, "ip", "addr", "add", f"{a}/24", "dev", "jc1")
    for i in (0, 1):
        ns(CLI, "ip", "link", "set", f"jc{i}", "up")
        ns(SRV, "ip", "link", "set", f"js{i}", "up")
    # Joins leave jc1 towards the server's initial address 192.0.2.1: policy route.
    for a in extra:
        ns(CLI, "ip", "rule", "add", "from", a, "table", "101")
    ns(CLI, "ip", "route", "add", "default", "via", "198.51.100.1", "dev", "jc1", "table", "101")
    n = str(min(8, max(joins, 2)))
    ns(CLI, "ip", "mptcp", "limits", "set", "subflows", "8", "add_addr_accepted", "8")
    ns(SRV, "ip", "mptcp", "limits", "set", "subflows", n, "add_addr_accepted", "0")
    ns(CLI, "ip", "mptcp", "endpoint", "flush")
    for a in extra:
        ns(CLI, "ip", "mptcp", "endpoint", "add", a, "dev", "jc1", "subflow")


def nstat(name: str) -> dict:
    """Absolute MIB counters of a namespace (nstat -az, history not touched)."""
    with tempfile.NamedTemporaryFile(prefix="jrk-nstat-") as hist:
        env = dict(os.environ, NSTAT_HISTORY=hist.name)
        res = subprocess.run(["ip", "netns", "exec", name, "nstat", "-azs"], env=env,
                             text=True, capture_output=True, timeout=10, check=True)
    out = {}
    for line in res.stdout.splitlines():
        f = line.split()
        if len(f) >= 2 and f[1].isdigit():
            out[f[0]] = int(f[1])
    return out


def cpu_times() -> list:
    """Per-CPU (busy, total, softirq, user+nice) jiffies from /proc/stat."""
    rows = []
    with open("/proc/stat") as fh:
        for line in fh:
            if line.startswith("cpu") and line[3].isdigit():
                v = [int(x) for x in line.split()[1:]]
                idle = v[3] + v[4]
                rows.append((sum(v[:8]) - idle, sum(v[:8]), v[6], v[0] + v[1]))
    return rows


def proc_times(procs) -> tuple:
    """Sum of (utime, stime) in seconds of our driver processes."""
    u = k = 0
    for p in procs:
        try:
            with open(f"/proc/{p.pid}/stat") as fh:
                f = fh.read().rsplit(")", 1)[1].split()
            u, k = u + int(f[11]), k + int(f[12])
        except (OSError, IndexError, ValueError):
            pass
    hz = os.sysconf("SC_CLK_TCK")
    return u / hz, k / hz


def measure(args) -> None:
    """Runs the benchmark and prints the figures."""
    me = os.path.abspath(__file__)
    py = sys.executable
    procs = []
    try:
        cleanup()
        topology(args.joins_per_conn)
        srv = subprocess.Popen(
            ["ip", "netns", "exec", SRV, "taskset", "-c", args.server_cpu, py, me,
             "--role", "server", "--joins-per-conn", str(args.joins_per_conn)],
            stdout=subprocess.PIPE, text=True)
        procs.append(srv)
        if srv.stdout.readline().strip() != "ready":
            raise RuntimeError("server did not start")
        for _ in range(args.workers):
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", CLI, "taskset", "-c", args.client_cpus, py, me,
                 "--role", "client", "--concurrency", str(args.concurrency),
                 "--hold-ms", str(args.hold_ms)]))
        time.sleep(args.warmup)
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"a worker exited early ({p.returncode})")
        s0, c0, cpu0, p0 = nstat(SRV), nstat(CLI), cpu_times(), proc_times(procs)
        t0 = time.monotonic()
        time.sleep(args.seconds)
        s1, c1, cpu1, p1 = nstat(SRV), nstat(CLI), cpu_times(), proc_times(procs)
        t1 = time.monotonic()
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        cleanup()

    dt = t1 - t0
    ds = {k: s1.get(k, 0) - s0.get(k, 0) for k in s1}
    dc = {k: c1.get(k, 0) - c0.get(k, 0) for k in c1}
    g = lambda d, k: d.get("MPTcpExt" + k, 0)
    joins, conns = g(ds, "MPJoinAckRx"), g(ds, "MPCapableACKRX")
    busy = [((b1 - b0) / max(1, tt1 - tt0), (q1 - q0) / max(1, tt1 - tt0),
             (u1 - u0) / max(1, tt1 - tt0))
            for (b0, tt0, q0, u0), (b1, tt1, q1, u1) in zip(cpu0, cpu1)]
    busy_cpu_s = sum(b for b, _, _ in busy) * dt
    kern_cpu_s = sum(b - u for b, _, u in busy) * dt
    print(f"window {dt:.2f} s, {args.workers} client workers x {args.concurrency} in flight "
          f"(cpus {args.client_cpus}, hold {args.hold_ms:g} ms), server on cpu "
          f"{args.server_cpu}, {args.joins_per_conn} join(s) per connection")
    print("server: MPCapableACKRX=%d MPJoinSynRx=%d MPJoinAckRx=%d MPJoinRejected=%d "
          "MPJoinNoTokenFound=%d TcpExtListenOverflows=%d TcpExtSyncookiesSent=%d" % (
              conns, g(ds, "MPJoinSynRx"), joins, g(ds, "MPJoinRejected"),
              g(ds, "MPJoinNoTokenFound"), ds.get("TcpExtListenOverflows", 0),
              ds.get("TcpExtSyncookiesSent", 0)))
    print("client: MPCapableSYNTX=%d MPJoinSynTx=%d MPJoinSynAckRx=%d MPRstTx=%d "
          "MPFastcloseTx=%d" % (g(dc, "MPCapableSYNTX"), g(dc, "MPJoinSynTx"),
                                 g(dc, "MPJoinSynAckRx"), g(dc, "MPRstTx"),
                                 g(dc, "MPFastcloseTx")))
    print("cpu: " + ", ".join(f"cpu{i} busy {b * 100:.0f}% (user {u * 100:.0f}%, softirq "
                              f"{q * 100:.0f}%)" for i, (b, q, u) in enumerate(busy)))
    hz = os.sysconf("SC_CLK_TCK")
    softirq_s = sum(q1 - q0 for (_, _, q0, _), (_, _, q1, _) in zip(cpu0, cpu1)) / hz
    du, dk = p1[0] - p0[0], p1[1] - p0[1]
    print(f"drivers: user {du:.2f} CPU-s, sys {dk:.2f} CPU-s; softirq {softirq_s:.2f} "
          f"CPU-s; kernel threads and others {busy_cpu_s - du - dk - softirq_s:.2f} CPU-s "
          f"(the MPTCP workqueue creates the joins in kworkers); all busy "
          f"{busy_cpu_s:.2f} CPU-s")
    print(f"joins per busy CPU-second: {joins / busy_cpu_s if busy_cpu_s else 0:.0f}; "
          f"kernel CPU (all non-user time, both ends, per-connection work included): "
          f"{kern_cpu_s / joins * 1e6 if joins else 0:.1f} us per completed join = "
          f"{joins / kern_cpu_s if kern_cpu_s else 0:.0f} joins per kernel CPU-second")
    jps, cps = joins / dt, conns / dt
    user_share = sum(u for _, _, u in busy) / max(1e-9, sum(b for b, _, _ in busy))
    other_user = sum(u for _, _, u in busy) * dt - du
    hot = [f"cpu{i}" for i, (b, _, _) in enumerate(busy) if b > 0.9]
    if hot:
        limit = (f"CPU: {', '.join(hot)} saturated; {user_share * 100:.0f}% of all busy "
                 f"time is user space (the Python drivers), the rest is kernel work of "
                 f"client + server. veth delivers a packet in the sender's softirq, so "
                 f"the server's receive-side work for client packets runs on the client "
                 f"cpus, not on --server-cpu")
    else:
        limit = "no core saturated: raise --workers/--concurrency"
    if other_user > 0.1 * busy_cpu_s:
        limit += (f"; other processes took {other_user:.1f} of {busy_cpu_s:.1f} busy "
                  f"CPU-s in user space (contention: raw rates are low)")
    print(f"limited by: {limit}")
    print(f"kernel_joins_per_sec={jps:.0f} kernel_mpc_conns_per_sec={cps:.0f}")


def main() -> None:
    """Parses arguments; runs a role or the whole measurement."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="measurement window")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--workers", type=int, default=4, help="client processes")
    ap.add_argument("--concurrency", type=int, default=16, help="connections per worker")
    ap.add_argument("--hold-ms", type=float, default=0.0,
                    help="how long a client keeps a connection open after the echo")
    ap.add_argument("--joins-per-conn", type=int, default=1, choices=range(1, 9),
                    help="subflow endpoints on the client (joins per connection)")
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--client-cpus", default="1")
    ap.add_argument("--role", choices=["server", "client"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "server":
        run_server(args.joins_per_conn, 1.0)
    elif args.role == "client":
        run_client(args.concurrency, args.hold_ms / 1000)
    else:
        if os.geteuid() != 0:
            sys.exit("join_rate_kernel: must run as root")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        measure(args)


if __name__ == "__main__":
    main()
