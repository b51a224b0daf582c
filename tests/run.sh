#!/usr/bin/env bash
# The project's test command: every test project of the solution in Release, then one line
# `N passed, N failed, N skipped` counted from the TRX results. Non-zero exit when a test failed,
# a file is off the .editorconfig style (dotnet format --verify-no-changes),
# the build or a test host failed, or no test ran, or (with CI=true) PostgreSQL could not start.
set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

results=TestResults/run
rm -rf -- "$results"
mkdir -p -- "$results"

# A throwaway PostgreSQL server of the run's own (not a developer's server in .local/postgres)
# for the tests that need one; they read its connection string from P2PSHARE_TEST_PG and are
# reported skipped without it. A P2PSHARE_TEST_PG given by the caller is used as it is.
# Its folder is under /tmp, not in the checkout: as root the server runs as the OS user postgres,
# which cannot enter a private checkout (a home folder, a mktemp folder).
pg_dir=""
pg_started=false
pg_problem=""
stop_postgres() {
  if [[ $pg_started == true ]]; then
    pg_started=false
    deploy/postgres/pg.sh destroy --dir "$pg_dir" </dev/null >&2 || true
  fi
  [[ -z $pg_dir ]] || rm -rf -- "$pg_dir"
}
trap stop_postgres EXIT
trap 'exit 130' INT TERM
if [[ -z ${P2PSHARE_TEST_PG:-} ]]; then
  pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/p2pshare-test-pg.XXXXXX")
  if pg_env=$(deploy/postgres/pg.sh start --dir "$pg_dir" </dev/null); then
    pg_started=true
    eval "$pg_env"
    export P2PSHARE_TEST_PG=$P2PSHARE_PG_CONNECTION
  else
    pg_problem="deploy/postgres/pg.sh could not start a server"
    echo "warning: $pg_problem; tests needing PostgreSQL will be skipped" >&2
  fi
fi

# python3 runs Python tasks in the peers and the seed-protocol client in the end-to-end tests.
# Behind the kernel wall tasks need the system's /usr/bin/python3: an interpreter under a home
# folder (pyenv) is closed to the sandbox's uid.
if [[ ! -x /usr/bin/python3 ]]; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "installing python3 (Python tasks and the seed-protocol tests need it)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3; } </dev/null >&2 ||
      echo "warning: could not install python3; Python tests will fail" >&2
  else
    echo "warning: python3 is not installed; Python tests will fail (install it: apt-get install python3)" >&2
  fi
fi

# redis-cli is one of the clients the Redis-protocol tests drive against a peer.
if ! command -v redis-cli >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "installing redis-tools (the Redis-protocol tests run redis-cli)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-tools; } </dev/null >&2 ||
      echo "warning: could not install redis-tools; the redis-cli tests will fail" >&2
  else
    echo "warning: redis-cli is not installed; the redis-cli tests will fail (install it: apt-get install redis-tools)" >&2
  fi
fi

# The kernel wall around tasks: bubblewrap, util-linux (setpriv, prlimit) and libseccomp2. Without
# them the peers refuse tasks (fail closed) and the compute tests fail with the reason.
missing_wall=()
command -v bwrap >/dev/null || missing_wall+=(bubblewrap)
{ command -v setpriv >/dev/null && command -v prlimit >/dev/null; } || missing_wall+=(util-linux)
{ [[ -e /usr/lib/x86_64-linux-gnu/libseccomp.so.2 ]] || ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2'; } || missing_wall+=(libseccomp2)
if ((${#missing_wall[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "installing ${missing_wall[*]} (the kernel sandbox around tasks needs it)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_wall[@]}"; } </dev/null >&2 ||
      echo "warning: could not install ${missing_wall[*]}; peers will refuse tasks and compute tests will fail" >&2
  else
    echo "warning: ${missing_wall[*]} not installed; peers will refuse tasks (install: apt-get install ${missing_wall[*]})" >&2
  fi
fi

# Chromium runs the status page in the browser tests (driven by Playwright, which downloads nothing).
chromium_problem=""
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "installing chromium (the status page's browser tests need it)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } </dev/null >&2 ||
      chromium_problem="could not install chromium with apt-get"
  else
    chromium_problem="chromium is not installed (apt-get install chromium)"
  fi
  # Without CI the browser tests are then reported skipped with the reason; with CI=true they fail.
  [[ -z $chromium_problem ]] || echo "warning: $chromium_problem; the browser tests cannot run" >&2
fi

status=0
dotnet build P2PShare.sln -c Release -nologo -v:q </dev/null || status=$?
# One style (.editorconfig): a file that `dotnet format` would change fails the run; the tests
# still run so that one report shows both. Fix with `dotnet format P2PShare.sln`.
format_problem=""
if ((status == 0)) && ! dotnet format P2PShare.sln --verify-no-changes --no-restore -v q </dev/null; then
  format_problem="dotnet format --verify-no-changes found files off the .editorconfig style (run: dotnet format P2PShare.sln)"
fi
# -m:1 runs the test projects one after another: the cluster tests' timing assertions (time
# slicing, fairness) must not share the two cores with the end-to-end cluster's processes.
((status != 0)) || dotnet test P2PShare.sln -c Release --no-build -m:1 \
  --logger trx --logger "console;verbosity=normal" --results-directory "$results" \
  --blame-hang-timeout 15m --blame-hang-dump-type none </dev/null || status=$?

count() {
  # Each <UnitTestResult ...> element carries one outcome attribute; XML escapes '>' in attributes.
  cat -- "$results"/*.trx 2>/dev/null | grep -o '<UnitTestResult [^>]*' |
    grep -c " outcome=\"$1\"" || true
}
passed=$(count Passed)
failed=$(count Failed)
skipped=$(count NotExecuted)

stop_postgres

verdict=0
if [[ -n $format_problem ]]; then
  echo "$format_problem" >&2
  verdict=1
fi
if [[ -n $pg_problem && ${CI:-} == true ]]; then
  # In CI a skipped PostgreSQL suite is a broken run, not a pass.
  echo "$pg_problem (CI)" >&2
  verdict=1
fi
if ((status != 0)); then
  echo "dotnet test exited with $status" >&2
  verdict=$status
elif ((failed > 0)); then
  verdict=1
elif ((passed + failed == 0)); then
  echo "no test ran" >&2
  verdict=1
fi
# Last line of the run, so that CI reads the counts.
echo "$passed passed, $failed failed, $skipped skipped"
exit "$verdict"
