"""Transparent mode and the full-mesh path manager in the lab.

mpgw is the next hop of both namespaces (the client's default route and the server's
go through it), and transparent listeners take connections to foreign destinations:

- concentrator (on down0 and down1, destination port 5203): a kernel MPTCP client on
  two paths connects straight to the *server's* address 203.0.113.2:5203; mpgw answers
  as the server, takes the client's join to that same address by its token, and
  relays plain TCP from its own upstream address to the server;
- edge (on up0, destination port 5204): a plain TCP client in the server namespace
  (the LAN) connects to [2001:db8:0:100::1]:5204, a kernel MPTCP server in the client
  namespace (the WAN); mpgw answers as it and opens MPTCP to it, over both ports. The
  server announces a second address (`ip mptcp endpoint … signal`); with
  `path_manager = "fullmesh"` mpgw joins every pair of addresses.

Every transfer is checked byte for byte (sha256 of seeded data).
"""

import threading
import time

import pytest

from mptcp_helpers import nstat, setup_mptcp_client, ss_mptcp, ss_subflows
from relay_helpers import MPTCP, TCP, start_server, stop_server, transfer

LAB_EXTRA_CONFIG = """
[mptcp]
path_manager = "fullmesh"
subflows = 4
add_addr_accepted = 2

[[listeners]]
transparent = true
role = "concentrator"
ports = ["down0", "down1"]
destination_ports = [5203]

[[listeners]]
transparent = true
role = "edge"
ports = ["up0"]
destination_ports = [5204]
"""

MIB = "MPTcpExt"
SERVER = "203.0.113.2"
WAN_SERVER = "2001:db8:0:100::1"
WAN_SIGNAL = "2001:db8:0:2::2"


@pytest.fixture(scope="module")
def transparent_lab(lab):
    setup_mptcp_client(lab, subflows=4, add_addr_accepted=2, subflow_endpoint=True)
    # The WAN server (client namespace) announces its address on path 1.
    lab.sh(lab.cli, f"ip mptcp endpoint add {WAN_SIGNAL} dev c1 signal", check=True)
    backend = start_server(lab, lab.srv, "0.0.0.0", 5203, proto=TCP)
    # On every address: Linux takes a join at the listener of its destination, and
    # mpgw joins the announced address too.
    wan_server = start_server(lab, lab.cli, "::", 5204, proto=MPTCP)
    yield lab
    stop_server(lab, lab.srv, backend)
    stop_server(lab, lab.cli, wan_server)


def _watch(fn):
    """Calls `fn` every 0.1 s in a thread until the returned stop function is called;
    the stop function returns what `fn` returned, in order."""
    seen, done = [], threading.Event()

    def loop():
        while not done.is_set():
            seen.append(fn())
            time.sleep(0.1)

    t = threading.Thread(target=loop, daemon=True)
    t.start()

    def stop():
        done.set()
        t.join(5)
        return seen

    return stop


def test_concentrator_answers_as_the_server_and_relays_from_its_own_address(transparent_lab):
    lab = transparent_lab
    before, gw = nstat(lab, lab.cli), lab.counters()
    def server_peers():
        # The peer addresses of the server's established connections.
        out = lab.sh(lab.srv, "ss -tnH state established '( sport = :5203 )'").stdout
        return {line.split()[-1].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()}

    stop = _watch(server_peers)
    try:
        for kind in ("U", "D", "E"):
            res = transfer(lab, lab.cli, SERVER, 5203, kind, 64 << 20, proto=MPTCP,
                           timeout=120)
            assert res["ok"], res
    finally:
        peers = stop()
    after, gw_after = nstat(lab, lab.cli), lab.counters()
    # The client spoke MPTCP to the server's address and joined it over its second
    # path: mpgw took the join to the foreign address by its token.
    assert after[MIB + "MPCapableSYNACKRX"] - before[MIB + "MPCapableSYNACKRX"] == 3
    assert after[MIB + "MPJoinSynAckRx"] - before[MIB + "MPJoinSynAckRx"] >= 3, \
        "each connection joined"
    assert gw_after["relay_transparent"] - gw["relay_transparent"] == 3
    assert gw_after["relay_connected"] - gw["relay_connected"] == 3
    assert gw_after["relay_resets"] == gw["relay_resets"]
    # The server saw every connection come from mpgw's upstream address.
    assert set().union(*peers) == {"203.0.113.1"}, peers
    assert ss_subflows(lab, lab.srv) == [], "plain TCP on the server side"


def test_a_foreign_destination_no_listener_takes_is_dropped_and_counted(transparent_lab):
    lab = transparent_lab
    dropped = lab.counters()["drop_transit"]
    res = lab.sh(lab.cli, f"python3 -c 'import socket; s = socket.socket(); s.settimeout(2); "
                          f"s.connect((\"{SERVER}\", 5299))'", timeout=10)
    assert res.returncode != 0 and "timed out" in res.stderr, res
    assert lab.counters()["drop_transit"] > dropped


def test_edge_answers_as_the_wan_server_and_joins_all_its_addresses(transparent_lab):
    lab = transparent_lab
    before, gw = nstat(lab, lab.cli), lab.counters()

    def subflows():
        # Additional subflows of the WAN server's MPTCP connections (ss -M).
        return max((s.get("subflows", 0) for s in ss_mptcp(lab, lab.cli)
                    if s["local_port"] == 5204 and s["state"] == "ESTAB"), default=0)

    stop = _watch(subflows)
    try:
        for kind in ("U", "D", "E"):
            res = transfer(lab, lab.srv, WAN_SERVER, 5204, kind, 64 << 20, proto=TCP,
                           timeout=120)
            assert res["ok"], res
    finally:
        seen = stop()
    after, gw_after = nstat(lab, lab.cli), lab.counters()
    assert after[MIB + "MPCapableSYNRX"] - before[MIB + "MPCapableSYNRX"] == 3
    assert after[MIB + "AddAddrTx"] - before[MIB + "AddAddrTx"] >= 3, "the server announced"
    assert gw_after["relay_transparent"] - gw["relay_transparent"] == 3
    # Full mesh: mpgw's two addresses to the server's two (4 subflows: 3 joins).
    assert max(seen, default=0) == 3, seen
    assert gw_after["pm_joins"] - gw["pm_joins"] == 9
