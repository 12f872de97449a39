#!/usr/bin/env bash
# Relay benchmark on the veth lab: mpgw's concentrator against the Linux kernel's MPTCP
# terminated by a userspace TCP proxy (HAProxy under `mptcpize run`, and socat listening
# with IPPROTO_MPTCP), side by side in one run, on the same topology and the same core.
# It is the "veth lab goodput" and "relayed connections per second per core" rows of
# /work/shared/product.md's Performance table.
#
# What runs (LAB=relaybench by default; deploy/lab.sh builds the topology):
#   client ns $LAB-cli: c0 192.0.2.2 + c1 198.51.100.2, kernel MPTCP, limits subflows 4
#     add_addr_accepted 2, a `subflow` endpoint 198.51.100.2 dev c1 (as in
#     deploy/lab/tests/mptcp_helpers.py setup_mptcp_client). iperf3 runs under
#     `mptcpize run`; the connection-rate client opens IPPROTO_MPTCP sockets itself.
#   gateway ns $LAB-gw, one of three variants, each confined to core GW_CORE:
#     mpgw     mpgw drives gd0/gd1/gu0 through DPDK net_af_packet; the veths carry no
#              kernel address. Its worker is lcore 1 of deploy/lab/mpgw-lab.toml (DPDK
#              pins it to CPU 1; main lcore 0 is the control thread). Listener
#              192.0.2.1:5201 concentrator -> 203.0.113.2:5201; it announces
#              198.51.100.1 (ADD_ADDR, port flag "signal").
#     haproxy  mpgw stopped; kernel addresses 192.0.2.1/24 gd0, 198.51.100.1/24 gd1,
#              203.0.113.1/24 gu0; net.mptcp.enabled=1; `ip mptcp limits set subflows 4
#              add_addr_accepted 4`; with GW_SIGNAL=1 (default) a `signal` endpoint
#              198.51.100.1 dev gd1, mirroring mpgw's ADD_ADDR; connected routes tagged
#              `congctl cubic` (a child netns cannot default to cubic here).
#              `taskset -c GW_CORE mptcpize run haproxy -db -f cfg`, tcp mode, nbthread 1,
#              default buffers, bind 192.0.2.1:5201 -> server 203.0.113.2:5201 (and
#              bind 198.51.100.1:5201: a join to the announced address needs a listener;
#              socat listens on 0.0.0.0 and mpgw accepts it, so all three get the same
#              subflows: the initial one on c0 plus two joins on c1).
#     socat    same kernel set-up; `taskset -c GW_CORE socat -b 262144
#              SOCKET-LISTEN:2:262:x1451000000000000000000000000,reuseaddr,fork,backlog=1024
#              TCP4:203.0.113.2:5201` (backlog added: socat's default of 5 drops SYNs in
#              the connection-rate test).
#   server ns $LAB-srv: s0 203.0.113.2; `iperf3 -s -1` or the accept-and-close server.
#   Client and server programs are pinned to core EP_CORE.
#
# Measurements, per variant, REPS rounds, variants interleaved within each round
# (mpgw, haproxy, socat, mpgw, ...) so that drift on a shared machine hits all three:
#   up    `mptcpize run iperf3 -c 192.0.2.1 -p 5201 -t DURATION -C cubic -J`, receiver Mbit/s
#   down  the same with -R
#   cps   bench/scripts/cps_load.c (CPS_LOAD=c, built with gcc into OUT) keeps CPS_PARALLEL
#         MPTCP connections in flight from one epoll loop; CPS_LOAD=python runs
#         relay_vs_proxies_tool.py cps-client instead: CPS_PARALLEL processes, each opening MPTCP
#         sockets to 192.0.2.1:5201 one after the other for CPS_SECONDS: connect, send
#         1 byte, wait for EOF (the server accepted, read and closed, so the connection
#         really went through the relay), close. Completed connections per second.
# Also recorded per run: busy % of cores GW_CORE and EP_CORE (/proc/stat: everything but
# idle+iowait, so softirq work and other users of the machine count too), the kernel
# proxy process's own CPU (utime+stime, reaped children included: socat forks one per
# connection), and for the goodput runs the client's MPTCP evidence: MPCapableSYNACKRX,
# MPJoinSynAckRx and fallback deltas (nstat with a private history), the largest
# `ss -M` subflows: value mid-run (counts *additional* subflows) and the share of the
# payload bytes on c1. mpgw busy-polls: its core counts as 1 whole core.
# Prints the per-run values, medians, ratios mpgw/haproxy and mpgw/socat, CPU and
# evidence. Raw files (iperf3 JSON, logs, results.tsv) stay in OUT.
#
# Usage (root; needs haproxy socat iperf3 mptcpize: apt-get install -y haproxy socat iperf3 mptcpize):
#   bench/scripts/relay_vs_proxies.sh
# Environment:
#   MPGW_BIN      mpgw binary (default: build target/release/mpgw with
#                 `DPDK_SYS_REQUIRE=1 cargo build --release -q -p mpgw-control`)
#   LAB           lab name / namespace prefix (relaybench)
#   REPS          rounds (3)             DURATION     iperf3 seconds (5)
#   CPS_SECONDS   connection-rate seconds (5)
#   CPS_LOAD      c (default: bench/scripts/cps_load.c, the endpoints' core does kernel work,
#                 not Python) or python (relay_vs_proxies_tool.py)
#   CPS_PARALLEL  connections in flight (c: default 32) or client processes (python: 4)
#   RPS           1 (default): each namespace's packet receive work runs on its own
#                 side's core (RPS on every veth: gateway veths -> GW_CORE, endpoint veths
#                 -> EP_CORE). Without it a frame's receive processing runs in softirq on
#                 the core of whoever sent it: the client's core did the kernel gateway's
#                 receive work (HAProxy's and socat's measured at ~1.5 cores), and mpgw's
#                 TX kick ran the server's TCP receive on the gateway core.
#   GW_CORE       gateway core (1; must match the worker lcore of deploy/lab/mpgw-lab.toml)
#   EP_CORE       client/server core (0)
#   GW_SIGNAL     1: kernel gateway announces 198.51.100.1 like mpgw does; 0: no endpoint
#   VARIANTS      subset/order of "mpgw haproxy socat"
#   TW_FLUSH      1 (default): before every measurement, drop the TIME_WAIT sockets of
#                 all three namespaces (`ss -K state time-wait`), so no run inherits the
#                 previous variant's TIME_WAITs. Why: the server closes first, so its
#                 namespace keeps TIME_WAITs for 203.0.113.1:port -> :5201. A later SYN
#                 on the same 4-tuple is only accepted if its TSval is newer (PAWS).
#                 TSvals are monotonic per address pair within one process (Linux's and
#                 mpgw's alike), but not across variants or an mpgw restart (a new
#                 random offset): a refused SYN gets the old connection's ACK, a RST
#                 and a 1 s SYN RTO, and conn/s collapse. mpgw starts its local ports
#                 at a random place, which makes collisions rarer; TW_FLUSH=0 shows
#                 what is left of the effect.
#   PERF_CPS      a directory: `perf record -g` of the endpoints' core during each
#                 connection-rate run, <variant>-cps-<rep>.data (needs linux-perf)
#   OUT           directory for raw results (default: mktemp -d /tmp/relaybench.XXXXXX)
#   MAX_SECONDS   watchdog for the whole run (900)
# Everything it started is stopped on exit (trap): haproxy/socat/iperf3/servers, mpgw,
# the namespaces (deploy/lab.sh down) and mpgw's DPDK run directory /var/run/dpdk/$LAB.
set -euo pipefail

LAB=${LAB:-relaybench}
REPS=${REPS:-3}
DURATION=${DURATION:-5}
CPS_SECONDS=${CPS_SECONDS:-5}
CPS_LOAD=${CPS_LOAD:-c}
if [[ $CPS_LOAD == c ]]; then CPS_PARALLEL=${CPS_PARALLEL:-32}; else CPS_PARALLEL=${CPS_PARALLEL:-4}; fi
GW_CORE=${GW_CORE:-1}
EP_CORE=${EP_CORE:-0}
GW_SIGNAL=${GW_SIGNAL:-1}
VARIANTS=${VARIANTS:-"mpgw haproxy socat"}
TW_FLUSH=${TW_FLUSH:-1}
RPS=${RPS:-1}
MAX_SECONDS=${MAX_SECONDS:-900}
PORT=5201

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TOOL=$HERE/relay_vs_proxies_tool.py
LABSH=$ROOT/deploy/lab.sh
CLI=$LAB-cli GW=$LAB-gw SRV=$LAB-srv RUN=/run/$LAB
CLK_TCK=$(getconf CLK_TCK)

log() { echo "[$(date +%T)] $*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $EUID -eq 0 ]] || die "must run as root (namespaces, veths, DPDK)"
for c in haproxy socat iperf3 mptcpize taskset timeout nstat ss ip python3 ethtool; do
  command -v "$c" >/dev/null || die "$c not found (apt-get install -y haproxy socat iperf3 mptcpize)"
done
[[ -f $TOOL ]] || die "missing $TOOL"
[[ $(nproc) -gt $GW_CORE && $(nproc) -gt $EP_CORE ]] || die "cores $GW_CORE/$EP_CORE not available"

if [[ -z ${MPGW_BIN:-} ]]; then
  log "building mpgw (cargo build --release -p mpgw-control)"
  (cd "$ROOT" && DPDK_SYS_REQUIRE=1 timeout 1800 cargo build --release -q -p mpgw-control)
  MPGW_BIN=$ROOT/target/release/mpgw
fi
[[ -x $MPGW_BIN ]] || die "MPGW_BIN=$MPGW_BIN is not executable"
export MPGW_BIN

OUT=${OUT:-$(mktemp -d /tmp/relaybench.XXXXXX)}
mkdir -p "$OUT"
case $CPS_LOAD in
  c) gcc -O2 -Wall -o "$OUT/cps_load" "$HERE/cps_load.c" || die "cannot build cps_load.c (gcc)"
     CPS_CMD=("$OUT/cps_load") ;;
  python) CPS_CMD=(python3 "$TOOL") ;;
  *) die "CPS_LOAD must be c or python" ;;
esac
RES=$OUT/results.tsv
: >"$RES"

# ---------------------------------------------------------------- process bookkeeping
PIDS=()          # every background process we started (killed on exit)
PROXY_PID=""     # the current kernel proxy
WATCHDOG=""

kill_pid() { # pid: TERM, wait up to 3 s, KILL
  local pid=$1
  [[ -n $pid ]] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

stop_mpgw() {
  local pid
  [[ -f $RUN/mpgw.pid ]] || return 0
  pid=$(cat "$RUN/mpgw.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/mpgw.pid"
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill_pid "$pid"; done
  [[ -d $RUN ]] && cp "$RUN/mpgw.log" "$OUT/mpgw.log" 2>/dev/null
  stop_mpgw
  LAB=$LAB timeout 60 "$LABSH" down >/dev/null 2>&1
  [[ -d /var/run/dpdk/$LAB ]] && rm -rf "/var/run/dpdk/$LAB"
  [[ -n $WATCHDOG ]] && kill "$WATCHDOG" 2>/dev/null
  log "cleaned up (lab $LAB down); raw results in $OUT"
  exit "$rc"
}
trap cleanup EXIT
on_signal() {
  if [[ -n $WATCHDOG ]] && (( $(date +%s) - WATCHDOG_START >= MAX_SECONDS )); then
    log "watchdog: $MAX_SECONDS s elapsed, aborting"
  else
    log "interrupted"
  fi
  exit 130
}
trap on_signal INT TERM
# Watchdog: the whole run is bounded even if a step misbehaves.
# (Its output goes to /dev/null so that no leftover holds the caller's pipes; on TERM it
# takes its sleep along.)
( trap 'kill $sp 2>/dev/null; exit 0' TERM
  sleep "$MAX_SECONDS" & sp=$!
  wait $sp && kill -TERM $$ ) >/dev/null 2>&1 </dev/null &
WATCHDOG=$!
WATCHDOG_START=$(date +%s)

# shellcheck source=deploy/lab/common.sh
source "$ROOT/deploy/lab/common.sh"   # in_ns, kernel_blind

bg() { # ns core logfile cmd... -> LASTPID (pinned, in the namespace, tracked)
  local ns=$1 core=$2 logf=$3; shift 3
  ip netns exec "$ns" taskset -c "$core" "$@" >"$logf" 2>&1 </dev/null &
  LASTPID=$!
  PIDS+=("$LASTPID")
}

untrack() { # pid: kill and forget
  local pid=$1 p keep=()
  kill_pid "$pid"
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

wait_listen() { # ns port seconds: until a TCP listener on the port exists
  local ns=$1 port=$2 t=${3:-10}
  for _ in $(seq $((t * 20))); do
    [[ -n $(in_ns "$ns" ss -Hltn "sport = :$port" 2>/dev/null) ]] && return 0
    sleep 0.05
  done
  log "no listener on :$port in $ns after ${t}s"
  return 1
}

cpu_sample() { # -> "busy0 total0 busy1 total1" (jiffies) for EP_CORE and GW_CORE
  awk -v a="cpu$EP_CORE" -v b="cpu$GW_CORE" '
    $1==a||$1==b { t=0; for(i=2;i<=9;i++) t+=$i; busy=t-$5-$6; v[$1]=busy" "t }
    END { print v[a], v[b] }' /proc/stat
}
cpu_busy() { # before after -> "core0% core1%"
  python3 -c '
import sys
a = list(map(int, sys.argv[1].split())); b = list(map(int, sys.argv[2].split()))
pct = lambda i: 100.0 * (b[i] - a[i]) / max(1, b[i + 1] - a[i + 1])
print(f"{pct(0):.0f} {pct(2):.0f}")' "$1" "$2"
}
proc_ticks() { # pid -> utime+stime+cutime+cstime (ticks), 0 if none
  local pid=$1
  if [[ -n $pid && -r /proc/$pid/stat ]]; then
    awk '{ sub(/^.*\) /, ""); print $12+$13+$14+$15 }' "/proc/$pid/stat"
  else
    echo 0
  fi
}
now() { date +%s.%N; }
mpgw_poll_ns() { # -> "busy idle": mpgw's poll-loop nanoseconds so far (all workers)
  timeout 5 "$MPGW_BIN" stats --json --socket "$RUN/admin.sock" 2>/dev/null |
    python3 -c 'import json,sys; t=json.load(sys.stdin)["total"]; print(t["poll_busy_ns"], t["poll_idle_ns"])' 2>/dev/null ||
    echo "0 0"
}
poll_busy_pct() { # before after ("busy idle" each) -> % of poll time busy, "" without data
  python3 -c '
import sys
a = list(map(int, sys.argv[1].split())); b = list(map(int, sys.argv[2].split()))
busy, idle = b[0] - a[0], b[1] - a[1]
print(f"{100 * busy / (busy + idle):.0f}" if busy + idle > 0 else "")' "$1" "$2"
}

mptcp_counters() { in_ns "$CLI" python3 "$TOOL" nstat; }
delta() { # before-file after-file name
  awk -v n="$3" 'NR==FNR { a[$1]=$2; next } $1==n { print $2 - a[$1]; f=1 } END { if (!f) print 0 }' "$1" "$2"
}
ipis() { # -> "ep gw": function-call interrupts (RPS hands frames over with them) taken
  # by EP_CORE and by GW_CORE so far
  awk -v e=$((EP_CORE + 2)) -v g=$((GW_CORE + 2)) '$1 == "CAL:" { print $e, $g }' /proc/interrupts
}
server_packets() { # -> "rx tx": frames the server's veth received and sent
  in_ns "$SRV" cat /sys/class/net/s0/statistics/rx_packets /sys/class/net/s0/statistics/tx_packets | paste -sd' '
}
client_packets() { # -> "rx tx": frames the client's veths received and sent (c0 + c1)
  in_ns "$CLI" awk '{ s[FILENAME ~ /rx_/] += $1 } END { print s[1], s[0] }' \
    /sys/class/net/c0/statistics/rx_packets /sys/class/net/c1/statistics/rx_packets \
    /sys/class/net/c0/statistics/tx_packets /sys/class/net/c1/statistics/tx_packets
}
path_bytes() { # dir(up|down) -> "c0 c1"
  local f=tx_bytes
  [[ $1 == down ]] && f=rx_bytes
  in_ns "$CLI" cat "/sys/class/net/c0/statistics/$f" "/sys/class/net/c1/statistics/$f" | tr '\n' ' '
}

# --------------------------------------------------------------------------- the lab
lab_setup() {
  log "lab $LAB up (mpgw $MPGW_BIN)"
  LAB=$LAB timeout 90 "$LABSH" up >"$OUT/lab-up.log" 2>&1 || { cat "$OUT/lab-up.log" >&2; die "lab up failed"; }
  MPGW_ON=1
  # Client MPTCP as in mptcp_helpers.setup_mptcp_client.
  in_ns "$CLI" sysctl -qw net.mptcp.enabled=1
  in_ns "$CLI" ip mptcp limits set subflows 4 add_addr_accepted 2
  in_ns "$CLI" ip mptcp endpoint flush
  in_ns "$CLI" ip mptcp endpoint add 198.51.100.2 dev c1 subflow
  in_ns "$CLI" ip route get 192.0.2.1 from 198.51.100.2 oif c1 | grep -q "via 198.51.100.1 dev c1" ||
    die "no join route via c1 in $CLI"
  # Connected routes with cubic too (namespaces inherit the host's bbr and may not change it).
  in_ns "$CLI" ip route replace 192.0.2.0/24 dev c0 proto kernel scope link src 192.0.2.2 congctl cubic
  in_ns "$CLI" ip route replace 198.51.100.0/24 dev c1 proto kernel scope link src 198.51.100.2 congctl cubic
  in_ns "$CLI" ip route replace 192.0.2.0/24 dev c0 src 192.0.2.2 table 100 congctl cubic
  in_ns "$CLI" ip route replace 198.51.100.0/24 dev c1 src 198.51.100.2 table 101 congctl cubic
  in_ns "$SRV" ip route replace 203.0.113.0/24 dev s0 proto kernel scope link src 203.0.113.2 congctl cubic
  # Many short connections: a wide port range everywhere.
  for ns in "$CLI" "$GW" "$SRV"; do
    in_ns "$ns" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1
  done
  [[ $RPS == 1 ]] && rps_pin
  return 0
}

# Each namespace's packet receive work on its own side's core (RPS=1): frames a veth
# delivers are processed by the receiving namespace's core, not by the sender's.
# Without it, a frame's receive processing (kernel TCP/MPTCP, af_packet's copy into
# mpgw's ring) runs in softirq on the core of whoever transmitted it: the client's
# core does the kernel gateway's receive work for HAProxy and socat, and mpgw's TX
# kick runs the server's TCP receive on the gateway core.
rps_pin() {
  local gw_mask ep_mask dev
  gw_mask=$(printf '%x' $((1 << GW_CORE))); ep_mask=$(printf '%x' $((1 << EP_CORE)))
  for dev in gd0 gd1 gu0; do echo "$gw_mask" | in_ns "$GW" tee /sys/class/net/$dev/queues/rx-0/rps_cpus >/dev/null; done
  for dev in c0 c1; do echo "$ep_mask" | in_ns "$CLI" tee /sys/class/net/$dev/queues/rx-0/rps_cpus >/dev/null; done
  echo "$ep_mask" | in_ns "$SRV" tee /sys/class/net/s0/queues/rx-0/rps_cpus >/dev/null
}

gw_kernel_on() {
  # deploy/lab.sh keeps the gateway kernel blind to mpgw's veths (kernel_blind in
  # deploy/lab/common.sh); the kernel proxies need their frames.
  in_ns "$GW" nft delete table netdev mpgw_ports 2>/dev/null || true
  in_ns "$GW" ip addr add 192.0.2.1/24 dev gd0
  in_ns "$GW" ip addr add 198.51.100.1/24 dev gd1
  in_ns "$GW" ip addr add 203.0.113.1/24 dev gu0
  in_ns "$GW" ip route replace 192.0.2.0/24 dev gd0 proto kernel scope link src 192.0.2.1 congctl cubic
  in_ns "$GW" ip route replace 198.51.100.0/24 dev gd1 proto kernel scope link src 198.51.100.1 congctl cubic
  in_ns "$GW" ip route replace 203.0.113.0/24 dev gu0 proto kernel scope link src 203.0.113.1 congctl cubic
  in_ns "$GW" sysctl -qw net.mptcp.enabled=1
  in_ns "$GW" ip mptcp limits set subflows 4 add_addr_accepted 4
  in_ns "$GW" ip mptcp endpoint flush
  [[ $GW_SIGNAL == 1 ]] && in_ns "$GW" ip mptcp endpoint add 198.51.100.1 dev gd1 signal
  return 0
}
gw_kernel_off() {
  in_ns "$GW" ip mptcp endpoint flush
  for dev in gd0 gd1 gu0; do in_ns "$GW" ip addr flush dev "$dev"; done
  kernel_blind "$GW" gd0 gd1 gu0
}

switch_to() { # variant: make the gateway ready to serve 192.0.2.1:5201
  local v=$1
  if [[ -n $PROXY_PID ]]; then untrack "$PROXY_PID"; PROXY_PID=""; fi
  case $v in
    mpgw)
      if [[ -z ${MPGW_ON:-} ]]; then
        [[ -n ${KERNEL_ON:-} ]] && { gw_kernel_off; KERNEL_ON=""; }
        LAB=$LAB timeout 60 "$LABSH" restart-mpgw >>"$OUT/lab-up.log" 2>&1 ||
          { tail -20 "$RUN/mpgw.log" >&2; die "mpgw did not start"; }
        MPGW_ON=1
      fi
      local pid; pid=$(cat "$RUN/mpgw.pid")
      { echo "== mpgw pid $pid threads (name, allowed CPUs, last CPU)"
        for t in /proc/"$pid"/task/*; do
          printf '%s %s %s\n' "$(cat "$t/comm")" "$(awk '/Cpus_allowed_list/{print $2}' "$t/status")" \
            "$(awk '{ sub(/^.*\) /, ""); print $37 }' "$t/stat")"
        done; } >>"$OUT/mpgw-threads.txt" 2>/dev/null || true
      ;;
    haproxy|socat)
      if [[ -n ${MPGW_ON:-} ]]; then
        stop_mpgw; MPGW_ON=""
      fi
      [[ -n ${KERNEL_ON:-} ]] || { gw_kernel_on; KERNEL_ON=1; }
      if [[ $v == haproxy ]]; then
        cat >"$OUT/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend relay
    bind 192.0.2.1:$PORT
    # the announced address too, so the ADD_ADDR join is accepted (as by socat and mpgw)
    bind 198.51.100.1:$PORT
    default_backend srv
backend srv
    server s1 203.0.113.2:$PORT
EOF
        bg "$GW" "$GW_CORE" "$OUT/haproxy.log" mptcpize run haproxy -db -f "$OUT/haproxy.cfg"
      else
        # sockaddr_in without its family: port 5201 = 0x1451, 0.0.0.0, 8 zero bytes.
        bg "$GW" "$GW_CORE" "$OUT/socat.log" socat -b 262144 \
          "SOCKET-LISTEN:2:262:x$(printf '%04x' $PORT)000000000000000000000000,reuseaddr,fork,backlog=1024" \
          "TCP4:203.0.113.2:$PORT"
      fi
      PROXY_PID=$LASTPID
      wait_listen "$GW" "$PORT" 10 || { cat "$OUT/$v.log" >&2; die "$v did not listen"; }
      [[ $(cat "/proc/$PROXY_PID/comm" 2>/dev/null) == "$v" ]] ||
        log "warning: pid $PROXY_PID is $(cat "/proc/$PROXY_PID/comm" 2>/dev/null), not $v (CPU figures may be off)"
      ;;
  esac
}

foreign_pollers() { # -> "pid:comm:cpus ..." of DPDK busy-pollers that are not ours
  local mine="" p out=""
  [[ -f $RUN/mpgw.pid ]] && mine=$(cat "$RUN/mpgw.pid")
  for p in $(ps -eo pid=,comm= | awk '$2 ~ /^(mpgw.*|dpdk-testpmd|testpmd|port_fwd|tcp_bulk|rte-worker.*)$/ { print $1 }'); do
    [[ $p == "$mine" || $out == *" $p:"* ]] && continue
    # allowed CPUs of every thread (a DPDK worker is pinned apart from the main thread)
    out+=" $p:$(cat "/proc/$p/comm" 2>/dev/null):cpus=$(cat /proc/"$p"/task/*/status 2>/dev/null |
      awk '/Cpus_allowed_list/{print $2}' | sort -u | paste -sd/)"
  done
  echo "${out# }"
}

# ------------------------------------------------------------------------ measurements
record() { # variant test rep value core0 core1 proc_cpu extra
  local f; f=$(foreign_pollers)
  [[ -n $f ]] && log "  warning: other DPDK busy-pollers were running: $f"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s,foreign=%s\n' "$@" "$(wc -w <<<"$f")" >>"$RES"
}

tw_flush() { # drop TIME_WAIT sockets in the lab's namespaces (TW_FLUSH=1)
  [[ $TW_FLUSH == 1 ]] || return 0
  local ns
  for ns in "$CLI" "$GW" "$SRV"; do
    timeout 10 ip netns exec "$ns" ss -K state time-wait >/dev/null 2>&1 || true
  done
}

measure_cps() { # variant rep
  local v=$1 rep=$2 spid out=$OUT/$v-cps-$rep.json
  tw_flush
  bg "$SRV" "$EP_CORE" "$OUT/cps-server.log" "${CPS_CMD[@]}" cps-server 203.0.113.2 "$PORT"
  spid=$LASTPID
  wait_listen "$SRV" "$PORT" 10 || { untrack "$spid"; return 1; }
  # Warm-up: ARP, the relay path; also proves it serves end to end.
  local warm
  warm=$(timeout 20 ip netns exec "$CLI" taskset -c "$EP_CORE" "${CPS_CMD[@]}" cps-client 192.0.2.1 "$PORT" 0.5 1 || true)
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if d["ok"] > 0 else 1)' "$warm" 2>/dev/null ||
    log "warning: $v warm-up connections failed: $warm"
  local nb na c0 c1 p0 p1 t0 t1 g0 g1 k0 k1 s0 s1 i0 i1 per
  tw_flush   # the warm-up's own TIME_WAITs too
  nb=$(mktemp); na=$(mktemp)
  mptcp_counters >"$nb"
  [[ $v == mpgw ]] && g0=$(mpgw_poll_ns)
  k0=$(client_packets); s0=$(server_packets); i0=$(ipis)
  p0=$(proc_ticks "$PROXY_PID"); c0=$(cpu_sample); t0=$(now)
  local perf_pid=""
  if [[ -n ${PERF_CPS:-} ]]; then
    perf record -q -C "$EP_CORE" -g -o "$PERF_CPS/$v-cps-$rep.data" -- sleep "$CPS_SECONDS" \
      >/dev/null 2>&1 & perf_pid=$!
  fi
  timeout $((CPS_SECONDS + 30)) ip netns exec "$CLI" taskset -c "$EP_CORE" \
    "${CPS_CMD[@]}" cps-client 192.0.2.1 "$PORT" "$CPS_SECONDS" "$CPS_PARALLEL" >"$out" 2>"$OUT/$v-cps-$rep.err" || true
  c1=$(cpu_sample); t1=$(now); p1=$(proc_ticks "$PROXY_PID")
  [[ -n $perf_pid ]] && wait "$perf_pid"
  k1=$(client_packets); s1=$(server_packets); i1=$(ipis)
  [[ $v == mpgw ]] && g1=$(mpgw_poll_ns)
  mptcp_counters >"$na"
  untrack "$spid"
  local joins; joins=$(delta "$nb" "$na" MPTcpExtMPJoinSynAckRx)
  rm -f "$nb" "$na"
  local busy pcpu line
  busy=$(cpu_busy "$c0" "$c1")
  pcpu=$(python3 -c "print(f'{($p1 - $p0) / $CLK_TCK / ($t1 - $t0):.3f}')")
  [[ $v == mpgw ]] && pcpu=""
  line=$(python3 "$TOOL" cps-parse "$out" "$joins")
  [[ $v == mpgw ]] && line+=",pollbusy=$(poll_busy_pct "$g0" "$g1")"
  line+=",clienttw=$(in_ns "$CLI" ss -Htan state time-wait | wc -l)"
  per() { python3 -c '
import json, sys
a = list(map(int, sys.argv[1].split())); b = list(map(int, sys.argv[2].split()))
ok = json.load(open(sys.argv[3])).get("ok", 0)
print(f"{(b[0] - a[0]) / max(1, ok):.1f}/{(b[1] - a[1]) / max(1, ok):.1f}")' "$1" "$2" "$out" 2>/dev/null; }
  line+=",clientpkts=$(per "$k0" "$k1"),serverpkts=$(per "$s0" "$s1"),ipis=$(per "$i0" "$i1")"
  record "$v" cps "$rep" "${line%%$'\t'*}" ${busy% *} ${busy#* } "$pcpu" "${line#*$'\t'}"
  log "  $v cps rep $rep: ${line%%$'\t'*} conn/s (${line#*$'\t'}; core$GW_CORE ${busy#* }%, core$EP_CORE ${busy% *}%)"
}

measure_iperf() { # variant dir rep
  local v=$1 dir=$2 rep=$3 spid json=$OUT/$v-$2-$3.json rflag=()
  [[ $dir == down ]] && rflag=(-R)
  tw_flush
  bg "$SRV" "$EP_CORE" "$OUT/iperf3-server.log" iperf3 -s -1 -p "$PORT"
  spid=$LASTPID
  wait_listen "$SRV" "$PORT" 10 || { untrack "$spid"; return 1; }
  local nb na c0 c1 p0 p1 t0 t1 b0 b1 g0 g1 cpid sub=0 s poll=""
  nb=$(mktemp); na=$(mktemp)
  mptcp_counters >"$nb"
  b0=$(path_bytes "$dir")
  [[ $v == mpgw ]] && g0=$(mpgw_poll_ns)
  p0=$(proc_ticks "$PROXY_PID"); c0=$(cpu_sample); t0=$(now)
  timeout $((DURATION + 25)) ip netns exec "$CLI" taskset -c "$EP_CORE" mptcpize run \
    iperf3 -c 192.0.2.1 -p "$PORT" -t "$DURATION" -C cubic -J "${rflag[@]}" >"$json" 2>"$OUT/$v-$dir-$rep.err" &
  cpid=$!
  # `ss -M` mid-run: the largest "subflows:" (additional subflows) of the client's sockets.
  for frac in 0.4 0.8; do
    sleep "$(python3 -c "print($DURATION * $frac / 2 + 0.3)")"
    s=$(in_ns "$CLI" ss -MniH "dport = :$PORT" 2>/dev/null | grep -o 'subflows:[0-9]*' | cut -d: -f2 | sort -n | tail -1)
    [[ -n $s && $s -gt $sub ]] && sub=$s
  done
  wait "$cpid" || true
  c1=$(cpu_sample); t1=$(now)
  [[ $v == mpgw ]] && { g1=$(mpgw_poll_ns); poll=",pollbusy=$(poll_busy_pct "$g0" "$g1")"; }
  sleep 0.2   # let socat reap its child so its CPU is counted
  p1=$(proc_ticks "$PROXY_PID")
  b1=$(path_bytes "$dir")
  mptcp_counters >"$na"
  untrack "$spid"
  local cap join fb busy pcpu share parsed val retr err=""
  cap=$(delta "$nb" "$na" MPTcpExtMPCapableSYNACKRX)
  join=$(delta "$nb" "$na" MPTcpExtMPJoinSynAckRx)
  fb=$(( $(delta "$nb" "$na" MPTcpExtMPCapableFallbackSYNACK) + $(delta "$nb" "$na" MPTcpExtMPCapableFallbackACK) ))
  rm -f "$nb" "$na"
  busy=$(cpu_busy "$c0" "$c1")
  pcpu=$(python3 -c "print(f'{($p1 - $p0) / $CLK_TCK / ($t1 - $t0):.3f}')")
  [[ $v == mpgw ]] && pcpu=""
  share=$(python3 -c '
import sys
a = list(map(int, sys.argv[1].split())); b = list(map(int, sys.argv[2].split()))
d0, d1 = b[0] - a[0], b[1] - a[1]
print(f"{100 * d1 / max(1, d0 + d1):.0f}")' "$b0" "$b1")
  parsed=$(python3 "$TOOL" iperf "$json")
  val=${parsed%% *}; retr=${parsed#* }
  [[ $val == nan ]] && { err=",err=$retr"; retr=-1; log "  $v $dir rep $rep failed: $(head -c 300 "$OUT/$v-$dir-$rep.err") $parsed"; }
  record "$v" "$dir" "$rep" "$val" ${busy% *} ${busy#* } "$pcpu" \
    "capsynack=$cap,joinsynack=$join,fallback=$fb,sssub=$sub,c1share=$share,retr=$retr$err$poll"
  log "  $v $dir rep $rep: $val Mbit/s (joins $join, ss subflows $sub, path2 $share %, core$GW_CORE ${busy#* }%, core$EP_CORE ${busy% *}%)"
}

# -------------------------------------------------------------------------------- run
{ echo "== before: $(uptime)"; top -bn1 | head -20; } >"$OUT/machine.txt" 2>&1
log "machine: $(uptime | sed 's/.*load/load/') ($(nproc) CPUs); results in $OUT"
START=$(date +%s)
lab_setup
for rep in $(seq "$REPS"); do
  log "round $rep/$REPS"
  for v in $VARIANTS; do
    switch_to "$v"
    measure_cps "$v" "$rep" || log "  $v cps rep $rep: server did not come up"
    measure_iperf "$v" up "$rep" || log "  $v up rep $rep: server did not come up"
    measure_iperf "$v" down "$rep" || log "  $v down rep $rep: server did not come up"
    if [[ $v == mpgw ]]; then
      timeout 10 "$MPGW_BIN" stats --socket "$RUN/admin.sock" >"$OUT/mpgw-stats-$rep.txt" 2>&1 || true
    fi
  done
done
{ echo "== after: $(uptime)"; top -bn1 | head -20; } >>"$OUT/machine.txt" 2>&1

echo
echo "relay_vs_proxies: lab $LAB, $REPS rounds, iperf3 ${DURATION}s, cps ${CPS_SECONDS}s x $CPS_PARALLEL ($CPS_LOAD load), RPS=$RPS,"
echo "gateway on core $GW_CORE, endpoints on core $EP_CORE, GW_SIGNAL=$GW_SIGNAL, TW_FLUSH=$TW_FLUSH, $(($(date +%s) - START)) s"
echo "machine load before: $(sed -n 's/.*load average: //p' "$OUT/machine.txt" | head -1), after: $(uptime | sed 's/.*load average: //')"
REPS_NOTE="$REPS reps" python3 "$TOOL" report "$RES"
