#!/usr/bin/env bash
# A throwaway private PostgreSQL server for development and tests, run from the distribution's
# PostgreSQL binaries in a folder of its own. No system service is used or needed.
#
#   pg.sh start [--dir DIR] [--port PORT] [--listen ADDRS]
#       Initialise a server in DIR if there is none, start it, wait until it accepts connections,
#       then create role and database `p2pshare` and apply schema.sql (setup.sh; idempotent).
#       A server already running in DIR is reused (setup is applied again).
#       --dir DIR      server folder (default <repo>/.local/postgres)
#       --port PORT    TCP port (default: the port DIR used last if still free, else a free port
#                      in 20000-32767; 32768-60999 are the kernel's ports for outgoing connections)
#       --listen ADDRS comma-separated listen addresses (default 127.0.0.1); the first one goes
#                      into the connection string (* and 0.0.0.0 become 127.0.0.1)
#       Prints on stdout exactly three shell-sourceable lines:
#         P2PSHARE_PG_DIR=<abs dir>
#         P2PSHARE_PG_PORT=<port>
#         P2PSHARE_PG_CONNECTION='Host=<addr>;Port=<port>;Database=p2pshare;Username=p2pshare;Password=<pw>'
#   pg.sh env [--dir DIR]      the same three lines for the running server (exit 1 if not running)
#   pg.sh stop [--dir DIR]     fast shutdown; harmless when not running
#   pg.sh status [--dir DIR]   one line; exit 0 running, 3 not running
#   pg.sh destroy [--dir DIR]  stop and delete DIR
#
# The app role logs in with a password (scram-sha-256) over TCP from any address, so hosts in
# network namespaces can connect over a bridge; the password is generated once and kept in
# DIR/password (mode 0600). The superuser is reachable only through the Unix socket in DIR (peer
# authentication). As root, DIR is owned by `postgres` and the server runs as `postgres`; otherwise
# it runs as the current user. When no PostgreSQL is installed, root installs the `postgresql`
# package with apt-get (without creating the distribution's default cluster).
#
# Exit codes: 0 ok, 1 failure, 2 usage, 3 not running (status).
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd -- "$script_dir/../.." && pwd)

readonly EXIT_FAILED=1 EXIT_USAGE=2 EXIT_NOT_RUNNING=3
readonly MARKER=.p2pshare-pg
readonly DATABASE=p2pshare ROLE=p2pshare
readonly START_TIMEOUT=60

die() {
  local code=$1
  shift
  echo "pg.sh: $*" >&2
  exit "$code"
}

say() { echo "pg.sh: $*" >&2; }

usage() {
  sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2
  exit "$EXIT_USAGE"
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# ---------------------------------------------------------------------------------------------
# Arguments

command=${1:-}
[[ -n $command ]] || usage
shift
case $command in
  start | env | stop | status | destroy) ;;
  -h | --help | help) usage ;;
  *) die "$EXIT_USAGE" "unknown command '$command' (start, env, stop, status, destroy)" ;;
esac

dir=$repo_root/.local/postgres
port=""
listen=""
while (($# > 0)); do
  case $1 in
    --dir | --port | --listen)
      (($# >= 2)) || die "$EXIT_USAGE" "$1 needs a value"
      case $1 in
        --dir) dir=$2 ;;
        --port) port=$2 ;;
        --listen) listen=$2 ;;
      esac
      shift 2
      ;;
    --dir=*) dir=${1#*=}; shift ;;
    --port=*) port=${1#*=}; shift ;;
    --listen=*) listen=${1#*=}; shift ;;
    -h | --help) usage ;;
    *) die "$EXIT_USAGE" "unknown argument '$1'" ;;
  esac
done

[[ -n $dir ]] || die "$EXIT_USAGE" "--dir must not be empty"
if [[ $command != start && ( -n $port || -n $listen ) ]]; then
  die "$EXIT_USAGE" "--port and --listen only apply to start"
fi
if [[ -n $port ]] && { ! is_uint "$port" || ((10#$port < 1 || 10#$port > 65535)); }; then
  die "$EXIT_USAGE" "invalid --port '$port' (1-65535)"
fi
[[ -z $port ]] || port=$((10#$port))
if [[ -n $listen ]]; then
  IFS=',' read -r -a listen_list <<<"$listen"
  ((${#listen_list[@]} > 0)) || die "$EXIT_USAGE" "--listen needs at least one address"
  for addr in "${listen_list[@]}"; do
    [[ $addr =~ ^[0-9A-Fa-f.:*]+$ ]] ||
      die "$EXIT_USAGE" "invalid listen address '$addr' (IP addresses, comma-separated)"
  done
fi

# Absolute path without requiring the folder to exist yet.
dir=$(realpath -m -- "$dir")
data_dir=$dir/data
state_file=$dir/server.env
password_file=$dir/password
log_file=$dir/server.log

# ---------------------------------------------------------------------------------------------
# Binaries and the user the server runs as

is_root() { ((EUID == 0)); }

# Runs a command as the server's OS user: `postgres` when we are root, else ourselves.
as_owner() {
  if is_root; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

find_bin_dir() {
  local candidate
  candidate=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [[ -n $candidate && -x $candidate/initdb && -x $candidate/pg_ctl ]]; then
    echo "$candidate"
    return 0
  fi
  local from_path
  from_path=$(command -v pg_ctl 2>/dev/null || true)
  if [[ -n $from_path && -x $(dirname -- "$from_path")/initdb ]]; then
    dirname -- "$from_path"
    return 0
  fi
  return 1
}

install_postgresql() {
  is_root || die "$EXIT_FAILED" "PostgreSQL is not installed; as root run: apt-get install postgresql"
  command -v apt-get >/dev/null || die "$EXIT_FAILED" "PostgreSQL is not installed and apt-get is not available"
  say "PostgreSQL is not installed; installing the distribution's package (apt-get)..."
  export DEBIAN_FRONTEND=noninteractive
  # postgresql-common first, so that the distribution's default cluster (and its service on port
  # 5432) is not created when the server package is configured: we run our own servers.
  if ! apt-get install -y -q postgresql-common </dev/null >&2; then
    apt-get update -q </dev/null >&2 || die "$EXIT_FAILED" "apt-get update failed"
    apt-get install -y -q postgresql-common </dev/null >&2 || die "$EXIT_FAILED" "apt-get install postgresql-common failed"
  fi
  local conf=/etc/postgresql-common/createcluster.conf
  if [[ -f $conf ]] && ! grep -Eq '^[[:space:]]*create_main_cluster' "$conf"; then
    echo "create_main_cluster = false" >>"$conf"
  fi
  apt-get install -y -q postgresql </dev/null >&2 || die "$EXIT_FAILED" "apt-get install postgresql failed"
}

bin_dir=""
need_binaries() {
  [[ -z $bin_dir ]] || return 0
  if ! bin_dir=$(find_bin_dir); then
    install_postgresql
    bin_dir=$(find_bin_dir) || die "$EXIT_FAILED" "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin after installing"
  fi
  command -v psql >/dev/null || [[ -x $bin_dir/psql ]] || die "$EXIT_FAILED" "psql not found"
  if is_root && ! id postgres >/dev/null 2>&1; then
    die "$EXIT_FAILED" "running as root needs the OS user 'postgres' (installed with the postgresql package)"
  fi
}

# ---------------------------------------------------------------------------------------------
# State of a server folder

# Unix sockets have a short path limit (107 bytes); a deep DIR gets its socket folder under /tmp,
# named after DIR so that every command finds the same one.
socket_dir_for() {
  local candidate=$dir/run
  if ((${#candidate} <= 80)); then
    echo "$candidate"
  else
    echo "/tmp/p2pshare-pg-$(printf '%s' "$dir" | sha256sum | cut -c1-16)"
  fi
}

state_get() {
  local key=$1 k v
  [[ -f $state_file ]] || return 1
  while IFS='=' read -r k v; do
    if [[ $k == "$key" ]]; then
      echo "$v"
      return 0
    fi
  done <"$state_file"
  return 1
}

is_ours() { [[ -f $dir/$MARKER ]]; }

server_running() {
  [[ -f $data_dir/PG_VERSION ]] || return 1
  need_binaries
  as_owner "$bin_dir/pg_ctl" status -D "$data_dir" >/dev/null 2>&1
}

port_in_use() {
  local p=$1
  if command -v ss >/dev/null; then
    [[ -n $(ss -Htln "sport = :$p" 2>/dev/null) ]]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
  fi
}

pick_free_port() {
  local attempt p
  for ((attempt = 0; attempt < 200; attempt++)); do
    p=$((20000 + RANDOM % 12768))
    if ! port_in_use "$p"; then
      echo "$p"
      return 0
    fi
  done
  die "$EXIT_FAILED" "no free port found in 20000-32767"
}

# The address clients put in the connection string: the first listen address, with the
# wildcards replaced by loopback.
client_host() {
  local first=${1%%,*}
  case $first in
    '*' | 0.0.0.0) echo 127.0.0.1 ;;
    '::') echo ::1 ;;
    *) echo "$first" ;;
  esac
}

print_env() {
  local p l password host
  p=$(state_get port) || die "$EXIT_FAILED" "no port recorded in $state_file"
  l=$(state_get listen) || die "$EXIT_FAILED" "no listen addresses recorded in $state_file"
  [[ -r $password_file ]] || die "$EXIT_FAILED" "cannot read $password_file"
  password=$(<"$password_file")
  host=$(client_host "$l")
  printf "P2PSHARE_PG_DIR=%s\n" "$dir"
  printf "P2PSHARE_PG_PORT=%s\n" "$p"
  printf "P2PSHARE_PG_CONNECTION='Host=%s;Port=%s;Database=%s;Username=%s;Password=%s'\n" \
    "$host" "$p" "$DATABASE" "$ROLE" "$password"
}

# ---------------------------------------------------------------------------------------------
# start

prepare_dir() {
  if [[ -e $dir && ! -d $dir ]]; then
    die "$EXIT_FAILED" "$dir exists and is not a folder"
  fi
  if [[ -d $dir ]] && ! is_ours && [[ -n $(ls -A -- "$dir") ]]; then
    die "$EXIT_FAILED" "$dir is not empty and was not created by pg.sh; choose another --dir"
  fi
  mkdir -p -- "$dir"
  touch -- "$dir/$MARKER"
  if is_root; then
    chown postgres:postgres -- "$dir"
    runuser -u postgres -- test -w "$dir" ||
      die "$EXIT_FAILED" "the OS user postgres cannot write $dir (a parent folder is not accessible to it); choose another --dir"
  fi
}

ensure_password() {
  if [[ ! -s $password_file ]]; then
    (
      umask 077
      # 24 characters from [A-Za-z0-9]: safe inside a connection string and a shell quote.
      head -c 48 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9' | head -c 24 >"$password_file.new"
    )
    mv -f -- "$password_file.new" "$password_file"
  fi
  chmod 600 -- "$password_file"
}

init_cluster() {
  [[ -f $data_dir/PG_VERSION ]] && return 0
  say "initialising a PostgreSQL cluster in $data_dir"
  local superuser
  if is_root; then superuser=postgres; else superuser=$(id -un); fi
  rm -rf -- "$data_dir"
  as_owner "$bin_dir/initdb" -D "$data_dir" -U "$superuser" -E UTF8 --no-locale \
    --auth-local=peer --auth-host=scram-sha-256 </dev/null >"$dir/initdb.log" 2>&1 ||
    { tail -n 20 -- "$dir/initdb.log" >&2; die "$EXIT_FAILED" "initdb failed (log: $dir/initdb.log)"; }
  # Our own access rules: the superuser only through the Unix socket (peer authentication);
  # roles with a password over TCP from anywhere.
  as_owner tee "$data_dir/pg_hba.conf" >/dev/null <<'EOF'
# Written by deploy/postgres/pg.sh.
# TYPE  DATABASE  USER  ADDRESS    METHOD
local   all       all              peer
host    all       all   0.0.0.0/0  scram-sha-256
host    all       all   ::/0       scram-sha-256
EOF
  printf "\n# Settings chosen by deploy/postgres/pg.sh (rewritten on every start).\ninclude_if_exists = 'p2pshare.conf'\n" |
    as_owner tee -a "$data_dir/postgresql.conf" >/dev/null
  printf "superuser=%s\n" "$superuser" >"$dir/superuser"
}

write_server_conf() {
  local p=$1 l=$2 sock=$3
  # A throwaway server: no commit waits for a disk flush (a crash loses the last few commits,
  # never consistency), and enough connections for several peers with their pools plus tests.
  as_owner tee "$data_dir/p2pshare.conf" >/dev/null <<EOF
listen_addresses = '$l'
port = $p
unix_socket_directories = '$sock'
max_connections = 200
synchronous_commit = off
logging_collector = off
log_min_messages = warning
EOF
  {
    printf "port=%s\n" "$p"
    printf "listen=%s\n" "$l"
    printf "socket=%s\n" "$sock"
  } >"$state_file.new"
  mv -f -- "$state_file.new" "$state_file"
}

wait_ready() {
  local p=$1 sock=$2 host=$3
  local deadline=$((SECONDS + START_TIMEOUT))
  until "$bin_dir/pg_isready" -q -h "$sock" -p "$p" -t 2 && "$bin_dir/pg_isready" -q -h "$host" -p "$p" -t 2; do
    ((SECONDS < deadline)) || die "$EXIT_FAILED" "server did not accept connections within ${START_TIMEOUT}s (log: $log_file)"
    sleep 0.2
  done
}

start_server() {
  local explicit_port=$port l=${listen:-127.0.0.1} sock p attempt
  sock=$(socket_dir_for)
  as_owner mkdir -p -- "$sock"
  as_owner chmod 700 -- "$sock"
  for ((attempt = 1; attempt <= 3; attempt++)); do
    if [[ -n $explicit_port ]]; then
      p=$explicit_port
      ! port_in_use "$p" || die "$EXIT_FAILED" "port $p is already in use; choose another --port"
    else
      p=$(state_get port || true)
      if [[ -z $p ]] || port_in_use "$p"; then p=$(pick_free_port); fi
    fi
    write_server_conf "$p" "$l" "$sock"
    say "starting PostgreSQL on port $p (listening on $l)"
    # Close the lock descriptor: the postmaster outlives this script.
    if as_owner "$bin_dir/pg_ctl" -D "$data_dir" -l "$log_file" -w -t "$START_TIMEOUT" start >/dev/null 2>&1 9>&-; then
      wait_ready "$p" "$sock" "$(client_host "$l")"
      return 0
    fi
    # Another process may have taken the probed port between our probe and the server's bind.
    if [[ -z $explicit_port ]] && port_in_use "$p" && ((attempt < 3)); then
      say "port $p was taken meanwhile; trying another"
      rm -f -- "$state_file"
      continue
    fi
    tail -n 20 -- "$log_file" >&2 || true
    die "$EXIT_FAILED" "server did not start (log: $log_file)"
  done
}

run_setup() {
  local p sock l host superuser password
  p=$(state_get port)
  sock=$(state_get socket)
  l=$(state_get listen)
  host=$(client_host "$l")
  superuser=$(sed -n 's/^superuser=//p' "$dir/superuser")
  password=$(<"$password_file")
  # setup.sh connects as the superuser through the socket (peer authentication needs the OS user
  # to match) and as the app role over TCP with its password.
  # As root, setup runs as postgres, which may not be able to read the checkout (a private home or
  # a mktemp folder); it gets its own copy of the scripts inside the server's folder.
  local scripts=$script_dir
  if is_root; then
    scripts=$dir/scripts
    mkdir -p -- "$scripts"
    cp -f -- "$script_dir/setup.sh" "$script_dir/schema.sql" "$scripts/"
    chown -R postgres:postgres -- "$scripts"
  fi
  as_owner env P2PSHARE_PG_PASSWORD="$password" PATH="$bin_dir:$PATH" \
    "$scripts/setup.sh" --host "$sock" --port "$p" --admin-user "$superuser" \
    --app-host "$host" --database "$DATABASE" --role "$ROLE" </dev/null >&2 9>&- ||
    exit "$EXIT_FAILED" # setup.sh said what failed, in one line
}

cmd_start() {
  need_binaries
  prepare_dir
  exec 9>>"$dir/.lock"
  flock 9
  ensure_password
  if server_running; then
    local running_port running_listen
    running_port=$(state_get port || true)
    running_listen=$(state_get listen || true)
    say "reusing the server already running in $dir (port $running_port)"
    if [[ -n $port && $port != "$running_port" ]] || [[ -n $listen && $listen != "$running_listen" ]]; then
      say "warning: it keeps port $running_port and listen addresses $running_listen; stop it first to change them"
    fi
  else
    if [[ -n $port ]] && port_in_use "$port"; then
      die "$EXIT_FAILED" "port $port is already in use; choose another --port"
    fi
    init_cluster
    start_server
  fi
  run_setup
  print_env
}

# ---------------------------------------------------------------------------------------------
# env, stop, status, destroy

cmd_env() {
  server_running || die "$EXIT_FAILED" "no PostgreSQL server is running in $dir (run: pg.sh start --dir $dir)"
  print_env
}

cmd_stop() {
  if [[ ! -f $data_dir/PG_VERSION ]]; then
    return 0
  fi
  if server_running; then
    say "stopping PostgreSQL in $dir"
    as_owner "$bin_dir/pg_ctl" -D "$data_dir" -m fast -w -t "$START_TIMEOUT" stop >/dev/null 2>&1 ||
      die "$EXIT_FAILED" "server in $dir did not stop (log: $log_file)"
  fi
}

cmd_status() {
  if server_running; then
    local pid
    pid=$(head -n 1 -- "$data_dir/postmaster.pid" 2>/dev/null || echo '?')
    echo "running: pid $pid, port $(state_get port || echo '?'), listening on $(state_get listen || echo '?'), dir $dir"
    return 0
  fi
  if [[ -f $data_dir/PG_VERSION ]]; then
    echo "not running: dir $dir"
  else
    echo "no server: dir $dir"
  fi
  exit "$EXIT_NOT_RUNNING"
}

cmd_destroy() {
  [[ -e $dir ]] || return 0
  is_ours || die "$EXIT_FAILED" "$dir was not created by pg.sh; not deleting it"
  cmd_stop
  local sock
  sock=$(state_get socket || true)
  rm -rf -- "$dir"
  # A socket folder under /tmp (deep DIR) is ours too.
  if [[ -n $sock && $sock == /tmp/p2pshare-pg-* ]]; then rm -rf -- "$sock"; fi
  say "deleted $dir"
}

case $command in
  start) cmd_start ;;
  env) cmd_env ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  destroy) cmd_destroy ;;
esac
