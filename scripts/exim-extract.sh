#!/bin/bash
# Give the tests an Exim binary without installing Exim: Exim and Postfix both provide
# mail-transport-agent, so installing exim4-daemon-heavy would remove Postfix. Instead the
# packages are downloaded with apt and unpacked (dpkg-deb -x) into a directory of their
# own; nothing under /usr or /etc changes. exim4-config gives Debian's stock configuration
# (/etc/exim4 and update-exim4.conf), from which integration_exim builds what an
# administrator following the README would have.
#
#   scripts/exim-extract.sh [DIR]     default DIR: /var/cache/tlspolicyd-exim
#
# Prints the path of the exim binary on success. Idempotent: a second run finds the
# binary and only checks that its shared libraries are present. The shared libraries the
# binary needs (libgnutls30, libpcre2-8-0, libdb5.3, ...) are installed with apt when
# missing (they are ordinary libraries that do not conflict with Postfix).
set -euo pipefail

dir=${1:-/var/cache/tlspolicyd-exim}
root="$dir/root"
exim="$root/usr/sbin/exim4"
pkgs=(exim4-daemon-heavy exim4-base exim4-config)

libs_missing() {
    ldd "$exim" 2>/dev/null | awk '/not found/ {print $1}'
}

if [ ! -x "$exim" ] || [ ! -x "$root/usr/sbin/update-exim4.conf" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "exim-extract.sh: $exim is missing; run as root to fetch it" >&2
        exit 1
    fi
    mkdir -p "$dir/debs" "$root"
    # apt-get download writes into the current directory, as the _apt user when it can:
    # give that user the directory so apt does not warn about sandboxing.
    chown _apt "$dir/debs" 2>/dev/null || true
    if ! (cd "$dir/debs" && apt-get download -q "${pkgs[@]}" >&2); then
        echo "exim-extract.sh: apt-get download failed; running apt-get update once" >&2
        apt-get update -q >&2
        (cd "$dir/debs" && apt-get download -q "${pkgs[@]}" >&2)
    fi
    for p in "${pkgs[@]}"; do
        for deb in "$dir"/debs/"$p"_*.deb; do
            dpkg-deb -x "$deb" "$root"
        done
    done
fi

# Debian's exim resolves its compiled-in user, Debian-exim, at every start (exim4-base's
# postinst would create it). A system account with no login and no home, as that one.
if ! getent passwd Debian-exim >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "exim-extract.sh: exim needs the system user Debian-exim; run as root" >&2
        exit 1
    fi
    getent group Debian-exim >/dev/null || groupadd --system Debian-exim
    useradd --system --gid Debian-exim --home-dir /var/spool/exim4 --no-create-home \
            --shell /usr/sbin/nologin Debian-exim
fi

# The binary's own libraries: the runtime dependencies of exim4-daemon-heavy.
missing=$(libs_missing)
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "exim-extract.sh: exim needs libraries that are not installed: $missing" >&2
        exit 1
    fi
    deb=$(ls "$dir"/debs/exim4-daemon-heavy_*.deb | head -1)
    # The package's Depends: (first alternative of each), less exim4-base (unpacked above)
    # and debconf; only those not installed yet, so nothing installed is upgraded.
    deps=()
    for p in $(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/(.*)//; s/|.*//; s/ //g'); do
        case "$p" in exim4-base|debconf|"") continue ;; esac
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            deps+=("$p")
    done
    echo "exim-extract.sh: installing exim's libraries: ${deps[*]}" >&2
    # Keep apt from starting services on install; restore what was there.
    prc=/usr/sbin/policy-rc.d
    saved=""
    if [ -e "$prc" ]; then saved=$(mktemp); cp -p "$prc" "$saved"; fi
    trap 'if [ -n "$saved" ]; then mv -f "$saved" "$prc"; else rm -f "$prc"; fi' EXIT
    printf '#!/bin/sh\nexit 101\n' > "$prc"
    chmod 755 "$prc"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${deps[@]}" >&2 ||
        { apt-get update -q >&2 &&
          apt-get install -y -q --no-install-recommends "${deps[@]}" >&2; }
    missing=$(libs_missing)
    if [ -n "$missing" ]; then
        echo "exim-extract.sh: still missing after install: $missing" >&2
        exit 1
    fi
fi
echo "$exim"
