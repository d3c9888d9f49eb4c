#!/bin/bash
# dnslab.sh: a private DNSSEC lab for tlspolicyd's tests: NSD serving a signed hierarchy
# under the made-up TLD test., and unbound validating it with a trust anchor for test. only.
#
#   tests/lab/dnslab.sh COMMAND [ARGS...]  start a lab, run COMMAND inside it, stop the lab;
#                                          exits with COMMAND's status (125: the lab failed)
#   tests/lab/dnslab.sh --check            start a lab and check it against zones.expect
#
# Inside a lab (LAB_DIR is set), for tests that need the resolver (unbound) or the
# authoritative server (NSD) to fail; each returns when done (starts: when it answers):
#   "$LAB_CTL" --resolver-stop | --resolver-start | --resolver-restart
#   "$LAB_CTL" --resolver-pause | --resolver-resume     SIGSTOP/SIGCONT: queries time out
#   "$LAB_CTL" --auth-stop | --auth-start | --auth-restart | --auth-pause | --auth-resume
#   "$LAB_CTL" --flush                                  empty unbound's caches
#
# Everything runs in fresh network, mount and PID namespaces: nothing leaves the machine, and
# whatever is left when the lab ends is killed by the kernel. Keys and signatures are made at
# every start (signatures expire), in a temporary directory that is removed at the end.
# Environment: DNSLAB_KEEP=1 keeps the directory, DNSLAB_VERBOSE=1 says what happens,
# DNSLAB_WAIT=SECONDS bounds each start-up wait (10), DNSLAB_EXTRA_RECORDS=FILE adds
# records (absolute owner names, one per line) to the zones before they are signed.
# See tests/lab/README.md.
# shellcheck disable=SC2317  # functions run from traps or through a variable
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

src=${BASH_SOURCE[0]}
[[ $src == */* ]] || src=./$src
here=$(cd "${src%/*}" && pwd)
self=$here/${src##*/}
prog=dnslab
AUTH=127.0.10.1       # NSD
RESOLVER=127.0.10.2   # unbound
PORT=53               # glibc's resolv.conf cannot carry another port
TTL=60
LAB_FAIL=125
wait_s=${DNSLAB_WAIT:-10}
# The delegated children of test.; all but unsigned.test are signed.
SIGNED="dane-all dane-mixed mx-cname nullmx nomx-tlsa noaddr unusable bogus-mx bogus badds expired"
UNSIGNED="unsigned"

say() { [ -z "${DNSLAB_VERBOSE:-}" ] || echo "$prog: [$(($(now_ms) - ${t_start:-0})) ms] $*" >&2; }
die() { echo "$prog: $*" >&2; exit "$LAB_FAIL"; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found: install the Debian package $2"; }

usage() {
    sed -n '2,/^# See tests/s/^# \{0,1\}//p' "$self"
}

now_ms() { local t=${EPOCHREALTIME//[.,]/}; echo $((t / 1000)); }

# alive PID: the process exists and is not a zombie.
alive() {
    local pid=${1:-} st
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    read -r st < "/proc/$pid/stat" 2>/dev/null || return 1
    st=${st##*) }
    [ "${st%% *}" != Z ]
}

pid_of() { local p=""; [ -s "$1" ] && read -r p < "$1"; printf '%s' "$p"; }

# stop_pid NAME PID: SIGTERM (and SIGCONT, should it be paused), then SIGKILL, each waited
# for at most 5 s.
stop_pid() {
    local name=$1 pid=${2:-} i
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    kill -CONT "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do alive "$pid" || return 0; sleep 0.05; done
    echo "$prog: $name (pid $pid) ignored SIGTERM; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do alive "$pid" || return 0; sleep 0.05; done
    echo "$prog: $name (pid $pid) survived SIGKILL" >&2
    return 1
}

# query SERVER DIG-ARGS...: sets q_rcode, q_flags (" qr rd ... ") and q_out.
query() {
    local server=$1
    shift
    q_rcode="" q_flags=""
    q_out=$(dig -4 +time=1 +tries=2 +noall +comments +answer -p "$PORT" "@$server" "$@" 2>&1) || true
    if [[ $q_out =~ status:\ ([A-Z]+), ]]; then q_rcode=${BASH_REMATCH[1]}; fi
    if [[ $q_out =~ flags:([a-z ]*)\; ]]; then q_flags="${BASH_REMATCH[1]} "; fi
}

# Ready when NSD answers authoritatively and unbound answers a secure name with AD.
auth_ready() {
    query "$AUTH" +norecurse +time=1 +tries=1 test. SOA
    [ "$q_rcode" = NOERROR ] && [[ $q_flags == *" aa "* ]]
}
resolver_ready() {
    query "$RESOLVER" +dnssec +time=1 +tries=1 dane-all.test. MX
    [ "$q_rcode" = NOERROR ] && [[ $q_flags == *" ad "* ]]
}

tail_log() { [ ! -s "$1" ] || { echo "--- $1 (last lines)"; tail -n 20 "$1"; } >&2; }

# wait_ready NAME PID LOG CHECK CHECKCONF...: bounded by DNSLAB_WAIT seconds; on failure,
# the end of the log and what CHECKCONF says about the configuration.
wait_ready() {
    local name=$1 pid=$2 log=$3 check=$4 deadline why=""
    shift 4
    deadline=$(( $(now_ms) + wait_s * 1000 ))
    while :; do
        if ! alive "$pid"; then
            why="exited during start-up"
        elif "$check"; then
            return 0
        elif (( $(now_ms) >= deadline )); then
            why="did not answer within ${wait_s}s (last answer: ${q_rcode:-none})"
        fi
        if [ -n "$why" ]; then
            tail_log "$log"
            "$@" >&2 || true
            die "$name $why (log $log; DNSLAB_KEEP=1 keeps it)"
        fi
        sleep 0.05
    done
}

# The daemons: D is nsd or unbound. Each writes its pid to LAB_DIR/D.pid (also when a test
# starts it by hand); LAB_DIR/D/launched.pid is written here at once, for the start-up wait.
name_of() { if [ "$1" = nsd ]; then echo NSD; else echo unbound; fi; }
# daemon_pid D: the pid of the running daemon, or nothing.
daemon_pid() {
    local p
    for p in "$(pid_of "$LAB_DIR/$1.pid")" "$(pid_of "$LAB_DIR/$1/launched.pid")"; do
        if alive "$p"; then printf '%s' "$p"; return 0; fi
    done
}
# launch D: start it in the background unless it runs, in a session of its own so that
# a ^C on the terminal does not stop it (NSD and unbound exit on SIGINT).
launch() {
    [ -z "$(daemon_pid "$1")" ] || return 0
    if [ "$1" = nsd ]; then
        setsid nsd -d -c "$LAB_DIR/nsd.conf" </dev/null >>"$LAB_DIR/nsd.log" 2>&1 &
    else
        setsid unbound -d -c "$LAB_DIR/unbound.conf" </dev/null >>"$LAB_DIR/unbound.log" 2>&1 &
    fi
    echo "$!" > "$LAB_DIR/$1/launched.pid"
}
# start D: launch it, and wait until it answers.
start() {
    local pid
    launch "$1"
    pid=$(daemon_pid "$1")
    if [ "$1" = nsd ]; then
        wait_ready NSD "$pid" "$LAB_DIR/nsd.log" auth_ready nsd-checkconf "$LAB_DIR/nsd.conf"
        say "NSD (pid $pid) answers on $AUTH:$PORT"
    else
        wait_ready unbound "$pid" "$LAB_DIR/unbound.log" resolver_ready \
            unbound-checkconf "$LAB_DIR/unbound.conf"
        say "unbound (pid $pid) validates on $RESOLVER:$PORT"
    fi
}
stop() {
    local p
    for p in "$(pid_of "$LAB_DIR/$1.pid")" "$(pid_of "$LAB_DIR/$1/launched.pid")"; do
        stop_pid "$(name_of "$1")" "$p"
    done
}
# signal D SIG: SIGSTOP and SIGCONT pause and resume it.
signal() {
    local pid
    pid=$(daemon_pid "$1")
    [ -n "$pid" ] || die "$(name_of "$1") is not running"
    kill "-$2" "$pid"
}

unbound_control() {
    unbound-control -c "$LAB_DIR/unbound.conf" "$@" >/dev/null ||
        die "unbound-control $* failed"
}

flush() {
    [ -n "$(daemon_pid unbound)" ] || die "unbound is not running"
    unbound_control flush_zone test.
    unbound_control flush_bogus
    unbound_control flush_negative
    unbound_control flush_infra all
    unbound_control flush_requestlist
}

# ---------------------------------------------------------------------------------------
# Control of a running lab (called by a test inside it).
case ${1:-} in
--resolver-* | --auth-* | --flush)
    if [ -z "${LAB_DIR:-}" ] || [ ! -f "$LAB_DIR/unbound.conf" ]; then
        die "$1: not inside a lab (run it from a command that dnslab.sh started)"
    fi
    need dig bind9-dnsutils
    case $1 in
    --resolver-stop) stop unbound ;;
    --resolver-start) need unbound unbound; start unbound ;;
    --resolver-restart) need unbound unbound; stop unbound; start unbound ;;
    --resolver-pause) signal unbound STOP ;;
    --resolver-resume) signal unbound CONT ;;
    --auth-stop) stop nsd ;;
    --auth-start)
        need nsd nsd
        start nsd
        # unbound has marked the server as down, and remembers the SERVFAILs it gave.
        if [ -n "$(daemon_pid unbound)" ]; then
            unbound_control flush_infra all
            unbound_control flush_negative
        fi
        ;;
    --auth-restart) need nsd nsd; stop nsd; start nsd ;;
    --auth-pause) signal nsd STOP ;;
    --auth-resume) signal nsd CONT ;;
    --flush) need unbound-control unbound; flush ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
    exit 0
    ;;
-h | --help)
    usage
    exit 0
    ;;
--check) ;;
"")
    usage >&2
    exit 2
    ;;
-*)
    echo "$prog: unknown option $1 (see --help)" >&2
    exit 2
    ;;
esac

# ---------------------------------------------------------------------------------------
# Enter fresh namespaces: re-run this script under unshare. unshare blocks SIGTERM and
# SIGINT while it waits, so this shell stays to pass signals on to the lab inside.
if [ "${_DNSLAB_NS:-}" != 1 ]; then
    need unshare util-linux
    need setpriv util-linux
    need env coreutils
    userns=()
    # Root needs no user namespace; others get one in which they are root.
    [ "$(id -u)" -eq 0 ] || userns=(--user --map-root-user)
    exec 3<&0
    # Should this shell be killed, setpriv's death signal kills unshare, whose --kill-child
    # sends the lab SIGTERM: it cleans up. (Its PID namespace ends whatever is left.)
    _DNSLAB_NS=1 env --default-signal=INT,QUIT setpriv --pdeathsig KILL \
        unshare "${userns[@]}" --net --mount --pid --mount-proc --fork --kill-child=TERM \
        -- "$self" "$@" 0<&3 3<&- &
    ns_pid=$!
    exec 3<&-
    forward() { # forward SIG: to unshare's child, the lab
        local lab="" f st
        local -a fields
        if ! read -r lab _ < "/proc/$ns_pid/task/$ns_pid/children" 2>/dev/null; then
            for f in /proc/[0-9]*/stat; do   # a kernel without /proc/PID/task/TID/children
                read -r st < "$f" 2>/dev/null || continue
                read -r -a fields <<< "${st##*) }"
                if [ "${fields[1]}" = "$ns_pid" ]; then lab=${f#/proc/}; lab=${lab%/stat}; break; fi
            done
        fi
        [ -z "$lab" ] || kill "-$1" "$lab" 2>/dev/null || true
    }
    trap 'forward TERM' TERM
    trap 'forward HUP' HUP
    trap 'forward INT' INT
    while :; do
        rc=0
        wait "$ns_pid" || rc=$?
        alive "$ns_pid" || break   # otherwise a trapped signal interrupted the wait
    done
    exit "$rc"
fi
unset _DNSLAB_NS   # a COMMAND that runs dnslab.sh again gets a lab of its own

for t in ip:iproute2 mount:mount setsid:util-linux nsd:nsd nsd-checkconf:nsd unbound:unbound \
    unbound-checkconf:unbound unbound-control:unbound dnssec-keygen:bind9-utils \
    dnssec-signzone:bind9-utils dnssec-dsfromkey:bind9-utils dig:bind9-dnsutils \
    sha256sum:coreutils awk:mawk; do
    need "${t%%:*}" "${t#*:}"
done

LAB_DIR=""
cmd_pid=""
mounted=""
cleanup() {
    local rc=$?
    # Cleaning up takes a bounded time; signals wait (bash would die of a late ^C).
    trap - EXIT
    trap '' HUP INT TERM
    set +e
    if [ -n "$cmd_pid" ]; then stop_pid "command" "$cmd_pid"; fi
    if [ -n "$LAB_DIR" ]; then
        stop unbound
        stop nsd
        [ -z "$mounted" ] || umount /etc/resolv.conf
        if [ -n "${DNSLAB_KEEP:-}" ]; then
            echo "$prog: kept $LAB_DIR" >&2
        else
            rm -rf "$LAB_DIR"
        fi
    fi
    exit "$rc"
}
# While COMMAND runs, SIGINT is its business (an interactive shell ignores it).
on_int() { if [ -n "$cmd_pid" ] && alive "$cmd_pid"; then return 0; fi; exit 130; }
trap cleanup EXIT
trap on_int INT
trap 'exit 129' HUP
trap 'exit 143' TERM

t_start=$(now_ms)
ip link set lo up || die "cannot bring up lo in the new network namespace"
LAB_DIR=$(mktemp -d "${TMPDIR:-/tmp}/dnslab.XXXXXX")
chmod 755 "$LAB_DIR"
keys=$LAB_DIR/keys
zones=$LAB_DIR/zones
logs=$LAB_DIR/log
mkdir -p "$keys" "$zones" "$logs" "$LAB_DIR/nsd" "$LAB_DIR/unbound" "$LAB_DIR/hex"

# ---------------------------------------------------------------------------------------
# Zones.

# Made-up but well-formed association data: hex[NAME] is the SHA-256 of the text NAME
# (one sha256sum run for all).
declare -A hex=()
make_hex() {
    local n h f
    for n in "$@"; do printf '%s' "$n" > "$LAB_DIR/hex/$n"; done
    while read -r h f; do hex[${f##*/}]=$h; done < <(cd "$LAB_DIR/hex" && sha256sum -- "$@")
    [ "${#hex[@]}" -eq $# ] || die "sha256sum failed"
}

# zone_records ZONE: the records of a zone, relative to its origin.
zone_records() {
    case $1 in
    dane-all)
        echo "@ MX 10 mx1"
        echo "@ MX 20 mx2"
        echo "mx1 A 127.0.20.1"
        echo "mx2 A 127.0.20.2"
        echo "_25._tcp.mx1 TLSA 3 1 1 ${hex[mx1.dane-all.test]}"
        echo "_25._tcp.mx2 TLSA 3 1 1 ${hex[mx2.dane-all.test]}"
        ;;
    dane-mixed)
        echo "@ MX 10 mx"
        echo "@ MX 20 mx.unsigned.test."
        echo "mx A 127.0.20.3"
        echo "_25._tcp.mx TLSA 3 1 1 ${hex[mx.dane-mixed.test]}"
        ;;
    unsigned)
        echo "@ MX 10 mx"
        echo "mx A 127.0.20.4"
        ;;
    mx-cname)
        echo "@ MX 10 alias"
        echo "alias CNAME host"
        echo "host A 127.0.20.5"
        echo "_25._tcp.host TLSA 3 1 1 ${hex[host.mx-cname.test]}"
        ;;
    nullmx)
        echo "@ MX 0 ."
        ;;
    nomx-tlsa)
        echo "@ A 127.0.20.6"
        echo "_25._tcp TLSA 3 1 1 ${hex[nomx-tlsa.test]}"
        ;;
    noaddr)
        echo "@ MX 10 mx"
        echo "mx TXT \"this host has no address\""
        ;;
    unusable)
        echo "@ MX 10 mx"
        echo "mx A 127.0.20.7"
        echo "_25._tcp.mx TLSA 0 0 1 ${hex[pkix-ta.unusable.test]}"
        echo "_25._tcp.mx TLSA 1 1 1 ${hex[pkix-ee.unusable.test]}"
        echo "_25._tcp.mx TLSA 3 7 1 ${hex[selector7.unusable.test]}"
        echo "_25._tcp.mx TLSA 3 1 9 ${hex[mtype9.unusable.test]}"
        ;;
    bogus-mx)
        echo "@ MX 10 mx.bogus.test."
        ;;
    bogus)
        echo "mx A 127.0.20.8"
        echo "_25._tcp.mx TLSA 3 1 1 ${hex[mx.bogus.test]}"
        ;;
    badds)
        echo "@ MX 10 mx"
        echo "mx A 127.0.20.9"
        echo "_25._tcp.mx TLSA 3 1 1 ${hex[mx.badds.test]}"
        ;;
    expired)
        echo "@ MX 10 mx"
        echo "mx A 127.0.20.10"
        echo "_25._tcp.mx TLSA 3 1 1 ${hex[mx.expired.test]}"
        ;;
    test)
        echo "ns A $AUTH"
        for c in $SIGNED $UNSIGNED; do echo "$c NS ns.test."; done
        ;;
    *) die "no records for zone $1" ;;
    esac
}

# write_zone ZONE: the unsigned zone file.
write_zone() {
    local origin
    origin=$1.test.
    [ "$1" != test ] || origin=test.
    {
        echo "\$ORIGIN $origin"
        echo "\$TTL $TTL"
        echo "@ SOA ns.test. hostmaster.test. 1 $TTL $TTL 600 $TTL"
        echo "@ NS ns.test."
        zone_records "$1"
    } > "$zones/$1.zone"
}

# DNSLAB_EXTRA_RECORDS: each line goes to the zone that owns its (absolute) owner name.
add_extra_records() {
    local file=$1 line name owner z best
    [ -r "$file" ] || die "DNSLAB_EXTRA_RECORDS: cannot read $file"
    while IFS= read -r line || [ -n "$line" ]; do
        case $line in '' | '#'* | ';'*) continue ;; esac
        name=${line%%[[:space:]]*}
        if [ -z "$name" ] || [[ $name != *. ]]; then
            die "DNSLAB_EXTRA_RECORDS: each line needs an absolute owner name: $line"
        fi
        owner=${name,,}
        owner=${owner%.}
        best=""
        for z in $SIGNED $UNSIGNED; do
            if [ "$owner" = "$z.test" ] || [[ $owner == *".$z.test" ]]; then best=$z; fi
        done
        if [ -z "$best" ]; then
            if [ "$owner" != test ] && [[ $owner != *.test ]]; then
                die "DNSLAB_EXTRA_RECORDS: $name is not under test."
            fi
            best='test'
        fi
        printf '%s\n' "$line" >> "$zones/$best.zone"
        say "extra record in $best: $line"
    done < "$file"
}

# Each dnssec-* run costs ~30 ms, mostly start-up: run them side by side.
# spawn JOB COMMAND...: in the background, stdout in $logs/JOB.out, stderr in JOB.log;
# reap waits for them all.
declare -A jobs=()
spawn() { local j=$1; shift; "$@" > "$logs/$j.out" 2> "$logs/$j.log" & jobs[$j]=$!; }
reap() {
    local j
    for j in "${!jobs[@]}"; do
        wait "${jobs[$j]}" || { tail_log "$logs/$j.log"; die "$j failed"; }
    done
    jobs=()
}

keygen() { # keygen ZONE: prints the base name of a new combined signing key (KSK flag; -z)
    dnssec-keygen -q -a ECDSAP256SHA256 -f KSK -L "$TTL" -K "$keys" -n ZONE "$1"
}

# sign ZONE KEY [dnssec-signzone options]: zones/ZONE.zone -> zones/ZONE.signed
sign() {
    local z=$1 key=$2 origin
    shift 2
    origin=$z.test.
    [ "$z" != test ] || origin=test.
    local -a rr
    mapfile -t rr < "$key.key"
    printf '%s\n' "${rr[@]}" >> "$zones/$z.zone"
    dnssec-signzone -q -z -O full -o "$origin" -K "$keys" -d "$keys" -f "$zones/$z.signed" \
        "$@" "$zones/$z.zone" "$key.private"
}

say "building zones in $LAB_DIR"
make_hex mx1.dane-all.test mx2.dane-all.test mx.dane-mixed.test host.mx-cname.test \
    nomx-tlsa.test pkix-ta.unusable.test pkix-ee.unusable.test selector7.unusable.test \
    mtype9.unusable.test mx.bogus.test mx.badds.test mx.expired.test
for z in test $SIGNED $UNSIGNED; do write_zone "$z"; done
if [ -n "${DNSLAB_EXTRA_RECORDS:-}" ]; then add_extra_records "$DNSLAB_EXTRA_RECORDS"; fi

# Keys: one per signed zone, and a decoy for badds.test that the child never publishes.
for z in test $SIGNED; do spawn "keygen-$z" keygen "$([ "$z" = test ] || echo "$z.")test."; done
spawn keygen-decoy keygen badds.test.
reap
say "keys made"
declare -A key
for z in test $SIGNED decoy; do
    read -r k < "$logs/keygen-$z.out"
    [[ $k == K* ]] || die "dnssec-keygen said '$k' for $z"
    key[$z]=$keys/$k
done

# The children first: signing writes keys/dsset-ZONE. with the DS for the parent.
TZ=UTC printf -v past_s '%(%Y%m%d%H%M%S)T' $((EPOCHSECONDS - 30 * 86400))
TZ=UTC printf -v past_e '%(%Y%m%d%H%M%S)T' $((EPOCHSECONDS - 86400))
for z in $SIGNED; do
    if [ "$z" = expired ]; then
        # -P: the signatures would fail the post-signing check, as they should.
        spawn "sign-$z" sign "$z" "${key[$z]}" -P -s "$past_s" -e "$past_e"
    else
        spawn "sign-$z" sign "$z" "${key[$z]}"
    fi
done
spawn ds-decoy dnssec-dsfromkey -2 "${key[decoy]}.key"
reap
say "children signed"

# The parent: delegations (in zone_records) and the DS of every signed child, but for
# badds.test the DS of the decoy. Its own dsset is the trust anchor.
for z in $SIGNED; do
    if [ "$z" = badds ]; then cat "$logs/ds-decoy.out"; else cat "$keys/dsset-$z.test."; fi
done >> "$zones/test.zone"
spawn sign-test sign test "${key[test]}"
reap
cp "$keys/dsset-test." "$LAB_DIR/test.anchor"
say "test. signed"
cp "$zones/unsigned.zone" "$zones/unsigned.signed"   # served as it is

# bogus.test: damage the signature over mx.bogus.test/A (its first field of base64).
awk '$1 == "mx.bogus.test." && $4 == "RRSIG" && $5 == "A" {
         s = $13; c = substr(s, 5, 1); c = (c == "A") ? "B" : "A"
         $13 = substr(s, 1, 4) c substr(s, 6); n++
     }
     { print }
     END { if (n != 1) exit 1 }' "$zones/bogus.signed" > "$zones/bogus.tampered" ||
    die "did not find the RRSIG of mx.bogus.test/A to tamper with"
mv "$zones/bogus.tampered" "$zones/bogus.signed"

t_zones=$(now_ms)

# ---------------------------------------------------------------------------------------
# Configuration.
{
    cat <<EOF
server:
    ip-address: $AUTH
    port: $PORT
    do-ip6: no
    server-count: 1
    username: ""
    chroot: ""
    database: ""
    zonesdir: "$zones"
    zonelistfile: "$LAB_DIR/nsd/zone.list"
    xfrdfile: "$LAB_DIR/nsd/xfrd.state"
    xfrdir: "$LAB_DIR/nsd"
    cookie-secret-file: "$LAB_DIR/nsd/cookiesecrets.txt"
    pidfile: "$LAB_DIR/nsd.pid"
    logfile: "$LAB_DIR/nsd.log"
    verbosity: 1
    hide-version: yes
    identity: "dnslab"
    # Start-up time: NSD's defaults allocate a 32 MB rate-limit table and draw 16k random
    # numbers for zone-transfer connections that the lab never makes.
    rrl-size: 1024
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    xfrd-tcp-max: 1
    xfrd-tcp-pipeline: 1
remote-control:
    control-enable: no
EOF
    for z in test $SIGNED $UNSIGNED; do
        origin=$z.test.
        [ "$z" != test ] || origin=test.
        printf 'zone:\n    name: "%s"\n    zonefile: "%s.signed"\n' "$origin" "$z"
    done
} > "$LAB_DIR/nsd.conf"

cat > "$LAB_DIR/unbound.conf" <<EOF
server:
    verbosity: 1
    interface: $RESOLVER
    port: $PORT
    outgoing-interface: $RESOLVER
    do-ip4: yes
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    username: ""
    chroot: ""
    directory: "$LAB_DIR"
    pidfile: "$LAB_DIR/unbound.pid"
    logfile: "$LAB_DIR/unbound.log"
    use-syslog: no
    log-time-ascii: yes
    do-daemonize: no
    num-threads: 1
    do-not-query-localhost: no
    module-config: "validator iterator"
    trust-anchor-signaling: no
    trust-anchor-file: "$LAB_DIR/test.anchor"
    val-log-level: 2
    log-servfail: yes
    ede: yes
    cache-min-ttl: 0
    cache-max-ttl: $TTL
    cache-max-negative-ttl: $TTL
    infra-host-ttl: $TTL
    infra-keep-probing: yes
    # Debian's unbound drops replies that took longer than 1.9 s; the lab answers SERVFAIL
    # (after ~4.5 s when NSD is down) so that tests see what happened.
    discard-timeout: 0
    # Nothing outside test. is resolved; test. is not the built-in RFC 6761 empty zone.
    local-zone: "." refuse
    local-zone: "test." transparent
stub-zone:
    name: "test."
    stub-addr: $AUTH@$PORT
remote-control:
    control-enable: yes
    control-interface: "$LAB_DIR/unbound.ctl"
    control-use-cert: no
EOF

# trust-ad: glibc passes the AD bit on only when told to (Postfix's DANE needs it).
printf 'nameserver %s\noptions edns0 trust-ad\n' "$RESOLVER" > "$LAB_DIR/resolv.conf"

# ---------------------------------------------------------------------------------------
# Start.
# Side by side: unbound asks NSD nothing before the first query, which waits for NSD.
launch nsd
launch unbound
start nsd
start unbound
mount --bind "$LAB_DIR/resolv.conf" /etc/resolv.conf ||
    die "cannot bind-mount $LAB_DIR/resolv.conf on /etc/resolv.conf"
mounted=1
t_ready=$(now_ms)
say "ready in $((t_ready - t_start)) ms (zones signed in $((t_zones - t_start)) ms)"

export LAB_DIR LAB_CTL="$self" LAB_EXPECT="$here/zones.expect"
export LAB_AUTH=$AUTH LAB_AUTH_PORT=$PORT LAB_RESOLVER=$RESOLVER LAB_RESOLVER_PORT=$PORT
export LAB_TRUST_ANCHOR="$LAB_DIR/test.anchor" LAB_RESOLV_CONF="$LAB_DIR/resolv.conf"
export LAB_UNBOUND_CONF="$LAB_DIR/unbound.conf" LAB_UNBOUND_PIDFILE="$LAB_DIR/unbound.pid"
export LAB_UNBOUND_LOG="$LAB_DIR/unbound.log"
export LAB_UNBOUND_CMD="unbound -d -c $LAB_DIR/unbound.conf"
export LAB_UNBOUND_CONTROL="unbound-control -c $LAB_DIR/unbound.conf"
export LAB_NSD_CONF="$LAB_DIR/nsd.conf" LAB_NSD_PIDFILE="$LAB_DIR/nsd.pid"
export LAB_NSD_LOG="$LAB_DIR/nsd.log" LAB_NSD_CMD="nsd -d -c $LAB_DIR/nsd.conf"
export LAB_STARTUP_MS=$((t_ready - t_start))
# The same controls as sh -c command lines.
printf -v q '%q' "$self"
export LAB_RESOLVER_STOP="$q --resolver-stop" LAB_RESOLVER_START="$q --resolver-start"
export LAB_AUTH_STOP="$q --auth-stop" LAB_AUTH_START="$q --auth-start"

# ---------------------------------------------------------------------------------------
# --check: every line of zones.expect, then glibc through resolv.conf.
run_check() {
    local name type rcode ad count opt rest got_ad got_n verdict bad=0 n=0 l f
    local -a extra
    printf '%-30s %-6s %-19s %-5s %-7s %s\n' NAME TYPE "RCODE got/want" "AD" "COUNT" ""
    while read -r name type rcode ad count opt rest; do
        case $name in '' | '#'*) continue ;; esac
        extra=()
        [ "${opt:-}" != cd ] || extra=(+cd)
        query "$RESOLVER" +dnssec "${extra[@]}" "$name" "$type"
        got_ad=0
        [[ $q_flags != *" ad "* ]] || got_ad=1
        got_n=0
        while read -r l; do
            case $l in '' | ';'*) continue ;; esac
            read -r -a f <<< "$l"
            [ "${f[3]:-}" != "$type" ] || got_n=$((got_n + 1))
        done <<< "$q_out"
        verdict=ok
        if [ "$q_rcode" != "$rcode" ] || [ "$got_ad" != "$ad" ] ||
            { [ "$count" != - ] && [ "$got_n" != "$count" ]; }; then
            verdict=FAIL
            bad=$((bad + 1))
        fi
        n=$((n + 1))
        printf '%-30s %-6s %-19s %-5s %-7s %s\n' "$name" "$type${opt:+/$opt}" \
            "${q_rcode:-none}/$rcode" "$got_ad/$ad" "$got_n/$count" "$verdict"
    done < "$here/zones.expect"
    # glibc (and whatever reads /etc/resolv.conf) sees the lab.
    n=$((n + 1))
    l=$(getent hosts mx1.dane-all.test || true)
    if [ "${l%% *}" = 127.0.20.1 ]; then
        echo "getent hosts mx1.dane-all.test -> 127.0.20.1 (via /etc/resolv.conf) ok"
    else
        echo "getent hosts mx1.dane-all.test -> '${l:-nothing}', want 127.0.20.1 FAIL"
        bad=$((bad + 1))
    fi
    echo "$((n - bad)) of $n as expected; lab ready in ${LAB_STARTUP_MS} ms"
    [ "$bad" -eq 0 ]
}

run_command() {
    local rc
    exec 3<&0
    # An asynchronous command starts with SIGINT and SIGQUIT ignored; give them back.
    env --default-signal=INT,QUIT -- "$@" 0<&3 3<&- &
    cmd_pid=$!
    exec 3<&-
    while :; do
        rc=0
        wait "$cmd_pid" || rc=$?
        alive "$cmd_pid" || break   # otherwise a trapped signal interrupted the wait
    done
    cmd_pid=""
    return "$rc"
}

rc=0
if [ "$1" = --check ]; then
    run_check || rc=1
else
    run_command "$@" || rc=$?
fi
exit "$rc"
