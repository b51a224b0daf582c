#!/usr/bin/env bash
# Runs the whole benchmark suite on this machine and writes the figures:
#   1. builds, starts a fresh 3-peer local cluster with the README's command (deploy/local/cluster.sh up 3)
#      in a cluster folder of its own, and a throwaway redis-server on a free port (installed with
#      apt-get when missing and root);
#   2. runs p2pshare-bench (every scenario; mem side by side with redis-benchmark, file with dd; redis:
#      redis-benchmark -t set,get,mset -d 64 at -c 8, -c 50, -c 50 -P 16 against redis-server and
#      against peer-1's RESP port in the same run, the ratio per test and shape);
#   3. restarts the cluster with time slicing off (Compute:Quantum = 1 day) and runs fairness again;
#   4. prints the JSON lines, writes them and a markdown table, tears everything down.
#
#   tests/P2PShare.Benchmarks/run.sh [--quick] [--out DIR] [--legacy HOST:PORT]     (default DIR: TestResults/bench)
#
# --legacy HOST:PORT: the original Python system's peer port; the legacy scenario then runs the same
# client against it right after ours and prints the ratio.
#
# --quick: small sizes (200 tasks, 1 s of mem, 16 MiB file) for a smoke run. Ports: the cluster uses
# P2PSHARE_*_PORT_BASE if set, else 21111/23000/24000/25888 so a developer's own cluster on the
# default ports is left alone.
set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.."
repo=$PWD

quick=()
legacy=()
out=TestResults/bench
while (($#)); do
  case $1 in
    --quick) quick=(--quick) ;;
    --out) out=$2; shift ;;
    --legacy)
      [[ ${2:-} =~ ^[^:]+:[0-9]+$ ]] || { echo "run.sh: --legacy wants HOST:PORT, got '${2:-}'" >&2; exit 2; }
      legacy=(--legacy "$2"); shift ;;
    *) echo "usage: $0 [--quick] [--out DIR] [--legacy HOST:PORT]" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p -- "$out"
out=$(cd -- "$out" && pwd)
lines=$out/results.jsonl
: >"$lines"

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
export P2PSHARE_CLUSTER_DIR=${P2PSHARE_BENCH_CLUSTER_DIR:-$(mktemp -d /tmp/p2pshare-bench-cluster.XXXXXX)}
export P2PSHARE_SILO_PORT_BASE=${P2PSHARE_SILO_PORT_BASE:-21111}
export P2PSHARE_GATEWAY_PORT_BASE=${P2PSHARE_GATEWAY_PORT_BASE:-23000}
export P2PSHARE_LEGACY_PORT_BASE=${P2PSHARE_LEGACY_PORT_BASE:-24000}
export P2PSHARE_TRACKER_LEGACY_PORT=${P2PSHARE_TRACKER_LEGACY_PORT:-25888}
export P2PSHARE_RESP_PORT_BASE=${P2PSHARE_RESP_PORT_BASE:-26379}
gateways=()
for k in 0 1 2; do gateways+=(--gateway "127.0.0.1:$((P2PSHARE_GATEWAY_PORT_BASE + k))"); done

redis_pid=""
cleanup() {
  deploy/local/cluster.sh down >/dev/null 2>&1 || true
  [[ -z $redis_pid ]] || kill "$redis_pid" 2>/dev/null || true
  rm -rf -- "$P2PSHARE_CLUSTER_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; } </dev/null >&2
    # The package starts a system service; the comparison uses its own server.
    systemctl disable --now redis-server >/dev/null 2>&1 || true
  fi
fi
redis=()
if command -v redis-server >/dev/null; then
  redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >/dev/null &
  redis_pid=$!
  for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis=(--redis-port "$redis_port" --redis-pid "$redis_pid")
else
  echo "run.sh: redis-server is not installed; the mem comparison is left out" >&2
fi

dotnet build tests/P2PShare.Benchmarks -c Release -nologo -v:q </dev/null >&2
bench() { dotnet tests/P2PShare.Benchmarks/bin/Release/net10.0/p2pshare-bench.dll "${gateways[@]}" "${quick[@]}" "$@"; }

deploy/local/cluster.sh up 3 >&2
scenarios=compile,file,tasks,batch,open,balance,fairness,mem,legacy
resp=()
if ((${#redis[@]})); then
  scenarios+=,redis
  # peer-1's RESP port, from P2PSHARE_RESP_PORT_BASE; a cluster.sh without RESP support leaves it closed.
  if [[ $(redis-cli -p "$P2PSHARE_RESP_PORT_BASE" ping 2>/dev/null) == PONG ]]; then
    resp=(--resp-port "$P2PSHARE_RESP_PORT_BASE")
  else
    echo "run.sh: no peer answers PING on RESP port $P2PSHARE_RESP_PORT_BASE (P2PSHARE_RESP_PORT_BASE); the redis scenario measures redis-server only" >&2
  fi
fi
bench --pid-dir "$P2PSHARE_CLUSTER_DIR/run" "${redis[@]}" "${resp[@]}" "${legacy[@]}" --scenarios "$scenarios" | tee -a "$lines"
deploy/local/cluster.sh down >&2

P2PSHARE__COMPUTE__QUANTUM=1.00:00:00 deploy/local/cluster.sh up 3 >&2
bench --time-slicing off --scenarios fairness | tee -a "$lines"
deploy/local/cluster.sh down >&2

python3 tests/P2PShare.Benchmarks/table.py "$lines" >"$out/table.md"
{
  echo
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release && echo "$PRETTY_NAME"), $(uname -r), .NET $(dotnet --version), python $(python3 -c 'import platform; print(platform.python_version())')"
  echo "command: tests/P2PShare.Benchmarks/run.sh ${quick[*]} ${legacy[*]}  ($(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'))"
} >>"$out/table.md"
cat "$out/table.md"
if grep -q '"error"' "$lines"; then
  echo "run.sh: a scenario failed (see $lines)" >&2
  exit 1
fi
