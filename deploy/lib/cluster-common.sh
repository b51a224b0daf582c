# Shell functions shared by deploy/local/cluster.sh and deploy/netns/cluster.sh; sourced, not run.
# They use the calling script's settings: EXIT_* codes, peer_dll, log_file, cli, peer_alive_pid,
# start_timeout.

die() {
  local code=$1
  shift
  echo "cluster.sh: $*" >&2
  exit "$code"
}

peer_index() {
  local name=$1
  [[ $name =~ ^peer-([1-9][0-9]*)$ ]] || die "$EXIT_USAGE" "invalid peer name '$name' (expected peer-1..peer-N)"
  echo "${BASH_REMATCH[1]}"
}

peer_command() {
  local apphost=${peer_dll%.dll}
  if [[ -x $apphost ]]; then
    echo "$apphost"
  else
    echo dotnet
    echo "$peer_dll"
  fi
}

fail_peer_died() {
  local name=$1 log
  log=$(log_file "$name")
  echo "cluster.sh: $name exited during start; last lines of $log:" >&2
  tail -n 30 -- "$log" >&2 || true
  return "$EXIT_FAILED"
}

# Waits until `p2pshare peers --json` lists every given peer, failing fast if one of them dies.
wait_listed() {
  local deadline=$1
  shift
  local json name
  local -a missing
  while :; do
    json=$(cli peers --json 2>/dev/null) || json=
    missing=()
    for name in "$@"; do
      peer_alive_pid "$name" >/dev/null || { fail_peer_died "$name"; return; }
      grep -Eq "\"name\"[[:space:]]*:[[:space:]]*\"$name\"" <<<"$json" || missing+=("$name")
    done
    ((${#missing[@]} == 0)) && return 0
    ((SECONDS < deadline)) || {
      echo "cluster.sh: not listed by 'p2pshare peers' after ${start_timeout}s: ${missing[*]}" >&2
      return "$EXIT_FAILED"
    }
    sleep 0.5
  done
}
