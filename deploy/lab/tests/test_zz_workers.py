"""TEMPORARY repro (not committed)."""
import json, subprocess, threading, time
from mptcp_helpers import setup_mptcp_client
from relay_helpers import MPTCP, TCP, start_server, transfer
LAB_WORKERS = 2

def test_w(lab):
    setup_mptcp_client(lab, subflows=4, add_addr_accepted=2, subflow_endpoint=True)
    start_server(lab, lab.srv, "::", 5201, proto=TCP)
    start_server(lab, lab.cli, "2001:db8:0:100::1", 5202, proto=MPTCP)
    results = {}
    def one(seed, ns, host, port, proto):
        try:
            results[seed] = transfer(lab, ns, host, port, "E", 16 << 20, proto=proto, seed=seed, timeout=60)["ok"]
        except AssertionError as e:
            results[seed] = str(e)[:200]
    jobs = [(i, lab.cli, "192.0.2.1", 5201, MPTCP) for i in range(6)]
    jobs += [(10 + i, lab.srv, "203.0.113.1", 5202, TCP) for i in range(4)]
    threads = [threading.Thread(target=one, args=job) for job in jobs]
    for t in threads: t.start()
    log = open(f"/work/repro/w-{lab.name}.log", "w")
    t0 = time.monotonic()
    while any(t.is_alive() for t in threads) and time.monotonic() - t0 < 80:
        time.sleep(5)
        if time.monotonic() - t0 > 25:
            log.write(f"==== {time.monotonic()-t0:.0f}\n")
            r = subprocess.run([lab.mpgw_bin, "ss", "--json", "--socket", lab.socket], capture_output=True, text=True)
            log.write(r.stdout + r.stderr + "\n")
            log.write(lab.sh(lab.cli, "ss -Mtin").stdout)
            log.write(lab.sh(lab.srv, "ss -tin").stdout)
            st = lab.stats()
            log.write(json.dumps([{k: v for k, v in w["counters"].items() if v} for w in st["workers"]]) + "\n")
            log.write("PORTS " + json.dumps(st["ports"]) + "\n")
            log.write("NEIGH " + lab.sh(lab.srv, "ip neigh; ip link show s0").stdout + "\n")
            log.write("DUMP " + lab.sh(lab.srv, "timeout 2 tcpdump -ni s0 -c 20 -e 2>&1").stdout + "\n")
            log.flush()
    for t in threads: t.join(30)
    log.write(f"RESULTS {results}\n")
    st = lab.stats()
    log.write("FINAL " + json.dumps([{k: v for k, v in w["counters"].items() if v} for w in st["workers"]]) + "\n")
    log.write("MIB " + json.dumps({k: v for k, v in st["mptcp_mib"].items() if v}) + "\n")
    open(f"/work/repro/w-mpgw-{lab.name}.log", "w").write(lab.log())
    assert all(v is True for v in results.values()), results
