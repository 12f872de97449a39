"""The walking skeleton in the lab: mpgw answers ARP/ND and echo for its own addresses
on every port, and drops and counts everything else."""

import pytest

# (namespace attribute, client interface, gateway address) for every port and family.
TARGETS = [
    ("cli", "c0", "192.0.2.1"),
    ("cli", "c1", "198.51.100.1"),
    ("srv", "s0", "203.0.113.1"),
    ("cli", "c0", "2001:db8:0:1::1"),
    ("cli", "c1", "2001:db8:0:2::1"),
    ("srv", "s0", "2001:db8:0:3::1"),
]


@pytest.mark.parametrize("ns,dev,addr", TARGETS)
def test_ping_reaches_each_gateway_address_on_each_path(lab, ns, dev, addr):
    before = lab.counters()
    family = "-6" if ":" in addr else "-4"
    res = lab.sh(getattr(lab, ns), f"ping {family} -c 5 -i 0.05 -W 2 -I {dev} {addr}")
    assert res.returncode == 0, res.stdout + res.stderr
    assert " 0% packet loss" in res.stdout, res.stdout
    echo = "icmp6_echo_replies" if family == "-6" else "icmp_echo_replies"
    after = lab.counters()
    assert after[echo] - before[echo] >= 5
    resolved = "nd_advertisements" if family == "-6" else "arp_replies"
    assert after[resolved] >= 1, f"{resolved} should count the neighbour resolution"


def test_replies_go_out_the_port_the_request_came_in_on(lab):
    # The client pings path 1's address through path 1; path 0's kernel counters must not move.
    def c0_rx():
        return int(lab.sh(lab.cli, "cat /sys/class/net/c0/statistics/rx_packets", check=True).stdout)
    lab.sh(lab.cli, "ping -c 1 -W 2 -I c1 198.51.100.1", check=True)
    before = c0_rx()
    lab.sh(lab.cli, "ping -c 20 -i 0.02 -W 2 -I c1 198.51.100.1", check=True)
    assert c0_rx() - before < 5, "echo replies for path 1 must not arrive on path 0"


def test_unhandled_traffic_is_dropped_and_counted(lab):
    before = lab.counters()
    # UDP and TCP to an own address: no service yet, so dropped as unhandled (no reply).
    lab.sh(lab.cli, "for i in 1 2 3 4 5; do echo x | nc -u -w0 -s 192.0.2.2 192.0.2.1 9; done")
    res = lab.sh(lab.cli, "nc -z -w 1 -s 192.0.2.2 192.0.2.1 80")
    assert res.returncode != 0, "nothing listens on TCP yet"
    # ARP for an address mpgw does not own: not answered, counted.
    res = lab.sh(lab.cli, "ping -c 2 -i 0.2 -W 1 -I c0 192.0.2.77")
    assert res.returncode != 0
    # An echo to an IPv6 address on the link that mpgw does not own.
    lab.sh(lab.cli, "ping -6 -c 2 -i 0.2 -W 1 -I c0 2001:db8:0:1::77")

    unhandled = lab.wait_counter("drop_unhandled", before["drop_unhandled"] + 6)
    assert unhandled - before["drop_unhandled"] >= 6, "5 UDP datagrams + at least 1 TCP SYN"
    not_for_us = lab.wait_counter("drop_not_for_us", before["drop_not_for_us"] + 2)
    assert not_for_us - before["drop_not_for_us"] >= 2, "ARP requests / NS for other addresses"
    after = lab.counters()
    assert after["rx_packets"] > before["rx_packets"]
    assert after["icmp_echo_replies"] == before["icmp_echo_replies"], "no echo answered"


def test_stats_show_every_port_up_with_traffic(lab):
    lab.sh(lab.srv, "ping -c 2 -i 0.1 -W 2 203.0.113.1", check=True)
    ports = {p["name"]: p for p in lab.stats()["ports"]}
    assert set(ports) == {"down0", "down1", "up0"}
    for name, p in ports.items():
        assert p["link_up"], name
        assert p["rx_packets"] > 0 and p["tx_packets"] > 0, (name, p)


def test_lab_status_reports_mpgw_running(lab):
    res = lab.script("status")
    assert res.returncode == 0, res.stderr
    assert "mpgw: running" in res.stdout
    assert "icmp_echo_replies" in res.stdout
