"""MPTCP interop with the Linux kernel: a kernel MPTCP client (two paths, a `subflow`
endpoint on the second) against mpgw's diagnostic services, which terminate MPTCP."""

import pytest

from mptcp_helpers import (echo_watching_subflows, iface_bytes, mptcp_transfer, nstat,
                           set_checksum, setup_mptcp_client)

GW4 = "192.0.2.1"
MIB = "MPTcpExt"


@pytest.fixture(scope="module")
def mp_lab(lab):
    setup_mptcp_client(lab, subflows=4, add_addr_accepted=2, subflow_endpoint=True)
    set_checksum(lab, lab.cli, False)
    yield lab
    set_checksum(lab, lab.cli, False)


def _delta(before: dict, after: dict, name: str) -> int:
    return after.get(name, 0) - before.get(name, 0)


def test_kernel_client_joins_and_both_paths_carry_an_exact_echo(mp_lab):
    lab = mp_lab
    before, c0, c1 = nstat(lab, lab.cli), iface_bytes(lab, lab.cli, "c0"), iface_bytes(lab, lab.cli, "c1")
    gw_before = lab.counters()
    res = mptcp_transfer(lab, GW4, 7, 64 << 20, mode="echo", timeout=120)
    after = nstat(lab, lab.cli)
    assert res["sha256_sent"] == res["sha256_received"], res
    assert res["mptcp_info"]["fallback"] is False, res
    # The client sent MP_CAPABLE, got mpgw's key, and its join was answered.
    assert _delta(before, after, MIB + "MPCapableSYNTX") >= 1
    assert _delta(before, after, MIB + "MPCapableFallbackSYNACK") == 0
    assert _delta(before, after, MIB + "MPJoinSynAckRx") >= 1
    assert _delta(before, after, MIB + "DataCsumErr") == 0
    gw = lab.counters()
    assert gw["mptcp_capable_established"] > gw_before["mptcp_capable_established"]
    assert gw["mptcp_joins"] > gw_before["mptcp_joins"]
    # Both veths carried at least 10 % of the bytes.
    d0 = sum(iface_bytes(lab, lab.cli, "c0")) - sum(c0)
    d1 = sum(iface_bytes(lab, lab.cli, "c1")) - sum(c1)
    total = d0 + d1
    assert d0 >= total // 10 and d1 >= total // 10, (d0, d1)


def test_checksums_asked_by_the_client_only(mp_lab):
    # The gateway does not ask (the default); the client does: checksums are used.
    # test_mptcp_checksum.py covers the gateway asking.
    lab = mp_lab
    set_checksum(lab, lab.cli, True)
    before = nstat(lab, lab.cli)
    res = mptcp_transfer(lab, GW4, 7, 16 << 20, mode="echo", timeout=120)
    after = nstat(lab, lab.cli)
    set_checksum(lab, lab.cli, False)
    assert res["sha256_sent"] == res["sha256_received"], res
    assert res["mptcp_info"]["csum_enabled"] == 1, res
    assert _delta(before, after, MIB + "DataCsumErr") == 0


def test_discard_counts_every_byte_over_mptcp(mp_lab):
    lab = mp_lab
    before = lab.counters()["diag_bytes_discarded"]
    res = mptcp_transfer(lab, GW4, 9, 32 << 20, mode="discard", timeout=120)
    assert res["bytes_sent"] == 32 << 20
    assert lab.wait_counter("diag_bytes_discarded", before + (32 << 20)) == before + (32 << 20)


def test_mpgw_announces_its_second_address_and_the_client_joins_it(mp_lab):
    # down1 has flags = ["signal"]: on a connection to 192.0.2.1 mpgw announces
    # 198.51.100.1 (ADD_ADDR with HMAC, no port); the client (add_addr_accepted 2)
    # verifies the HMAC (MPTcpExtAddAddr), echoes it and, besides its `subflow`
    # endpoint's join to 192.0.2.1, joins 198.51.100.1 from the routed source
    # (198.51.100.2) at the connection's port. Nothing listens on 198.51.100.1:7: mpgw
    # takes MP_JOIN SYNs by their token on any of its addresses and ports (it used to
    # answer them with a plain RST there: SF_CLOSED error=111 at the client).
    lab = mp_lab
    # `ip mptcp monitor` shows every subflow the client's path manager opens.
    before, gw_before = nstat(lab, lab.cli), lab.stats()
    res, joined = echo_watching_subflows(lab, GW4, 7, 16 << 20)
    after, gw = nstat(lab, lab.cli), lab.stats()
    assert res["sha256_sent"] == res["sha256_received"], res
    assert res["mptcp_info"]["fallback"] is False, res
    mib_before, mib = gw_before["mptcp_mib"], gw["mptcp_mib"]
    assert _delta(before, after, MIB + "AddAddr") >= 1, "the client took the announcement"
    assert mib[MIB + "AddAddrTx"] > mib_before[MIB + "AddAddrTx"]
    assert mib[MIB + "EchoAdd"] > mib_before[MIB + "EchoAdd"], "the client echoed it"
    assert mib[MIB + "AddAddrDrop"] == 0
    # A join reaches the announced address (remote id 1 = 198.51.100.1) and is
    # established, next to the endpoint's join to the initial address.
    assert any("daddr4=198.51.100.1 " in line and "remid=1 " in line for line in joined), joined
    assert any("daddr4=192.0.2.1 " in line for line in joined), joined
    assert _delta(before, after, MIB + "MPJoinSynAckRx") >= 2
    assert mib[MIB + "MPJoinAckRx"] - mib_before[MIB + "MPJoinAckRx"] >= 2
    assert gw["total"]["mptcp_joins"] - gw_before["total"]["mptcp_joins"] >= 2
    assert gw["total"]["tcp_resets_sent"] == gw_before["total"]["tcp_resets_sent"]
