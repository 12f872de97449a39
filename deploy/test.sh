#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit/property/DPDK-vdev tests, and the lab
# tests (root: namespaces, veths, mpgw on net_af_packet). Run deploy/setup.sh first.
#
#   SKIP_LAB=1       skip the lab tests (e.g. without root)
#   FUZZ_SECONDS=n   how long each fuzz target runs (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."

# A build without DPDK would silently stub the bindings and skip the DPDK tests.
export DPDK_SYS_REQUIRE=1
step() { echo; echo "=== $* ==="; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p mpgw-bench --features dpdk --all-targets --locked -- -D warnings

step "unit, property and DPDK vdev tests (nextest: one process per test, one EAL each)"
cargo nextest run --workspace --locked --no-fail-fast

step "fuzz the wire parsers (${FUZZ_SECONDS:=30} s per target; crashes land in dataplane/fuzz/artifacts)"
for target in frame mptcp_option; do
  (cd dataplane/fuzz && cargo +nightly fuzz run "$target" -- -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 2>&1 |
    grep -E "^(Done|stat::number_of_executed_units)|ERROR|panicked" || true)
  if compgen -G "dataplane/fuzz/artifacts/$target/*" >/dev/null; then
    echo "fuzz target $target found a crash: add it as a regression test" >&2
    exit 1
  fi
done

if [[ -n ${SKIP_LAB:-} ]]; then
  echo "SKIP_LAB set: lab tests skipped"
  exit 0
fi
[[ $EUID -eq 0 ]] || { echo "lab tests need root (or set SKIP_LAB=1)" >&2; exit 1; }

step "lab tests (namespaces + mpgw on net_af_packet)"
cargo build --release --locked -p mpgw-control
MPGW_BIN=$PWD/target/release/mpgw python3 -m pytest -v -p no:cacheprovider deploy/lab/tests
