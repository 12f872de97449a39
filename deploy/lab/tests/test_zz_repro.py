"""TEMPORARY repro (not committed): E transfers through the concentrator, snapshots on stall."""
import json, threading, time, os
import pytest
from mptcp_helpers import setup_mptcp_client
from relay_helpers import MPTCP, TCP, start_server, stop_server, transfer

ROUNDS = int(os.environ.get("ROUNDS", "4"))

def snap(lab, tag):
    out = [f"==== {tag} {time.monotonic():.1f}"]
    out.append(lab.sh(lab.cli, "ss -Mtin").stdout)
    out.append(lab.sh(lab.srv, "ss -tin").stdout)
    try:
        out.append(json.dumps(lab.stats()["total"]))
        out.append(json.dumps(lab.stats()["mptcp_mib"]))
    except Exception as e:
        out.append(repr(e))
    return "\n".join(out)

def test_repro(lab):
    setup_mptcp_client(lab, subflows=4, add_addr_accepted=2, subflow_endpoint=True)
    lab.sh(lab.cli, "ip mptcp endpoint add 2001:db8:0:2::2 dev c1 subflow", check=True)
    backend = start_server(lab, lab.srv, "::", 5201, proto=TCP)
    log = open(f"/work/repro/snap-{lab.name}.log", "w")
    fails = 0
    for r in range(ROUNDS):
        for kind in ("U", "D", "E"):
            stop = threading.Event()
            def watch():
                while not stop.wait(4):
                    log.write(snap(lab, f"round {r} {kind}") + "\n"); log.flush()
            t = threading.Thread(target=watch, daemon=True); t.start()
            try:
                res = transfer(lab, lab.cli, os.environ.get("HOST", "192.0.2.1"), 5201, kind, 256 << 20, proto=MPTCP, timeout=30)
                log.write(f"RESULT {r} {kind} {res}\n")
                mib = {k: v for k, v in lab.stats()["mptcp_mib"].items() if v}
                log.write(f"MIB {mib}\n")
                log.write(lab.sh(lab.cli, "nstat -az | grep -i join").stdout)
            except Exception as e:
                open(f"/work/repro/mpgw-{lab.name}.log", "w").write(lab.log())
                fails += 1
                log.write(f"FAIL {r} {kind} {e}\n")
            stop.set(); t.join()
            log.flush()
    stop_server(lab, lab.srv, backend)
    open(f"/work/repro/mpgw-{lab.name}.log", "w").write(lab.log())
    assert fails == 0
