#!/bin/bash
# Resident memory per cached MTA-STS policy, and start-up time, for issue 12.
#
# tests/bench/memory.sh BUILD_DIR [N]  (default N = 100000; run as root)
#
# Generates N records (dNNNNNN.example, 1 to 3 mx patterns each, valid times) as JSON lines,
# imports them with "tlspolicyd state import" into an empty state_dir (transactions of 1,000
# lines: a few seconds for 100,000), starts the daemon on it with nothing leaving the
# machine (a unix socket, no metrics listener, DNS to 127.0.0.1:9), waits for its "ready"
# line, and prints VmRSS, VmRSS / N and the time from exec to "ready".
# Since the LMDB store the daemon reads no record at start-up (each is read when a lookup
# first asks for it), so VmRSS here is the empty daemon's: tests/bench/scale.sh asks every
# domain once and measures memory per cached domain and the cached latency.
set -euo pipefail

build=${1:?usage: tests/bench/memory.sh BUILD_DIR [N]}
n=${2:-100000}
bin=$build/tlspolicyd
[ -x "$bin" ] || {
    echo "memory.sh: no $bin" >&2
    exit 1
}

dir=$(mktemp -d /tmp/tlspolicyd-memory.XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$dir"
}
trap cleanup EXIT

# Records fetched a minute ago with a max_age of 30 days: valid for the whole run.
now=$(date +%s)
fetched=$((now - 60))
max_age=2592000
awk -v n="$n" -v f="$fetched" -v a="$max_age" 'BEGIN {
    for (i = 0; i < n; i++) {
        d = sprintf("d%06d.example", i);
        k = i % 3;
        mx = "\"mx1." d "\"";
        if (k >= 1) mx = mx ",\"*.mx." d "\"";
        if (k >= 2) mx = mx ",\"backup-mail-exchanger." d "\"";
        printf "{\"version\":1,\"domain\":\"%s\",\"id\":\"id%06d\",\"fetched\":%d,\"expires\":%d,\"mode\":\"enforce\",\"max_age\":%d,\"mx\":[%s]}\n",
            d, i, f, f + a, a, mx;
    }
}' >"$dir/records.jsonl"

opts=(-o "state_dir=$dir/state" -o user= -o "listen=unix:$dir/x.sock" -o metrics_listen=
    -o dns_servers=127.0.0.1:9 -o log_level=info)

t0=$(date +%s.%N)
"$bin" state import "${opts[@]}" "$dir/records.jsonl" >"$dir/import.out" 2>"$dir/import.err" || {
    echo "memory.sh: import failed:" >&2
    tail -5 "$dir/import.err" >&2
    exit 1
}
t1=$(date +%s.%N)
echo "import: $n records in $(echo "$t1 - $t0" | bc) s"

t0=$(date +%s.%N)
"$bin" "${opts[@]}" 2>"$dir/daemon.log" &
pid=$!
for ((i = 0; i < 6000; i++)); do
    grep -q ' ready' "$dir/daemon.log" && break
    kill -0 "$pid" 2>/dev/null || {
        echo "memory.sh: the daemon exited:" >&2
        tail -5 "$dir/daemon.log" >&2
        exit 1
    }
    sleep 0.01
done
t1=$(date +%s.%N)
grep -q ' ready' "$dir/daemon.log" || {
    echo "memory.sh: no ready line in 60 s" >&2
    exit 1
}
rss_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
printf 'N=%d  VmRSS=%d KiB (%.1f MB)  per policy=%d bytes  start-up to ready=%.2f s\n' \
    "$n" "$rss_kb" "$(echo "$rss_kb * 1024 / 1000000" | bc -l)" \
    "$((rss_kb * 1024 / n))" "$(echo "$t1 - $t0" | bc)"
grep -m1 'MTA-STS\|policies' "$dir/daemon.log" >&2 || true
