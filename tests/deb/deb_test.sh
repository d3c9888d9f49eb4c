#!/bin/bash
# integration_deb: build the Debian packages from a copy of the source tree, check them with
# lintian, then install, run, remove and purge them in clean Debian 12 roots (root_check.sh),
# once with Postfix (tlspolicyd) and once with Exim (tlspolicyd + tlspolicyd-exim).
#
#   deb_test.sh SOURCE_DIR
#
# Needs root, the mirror apt uses (the roots install from it), mmdebstrap, debhelper and
# lintian (scripts/deps.sh test). Downloads are cached in $TLSPOLICYD_TEST_CACHE
# (/var/cache/tlspolicyd-test): the minbase root as a tarball, apt's lists and .debs.
set -euo pipefail

src=$(cd "${1:?usage: deb_test.sh SOURCE_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
cache=${TLSPOLICYD_TEST_CACHE:-/var/cache/tlspolicyd-test}
mirror=${TLSPOLICYD_DEB_MIRROR:-http://deb.debian.org/debian}
security=${TLSPOLICYD_DEB_SECURITY:-http://deb.debian.org/debian-security}

if [ "$(id -u)" -ne 0 ]; then
    echo "deb_test.sh: needs root (chroot, unshare, mounts)" >&2
    exit 1
fi
for t in dpkg-buildpackage dh lintian mmdebstrap unshare chroot postmap; do
    command -v "$t" >/dev/null || { echo "deb_test.sh: $t missing: run scripts/deps.sh test" >&2; exit 1; }
done

work=$(mktemp -d /tmp/tlspolicyd-deb.XXXXXX)
# The roots live under $work; their mounts belong to root_check.sh's own mount namespace
# and its processes to its own PID namespace, so both are gone when it exits.
trap 'rm -rf "$work"' EXIT
t0=$SECONDS
step() { printf '[%4ds] %s\n' $((SECONDS - t0)) "$*"; }

# 1. Build, in a copy so the source tree stays clean: the files git knows (tracked, and
# untracked but not ignored), or everything but .git and build directories.
# TLSPOLICYD_DEB_DIR=DIR uses the packages built there instead (while working on this test).
if [ -n "${TLSPOLICYD_DEB_DIR:-}" ]; then
    debs=$(cd "$TLSPOLICYD_DEB_DIR" && pwd)
else
    mkdir -p "$work/build/tlspolicyd"
    if git -C "$src" rev-parse --show-toplevel >/dev/null 2>&1; then
        (cd "$src" && git ls-files -z --cached --others --exclude-standard) |
            (cd "$src" && tar --null -T - -cf -) | tar -C "$work/build/tlspolicyd" -xf -
    else
        tar -C "$src" --exclude=./.git --exclude='./build*' -cf - . | tar -C "$work/build/tlspolicyd" -xf -
    fi
    step "building the packages (dpkg-buildpackage -us -uc -b)"
    if ! (cd "$work/build/tlspolicyd" &&
          env -u MAKEFLAGS -u MFLAGS DEB_BUILD_OPTIONS="parallel=2" \
              dpkg-buildpackage -us -uc -b) > "$work/build.log" 2>&1; then
        tail -n 60 "$work/build.log"
        echo "FAIL: dpkg-buildpackage" >&2
        exit 1
    fi
    debs=$work/build
fi
ls "$debs"/tlspolicyd_*_*.deb "$debs"/tlspolicyd-exim_*_*.deb >/dev/null

# 2. lintian: no error and no warning (those kept are overridden with a reason in debian/).
step "lintian"
if ! lintian --fail-on error,warning -I "$debs"/tlspolicyd_*.changes; then
    echo "FAIL: lintian reports errors or warnings" >&2
    exit 1
fi

# 3. The clean Debian 12 root: a minbase tarball made once and kept in the cache.
mkdir -p "$cache"
tarball=$cache/bookworm-minbase.tar
exec 9> "$cache/lock"
flock 9
if [ ! -s "$tarball" ]; then
    step "making $tarball (mmdebstrap --variant=minbase bookworm)"
    mmdebstrap --quiet --variant=minbase --format=tar bookworm "$tarball.new" \
        "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
        "deb $security bookworm-security main"
    mv "$tarball.new" "$tarball"
fi

# 4. Install, run, remove, purge: each in a fresh root, in private mount and PID namespaces.
for mta in postfix exim; do
    step "root with $mta"
    if ! unshare --mount --propagation private --pid --fork --mount-proc -- \
            "$here/root_check.sh" "$mta" "$tarball" "$debs" "$cache" "$work/root-$mta"; then
        echo "FAIL: $mta root" >&2
        exit 1
    fi
done
step "PASS"
