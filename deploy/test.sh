#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit/property/DPDK-vdev tests, and the lab
# tests (root: namespaces, veths, mpgw on net_af_packet). Run deploy/setup.sh first.
#
#   SKIP_LAB=1   skip the lab tests (e.g. without root)
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

if [[ -n ${SKIP_LAB:-} ]]; then
  echo "SKIP_LAB set: lab tests skipped"
  exit 0
fi
[[ $EUID -eq 0 ]] || { echo "lab tests need root (or set SKIP_LAB=1)" >&2; exit 1; }

step "lab tests (namespaces + mpgw on net_af_packet)"
cargo build --release --locked -p mpgw-control
MPGW_BIN=$PWD/target/release/mpgw python3 -m pytest -v -p no:cacheprovider deploy/lab/tests
