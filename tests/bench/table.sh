#!/usr/bin/env bash
#
# Every benchmark of issue 12 in one run, as ONE Markdown table on stdout (progress on
# stderr): the scripts beside this one do the work, this one runs them and puts their rows
# side by side.
#
#   hot    cached answers in the lab (lab.sh: tlspolicyd and bench_ceiling over the lab's
#          DANE and MTA-STS domains, the medians of BENCH_ROUNDS (3) rounds of the two in
#          turn; peer.sh: tlspolicyd and postfix-mta-sts-resolver over its MTA-STS domains,
#          once): lockstep 1, lockstep 50, pipelined 10x32
#   cold   never-seen generated MTA-STS domains (cold.sh): 100, 1,000 and 10,000, each asked
#          once through 20 connections, of tlspolicyd and of the peer
#   fleet  three daemons asked at once for the lab's 7 MTA-STS policy domains, cold, with and
#          without a shared Redis (fleet.sh, issue 13): policy fetches counted in nginx's log
#   scale  10k, 100k and 1M policies imported with "tlspolicyd state import": resident memory
#          per domain, start-up to a serving socket (cold and warm page cache), cached p50,
#          p99 and CPU per answer (medians of rounds that take every N in turn)
#
# usage: tests/bench/table.sh BUILD_DIR       (a RelWithDebInfo build without sanitizers;
#                                              as root: the lab and the scale runs need it)
# environment:
#   BENCH_SECTIONS (hot,cold,fleet,scale)   the sections to run, comma-separated
#   BENCH_QUICK=1                     a try-out: 2 s per hot row, cold 100 and 1,000, scale 10k
#   BENCH_COLD_SIZES, BENCH_SCALE_SIZES   other N (space-separated)
# Each script's own output is kept in the work directory (BENCH_KEEP=1 keeps it). Exits 1
# when a script failed (its rows are then missing or marked), 0 otherwise.
set -eu
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: tests/bench/table.sh BUILD_DIR}
case $build in /*) ;; *) build=$PWD/$build ;; esac
sections=",${BENCH_SECTIONS:-hot,cold,fleet,scale},"
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    export BENCH_DURATION=${BENCH_DURATION:-2} BENCH_WARMUP=${BENCH_WARMUP:-1}
    export BENCH_ROUNDS=${BENCH_ROUNDS:-1} BENCH_SCALE_ROUNDS=${BENCH_SCALE_ROUNDS:-1}
    cold_sizes=${BENCH_COLD_SIZES:-100 1000}
    scale_sizes=${BENCH_SCALE_SIZES:-10000}
    fleet_rounds=2
else
    export BENCH_ROUNDS=${BENCH_ROUNDS:-3}
    cold_sizes=${BENCH_COLD_SIZES:-100 1000 10000}
    scale_sizes=${BENCH_SCALE_SIZES:-10000 100000 1000000}
    fleet_rounds=10
fi

bench_tag=table
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
bench_workdir tlspolicyd-table
[ -x "$build/tlspolicyd" ] || die "$build/tlspolicyd: not built"

rows=()
add() { rows+=("$1"); }
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(sed 's/ [0-9]*\/.*//' /proc/loadavg)

# cells FILE [SECTION]: the Markdown rows of FILE (after its header separator), one per line,
# cells separated by "|" without the outer bars or spaces around them; with SECTION, only the
# rows after the line "### SECTION".
cells() {
    awk -v want="${2:-}" '
        want != "" && /^### / { on = ($0 == "### " want); next }
        want != "" && !on { next }
        /^\|---/ { body = 1; next }
        body && /^\| / { sub(/^\| /, ""); sub(/ \|$/, ""); gsub(/ *\| */, "|"); print; next }
        body && !/^\|/ { body = 0 }' "$1"
}

# ---- hot ----
hot_modes="lockstep 1:1:1,lockstep 50:50:1,pipelined 10x32:10:32"
if [[ $sections == *,hot,* ]]; then
    say "hot: lab.sh (tlspolicyd and bench_ceiling, cached lab domains)"
    BENCH_KEYS=${BENCH_KEYS:-$here/lab-keys-cached} BENCH_MODES=$hot_modes "$here/lab.sh" "$build" >"$dir/lab.md" 2>"$dir/lab.log" ||
        { say "lab.sh failed; see $dir/lab.log"; failed=1; }
    while IFS='|' read -r server mode rate p50 p99 cpu errs ratio; do
        [ "$server" = daemon ] && server=tlspolicyd
        add "| hot | $server | $mode, lab DANE and MTA-STS domains (cached) | $rate/s | $p50 us |\
 $p99 us | $cpu us | errors $errs${ratio:+, $ratio x the ceiling rate} |"
    done < <(cells "$dir/lab.md")
    say "hot: peer.sh (tlspolicyd and mta-sts-daemon, cached MTA-STS domains)"
    rc=0
    BENCH_MODES=$hot_modes "$here/peer.sh" "$build" >"$dir/peer.md" 2>"$dir/peer.log" || rc=$?
    if [ "$rc" = 2 ]; then
        say "postfix-mta-sts-resolver is not installed: no peer rows"
    elif [ "$rc" != 0 ]; then
        say "peer.sh failed; see $dir/peer.log"
        failed=1
    fi
    while IFS='|' read -r server mode rate p50 p99 cpu errs; do
        add "| hot | $server | $mode, MTA-STS enforce/testing/none/no TXT (cached) | $rate/s |\
 $p50 us | $p99 us | $cpu us | errors $errs |"
    done < <([ -s "$dir/peer.md" ] && cells "$dir/peer.md" Speed)
fi

# ---- cold ----
if [[ $sections == *,cold,* ]]; then
    say "cold: cold.sh $cold_sizes"
    # shellcheck disable=SC2086 # a list of sizes
    "$here/cold.sh" "$build" $cold_sizes >"$dir/cold.md" 2>"$dir/cold.log" ||
        { say "cold.sh failed; see $dir/cold.log"; failed=1; }
    while IFS='|' read -r server n wall cpu p50 p99 max answers labcpu; do
        [ "$server" = peer ] && server="mta-sts-daemon (internal cache)"
        if [ "$server" = "libcurl floor" ]; then
            add "| cold | libcurl floor (bench_fetchfloor) | $(printf "%'d" "$n") policy fetches alone, one at a time |\
 $wall s for all | | | $cpu ms | $answers; $labcpu |"
            continue
        fi
        add "| cold | $server | $(printf "%'d" "$n") never-seen MTA-STS domains, 20 connections |\
 $wall s for all | $p50 ms | $p99 ms | $cpu ms | max $max ms; $answers; $labcpu |"
    done < <(cells "$dir/cold.md")
fi

# ---- fleet ----
# fleet.py's rows: | tier | lookups | fetches | p50 ms | p99 ms | max ms | CPU us/lookup | TEMP |
if [[ $sections == *,fleet,* ]]; then
    say "fleet: fleet.sh, three daemons with and without Redis, $fleet_rounds rounds"
    "$here/fleet.sh" "$build" "$fleet_rounds" >"$dir/fleet.md" 2>"$dir/fleet.log" ||
        { say "fleet.sh failed; see $dir/fleet.log"; failed=1; }
    while IFS='|' read -r tier lookups nfetch p50 p99 max cpu temp; do
        add "| fleet | 3 tlspolicyd, shared tier: $tier | $lookups cold lookups of 7 policy domains ($fleet_rounds rounds) | $nfetch policy fetches | $p50 ms | $p99 ms | $cpu us/lookup | max $max ms; TEMP $temp |"
    done < <(cells "$dir/fleet.md")
fi

# ---- scale ----
# The scale rows: tests/bench/scale.sh (the LMDB store: import, start-up cold and warm, all N
# cached, memory, cached latency) prints one "scale n=N key=value..." line per N.
if [[ $sections == *,scale,* ]]; then
    # One scale.sh for all N: it measures them in rounds that take every N in turn.
    say "scale: $scale_sizes policies imported"
    # shellcheck disable=SC2086 # a list of sizes
    "$here/scale.sh" "$build" $scale_sizes >"$dir/scale.out" 2>>"$dir/scale.log" ||
        { say "scale.sh failed; see $dir/scale.log"; failed=1; }
    for n in $scale_sizes; do
        line=$(grep "^scale n=$n " "$dir/scale.out" | tail -n 1)
        if [ -z "$line" ]; then
            add "| scale | tlspolicyd | $(printf "%'d" "$n") policies imported | failed | | | | see scale.log |"
            continue
        fi
        word() { printf '%s\n' "$line" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
        add "| scale | tlspolicyd | $(printf "%'d" "$n") policies imported (import $(word import_s) s) | start-up $(word cold_s) s cold ($(word cold_method)), $(word warm_s) s warm | $(word p50_us) us cached | $(word p99_us) us cached | $(word cpu_us) us | $(word bytes_per_domain) bytes per cached domain (VmRSS $(word rss_kib) KiB; heap $(word anon_bytes_per_domain) B/domain; DANE cache $(word dane_cached), hits/misses $(word dane_hits)/$(word dane_misses); cached figures the medians of $(word rounds) rounds, p50 $(word p50_rounds) us, CPU $(word cpu_rounds) us) |"
    done
fi

printf '## tlspolicyd benchmarks\n\n'
printf '%s; %s CPUs, %s; load average %s before, %s after; build %s (%s).\n' \
    "$started" "$(nproc)" "$(uname -sr)" "$load_before" "$(sed 's/ [0-9]*\/.*//' /proc/loadavg)" \
    "${build##*/}" "$("$build/tlspolicyd" -V 2>&1 | head -n 1)"
printf 'hot: per answer, write to reply, 5 s after 1 s warm-up unless BENCH_QUICK (against the\n'
printf 'ceiling: medians of %s rounds); CPU: the\n' "${BENCH_ROUNDS:-1}"
printf "server's CPU time per answer. cold: each domain asked once, resolver restarted and server\n"
printf 'started empty; CPU: per domain. fleet: CPU of the three daemons per lookup. scale: policies\n'
printf 'imported, then the daemon started on them.\n\n'
printf '| section | server | case | rate or time | p50 | p99 | CPU | notes |\n'
printf '|---|---|---|---:|---:|---:|---:|---|\n'
printf '%s\n' "${rows[@]}"
exit "$failed"
