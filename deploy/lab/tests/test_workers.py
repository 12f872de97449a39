"""Two workers (lab.sh MPGW_WORKERS=2: two queue pairs per port, `net_af_packet`'s fanout
spreads flows over them): relayed connections spread over both workers, segments that
reach the worker not owning their connection (joins by token, opened connections by
port, af_packet's roll-over) are handed to the owner, and every transfer stays exact.

No connection is served by two workers: a join routed to a worker without its token
would be refused (MPJoinNoTokenFound), and a segment of a connection reaching a worker
that does not have it, and not passed on, would be answered with a RST; both must stay
at zero while hand-offs happen.
"""

import threading

import pytest

from mptcp_helpers import setup_mptcp_client
from relay_helpers import MPTCP, TCP, start_server, transfer

LAB_WORKERS = 2
MIB = "MPTcpExt"


# Known bug (docs/status.md, issue 6): under this load about one run in four has a
# relay backend leg stall (its segments stop reaching the server); the cause is not found
# yet. Tracked as xfail so it still runs and reports.
@pytest.mark.xfail(reason="two workers: a rare backend-leg stall under load, see docs/status.md",
                   strict=False)
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
    for t in threads:
        t.join(120)
    assert results == [True] * len(jobs), results
    stats = lab.stats()
    workers = [w["counters"] for w in stats["workers"]]
    print("per worker:", [{k: w[k] for k in ("relay_accepted", "handoff_in", "handoff_out",
                                               "handoff_redirects", "mptcp_joins")}
                          for w in workers])
    assert len(workers) == 2
    assert all(w["relay_accepted"] > 0 for w in workers), "connections on both workers"
    assert sum(w["handoff_out"] for w in workers) > 0
    assert sum(w["handoff_in"] for w in workers) == sum(w["handoff_out"] for w in workers)
    assert sum(w["handoff_dropped"] for w in workers) == 0
    assert stats["mptcp_mib"][MIB + "MPJoinNoTokenFound"] == 0
    assert sum(w["tcp_resets_sent"] for w in workers) == 0
    assert sum(w["relay_resets"] for w in workers) == 0
