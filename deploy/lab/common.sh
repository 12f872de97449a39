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
