#!/usr/bin/env bash
# Runs a P2PShare cluster of N peers on this machine (Orleans localhost clustering).
#
#   cluster.sh up [N]        build if needed, start peer-1..peer-N (default 3), wait until all are listed
#   cluster.sh down          stop every peer (TERM, then KILL after a deadline); data and logs stay
#   cluster.sh status        name, PID, ports and state of each peer
#   cluster.sh kill NAME     SIGKILL one peer (a crash, for failure tests)
#   cluster.sh start NAME    start one stopped peer of the cluster again
#   cluster.sh restart NAME  stop one peer gracefully and start it again
#   cluster.sh build         build the peer host and the CLI (Release) if sources changed
#
# Environment:
#   P2PSHARE_CLUSTER_DIR        pid files, logs and data (default <repo>/.local/cluster);
#                               wipe a cluster with: rm -rf .local/cluster
#   P2PSHARE_SILO_PORT_BASE     silo port of peer-1; peer-k uses base+k-1 (default 11111)
#   P2PSHARE_GATEWAY_PORT_BASE  gateway port of peer-1; peer-k uses base+k-1 (default 30000)
#   P2PSHARE_LEGACY_PORT_BASE   seed-protocol (original Python system) peer port of peer-1; peer-k
#                               uses base+k-1 (default 9000; "off": no seed-protocol ports)
#   P2PSHARE_TRACKER_LEGACY_PORT
#                               seed-protocol tracker port, served by peer-1 (default 8888; "off": none)
#   P2PSHARE_RESP_PORT_BASE     Redis-protocol (RESP2) port of peer-1, on 127.0.0.1; peer-k uses base+k-1
#                               (default 26379, clear of a real Redis on 6379; "off": no Redis ports)
#   P2PSHARE_HTTP_PORT_BASE     HTTP port of peer-1 (status page, /api/status, /healthz, /readyz,
#                               /metrics); peer-k uses base+k-1 (default 5000; "off": no HTTP)
#   P2PSHARE_HTTP_BIND          address of the HTTP ports (default 127.0.0.1)
#   P2PSHARE_DASHBOARD          "on" (default): every peer also serves the Orleans Dashboard at
#                               /dashboard/ on its HTTP port; "off": not
#   P2PSHARE_START_TIMEOUT      seconds `up`/`start` wait for the peers (default 90)
#   P2PSHARE_STOP_TIMEOUT       seconds a peer gets to exit after SIGTERM (default 20)
#
# Exit codes: 0 ok, 1 failure (build, a peer died, timeout), 2 usage, 3 refused (already running,
# port in use).
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd -- "$script_dir/../.." && pwd)

cluster_dir=${P2PSHARE_CLUSTER_DIR:-$repo_root/.local/cluster}
silo_base=${P2PSHARE_SILO_PORT_BASE:-11111}
gateway_base=${P2PSHARE_GATEWAY_PORT_BASE:-30000}
legacy_base=${P2PSHARE_LEGACY_PORT_BASE:-9000}
tracker_legacy_port=${P2PSHARE_TRACKER_LEGACY_PORT:-8888}
resp_base=${P2PSHARE_RESP_PORT_BASE:-26379}
http_base=${P2PSHARE_HTTP_PORT_BASE:-5000}
http_bind=${P2PSHARE_HTTP_BIND:-127.0.0.1}
dashboard=${P2PSHARE_DASHBOARD:-on}
start_timeout=${P2PSHARE_START_TIMEOUT:-90}
stop_timeout=${P2PSHARE_STOP_TIMEOUT:-20}

peer_dll=$repo_root/src/P2PShare.Peer/bin/Release/net10.0/p2pshare-peer.dll
cli_dll=$repo_root/src/P2PShare.Cli/bin/Release/net10.0/p2pshare.dll

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

readonly EXIT_FAILED=1 EXIT_USAGE=2 EXIT_REFUSED=3

# shellcheck source=../lib/cluster-common.sh
source "$script_dir/../lib/cluster-common.sh"

usage() {
  sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2
  exit "$EXIT_USAGE"
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# Absolute paths, so pid files and logs stay valid whatever the caller's cwd.
mkdir_abs() {
  mkdir -p -- "$1"
  (cd -- "$1" && pwd)
}

check_port_settings() {
  if ! is_uint "$silo_base" || ! is_uint "$gateway_base"; then
    die "$EXIT_USAGE" "port bases must be integers"
  fi
  if [[ $legacy_base != off ]] && ! is_uint "$legacy_base"; then
    die "$EXIT_USAGE" "P2PSHARE_LEGACY_PORT_BASE must be an integer or 'off', got '$legacy_base'"
  fi
  if [[ $resp_base != off ]] && ! is_uint "$resp_base"; then
    die "$EXIT_USAGE" "P2PSHARE_RESP_PORT_BASE must be an integer or 'off', got '$resp_base'"
  fi
  if [[ $tracker_legacy_port != off ]] && ! is_uint "$tracker_legacy_port"; then
    die "$EXIT_USAGE" "P2PSHARE_TRACKER_LEGACY_PORT must be an integer or 'off', got '$tracker_legacy_port'"
  fi
  if [[ $http_base != off ]] && ! is_uint "$http_base"; then
    die "$EXIT_USAGE" "P2PSHARE_HTTP_PORT_BASE must be an integer or 'off', got '$http_base'"
  fi
  if [[ $dashboard != on && $dashboard != off ]]; then
    die "$EXIT_USAGE" "P2PSHARE_DASHBOARD must be 'on' or 'off', got '$dashboard'"
  fi
}

run_dir() { echo "$cluster_dir/run"; }
log_file() { echo "$cluster_dir/logs/$1.log"; }
pid_file() { echo "$cluster_dir/run/$1.pid"; }
data_dir() { echo "$cluster_dir/data/$1"; }

# The cluster's size and port bases are recorded by `up`, so that status/down/start/kill use the
# ports the cluster really has, whatever the environment says now.
load_cluster_env() {
  local env_file=$cluster_dir/cluster.env
  [[ -f $env_file ]] || return 1
  local key value
  while IFS='=' read -r key value; do
    case $key in
      size) cluster_size=$value ;;
      silo_base) silo_base=$value ;;
      gateway_base) gateway_base=$value ;;
      legacy_base) legacy_base=$value ;;
      tracker_legacy_port) tracker_legacy_port=$value ;;
      resp_base) resp_base=$value ;;
      http_base) http_base=$value ;;
      http_bind) http_bind=$value ;;
      dashboard) dashboard=$value ;;
    esac
  done <"$env_file"
  is_uint "${cluster_size:-}" && is_uint "$silo_base" && is_uint "$gateway_base"
}

save_cluster_env() {
  printf 'size=%s\nsilo_base=%s\ngateway_base=%s\nlegacy_base=%s\ntracker_legacy_port=%s\nresp_base=%s\nhttp_base=%s\nhttp_bind=%s\ndashboard=%s\n' \
    "$cluster_size" "$silo_base" "$gateway_base" "$legacy_base" "$tracker_legacy_port" "$resp_base" "$http_base" "$http_bind" "$dashboard" \
    >"$cluster_dir/cluster.env"
}

# The ports peer number $1 listens on: silo, gateway, and the seed-protocol and HTTP ones when enabled.
peer_ports() {
  local index=$1
  echo $((silo_base + index - 1)) $((gateway_base + index - 1))
  [[ $legacy_base == off ]] || echo $((legacy_base + index - 1))
  [[ $resp_base == off ]] || echo $((resp_base + index - 1))
  [[ $http_base == off ]] || echo $((http_base + index - 1))
  if ((index == 1)) && [[ $tracker_legacy_port != off ]]; then echo "$tracker_legacy_port"; fi
}

# A PID counts only while it is still our peer: a recycled PID or a zombie (empty cmdline) is not.
peer_alive_pid() {
  local name=$1 pid cmdline
  local file
  file=$(pid_file "$name")
  [[ -f $file ]] || return 1
  pid=$(<"$file")
  is_uint "$pid" || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *p2pshare-peer*"--name $name "*"--data-dir $(data_dir "$name") "* ]] || return 1
  echo "$pid"
}

port_in_use() {
  local port=$1
  if command -v ss >/dev/null; then
    [[ -n $(ss -Htln "sport = :$port") ]]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
  fi
}

# Sources newer than the stamp of our last successful build → run the (incremental) build again.
# A lock serialises concurrent callers (e.g. two test fixtures).
build_if_needed() {
  local state_dir=$repo_root/.local
  mkdir -p -- "$state_dir"
  local stamp=$state_dir/build.stamp build_log=$state_dir/build.log
  (
    flock 9
    if [[ -f $peer_dll && -f $cli_dll && -f $stamp ]] &&
      [[ -z $(find "$repo_root/src" "$repo_root"/Directory.*.props "$repo_root/global.json" \
        \( -name bin -o -name obj \) -prune -o -type f -newer "$stamp" -print -quit) ]]; then
      exit 0
    fi
    echo "building peer host and CLI (Release)..." >&2
    local next_stamp=$stamp.next
    touch -- "$next_stamp"
    # Build servers outlive the build: give them no descriptor of ours (pipes, the lock).
    local project
    for project in src/P2PShare.Peer/P2PShare.Peer.csproj src/P2PShare.Cli/P2PShare.Cli.csproj; do
      if ! dotnet build "$repo_root/$project" -c Release -nologo -v quiet \
        </dev/null >"$build_log" 2>&1 9>&-; then
        tail -n 40 -- "$build_log" >&2
        echo "cluster.sh: build of $project failed (full log: $build_log)" >&2
        exit "$EXIT_FAILED"
      fi
    done
    mv -f -- "$next_stamp" "$stamp"
  ) 9>"$state_dir/build.lock"
}

# The cluster's own CLI calls go to peer-1's gateway, whatever P2PSHARE_GATEWAYS says.
cli() {
  timeout 20 env -u P2PSHARE_GATEWAYS dotnet "$cli_dll" --gateway "127.0.0.1:$gateway_base" "$@"
}

start_peer() {
  local name=$1 index
  index=$(peer_index "$name")
  local silo=$((silo_base + index - 1)) gateway=$((gateway_base + index - 1))
  local log
  log=$(log_file "$name")
  mkdir -p -- "$(data_dir "$name")" "$(dirname -- "$log")" "$(run_dir)"
  # Readiness is read from the log, so each run starts a fresh one; the previous run's stays beside it.
  [[ -f $log ]] && mv -f -- "$log" "$log.prev"
  local -a launcher args
  mapfile -t launcher < <(peer_command)
  args=(--name "$name" --silo-port "$silo" --gateway-port "$gateway" --data-dir "$(data_dir "$name")")
  [[ $legacy_base == off ]] || args+=(--legacy-port $((legacy_base + index - 1)))
  if ((index == 1)) && [[ $tracker_legacy_port != off ]]; then args+=(--tracker-legacy-port "$tracker_legacy_port"); fi
  [[ $resp_base == off ]] || args+=(--resp-port $((resp_base + index - 1)))
  if [[ $http_base != off ]]; then
    args+=(--http-port $((http_base + index - 1)) --http-bind "$http_bind")
    [[ $dashboard == off ]] || args+=(--dashboard)
  fi
  if ((index > 1)); then
    args+=(--primary "127.0.0.1:$silo_base")
  fi
  # setsid: the peer is not in the caller's process group, so a Ctrl-C or a closed terminal
  # there does not stop it. A background job of a script is never a group leader, so setsid
  # execs in place and $! is the peer's PID.
  setsid "${launcher[@]}" "${args[@]}" </dev/null >"$log" 2>&1 &
  echo "$!" >"$(pid_file "$name")"
  echo "started $name (pid $!, silo $silo, gateway $gateway)"
}

wait_ready() {
  local name=$1 deadline=$2 log
  log=$(log_file "$name")
  until grep -q 'is ready' -- "$log" 2>/dev/null; do
    peer_alive_pid "$name" >/dev/null || { fail_peer_died "$name"; return; }
    ((SECONDS < deadline)) || {
      echo "cluster.sh: $name not ready after ${start_timeout}s; last lines of $log:" >&2
      tail -n 30 -- "$log" >&2
      return "$EXIT_FAILED"
    }
    sleep 0.2
  done
}

all_peer_names() {
  local i
  for ((i = 1; i <= cluster_size; i++)); do echo "peer-$i"; done
}

# TERMs the given peers together, waits for them with one deadline, KILLs the rest.
stop_peers() {
  local -a pids=() names=()
  local name pid
  for name in "$@"; do
    if pid=$(peer_alive_pid "$name"); then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
      names+=("$name")
      echo "stopping $name (pid $pid)"
    fi
  done
  local deadline=$((SECONDS + stop_timeout)) i pending
  while :; do
    pending=0
    for i in "${!names[@]}"; do
      peer_alive_pid "${names[$i]}" >/dev/null && pending=1
    done
    ((pending == 0 || SECONDS >= deadline)) && break
    sleep 0.2
  done
  for i in "${!names[@]}"; do
    if peer_alive_pid "${names[$i]}" >/dev/null; then
      echo "cluster.sh: ${names[$i]} did not exit within ${stop_timeout}s; sending SIGKILL" >&2
      kill -KILL "${pids[$i]}" 2>/dev/null || true
    fi
  done
  for name in "$@"; do rm -f -- "$(pid_file "$name")"; done
}

cmd_down() {
  if ! load_cluster_env; then
    echo "no cluster in $cluster_dir"
    return 0
  fi
  local -a others=()
  local name
  while read -r name; do
    [[ $name == peer-1 ]] || others+=("$name")
  done < <(all_peer_names)
  # Primary last: it holds the localhost cluster's membership.
  ((${#others[@]} == 0)) || stop_peers "${others[@]}"
  stop_peers peer-1
  echo "cluster stopped (data and logs kept in $cluster_dir)"
}

# The primary first and alone: the others join through its silo.
start_all() {
  local deadline=$1 name
  local -a names
  mapfile -t names < <(all_peer_names)
  start_peer peer-1 || return
  wait_ready peer-1 "$deadline" || return
  for name in "${names[@]:1}"; do
    start_peer "$name" || return
  done
  wait_listed "$deadline" "${names[@]}"
}

cmd_up() {
  local size=${1:-3}
  if ! is_uint "$size" || ((size < 1)); then
    die "$EXIT_USAGE" "peer count must be a positive integer, got '$size'"
  fi

  local recorded_size=0
  if load_cluster_env; then recorded_size=$cluster_size; fi
  local pid i port
  for ((i = 1; i <= (size > recorded_size ? size : recorded_size); i++)); do
    if pid=$(peer_alive_pid "peer-$i"); then
      die "$EXIT_REFUSED" "a cluster is already running from $cluster_dir (peer-$i, pid $pid); run '$0 down' first"
    fi
  done
  # `up` takes the ports from the environment, not from the previous run.
  silo_base=${P2PSHARE_SILO_PORT_BASE:-11111}
  gateway_base=${P2PSHARE_GATEWAY_PORT_BASE:-30000}
  legacy_base=${P2PSHARE_LEGACY_PORT_BASE:-9000}
  tracker_legacy_port=${P2PSHARE_TRACKER_LEGACY_PORT:-8888}
  resp_base=${P2PSHARE_RESP_PORT_BASE:-26379}
  http_base=${P2PSHARE_HTTP_PORT_BASE:-5000}
  http_bind=${P2PSHARE_HTTP_BIND:-127.0.0.1}
  dashboard=${P2PSHARE_DASHBOARD:-on}
  check_port_settings
  cluster_size=$size
  for ((i = 1; i <= size; i++)); do
    for port in $(peer_ports "$i"); do
      port_in_use "$port" && die "$EXIT_REFUSED" "port $port is already in use; choose other ports with P2PSHARE_SILO_PORT_BASE / P2PSHARE_GATEWAY_PORT_BASE / P2PSHARE_LEGACY_PORT_BASE / P2PSHARE_TRACKER_LEGACY_PORT / P2PSHARE_RESP_PORT_BASE / P2PSHARE_HTTP_PORT_BASE"
    done
  done

  build_if_needed
  mkdir -p -- "$(run_dir)"
  save_cluster_env

  local started=$SECONDS deadline=$((SECONDS + start_timeout))
  trap 'echo "cluster.sh: interrupted; stopping the peers" >&2; cmd_down >&2; exit 130' INT TERM
  if ! start_all "$deadline"; then
    echo "cluster.sh: start failed; stopping the peers that did start" >&2
    cmd_down >&2
    exit "$EXIT_FAILED"
  fi
  trap - INT TERM
  echo "cluster of $size peers up in $((SECONDS - started))s; logs and data in $cluster_dir"
  if [[ $http_base != off ]]; then
    echo "status page: http://$(url_host):$http_base/ (peer-k on port $http_base+k-1)$([[ $dashboard == off ]] || echo "; Orleans Dashboard: http://$(url_host):$http_base/dashboard/")"
  fi
  cli peers
}

cmd_status() {
  if ! load_cluster_env; then
    echo "no cluster in $cluster_dir"
    return 0
  fi
  local name index pid state
  local legacy redis http
  printf '%-10s %8s %6s %8s %7s %6s %6s  %s\n' NAME PID SILO GATEWAY LEGACY REDIS HTTP STATE
  while read -r name; do
    index=$(peer_index "$name")
    if pid=$(peer_alive_pid "$name"); then state=$(peer_state "$index"); else pid=-; state=stopped; fi
    legacy=-
    [[ $legacy_base == off ]] || legacy=$((legacy_base + index - 1))
    redis=-
    [[ $resp_base == off ]] || redis=$((resp_base + index - 1))
    http=-
    [[ $http_base == off ]] || http=$((http_base + index - 1))
    printf '%-10s %8s %6s %8s %7s %6s %6s  %s\n' "$name" "$pid" $((silo_base + index - 1)) $((gateway_base + index - 1)) "$legacy" "$redis" "$http" "$state"
  done < <(all_peer_names)
  [[ $http_base == off ]] || echo "status page: http://$(url_host):$http_base/$([[ $dashboard == off ]] || echo " (Orleans Dashboard at /dashboard/)")"
  [[ $tracker_legacy_port == off ]] || echo "seed-protocol tracker port: $tracker_legacy_port (on peer-1)"
}

# Hosts in URLs: a wildcard bind address is reached through loopback.
url_host() {
  case $http_bind in
    0.0.0.0 | ::) echo 127.0.0.1 ;;
    *:*) echo "[$http_bind]" ;;
    *) echo "$http_bind" ;;
  esac
}

# A running peer's state as its /readyz says: ready, or not ready with the reason (without HTTP: running).
peer_state() {
  local index=$1 reply code reason
  if [[ $http_base == off ]] || ! command -v curl >/dev/null; then echo running; return; fi
  reply=$(curl -sS --max-time 3 -w '\n%{http_code}' "http://$(url_host):$((http_base + index - 1))/readyz" 2>/dev/null) || reply=$'\n000'
  code=${reply##*$'\n'}
  case $code in
    200) echo ready ;;
    503)
      reason=$(sed -n 's/.*"reason":"\([^"]*\)".*/\1/p' <<<"${reply%$'\n'*}")
      echo "running, not ready: ${reason:-no reason given}"
      ;;
    *) echo "running, HTTP not answering" ;;
  esac
}

require_member() {
  local name=$1 index
  load_cluster_env || die "$EXIT_FAILED" "no cluster in $cluster_dir; run '$0 up' first"
  index=$(peer_index "$name")
  ((index <= cluster_size)) || die "$EXIT_USAGE" "$name is not in this cluster (peer-1..peer-$cluster_size)"
}

cmd_kill() {
  local name=$1 pid
  require_member "$name"
  pid=$(peer_alive_pid "$name") || die "$EXIT_FAILED" "$name is not running"
  kill -KILL "$pid"
  local deadline=$((SECONDS + 10))
  while peer_alive_pid "$name" >/dev/null; do
    ((SECONDS < deadline)) || die "$EXIT_FAILED" "$name (pid $pid) still alive after SIGKILL"
    sleep 0.1
  done
  rm -f -- "$(pid_file "$name")"
  echo "killed $name (pid $pid)"
}

cmd_start() {
  local name=$1 index pid
  require_member "$name"
  index=$(peer_index "$name")
  if pid=$(peer_alive_pid "$name"); then die "$EXIT_REFUSED" "$name is already running (pid $pid)"; fi
  local port
  for port in $(peer_ports "$index"); do
    port_in_use "$port" && die "$EXIT_REFUSED" "port $port is already in use"
  done
  build_if_needed
  local deadline=$((SECONDS + start_timeout))
  if ! { start_peer "$name" && wait_ready "$name" "$deadline" && wait_listed "$deadline" "$name"; }; then
    stop_peers "$name"
    exit "$EXIT_FAILED"
  fi
  echo "$name is up"
}

cmd_restart() {
  local name=$1
  require_member "$name"
  stop_peers "$name"
  cmd_start "$name"
}

main() {
  (($# >= 1)) || usage
  local verb=$1
  shift
  check_port_settings
  cluster_dir=$(mkdir_abs "$cluster_dir")
  case $verb in
    up) (($# <= 1)) || usage; cmd_up "$@" ;;
    down) (($# == 0)) || usage; cmd_down ;;
    status) (($# == 0)) || usage; cmd_status ;;
    kill) (($# == 1)) || usage; cmd_kill "$1" ;;
    start) (($# == 1)) || usage; cmd_start "$1" ;;
    restart) (($# == 1)) || usage; cmd_restart "$1" ;;
    build) (($# == 0)) || usage; build_if_needed ;;
    -h | --help | help) usage ;;
    *) echo "cluster.sh: unknown command '$verb'" >&2; usage ;;
  esac
}

main "$@"
