#!/bin/bash
# Cold MTA-STS lookups on three daemons with and without the fleet tier (tests/bench/fleet.py)
# inside the lab (tests/lab/dnslab.sh): policy fetches counted in nginx's access log.
#   usage: tests/bench/fleet.sh [BUILD_DIR] [ROUNDS]      (default: build, 5)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$PWD/$build ;; esac
export TLSPOLICYD_BUILD=$build
exec "$here/../lab/dnslab.sh" python3 "$here/fleet.py" "${2:-5}"
