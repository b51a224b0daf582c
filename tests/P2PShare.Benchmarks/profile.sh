#!/usr/bin/env bash
# Where the CPU goes on a peer under the tasks scenario, in one command:
#   1. builds, starts a fresh 3-peer local cluster (deploy/local/cluster.sh up 3) in a folder of its own,
#      the peers with DOTNET_PerfMapEnabled=1 and DOTNET_EnableWriteXorExecute=0 so perf can name
#      JIT-compiled frames;
#   2. drives load with p2pshare-bench (routed trivial C# tasks, N submitters) and waits until the
#      measured run has started (the bench says so on stderr);
#   3. one after the other, each for S seconds, on the same steady load:
#        perf record -g of the three peers (CPU samples: kernel, runtime, JIT, managed code),
#        dotnet-counters collect System.Runtime on the traced peer (exceptions/s, GC, thread pool),
#        dotnet-trace collect --profile dotnet-sampled-thread-time on the traced peer (managed stacks);
#   4. prints the summaries (perf_top.py, counters_summary.py, profile_top.py) and keeps the raw
#      files in the output folder; tears everything down.
#
#   tests/P2PShare.Benchmarks/profile.sh [--seconds S] [--warmup S] [--submitters N] [--peer NAME] [--out DIR]
#       defaults: 10 s each, 60 s of load before the first trace (the peers' tiered JIT settles),
#       16 submitters, peer-1, TestResults/profile
#
# Needs perf (Debian: linux-perf), dotnet-trace and dotnet-counters (dotnet tool install -g ...);
# a missing one is skipped with a message. perf needs root or kernel.perf_event_paranoid <= 1.
# Ports: P2PSHARE_*_PORT_BASE if set, else 21211/23100/24100/25889 (apart from run.sh's).
set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.."

seconds=10
warmup=60
submitters=16
peer=peer-1
out=TestResults/profile
while (($#)); do
  case $1 in
    --seconds) seconds=$2; shift ;;
    --warmup) warmup=$2; shift ;;
    --submitters) submitters=$2; shift ;;
    --peer) peer=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "usage: $0 [--seconds S] [--warmup S] [--submitters N] [--peer NAME] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || { echo "profile.sh: --seconds wants a positive whole number, got '$seconds'" >&2; exit 2; }
[[ $warmup =~ ^[0-9]+$ ]] || { echo "profile.sh: --warmup wants a whole number of seconds, got '$warmup'" >&2; exit 2; }
[[ $submitters =~ ^[0-9]+$ && $submitters -gt 0 ]] || { echo "profile.sh: --submitters wants a positive whole number, got '$submitters'" >&2; exit 2; }
[[ $peer =~ ^peer-[123]$ ]] || { echo "profile.sh: --peer is one of peer-1, peer-2, peer-3, got '$peer'" >&2; exit 2; }
mkdir -p -- "$out"
out=$(cd -- "$out" && pwd)
here=tests/P2PShare.Benchmarks
export PATH=$PATH:$HOME/.dotnet/tools

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
export P2PSHARE_CLUSTER_DIR=${P2PSHARE_PROFILE_CLUSTER_DIR:-$(mktemp -d /tmp/p2pshare-profile-cluster.XXXXXX)}
export P2PSHARE_SILO_PORT_BASE=${P2PSHARE_SILO_PORT_BASE:-21211}
export P2PSHARE_GATEWAY_PORT_BASE=${P2PSHARE_GATEWAY_PORT_BASE:-23100}
export P2PSHARE_LEGACY_PORT_BASE=${P2PSHARE_LEGACY_PORT_BASE:-24100}
export P2PSHARE_TRACKER_LEGACY_PORT=${P2PSHARE_TRACKER_LEGACY_PORT:-25889}
export P2PSHARE_HTTP_PORT_BASE=${P2PSHARE_HTTP_PORT_BASE:-off}
gateways=()
for k in 0 1 2; do gateways+=(--gateway "127.0.0.1:$((P2PSHARE_GATEWAY_PORT_BASE + k))"); done

load_pid=""
cleanup() {
  [[ -z $load_pid ]] || kill "$load_pid" 2>/dev/null || true
  deploy/local/cluster.sh down >/dev/null 2>&1 || true
  rm -rf -- "$P2PSHARE_CLUSTER_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

dotnet build "$here" -c Release -nologo -v:q </dev/null >&2
DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 deploy/local/cluster.sh up 3 >&2
run=$P2PSHARE_CLUSTER_DIR/run
pid=$(cat "$run/$peer.pid")
peers=$(cat "$run"/peer-*.pid | paste -sd, -)

# Far more tasks than the profile needs: the load is stopped once the traces are taken. On a loaded
# machine the client's first connection can time out; it is retried.
start_load() {
  dotnet "$here/bin/Release/net10.0/p2pshare-bench.dll" "${gateways[@]}" --pid-dir "$run" \
    --scenarios tasks --variants routed --submitters "$submitters" --tasks 10000000 --tasks-seconds $((warmup + 3 * seconds + 120)) \
    >"$out/load.jsonl" 2>"$out/load.err" &
  load_pid=$!
}
start_load
attempts=1
for _ in $(seq 1800); do
  grep -q ': measuring' "$out/load.err" 2>/dev/null && break
  if ! kill -0 "$load_pid" 2>/dev/null; then
    if grep -q 'cannot reach the cluster' "$out/load.err" && ((attempts < 3)); then
      attempts=$((attempts + 1))
      start_load
      continue
    fi
    echo "profile.sh: the load generator stopped:" >&2
    cat "$out/load.err" >&2
    exit 1
  fi
  sleep 0.1
done
grep -q ': measuring' "$out/load.err" || { echo "profile.sh: the load did not start within 180 s" >&2; exit 1; }
echo "profile.sh: load running ($submitters submitters, routed trivial C# tasks); $warmup s of warm-up, then tracing $peer (PID $pid), $seconds s per tool" >&2
# A measuring window, not synchronisation: the first seconds of load are dominated by tiered JIT.
sleep "$warmup"
kill -0 "$load_pid" 2>/dev/null || { echo "profile.sh: the load generator stopped during the warm-up:" >&2; cat "$out/load.err" >&2; exit 1; }

{
  echo "# Profile of $peer under routed trivial C# tasks, $submitters submitters"
  echo
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/summary.md"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }

if command -v perf >/dev/null; then
  perf record -F 499 -g -p "$peers" -o "$out/perf.data" -- sleep "$seconds" >/dev/null 2>"$out/perf.err" || { cat "$out/perf.err" >&2; }
  if [[ -s $out/perf.data ]]; then
    { echo; echo "## perf: CPU samples of the three peers (perf record -F 499 -g, $seconds s)"; echo
      perf script -F comm,pid,tid,ip,sym,dso -i "$out/perf.data" 2>/dev/null | python3 "$here/perf_top.py" --peers "$peers"
      # perf follows the peers' children, so their exec calls are the processes started in the window.
      echo; echo "processes the peers started in these $seconds s (exec events; a worker start is sh, setpriv, prlimit, bwrap, then the runtime):"; echo
      echo "| execs | program |"; echo "|---:|---|"
      perf script --show-task-events -i "$out/perf.data" 2>/dev/null | sed -n 's/.*PERF_RECORD_COMM exec: \([^:]*\):.*/\1/p' | sort | uniq -c | sort -rn |
        awk '{printf "| %d | %s |\n", $1, $2}'; } >>"$out/summary.md"
  fi
else
  echo "profile.sh: perf is not installed (Debian: apt-get install linux-perf); the CPU-sample profile is left out" >&2
fi

if command -v dotnet-counters >/dev/null; then
  before=$(cpu_ticks)
  dotnet-counters collect -p "$pid" --counters System.Runtime,P2PShare --refresh-interval 1 --duration "00:00:00:$(printf %02d "$seconds")" \
    --format csv -o "$out/counters.csv" >/dev/null 2>&1 || true
  after=$(cpu_ticks)
  { echo; echo "## dotnet-counters on $peer ($seconds s): $(( (after - before) * 10 / seconds )) ms of CPU per second from /proc"; echo
    python3 "$here/counters_summary.py" "$out/counters.csv"; } >>"$out/summary.md"
else
  echo "profile.sh: dotnet-counters is missing (dotnet tool install -g dotnet-counters)" >&2
fi

if command -v dotnet-trace >/dev/null; then
  dotnet-trace collect -p "$pid" --profile dotnet-sampled-thread-time --duration "00:00:00:$(printf %02d "$seconds")" \
    -o "$out/trace.nettrace" >/dev/null 2>&1 || true
  dotnet-trace convert "$out/trace.nettrace" --format Speedscope -o "$out/trace" >/dev/null 2>&1 || true
  { echo; echo "## dotnet-trace on $peer (dotnet-sampled-thread-time, $seconds s): managed stacks"; echo
    python3 "$here/profile_top.py" "$out/trace.speedscope.json"; } >>"$out/summary.md"
else
  echo "profile.sh: dotnet-trace is missing (dotnet tool install -g dotnet-trace)" >&2
fi

kill "$load_pid" 2>/dev/null || true
wait "$load_pid" 2>/dev/null || true
load_pid=""
cp -- "$P2PSHARE_CLUSTER_DIR"/logs/peer-*.log "$out/" 2>/dev/null || true
cat "$out/summary.md"
echo "profile.sh: raw files in $out" >&2
