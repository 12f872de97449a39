#!/usr/bin/env bash
# Bulk TCP per busy core-second: mpgw's engine on DPDK net_ring (both ends on one core,
# bench/src/bin/tcp_bulk.rs) beside the Linux kernel's TCP over loopback (iperf3, both
# ends pinned to the same core, in a scratch network namespace), each without and with
# 1 % random loss (nftables on the namespace's lo for the kernel), side by side in one
# run. Prints a table; run as root (namespace, nftables).
#
# Environment: DURATION (s, default 5), LCORE (1), CARGO_TARGET_DIR.
set -euo pipefail
DURATION=${DURATION:-5}
LCORE=${LCORE:-1}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
NS=tcpbulk-$$
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET DPDK_SYS_REQUIRE=1 \
  cargo build --release --quiet -p mpgw-bench --features dpdk --bin tcp_bulk)

cleanup() { ip netns del "$NS" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up

mpgw() { # loss -> "Gbit/s bytes_per_core_second"
  "$TARGET/release/tcp_bulk" --duration "$DURATION" --loss "$1" --lcore "$LCORE" 2>/dev/null |
    sed -n 's/.*goodput_gbps=\([0-9.]*\) bytes_per_core_second=\([0-9]*\).*/\1 \2/p'
}

kernel() { # loss -> "Gbit/s bytes_per_core_second"
  local loss=$1
  ip netns exec "$NS" nft flush ruleset
  if [[ $loss != 0 ]]; then
    local per10k; per10k=$(python3 -c "print(int($loss * 10000))")
    ip netns exec "$NS" nft add table netdev loss
    ip netns exec "$NS" nft add chain netdev loss in '{ type filter hook ingress device "lo" priority 0; }'
    ip netns exec "$NS" nft add rule netdev loss in numgen random mod 10000 lt "$per10k" drop
  fi
  ip netns exec "$NS" taskset -c "$LCORE" iperf3 -s -1 -D -p 5299 >/dev/null
  sleep 0.3
  ip netns exec "$NS" taskset -c "$LCORE" iperf3 -c 127.0.0.1 -p 5299 -t "$DURATION" -C cubic -J |
    python3 -c '
import json, sys
r = json.load(sys.stdin)["end"]
bps = r["sum_received"]["bits_per_second"]
busy = (r["cpu_utilization_percent"]["host_total"] + r["cpu_utilization_percent"]["remote_total"]) / 100
print(f"{bps / 1e9:.3f} {bps / 8 / max(busy, 1e-9):.0f}")'
}

printf '%-10s %-8s %12s %22s\n' system loss Gbit/s bytes/busy-core-s
for loss in 0 0.01; do
  read -r mg mb < <(mpgw "$loss")
  read -r kg kb < <(kernel "$loss")
  printf '%-10s %-8s %12s %22s\n' mpgw "$loss" "$mg" "$mb" kernel "$loss" "$kg" "$kb"
  python3 -c "print(f'  ratio mpgw/kernel (bytes per busy core-second) at loss $loss: {$mb / $kb:.2f}')"
done
