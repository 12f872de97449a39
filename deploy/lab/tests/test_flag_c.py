"""MP_CAPABLE's flag C against the Linux kernel, both ways: mpgw with
`allow_join_initial_addr_port = false` tells clients not to join the address their
connection was made to, and a Linux client then joins only what mpgw announces; a Linux
MPTCP server that sets the flag gets no join from mpgw's edge."""

import time

import pytest

from mptcp_helpers import echo_watching_subflows, nstat, setup_mptcp_client
from relay_helpers import MPTCP, TCP, start_server, stop_server, transfer

GW4 = "192.0.2.1"
MIB = "MPTcpExt"

LAB_EXTRA_CONFIG = """
[mptcp]
allow_join_initial_addr_port = false
"""


@pytest.fixture(scope="module")
def c_lab(lab):
    # Linux's default limit: announcements are not taken — except one from a peer
    # that set flag C, which leaves the client nowhere else to join.
    setup_mptcp_client(lab, subflows=4, add_addr_accepted=0, subflow_endpoint=True)
    yield lab


def test_the_client_joins_only_the_announced_address(c_lab):
    lab = c_lab
    before, gw_before = nstat(lab, lab.cli), lab.stats()
    res, joined = echo_watching_subflows(lab, GW4, 7, 16 << 20)
    after, gw = nstat(lab, lab.cli), lab.stats()
    assert res["sha256_sent"] == res["sha256_received"], res
    assert res["mptcp_info"]["fallback"] is False, res
    # No subflow to the initial address (without flag C the client's `subflow`
    # endpoint joins 192.0.2.1: test_mptcp.py), one to the announced 198.51.100.1
    # although the client's add_addr_accepted is 0.
    assert not any("daddr4=192.0.2.1 " in line for line in joined), joined
    assert any("daddr4=198.51.100.1 " in line for line in joined), joined
    assert after.get(MIB + "AddAddr", 0) - before.get(MIB + "AddAddr", 0) >= 1
    mib_before, mib = gw_before["mptcp_mib"], gw["mptcp_mib"]
    assert mib[MIB + "MPJoinAckRx"] - mib_before[MIB + "MPJoinAckRx"] >= 1
    assert gw["total"]["tcp_resets_sent"] == gw_before["total"]["tcp_resets_sent"]


def test_the_edge_does_not_join_a_server_that_set_flag_c(c_lab):
    # The lab's edge listener (203.0.113.1:5202) relays to an MPTCP server in the
    # client namespace, reached over both WAN ports; its `subflow` ports would join
    # the server's address (test_relay.py) — unless the server's SYN/ACK says no.
    lab = c_lab
    lab.sh(lab.cli, "sysctl -qw net.mptcp.allow_join_initial_addr_port=0", check=True)
    server = start_server(lab, lab.cli, "2001:db8:0:100::1", 5202, proto=MPTCP)
    try:
        before, gw_before = nstat(lab, lab.cli), lab.stats()
        res = transfer(lab, lab.srv, "203.0.113.1", 5202, "E", 16 << 20, proto=TCP, timeout=120)
        time.sleep(1.5)  # the path manager's joins would be out by now
        after, gw = nstat(lab, lab.cli), lab.stats()
    finally:
        stop_server(lab, lab.cli, server)
        lab.sh(lab.cli, "sysctl -qw net.mptcp.allow_join_initial_addr_port=1")
    assert res["ok"], res
    assert after.get(MIB + "MPCapableSYNRX", 0) - before.get(MIB + "MPCapableSYNRX", 0) == 1
    assert after.get(MIB + "MPJoinSynRx", 0) - before.get(MIB + "MPJoinSynRx", 0) == 0
    assert gw["total"]["pm_joins"] == gw_before["total"]["pm_joins"]
