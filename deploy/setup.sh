#!/usr/bin/env bash
# Installs everything mpgw needs to build, test and run its lab on a fresh Debian
# bookworm machine (root). Safe to run any number of times.
set -euo pipefail

packages=(
  # DPDK 22.11 and what the bindings need to build against it
  dpdk dpdk-dev libdpdk-dev libclang-dev pkg-config
  # the lab: namespaces, veths, offload control, traffic, captures, kernel MPTCP tools
  iproute2 ethtool iputils-ping iperf3 tshark tcpdump nftables mptcpize socat netcat-openbsd
  procps psmisc python3-pip
  # promtool (checks the /metrics exposition in the lab tests)
  prometheus
)

need=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer once, non-interactively.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

python3 -c 'import pytest' 2>/dev/null || pip install --quiet --disable-pip-version-check pytest
# The Prometheus exposition parsers the metrics lab test checks /metrics with.
python3 -c 'import prometheus_client' 2>/dev/null ||
  pip install --quiet --disable-pip-version-check prometheus_client

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found: install Rust (rustup) first" >&2
  exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
# The fuzz targets need a nightly toolchain (present on the build machines: rustup
# cannot download one here) and cargo-fuzz.
if rustup toolchain list | grep -q '^nightly'; then
  command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
else
  echo "setup: no nightly toolchain: the fuzz step of deploy/test.sh will fail" >&2
fi

echo "setup: ok (DPDK $(pkg-config --modversion libdpdk))"
