"""Two workers (lab.sh MPGW_WORKERS=2: two queue pairs per port, `net_af_packet`'s fanout
spreads flows over them): relayed connections spread over both workers, segments that
reach the worker not owning their connection (joins by token, opened connections by
port, af_packet's roll-over) are handed to the owner, and every transfer stays exact.

Ports without `rte_flow` support (`net_af_packet`) are reported as such and no
worker asks for a steering rule.

No connection is served by two workers: snapshots of both workers' tables (`mpgw ss`)
taken throughout never show one subflow in both, and a join routed to a worker without
its token would be refused (MPJoinNoTokenFound, which stays at zero) while hand-offs
happen. (RSTs are not counted: a segment handed over late, after its connection ended,
is answered with a RST as TCP requires — Linux does the same to reordered duplicates.)
"""

import json
import subprocess
import threading
import time

from mptcp_helpers import setup_mptcp_client
from relay_helpers import MPTCP, TCP, start_server, transfer

LAB_WORKERS = 2
MIB = "MPTcpExt"


def _subflows_by_worker(lab) -> dict:
    """{subflow (local, remote): {workers holding it}} from one `mpgw ss --json`."""
    res = subprocess.run([lab.mpgw_bin, "ss", "--json", "--socket", lab.socket],
                         text=True, capture_output=True, timeout=10)
    held = {}
    if res.returncode != 0:
        return held
    for c in json.loads(res.stdout)["connections"]:
        for sf in c["subflows"]:
            held.setdefault((sf["local"], sf["remote"]), set()).add(c["worker"])
    return held


def test_connections_spread_over_two_workers_and_hand_offs_keep_them_exact(lab):
    setup_mptcp_client(lab, subflows=4, add_addr_accepted=2, subflow_endpoint=True)
    start_server(lab, lab.srv, "::", 5201, proto=TCP)
    start_server(lab, lab.cli, "2001:db8:0:100::1", 5202, proto=MPTCP)
    results = []

    def one(seed, ns, host, port, proto):
        try:
            results.append(transfer(lab, ns, host, port, "E", 16 << 20, proto=proto,
                                    seed=seed, timeout=90)["ok"])
        except AssertionError as e:
            results.append(str(e))

    jobs = [(i, lab.cli, "192.0.2.1", 5201, MPTCP) for i in range(6)]  # concentrator
    jobs += [(10 + i, lab.srv, "203.0.113.1", 5202, TCP) for i in range(4)]  # edge
    threads = [threading.Thread(target=one, args=job) for job in jobs]
    for t in threads:
        t.start()
    snapshots, shared = 0, []
    deadline = time.monotonic() + 120
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        held = _subflows_by_worker(lab)
        snapshots += bool(held)
        shared += [(tuple_, workers) for tuple_, workers in held.items() if len(workers) > 1]
        time.sleep(0.2)
    for t in threads:
        t.join(5)
    assert results == [True] * len(jobs), results
    assert snapshots >= 3, "mpgw ss answered during the transfers"
    assert not shared, f"subflows held by two workers at once: {shared}"
    # Segments still on their way (late ACKs in an inbox) arrive within moments.
    polls0 = [w["counters"]["polls"] for w in lab.stats()["workers"]]
    deadline = time.monotonic() + 3
    while True:
        stats = lab.stats()
        workers = [w["counters"] for w in stats["workers"]]
        moved = [sum(w[k] for w in workers) for k in ("handoff_in", "handoff_out")]
        if moved[0] == moved[1] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    print("per worker:", [{k: w[k] for k in ("relay_accepted", "handoff_in", "handoff_out",
                                               "handoff_pending",
                                               "handoff_redirects", "mptcp_joins")}
                          for w in workers])
    assert len(workers) == 2
    assert all(w["relay_accepted"] > 0 for w in workers), "connections on both workers"
    assert sum(w["handoff_out"] for w in workers) > 0
    # The segments handed over arrived. Some runs leave a few dozen of ~240 000
    # unaccounted for on one worker (docs/status.md, issue 6: not explained yet; TCP
    # recovers them, every transfer above is exact).
    pending = [w["handoff_pending"] for w in workers]
    polled = [w["polls"] - p for w, p in zip(workers, polls0)]
    assert all(n > 0 for n in polled), f"a worker stopped polling: {polled}"
    assert 0 <= moved[1] - moved[0] <= moved[1] // 1000, (moved, pending)
    assert sum(w["handoff_dropped"] for w in workers) == 0
    assert stats["mptcp_mib"][MIB + "MPJoinNoTokenFound"] == 0
    assert sum(w["relay_resets"] for w in workers) == 0
    # net_af_packet has no flow operations: the start-up probe says so with DPDK's
    # error, and the workers never ask for a rule although joins were handed over.
    for port in stats["ports"]:
        assert port["flow_steering"].startswith("unsupported: rte_flow_validate: "), port
        assert port["flow_rules_installed"] == port["flow_rules_active"] == 0, port
    assert all(w[k] == 0 for w in workers
               for k in ("flow_steer_requests", "flow_release_requests", "flow_requests_dropped"))
