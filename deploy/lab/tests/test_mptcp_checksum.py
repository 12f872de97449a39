"""DSS checksums asked for by mpgw (`[mptcp] checksum_enabled`), with the kernel client
asking or not: checksums are used either way, and every byte is verified."""

import pytest

from mptcp_helpers import mptcp_transfer, nstat, set_checksum, setup_mptcp_client

LAB_EXTRA_CONFIG = "[mptcp]\nchecksum_enabled = true"
GW4 = "192.0.2.1"


@pytest.mark.parametrize("client", [False, True])
def test_gateway_asks_for_checksums(lab, client):
    setup_mptcp_client(lab, subflows=4, add_addr_accepted=2, subflow_endpoint=True)
    set_checksum(lab, lab.cli, client)
    before = nstat(lab, lab.cli)
    res = mptcp_transfer(lab, GW4, 7, 16 << 20, mode="echo", timeout=120)
    after = nstat(lab, lab.cli)
    set_checksum(lab, lab.cli, False)
    assert res["sha256_sent"] == res["sha256_received"], res
    assert res["mptcp_info"]["csum_enabled"] == 1, res
    assert after.get("MPTcpExtDataCsumErr", 0) == before.get("MPTcpExtDataCsumErr", 0)
    assert after["MPTcpExtMPJoinSynAckRx"] > before["MPTcpExtMPJoinSynAckRx"]
    mib = lab.stats()["mptcp_mib"]
    assert mib["MPTcpExtDataCsumErr"] == 0, mib
