#!/bin/bash
# The fuzzing campaign: build every libFuzzer target with clang (-fsanitize=fuzzer, address
# and undefined, on the targets and on the libraries they drive), run each for a set time,
# merge what it found into its in-tree corpus (libFuzzer's -merge=1: only inputs that reach
# new features are added, so the corpora stay small and ctest's replay fast), and print one
# line per target.
#
#   tests/fuzz/campaign.sh [-t SECONDS] [-j PARALLEL] [-b BUILDDIR] [-o OUTDIR] [TARGET...]
#
#   -t SECONDS   time per target (default 600); 0: no run, only the corpus minimised
#   -j PARALLEL  targets run at once (default 2); each is one libFuzzer process
#   -b BUILDDIR  the clang build (default /tmp/tlspolicyd-fuzz), configured and built first
#   -o OUTDIR    logs, work corpora and crash inputs (default BUILDDIR/campaign)
#   -n           no build (use BUILDDIR as it is)
#   TARGET       names without fuzz_ (default: every target of tests/CMakeLists.txt)
#
# tests/fuzz/NAME.options, when there is one, holds more libFuzzer flags for NAME (one line),
# e.g. a -max_len below the longest corpus input, which libFuzzer otherwise takes as its
# bound for generated inputs.
#
# A target that crashes is restarted with what is left of its time (at most 5 times), so a
# crash does not end its run; every crash input is kept in OUTDIR/NAME/crashes/. The line per
# target, also appended to OUTDIR/summary.tsv:
#   NAME secs=S execs=N cov=C ft=F corpus=BEFORE->AFTER new=K crashes=X
# where cov and ft are libFuzzer's last reported edge coverage and features, execs the sum
# of stat::number_of_executed_units over the restarts, and new the files -merge=1 added to
# tests/fuzz/corpus/NAME/. Exit status 1 when any target crashed or failed to run.
set -uo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
secs=600
par=2
build=/tmp/tlspolicyd-fuzz
out=""
dobuild=1
while getopts "t:j:b:o:n" opt; do
    case $opt in
    t) secs=$OPTARG ;;
    j) par=$OPTARG ;;
    b) build=$OPTARG ;;
    o) out=$OPTARG ;;
    n) dobuild=0 ;;
    *) sed -n '8,15p' "$0" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
out=${out:-$build/campaign}
if [ $# -gt 0 ]; then
    targets=("$@")
else
    # The set(FUZZERS ...) of tests/CMakeLists.txt, which may span lines.
    read -r -a targets < <(awk '/^set\(FUZZERS / { on = 1; sub(/^set\(FUZZERS /, "") }
        on { end = sub(/\).*$/, ""); printf "%s ", $0; if (end) exit }' "$src/tests/CMakeLists.txt")
fi
[ ${#targets[@]} -gt 0 ] || { echo "campaign: no targets" >&2; exit 2; }

if [ $dobuild = 1 ]; then
    # Configured every time: a target added since the last run is then known to make.
    CC=clang cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DENABLE_FUZZ=ON -DENABLE_ASAN=ON -DENABLE_UBSAN=ON >"$build.cmake.log" 2>&1 ||
        { echo "campaign: cmake failed, see $build.cmake.log" >&2; exit 2; }
    cmake --build "$build" -j2 --target "${targets[@]/#/fuzz_}" >"$build.build.log" 2>&1 ||
        { echo "campaign: build failed, see $build.build.log" >&2; exit 2; }
fi
mkdir -p "$out"

# minimise BIN SEED DIR: SEED's named files, and an edge-minimal set of the generated ones of
# SEED and of DIR/work. SEED is changed only when the merge succeeded.
minimise() {
    local bin=$1 seed=$2 dir=$3 f
    rm -rf "$dir/min" "$dir/generated"
    mkdir -p "$dir/min" "$dir/generated" "$dir/work"
    for f in "$seed"/*; do
        [ -f "$f" ] || continue
        if [[ $(basename "$f") =~ ^[0-9a-f]{40}$ ]]; then cp "$f" "$dir/generated/"; else cp "$f" "$dir/min/"; fi
    done
    if ! "$bin" -merge=1 -use_counters=0 "$dir/min" "$dir/generated" "$dir/work" \
            >"$dir/merge.log" 2>&1; then
        echo "$(basename "$seed"): merge failed, see $dir/merge.log; corpus left as it was" >&2
        return 1
    fi
    find "$seed" -maxdepth 1 -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}' -delete
    for f in "$dir/min"/*; do
        [[ $(basename "$f") =~ ^[0-9a-f]{40}$ ]] && cp "$f" "$seed/"
    done
    return 0
}

# run_target NAME: the whole run of one target; prints its summary line.
run_target() {
    local name=$1 bin="$build/tests/fuzz_$1" dir="$out/$1" seed="$src/tests/fuzz/corpus/$1"
    local left=$secs execs=0 crashes=0 runs=0 start now log cov ft before after added rc
    local -a extra=()
    [ -f "$src/tests/fuzz/$1.options" ] && read -r -a extra <"$src/tests/fuzz/$1.options"
    mkdir -p "$dir/work" "$dir/crashes" "$seed"
    [ -x "$bin" ] || { echo "$name: no binary $bin"; return 1; }
    [ "$secs" -gt 0 ] && rm -f "$dir"/run*.log
    before=$(find "$seed" -maxdepth 1 -type f | wc -l)
    mapfile -t old_files < <(find "$seed" -maxdepth 1 -type f -printf '%f\n')
    while [ "$left" -gt 0 ] && [ $runs -lt 6 ]; do
        runs=$((runs + 1))
        log="$dir/run$runs.log"
        start=$(date +%s)
        # detect_leaks: a leak is a finding; the replay under ctest checks it as well.
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            "$bin" -max_total_time="$left" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
            -artifact_prefix="$dir/crashes/" "${extra[@]}" "$dir/work" "$seed" >"$log" 2>&1
        rc=$?
        now=$(date +%s)
        execs=$((execs + $(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 | grep . || echo 0)))
        if [ $rc -ne 0 ]; then
            crashes=$((crashes + 1))
            echo "$name: run $runs exited $rc after $((now - start)) s: $(grep -m1 -E 'ERROR|invariant failed|runtime error' "$log")" >&2
        fi
        left=$((left - (now - start)))
        [ $rc -eq 0 ] && break
    done
    # The last status line ("#N ... cov: C ft: F corp: ...") of the last run that printed one.
    cov=$(cat "$dir"/run*.log 2>/dev/null | grep -E '^#[0-9]+.*cov: ' | tail -1)
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$cov")
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$cov")
    minimise "$bin" "$seed" "$dir"
    after=$(find "$seed" -maxdepth 1 -type f | wc -l)
    added=$(comm -13 <(printf '%s\n' "${old_files[@]}" | sort) \
                     <(find "$seed" -maxdepth 1 -type f -printf '%f\n' | sort) | wc -l)
    printf '%s secs=%s execs=%s cov=%s ft=%s corpus=%s->%s new=%s crashes=%s\n' \
        "$name" "$((secs - (left > 0 ? left : 0)))" "$execs" "${cov:-?}" "${ft:-?}" \
        "$before" "$after" "$added" "$crashes" | tee -a "$out/summary.tsv"
    echo $crashes >"$dir/crashes.count"
}

# Run the targets PARALLEL at a time; the exit status says whether any crashed.
running=0
for t in "${targets[@]}"; do
    rm -f "$out/$t/crashes.count"
    if [ $running -ge "$par" ]; then
        wait -n
        running=$((running - 1))
    fi
    run_target "$t" &
    running=$((running + 1))
done
wait
status=0
for t in "${targets[@]}"; do
    [ "$(cat "$out/$t/crashes.count" 2>/dev/null)" = 0 ] || status=1
done
exit $status
