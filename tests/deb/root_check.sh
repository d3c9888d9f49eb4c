#!/bin/bash
# One clean Debian 12 root for integration_deb (run by deb_test.sh inside its own mount and
# PID namespaces: every mount and process here ends with this script).
#
#   root_check.sh postfix|exim TARBALL DEBDIR CACHEDIR ROOTDIR
#
# Unpacks the minbase root, installs the MTA from the mirror and takes the root's file list;
# installs the packages with apt (policy-rc.d 101: no service starts), checks what they put
# where, "tlspolicyd -t" with the packaged configuration, starts the daemon as the unit's
# ExecStart does (in a network namespace with only loopback) and asks it as the MTA does;
# then "apt-get remove" (configuration and state stay) and "apt-get purge" (the file list is
# the one from before the install again).
set -euo pipefail

mta=$1 tarball=$2 debs=$3 cache=$4 root=$5
conf=/etc/tlspolicyd/tlspolicyd.conf
log=$root.daemon.log
fail() { echo "FAIL ($mta): $*" >&2; exit 1; }
say() { echo "  $mta: $*"; }

# The root in memory: it goes with this mount namespace, nothing to delete afterwards.
mkdir -p "$root"
mount -t tmpfs -o mode=0755 tmpfs "$root"
tar -C "$root" -xf "$tarball"
mount -t proc proc "$root/proc"
# apt's lists and downloaded packages, shared between runs.
mkdir -p "$cache/apt-lists/partial" "$cache/apt-archives/partial"
mount --bind "$cache/apt-lists" "$root/var/lib/apt/lists"
mount --bind "$cache/apt-archives" "$root/var/cache/apt/archives"
cp /etc/resolv.conf "$root/etc/resolv.conf"   # apt reaches the mirror; the daemon will not
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

in_root() {
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}
apt_root() { in_root apt-get -q -y -o Dpkg::Use-Pty=0 --no-install-recommends "$@"; }
# The root's files, but apt's caches and logs and the mounts of this script.
snapshot() {
    (cd "$root" && find . \( -path ./proc -o -path ./var/cache/apt -o -path ./var/lib/apt/lists \
        -o -path ./var/log -o -path ./mnt \) -prune -o -print | LC_ALL=C sort) > "$1"
}

apt_root update > "$root.apt.log" 2>&1 || { cat "$root.apt.log"; fail "apt-get update"; }
case $mta in
postfix)
    printf '%s\n' 'postfix postfix/main_mailer_type select Internet Site' \
        'postfix postfix/mailname string mx.example.org' | in_root debconf-set-selections
    # ca-certificates: Postfix recommends it, so a stock install has it (and apt's autoremove
    # keeps it after the purge for that reason).
    pkgs=(postfix ca-certificates) ours=(tlspolicyd) ;;
exim)
    # ca-certificates: exim4-config recommends it (as Postfix does, above).
    pkgs=(exim4-daemon-heavy ca-certificates) ours=(tlspolicyd tlspolicyd-exim) ;;
esac
apt_root install "${pkgs[@]}" >> "$root.apt.log" 2>&1 || { tail -n 40 "$root.apt.log"; fail "installing ${pkgs[*]}"; }
snapshot "$root.before"

# --- install -------------------------------------------------------------------------
mkdir -p "$root/mnt/debs"
mount --bind -o ro "$debs" "$root/mnt/debs"
files=()
for p in "${ours[@]}"; do
    f=$(cd "$debs" && ls "${p}"_*_*.deb)
    files+=("/mnt/debs/$f")
done
apt_root install "${files[@]}" >> "$root.apt.log" 2>&1 || { tail -n 40 "$root.apt.log"; fail "installing ${ours[*]}"; }
for p in "${ours[@]}"; do
    st=$(in_root dpkg-query -W -f='${Status}' "$p")
    [ "$st" = "install ok installed" ] || fail "$p: status $st"
done
say "installed ${ours[*]} with apt"

# What the package put where.
for f in /usr/sbin/tlspolicyd /lib/systemd/system/tlspolicyd.service \
         /lib/systemd/system/tlspolicyd.socket /usr/share/man/man8/tlspolicyd.8.gz \
         /usr/share/man/man5/tlspolicyd.conf.5.gz /usr/share/doc/tlspolicyd/README.Debian \
         /usr/share/doc/tlspolicyd/examples/postfix/tlspolicyd-postfix-setup \
         /usr/share/doc/tlspolicyd/examples/prometheus/tlspolicyd.rules.yml \
         /usr/share/doc/tlspolicyd/examples/grafana/tlspolicyd.json "$conf"; do
    [ -f "$root$f" ] || fail "$f missing"
done
in_root dpkg-query -W -f='${Conffiles}\n' tlspolicyd | grep -q "^ $conf " || fail "$conf is not a conffile"
grep -q '^ExecStart=/usr/sbin/tlspolicyd -c /etc/tlspolicyd/tlspolicyd.conf$' \
    "$root/lib/systemd/system/tlspolicyd.service" || fail "the unit's ExecStart"
# Enabled the Debian way (deb-systemd-helper makes the links even without systemd running).
[ -L "$root/etc/systemd/system/sockets.target.wants/tlspolicyd.socket" ] || fail "socket unit not enabled"
[ -L "$root/etc/systemd/system/multi-user.target.wants/tlspolicyd.service" ] || fail "service not enabled"
# The system user (as contrib/systemd/tlspolicyd.sysusers) and the state directory.
pw=$(in_root getent passwd tlspolicyd) || fail "no user tlspolicyd"
IFS=: read -r _ _ uid _ _ home shell <<< "$pw"
[ "$uid" -lt 1000 ] && [ "$home" = /nonexistent ] && [ "$shell" = /usr/sbin/nologin ] ||
    fail "user tlspolicyd: $pw"
in_root getent group tlspolicyd >/dev/null || fail "no group tlspolicyd"
[ "$(in_root stat -c '%U:%G %a' /var/lib/tlspolicyd)" = "tlspolicyd:tlspolicyd 750" ] ||
    fail "/var/lib/tlspolicyd: $(in_root stat -c '%U:%G %a' /var/lib/tlspolicyd)"
if [ "$mta" = exim ]; then
    [ -f "$root/usr/lib/tlspolicyd/tlspolicyd_exim.so" ] || fail "the Exim module missing"
    ex=$root/usr/share/doc/tlspolicyd-exim/examples
    for f in conf.d/main/05_tlspolicyd conf.d/acl/50_tlspolicyd_tag conf.d/router/190_tlspolicyd \
             conf.d/transport/30_tlspolicyd tlspolicyd_acl_check_data systemd/tlspolicyd.conf \
             systemd/tlspolicyd.socket.d/exim.conf systemd/tlspolicyd.service.d/exim.conf; do
        [ -f "$ex/$f" ] || fail "tlspolicyd-exim: examples/$f missing"
    done
    grep -q '^TLSPOLICYD_MODULE = /usr/lib/tlspolicyd/tlspolicyd_exim.so$' "$ex/conf.d/main/05_tlspolicyd" ||
        fail "05_tlspolicyd does not name the packaged module"
fi
# Installed again over itself (prerm upgrade, postinst configure with the old version):
# the maintainer scripts are idempotent and ask nothing (stdin is closed).
in_root dpkg -i "${files[@]}" </dev/null >> "$root.apt.log" 2>&1 || fail "dpkg -i over the installed packages"
umount "$root/mnt/debs"
[ "$(in_root getent passwd tlspolicyd)" = "$pw" ] || fail "second postinst changed the user"
say "files, conffile, units enabled, user $uid, /var/lib/tlspolicyd 0750; installed again: no change"

# --- the packaged configuration ------------------------------------------------------
if [ "$mta" = exim ]; then
    # The Postfix configuration on an Exim host: -t names what is missing.
    if out=$(in_root tlspolicyd -c "$conf" -t 2>&1); then fail "-t passed on an Exim host: $out"; fi
    say "packaged (Postfix) configuration on an Exim host: -t fails: $out"
    # README.Debian of tlspolicyd-exim, step 2. /run/tlspolicyd: what the socket unit's
    # drop-in creates under systemd.
    install -m 644 "$root/usr/share/doc/tlspolicyd-exim/examples/systemd/tlspolicyd.conf" "$root$conf"
    install -d -m 755 "$root/run/tlspolicyd"
    sock=/run/tlspolicyd/tlspolicyd.sock group=Debian-exim
else
    sock=/var/spool/postfix/private/tlspolicyd group=postfix
fi
out=$(in_root tlspolicyd -c "$conf" -t 2>&1) || fail "tlspolicyd -t: $out"
say "tlspolicyd -c $conf -t: passes"

# --- run it --------------------------------------------------------------------------
# As the unit's ExecStart, in a network namespace with only loopback (the daemon cannot
# reach anything outside; 127.0.0.1:53 has no resolver, so DNS lookups fail). No systemd
# in the root: started as root, the daemon binds, then switches to user tlspolicyd.
unshare --net -- /bin/sh -c 'ip link set lo up && exec "$@"' sh \
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    /usr/sbin/tlspolicyd -c "$conf" 2> "$log" &
pid=$!
stop_daemon() { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
trap stop_daemon EXIT
for _ in $(seq 100); do
    [ -S "$root$sock" ] && [ "$(ps -o uid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$uid" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$log"; fail "the daemon exited"; }
    sleep 0.1
done
[ -S "$root$sock" ] || { cat "$log"; fail "no socket $sock"; }
[ "$(ps -o uid= -p "$pid" | tr -d ' ')" = "$uid" ] || fail "the daemon runs as uid $(ps -o uid= -p "$pid"), not tlspolicyd ($uid)"
[ "$(in_root stat -c '%U:%G %a' "$sock")" = "root:$group 660" ] ||
    fail "$sock: $(in_root stat -c '%U:%G %a' "$sock")"
say "daemon runs as tlspolicyd; $sock root:$group 0660"

if [ "$mta" = postfix ]; then
    # Postfix's own postmap in the root, as user postfix (what smtp(8) runs as): the
    # "TLS-Required: No" map answers without DNS.
    ans=$(in_root setpriv --reuid=postfix --regid=postfix --init-groups \
          postmap -q example.com "socketmap:unix:$sock:tlsoptional") || fail "postmap as postfix"
    [ "$ans" = may ] || fail "tlsoptional: '$ans', expected 'may'"
    # The host's postmap against the socket inside the root.
    pf=$root.pf && mkdir -p "$pf" && : > "$pf/main.cf"
    ans=$(postmap -c "$pf" -q example.com "socketmap:unix:$root$sock:tlsoptional") || fail "host postmap"
    [ "$ans" = may ] || fail "host postmap: '$ans'"
    # An address literal: NOTFOUND (exit 1, nothing printed).
    rc=0; ans=$(postmap -c "$pf" -q '[192.0.2.1]' "socketmap:unix:$root$sock:policy" 2>&1) || rc=$?
    [ "$rc" = 1 ] && [ -z "$ans" ] || fail "[192.0.2.1]: rc $rc '$ans'"
    # A domain while no resolver answers: TEMP, never "no policy".
    rc=0; ans=$(postmap -c "$pf" -q example.com "socketmap:unix:$root$sock:policy" 2>&1) || rc=$?
    [ "$rc" != 0 ] && grep -q 'temporary error' <<< "$ans" || fail "example.com without DNS: rc $rc '$ans'"
    say "postmap: tlsoptional 'may' (as postfix in the root and from the host); [192.0.2.1] NOTFOUND; example.com TEMP without DNS"
else
    so=/usr/lib/tlspolicyd/tlspolicyd_exim.so
    ans=$(in_root exim4 -be "\${dlfunc{$so}{query}{example.com}{tlsoptional}}") || fail "exim4 -be"
    [ "$ans" = "OK may" ] || fail "dlfunc query tlsoptional: '$ans'"
    ans=$(in_root exim4 -be "\${dlfunc{$so}{decide}{example.com}{policy}}") || fail "exim4 -be decide"
    grep -q 'action=defer' <<< "$ans" || fail "dlfunc decide without DNS: '$ans'"
    say "exim4 -be dlfunc: query tlsoptional 'OK may'; decide without DNS: $ans"
fi
stop_daemon
trap - EXIT
[ -f "$root/var/lib/tlspolicyd/policies.mdb" ] || fail "no store in /var/lib/tlspolicyd"

# --- remove: configuration and state stay --------------------------------------------
apt_root remove "${ours[@]}" >> "$root.apt.log" 2>&1 || { tail -n 40 "$root.apt.log"; fail "apt-get remove"; }
[ ! -e "$root/usr/sbin/tlspolicyd" ] || fail "remove left /usr/sbin/tlspolicyd"
[ -f "$root$conf" ] && [ -f "$root/var/lib/tlspolicyd/policies.mdb" ] ||
    fail "remove took the configuration or the state"
st=$(in_root dpkg-query -W -f='${Status}' tlspolicyd)
[ "$st" = "deinstall ok config-files" ] || fail "after remove: $st"
say "apt-get remove: $conf and /var/lib/tlspolicyd/policies.mdb kept"

# --- purge: nothing left ---------------------------------------------------------------
apt_root purge --autoremove "${ours[@]}" >> "$root.apt.log" 2>&1 || { tail -n 40 "$root.apt.log"; fail "apt-get purge"; }
for p in "${ours[@]}"; do
    if in_root dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -qE 'ok (installed|config-files|half)'; then
        fail "$p still known to dpkg after purge"
    fi
done
snapshot "$root.after"
if ! diff "$root.before" "$root.after"; then
    fail "the root's files after purge differ from those before the install (above)"
fi
say "apt-get purge --autoremove: the root's $(wc -l < "$root.after") files are those from before the install"
