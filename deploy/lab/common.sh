# Shell helpers shared by deploy/lab.sh and deploy/lab/e2e.sh (sourced, not run).

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

quiet_offloads() { # ns dev
  in_ns "$1" ethtool -K "$2" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
}

veth() { # ns_a dev_a ns_b dev_b
  ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
  quiet_offloads "$1" "$2"
  quiet_offloads "$3" "$4"
}

# mpgw owns these veths (ns dev...): the namespace's kernel must not process their frames,
# as a NIC DPDK drives never hands frames to the kernel. mpgw's packet sockets take each
# frame before the netdev ingress hook, which then drops it; without this, every frame
# also went through the kernel's IPv4 input (route lookup, IpInAddrErrors) on the core
# that received it. `nft delete table netdev mpgw_ports` gives the kernel its frames back.
kernel_blind() {
  local ns=$1; shift
  local devs; devs=$(IFS=,; echo "$*")
  in_ns "$ns" nft delete table netdev mpgw_ports 2>/dev/null || true
  in_ns "$ns" nft "add table netdev mpgw_ports"
  in_ns "$ns" nft "add chain netdev mpgw_ports ingress { type filter hook ingress devices = { $devs } priority 0; policy drop; }"
}

# LAB_PMD selects the DPDK driver of the gateways' ports: af_packet (default) or af_xdp.
# Rewrites the `net_af_packetN,iface=X,qpairs=Q` devices of mpgw configuration FILE
# (the lab configurations are written for af_packet) into `net_af_xdpN,iface=X,…`:
# one AF_XDP socket per queue from netdev queue 0 on. A veth has one RX queue unless
# created with more, so af_xdp runs one worker. Returns non-zero for anything else.
pmd_devices() { # file
  case ${LAB_PMD:-af_packet} in
    af_packet) ;;
    af_xdp)
      if grep -q 'qpairs=[2-9]' "$1"; then
        echo "LAB_PMD=af_xdp: one worker only (the lab's veths have one queue)" >&2
        return 1
      fi
      sed -i -E 's/"net_af_packet([0-9]+),iface=([^,"]+),qpairs=1"/"net_af_xdp\1,iface=\2,start_queue=0,queue_count=1"/' "$1" ;;
    *) echo "LAB_PMD=$LAB_PMD: af_packet or af_xdp" >&2; return 1 ;;
  esac
}
