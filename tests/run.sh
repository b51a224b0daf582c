#!/usr/bin/env bash
# The project's test command: every test project of the solution in Release, then one line
# `N passed, N failed, N skipped` counted from the TRX results. Non-zero exit when a test failed,
# the build or a test host failed, or no test ran.
set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

results=TestResults/run
rm -rf -- "$results"
mkdir -p -- "$results"

status=0
dotnet build P2PShare.sln -c Release -nologo -v:q </dev/null || status=$?
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

verdict=0
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
