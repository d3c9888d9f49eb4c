#!/bin/bash
# The scale rows of issue 12: N MTA-STS policies in state_dir, all of them cached.
#
#   tests/bench/scale.sh BUILD_DIR [N...]      (as root; default N: 10000 100000 1000000)
#
# Runs itself inside the lab (tests/lab/dnslab.sh), whose validating resolver answers for
# the generated domains: a lookup needs DNS first (no DANE for the insecure zone
# unsigned.test, then MTA-STS decides, and the TXT id is checked behind the cached answer).
# For each N: generates N records (dNNNNNNN.unsigned.test, 1 to 3 mx patterns, valid for 30
# days), imports them with "tlspolicyd state import" into an empty state_dir (timed), then
# starts the daemon on it three times with nothing leaving the lab (a unix socket, DNS to
# the lab's resolver, metrics on a loopback port): cold (the page cache dropped with
# "sync; echo 3 > /proc/sys/vm/drop_caches" first; when the kernel refuses, the store file
# is evicted with posix_fadvise(DONTNEED) and the row says so) and warm, each timed from exec
# to the "ready" line; the third run asks every domain once through the socket
# (bench_loadgen, one connection with 32 requests in flight, each key once; the answers must
# all be OK) so all N are cached, reads VmRSS,
# and stays up. When every N is filled, the cached lookups are measured in rounds
# (BENCH_SCALE_ROUNDS, 5), each round taking every N in turn, so that whatever else the
# machine does in those minutes weighs on every N alike: 5 s after 1 s of warm-up, 50
# lockstep connections started evenly over the N keys (bench_loadgen --spread, so that every
# part of the tables is asked; BENCH_SCALE_START=near starts them at keys 0 to 49 as before,
# where 5 s asks only the first few thousand domains): p50, p99 and the daemon's CPU time
# per answer, each the median over the rounds, and the DANE facts cache's hits and misses
# over all of them.
# The daemon keeps DNS answers at least 30 minutes (dns_min_ttl=30m): the lab's TTLs are
# 60 s, so that its tests see zone changes within a minute, and filling a million domains
# takes longer than that; with them, most domains' DNS answers and DANE facts would have
# expired before they were measured and every lookup would ask the resolver again.
# Real zones' MX and negative TTLs are minutes to hours. For the same reason sts_recheck is
# an hour: a policy read from the store has its TXT id checked behind the first answer (the
# fill), and again at the first use 5 minutes (the default) after that; a million-domain fill
# on a busy machine takes longer, so with the default every measured lookup of the 1M row
# would start a TXT check behind its answer and the 10k row's none (the count is printed as
# sts_rechecks). BENCH_PERF=1 records the daemon with perf (call graphs) during the
# measurement and keeps the top of "perf report" in the work directory, perf-N.txt.
#
# Output, on stdout: one machine-readable line per N,
#   scale n=N import_s=.. cold_s=.. warm_s=.. cached=.. rss_kib=.. bytes_per_domain=..
#         rss_ready_kib=.. added_bytes_per_domain=.. anon_kib=.. anon_bytes_per_domain=..
#         p50_us=.. p99_us=.. cpu_us=.. rounds=.. p50_rounds=a,b,c cpu_rounds=a,b,c
#         errors=.. cold_method=drop_caches|fadvise
#         store_bytes=.. dane_cached=.. dane_hits=.. dane_misses=.. sts_rechecks=..
#         load='1 5 15 min load averages'
# (VmRSS counts the store's pages mapped from the page cache; RssAnon is the heap alone;
# "added" is VmRSS after the lookups minus VmRSS at "ready", divided by N)
# and then a Markdown table of the same figures. Progress goes to stderr. Exit 0 when every
# N measured cleanly, 1 otherwise. BENCH_KEEP=1 keeps the work directory.
set -euo pipefail

bench_tag=scale
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${LAB_RESOLVER:-}" ]; then
    b=${1:?usage: tests/bench/scale.sh BUILD_DIR [N...]}
    case $b in /*) ;; *) b=$PWD/$b ;; esac
    shift
    exec "$here/../lab/dnslab.sh" "$here/scale.sh" "$b" "$@"
fi
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"

build=${1:?usage: tests/bench/scale.sh BUILD_DIR [N...]}
shift
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000 1000000)
bin=$build/tlspolicyd
loadgen=$build/tests/bench_loadgen
[ -x "$bin" ] || die "no $bin"
[ -x "$loadgen" ] || die "no $loadgen (build the tests)"
[ "$(id -u)" = 0 ] || die "run as root (the page cache is dropped for the cold start)"

bench_workdir tlspolicyd-scale

# free_port: a free loopback port (each daemon's metrics endpoint).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# gen N FILE KEYS: N records as JSON lines, and their domains one a line.
gen() {
    local now
    now=$(date +%s)
    awk -v n="$1" -v f="$((now - 60))" -v a=2592000 -v keys="$3" 'BEGIN {
        for (i = 0; i < n; i++) {
            d = sprintf("d%07d.unsigned.test", i);
            k = i % 3;
            mx = "\"mx1." d "\"";
            if (k >= 1) mx = mx ",\"*.mx." d "\"";
            if (k >= 2) mx = mx ",\"backup-mail-exchanger." d "\"";
            printf "{\"version\":1,\"domain\":\"%s\",\"id\":\"id%07d\",\"fetched\":%d,\"expires\":%d,\"mode\":\"enforce\",\"max_age\":%d,\"mx\":[%s]}\n",
                d, i, f, f + a, a, mx;
            print d > keys;
        }
    }' >"$2"
}

# cold_cache FILE: drop the page cache (or, refused, this file's pages); sets cold_method.
cold_cache() {
    sync
    if echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
        cold_method=drop_caches
    else
        python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$1"
        cold_method=fadvise
    fi
}

# daemon_start N: start the daemon of N on $dir/state-N (its socket $dir/x-N.sock, its log
# $dir/daemon-N.log, its metrics port mports[N]); sets dpid and start_s (exec to "ready").
daemon_start() {
    local n=$1 t0 t1 i log=$dir/daemon-$1.log
    : >"$log"
    t0=$(date +%s.%N)
    "$bin" -o "state_dir=$dir/state-$n" -o user= -o "listen=unix:$dir/x-$n.sock" \
        -o "metrics_listen=inet:127.0.0.1:${mports[$n]}" \
        -o "dns_servers=$LAB_RESOLVER:$LAB_RESOLVER_PORT" \
        -o log_level=info -o "sts_cache_size=$((n + 1000))" -o max_connections=200 \
        -o dns_min_ttl=30m -o sts_recheck=1h \
        2>"$log" &
    dpid=$!
    pids+=("$dpid")
    for ((i = 0; i < 60000; i++)); do
        grep -q ' ready' "$log" && break
        kill -0 "$dpid" 2>/dev/null || {
            tail -5 "$log" >&2
            die "the daemon exited during start-up"
        }
        sleep 0.001
    done
    t1=$(date +%s.%N)
    grep -q ' ready' "$log" || die "no ready line in 60 s"
    start_s=$(echo "$t1 - $t0" | bc)
}

# daemon_stop PID: stop one daemon and forget it.
daemon_stop() {
    local p keep=()
    kill -TERM "$1"
    wait "$1" 2>/dev/null || true
    for p in ${pids[@]+"${pids[@]}"}; do [ "$p" = "$1" ] || keep+=("$p"); done
    pids=(${keep[@]+"${keep[@]}"})
}

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# The anonymous part of it: the heap, without the store's pages mapped from the page cache.
rss_anon() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status"; }
# metric N NAME: the value of NAME on the metrics endpoint of N's daemon.
metric() { curl -s "http://127.0.0.1:${mports[$1]}/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
# commas V...: the values joined with commas.
commas() {
    local IFS=,
    echo "$*"
}

# Phase 1, for each N: import, start-up cold and warm, then a daemon that asks every domain
# once and stays up, its memory read.
declare -A mports dpids import_s cold_s warm_s cached rss_full rss_ready anon_full fill_errs \
    dane_cached p50s p99s cpus errs_all hits misses rechecks
for n in "${sizes[@]}"; do
    mports[$n]=$(free_port)
    state=$dir/state-$n
    say "N=$n: generating"
    gen "$n" "$dir/records.jsonl" "$dir/keys-$n.txt"
    t0=$(date +%s.%N)
    "$bin" state import -o "state_dir=$state" -o user= "$dir/records.jsonl" \
        >"$dir/import.out" 2>"$dir/import.err" || {
        tail -5 "$dir/import.err" >&2
        die "import failed"
    }
    t1=$(date +%s.%N)
    rm -f "$dir/records.jsonl"
    import_s[$n]=$(echo "$t1 - $t0" | bc)
    say "N=$n: imported in ${import_s[$n]} s: $(cat "$dir/import.out")"

    cold_cache "$state/policies.mdb"
    daemon_start "$n"
    cold_s[$n]=$start_s
    daemon_stop "$dpid"
    daemon_start "$n"
    warm_s[$n]=$start_s
    daemon_stop "$dpid"
    say "N=$n: start-up cold ${cold_s[$n]} s ($cold_method), warm ${warm_s[$n]} s"

    daemon_start "$n"
    dpids[$n]=$dpid
    rss_ready[$n]=$(rss "$dpid")
    # Every domain once: one connection walks the key list in order, 32 requests in flight,
    # and stops after N answers (bench_loadgen's connections would start at neighbouring keys).
    bench_measure "daemon-$n" "$dpid" '%.2f' "$loadgen" --connect "unix:$dir/x-$n.sock" \
        --connections 1 --depth 32 --warmup 0 --duration 3600 --requests "$n" \
        --keys "$dir/keys-$n.txt" --json
    fill_errs[$n]=$errs
    say "N=$n: every domain once: $(printf '%s\n' "$json" | sed -n 's/.*"replies":\({[^}]*}\).*/\1/p')"
    cached[$n]=$(metric "$n" 'tlspolicyd_cache_entries{cache="sts"}')
    rss_full[$n]=$(rss "$dpid")
    anon_full[$n]=$(rss_anon "$dpid")
    # A cached answer must be the stored policy: the first domain's, exactly.
    echo d0000000.unsigned.test >"$dir/first.txt"
    check=$("$loadgen" --connect "unix:$dir/x-$n.sock" --connections 1 --duration 0.2 \
        --warmup 0 --keys "$dir/first.txt" \
        --expect "OK secure match=mx1.d0000000.unsigned.test servername=hostname" --json \
        2>>"$dir/loadgen.log") || die "the stored policy was not the answer: $check"
    dane_cached[$n]=$(metric "$n" 'tlspolicyd_cache_entries{cache="dane"}')
    hits[$n]=0 misses[$n]=0 rechecks[$n]=0 p50s[$n]="" p99s[$n]="" cpus[$n]="" errs_all[$n]=0
done

# Phase 2: the cached lookups, in rounds that take every N in turn, so that what else the
# machine does in a minute weighs on every N alike; each N's figures are the medians over
# the rounds.
spread=--spread
[ "${BENCH_SCALE_START:-spread}" = near ] && spread=
rounds=${BENCH_SCALE_ROUNDS:-5}
for ((r = 1; r <= rounds; r++)); do
    for n in "${sizes[@]}"; do
        dpid=${dpids[$n]}
        hits0=$(metric "$n" 'tlspolicyd_cache_hits_total{cache="dane"}')
        misses0=$(metric "$n" 'tlspolicyd_cache_misses_total{cache="dane"}')
        rechecks0=$(metric "$n" 'tlspolicyd_sts_refreshes_total{trigger="recheck"}')
        perfpid=
        if [ "${BENCH_PERF:-0}" = 1 ] && [ "$r" = 1 ]; then
            perf record -q -g -p "$dpid" -o "$dir/perf-$n.data" -- sleep 6 2>>"$dir/perf.log" &
            perfpid=$!
        fi
        bench_measure "daemon-$n" "$dpid" '%.2f' "$loadgen" --connect "unix:$dir/x-$n.sock" \
            --connections 50 --warmup 1 --duration 5 --keys "$dir/keys-$n.txt" --json $spread
        if [ -n "$perfpid" ]; then
            wait "$perfpid" || true
            perf report -q --stdio --no-children -i "$dir/perf-$n.data" -g none \
                --percent-limit 0.5 >"$dir/perf-$n.txt" 2>>"$dir/perf.log" || true
            say "N=$n: perf profile in $dir/perf-$n.txt"
        fi
        p50s[$n]+=" $p50" p99s[$n]+=" $p99" cpus[$n]+=" $cpu"
        errs_all[$n]=$((errs_all[$n] + ${errs:-0}))
        rechecks[$n]=$((rechecks[$n] + $(metric "$n" 'tlspolicyd_sts_refreshes_total{trigger="recheck"}') - ${rechecks0:-0}))
        hits[$n]=$((hits[$n] + $(metric "$n" 'tlspolicyd_cache_hits_total{cache="dane"}') - ${hits0:-0}))
        misses[$n]=$((misses[$n] + $(metric "$n" 'tlspolicyd_cache_misses_total{cache="dane"}') - ${misses0:-0}))
        say "N=$n: round $r: p50 $p50 us, p99 $p99 us, CPU $cpu us per answer"
    done
done

# Phase 3: the figures, and the daemons stopped.
rows=()
for n in "${sizes[@]}"; do
    store_bytes=$(metric "$n" tlspolicyd_store_bytes)
    daemon_stop "${dpids[$n]}"
    # shellcheck disable=SC2086 # lists of numbers
    p50=$(median ${p50s[$n]}) p99=$(median ${p99s[$n]}) cpu=$(median ${cpus[$n]})
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    rf=${rss_full[$n]} rr=${rss_ready[$n]} af=${anon_full[$n]}
    errors=$((fill_errs[$n] + errs_all[$n]))
    line="scale n=$n import_s=${import_s[$n]} cold_s=${cold_s[$n]} warm_s=${warm_s[$n]}"
    line+=" cached=${cached[$n]:-?} rss_kib=$rf bytes_per_domain=$((rf * 1024 / n))"
    line+=" rss_ready_kib=$rr added_bytes_per_domain=$(((rf - rr) * 1024 / n))"
    line+=" anon_kib=$af anon_bytes_per_domain=$((af * 1024 / n))"
    line+=" p50_us=$p50 p99_us=$p99 cpu_us=$cpu rounds=$rounds"
    # shellcheck disable=SC2086 # lists of numbers
    line+=" p50_rounds=$(commas ${p50s[$n]}) cpu_rounds=$(commas ${cpus[$n]})"
    line+=" errors=$errors cold_method=$cold_method store_bytes=${store_bytes:-?}"
    line+=" dane_cached=${dane_cached[$n]:-?} dane_hits=${hits[$n]} dane_misses=${misses[$n]}"
    line+=" sts_rechecks=${rechecks[$n]} load='$load'"
    echo "$line"
    rows+=("| $n | ${import_s[$n]} | ${cold_s[$n]} | ${warm_s[$n]} | ${cached[$n]:-?} | $rf | $((rf * 1024 / n)) | $(((rf - rr) * 1024 / n)) | $((af * 1024 / n)) | $p50 | $p99 | $cpu | ${dane_cached[$n]:-?} | ${hits[$n]}/${misses[$n]} | $errors | $load |")
    rm -rf "${dir:?}/state-$n" "$dir/keys-$n.txt"
done

echo
echo "| N | import s | start-up cold s | start-up warm s | cached | VmRSS KiB | VmRSS bytes/domain | added bytes/domain | RssAnon bytes/domain | cached p50 us | cached p99 us | CPU us/answer | DANE cached | DANE hits/misses | errors | load avg |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
printf '%s\n' "${rows[@]}"
exit "$failed"
