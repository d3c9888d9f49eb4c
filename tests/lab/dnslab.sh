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
#   "$LAB_CTL" --https-stop | --https-start | --https-restart   nginx and stslab.py
#   "$LAB_CTL" --sts-rotate                             rotate.sts.test: policy id 1 -> 2
#   "$LAB_CTL" --smtp-stop | --smtp-start | --smtp-restart      smtplab.py (SMTP peers)
#
# The lab also hosts MTA-STS policies (RFC 8461): a test CA made at start (LAB_CA_FILE),
# nginx on 127.0.30.1:443 with a server per case of the unsigned zone sts.test, and
# stslab.py for the hosts nginx cannot play (silent, TLS-but-no-HTTP, slow). For REQUIRETLS,
# smtplab.py plays SMTP servers on 127.0.40.N:25 (REQUIRETLS, TLS only, plain, wrong
# certificate, stalled STARTTLS, endless EHLO) behind signed and MTA-STS recipient domains.
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
# The delegated children of test.; all but unsigned.test and sts.test are signed.
SIGNED="dane-all dane-mixed mx-cname nullmx nomx-tlsa noaddr unusable bogus-mx bogus badds expired
    rtls-dane tlsonly-dane bogus-some rtls-dane-two dane-some-sts"
UNSIGNED="unsigned sts"
# MTA-STS policy hosts: nginx serves every case at HTTPS but these three, which
# stslab.py plays, each on an address of its own.
HTTPS=127.0.30.1         # nginx
HTTPS_NOTLS=127.0.30.2   # accepts TCP, never says a word
HTTPS_NOHTTP=127.0.30.3  # TLS handshake, then silence
HTTPS_SLOW=127.0.30.4    # a policy at 2.5 bytes/s
HTTPS_PORT=443
STS_PATH=/.well-known/mta-sts.txt
# The cases of sts.test (C.sts.test, policy host mta-sts.C.sts.test); MX hosts
# mx1.C.sts.test get 127.0.20.101... in this order. See README.md.
STS_CASES="enforce wildcard testing none crlf split twotxt notxt badtxt redirect ctype charset
    big bigchunked slow notls nohttp notfound syntax nomx wrongname untrusted expired rotate"
# Signed zones that publish an MTA-STS policy too (policy host mta-sts.ZONE, on nginx).
DANE_STS="dane-all dane-some-sts"
# The main server certificate names every policy host but these (their own certificates
# are the point), so that a client sending no SNI fails on them too.
STS_OWN_CERT="wrongname untrusted expired"
# SMTP peers for REQUIRETLS tests (smtplab.py, one process), each on port 25 of its own
# address; the recipient domains that lead to them are in README.md.
SMTP_PORT=25
SMTP_SERVERS="rtls tlsonly plain wrongcert stall endless"
declare -A smtp_addr=([rtls]=127.0.40.1 [tlsonly]=127.0.40.2 [plain]=127.0.40.3
    [wrongcert]=127.0.40.4 [stall]=127.0.40.5 [endless]=127.0.40.6)
SMTP_TLS="rtls tlsonly wrongcert"   # those with a certificate (stall never gets that far)
# The MTA-STS cases of sts.test whose MX hosts are smtplab.py's (MX mx.C.sts.test, but
# mixed-rtls: MX 10 mx1 (tlsonly), MX 20 mx2 (rtls)).
STS_SMTP_CASES="rtls tlsonly wrongcert stall endless mixed-rtls"
# smtp_names SERVER: the MX names that lead to a server of SMTP_TLS (its certificate's SANs;
# wrongcert's names a host that no MX uses).
smtp_names() {
    case $1 in
    rtls) echo mx.rtls-dane.test mx.rtls.sts.test mx2.mixed-rtls.sts.test ;;
    tlsonly) echo mx.tlsonly-dane.test mx.tlsonly.sts.test mx1.mixed-rtls.sts.test ;;
    wrongcert) echo mx.elsewhere.test ;;
    esac
}
py=/usr/bin/python3   # Debian's, not whatever python3 comes first in PATH
[ -x "$py" ] || py=python3

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

# The daemons: D is nsd, unbound, nginx, stslab or smtplab. Each writes its pid to
# LAB_DIR/D.pid (also when a test starts it by hand); LAB_DIR/D/launched.pid is written here
# at once, for the start-up wait.
name_of() {
    case $1 in nsd) echo NSD ;; stslab | smtplab) echo "$1.py" ;; *) echo "$1" ;; esac
}
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
    case $1 in
    nsd) setsid nsd -d -c "$LAB_DIR/nsd.conf" </dev/null >>"$LAB_DIR/nsd.log" 2>&1 & ;;
    unbound)
        setsid unbound -d -c "$LAB_DIR/unbound.conf" </dev/null >>"$LAB_DIR/unbound.log" 2>&1 &
        ;;
    nginx)
        # shellcheck disable=SC2094  # -e: nginx's log; what it says before opening it, too
        setsid nginx -p "$LAB_DIR/nginx" -c "$LAB_DIR/nginx.conf" -e "$LAB_DIR/nginx.log" \
            -g 'daemon off;' </dev/null >>"$LAB_DIR/nginx.log" 2>&1 &
        ;;
    stslab)
        rm -f "$LAB_DIR/stslab/ready"
        stslab_cmd
        setsid "${stslab_argv[@]}" </dev/null >>"$LAB_DIR/stslab.log" 2>&1 &
        ;;
    smtplab)
        rm -f "$LAB_DIR/smtplab/ready"
        smtplab_cmd
        setsid "${smtplab_argv[@]}" </dev/null >>"$LAB_DIR/smtplab.log" 2>&1 &
        ;;
    esac
    echo "$!" > "$LAB_DIR/$1/launched.pid"
}
# stslab_cmd: stslab_argv is the command line of stslab.py serve.
stslab_cmd() {
    stslab_argv=("$py" -I -S "$here/stslab.py" serve --notls "$HTTPS_NOTLS:$HTTPS_PORT"
        --nohttp "$HTTPS_NOHTTP:$HTTPS_PORT" --slow "$HTTPS_SLOW:$HTTPS_PORT"
        --cert "$LAB_DIR/pki/server.pem" --key "$LAB_DIR/pki/server.key"
        --slow-body "$LAB_DIR/stslab/slow.txt" --pidfile "$LAB_DIR/stslab.pid"
        --ready "$LAB_DIR/stslab/ready")
}
# smtplab_cmd: smtplab_argv is the command line of smtplab.py serve.
smtplab_cmd() {
    local b
    smtplab_argv=("$py" -I -S "$here/smtplab.py" serve --spool "$LAB_DIR/smtp"
        --pidfile "$LAB_DIR/smtplab.pid" --ready "$LAB_DIR/smtplab/ready")
    for b in $SMTP_SERVERS; do smtplab_argv+=(--listen "$b=${smtp_addr[$b]}:$SMTP_PORT"); done
    for b in $SMTP_TLS; do
        smtplab_argv+=(--cert "$b=$LAB_DIR/pki/smtp-$b.pem:$LAB_DIR/pki/smtp-$b.key")
    done
}
# nginx serves when a plain-HTTP request to its TLS port gets nginx's 400 back.
nginx_ready() {
    local fd line=""
    { exec {fd}<>"/dev/tcp/$HTTPS/$HTTPS_PORT"; } 2>/dev/null || return 1
    printf 'GET / HTTP/1.0\r\n\r\n' 1>&"$fd" 2>/dev/null || true
    read -r -t 1 line <&"$fd" || true
    exec {fd}>&-
    [[ $line == HTTP/1.1\ * ]]
}
stslab_ready() { [ -s "$LAB_DIR/stslab/ready" ]; }
smtplab_ready() { [ -s "$LAB_DIR/smtplab/ready" ]; }
# start D: launch it, and wait until it answers.
start() {
    local pid
    launch "$1"
    pid=$(daemon_pid "$1")
    case $1 in
    nsd)
        wait_ready NSD "$pid" "$LAB_DIR/nsd.log" auth_ready nsd-checkconf "$LAB_DIR/nsd.conf"
        say "NSD (pid $pid) answers on $AUTH:$PORT"
        ;;
    unbound)
        wait_ready unbound "$pid" "$LAB_DIR/unbound.log" resolver_ready \
            unbound-checkconf "$LAB_DIR/unbound.conf"
        say "unbound (pid $pid) validates on $RESOLVER:$PORT"
        ;;
    nginx)
        wait_ready nginx "$pid" "$LAB_DIR/nginx.log" nginx_ready \
            nginx -t -q -p "$LAB_DIR/nginx" -c "$LAB_DIR/nginx.conf" -e "$LAB_DIR/nginx.log"
        say "nginx (pid $pid) serves on $HTTPS:$HTTPS_PORT"
        ;;
    stslab)
        wait_ready stslab.py "$pid" "$LAB_DIR/stslab.log" stslab_ready true
        say "stslab.py (pid $pid) listens on $HTTPS_NOTLS, $HTTPS_NOHTTP, $HTTPS_SLOW"
        ;;
    smtplab)
        wait_ready smtplab.py "$pid" "$LAB_DIR/smtplab.log" smtplab_ready true
        say "smtplab.py (pid $pid) listens on ${smtp_addr[*]} port $SMTP_PORT"
        ;;
    esac
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

https_start() { launch nginx; launch stslab; start nginx; start stslab; }
https_stop() { stop stslab; stop nginx; }

# sts_rotate: rotate.sts.test moves from policy id 1 (mx1) to id 2 (mx2), as an operator
# would: the new policy file first, then the TXT record (and MX) in DNS. Returns when
# unbound gives out the new TXT record; a second call finds it done.
sts_rotate() {
    local www=$LAB_DIR/www/rotate/.well-known/mta-sts.txt zone=$LAB_DIR/zones/sts.signed
    local pid deadline next_hup=0 t
    if [ -f "$LAB_DIR/stslab/rotate.next" ]; then mv -f "$LAB_DIR/stslab/rotate.next" "$www"; fi
    if [ -f "$LAB_DIR/zones/sts.rotated" ]; then
        mv -f "$LAB_DIR/zones/sts.rotated" "$zone"
        # NSD reloads a zone file whose mtime changed: make sure that it did.
        touch -d "@$((EPOCHSECONDS + 1))" "$zone"
    fi
    pid=$(daemon_pid nsd)
    [ -n "$pid" ] || die "NSD is not running"
    [ -n "$(daemon_pid unbound)" ] || die "unbound is not running"
    deadline=$(( $(now_ms) + wait_s * 1000 ))
    while :; do   # NSD: SIGHUP (again each second) until it serves id=2
        query "$AUTH" +norecurse +time=1 +tries=1 _mta-sts.rotate.sts.test. TXT
        [[ $q_out != *'"v=STSv1; id=2"'* ]] || break
        t=$(now_ms)
        (( t < deadline )) || die "--sts-rotate: NSD did not load the new sts.test zone"
        if (( t >= next_hup )); then kill -HUP "$pid"; next_hup=$((t + 1000)); fi
        sleep 0.05
    done
    while :; do   # unbound: forget sts.test until it gives out id=2
        unbound_control flush_zone sts.test.
        unbound_control flush_requestlist
        query "$RESOLVER" +time=1 +tries=1 _mta-sts.rotate.sts.test. TXT
        [[ $q_out != *'"v=STSv1; id=2"'* ]] || break
        (( $(now_ms) < deadline )) || die "--sts-rotate: unbound still answers the old TXT"
        sleep 0.05
    done
}

# ---------------------------------------------------------------------------------------
# Control of a running lab (called by a test inside it).
case ${1:-} in
--resolver-* | --auth-* | --flush | --https-* | --sts-rotate | --smtp-*)
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
    --https-stop) https_stop ;;
    --https-start) need nginx nginx; https_start ;;
    --https-restart) need nginx nginx; https_stop; https_start ;;
    --sts-rotate) need unbound-control unbound; sts_rotate ;;
    --smtp-stop) stop smtplab ;;
    --smtp-start) start smtplab ;;
    --smtp-restart) stop smtplab; start smtplab ;;
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
    sha256sum:coreutils awk:mawk nginx:nginx openssl:openssl "$py":python3; do
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
        stop smtplab
        stop stslab
        stop nginx
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
mkdir -p "$keys" "$zones" "$logs" "$LAB_DIR/nsd" "$LAB_DIR/unbound" "$LAB_DIR/hex" \
    "$LAB_DIR/nginx" "$LAB_DIR/stslab" "$LAB_DIR/pki" "$LAB_DIR/smtplab" "$LAB_DIR/smtp"

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
        # An MTA-STS policy too: DANE must win (RFC 8461 section 2).
        echo "_mta-sts TXT \"v=STSv1; id=20261129\""
        echo "mta-sts A $HTTPS"
        ;;
    sts)
        sts_records
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
        # smtplab.py's plain server (no STARTTLS), for a domain without DNSSEC or MTA-STS.
        echo "plain MX 10 mx.plain"
        echo "mx.plain A ${smtp_addr[plain]}"
        ;;
    rtls-dane | tlsonly-dane)
        # DANE for smtplab.py's servers: TLSA 3 1 1 of their real keys (spki[SERVER]).
        echo "@ MX 10 mx"
        echo "mx A ${smtp_addr[${1%-dane}]}"
        echo "_25._tcp.mx TLSA 3 1 1 ${spki[${1%-dane}]}"
        ;;
    dane-some-sts)
        # DANE on one MX host of two, beside an MTA-STS enforce policy naming both: no host
        # may be reached unauthenticated, so the answer is dane-only (issue 10.5).
        echo "@ MX 10 mx"
        echo "@ MX 20 mx.unsigned.test."
        echo "mx A 127.0.20.10"
        echo "_25._tcp.mx TLSA 3 1 1 ${hex[mx.dane-some-sts.test]}"
        echo "_mta-sts TXT \"v=STSv1; id=20261203\""
        echo "mta-sts A $HTTPS"
        ;;
    rtls-dane-two)
        # Two DANE hosts: mx1 is the rtls server (its real key; its AAAA refuses connections),
        # mx2 the tlsonly server with a TLSA record that matches nothing. dane-only keeps a
        # sender off mx2, so REQUIRETLS mail may go to mx1 (issue 10.2).
        echo "@ MX 10 mx1"
        echo "@ MX 20 mx2"
        echo "mx1 A ${smtp_addr[rtls]}"
        echo "mx1 AAAA ::1"
        echo "_25._tcp.mx1 TLSA 3 1 1 ${spki[rtls]}"
        echo "mx2 A ${smtp_addr[tlsonly]}"
        echo "_25._tcp.mx2 TLSA 3 1 1 ${hex[mx2.rtls-dane-two.test]}"
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
    bogus-some)
        # One good DANE host and one whose address records are bogus: the bogus host is
        # unusable, the domain is not (RFC 7672 2.2.2).
        echo "@ MX 10 mx1"
        echo "@ MX 20 mx.bogus.test."
        echo "mx1 A 127.0.20.9"
        echo "_25._tcp.mx1 TLSA 3 1 1 ${hex[mx1.bogus-some.test]}"
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

# sts.test: the MTA-STS cases (see STS_CASES and README.md). sts_rotated=1: the zone as
# --sts-rotate leaves it.
sts_rotated=""
declare -A sts_txt=()   # CASE -> the TXT RDATA of _mta-sts.CASE, one per line
sts_txt_data() {
    local c
    for c in $STS_CASES $STS_SMTP_CASES; do sts_txt[$c]='"v=STSv1; id=20261129"'; done
    sts_txt[split]='"v=STSv1; " "id=20261129;"'
    sts_txt[twotxt]=$'"v=STSv1; id=20261129"\n"v=STSv1; id=20261130"'
    sts_txt[notxt]=""
    sts_txt[badtxt]='"v=STSv1; id=not valid!"'
    sts_txt[rotate]='"v=STSv1; id=1"'
    [ -z "$sts_rotated" ] || sts_txt[rotate]='"v=STSv1; id=2"'
}
sts_records() {
    local c i=100 t a
    sts_txt_data
    for c in $STS_CASES; do
        i=$((i + 1))
        while IFS= read -r t; do
            [ -z "$t" ] || echo "_mta-sts.$c TXT $t"
        done <<< "${sts_txt[$c]}"
        case $c in
        notls) a=$HTTPS_NOTLS ;;
        nohttp) a=$HTTPS_NOHTTP ;;
        slow) a=$HTTPS_SLOW ;;
        *) a=$HTTPS ;;
        esac
        echo "mta-sts.$c A $a"
        if [ "$c" = rotate ] && [ -n "$sts_rotated" ]; then
            echo "$c MX 10 mx2.$c"
        else
            echo "$c MX 10 mx1.$c"
        fi
        echo "mx1.$c A 127.0.20.$i"
    done
    echo "mx2.rotate A 127.0.20.$((i + 1))"
    # The SMTP cases: MX hosts at smtplab.py's servers, policies at nginx.
    for c in $STS_SMTP_CASES; do
        echo "_mta-sts.$c TXT ${sts_txt[$c]}"
        echo "mta-sts.$c A $HTTPS"
        if [ "$c" = mixed-rtls ]; then
            echo "$c MX 10 mx1.$c"
            echo "$c MX 20 mx2.$c"
            echo "mx1.$c A ${smtp_addr[tlsonly]}"
            echo "mx2.$c A ${smtp_addr[rtls]}"
        else
            echo "$c MX 10 mx.$c"
            echo "mx.$c A ${smtp_addr[$c]}"
        fi
    done
}

# write_zone ZONE [SERIAL [FILE]]: the unsigned zone file (zones/ZONE.zone).
write_zone() {
    local origin
    origin=$1.test.
    [ "$1" != test ] || origin=test.
    {
        echo "\$ORIGIN $origin"
        echo "\$TTL $TTL"
        echo "@ SOA ns.test. hostmaster.test. ${2:-1} $TTL $TTL 600 $TTL"
        echo "@ NS ns.test."
        zone_records "$1"
    } > "${3:-$zones/$1.zone}"
}

# DNSLAB_EXTRA_RECORDS: each line goes to the zone that owns its (absolute) owner name. One
# awk pass: a shell loop took about a millisecond a line (tests/bench/cold.sh's 10,000
# domains are 40,000 lines).
add_extra_records() {
    local file=$1 list
    [ -r "$file" ] || die "DNSLAB_EXTRA_RECORDS: cannot read $file"
    # shellcheck disable=SC2086 # the lists, one word per zone, on one line for awk -v
    list=$(printf "%s " $SIGNED $UNSIGNED)
    awk -v zones="$list" -v dir="$zones" -v verbose="${DNSLAB_VERBOSE:-}" '
        function fail(msg) { print "dnslab: DNSLAB_EXTRA_RECORDS: " msg > "/dev/stderr"; exit 1 }
        BEGIN { nz = split(zones, z, " ") }
        /^$/ || /^#/ || /^;/ { next }
        {
            if ($0 ~ /^[ \t]/ || $1 !~ /\.$/)
                fail("each line needs an absolute owner name: " $0)
            owner = tolower($1)
            sub(/\.$/, "", owner)
            best = ""
            for (i = 1; i <= nz; i++) {
                if (z[i] == "") continue
                suffix = "." z[i] ".test"
                if (owner == z[i] ".test" || (length(owner) > length(suffix) &&
                    substr(owner, length(owner) - length(suffix) + 1) == suffix))
                    best = z[i]
            }
            if (best == "") {
                if (owner != "test" && owner !~ /\.test$/) fail($1 " is not under test.")
                best = "test"
            }
            print >> (dir "/" best ".zone")
            if (best == "sts") print >> (dir "/sts.rotated")
            if (verbose != "") print "dnslab: extra record in " best ": " $0 > "/dev/stderr"
        }' "$file" || exit "$LAB_FAIL"
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

# ---------------------------------------------------------------------------------------
# The test PKI, made in the background while the zones are signed (ECDSA P-256, ~10 ms per
# openssl run): the lab CA (LAB_CA_FILE) and, signed by it, the server certificate for
# every policy host but those in STS_OWN_CERT, one for a wrong name and an expired one; a
# second CA that nobody trusts, and a certificate from it; and the certificates of the SMTP
# servers in SMTP_TLS (smtp-SERVER.pem), for the MX names that lead to them.
pki=$LAB_DIR/pki
cat > "$pki/openssl.cnf" <<'EOF'
[ req ]
distinguished_name = dn
[ dn ]
[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ leaf_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = ${ENV::LAB_SAN}
[ ca ]
default_ca = lab_ca
[ lab_ca ]
database = ${ENV::LAB_PKI}/index.txt
new_certs_dir = ${ENV::LAB_PKI}
rand_serial = yes
default_md = sha256
policy = any_dn
unique_subject = no
[ any_dn ]
commonName = supplied
EOF
make_pki() {
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes) c from until j
    local -a p=() names=(mta-sts.dane-all.test mta-sts.dane-some-sts.test)
    export LAB_PKI=$pki OPENSSL_CONF=$pki/openssl.cnf LAB_SAN=DNS:unused.test
    # leaf NAME CA DNSNAME...: NAME.key and NAME.pem for the DNSNAMEs, from CA, for 30 days
    # (with the key NAME.key if it exists: the SMTP servers')
    leaf() {
        local n=$1 ca=$2 s
        local -a k=("${ec[@]}" -keyout "$pki/$n.key")
        shift 2
        [ ! -s "$pki/$n.key" ] || k=(-key "$pki/$n.key")
        s=$(printf 'DNS:%s,' "$@")
        LAB_SAN=${s%,} openssl req -x509 "${k[@]}" -out "$pki/$n.pem" \
            -subj "/CN=$1" -days 30 -CA "$pki/$ca.pem" -CAkey "$pki/$ca.key" \
            -extensions leaf_ext
    }
    : > "$pki/index.txt"
    openssl req -x509 "${ec[@]}" -keyout "$pki/ca.key" -out "$pki/ca.pem" -days 30 \
        -subj "/CN=dnslab test CA" -extensions ca_ext & p+=($!)
    openssl req -x509 "${ec[@]}" -keyout "$pki/untrusted-ca.key" -out "$pki/untrusted-ca.pem" \
        -days 30 -subj "/CN=dnslab untrusted CA" -extensions ca_ext & p+=($!)
    openssl req -new "${ec[@]}" -keyout "$pki/expired.key" -out "$pki/expired.csr" \
        -subj "/CN=mta-sts.expired.sts.test" & p+=($!)
    for j in "${p[@]}"; do wait "$j" || return 1; done
    p=()
    for c in $STS_CASES $STS_SMTP_CASES; do
        [[ " $STS_OWN_CERT " == *" $c "* ]] || names+=("mta-sts.$c.sts.test")
    done
    leaf server ca "${names[@]}" & p+=($!)
    leaf wrongname ca mta-sts.elsewhere.sts.test & p+=($!)
    leaf untrusted untrusted-ca mta-sts.untrusted.sts.test & p+=($!)
    for c in $SMTP_TLS; do
        # shellcheck disable=SC2046  # a list of names
        leaf "smtp-$c" ca $(smtp_names "$c") & p+=($!)
    done
    # Valid from 30 days ago to yesterday: openssl ca takes explicit dates.
    TZ=UTC printf -v from '%(%Y%m%d%H%M%SZ)T' $((EPOCHSECONDS - 30 * 86400))
    TZ=UTC printf -v until '%(%Y%m%d%H%M%SZ)T' $((EPOCHSECONDS - 86400))
    LAB_SAN=DNS:mta-sts.expired.sts.test openssl ca -batch -notext -cert "$pki/ca.pem" \
        -keyfile "$pki/ca.key" -in "$pki/expired.csr" -out "$pki/expired.pem" \
        -startdate "$from" -enddate "$until" -extensions leaf_ext & p+=($!)
    for j in "${p[@]}"; do wait "$j" || return 1; done
}

# Keys: one per signed zone, and a decoy for badds.test that the child never publishes. They
# need no zone: made while the zones and the certificates are.
for z in test $SIGNED; do spawn "keygen-$z" keygen "$([ "$z" = test ] || echo "$z.")test."; done
spawn keygen-decoy keygen badds.test.

# The keys of the SMTP servers with TLSA records too, side by side: the TLSA records of
# rtls-dane.test and tlsonly-dane.test (3 1 1) are the SHA-256 of their SubjectPublicKeyInfo,
# needed before the zones are written; make_pki certifies the keys later.
smtp_key() { # smtp_key SERVER: pki/smtp-SERVER.key, and the SPKI hash on stdout
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/smtp-$1.key" &&
        openssl pkey -in "$pki/smtp-$1.key" -pubout -outform DER | sha256sum
}
declare -A spki=()
for b in rtls tlsonly; do spawn "smtp-key-$b" smtp_key "$b"; done

say "building zones in $LAB_DIR"
for b in rtls tlsonly; do
    wait "${jobs[smtp-key-$b]}" || { tail_log "$logs/smtp-key-$b.log"; die "smtp_key $b failed"; }
    unset "jobs[smtp-key-$b]"
    read -r h _ < "$logs/smtp-key-$b.out"
    [[ $h =~ ^[0-9a-f]{64}$ ]] || die "no SPKI hash for the $b server's key: '$h'"
    spki[$b]=$h
done
make_pki > "$logs/pki.log" 2>&1 &
pki_pid=$!
make_hex mx2.rtls-dane-two.test mx.dane-some-sts.test mx1.dane-all.test mx2.dane-all.test mx.dane-mixed.test host.mx-cname.test \
    nomx-tlsa.test pkix-ta.unusable.test pkix-ee.unusable.test selector7.unusable.test \
    mtype9.unusable.test mx.bogus.test mx.badds.test mx.expired.test mx1.bogus-some.test
for z in test $SIGNED $UNSIGNED; do write_zone "$z"; done
sts_rotated=1 write_zone sts 2 "$zones/sts.rotated"
sts_txt_data   # as the lab starts, for --check
if [ -n "${DNSLAB_EXTRA_RECORDS:-}" ]; then add_extra_records "$DNSLAB_EXTRA_RECORDS"; fi

reap   # the DNSSEC keys
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
for z in $UNSIGNED; do cp "$zones/$z.zone" "$zones/$z.signed"; done   # served as they are

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
# The MTA-STS policies (RFC 8461 section 3.2), one directory per policy host under www/.
# policy MODE [MX...]: a policy body, LF line ends
policy() {
    local m
    printf 'version: STSv1\nmode: %s\n' "$1"
    shift
    for m in "$@"; do printf 'mx: %s\n' "$m"; done
    printf 'max_age: 86400\n'
}
# big_policy: a valid enforce policy, padded to 70 KiB (71680 bytes) with 64-byte lines of
# an extension field (RFC 8461 section 3.2: unknown fields are ignored).
big_policy() {
    local p x i n rest
    p=$(policy enforce mx1.big.sts.test)$'\n'
    printf -v x '%128s' ''
    x=${x// /x}
    rest=$((70 * 1024 - ${#p}))
    n=$((rest / 64 - 1))
    rest=$((rest - 64 * n))   # 64 to 127 bytes left: one or two lines more
    printf '%s' "$p"
    for ((i = 0; i < n; i++)); do printf 'x-pad-%04d: %s\n' "$i" "${x:0:51}"; done
    if ((rest >= 78)); then printf 'x-pad-%04d: %s\n' "$n" "${x:0:51}"; rest=$((rest - 64)); fi
    printf 'x-pad-last: %s\n' "${x:0:rest-13}"
}
www=$LAB_DIR/www
dirs=()
for c in $STS_CASES $STS_SMTP_CASES $DANE_STS; do
    [ "$c" = bigchunked ] || dirs+=("$www/$c/.well-known")
done
mkdir -p "${dirs[@]}"
for c in $STS_CASES $STS_SMTP_CASES $DANE_STS; do
    f=$www/$c/.well-known/mta-sts.txt
    case $c in
    enforce) policy enforce mx1.enforce.sts.test '*.backup.sts.test' > "$f" ;;
    wildcard) policy enforce '*.wildcard.sts.test' > "$f" ;;
    testing) policy testing mx1.testing.sts.test > "$f" ;;
    none) policy none mx1.none.sts.test > "$f" ;;
    crlf) policy enforce mx1.crlf.sts.test | sed 's/$/\r/' > "$f" ;;
    big) big_policy > "$f" ;;
    bigchunked) ;;   # nginx serves big's file
    syntax) policy enforced mx1.syntax.sts.test > "$f" ;;
    nomx) policy enforce > "$f" ;;
    redirect | notfound | notls | nohttp) ;;   # no file
    slow) policy enforce mx1.slow.sts.test > "$LAB_DIR/stslab/slow.txt" ;;
    rotate)
        policy enforce mx1.rotate.sts.test > "$f"
        policy enforce mx2.rotate.sts.test > "$LAB_DIR/stslab/rotate.next"
        ;;
    dane-all) policy enforce mx1.dane-all.test mx2.dane-all.test > "$f" ;;
    dane-some-sts) policy enforce mx.dane-some-sts.test mx.unsigned.test > "$f" ;;
    mixed-rtls) policy enforce mx1.mixed-rtls.sts.test mx2.mixed-rtls.sts.test > "$f" ;;
    rtls | tlsonly | wrongcert | stall | endless) policy enforce "mx.$c.sts.test" > "$f" ;;
    *) policy enforce "mx1.$c.sts.test" > "$f" ;;
    esac
done

# nginx: one server per policy host on HTTPS:443 (stslab.py plays notls, nohttp and slow),
# one process as root (master_process off, user root: no user switching, no chown to a
# user that a user namespace does not map), everything in LAB_DIR. A client that sends no
# SNI (or an unknown name) gets no handshake.
{
    cat <<EOF
master_process off;
user root root;
worker_processes 1;
pid "$LAB_DIR/nginx.pid";
error_log "$LAB_DIR/nginx.log" notice;
events { worker_connections 256; }
http {
    types { text/plain txt; }
    default_type application/octet-stream;
    log_format lab '\$time_iso8601 \$ssl_server_name "\$request" \$status \$bytes_sent';
    access_log "$LAB_DIR/nginx-access.log" lab;
    server_tokens off;
    ssl_protocols TLSv1.2 TLSv1.3;
    client_body_temp_path "$LAB_DIR/nginx/body";
    proxy_temp_path "$LAB_DIR/nginx/proxy";
    fastcgi_temp_path "$LAB_DIR/nginx/fastcgi";
    uwsgi_temp_path "$LAB_DIR/nginx/uwsgi";
    scgi_temp_path "$LAB_DIR/nginx/scgi";
    server {
        listen $HTTPS:$HTTPS_PORT ssl default_server;
        ssl_reject_handshake on;
    }
EOF
    for c in $STS_CASES $STS_SMTP_CASES $DANE_STS; do
        case $c in notls | nohttp | slow) continue ;; esac
        host=mta-sts.$c.sts.test
        [[ " $DANE_STS " != *" $c "* ]] || host=mta-sts.$c.test
        cert=server
        [[ " $STS_OWN_CERT " != *" $c "* ]] || cert=$c
        printf '    server {\n        listen %s:%s ssl;\n        server_name %s;\n' \
            "$HTTPS" "$HTTPS_PORT" "$host"
        printf '        ssl_certificate "%s.pem";\n        ssl_certificate_key "%s.key";\n' \
            "$pki/$cert" "$pki/$cert"
        printf '        root "%s";\n' "$www/${c/bigchunked/big}"
        case $c in
        redirect)
            echo "        return 301 https://mta-sts.enforce.sts.test$STS_PATH;" ;;
        ctype) echo "        types { } default_type text/html;" ;;
        charset) echo "        charset utf-8;" ;;
        # SSI takes the Content-Length away: the body goes chunked (close-delimited to
        # HTTP/1.0 clients).
        bigchunked) echo "        ssi on; ssi_types text/plain;" ;;
        esac
        echo "    }"
    done
    echo "}"
} > "$LAB_DIR/nginx.conf"

# ---------------------------------------------------------------------------------------
# Start.
# Side by side: unbound asks NSD nothing before the first query, which waits for NSD.
launch nsd
launch unbound
wait "$pki_pid" || { tail_log "$logs/pki.log"; die "making the test certificates failed"; }
say "certificates made"
launch nginx
launch stslab
launch smtplab
start nsd
start unbound
start nginx
start stslab
start smtplab
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
export LAB_CA_FILE="$pki/ca.pem" LAB_UNTRUSTED_CA_FILE="$pki/untrusted-ca.pem"
export LAB_HTTPS_ADDR=$HTTPS LAB_HTTPS_PORT=$HTTPS_PORT LAB_HTTPS_NOTLS_ADDR=$HTTPS_NOTLS
export LAB_HTTPS_NOHTTP_ADDR=$HTTPS_NOHTTP LAB_HTTPS_SLOW_ADDR=$HTTPS_SLOW
export LAB_STS_ZONE=sts.test LAB_STS_CASES="${STS_CASES//$'\n    '/ }"
export LAB_STS_EXPECT="$here/sts.expect"
export LAB_NGINX_CONF="$LAB_DIR/nginx.conf" LAB_NGINX_PIDFILE="$LAB_DIR/nginx.pid"
export LAB_NGINX_LOG="$LAB_DIR/nginx.log" LAB_NGINX_ACCESS_LOG="$LAB_DIR/nginx-access.log"
printf -v LAB_NGINX_CMD '%q ' nginx -p "$LAB_DIR/nginx" -c "$LAB_DIR/nginx.conf" \
    -e "$LAB_DIR/nginx.log" -g 'daemon off;'
export LAB_NGINX_CMD=${LAB_NGINX_CMD% }
export LAB_STSLAB_LOG="$LAB_DIR/stslab.log" LAB_STSLAB_PIDFILE="$LAB_DIR/stslab.pid"
stslab_cmd
printf -v LAB_STSLAB_CMD '%q ' "${stslab_argv[@]}"
export LAB_STSLAB_CMD=${LAB_STSLAB_CMD% }
export LAB_SMTP_DIR="$LAB_DIR/smtp" LAB_SMTP_LOG="$LAB_DIR/smtplab.log" LAB_SMTP_PORT=$SMTP_PORT
export LAB_SMTPLAB_PIDFILE="$LAB_DIR/smtplab.pid" LAB_SMTP_SERVERS="$SMTP_SERVERS"
export LAB_SMTP_EXPECT="$here/smtp.expect" LAB_STS_SMTP_CASES="$STS_SMTP_CASES"
for b in $SMTP_SERVERS; do export "LAB_SMTP_ADDR_${b^^}=${smtp_addr[$b]}"; done
for b in $SMTP_TLS; do
    export "LAB_SMTP_CERT_${b^^}=$pki/smtp-$b.pem" "LAB_SMTP_KEY_${b^^}=$pki/smtp-$b.key"
done
smtplab_cmd
printf -v LAB_SMTPLAB_CMD '%q ' "${smtplab_argv[@]}"
export LAB_SMTPLAB_CMD=${LAB_SMTPLAB_CMD% }
# The same controls as sh -c command lines.
printf -v q '%q' "$self"
export LAB_RESOLVER_STOP="$q --resolver-stop" LAB_RESOLVER_START="$q --resolver-start"
export LAB_AUTH_STOP="$q --auth-stop" LAB_AUTH_START="$q --auth-start"
export LAB_HTTPS_STOP="$q --https-stop" LAB_HTTPS_START="$q --https-start"
export LAB_STS_ROTATE="$q --sts-rotate"
export LAB_SMTP_STOP="$q --smtp-stop" LAB_SMTP_START="$q --smtp-start"

# ---------------------------------------------------------------------------------------
# --check: every line of zones.expect, then glibc through resolv.conf, the TXT records of
# sts.test, every line of sts.expect (the policy hosts), every line of smtp.expect (the SMTP
# servers, probed meanwhile), and the HTTPS and SMTP controls.
# smtp_tlsa HOST: the hex data of HOST's TLSA 3 1 1 record (through unbound).
smtp_tlsa() {
    query "$RESOLVER" +dnssec "_25._tcp.$1." TLSA
    awk '$4 == "TLSA" && $5 == 3 && $6 == 1 && $7 == 1 {
             h = ""; for (i = 8; i <= NF; i++) h = h $i; print tolower(h); exit }' <<< "$q_out"
}
run_check() {
    local name type rcode ad count opt rest got_ad got_n verdict bad=0 n=0 l f smtp_pid
    local -a extra tlsa=()
    # The SMTP servers take 2 s (stall and endless must time out): in the background.
    for l in mx.rtls-dane.test mx.tlsonly-dane.test; do tlsa+=(--tlsa "$l=$(smtp_tlsa "$l")"); done
    "$py" "$here/smtplab.py" check "$LAB_CA_FILE" "$here/smtp.expect" "${tlsa[@]}" \
        --spool "$LAB_SMTP_DIR" > "$LAB_DIR/smtp-check.out" 2>&1 &
    smtp_pid=$!
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
    # sts.test: the TXT records of each case, as the zone has them (one dig for all).
    local c got want out
    local -A txt=()
    local -a qs=()
    for c in $STS_CASES $STS_SMTP_CASES; do qs+=("_mta-sts.$c.sts.test." TXT); done
    while read -r -a f; do
        [ "${f[3]:-}" = TXT ] || continue
        c=${f[0]#_mta-sts.}
        c=${c%.sts.test.}
        txt[$c]+="${f[*]:4}"$'\n'
    done < <(dig -4 +time=1 +tries=2 +noall +answer -p "$PORT" "@$RESOLVER" "${qs[@]}" 2>&1)
    for c in $STS_CASES $STS_SMTP_CASES; do
        n=$((n + 1))
        got=$(sort <<< "${txt[$c]:-}" | sed '/^$/d' | paste -sd '|' -)
        want=$(sort <<< "${sts_txt[$c]}" | sed '/^$/d' | paste -sd '|' -)
        if [ "$got" = "$want" ]; then
            printf '%-30s TXT %s ok\n' "_mta-sts.$c.sts.test" "${want:-(none)}"
        else
            printf '%-30s TXT %s FAIL (want %s)\n' "_mta-sts.$c.sts.test" "${got:-(none)}" \
                "${want:-(none)}"
            bad=$((bad + 1))
        fi
    done
    # The policy hosts (sts.expect).
    local want_n ok_n
    want_n=$(grep -c '^[^#]' "$here/sts.expect")
    out=$("$py" "$here/stslab.py" check "$LAB_CA_FILE" "$here/sts.expect" 2>&1) || true
    echo "$out"
    ok_n=$(grep -c ' ok$' <<< "$out" || true)
    n=$((n + want_n))
    bad=$((bad + want_n - ok_n))
    # The SMTP servers (smtp.expect).
    wait "$smtp_pid" || true
    out=$(< "$LAB_DIR/smtp-check.out")
    echo "$out"
    want_n=$(grep -c '^[^#]' "$here/smtp.expect")
    ok_n=$(grep -c ' ok$' <<< "$out" || true)
    n=$((n + want_n))
    bad=$((bad + want_n - ok_n))
    # The controls: --sts-rotate, --https-stop, --https-start.
    ctl_check() { # ctl_check WHAT WANT GOT
        n=$((n + 1))
        if [ "$3" = "$2" ]; then
            printf '%-30s %s ok\n' "$1" "$2"
        else
            printf '%-30s %s FAIL\n%-30s want: %s\n' "$1" "$3" "" "$2"
            bad=$((bad + 1))
        fi
    }
    local t0 fetch=("$py" "$here/stslab.py" fetch "$LAB_CA_FILE")
    t0=$(now_ms)
    "$self" --sts-rotate || true
    query "$RESOLVER" _mta-sts.rotate.sts.test. TXT
    got=$(awk '$4 == "TXT" { $1 = $2 = $3 = $4 = ""; sub(/^ +/, ""); print }' <<< "$q_out")
    ctl_check "--sts-rotate ($(($(now_ms) - t0)) ms)" '"v=STSv1; id=2"' "$got"
    ctl_check "  then mta-sts.rotate.sts.test" \
        "verify ok, 200 text/plain length=68 eol=lf mode=enforce mx=mx2.rotate.sts.test" \
        "$("${fetch[@]}" mta-sts.rotate.sts.test)"
    "$self" --https-stop || true
    ctl_check "--https-stop: enforce" "connection refused in connect" \
        "$("${fetch[@]}" mta-sts.enforce.sts.test)"
    ctl_check "  and nohttp" "connection refused in connect" \
        "$("${fetch[@]}" mta-sts.nohttp.sts.test)"
    t0=$(now_ms)
    "$self" --https-start || true
    ctl_check "--https-start ($(($(now_ms) - t0)) ms): enforce" \
        "$(awk '$1 == "mta-sts.enforce.sts.test" { $1 = ""; sub(/^ +/, ""); print }' \
            "$here/sts.expect")" \
        "$("${fetch[@]}" mta-sts.enforce.sts.test)"
    local probe=("$py" "$here/smtplab.py" probe "$LAB_CA_FILE" --timeout 2 --spool "$LAB_SMTP_DIR")
    "$self" --smtp-stop || true
    ctl_check "--smtp-stop: mx.rtls-dane.test" "connection refused in connect" \
        "$("${probe[@]}" mx.rtls-dane.test)"
    t0=$(now_ms)
    "$self" --smtp-start || true
    ctl_check "--smtp-start ($(($(now_ms) - t0)) ms): mx.rtls-dane.test" \
        "$(awk '$1 == "mx.rtls-dane.test" { $1 = ""; sub(/^ +/, ""); print }' \
            "$here/smtp.expect")" \
        "$("${probe[@]}" --tlsa "${tlsa[1]#*=}" mx.rtls-dane.test)"
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
