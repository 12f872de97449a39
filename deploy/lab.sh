#!/usr/bin/env bash
# The mpgw lab: network namespaces joined by veth pairs, with mpgw attached to the
# gateway's veths through DPDK net_af_packet (or net_af_xdp: LAB_PMD=af_xdp).
#
#   client ns ($LAB-cli)          gateway ns ($LAB-gw)            server ns ($LAB-srv)
#   c0 192.0.2.2/24       <-->    gd0  mpgw 192.0.2.1      gu0 <-->  s0 203.0.113.2/24
#      2001:db8:0:1::2/64              2001:db8:0:1::1       |       2001:db8:0:3::2/64
#   c1 198.51.100.2/24    <-->    gd1  mpgw 198.51.100.1     mpgw 203.0.113.1
#      2001:db8:0:2::2/64              2001:db8:0:2::1            2001:db8:0:3::1
#
# The gateway's veths carry no kernel address (IPv6 off too): mpgw alone answers on
# them. Offloads are off on both ends of every veth so frames are wire-like.
#
# Usage: deploy/lab.sh up|down|status|restart-mpgw
#   LAB=name     namespace/run-dir prefix (default: mpgw-lab)
#   MPGW_BIN=…   the mpgw binary (default: build target/release/mpgw)
#   MPGW_EXTRA_CONFIG=…  TOML appended to the lab configuration
#   MPGW_WORKERS=2  two workers (lcores 1 and 2, both on CPU 1; two queue pairs per port)
#   MPGW_HUGE_DIR=…  run mpgw on hugepages from this hugetlbfs mount (not --no-huge)
#   LAB_VLAN=N   path 1 runs on 802.1Q VLAN N: the client's path-1 addresses sit on
#                c1vN, a user-space VLAN interface over c1 (deploy/lab/vlan_bridge.py:
#                lab kernels may lack 802.1Q), and mpgw's down1 port gets `vlan = N`
#   MPGW_DOWN1_EXTRA=…  TOML lines added to mpgw's down1 port (e.g. `mtu = 1400`)
#   LAB_PMD=af_xdp  mpgw's ports use DPDK net_af_xdp (an XDP program on each gateway
#                veth hands every frame to mpgw's AF_XDP socket; one worker) instead
#                of net_af_packet (the default, LAB_PMD=af_packet)
#   NO_MPGW=1    build the topology only
set -euo pipefail

LAB=${LAB:-mpgw-lab}
CLI=$LAB-cli GW=$LAB-gw SRV=$LAB-srv
RUN=/run/$LAB
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MPGW_BIN=${MPGW_BIN:-$ROOT/target/release/mpgw}

# shellcheck source=deploy/lab/common.sh
source "$ROOT/deploy/lab/common.sh"
log() { echo "lab: $*"; }

mpgw_pid() {
  [[ -f $RUN/mpgw.pid ]] || return 1
  local pid; pid=$(cat "$RUN/mpgw.pid")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

stop_mpgw() {
  local pid
  if pid=$(mpgw_pid); then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    log "mpgw (pid $pid) stopped"
  fi
  rm -f "$RUN/mpgw.pid"
}

down() {
  stop_mpgw
  if [[ -f $RUN/vlan.pid ]]; then
    kill "$(cat "$RUN/vlan.pid")" 2>/dev/null || true
  fi
  for ns in "$CLI" "$GW" "$SRV"; do
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$RUN"
  log "down"
}

topology() {
  for ns in "$CLI" "$GW" "$SRV"; do
    ip netns add "$ns"
    in_ns "$ns" ip link set lo up
    in_ns "$ns" sysctl -qw net.ipv4.tcp_congestion_control=cubic 2>/dev/null || true
  done
  veth "$CLI" c0 "$GW" gd0
  veth "$CLI" c1 "$GW" gd1
  veth "$GW" gu0 "$SRV" s0

  # Gateway side: no kernel addresses at all, so only mpgw answers.
  for dev in gd0 gd1 gu0; do
    in_ns "$GW" sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1"
    in_ns "$GW" ip link set "$dev" up
  done
  in_ns "$GW" sysctl -qw net.ipv4.ip_forward=0
  kernel_blind "$GW" gd0 gd1 gu0

  # Client: one address per path, source-based policy routing so each path is used
  # by its own address; the default route goes through path 0.
  in_ns "$CLI" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  in_ns "$CLI" ip link set c0 up
  in_ns "$CLI" ip link set c1 up
  local p1=c1
  if [[ -n ${LAB_VLAN:-} ]]; then
    p1=c1v$LAB_VLAN
    mkdir -p "$RUN"
    setsid ip netns exec "$CLI" python3 "$ROOT/deploy/lab/vlan_bridge.py" c1 "$LAB_VLAN" "$p1" \
      >"$RUN/vlan.log" 2>&1 </dev/null &
    echo $! >"$RUN/vlan.pid"
    for _ in $(seq 50); do grep -q ready "$RUN/vlan.log" && break; sleep 0.1; done
    grep -q ready "$RUN/vlan.log" || { log "VLAN bridge failed:"; cat "$RUN/vlan.log" >&2; return 1; }
    quiet_offloads "$CLI" "$p1"
    in_ns "$CLI" ip link set "$p1" up
  fi
  in_ns "$CLI" ip addr add 192.0.2.2/24 dev c0
  in_ns "$CLI" ip addr add 198.51.100.2/24 dev "$p1"
  in_ns "$CLI" ip -6 addr add 2001:db8:0:1::2/64 dev c0 nodad
  in_ns "$CLI" ip -6 addr add 2001:db8:0:2::2/64 dev "$p1" nodad
  # A WAN server address for the edge role, reached through either path.
  in_ns "$CLI" ip -6 addr add 2001:db8:0:100::1/128 dev lo
  in_ns "$CLI" ip rule add from 192.0.2.2 table 100
  in_ns "$CLI" ip rule add from 198.51.100.2 table 101
  in_ns "$CLI" ip route add 192.0.2.0/24 dev c0 src 192.0.2.2 table 100
  in_ns "$CLI" ip route add default via 192.0.2.1 dev c0 table 100 congctl cubic
  in_ns "$CLI" ip route add 198.51.100.0/24 dev "$p1" src 198.51.100.2 table 101
  in_ns "$CLI" ip route add default via 198.51.100.1 dev "$p1" table 101 congctl cubic
  in_ns "$CLI" ip route add default via 192.0.2.1 dev c0 congctl cubic
  in_ns "$CLI" ip -6 rule add from 2001:db8:0:1::2 table 100
  in_ns "$CLI" ip -6 rule add from 2001:db8:0:2::2 table 101
  in_ns "$CLI" ip -6 route add 2001:db8:0:1::/64 dev c0 table 100
  in_ns "$CLI" ip -6 route add default via 2001:db8:0:1::1 dev c0 table 100 congctl cubic
  in_ns "$CLI" ip -6 route add 2001:db8:0:2::/64 dev "$p1" table 101
  in_ns "$CLI" ip -6 route add default via 2001:db8:0:2::1 dev "$p1" table 101 congctl cubic
  in_ns "$CLI" ip -6 route add default via 2001:db8:0:1::1 dev c0 congctl cubic

  # Server: one address, default route through the gateway.
  in_ns "$SRV" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  in_ns "$SRV" ip link set s0 up
  in_ns "$SRV" ip addr add 203.0.113.2/24 dev s0
  in_ns "$SRV" ip -6 addr add 2001:db8:0:3::2/64 dev s0 nodad
  in_ns "$SRV" ip route add default via 203.0.113.1 dev s0 congctl cubic
  in_ns "$SRV" ip -6 route add default via 2001:db8:0:3::1 dev s0 congctl cubic
}

start_mpgw() {
  if [[ -z ${MPGW_BIN_GIVEN:-} && ! -x $MPGW_BIN || -n ${MPGW_REBUILD:-} ]]; then
    log "building mpgw"
    (cd "$ROOT" && DPDK_SYS_REQUIRE=1 cargo build --release -q -p mpgw-control)
  fi
  mkdir -p "$RUN"
  sed "s/@LAB@/$LAB/g" "$ROOT/deploy/lab/mpgw-lab.toml" >"$RUN/mpgw.toml"
  if [[ ${MPGW_WORKERS:-1} == 2 ]]; then
    # Two workers on a 2-CPU machine: lcore 2 shares CPU 1 with lcore 1.
    sed -i -e 's/^workers = \[1\]/workers = [1, 2]/' -e 's/qpairs=1/qpairs=2/' \
      -e 's/^no_pci = true/no_pci = true\nlcore_cpus = [[2, 1]]/' "$RUN/mpgw.toml"
  fi
  pmd_devices "$RUN/mpgw.toml"
  # MPGW_HUGE_DIR: a mounted hugetlbfs (with free pages) to run on instead of --no-huge,
  # so DPDK secondary processes such as dpdk-dumpcap can attach (test_capture.py).
  if [[ -n ${MPGW_HUGE_DIR:-} ]]; then
    sed -i "s|^no_huge = true|no_huge = false\nargs = [\"--huge-dir\", \"$MPGW_HUGE_DIR\"]|" "$RUN/mpgw.toml"
  fi
  # LAB_VLAN / MPGW_DOWN1_EXTRA: keys set on the down1 port (replacing its own).
  local down1=${MPGW_DOWN1_EXTRA:-}
  [[ -z ${LAB_VLAN:-} ]] || down1+=$'\n'"vlan = $LAB_VLAN"
  if [[ -n $down1 ]]; then
    awk -v extra="$down1" '
      BEGIN { n = split(extra, l, "\n"); for (i = 1; i <= n; i++) { k = l[i]; sub(/ *=.*/, "", k); keys[k] = 1 } }
      /^\[/ { in1 = 0 }
      { k = $0; sub(/ *=.*/, "", k) }
      in1 && (k in keys) { next }
      { print }
      /^name = "down1"$/ { print extra; in1 = 1 }' "$RUN/mpgw.toml" >"$RUN/mpgw.toml.new"
    mv "$RUN/mpgw.toml.new" "$RUN/mpgw.toml"
  fi
  # MPGW_EXTRA_CONFIG: TOML appended to the lab configuration (e.g. an [mptcp] table).
  if [ -n "${MPGW_EXTRA_CONFIG:-}" ]; then
    printf '\n%s\n' "$MPGW_EXTRA_CONFIG" >>"$RUN/mpgw.toml"
  fi
  "$MPGW_BIN" check-config "$RUN/mpgw.toml" >/dev/null
  # setsid: mpgw keeps running after this script exits and ignores its terminal.
  setsid ip netns exec "$GW" "$MPGW_BIN" run --config "$RUN/mpgw.toml" \
    >"$RUN/mpgw.log" 2>&1 </dev/null &
  echo $! >"$RUN/mpgw.pid"
  for _ in $(seq 100); do
    if ! mpgw_pid >/dev/null; then
      log "mpgw exited during start-up:"; tail -20 "$RUN/mpgw.log" >&2; return 1
    fi
    [[ -S $RUN/admin.sock ]] && grep -q "workers running" "$RUN/mpgw.log" && break
    sleep 0.1
  done
  grep -q "workers running" "$RUN/mpgw.log" || { log "mpgw did not come up:"; tail -20 "$RUN/mpgw.log" >&2; return 1; }
  log "mpgw running (pid $(cat "$RUN/mpgw.pid"), log $RUN/mpgw.log, admin $RUN/admin.sock)"
}

status() {
  for ns in "$CLI" "$GW" "$SRV"; do
    if ip netns list | grep -qw "$ns"; then
      echo "$ns: $(in_ns "$ns" ip -br link | awk '$1!="lo"{printf "%s(%s) ", $1, $2}')"
    else
      echo "$ns: absent"
    fi
  done
  local pid
  if pid=$(mpgw_pid); then
    echo "mpgw: running, pid $pid, log $RUN/mpgw.log"
    "$MPGW_BIN" stats --socket "$RUN/admin.sock" || true
  else
    echo "mpgw: not running"
  fi
}

[[ $EUID -eq 0 ]] || { echo "lab: must run as root (namespaces, veths)" >&2; exit 1; }
[[ -n ${MPGW_BIN:-} && $MPGW_BIN != "$ROOT/target/release/mpgw" ]] && MPGW_BIN_GIVEN=1

case ${1:-} in
  up)
    down >/dev/null
    topology
    log "topology up ($CLI, $GW, $SRV)"
    [[ -n ${NO_MPGW:-} ]] || start_mpgw ;;
  down) down ;;
  status) status ;;
  restart-mpgw) stop_mpgw; start_mpgw ;;
  *) echo "usage: $0 up|down|status|restart-mpgw" >&2; exit 2 ;;
esac
