# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables set here are read by the sourcing script
#
# What tests/bench/run.sh and tests/bench/peer.sh share, sourced by both: progress lines,
# the work directory and the servers started in it (all stopped on exit), how busy the
# machine was, and the reading of one bench_loadgen measurement.
#
# The sourcing script sets bench_tag (the prefix of its progress lines) first, and
# duration and warmup (seconds) before it measures.

# shellcheck disable=SC2154 # bench_tag is set by the sourcing script
say() { printf '%s: %s\n' "$bench_tag" "$*" >&2; }
die() {
    say "$*"
    exit 1
}

# bench_workdir PREFIX: a private work directory in $dir, and the EXIT trap that stops every
# server started there (pids) and removes it (unless BENCH_KEEP=1). failed=0.
bench_workdir() {
    dir=$(mktemp -d "/tmp/$1.XXXXXX")
    pids=()
    failed=0
    trap cleanup EXIT
    trap 'exit 130' INT TERM
}

# Stop what was started: SIGTERM, up to 5 s to exit, then SIGKILL.
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local pid i
    for pid in ${pids[@]+"${pids[@]}"}; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in ${pids[@]+"${pids[@]}"}; do
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "process $pid did not exit on SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        say "work directory kept: $dir"
    else
        rm -rf "$dir"
    fi
}

# start NAME COMMAND...: run a server in the work directory (relative paths such as a default
# state_dir land there), log to $dir/NAME.log, and remember its pid; $! is the server itself
# because both shells exec.
start() {
    local name=$1
    shift
    (cd "$dir" && exec "$@") >"$dir/$name.log" 2>&1 &
    pids+=("$!")
}

# bench_wait_ready NAME PID PROBE ARGS...: wait up to 10 s until PROBE ARGS... succeeds (the
# server NAME, process PID, answers). Exits 1 with the end of $dir/NAME.log when the server
# exits first or does not answer in time.
bench_wait_ready() {
    local name=$1 pid=$2 i
    shift 2
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            say "$name exited during start-up; its log:"
            tail -n 20 "$dir/$name.log" >&2
            exit 1
        fi
        if "$@"; then
            return 0
        fi
        sleep 0.1
    done
    say "$name did not answer within 10 s; its log:"
    tail -n 20 "$dir/$name.log" >&2
    exit 1
}

# bench_busy: sets busy to the CPU use by other processes over one second (from /proc/stat):
# on a small machine anything else running shows up in every number, so the tables say how
# busy it was.
cpu_sample() { awk '/^cpu / { print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }
bench_busy() {
    local total0 idle0 total1 idle1
    read -r total0 idle0 <<<"$(cpu_sample)"
    sleep 1
    read -r total1 idle1 <<<"$(cpu_sample)"
    busy=$(awk -v t=$((total1 - total0)) -v i=$((idle1 - idle0)) \
        'BEGIN { printf "%.0f", (t > 0 ? 100 * (t - i) / t : 0) }')
}

# median V...: the middle value (the lower middle of an even count; "-" sorts first), for
# figures measured in rounds (run.sh BENCH_ROUNDS, scale.sh BENCH_SCALE_ROUNDS).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# field JSON NAME: the number after "NAME": in bench_loadgen's one-line JSON.
field() {
    printf '%s\n' "$1" | sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p"
}

# cpu_ticks PID: user + system clock ticks of a process so far (/proc/PID/stat fields 14
# and 15, counted after the parenthesised command name, which may hold spaces).
cpu_ticks() {
    { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null || echo; } | awk '{ print $12 + $13 }'
}
hz=$(getconf CLK_TCK)

# bench_measure NAME PID CPU_FORMAT COMMAND...: one measurement against the server NAME
# (process PID, log $dir/NAME.log): COMMAND is a bench_loadgen run with --json, its stderr
# appended to $dir/loadgen.log. Sets json, rc, rate, p50, p99, errs, cpu (the server's CPU
# microseconds per answer, printed with CPU_FORMAT, or -) and note (what went wrong, or
# empty), and loadgen_ok (1 when bench_loadgen gave its numbers, else 0); failed=1 when
# anything went wrong. Callers that declare these names local get them in their locals.
bench_measure() {
    local name=$1 pid=$2 cpufmt=$3 t0 t1 total
    shift 3
    rc=0 note=""
    t0=$(cpu_ticks "$pid")
    json=$("$@" 2>>"$dir/loadgen.log") || rc=$?
    if ! kill -0 "$pid" 2>/dev/null; then
        say "$name exited during the measurement; its log:"
        tail -n 20 "$dir/$name.log" >&2
        failed=1
        note=" ($name exited)"
        cpu=-
    else
        # The server's CPU time per answer over the whole run, warm-up included: steadier
        # than answers/s when something else shares the machine.
        t1=$(cpu_ticks "$pid")
        total=$(field "$json" answers_total)
        cpu=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="${total:-0}" -v f="$cpufmt" \
            'BEGIN { if (n > 0) printf f, t * 1e6 / hz / n; else print "-" }')
    fi
    rate=$(field "$json" answers_per_s)
    p50=$(field "$json" p50)
    p99=$(field "$json" p99)
    errs=$(field "$json" errors)
    loadgen_ok=1
    if [ -z "$rate" ]; then
        say "bench_loadgen failed (exit $rc):"
        tail -n 5 "$dir/loadgen.log" >&2
        failed=1
        rate=0 p50=- p99=- errs=-
        note="$note (failed)"
        loadgen_ok=0
    elif [ "$rc" != 0 ]; then
        failed=1
        note="$note (loadgen exit $rc)"
    fi
}
