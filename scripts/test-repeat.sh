#!/bin/bash
# Flaky tests are defects: build once under ASan+UBSan, then run the ctest suite N times in a
# row and count, per test, how often it failed. The whole log of every run with a failure is
# kept, so the first failure of a rare race can be read afterwards.
#
# usage: scripts/test-repeat.sh N [BUILD_DIR [CTEST_ARGS...]]
#   N            runs (at least 1)
#   BUILD_DIR    build directory (default build-repeat); configured and built once, here
#   CTEST_ARGS   passed to every ctest run, e.g. -R '^(integration_|lab_)' for the
#                integration tests only
# environment: REPEAT_LOGS (BUILD_DIR/repeat-logs) where the logs of failed runs go;
#              REPEAT_JOBS (2) ctest -j; REPEAT_NO_BUILD=1 skips configure and build.
# Exits 0 only when every run passed. The last line is the summary, e.g.
#   test-repeat: 20 runs of 52 tests, 19 clean; failures: integration_sts 1/20
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD

n=${1:?usage: scripts/test-repeat.sh N [BUILD_DIR [CTEST_ARGS...]]}
case $n in '' | *[!0-9]* | 0) echo "test-repeat: N must be a positive number: $n" >&2; exit 2 ;; esac
shift
build=${1:-build-repeat}
[ $# -eq 0 ] || shift
case $build in /*) ;; *) build=$src/$build ;; esac
logs=${REPEAT_LOGS:-$build/repeat-logs}
jobs=${REPEAT_JOBS:-2}

if [ "${REPEAT_NO_BUILD:-}" != 1 ]; then
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DENABLE_ASAN=ON -DENABLE_UBSAN=ON >/dev/null
    cmake --build "$build" -j"$jobs" >/dev/null
fi
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
mkdir -p "$logs"

declare -A fails=()
clean=0
ntests=0
for i in $(seq 1 "$n"); do
    log=$logs/run-$i.log
    t0=$(date +%s)
    rc=0
    (cd "$build" && ctest --output-on-failure -j"$jobs" "$@") >"$log" 2>&1 || rc=$?
    ntests=$(sed -n 's/.* tests passed, [0-9]* tests failed out of \([0-9]*\)$/\1/p' "$log" | tail -1)
    # ctest lists failures as "\t 12 - integration_sts (Failed)" after "The following tests FAILED:".
    failed=$(sed -n '/^The following tests FAILED:/,$p' "$log" |
             sed -n 's/^[[:space:]]*[0-9]* - \([^ ]*\) (.*/\1/p')
    if [ "$rc" -eq 0 ] && [ -z "$failed" ]; then
        clean=$((clean + 1))
        rm -f "$log"
        echo "test-repeat: run $i of $n: all ${ntests:-?} passed ($(( $(date +%s) - t0 )) s, load $(cut -d' ' -f1 /proc/loadavg))"
        continue
    fi
    [ -n "$failed" ] || failed="(ctest-exit-$rc)"
    for t in $failed; do fails[$t]=$(( ${fails[$t]:-0} + 1 )); done
    cp "$build/Testing/Temporary/LastTest.log" "$logs/run-$i.LastTest.log" 2>/dev/null || true
    echo "test-repeat: run $i of $n: FAILED $(echo $failed) ($(( $(date +%s) - t0 )) s; log $log)"
done

summary="test-repeat: $n runs of ${ntests:-?} tests, $clean clean"
if [ ${#fails[@]} -eq 0 ]; then
    echo "$summary; no failures"
    exit 0
fi
list=$(for t in "${!fails[@]}"; do echo "$t ${fails[$t]}/$n"; done | sort | paste -sd, - | sed 's/,/, /g')
echo "$summary; failures: $list (logs in $logs)"
exit 1
