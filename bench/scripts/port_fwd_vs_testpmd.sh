#!/usr/bin/env bash
# Port forward loop: mpgw's safe DPDK layer (bench/src/bin/port_fwd.rs) against
# dpdk-testpmd io forwarding, side by side in one invocation, on the same vdevs and the
# same worker lcore, alternating mpgw/testpmd REPS times each. Prints a table of the
# medians and the ratio (target >= 0.9).
#
# Usage: bench/scripts/port_fwd_vs_testpmd.sh
# Environment: DURATION (s, default 5), WARMUP (s, 1), REPS (3), LCORE (1, worker),
#   TX_FIRST (packets primed on net_ring, 32; a multiple of 32), VDEVS ("net_null0 net_ring0"),
#   CARGO_TARGET_DIR (where to build; default <repo>/target), TESTPMD (dpdk-testpmd).
set -euo pipefail

DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
REPS=${REPS:-3}
LCORE=${LCORE:-1}
TX_FIRST=${TX_FIRST:-32}
VDEVS=${VDEVS:-"net_null0 net_ring0"}
TESTPMD=${TESTPMD:-dpdk-testpmd}
MBUFS=8191
MBCACHE=256

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/port_fwd
LOG=$(mktemp -d "${TMPDIR:-/tmp}/port_fwd.XXXXXX")

command -v "$TESTPMD" >/dev/null || { echo "$TESTPMD not found (apt-get install dpdk)" >&2; exit 1; }
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET DPDK_SYS_REQUIRE=1 \
    cargo build --release --quiet -p mpgw-bench --features dpdk --bin port_fwd)

# Loopback vdevs need packets injected first.
needs_tx_first() { [[ $1 == net_ring* ]]; }

run_mpgw() { # vdev rep -> Mpps
    local vdev=$1 rep=$2 prime=0 out
    needs_tx_first "$vdev" && prime=$TX_FIRST
    out=$LOG/mpgw-$vdev-$rep.log
    "$BIN" --vdev "$vdev" --lcore "$LCORE" --tx-first "$prime" --warmup "$WARMUP" \
        --duration "$DURATION" --mbufs "$MBUFS" --mbcache "$MBCACHE" \
        --file-prefix "pfwd-mpgw-$$-$rep" >"$out" 2>&1 || { cat "$out" >&2; return 1; }
    sed -n 's/.*mpps=\([0-9.]*\).*/\1/p' "$out"
}

run_testpmd() { # vdev rep -> Mpps
    local vdev=$1 rep=$2 start=start out
    needs_tx_first "$vdev" && start="start tx_first $((TX_FIRST / 32))"
    out=$LOG/testpmd-$vdev-$rep.log
    # Interactive mode driven through stdin: testpmd's "Throughput (since last show)"
    # of the second "show port stats" covers exactly the DURATION after the warm-up.
    {
        sleep 1
        echo "$start"
        sleep "$WARMUP"
        echo "show port stats all"
        sleep "$DURATION"
        echo "show port stats all"
        echo "stop"
        echo "quit"
    } | "$TESTPMD" -l "0,$LCORE" --main-lcore 0 --no-huge -m 512 --no-pci --no-shconf \
        --file-prefix "pfwd-testpmd-$$-$rep" --vdev "$vdev" -- -i --forward-mode=io \
        --port-topology=loop --nb-cores=1 --total-num-mbufs="$MBUFS" --mbcache="$MBCACHE" \
        >"$out" 2>&1 || { cat "$out" >&2; return 1; }
    awk '/Tx-pps:/ { pps = $2 } END { printf "%.3f\n", pps / 1e6 }' "$out"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

printf 'port forward loop: %ss per run after %ss warm-up, worker lcore %s, %s reps, logs in %s\n' \
    "$DURATION" "$WARMUP" "$LCORE" "$REPS" "$LOG"
declare -A MPGW TESTPMD_MPPS
for vdev in $VDEVS; do
    for rep in $(seq 1 "$REPS"); do
        m=$(run_mpgw "$vdev" "$rep")
        t=$(run_testpmd "$vdev" "$rep")
        printf '  %-10s rep %d: mpgw %8.3f Mpps   testpmd %8.3f Mpps\n' "$vdev" "$rep" "$m" "$t"
        MPGW[$vdev]+="$m "
        TESTPMD_MPPS[$vdev]+="$t "
    done
done

echo
echo "| vdev | mpgw Mpps | testpmd Mpps | ratio |"
echo "|---|---|---|---|"
status=0
for vdev in $VDEVS; do
    m=$(tr ' ' '\n' <<<"${MPGW[$vdev]}" | grep . | median)
    t=$(tr ' ' '\n' <<<"${TESTPMD_MPPS[$vdev]}" | grep . | median)
    ratio=$(awk -v m="$m" -v t="$t" 'BEGIN { printf "%.2f", (t > 0) ? m / t : 0 }')
    printf '| %s | %.2f | %.2f | %s |\n' "$vdev" "$m" "$t" "$ratio"
    awk -v r="$ratio" 'BEGIN { exit !(r >= 0.9) }' || status=1
done
(( status == 0 )) || echo "ratio below the 0.9 target" >&2
exit "$status"
