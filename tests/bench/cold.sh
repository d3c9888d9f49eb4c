#!/usr/bin/env bash
#
# Cold MTA-STS lookups: never-seen domains, each asked once, of tlspolicyd and of its Python
# peer (postfix-mta-sts-resolver's mta-sts-daemon), inside the lab (tests/lab/dnslab.sh).
#
# The lab gets N generated domains dNNNNNN.cold.test (in the signed zone test.), each with
#   dNNNNNN.cold.test            MX 10 mx.dNNNNNN.cold.test
#   mx.dNNNNNN.cold.test         A  127.0.21.x          (nothing connects to it)
#   _mta-sts.dNNNNNN.cold.test   TXT "v=STSv1; id=1"
#   mta-sts.dNNNNNN.cold.test    A  127.0.30.5
# and an nginx of its own on 127.0.30.5:443 (the lab's nginx binary, set up as the lab's,
# one worker) that serves each policy host "mode: enforce, mx: mx.dNNNNNN.cold.test" under
# certificates from the lab CA of COLD_NAMES_PER_CERT names each (one certificate for
# thousands of names would make every handshake parse it). The records are generated once
# per N and kept in BENCH_COLD_CACHE; dnslab.sh signs them with the zone at every start; the
# certificates are made at every start (the lab CA is).
#
# For each N: the resolver is restarted (empty caches), the server started on an empty
# state, and tests/bench/cold_client.py asks the first N domains, each once, through
# BENCH_COLD_CONNS lockstep connections. Reported: wall time, the server's CPU time per
# domain (utime + stime of all its threads, from /proc, over the run), latency p50/p99/max,
# and the answers. The daemons trust the system CA bundle plus the lab CA, as a production
# machine trusts the system bundle. Beside them, the row "libcurl floor" is the same policy
# fetches alone (BUILD_DIR/tests/bench_fetchfloor: libcurl with the daemon's TLS settings and
# one shared CA store, one fetch after another, no DNS, no daemon): the CPU a cold domain
# cannot cost less than with Debian's libcurl and OpenSSL, measured in the same run.
#
# usage: tests/bench/cold.sh BUILD_DIR [N...]        (default: 100 1000 10000)
# environment:
#   BENCH_COLD_CONNS (20)       connections of the client
#   BENCH_COLD_SERVERS          "tlspolicyd peer floor" (default; the peer only when
#                               installed, the floor only when bench_fetchfloor is built)
#   BENCH_COLD_CA=lab           trust the lab CA alone (default: Debian's bundle and the lab CA)
#   BENCH_COLD_CACHE            where generated records are kept (/var/tmp/tlspolicyd-cold)
#   BENCH_COLD_PERF=FILE        record the daemon's first N with perf record into FILE
#   BENCH_COLD_PERF_ARGS (-g)   its options (e.g. "--call-graph dwarf -F 499")
#   BENCH_COLD_STAGES=PREFIX    run tlspolicyd with debug lines stamped with the time into
#                               PREFIX.*, and print where each lookup's time went
#                               (tests/bench/cold_stages.py; the debug lines cost CPU)
#   BENCH_COLD_STATE_DIR=DIR    the daemon's state_dir under DIR (default: the work directory)
#   BENCH_KEEP=1                keep the work directory (logs, per-key latencies)
# Output: a Markdown table on stdout (rows "| server | N | wall s | CPU ms/domain | p50 ms |
# p99 ms | max ms | answers |"), progress on stderr. Exits 0 when every domain got the
# answer expected (OK for tlspolicyd and the peer), 1 otherwise.
set -eu
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: tests/bench/cold.sh BUILD_DIR [N...]}
case $build in /*) ;; *) build=$PWD/$build ;; esac
shift
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100 1000 10000)
conns=${BENCH_COLD_CONNS:-20}
cache=${BENCH_COLD_CACHE:-/var/tmp/tlspolicyd-cold}
names_per_cert=${COLD_NAMES_PER_CERT:-40}
COLD_HTTPS=127.0.30.5
daemon=$build/tlspolicyd

bench_tag=cold
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"

[ -x "$daemon" ] || die "$daemon: not built"
max=0
for n in "${sizes[@]}"; do
    case $n in '' | *[!0-9]* | 0) die "N: expected positive integers, got '$n'" ;; esac
    [ "$n" -le 100000 ] || die "N: at most 100000"
    [ "$n" -le "$max" ] || max=$n
done

# ---- outside the lab: the records, then a lab with them ----
if [ -z "${LAB_CA_FILE:-}" ]; then
    mkdir -p "$cache"
    records=$cache/records-$max
    if [ ! -s "$records" ]; then
        t0=$(date +%s%N)
        awk -v n="$max" 'BEGIN {
            for (i = 0; i < n; i++) {
                d = sprintf("d%06d.cold.test.", i)
                printf "%s MX 10 mx.%s\n", d, d
                printf "mx.%s A 127.0.21.%d\n", d, 1 + i % 250
                printf "_mta-sts.%s TXT \"v=STSv1; id=1\"\n", d
                printf "mta-sts.%s A 127.0.30.5\n", d
            }
        }' >"$records.tmp"
        mv "$records.tmp" "$records"
        say "records for $max domains generated in $((($(date +%s%N) - t0) / 1000000)) ms ($records)"
    fi
    t0=$(date +%s%N)
    export BENCH_COLD_T0=$t0
    DNSLAB_EXTRA_RECORDS=$records exec "$here/../lab/dnslab.sh" "$here/cold.sh" "$build" "${sizes[@]}"
fi

# ---- inside the lab ----
say "lab ready in $((($(date +%s%N) - ${BENCH_COLD_T0:-$(date +%s%N)}) / 1000000)) ms with $max extra domains (its own figure: ${LAB_STARTUP_MS:-?} ms)"
bench_workdir tlspolicyd-cold
servers=${BENCH_COLD_SERVERS:-tlspolicyd peer floor}
peer_bin=$(command -v mta-sts-daemon || true)
if [[ " $servers " == *" peer "* ]] && [ -z "$peer_bin" ]; then
    say "postfix-mta-sts-resolver is not installed: the peer is left out"
    servers=${servers//peer/}
fi
floor_bin=$build/tests/bench_fetchfloor
if [[ " $servers " == *" floor "* ]] && [ ! -x "$floor_bin" ]; then
    say "$floor_bin is not built: the libcurl floor is left out"
    servers=${servers//floor/}
fi

# The certificates: groups of names_per_cert policy hosts, one key for all (the handshake
# costs the same), each certificate signed by the lab CA.
pki=$dir/pki
mkdir -p "$pki"
t0=$(date +%s%N)
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/cold.key" 2>/dev/null
ca_key=${LAB_CA_FILE%.pem}.key
[ -r "$ca_key" ] || die "no lab CA key at $ca_key"
ncerts=$(((max + names_per_cert - 1) / names_per_cert))
# shellcheck disable=SC2317 # run by xargs, through bash -c
cert_one() { # cert_one INDEX
    local c=$1 i san="" first=$(($1 * names_per_cert)) last
    last=$((first + names_per_cert))
    [ "$last" -le "$max" ] || last=$max
    for ((i = first; i < last; i++)); do san="$san,DNS:mta-sts.$(printf 'd%06d' "$i").cold.test"; done
    openssl req -new -x509 -key "$pki/cold.key" -out "$pki/c$c.pem" -days 7 -subj "/CN=cold $c" \
        -CA "$LAB_CA_FILE" -CAkey "$ca_key" -addext "subjectAltName=${san#,}" \
        -addext "basicConstraints=critical,CA:FALSE" -addext "keyUsage=critical,digitalSignature" \
        -addext "extendedKeyUsage=serverAuth" 2>>"$pki/openssl.log"
}
export -f cert_one
export pki names_per_cert max LAB_CA_FILE ca_key
seq 0 $((ncerts - 1)) | xargs -P "$(nproc)" -I{} bash -c 'cert_one {}' ||
    die "making the certificates failed: $(tail -n 3 "$pki/openssl.log")"
say "$ncerts certificates of up to $names_per_cert names made in $((($(date +%s%N) - t0) / 1000000)) ms"

# nginx, set up as the lab's (one process, one worker, TLS 1.2 and 1.3), one server per
# certificate; each policy names the domain's own MX host.
mkdir -p "$dir/nginx"
{
    cat <<EOF
master_process off;
user root root;
worker_processes 1;
pid "$dir/nginx.pid";
error_log "$dir/nginx.log" notice;
events { worker_connections 4096; }
http {
    access_log off;
    server_tokens off;
    ssl_protocols TLSv1.2 TLSv1.3;
    server_names_hash_max_size 262144;
    server_names_hash_bucket_size 128;
    default_type text/plain;
    client_body_temp_path "$dir/nginx/body";
    proxy_temp_path "$dir/nginx/proxy";
    fastcgi_temp_path "$dir/nginx/fastcgi";
    uwsgi_temp_path "$dir/nginx/uwsgi";
    scgi_temp_path "$dir/nginx/scgi";
    map \$ssl_server_name \$cold_domain { "~^mta-sts\.(?<d>.+)\$" \$d; default ""; }
    server {
        listen $COLD_HTTPS:443 ssl default_server;
        ssl_reject_handshake on;
    }
EOF
    for ((c = 0; c < ncerts; c++)); do
        printf '    server {\n        listen %s:443 ssl;\n        server_name' "$COLD_HTTPS"
        last=$(((c + 1) * names_per_cert))
        [ "$last" -le "$max" ] || last=$max
        for ((i = c * names_per_cert; i < last; i++)); do printf ' mta-sts.d%06d.cold.test' "$i"; done
        printf ';\n        ssl_certificate "%s/c%d.pem";\n        ssl_certificate_key "%s/cold.key";\n' \
            "$pki" "$c" "$pki"
        printf '        location = /.well-known/mta-sts.txt {\n'
        # shellcheck disable=SC2016 # $cold_domain is nginx's variable
        printf '            return 200 "version: STSv1\\nmode: enforce\\nmx: mx.$cold_domain\\nmax_age: 86400\\n";\n'
        printf '        }\n    }\n'
    done
    echo "}"
} >"$dir/nginx.conf"
nginx_cmd=(nginx -p "$dir/nginx" -c "$dir/nginx.conf" -e "$dir/nginx.log" -g 'daemon off;')
"${nginx_cmd[@]}" -t -q 2>"$dir/nginx-t.log" || die "nginx -t: $(tail -n 3 "$dir/nginx-t.log")"
start nginx "${nginx_cmd[@]}"
nginx_pid=${pids[-1]}
# shellcheck disable=SC2317 # invoked through bench_wait_ready
policy_ok() {
    /usr/bin/python3 - "$LAB_CA_FILE" "$COLD_HTTPS" <<'EOF' 2>/dev/null
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
host = "mta-sts.d000000.cold.test"
with socket.create_connection((sys.argv[2], 443), timeout=2) as s:
    with ctx.wrap_socket(s, server_hostname=host) as t:
        t.sendall(b"GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: " + host.encode() + b"\r\n\r\n")
        body = b""
        while chunk := t.recv(4096):
            body += chunk
sys.exit(0 if b"\nmx: mx.d000000.cold.test\n" in body else 1)
EOF
}
bench_wait_ready nginx "$nginx_pid" policy_ok

# What a production machine trusts, plus the lab CA (BENCH_COLD_CA=lab: the lab CA alone).
if [ "${BENCH_COLD_CA:-system}" = lab ]; then
    cp "$LAB_CA_FILE" "$dir/ca-bundle.pem"
else
    cat /etc/ssl/certs/ca-certificates.crt "$LAB_CA_FILE" >"$dir/ca-bundle.pem"
fi

seq -f 'd%06g.cold.test' 0 $((max - 1)) >"$dir/keys.all"

cat >"$dir/tlspolicyd.conf" <<EOF
listen = unix:$dir/tlspolicyd.sock
dns_servers = $LAB_RESOLVER:$LAB_RESOLVER_PORT
sts_ca_file = $dir/ca-bundle.pem
sts_allow_private = yes
requiretls_probe = no
metrics_listen =
user =
log_level = ${BENCH_COLD_LOG_LEVEL:-warning}
EOF
cat >"$dir/peer.yml" <<EOF
path: "$dir/peer.sock"
shutdown_timeout: 1
cache:
  type: internal
  options:
    cache_size: 200000
EOF

# answers SOCK MAP: the server answers a key with a leading dot (which neither resolves).
# shellcheck disable=SC2317 # invoked through bench_wait_ready
answers() {
    [ -S "$1" ] && printf '.ready.invalid\n' >"$dir/ready.key" &&
        timeout 5 "$here/cold_client.py" "$1" "$2" "$dir/ready.key" 1 2 2>/dev/null |
        grep -q '"answers": 1'
}

# lab_ticks: CPU clock ticks so far of unbound, NSD (all its processes: the lab's PID
# namespace holds only its own) and the policy nginx, on one line.
lab_ticks() {
    local name p t
    for name in unbound nsd; do
        t=0
        for p in $(pgrep "^$name"); do t=$((t + $(cpu_ticks "$p"))); done
        printf '%s ' "$t"
    done
    cpu_ticks "$nginx_pid"
}
# lab_cpu BEFORE AFTER WALL: "unbound U%, NSD N%, nginx G%" of one CPU over the wall time.
lab_cpu() {
    awk -v a="$1" -v b="$2" -v w="$3" -v hz="$hz" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        printf "unbound %.0f%%, NSD %.0f%%, nginx %.0f%%", (y[1] - x[1]) * 100 / hz / w,
            (y[2] - x[2]) * 100 / hz / w, (y[3] - x[3]) * 100 / hz / w }'
}

# Where the daemon's state_dir goes (BENCH_COLD_STATE_DIR: e.g. a tmpfs, to see the CPU
# that the store's file writes take).
state_root=${BENCH_COLD_STATE_DIR:-$dir}
mkdir -p "$state_root"

rows=()
for n in "${sizes[@]}"; do
    head -n "$n" "$dir/keys.all" >"$dir/keys.$n"
    for s in $servers; do
        if [ "$s" = floor ]; then
            # The fetches alone: no DNS, no daemon; CPU from the tool's own getrusage.
            say "libcurl floor: $n policy fetches, one after another"
            lab0=$(lab_ticks)
            json=$("$floor_bin" "$dir/ca-bundle.pem" "$COLD_HTTPS" "$dir/keys.$n") ||
                { say "bench_fetchfloor failed: $json"; failed=1; }
            lab1=$(lab_ticks)
            get() { printf '%s\n' "$json" | sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p"; }
            rows+=("| libcurl floor | $n | $(get wall_s) | $(get cpu_ms_per_fetch) | | | | fetched:$(get fetched),failed:$(get failed) | $(lab_cpu "$lab0" "$lab1" "$(get wall_s)"); fetches only, one at a time, no DNS |")
            say "${rows[-1]}"
            continue
        fi
        "$LAB_CTL" --resolver-restart
        rm -rf "${state_root:?}/state.$s.$n"
        if [ "$s" = tlspolicyd ] && [ -n "${BENCH_COLD_STAGES:-}" ]; then
            # Debug lines, each stamped with the time, for cold_stages.py (costs CPU).
            # shellcheck disable=SC2016 # expanded by the inner bash
            start "$s-$n" env STAMP="$here/cold_stages.py" STAMPED="$BENCH_COLD_STAGES.$n" \
                bash -c 'exec "$@" 2> >(exec "$STAMP" stamp >"$STAMPED")' _ "$daemon" \
                -c "$dir/tlspolicyd.conf" -o log_level=debug -o "state_dir=$state_root/state.$s.$n"
            sock=$dir/tlspolicyd.sock map=policy
        elif [ "$s" = tlspolicyd ]; then
            start "$s-$n" "$daemon" -c "$dir/tlspolicyd.conf" -o "state_dir=$state_root/state.$s.$n"
            sock=$dir/tlspolicyd.sock map=policy
        else
            start "$s-$n" env -u https_proxy -u HTTPS_PROXY -u http_proxy -u HTTP_PROXY \
                -u all_proxy -u ALL_PROXY SSL_CERT_FILE="$dir/ca-bundle.pem" "$peer_bin" \
                -c "$dir/peer.yml" -v warn
            sock=$dir/peer.sock map=postfix
        fi
        pid=${pids[-1]}
        bench_wait_ready "$s-$n" "$pid" answers "$sock" "$map"
        perf_pid=""
        if [ -n "${BENCH_COLD_PERF:-}" ] && [ "$s" = tlspolicyd ] && [ "$n" = "${sizes[0]}" ]; then
            # shellcheck disable=SC2086 # options, split on purpose
            perf record ${BENCH_COLD_PERF_ARGS:--g} -o "$BENCH_COLD_PERF" -p "$pid" 2>"$dir/perf.log" &
            perf_pid=$!
            sleep 0.5
        fi
        say "$s: $n never-seen domains through $conns connections"
        lab0=$(lab_ticks)
        t0=$(cpu_ticks "$pid")
        json=$("$here/cold_client.py" "$sock" "$map" "$dir/keys.$n" "$conns" 30 \
            "$dir/latency.$s.$n") || die "the client failed against $s"
        t1=$(cpu_ticks "$pid")
        lab1=$(lab_ticks)
        # Questions the server asked the resolver (restarted before the row) per domain.
        queries=$($LAB_UNBOUND_CONTROL stats_noreset 2>/dev/null |
            awk -F= -v n="$n" '$1 == "total.num.queries" { printf "%.1f", $2 / n }')
        if [ -n "$perf_pid" ]; then
            kill -INT "$perf_pid"
            wait "$perf_pid" || true
        fi
        kill -TERM "$pid"
        wait "$pid" 2>/dev/null || true
        [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "${state_root:?}/state.$s.$n"
        if [ "$s" = tlspolicyd ] && [ -n "${BENCH_COLD_STAGES:-}" ]; then
            sleep 0.5
            say "stages of tlspolicyd's lookups, N=$n:"
            "$here/cold_stages.py" report "$BENCH_COLD_STAGES.$n" >&2
        fi
        cpu=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.2f", t * 1000 / hz / n }')
        kinds=$(printf '%s\n' "$json" | sed -n 's/.*"kinds": {\([^}]*\)}.*/\1/p' | tr -d '" ')
        ok=$(printf '%s\n' "$json" | sed -n 's/.*"OK": \([0-9]*\).*/\1/p')
        [ "${ok:-0}" = "$n" ] || failed=1
        get() { printf '%s\n' "$json" | sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p"; }
        rows+=("| $s | $n | $(get wall_s) | $cpu | $(get p50_ms) | $(get p99_ms) | $(get max_ms) | $kinds | $(lab_cpu "$lab0" "$lab1" "$(get wall_s)"), client $(get client_cpu_pct)%; ${queries:-?} DNS queries per domain |")
        say "${rows[-1]}"
    done
done

uptime_now=$(uptime | sed 's/.*load average: //')
printf 'Cold lookups: never-seen MTA-STS domains, each asked once through %s lockstep\n' "$conns"
printf 'connections, resolver restarted and server started empty before each row; %s CPUs,\n' "$(nproc)"
printf 'load average %s at the end. CPU: the server'"'"'s utime+stime per domain.\n\n' "$uptime_now"
printf '| server | N | wall s | CPU ms/domain | p50 ms | p99 ms | max ms | answers | lab CPU during the run |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---|---|\n'
printf '%s\n' "${rows[@]}"
[ "$failed" = 0 ] || say "not every domain was answered OK; see the answers column"
exit "$failed"
