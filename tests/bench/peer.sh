#!/usr/bin/env bash
#
# tlspolicyd against its Python peer, postfix-mta-sts-resolver (`mta-sts-daemon`), inside the
# lab (tests/lab/dnslab.sh): both daemons on the same MTA-STS domains, the same resolver
# (the lab's validating unbound) and the same policy hosts (nginx and stslab.py, the lab CA).
#
#  (a) Answers: every sts.test case of the lab ($LAB_STS_CASES) plus dane-all.test and
#      unsigned.test, asked of each daemon over its socketmap (one connection per domain, all
#      at once, each bounded), side by side with what RFC 8461 asks of a sender. The peer
#      does no DANE, which the table says instead of counting it as a difference.
#  (b) Speed: bench_loadgen over the MTA-STS enforce, testing, none and no-TXT domains, after
#      one pass that fills every cache: lockstep 50 connections and pipelined 10 x depth 32
#      (the peer answers pipelined requests in order), each 5 s after a 1 s warm-up. The
#      peer runs twice: with Debian's shipped configuration (sqlite cache) and with the
#      upstream default (in-memory cache).
#
# Markdown goes to stdout, progress to stderr. Every process started here is stopped on
# exit (SIGTERM, then SIGKILL after 5 s); every wait is bounded.
#
# usage: tests/bench/peer.sh [BUILD_DIR]      (default: build)
#   BUILD_DIR/tlspolicyd and BUILD_DIR/tests/bench_loadgen; needs the Debian package
#   postfix-mta-sts-resolver (exit 2 without it).
# environment: BENCH_DURATION (5), BENCH_WARMUP (1): seconds per measurement;
#   BENCH_KEEP=1 keeps the work directory (configurations, logs); BENCH_MODES
#   ("NAME:CONNECTIONS:DEPTH,...") replaces the two speed modes.
# Exits 0 when every measurement completed without errors, 1 otherwise (answers that
# differ between the daemons are reported, not failures).

# shellcheck disable=SC2016 # backquotes in single quotes are Markdown, not commands
set -eu
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$PWD/$build ;; esac
duration=${BENCH_DURATION:-5}
warmup=${BENCH_WARMUP:-1}
loadgen=$build/tests/bench_loadgen
daemon=$build/tlspolicyd

bench_tag=peer
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"

peer_bin=$(command -v mta-sts-daemon || true)
if [ -z "$peer_bin" ]; then
    cat >&2 <<'EOF'
peer: postfix-mta-sts-resolver (mta-sts-daemon) is not installed. Install it with
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get install postfix-mta-sts-resolver
(the policy-rc.d line, if the file is absent, keeps apt from starting the service), then
run this script again.
EOF
    exit 2
fi
[ -x "$daemon" ] || die "$daemon: not built"
[ -x "$loadgen" ] || die "$loadgen: not built"

# Outside the lab: start one and run this script inside it.
if [ -z "${LAB_CA_FILE:-}" ]; then
    exec "$here/../lab/dnslab.sh" "$here/peer.sh" "$build"
fi

for v in LAB_RESOLVER LAB_RESOLVER_PORT LAB_STS_CASES; do
    [ -n "${!v:-}" ] || die "$v is not set: run me through tests/lab/dnslab.sh"
done
command -v python3 >/dev/null || die "python3 is needed (the one-shot socketmap client)"

peer_version=$(dpkg-query -W -f '${Version}' postfix-mta-sts-resolver 2>/dev/null || echo unknown)
peer_python=$(sed -n '1s/^#! *//p' "$peer_bin")
peer_python=${peer_python%% *}
[ -x "$peer_python" ] || peer_python=python3
peer_pyver=$("$peer_python" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo '?')
if "$peer_python" -c 'import uvloop' 2>/dev/null; then peer_loop=uvloop; else peer_loop=asyncio; fi

bench_workdir tlspolicyd-peer

# ---- the daemons ----

cat >"$dir/tlspolicyd.conf" <<EOF
listen = unix:$dir/tlspolicyd.sock
dns_servers = $LAB_RESOLVER:$LAB_RESOLVER_PORT
sts_ca_file = $LAB_CA_FILE
sts_allow_private = yes
requiretls_probe = no
metrics_listen =
user =
log_level = warning
state_dir = $dir/state
EOF

# peer_conf NAME CACHE_YAML: the peer's configuration on a unix socket in the work directory.
# Everything else is the default (timeout 4 s, require_sni, testing not enforced).
peer_conf() {
    cat >"$dir/$1.yml" <<EOF
path: "$dir/$1.sock"
shutdown_timeout: 1
$2
EOF
}
peer_conf peer-sqlite "cache:
  type: sqlite
  options:
    filename: \"$dir/peer-cache.db\""
peer_conf peer-internal "cache:
  type: internal
  options:
    cache_size: 10000"

# The one-shot client: asks each key on a connection of its own, all at once, each bounded
# by a deadline; prints "KEY<TAB>MILLISECONDS<TAB>REPLY" in the order given.
cat >"$dir/ask.py" <<'EOF'
import socket, sys, threading, time
path, mapname, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
keys = sys.argv[4:]
res = {}
def ask(key):
    t0 = time.monotonic()
    deadline = t0 + limit
    reply = None
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(limit)
        s.connect(path)
        q = ("%s %s" % (mapname, key)).encode()
        s.sendall(b"%d:%s," % (len(q), q))
        buf = b""
        while reply is None:
            head, colon, rest = buf.partition(b":")
            if colon and len(rest) > int(head):
                reply = rest[:int(head)].decode("utf-8", "replace")
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout()
            s.settimeout(left)
            chunk = s.recv(65536)
            if not chunk:
                reply = "(connection closed)"
            buf += chunk
        s.close()
    except socket.timeout:
        reply = "(no answer in %g s)" % limit
    except (OSError, ValueError) as e:
        reply = "(%s)" % e
    res[key] = ((time.monotonic() - t0) * 1000, reply)
ts = [threading.Thread(target=ask, args=(k,)) for k in keys]
for t in ts:
    t.start()
for t in ts:
    t.join()
for k in keys:
    print("%s\t%.0f\t%s" % (k, res[k][0], res[k][1].replace("\t", " ")))
EOF

# answers SOCK MAP: the server on SOCK answers a key with a leading dot, which neither daemon
# resolves.
# shellcheck disable=SC2317 # invoked through bench_wait_ready
answers() {
    [ -S "$1" ] &&
        python3 "$dir/ask.py" "$1" "$2" 2 .ready.invalid 2>/dev/null |
        awk -F '\t' '$3 !~ /^\(/ { found = 1 } END { exit !found }'
}

start tlspolicyd "$daemon" -c "$dir/tlspolicyd.conf"
tpd_pid=${pids[-1]}
# The peer reads /etc/resolv.conf (the lab's) and the default CA store: SSL_CERT_FILE points
# it at the lab CA. No proxy from the environment (aiohttp honours https_proxy).
for p in peer-sqlite peer-internal; do
    start "$p" env -u https_proxy -u HTTPS_PROXY -u http_proxy -u HTTP_PROXY -u all_proxy \
        -u ALL_PROXY SSL_CERT_FILE="$LAB_CA_FILE" "$peer_bin" -c "$dir/$p.yml" -v warn
done
peer_sqlite_pid=${pids[-2]} peer_internal_pid=${pids[-1]}
bench_wait_ready tlspolicyd "$tpd_pid" answers "$dir/tlspolicyd.sock" policy
bench_wait_ready peer-sqlite "$peer_sqlite_pid" answers "$dir/peer-sqlite.sock" postfix
bench_wait_ready peer-internal "$peer_internal_pid" answers "$dir/peer-internal.sock" postfix

# ---- (a) answers ----

# What RFC 8461 asks of a sender for each case (tests/lab/README.md): the socketmap status
# (OK: a policy that constrains delivery; NOTFOUND: none, Postfix's own default) and why.
declare -A exp_status exp_why
expect() { exp_status[$1]=$2 exp_why[$1]=$3; }
expect enforce OK 'enforce; `*.backup` matches one label (§4.1)'
expect wildcard OK 'enforce, wildcard mx (§4.1)'
expect testing NOTFOUND 'testing: report, do not block (§5)'
expect none NOTFOUND 'mode none (§5)'
expect crlf OK 'enforce; CRLF line ends are valid (§3.2)'
expect split OK 'enforce; TXT strings are concatenated (§3.1)'
expect twotxt NOTFOUND 'no policy: two STSv1 TXT records (§3.1)'
expect notxt NOTFOUND 'no policy: no TXT, no fetch (§3.1)'
expect badtxt NOTFOUND 'no policy: id is not 1-32 alphanumerics (§3.1)'
expect redirect NOTFOUND 'no policy: 3xx not followed (§3.3)'
expect ctype NOTFOUND 'no policy: not text/plain (§3.2)'
expect charset OK 'enforce; a charset parameter is still text/plain'
expect big NOTFOUND 'no policy: body over 64 KiB'
expect bigchunked NOTFOUND 'no policy: chunked body over 64 KiB'
expect slow NOTFOUND 'no policy: fetch outlasts the timeout (§3.3)'
expect notls NOTFOUND 'no policy: no TLS handshake (§3.3)'
expect nohttp NOTFOUND 'no policy: no HTTP answer (§3.3)'
expect notfound NOTFOUND 'no policy: 404, only 200 counts (§3.3)'
expect syntax NOTFOUND 'no policy: `mode: enforced` (§3.2)'
expect nomx NOTFOUND 'no policy: enforce without mx (§3.2)'
expect wrongname NOTFOUND 'no policy: certificate for another name (§3.3)'
expect untrusted NOTFOUND 'no policy: untrusted CA (§3.3)'
expect expired NOTFOUND 'no policy: expired certificate (§3.3)'
expect rotate OK 'enforce (id 1; the lab does not rotate here)'
expect dane-all.test OK 'DANE, which MTA-STS must not override (§2; RFC 7672)'
expect unsigned.test NOTFOUND 'no DANE (insecure zone), no MTA-STS'

domains=()
for c in $LAB_STS_CASES; do domains+=("$c.$LAB_STS_ZONE"); done
domains+=(dane-all.test unsigned.test)

# Both daemons at once, each domain on its own connection, bounded by 30 s (the peer's
# default timeout is 4 s per DNS query and per fetch, tlspolicyd's lookup budget 8 s).
# Two rounds: the first resolves and fetches, the second shows what each daemon then holds.
say "answers: ${#domains[@]} domains from each daemon (two rounds, each at most 30 s)"
for round in 1 2; do
    python3 "$dir/ask.py" "$dir/tlspolicyd.sock" policy 30 "${domains[@]}" >"$dir/tpd.$round" &
    a=$!
    python3 "$dir/ask.py" "$dir/peer-sqlite.sock" postfix 30 "${domains[@]}" >"$dir/peer.$round" &
    b=$!
    wait "$a" || die "the client failed for tlspolicyd"
    wait "$b" || die "the client failed for mta-sts-daemon"
done

# norm REPLY: the reply with the match= list sorted (the peer lists a policy's mx patterns
# in set order, which varies from run to run).
norm() {
    local r=$1 list
    if [[ $r =~ ^(OK secure match=)([^ ]*)(.*)$ ]]; then
        list=$(tr ':' '\n' <<<"${BASH_REMATCH[2]}" | sort | paste -sd: -)
        printf '%s%s%s' "${BASH_REMATCH[1]}" "$list" "${BASH_REMATCH[3]}"
    else
        printf '%s' "$r"
    fi
}
# cell FILE1 FILE2 DOMAIN: the normalised answer of round 1 (and of round 2 when it differs),
# with the time of the first.
answer_of() { awk -F '\t' -v k="$2" '$1 == k { print $3; exit }' "$1"; }
ms_of() { awk -F '\t' -v k="$2" '$1 == k { print $2; exit }' "$1"; }
status_of() {
    case $1 in
        OK\ *) echo OK ;; NOTFOUND*) echo NOTFOUND ;; TEMP*) echo TEMP ;; PERM*) echo PERM ;;
        *) echo other ;;
    esac
}

rows_a=()
n_same=0 n_diff=0 n_dane=0 tpd_rfc=0 peer_rfc=0 n_exp=0
for d in "${domains[@]}"; do
    key=${d%".$LAB_STS_ZONE"}
    t1=$(norm "$(answer_of "$dir/tpd.1" "$d")")
    t2=$(norm "$(answer_of "$dir/tpd.2" "$d")")
    p1=$(norm "$(answer_of "$dir/peer.1" "$d")")
    p2=$(norm "$(answer_of "$dir/peer.2" "$d")")
    tms=$(ms_of "$dir/tpd.1" "$d")
    pms=$(ms_of "$dir/peer.1" "$d")
    tcell="\`$t1\`" pcell="\`$p1\`"
    [ "$t2" = "$t1" ] || tcell="$tcell, then \`$t2\`"
    [ "$p2" = "$p1" ] || pcell="$pcell, then \`$p2\`"
    want=${exp_status[$key]:-} why=${exp_why[$key]:-?}
    if [ -n "$want" ]; then
        n_exp=$((n_exp + 1))
        if [ "$(status_of "$t1")" = "$want" ] && [ "$(status_of "$t2")" = "$want" ]; then
            tpd_rfc=$((tpd_rfc + 1))
        else
            tcell="$tcell **(not as RFC)**"
        fi
    fi
    if [ "$t1" = "$p1" ] && [ "$t2" = "$p2" ]; then
        verdict=same
        n_same=$((n_same + 1))
    elif [[ $t1 == "OK dane-only"* ]]; then
        verdict="n/a: the peer does no DANE"
        n_dane=$((n_dane + 1))
    else
        verdict="**differs**"
        n_diff=$((n_diff + 1))
    fi
    if [ -n "$want" ]; then
        if [[ $verdict == n/a* ]]; then
            : # not judged: the peer cannot know about DANE
        elif [ "$(status_of "$p1")" = "$want" ] && [ "$(status_of "$p2")" = "$want" ]; then
            peer_rfc=$((peer_rfc + 1))
        else
            pcell="$pcell **(not as RFC)**"
        fi
    fi
    rows_a+=("| \`$d\` | ${want:-?}: $why | $tcell | $tms | $pcell | $pms | $verdict |")
done

# ---- (b) speed ----

printf '%s\n' "enforce.$LAB_STS_ZONE" "testing.$LAB_STS_ZONE" "none.$LAB_STS_ZONE" \
    "notxt.$LAB_STS_ZONE" >"$dir/keys"
nkeys=$(wc -l <"$dir/keys")

bench_busy

declare -A srv_sock=([tlspolicyd]=$dir/tlspolicyd.sock [peer-sqlite]=$dir/peer-sqlite.sock
    [peer-internal]=$dir/peer-internal.sock)
declare -A srv_map=([tlspolicyd]=policy [peer-sqlite]=postfix [peer-internal]=postfix)
declare -A srv_pid=([tlspolicyd]=$tpd_pid [peer-sqlite]=$peer_sqlite_pid
    [peer-internal]=$peer_internal_pid)
declare -A srv_label=([tlspolicyd]=tlspolicyd
    [peer-sqlite]="mta-sts-daemon, sqlite cache (Debian's config)"
    [peer-internal]="mta-sts-daemon, internal cache")
servers=(tlspolicyd peer-sqlite peer-internal)

# One pass over the keys fills each server's caches (the peer keeps no "no policy" results:
# it asks the TXT record of a domain without one at every lookup).
for s in "${servers[@]}"; do
    timeout 60 "$loadgen" --connect "unix:${srv_sock[$s]}" --map "${srv_map[$s]}" \
        --connections 1 --requests "$nkeys" --warmup 0 --duration 30 --keys "$dir/keys" \
        >>"$dir/loadgen.log" 2>&1 || die "$s: filling the caches failed; see $dir/loadgen.log"
done

rows_b=()
declare -A rate_of
measure() {
    local s=$1 mode=$2 conns=$3 depth=$4 json rc rate p50 p99 errs cpu note loadgen_ok ok nf n
    say "${srv_label[$s]}, $mode: ${warmup}s warm-up, ${duration}s measured"
    bench_measure "$s" "${srv_pid[$s]}" %.1f timeout $((duration + warmup + 30)) "$loadgen" \
        --connect "unix:${srv_sock[$s]}" --map "${srv_map[$s]}" --connections "$conns" \
        --depth "$depth" --duration "$duration" --warmup "$warmup" --keys "$dir/keys" --json
    if [ "$loadgen_ok" = 1 ]; then
        # Two of the four keys have a policy in force (enforce: OK; testing, none, notxt:
        # NOTFOUND, for both daemons): anything else is an error here.
        ok=$(field "$json" OK) nf=$(field "$json" NOTFOUND) n=$(field "$json" requests)
        if [ $((${ok:-0} + ${nf:-0})) != "${n:-0}" ]; then
            failed=1
            note="$note ($((n - ok - nf)) neither OK nor NOTFOUND)"
        fi
    fi
    rate_of[$s/$mode]=$rate
    rows_b+=("| ${srv_label[$s]} | $mode | $(printf '%.0f' "$rate") | $p50 | $p99 | $cpu | $errs$note |")
}
modes=("lockstep 50:50:1" "pipelined 10x32:10:32")
# BENCH_MODES="NAME:CONNECTIONS:DEPTH,...": other modes (tests/bench/table.sh sets them).
if [ -n "${BENCH_MODES:-}" ]; then IFS=, read -r -a modes <<<"$BENCH_MODES"; fi
for m in "${modes[@]}"; do
    IFS=: read -r mode conns depth <<<"$m"
    for s in "${servers[@]}"; do measure "$s" "$mode" "$conns" "$depth"; done
done

# ---- report ----

printf '## tlspolicyd and postfix-mta-sts-resolver\n\n'
printf 'Inside the lab (tests/lab/dnslab.sh), on one machine: %s CPUs (%s%% busy with other work\n' \
    "$(nproc)" "$busy"
printf 'before the speed runs), %s. tlspolicyd: %s (`%s`); peer: postfix-mta-sts-resolver %s\n' \
    "$(uname -sr)" "$("$daemon" -V 2>&1 | head -n 1)" "${build##*/}" "$peer_version"
printf '(`mta-sts-daemon`, Python %s, %s event loop). Both ask the lab'"'"'s unbound and trust\n' \
    "$peer_pyver" "$peer_loop"
printf 'only the lab CA; tlspolicyd answers map `policy`, the peer map `postfix`; unix sockets.\n\n'

printf '### Answers\n\n'
printf 'Each domain asked once of each daemon (first answer and its time in ms, uncached;\n'
printf '"then" gives the second round'"'"'s answer where it differs). Expected: the socketmap\n'
printf 'status RFC 8461 calls for (OK: a policy that constrains delivery; NOTFOUND: none).\n\n'
printf '| domain | expected (RFC 8461) | tlspolicyd | ms | mta-sts-daemon | ms | same? |\n'
printf '|---|---|---|---:|---|---:|---|\n'
printf '%s\n' "${rows_a[@]}"
printf '\n%d domains: %d answered alike, %d differ, %d DANE (not done by the peer).\n' \
    "${#domains[@]}" "$n_same" "$n_diff" "$n_dane"
printf 'As RFC 8461 expects: tlspolicyd %d of %d, mta-sts-daemon %d of %d (DANE not judged).\n\n' \
    "$tpd_rfc" "$n_exp" "$peer_rfc" "$((n_exp - n_dane))"

printf '### Speed\n\n'
printf 'bench_loadgen over %s (%s), %ss measured after %ss warm-up, after one pass that\n' \
    "$(sed 's/\..*//' "$dir/keys" | paste -sd/ -)" "$nkeys keys in $LAB_STS_ZONE" "$duration" \
    "$warmup"
printf 'filled the caches. Latency per request, write to reply, in microseconds; CPU us: the\n'
printf 'server'"'"'s CPU time per answer (all its threads).\n\n'
printf '| server | mode | answers/s | p50 us | p99 us | CPU us | errors |\n'
printf '|---|---|---:|---:|---:|---:|---:|\n'
printf '%s\n' "${rows_b[@]}"
printf '\n'
for m in "${modes[@]}"; do
    mode=${m%%:*}
    r=$(awk -v a="${rate_of[tlspolicyd/$mode]:-0}" -v b="${rate_of[peer-internal/$mode]:-0}" \
        -v c="${rate_of[peer-sqlite/$mode]:-0}" \
        'BEGIN { if (b > 0 && c > 0) printf "%.0fx the in-memory peer, %.0fx the sqlite peer", a / b, a / c; else print "-" }')
    printf -- '- %s: tlspolicyd %s.\n' "$mode" "$r"
done

[ "$failed" = 0 ] || say "some measurements had errors; see above"
exit "$failed"
