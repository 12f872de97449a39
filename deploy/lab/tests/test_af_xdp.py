"""The concentrator relay over DPDK `net_af_xdp` ports (deploy/lab.sh LAB_PMD=af_xdp):
a kernel MPTCP client on two paths → mpgw → a plain TCP server, 64 MiB up, down and
both at once (echo), every byte checked.

DPDK 22.11's af_xdp PMD has no multi-segment TX (no `RTE_ETH_TX_OFFLOAD_MULTI_SEGS`):
it sends `pkt_len` bytes of a packet's first segment, so a relayed segment chained
behind its header buffer would leave with garbage for payload (the server drops it
for its checksum and the transfer stalls at once). mpgw copies the payload behind the
headers on such ports instead and counts it in `tx_linearized`.
"""

import socket

import pytest

from mptcp_helpers import setup_mptcp_client
from relay_helpers import MPTCP, TCP, start_server, stop_server, transfer

LAB_PMD = "af_xdp"
# Round robin over the subflows: mpgw's sends take both client ports (with the default
# scheduler a fast first path may carry all of it), so both send copied frames.
LAB_EXTRA_CONFIG = '[mptcp]\nscheduler = "roundrobin"\n'
SIZE = 64 << 20
AF_XDP = 44  # socket.AF_XDP, which Python does not name


def _af_xdp_missing() -> str:
    """Why this kernel cannot run AF_XDP sockets, or "" when it can."""
    try:
        socket.socket(AF_XDP, socket.SOCK_RAW, 0).close()
    except OSError as e:
        return f"no AF_XDP sockets on this kernel ({e})"
    return ""


MISSING = _af_xdp_missing()
pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING)


@pytest.fixture(scope="module")
def xdp_lab(lab):
    assert "driver=net_af_xdp" in lab.log(), "mpgw's ports are not net_af_xdp"
    setup_mptcp_client(lab, subflows=4, add_addr_accepted=2, subflow_endpoint=True)
    server = start_server(lab, lab.srv, "0.0.0.0", 5201, proto=TCP)
    yield lab
    stop_server(lab, lab.srv, server)


def _path_payload(lab):
    """MPTCP payload bytes mpgw received and sent per client path: [(down0), (down1)]."""
    ports = {p["name"]: p for p in lab.stats()["ports"]}
    return [(ports[n]["path_received_bytes"], ports[n]["path_sent_bytes"])
            for n in ("down0", "down1")]


@pytest.mark.parametrize("kind", ["U", "D", "E"])
def test_concentrator_relays_over_af_xdp_ports_byte_exact_on_both_paths(xdp_lab, kind):
    lab = xdp_lab
    paths, gw = _path_payload(lab), lab.counters()
    res = transfer(lab, lab.cli, "192.0.2.1", 5201, kind, SIZE, proto=MPTCP, timeout=120)
    assert res["ok"], res
    after, gw_after = _path_payload(lab), lab.counters()
    (r0, s0), (r1, s1) = ((a[0] - b[0], a[1] - b[1]) for a, b in zip(after, paths))
    assert (r0 + r1 >= SIZE) == (kind in "UE") and (s0 + s1 >= SIZE) == (kind in "DE")
    # Both paths carry payload wherever the client keeps sending while its join comes
    # up (the download client half-closes at the first bytes, and a Linux client adds
    # no subflow after that: with these ports the whole download may be over by then).
    if kind in "UE":
        assert min(r0, r1) >= SIZE // 100, ("received per path", r0, r1)
    if kind == "E":
        assert min(s0, s1) >= SIZE // 100, ("sent per path", s0, s1)
    for moved in ["relay_bytes_up"] * (kind in "UE") + ["relay_bytes_down"] * (kind in "DE"):
        assert gw_after[moved] - gw[moved] >= SIZE
    # Every relayed data segment left as one buffer, its payload copied: at least one
    # per 1448 bytes relayed.
    linearized = gw_after["tx_linearized"] - gw["tx_linearized"]
    assert linearized >= SIZE // 1448, linearized
    assert gw_after["tx_oversize"] == gw["tx_oversize"]
    assert gw_after["relay_resets"] == gw["relay_resets"]
