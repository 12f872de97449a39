#!/usr/bin/env bash
# The two-gateway lab: a plain TCP client → mpgw edge ⇒ (MPTCP over three WAN paths)
# ⇒ mpgw concentrator → a plain TCP server. Each mpgw runs in its own namespace with
# its own EAL file prefix and admin socket, attached to its veths through DPDK
# net_af_packet (or net_af_xdp: LAB_PMD=af_xdp).
#
#   $LAB-lan          $LAB-edge (mpgw edge)                 $LAB-conc (mpgw concentrator)        $LAB-srv
#   l0 192.0.2.2 <--> e0 lan0 192.0.2.1
#                        w0 wan0 198.51.100.1/28  <-->  k0 wan0 198.51.100.2/28 + 198.51.100.100/32
#                        w1 wan1 198.51.100.17/28 <-->  k1 wan1 198.51.100.18/28
#                        w2 wan2 198.51.100.33/28 <-->  k2 wan2 198.51.100.34/28
#                                                        s0 srv0 203.0.113.1/24  <-->  t0 203.0.113.2
#
# The edge relays 192.0.2.1:5201 to the concentrator's service address
# 198.51.100.100:5201, which is on none of the edge's subnets: each of the edge's WAN
# ports reaches it through its gateway (the concentrator's end of that path), so the
# initial subflow leaves through wan0 and the two MP_JOINs through wan1 and wan2. The
# concentrator relays to the server's 203.0.113.2:5201.
#
# The gateways' veths carry no kernel address (IPv6 off too): mpgw alone answers on
# them. Offloads are off on both ends of every veth so frames are wire-like.
# Configurations: deploy/lab/e2e-edge.toml and deploy/lab/e2e-concentrator.toml.
#
# Usage: deploy/lab/e2e.sh up|down|status
#   LAB=name     namespace/run-dir prefix (default: mpgw-e2e)
#   MPGW_BIN=…   the mpgw binary (default: build target/release/mpgw)
#   LAB_PMD=af_xdp  the gateways' ports use DPDK net_af_xdp (see deploy/lab.sh)
#   NO_MPGW=1    build the topology only
set -euo pipefail

LAB=${LAB:-mpgw-e2e}
LAN=$LAB-lan EDGE=$LAB-edge CONC=$LAB-conc SRV=$LAB-srv
RUN=/run/$LAB
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MPGW_BIN=${MPGW_BIN:-$ROOT/target/release/mpgw}
GATEWAYS=(edge conc)

# shellcheck source=deploy/lab/common.sh
source "$ROOT/deploy/lab/common.sh"
log() { echo "e2e: $*"; }

ns_of() { # edge|conc
  case $1 in edge) echo "$EDGE" ;; conc) echo "$CONC" ;; esac
}

config_of() { # edge|conc
  case $1 in edge) echo "$ROOT/deploy/lab/e2e-edge.toml" ;;
             conc) echo "$ROOT/deploy/lab/e2e-concentrator.toml" ;; esac
}

mpgw_pid() { # edge|conc
  [[ -f $RUN/$1.pid ]] || return 1
  local pid; pid=$(cat "$RUN/$1.pid")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

stop_mpgw() { # edge|conc
  local pid
  if pid=$(mpgw_pid "$1"); then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    log "mpgw $1 (pid $pid) stopped"
  fi
  rm -f "$RUN/$1.pid"
}

down() {
  local gw ns pids
  for gw in "${GATEWAYS[@]}"; do stop_mpgw "$gw"; done
  for ns in "$LAN" "$EDGE" "$CONC" "$SRV"; do
    # Whatever still runs in the lab's namespaces (test servers) would keep them alive.
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -z $pids ]] || kill $pids 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$RUN"
  # EAL runtime directories of this lab's two prefixes.
  rm -rf "/var/run/dpdk/$LAB-edge" "/var/run/dpdk/$LAB-conc"
  log "down"
}

topology() {
  for ns in "$LAN" "$EDGE" "$CONC" "$SRV"; do
    ip netns add "$ns"
    in_ns "$ns" ip link set lo up
    in_ns "$ns" sysctl -qw net.ipv4.tcp_congestion_control=cubic 2>/dev/null || true
  done
  veth "$LAN" l0 "$EDGE" e0
  veth "$EDGE" w0 "$CONC" k0
  veth "$EDGE" w1 "$CONC" k1
  veth "$EDGE" w2 "$CONC" k2
  veth "$CONC" s0 "$SRV" t0

  # Gateways: no kernel addresses at all, so only mpgw answers.
  local dev
  for dev in e0 w0 w1 w2; do
    in_ns "$EDGE" sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1"
    in_ns "$EDGE" ip link set "$dev" up
  done
  for dev in k0 k1 k2 s0; do
    in_ns "$CONC" sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1"
    in_ns "$CONC" ip link set "$dev" up
  done
  in_ns "$EDGE" sysctl -qw net.ipv4.ip_forward=0
  in_ns "$CONC" sysctl -qw net.ipv4.ip_forward=0
  kernel_blind "$EDGE" e0 w0 w1 w2
  kernel_blind "$CONC" k0 k1 k2 s0

  # LAN client: one address, default route through the edge.
  in_ns "$LAN" sysctl -qw net.ipv6.conf.l0.disable_ipv6=1
  in_ns "$LAN" ip link set l0 up
  in_ns "$LAN" ip addr add 192.0.2.2/24 dev l0
  in_ns "$LAN" ip route add default via 192.0.2.1 dev l0 congctl cubic

  # Server: one address, default route through the concentrator.
  in_ns "$SRV" sysctl -qw net.ipv6.conf.t0.disable_ipv6=1
  in_ns "$SRV" ip link set t0 up
  in_ns "$SRV" ip addr add 203.0.113.2/24 dev t0
  in_ns "$SRV" ip route add default via 203.0.113.1 dev t0 congctl cubic
}

build_mpgw() {
  if [[ -z ${MPGW_BIN_GIVEN:-} && ! -x $MPGW_BIN || -n ${MPGW_REBUILD:-} ]]; then
    log "building mpgw"
    (cd "$ROOT" && DPDK_SYS_REQUIRE=1 cargo build --release -q -p mpgw-control)
  fi
}

start_mpgw() { # edge|conc
  local gw=$1 ns conf
  ns=$(ns_of "$gw") conf=$RUN/$gw.toml
  mkdir -p "$RUN"
  sed "s/@LAB@/$LAB/g" "$(config_of "$gw")" >"$conf"
  pmd_devices "$conf"
  "$MPGW_BIN" check-config "$conf" >/dev/null
  # setsid: mpgw keeps running after this script exits and ignores its terminal.
  setsid ip netns exec "$ns" "$MPGW_BIN" run --config "$conf" \
    >"$RUN/$gw.log" 2>&1 </dev/null &
  echo $! >"$RUN/$gw.pid"
  for _ in $(seq 100); do
    if ! mpgw_pid "$gw" >/dev/null; then
      log "mpgw $gw exited during start-up:"; tail -20 "$RUN/$gw.log" >&2; return 1
    fi
    [[ -S $RUN/$gw.sock ]] && grep -q "workers running" "$RUN/$gw.log" && break
    sleep 0.1
  done
  grep -q "workers running" "$RUN/$gw.log" || { log "mpgw $gw did not come up:"; tail -20 "$RUN/$gw.log" >&2; return 1; }
  log "mpgw $gw running in $ns (pid $(cat "$RUN/$gw.pid"), log $RUN/$gw.log, admin $RUN/$gw.sock)"
}

status() {
  for ns in "$LAN" "$EDGE" "$CONC" "$SRV"; do
    if ip netns list | grep -qw "$ns"; then
      echo "$ns: $(in_ns "$ns" ip -br link | awk '$1!="lo"{printf "%s(%s) ", $1, $2}')"
    else
      echo "$ns: absent"
    fi
  done
  local gw pid
  for gw in "${GATEWAYS[@]}"; do
    if pid=$(mpgw_pid "$gw"); then
      echo "mpgw $gw: running, pid $pid, log $RUN/$gw.log"
      "$MPGW_BIN" stats --socket "$RUN/$gw.sock" || true
    else
      echo "mpgw $gw: not running"
    fi
  done
}

[[ $EUID -eq 0 ]] || { echo "e2e: must run as root (namespaces, veths)" >&2; exit 1; }
[[ -n ${MPGW_BIN:-} && $MPGW_BIN != "$ROOT/target/release/mpgw" ]] && MPGW_BIN_GIVEN=1

case ${1:-} in
  up)
    down >/dev/null
    topology
    log "topology up ($LAN, $EDGE, $CONC, $SRV)"
    if [[ -z ${NO_MPGW:-} ]]; then
      build_mpgw
      start_mpgw conc
      start_mpgw edge
    fi ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
