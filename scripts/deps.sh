#!/bin/bash
# Install what tlspolicyd needs on Debian 12, and nothing that is already there.
#   scripts/deps.sh build   compiler, cmake and the -dev libraries
#   scripts/deps.sh test    the above plus what the tests run (Postfix's postmap, python3...)
# Services are never started by apt: /usr/sbin/policy-rc.d answers 101 while it runs.
set -euo pipefail

want=${1:-build}
# adduser: the daemon's system user (below). libhiredis-dev: the fleet tier's Redis client.
pkgs=(build-essential cmake pkg-config libuv1-dev libc-ares-dev libcurl4-openssl-dev libssl-dev
      libjansson-dev libmbedtls-dev libidn2-dev liblmdb-dev libhiredis-dev adduser)
if [ "$want" = test ]; then
    # postfix: postmap is the real socketmap client; python3: the bad-input clients;
    # clang and its runtime: libFuzzer builds of the fuzzers.
    # nsd, unbound, bind9-utils (dnssec-keygen/signzone), bind9-dnsutils (dig), iproute2,
    # util-linux (unshare): the DNSSEC lab of tests/lab/.
    # lmdb-utils: mdb_load and mdb_stat put hand-made and corrupt records into a store and
    # count what an interrupted import committed.
    # prometheus: promtool checks /metrics and the alert rules; man-db: man -l renders the
    # manual pages (systemd-analyze, where systemd is installed, checks the units).
    # exim4-dev: the headers of contrib/exim's dlfunc module (Exim itself is not installed:
    # it would remove Postfix; exim-extract.sh unpacks its binary instead, below).
    pkgs+=(exim4-dev)
    pkgs+=(postfix python3 procps clang libclang-rt-14-dev openssl
           nsd unbound bind9-utils bind9-dnsutils iproute2 util-linux nginx
           prometheus man-db lmdb-utils)
    # redis-server and redis-tools (redis-cli): integration_fleet's shared Redis.
    pkgs+=(redis-server redis-tools)
    # nftables (nft): integration_faults_net drops the resolver's packets in the lab's
    # network namespace.
    pkgs+=(nftables)
    # integration_deb: dpkg-buildpackage with debhelper (the other Build-Depends of
    # debian/control are above), lintian, and mmdebstrap for the clean Debian 12 roots.
    pkgs+=(debhelper lintian mmdebstrap)
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
# The system user the daemon switches to when started as root (the "user" key's default),
# created the Debian way when missing; as another user there is nothing to switch from.
ensure_user() {
    if [ "$(id -u)" -eq 0 ] && ! getent passwd tlspolicyd >/dev/null; then
        echo "deps.sh: creating system user tlspolicyd" >&2
        adduser --system --group --no-create-home --home /nonexistent --quiet tlspolicyd
    fi
}
# The tests' exim binary (exim4-daemon-heavy and exim4-base unpacked, not installed).
extract_exim() {
    if [ "$want" = test ]; then
        "$(dirname "$0")/exim-extract.sh" /var/cache/tlspolicyd-exim >/dev/null
    fi
}
if [ ${#missing[@]} -eq 0 ]; then
    ensure_user
    extract_exim
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: missing packages ${missing[*]}; run as root to install them" >&2
    exit 1
fi
echo "deps.sh: installing ${missing[*]}" >&2

# Keep apt from starting nsd, unbound, nginx, postfix or redis on install; restore what was there.
prc=/usr/sbin/policy-rc.d
saved=""
if [ -e "$prc" ]; then saved=$(mktemp); cp -p "$prc" "$saved"; fi
restore() {
    if [ -n "$saved" ]; then mv -f "$saved" "$prc"; else rm -f "$prc"; fi
}
trap restore EXIT
printf '#!/bin/sh\nexit 101\n' > "$prc"
chmod 755 "$prc"

export DEBIAN_FRONTEND=noninteractive
# Postfix asks how to configure itself; the tests give it its own configuration directory.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
ensure_user
extract_exim
