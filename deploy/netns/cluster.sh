#!/usr/bin/env bash
# A multi-host P2PShare lab on one Linux machine: each peer runs on its own "host", a network
# namespace with its own IP on a private bridge, and the peers cluster through a PostgreSQL
# membership table, as peers on separate machines do. Needs root (ip netns).
#
#   cluster.sh up [N]        build if needed, create N hosts (default 3), start PostgreSQL and
#                            peer-1..peer-N (one per host), wait until all are live, print a table
#   cluster.sh down          stop the peers (TERM, then KILL after a deadline), stop PostgreSQL,
#                            delete veths, namespaces and bridge; also cleans a crashed run's leftovers
#   cluster.sh status        name, PID, address, link, process state and membership status
#                            (from the database) of each peer, and PostgreSQL
#   cluster.sh kill NAME     SIGKILL the peer and its sandbox workers (the host dies)
#   cluster.sh cut NAME      take the host's link down (cable pulled); the peer keeps running
#   cluster.sh heal NAME     bring the host's link back up
#   cluster.sh start NAME    start a stopped peer again, wait until it is live
#   cluster.sh restart NAME  stop the peer if it runs, start it again, wait until it is live
#                            (a peer cut off and reconnected finds itself declared dead and
#                            aborts: expected; restart it)
#   cluster.sh env           the lab's clustering settings as P2PSHARE__CLUSTERING__* lines
#                            (shell-sourceable), for the CLI or any Orleans client
#   cluster.sh build         build the peer host and the CLI (Release) if sources changed
#
# Environment:
#   P2PSHARE_NETNS_DIR      pid files, logs, data, PostgreSQL (default <repo>/.local/netns)
#   P2PSHARE_NETNS_PREFIX   names of the lab's network objects: bridge PREFIX-br0, hosts
#                           PREFIX-peer-K, root-side veths PREFIX-vK (default p2ps; 1-8 lower-case
#                           letters and digits, starting with a letter)
#   P2PSHARE_NETNS_SUBNET   the lab's /24: the bridge (root namespace, PostgreSQL) is .1, peer-K
#                           is .(10+K) (default 10.77.0.0/24)
#   P2PSHARE_NETNS_SILO_PORT, P2PSHARE_NETNS_GATEWAY_PORT
#                           ports of every peer on its own host (default 11111 and 30000; each
#                           host has its own ports, so they never clash)
#   P2PSHARE_NETNS_RESP_PORT
#                           Redis-protocol (RESP2) port of every peer, bound to its host's lab
#                           address, e.g. `redis-cli -h 10.77.0.11 -p 26379` for peer-1 (default
#                           off: none; the port has no password, and the lab's bridge is private)
#   P2PSHARE_START_TIMEOUT  seconds `up`/`start` wait for the peers (default 90)
#   P2PSHARE_STOP_TIMEOUT   seconds a peer gets to exit after SIGTERM (default 20)
#
# `up` records prefix, subnet, size and ports in the lab folder; later commands use those.
#
# Exit codes: 0 ok, 1 failure (build, a peer died, timeout, PostgreSQL), 2 usage, 3 refused (not
# root, already up, names or subnet in use, link cut).
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd -- "$script_dir/../.." && pwd)

lab_dir=${P2PSHARE_NETNS_DIR:-$repo_root/.local/netns}
prefix=${P2PSHARE_NETNS_PREFIX:-p2ps}
subnet=${P2PSHARE_NETNS_SUBNET:-10.77.0.0/24}
silo_port=${P2PSHARE_NETNS_SILO_PORT:-11111}
gateway_port=${P2PSHARE_NETNS_GATEWAY_PORT:-30000}
resp_port=${P2PSHARE_NETNS_RESP_PORT:-off}
start_timeout=${P2PSHARE_START_TIMEOUT:-90}
stop_timeout=${P2PSHARE_STOP_TIMEOUT:-20}
lab_size=0

peer_dll=$repo_root/src/P2PShare.Peer/bin/Release/net10.0/p2pshare-peer.dll
pg_script=$repo_root/deploy/postgres/pg.sh

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

readonly EXIT_FAILED=1 EXIT_USAGE=2 EXIT_REFUSED=3

# shellcheck source=../lib/cluster-common.sh
source "$script_dir/../lib/cluster-common.sh"

readonly MAX_HOSTS=99

usage() {
  sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2
  exit "$EXIT_USAGE"
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# ---- names and addresses -------------------------------------------------------------------

# Interface names are limited to 15 characters: PREFIX-v99 and PREFIX-br0 must fit.
check_prefix() {
  [[ $prefix =~ ^[a-z][a-z0-9]{0,7}$ ]] ||
    die "$EXIT_USAGE" "invalid P2PSHARE_NETNS_PREFIX '$prefix' (1-8 lower-case letters and digits, starting with a letter)"
}

# Sets net (the first three octets) from A.B.C.0/24 or A.B.C.
check_subnet() {
  local octet='(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])'
  if [[ $subnet =~ ^($octet\.$octet\.$octet)(\.0/24)?$ ]]; then
    net=${BASH_REMATCH[1]}
  else
    die "$EXIT_USAGE" "invalid P2PSHARE_NETNS_SUBNET '$subnet' (expected A.B.C.0/24)"
  fi
}

check_ports() {
  local port
  for port in "$silo_port" "$gateway_port"; do
    if ! is_uint "$port" || ((port < 1 || port > 65535)); then
      die "$EXIT_USAGE" "invalid port '$port' in P2PSHARE_NETNS_SILO_PORT / P2PSHARE_NETNS_GATEWAY_PORT"
    fi
  done
  ((silo_port != gateway_port)) || die "$EXIT_USAGE" "silo and gateway port must differ"
  if [[ $resp_port != off ]]; then
    if ! is_uint "$resp_port" || ((resp_port < 1 || resp_port > 65535)); then
      die "$EXIT_USAGE" "P2PSHARE_NETNS_RESP_PORT must be a port or 'off', got '$resp_port'"
    fi
    ((resp_port != silo_port && resp_port != gateway_port)) || die "$EXIT_USAGE" "the Redis port must differ from the silo and gateway ports"
  fi
}

bridge_name() { echo "$prefix-br0"; }
bridge_ip() { echo "$net.1"; }
netns_name() { echo "$prefix-$1"; }
veth_name() { echo "$prefix-v$(peer_index "$1")"; }
peer_ip() { echo "$net.$((10 + $(peer_index "$1")))"; }

all_peer_names() {
  local i
  for ((i = 1; i <= lab_size; i++)); do echo "peer-$i"; done
}

# ---- lab folder ----------------------------------------------------------------------------

run_dir() { echo "$lab_dir/run"; }
log_file() { echo "$lab_dir/logs/$1.log"; }
pid_file() { echo "$lab_dir/run/$1.pid"; }
data_dir() { echo "$lab_dir/data/$1"; }
pg_dir() { echo "$lab_dir/postgres"; }
pg_env_file() { echo "$lab_dir/postgres.env"; }
lab_env_file() { echo "$lab_dir/lab.env"; }

# What `up` chose is recorded before anything is created, so that `down` can always find it.
save_lab_env() {
  printf 'size=%s\nprefix=%s\nsubnet=%s\nsilo_port=%s\ngateway_port=%s\nresp_port=%s\n' \
    "$lab_size" "$prefix" "$subnet" "$silo_port" "$gateway_port" "$resp_port" >"$(lab_env_file)"
}

load_lab_env() {
  local file key value
  file=$(lab_env_file)
  [[ -f $file ]] || return 1
  while IFS='=' read -r key value; do
    case $key in
      size) lab_size=$value ;;
      prefix) prefix=$value ;;
      subnet) subnet=$value ;;
      silo_port) silo_port=$value ;;
      gateway_port) gateway_port=$value ;;
      resp_port) resp_port=$value ;;
    esac
  done <"$file"
  is_uint "$lab_size" || return 1
  check_prefix
  check_subnet
  check_ports
}

# The connection string pg.sh printed, with the bridge address as host: it is the one address
# every namespace (and the root namespace) reaches PostgreSQL on.
lab_connection_string() {
  local file line value
  file=$(pg_env_file)
  [[ -f $file ]] || return 1
  line=$(grep -m1 '^P2PSHARE_PG_CONNECTION=' -- "$file") || return 1
  value=${line#P2PSHARE_PG_CONNECTION=}
  value=${value#\'}
  value=${value%\'}
  sed -E "s/(^|;)Host=[^;]*/\1Host=$(bridge_ip)/" <<<"$value"
}

# ---- processes -----------------------------------------------------------------------------

# A PID counts only while it is still our peer: a recycled PID or a zombie (empty cmdline) is not.
peer_alive_pid() {
  local name=$1 pid cmdline file
  file=$(pid_file "$name")
  [[ -f $file ]] || return 1
  pid=$(<"$file")
  is_uint "$pid" || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $cmdline == *p2pshare-peer*"--name $name --data-dir $(data_dir "$name") "* ]] || return 1
  echo "$pid"
}

# Every process of a host, whoever started it (peer, its workers, strays of a crashed run).
netns_pids() {
  ip netns pids "$1" 2>/dev/null || true
}

# ---- network -------------------------------------------------------------------------------

link_exists() { ip link show dev "$1" >/dev/null 2>&1; }
netns_exists() { [[ -e /run/netns/$1 ]]; }

link_is_up() {
  local flags
  flags=$(ip -o link show dev "$1" 2>/dev/null) || return 1
  [[ $flags =~ \<([^>]*)\> ]] || return 1
  [[ ,${BASH_REMATCH[1]}, == *,UP,* ]]
}

# Namespaces and veths of this prefix that exist now, whatever the recorded size says.
existing_netns() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$prefix-peer-[1-9][0-9]*$" || true
}

existing_veths() {
  ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' |
    grep -E "^$prefix-v[1-9][0-9]*$" || true
}

create_bridge() {
  local bridge
  bridge=$(bridge_name)
  ip link add "$bridge" type bridge
  ip addr add "$(bridge_ip)/24" dev "$bridge"
  ip link set "$bridge" up
}

# A host: its namespace, `lo` up (Orleans and the sandbox workers use loopback), and a veth
# pair whose root side is a port of the bridge and whose other side is the host's eth0.
create_host() {
  local name=$1 ns veth ip
  ns=$(netns_name "$name")
  veth=$(veth_name "$name")
  ip=$(peer_ip "$name")
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link add "$veth" type veth peer name eth0 netns "$ns"
  ip link set "$veth" master "$(bridge_name)"
  ip link set "$veth" up
  ip -n "$ns" addr add "$ip/24" dev eth0
  ip -n "$ns" link set eth0 up
  # No default route: the hosts form an isolated segment. With one, lookups for the machine's DNS
  # server would go to the bridge and time out instead of failing at once (Npgsql's GSSAPI
  # negotiation looks up Kerberos servers and stalls a peer's first connection for 10 s).
}

create_network() {
  local name
  create_bridge
  for name in $(all_peer_names); do
    create_host "$name"
  done
}

# Refuses to create what would clash with another lab or with the machine's own networks.
check_network_free() {
  local bridge ns addr
  bridge=$(bridge_name)
  if link_exists "$bridge" || [[ -n $(existing_netns) || -n $(existing_veths) ]]; then
    die "$EXIT_REFUSED" "network objects named '$prefix-*' exist already (a lab is up or a run crashed); run '$0 down' first, or choose another P2PSHARE_NETNS_PREFIX"
  fi
  addr=$(ip -4 -o addr show 2>/dev/null | awk '{print $4}' | grep -E "^${net//./\\.}\." | head -n1 || true)
  [[ -z $addr ]] ||
    die "$EXIT_REFUSED" "subnet $net.0/24 is in use on this machine ($addr); choose another P2PSHARE_NETNS_SUBNET"
}

# ---- PostgreSQL ----------------------------------------------------------------------------

start_postgres() {
  [[ -x $pg_script ]] || die "$EXIT_FAILED" "missing $pg_script (PostgreSQL clustering support)"
  local out
  # Bridge address first: pg.sh's connection string names its first listen address.
  if ! out=$("$pg_script" start --dir "$(pg_dir)" --listen "$(bridge_ip),127.0.0.1" </dev/null); then
    echo "cluster.sh: PostgreSQL did not start (pg.sh start --dir $(pg_dir))" >&2
    return "$EXIT_FAILED"
  fi
  # It holds the database password: readable by root only, like pg.sh's own copy.
  (umask 077 && printf '%s\n' "$out" | grep '^P2PSHARE_PG_' >"$(pg_env_file)")
  lab_connection_string >/dev/null || {
    echo "cluster.sh: pg.sh printed no P2PSHARE_PG_CONNECTION" >&2
    return "$EXIT_FAILED"
  }
}

pg_port() {
  local line
  line=$(grep -m1 '^P2PSHARE_PG_PORT=' -- "$(pg_env_file)" 2>/dev/null) || return 1
  line=${line#P2PSHARE_PG_PORT=}
  line=${line//\'/}
  echo "$line"
}

# The hosts reach PostgreSQL over the bridge: prove it from a host before starting a peer there,
# so a firewall or a listen address problem is reported as such, not as a peer failing to join.
check_postgres_reachable() {
  local name=${1:-peer-1} port ns deadline=$((SECONDS + 10))
  port=$(pg_port) || { echo "cluster.sh: no PostgreSQL port recorded" >&2; return "$EXIT_FAILED"; }
  ns=$(netns_name "$name")
  until ip netns exec "$ns" timeout 2 bash -c "exec 3<>/dev/tcp/$(bridge_ip)/$port" 2>/dev/null; do
    ((SECONDS < deadline)) || {
      echo "cluster.sh: PostgreSQL at $(bridge_ip):$port is not reachable from host $ns" >&2
      return "$EXIT_FAILED"
    }
    sleep 0.2
  done
}

# The lab's view of Orleans membership, read from the database: the status of the newest silo
# generation of a peer (Joining, Active, ShuttingDown, Stopping, Dead), or nothing when the
# database cannot tell. Best effort: callers fall back to what the processes say.
psql_bin() {
  local newest
  command -v psql 2>/dev/null && return 0
  newest=$(printf '%s\n' /usr/lib/postgresql/*/bin/psql | sort -V | tail -n 1)
  [[ -x $newest ]] && echo "$newest"
  return 0
}

membership_status() {
  local name=$1 conn field password='' port='' psql status
  local -a fields
  conn=$(lab_connection_string) || return 0
  psql=$(psql_bin)
  [[ -n $psql ]] || return 0
  IFS=';' read -r -a fields <<<"$conn"
  for field in "${fields[@]}"; do
    case ${field,,} in
      password=*) password=${field#*=} ;;
      port=*) port=${field#*=} ;;
    esac
  done
  [[ -n $port ]] || return 0
  status=$(PGPASSWORD=$password PGCONNECT_TIMEOUT=3 timeout 5 "$psql" -h "$(bridge_ip)" -p "$port" -U p2pshare \
    -d p2pshare -tAqc "SELECT status FROM p2pshare_membership WHERE silo_name = '$name' AND address = '$(peer_ip "$name")'
      ORDER BY generation DESC LIMIT 1" 2>/dev/null) || return 0
  case $status in
    1) echo Created ;; 2) echo Joining ;; 3) echo Active ;; 4) echo ShuttingDown ;;
    5) echo Stopping ;; 6) echo Dead ;; *) ;;
  esac
}

stop_postgres() {
  [[ -d $(pg_dir) ]] || return 0
  if [[ -x $pg_script ]]; then
    "$pg_script" stop --dir "$(pg_dir)" </dev/null >/dev/null || echo "cluster.sh: pg.sh stop failed" >&2
  fi
}

# ---- peers ---------------------------------------------------------------------------------

start_peer() {
  local name=$1 log ns conn
  log=$(log_file "$name")
  ns=$(netns_name "$name")
  netns_exists "$ns" || { echo "cluster.sh: host $ns does not exist; run '$0 down' and '$0 up'" >&2; return "$EXIT_FAILED"; }
  conn=$(lab_connection_string) || { echo "cluster.sh: no PostgreSQL connection recorded in $lab_dir" >&2; return "$EXIT_FAILED"; }
  mkdir -p -- "$(data_dir "$name")" "$(dirname -- "$log")" "$(run_dir)"
  # Readiness is read from the log, so each run starts a fresh one; the previous run's stays beside it.
  [[ -f $log ]] && mv -f -- "$log" "$log.prev"
  local -a launcher args
  mapfile -t launcher < <(peer_command)
  # --name and --data-dir first and together: peer_alive_pid recognises the peer by them.
  args=(--name "$name" --data-dir "$(data_dir "$name")" --clustering postgres --address "$(peer_ip "$name")"
    --silo-port "$silo_port" --gateway-port "$gateway_port")
  [[ $resp_port == off ]] || args+=(--resp-port "$resp_port" --resp-bind "$(peer_ip "$name")")
  # The connection string (it holds a password) goes through the environment, not the
  # world-readable command line. The peer's working folder is the lab, and core dumps are off,
  # so an aborting peer (a cut-off silo that learns it was declared dead) leaves nothing behind.
  # setsid: the peer leads its own process group (its workers join it), out of the caller's.
  (
    cd -- "$lab_dir"
    ulimit -c 0
    exec env P2PSHARE__CLUSTERING__MODE=postgres P2PSHARE__CLUSTERING__CONNECTIONSTRING="$conn" \
      ip netns exec "$ns" setsid "${launcher[@]}" "${args[@]}" </dev/null >"$log" 2>&1
  ) &
  echo "$!" >"$(pid_file "$name")"
  echo "started $name (pid $!, host $ns, $(peer_ip "$name"):$gateway_port)"
}

wait_ready() {
  local name=$1 deadline=$2 log
  log=$(log_file "$name")
  until grep -qF "P2PShare peer '$name' is ready" -- "$log" 2>/dev/null; do
    peer_alive_pid "$name" >/dev/null || { fail_peer_died "$name"; return; }
    ((SECONDS < deadline)) || {
      echo "cluster.sh: $name not ready after ${start_timeout}s; last lines of $log:" >&2
      tail -n 30 -- "$log" >&2
      return "$EXIT_FAILED"
    }
    sleep 0.2
  done
}

cli() {
  P2PSHARE_NETNS_DIR=$lab_dir timeout 30 "$script_dir/p2pshare" "$@"
}

# TERMs the given peers together, waits for them with one deadline, KILLs the rest. A peer whose
# link is cut, or that the cluster has declared dead (it was cut off and reconnected), cannot leave
# the cluster gracefully: it would wait out its own shutdown timeout, so it is KILLed at once.
stop_peers() {
  local -a pids=() names=()
  local name pid
  for name in "$@"; do
    if pid=$(peer_alive_pid "$name"); then
      if link_exists "$(veth_name "$name")" && ! link_is_up "$(veth_name "$name")"; then
        echo "stopping $name (pid $pid, link cut: SIGKILL)"
        kill_group "$pid" KILL
      elif [[ $(membership_status "$name") == Dead ]]; then
        echo "stopping $name (pid $pid, declared dead by the cluster: SIGKILL)"
        kill_group "$pid" KILL
      else
        echo "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
      fi
      pids+=("$pid")
      names+=("$name")
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
      kill_group "${pids[$i]}" KILL
    fi
  done
  for name in "$@"; do rm -f -- "$(pid_file "$name")"; done
}

# The peer and its sandbox workers (same process group, led by the peer thanks to setsid).
kill_group() {
  local pid=$1 signal=$2 pgid
  pgid=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ') || pgid=
  if [[ $pgid == "$pid" ]]; then
    kill "-$signal" -- "-$pid" 2>/dev/null || true
  else
    kill "-$signal" "$pid" 2>/dev/null || true
  fi
}

# Whatever still runs on the lab's hosts (workers of a killed peer, a crashed run's peers) is
# TERMed, then KILLed: a namespace with processes in it outlives `ip netns delete`.
kill_host_processes() {
  local ns
  local -a all=()
  for ns in $(existing_netns); do
    mapfile -t -O "${#all[@]}" all < <(netns_pids "$ns")
  done
  ((${#all[@]} > 0)) || return 0
  kill -TERM "${all[@]}" 2>/dev/null || true
  local deadline=$((SECONDS + 5)) pid alive
  while :; do
    alive=()
    for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    ((${#alive[@]} == 0)) && return 0
    ((SECONDS < deadline)) || break
    sleep 0.1
  done
  kill -KILL "${alive[@]}" 2>/dev/null || true
  deadline=$((SECONDS + 5))
  for pid in "${alive[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  done
}

# ---- commands ------------------------------------------------------------------------------

require_root() {
  ((EUID == 0)) || die "$EXIT_REFUSED" "needs root (it creates network namespaces); run it with sudo"
  command -v ip >/dev/null || die "$EXIT_FAILED" "the 'ip' command (iproute2) is missing"
}

# Tears down in the order that leaves nothing behind: peers, stray processes, PostgreSQL, veths,
# namespaces, bridge. Each step tolerates what is already gone.
cmd_down() {
  local recorded=true
  load_lab_env || recorded=false
  local had_anything=false name veth ns bridge
  bridge=$(bridge_name)

  if [[ $recorded == true ]]; then
    local -a names
    mapfile -t names < <(all_peer_names)
    if ((${#names[@]} > 0)); then
      local -a running=()
      for name in "${names[@]}"; do
        peer_alive_pid "$name" >/dev/null && running+=("$name")
      done
      ((${#running[@]} == 0)) || { had_anything=true; stop_peers "${running[@]}"; }
      for name in "${names[@]}"; do rm -f -- "$(pid_file "$name")"; done
    fi
  fi
  [[ -n $(existing_netns) ]] && had_anything=true
  kill_host_processes
  if [[ -d $(pg_dir) ]]; then
    stop_postgres
  fi
  for veth in $(existing_veths); do
    had_anything=true
    ip link delete "$veth" 2>/dev/null || true
  done
  for ns in $(existing_netns); do
    ip netns delete "$ns" 2>/dev/null || echo "cluster.sh: could not delete namespace $ns" >&2
  done
  if link_exists "$bridge"; then
    had_anything=true
    ip link delete "$bridge" 2>/dev/null || echo "cluster.sh: could not delete bridge $bridge" >&2
  fi
  if [[ $had_anything == true || $recorded == true ]]; then
    echo "lab '$prefix' is down (logs and data kept in $lab_dir)"
  else
    echo "no lab '$prefix' is up"
  fi
  local left
  left=$({
    existing_netns
    existing_veths
    if link_exists "$bridge"; then echo "$bridge"; fi
  } | tr '\n' ' ')
  [[ -z ${left// /} ]] || die "$EXIT_FAILED" "left behind: $left"
}

start_all() {
  local deadline=$1 name
  local -a names
  mapfile -t names < <(all_peer_names)
  # No primary with PostgreSQL clustering: every peer starts at once and joins through the table.
  for name in "${names[@]}"; do
    start_peer "$name" || return
  done
  for name in "${names[@]}"; do
    wait_ready "$name" "$deadline" || return
  done
  wait_listed "$deadline" "${names[@]}"
}

cmd_up() {
  local size=${1:-3}
  if ! is_uint "$size" || ((size < 1 || size > MAX_HOSTS)); then
    die "$EXIT_USAGE" "peer count must be an integer from 1 to $MAX_HOSTS, got '$size'"
  fi
  check_prefix
  check_subnet
  check_ports
  require_root

  # A lab from this folder that is still running: refuse, whatever the environment says now.
  if load_lab_env; then
    local name pid
    for name in $(all_peer_names); do
      if pid=$(peer_alive_pid "$name"); then
        die "$EXIT_REFUSED" "a lab is already running from $lab_dir ($name, pid $pid); run '$0 down' first"
      fi
    done
  fi
  # `up` takes its choices from the environment, not from the previous run.
  prefix=${P2PSHARE_NETNS_PREFIX:-p2ps}
  subnet=${P2PSHARE_NETNS_SUBNET:-10.77.0.0/24}
  silo_port=${P2PSHARE_NETNS_SILO_PORT:-11111}
  gateway_port=${P2PSHARE_NETNS_GATEWAY_PORT:-30000}
  resp_port=${P2PSHARE_NETNS_RESP_PORT:-off}
  check_prefix
  check_subnet
  check_ports
  check_network_free
  [[ -x $pg_script ]] || die "$EXIT_FAILED" "missing $pg_script (PostgreSQL clustering support)"

  "$repo_root/deploy/local/cluster.sh" build || exit "$EXIT_FAILED"
  lab_size=$size
  mkdir -p -- "$(run_dir)"
  save_lab_env

  local started=$SECONDS deadline=$((SECONDS + start_timeout))
  trap 'echo "cluster.sh: interrupted; tearing the lab down" >&2; cmd_down >&2; exit 130' INT TERM
  if ! { create_network && start_postgres && check_postgres_reachable && start_all "$deadline"; }; then
    echo "cluster.sh: start failed; tearing the lab down" >&2
    cmd_down >&2 || true
    exit "$EXIT_FAILED"
  fi
  trap - INT TERM
  echo "lab of $size hosts up in $((SECONDS - started))s; logs and data in $lab_dir"
  cmd_status
  cli peers || true
}

cmd_status() {
  if ! load_lab_env; then
    echo "no lab in $lab_dir"
    return 0
  fi
  local name pid state link veth port member
  printf '%-10s %8s %-15s %-16s %-5s %-8s %s\n' NAME PID ADDRESS HOST LINK STATE MEMBERSHIP
  for name in $(all_peer_names); do
    veth=$(veth_name "$name")
    if ! link_exists "$veth"; then link='-'; elif link_is_up "$veth"; then link='up'; else link='cut'; fi
    if pid=$(peer_alive_pid "$name"); then state=running; else pid=-; state=stopped; fi
    member=$(membership_status "$name")
    printf '%-10s %8s %-15s %-16s %-5s %-8s %s\n' "$name" "$pid" "$(peer_ip "$name")" "$(netns_name "$name")" \
      "$link" "$state" "${member:--}"
  done
  if port=$(pg_port); then
    echo "postgres   $(bridge_ip):$port (folder $(pg_dir))"
  fi
}

require_member() {
  local name=$1 index
  load_lab_env || die "$EXIT_FAILED" "no lab in $lab_dir; run '$0 up' first"
  index=$(peer_index "$name")
  ((index <= lab_size)) || die "$EXIT_USAGE" "$name is not in this lab (peer-1..peer-$lab_size)"
}

cmd_kill() {
  local name=$1 pid
  require_member "$name"
  pid=$(peer_alive_pid "$name") || die "$EXIT_FAILED" "$name is not running"
  kill_group "$pid" KILL
  local deadline=$((SECONDS + 10))
  while peer_alive_pid "$name" >/dev/null; do
    ((SECONDS < deadline)) || die "$EXIT_FAILED" "$name (pid $pid) still alive after SIGKILL"
    sleep 0.1
  done
  rm -f -- "$(pid_file "$name")"
  echo "killed $name (pid $pid)"
}

cmd_cut() {
  local name=$1 veth
  require_member "$name"
  veth=$(veth_name "$name")
  link_exists "$veth" || die "$EXIT_FAILED" "the link of $name ($veth) does not exist; run '$0 down' and '$0 up'"
  ip link set "$veth" down
  echo "cut $name ($(peer_ip "$name")): link $veth down"
}

cmd_heal() {
  local name=$1 veth
  require_member "$name"
  veth=$(veth_name "$name")
  link_exists "$veth" || die "$EXIT_FAILED" "the link of $name ($veth) does not exist; run '$0 down' and '$0 up'"
  ip link set "$veth" up
  local deadline=$((SECONDS + 10))
  until link_is_up "$veth"; do
    ((SECONDS < deadline)) || die "$EXIT_FAILED" "link $veth did not come up"
    sleep 0.1
  done
  # While cut, the host's address lookups for its neighbours failed, and the kernel answers
  # "no route to host" from those failed entries for a while: forget them on both sides, then
  # wait until the host reaches the bridge again.
  ip -n "$(netns_name "$name")" neigh flush dev eth0 2>/dev/null || true
  ip neigh flush dev "$(bridge_name)" to "$(peer_ip "$name")" 2>/dev/null || true
  check_postgres_reachable "$name" || exit "$EXIT_FAILED"
  echo "healed $name ($(peer_ip "$name")): link $veth up"
}

cmd_start() {
  local name=$1 pid veth
  require_member "$name"
  if pid=$(peer_alive_pid "$name"); then die "$EXIT_REFUSED" "$name is already running (pid $pid)"; fi
  veth=$(veth_name "$name")
  link_exists "$veth" || die "$EXIT_FAILED" "the host of $name does not exist; run '$0 down' and '$0 up'"
  link_is_up "$veth" || die "$EXIT_REFUSED" "the link of $name is cut; run '$0 heal $name' first"
  "$repo_root/deploy/local/cluster.sh" build || exit "$EXIT_FAILED"
  # Workers a killed peer left behind would compete with the new peer for nothing.
  local -a strays
  mapfile -t strays < <(netns_pids "$(netns_name "$name")")
  ((${#strays[@]} == 0)) || kill -KILL "${strays[@]}" 2>/dev/null || true
  check_postgres_reachable "$name" || exit "$EXIT_FAILED"
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
  link_is_up "$(veth_name "$name")" || die "$EXIT_REFUSED" "the link of $name is cut; run '$0 heal $name' first"
  stop_peers "$name"
  cmd_start "$name"
}

cmd_env() {
  load_lab_env || die "$EXIT_FAILED" "no lab in $lab_dir; run '$0 up' first"
  local conn
  conn=$(lab_connection_string) || die "$EXIT_FAILED" "no PostgreSQL connection recorded in $lab_dir"
  echo "P2PSHARE__CLUSTERING__MODE=postgres"
  echo "P2PSHARE__CLUSTERING__CONNECTIONSTRING='$conn'"
}

main() {
  (($# >= 1)) || usage
  local verb=$1
  shift
  case $verb in
    -h | --help | help) usage ;;
  esac
  lab_dir=$(realpath -m -- "$lab_dir")
  check_prefix
  check_subnet
  case $verb in
    up) (($# <= 1)) || usage; cmd_up "$@" ;;
    down) (($# == 0)) || usage; require_root; cmd_down ;;
    status) (($# == 0)) || usage; cmd_status ;;
    kill) (($# == 1)) || usage; require_root; cmd_kill "$1" ;;
    cut) (($# == 1)) || usage; require_root; cmd_cut "$1" ;;
    heal) (($# == 1)) || usage; require_root; cmd_heal "$1" ;;
    start) (($# == 1)) || usage; require_root; cmd_start "$1" ;;
    restart) (($# == 1)) || usage; require_root; cmd_restart "$1" ;;
    env) (($# == 0)) || usage; cmd_env ;;
    build) (($# == 0)) || usage; "$repo_root/deploy/local/cluster.sh" build ;;
    *) echo "cluster.sh: unknown command '$verb'" >&2; usage ;;
  esac
}

main "$@"
