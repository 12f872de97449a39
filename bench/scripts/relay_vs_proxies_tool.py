#!/usr/bin/env python3
"""Helper of bench/scripts/relay_vs_proxies.sh (see its header).

Subcommands:
  cps-server HOST PORT
      Accept-and-close TCP server (one thread, epoll): accepts, reads what the client
      sent (1 byte), closes. Prints "listening" once bound.
  cps-client HOST PORT SECONDS PARALLEL
      PARALLEL processes each open MPTCP sockets (IPPROTO_MPTCP = 262) to HOST:PORT one
      after the other for SECONDS: connect, send 1 byte, wait for the peer's EOF (so the
      connection was really relayed to the server and closed by it), close. Prints JSON
      {ok, errors, elapsed, cps, fallback_checked, fallback, error_kinds}.
  cps-parse FILE JOINS
      Prints "<conn/s><TAB><k=v,...>" for the results TSV from a cps-client output.
  iperf JSONFILE
      Prints "<receiver Mbit/s> <sender retransmits>" from an `iperf3 -J` result, or
      "nan <error>" when the run failed.
  nstat
      Prints the MPTcpExt counters of the current namespace as "name value" lines (private
      nstat history, so it neither reads nor moves other namespaces' history).
  report RESULTS_TSV
      Prints the summary table (medians, ratios, CPU, MPTCP evidence) of the TSV that
      the shell script wrote.
"""

import json
import math
import os
import selectors
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

IPPROTO_MPTCP = 262
SOL_MPTCP, MPTCP_INFO = 284, 1


def cps_server(host, port):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, int(port)))
    ls.listen(4096)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, None)
    print("listening", flush=True)
    while True:
        for key, _ in sel.select():
            if key.data is None:
                while True:
                    try:
                        c, _ = ls.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    c.setblocking(False)
                    sel.register(c, selectors.EVENT_READ, 1)
            else:
                c = key.fileobj
                try:
                    c.recv(4096)        # the 1 byte (or EOF/RST): either way we are done
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    pass
                sel.unregister(c)
                c.close()


def _cps_worker(host, port, deadline, wfd, check_fallback):
    ok = err = fb = fbc = 0
    kinds = defaultdict(int)
    while time.monotonic() < deadline:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
        s.settimeout(3.0)
        try:
            s.connect((host, port))
            s.sendall(b"x")
            if check_fallback and fbc < 20:   # a few samples: is it MPTCP end to end?
                try:
                    b = s.getsockopt(SOL_MPTCP, MPTCP_INFO, 96)
                    fbc += 1
                    fb += bool(b[8] & 1)
                except OSError:
                    pass
            while True:
                b = s.recv(4096)
                if not b:
                    break
            ok += 1
        except OSError as e:
            err += 1
            kinds[type(e).__name__ + (f"/{e.errno}" if e.errno else "")] += 1
        finally:
            s.close()
    os.write(wfd, json.dumps({"ok": ok, "err": err, "fb": fb, "fbc": fbc,
                              "kinds": kinds}).encode())
    os.close(wfd)


def cps_client(host, port, seconds, parallel):
    port, seconds, parallel = int(port), float(seconds), int(parallel)
    t0 = time.monotonic()
    deadline = t0 + seconds
    kids = []
    for i in range(parallel):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                _cps_worker(host, port, deadline, w, i == 0)
            finally:
                os._exit(0)
        os.close(w)
        kids.append((pid, r))
    tot = {"ok": 0, "err": 0, "fb": 0, "fbc": 0, "kinds": defaultdict(int)}
    for pid, r in kids:
        data = b""
        while True:
            b = os.read(r, 65536)
            if not b:
                break
            data += b
        os.close(r)
        os.waitpid(pid, 0)
        if data:
            d = json.loads(data)
            for k in ("ok", "err", "fb", "fbc"):
                tot[k] += d[k]
            for k, v in d["kinds"].items():
                tot["kinds"][k] += v
    elapsed = time.monotonic() - t0
    print(json.dumps({"ok": tot["ok"], "errors": tot["err"], "elapsed": round(elapsed, 3),
                      "cps": round(tot["ok"] / elapsed, 1),
                      "fallback_checked": tot["fbc"], "fallback": tot["fb"],
                      "error_kinds": dict(tot["kinds"])}))


def cps_parse(path, joins):
    """One TSV "value<TAB>extra" for a cps-client result file."""
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, ValueError):
        print(f"nan\tok=0,errors=client_failed,joinsynack={joins}")
        return
    kinds = ";".join(f"{k}:{v}" for k, v in d["error_kinds"].items())
    print(f"{d['cps']}\tok={d['ok']},errors={d['errors']},fallback={d['fallback']},"
          f"fbchecked={d['fallback_checked']},joinsynack={joins},kinds={kinds}")


def iperf(path):
    try:
        with open(path) as f:
            r = json.load(f)
    except (OSError, ValueError) as e:
        print(f"nan unreadable:{type(e).__name__}")
        return
    if "error" in r:
        print("nan " + r["error"].replace(" ", "_")[:80])
        return
    try:
        end = r["end"]
        mbps = end["sum_received"]["bits_per_second"] / 1e6
        retr = end.get("sum_sent", {}).get("retransmits", -1)
        print(f"{mbps:.1f} {retr}")
    except (KeyError, TypeError):
        print("nan no_end_section")


def nstat():
    fd, h = tempfile.mkstemp()
    os.close(fd)
    try:
        out = subprocess.run(["nstat", "-azs"], env=dict(os.environ, NSTAT_HISTORY=h),
                             capture_output=True, text=True, timeout=10).stdout
    finally:
        os.unlink(h)
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 2 and f[0].startswith("MPTcpExt") and f[1].isdigit():
            print(f[0], f[1])


def _med(xs):
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.median(xs) if xs else float("nan")


def _fmt(x, nd=0):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def report(path):
    # TSV columns: variant test rep value core0_busy core1_busy proc_cpu_s extra(k=v,...)
    rows = defaultdict(list)
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            v, t, rep, val, c0, c1, pcpu, extra = (line.rstrip("\n").split("\t") + [""] * 8)[:8]
            ex = dict(kv.split("=", 1) for kv in extra.split(",") if "=" in kv)
            rows[(v, t)].append({"rep": rep, "val": float(val), "c0": float(c0),
                                 "c1": float(c1), "pcpu": float(pcpu) if pcpu else float("nan"),
                                 "ex": ex})
    variants = ["mpgw", "haproxy", "socat"]
    tests = [("up", "upload Mbit/s"), ("down", "download Mbit/s"), ("cps", "relayed conn/s")]

    print("Per-run values:")
    for t, label in tests:
        for v in variants:
            rs = rows.get((v, t), [])
            vals = " / ".join(_fmt(r["val"], 1 if t != "cps" else 0) for r in rs)
            print(f"  {label:16s} {v:8s} {vals}")
    print()
    hdr = (f"{'metric':18s} {'mpgw':>10s} {'haproxy':>10s} {'socat':>10s} "
           f"{'mpgw/haproxy':>13s} {'mpgw/socat':>11s}")
    print("Medians (" + os.environ.get("REPS_NOTE", "") + "):")
    print(hdr)
    print("-" * len(hdr))
    med = {}
    per_core = {}
    for t, label in tests:
        m = {v: _med([r["val"] for r in rows.get((v, t), [])]) for v in variants}
        med[t] = m
        ratio = lambda a, b: "n/a" if (math.isnan(a) or math.isnan(b) or b == 0) else f"{a / b:.2f}x"
        nd = 0 if t == "cps" else 1
        print(f"{label:18s} {_fmt(m['mpgw'], nd):>10s} {_fmt(m['haproxy'], nd):>10s} "
              f"{_fmt(m['socat'], nd):>10s} {ratio(m['mpgw'], m['haproxy']):>13s} "
              f"{ratio(m['mpgw'], m['socat']):>11s}")
    print()
    print("Gateway CPU during the measurement (medians): core 1 = the gateway core, "
          "core 0 = client+server endpoints; 'proxy proc' = the proxy process's own "
          "user+sys CPU seconds per wall second (children included for socat). "
          "Core busy % comes from /proc/stat and includes softirq work and anything else "
          "the machine ran on that core. 'gw busy%' is the gateway's share of its core in "
          "use: core 1's busy % for the kernel proxies; for mpgw, which busy-polls (core 1 "
          "always 100 %), the share of its poll-loop time spent in polls that found work "
          "(mpgw stats poll_busy_ns / (poll_busy_ns + poll_idle_ns)). 'per gw core' = "
          "value / gw busy: what one fully used gateway core would carry at that rate, the "
          "fair comparison when the endpoints' core (core 0) is the bottleneck.")
    print(f"{'metric':18s} {'variant':8s} {'core1 busy%':>12s} {'core0 busy%':>12s} "
          f"{'proxy proc':>11s} {'gw busy%':>9s} {'per gw core':>12s}")
    for t, label in tests:
        for v in variants:
            rs = rows.get((v, t), [])
            if not rs:
                continue
            c1 = _med([r["c1"] for r in rs])
            c0 = _med([r["c0"] for r in rs])
            pc = _med([r["pcpu"] for r in rs])
            if v == "mpgw":
                gw = _med([float(r["ex"]["pollbusy"]) for r in rs if r["ex"].get("pollbusy")])
            else:
                gw = c1
            per = med[t][v] / (gw / 100) if gw and not math.isnan(gw) else float("nan")
            per_core[(v, t)] = per
            pcs = "1 core (busy-poll)" if v == "mpgw" else _fmt(pc, 2)
            print(f"{label:18s} {v:8s} {_fmt(c1):>12s} {_fmt(c0):>12s} {pcs:>11s} "
                  f"{_fmt(gw):>9s} {_fmt(per, 0 if t == 'cps' else 1):>12s}")
    print()
    print("Per gateway core (value / gw busy), ratios:")
    for t, label in tests:
        a, h, so = (per_core.get((v, t), float("nan")) for v in variants)
        r = lambda x, y: "n/a" if (math.isnan(x) or math.isnan(y) or y == 0) else f"{x / y:.2f}x"
        print(f"  {label:18s} mpgw/haproxy {r(a, h):>7s}  mpgw/socat {r(a, so):>7s}")
    busy = sorted({(v, t, r["rep"]) for (v, t), rs in rows.items() for r in rs
                   if r["ex"].get("foreign", "0") not in ("0", "")})
    if busy:
        print()
        print("WARNING: other DPDK busy-pollers (other labs) ran at the end of these runs, so "
              "the cores were shared: " + ", ".join(f"{v}/{t}/rep{r}" for v, t, r in busy))
    print()
    print("MPTCP evidence per goodput run (client ns): MPCapable SYN-ACKs received, "
          "MP_JOIN SYN-ACKs received (MPJoinSynAckRx delta), fallbacks, max additional "
          "subflows seen by `ss -M` mid-run, share of the payload bytes on path 2 (c1):")
    for t in ("up", "down"):
        for v in variants:
            for r in rows.get((v, t), []):
                e = r["ex"]
                print(f"  {t:4s} {v:8s} rep {r['rep']}: capable_synack={e.get('capsynack', '?')} "
                      f"join_synack={e.get('joinsynack', '?')} fallback={e.get('fallback', '?')} "
                      f"ss_subflows={e.get('sssub', '?')} path2_share={e.get('c1share', '?')}% "
                      f"retrans={e.get('retr', '?')}" + (f" err={e['err']}" if "err" in e else ""))
    print()
    print("Connection-rate runs (errors / fallback sample; frames per connection, "
          "received/sent, by the client over c0 + c1 and by the server over s0; the "
          "function-call interrupts (RPS IPIs) the endpoints' and the gateway's core took; the client's "
          "TIME-WAIT sockets after the run):")
    for v in variants:
        for r in rows.get((v, "cps"), []):
            e = r["ex"]
            print(f"  cps  {v:8s} rep {r['rep']}: ok={e.get('ok', '?')} errors={e.get('errors', '?')} "
                  f"fallback={e.get('fallback', '?')}/{e.get('fbchecked', '?')} "
                  f"joins={e.get('joinsynack', '?')} client_frames={e.get('clientpkts', '?')} "
                  f"server_frames={e.get('serverpkts', '?')} "
                  f"ipis_endpoints/gateway={e.get('ipis', '?')} "
                  f"client_time_wait={e.get('clienttw', '?')} "
                  f"{e.get('kinds', '')}")


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    {"cps-server": cps_server, "cps-client": cps_client, "cps-parse": cps_parse, "iperf": iperf,
     "nstat": nstat, "report": report}[cmd](*args)


if __name__ == "__main__":
    main(sys.argv)
