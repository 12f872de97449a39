"""Relay tests' endpoints: a server for the far side of the relay and a client that
checks every byte.

The server (`start_server`) accepts TCP or MPTCP connections and serves one request per
connection, named by its first byte:
- b"E": echo everything until EOF, then close;
- b"U": read until EOF, then answer the sha256 hex digest of what it read;
- b"D" + 8-byte length + 8-byte seed: send that many bytes of `random.Random(seed)`
  data, then close.

`transfer` runs the client side of one request from a namespace and returns what it
saw; it raises on any mismatch. Both scripts generate data with `random.Random(seed)`
in 1 MiB chunks, so both sides compute the same bytes.
"""

import json
import shlex
import textwrap
import time

_SERVER = textwrap.dedent(r"""
    import hashlib, random, socket, struct, sys, threading
    host, port, proto = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM, proto)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port)); ls.listen(64)
    def exact(c, n):
        b = b""
        while len(b) < n:
            k = c.recv(n - len(b))
            if not k:
                raise EOFError
            b += k
        return b
    def serve(c):
        try:
            kind = exact(c, 1)
            if kind == b"E":
                while True:
                    b = c.recv(1 << 20)
                    if not b:
                        break
                    c.sendall(b)
            elif kind == b"U":
                h = hashlib.sha256()
                while True:
                    b = c.recv(1 << 20)
                    if not b:
                        break
                    h.update(b)
                c.sendall(h.hexdigest().encode())
            elif kind == b"D":
                n, seed = struct.unpack("!QQ", exact(c, 16))
                rng = random.Random(seed)
                while n:
                    k = min(n, 1 << 20)
                    c.sendall(rng.randbytes(k)); n -= k
            c.shutdown(socket.SHUT_WR)
            while c.recv(1 << 16):
                pass
        except (OSError, EOFError):
            pass
        finally:
            c.close()
    print("listening", flush=True)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
""")

_CLIENT = textwrap.dedent(r"""
    import hashlib, json, random, socket, struct, sys, threading, time
    host, port, proto, kind, n, seed, tmo = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                             sys.argv[4], int(sys.argv[5]), int(sys.argv[6]),
                                             float(sys.argv[7]))
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM, proto)
    s.settimeout(tmo)
    t0 = time.monotonic()
    s.connect((host, port))
    res = {"bytes_sent": 0, "bytes_received": 0, "longest_stall": 0.0}
    def data():
        rng, left = random.Random(seed), n
        while left:
            k = min(left, 1 << 20)
            yield rng.randbytes(k); left -= k
    expected = hashlib.sha256()
    first_bytes = threading.Event()
    def writer():
        try:
            if kind == "D":
                s.sendall(b"D" + struct.pack("!QQ", n, seed))
                # Half-close once the answer flows: a Linux MPTCP client adds subflows
                # only while its connection is ESTABLISHED and fully established (it
                # has seen the server's first DSS), so a DATA_FIN sent before that
                # would race the join away.
                first_bytes.wait(tmo)
            else:
                s.sendall(kind.encode())
                for chunk in data():
                    s.sendall(chunk); res["bytes_sent"] += len(chunk)
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            res["writer_error"] = repr(e)
    w = threading.Thread(target=writer, daemon=True); w.start()
    got, last = hashlib.sha256(), time.monotonic()
    body = b""
    while True:
        b = s.recv(1 << 20)
        now = time.monotonic()
        res["longest_stall"] = max(res["longest_stall"], now - last); last = now
        if not b:
            break
        first_bytes.set()
        res["bytes_received"] += len(b)
        if kind == "U":
            body += b
        else:
            got.update(b)
    w.join(tmo)
    res["elapsed"] = time.monotonic() - t0
    for chunk in data():
        expected.update(chunk)
    if kind == "U":
        res["ok"] = body.decode() == expected.hexdigest() and res["bytes_sent"] == n
    else:
        res["ok"] = got.hexdigest() == expected.hexdigest() and res["bytes_received"] == n
    print(json.dumps(res))
    sys.exit(0 if res["ok"] and "writer_error" not in res else 1)
""")

TCP, MPTCP = 6, 262


def start_server(lab, ns, host, port, proto=TCP):
    """Starts the server in `ns` on host:port (TCP or MPTCP) in the background; returns
    a handle for `stop_server`."""
    pid_file = f"/run/{lab.name}/relay-server-{ns}-{port}.pid"
    cmd = (f"python3 -c {shlex.quote(_SERVER)} {shlex.quote(host)} {int(port)} {int(proto)} "
           f">/dev/null 2>&1 & echo $! > {pid_file}")
    lab.sh(ns, cmd, check=True)
    # Ready when the port listens.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if f":{port} " in lab.sh(ns, f"ss -ltnH 'sport = :{port}'").stdout + " ":
            return pid_file
        time.sleep(0.05)
    raise AssertionError(f"server on {host}:{port} in {ns} did not start")


def stop_server(lab, ns, handle):
    """Stops a server started by `start_server`."""
    lab.sh(ns, f"kill $(cat {handle}) 2>/dev/null; rm -f {handle}")


def transfer(lab, ns, host, port, kind, nbytes, proto=TCP, seed=1, timeout=120) -> dict:
    """One request from `ns` to host:port: kind "E" (echo: both directions at once),
    "U" (upload, the server answers the digest) or "D" (download). Returns
    {"bytes_sent", "bytes_received", "elapsed", "longest_stall" (s between two reads),
    "ok"}; raises AssertionError when a byte differs or the transfer fails."""
    cmd = (f"python3 -c {shlex.quote(_CLIENT)} {shlex.quote(host)} {int(port)} {int(proto)} "
           f"{kind} {int(nbytes)} {int(seed)} {float(timeout)}")
    res = lab.sh(ns, cmd, timeout=timeout + 10)
    out = res.stdout.strip().splitlines()
    result = json.loads(out[-1]) if out and out[-1].startswith("{") else None
    if res.returncode != 0 or result is None:
        raise AssertionError(f"transfer {kind} {nbytes} B to {host}:{port} from {ns} failed "
                             f"({res.returncode}): {result}\n{res.stderr}")
    return result
