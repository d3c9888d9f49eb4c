#!/bin/bash
# Benchmark answers that come from the DNS and MTA-STS caches: tests/bench/run.sh inside
# the lab (tests/lab/dnslab.sh), asking for DANE, MTA-STS and no-policy domains of the lab
# (tests/bench/lab-keys) after one pass has filled the caches.
#   usage: tests/bench/lab.sh [BUILD_DIR]      (default: build)
#   BENCH_KEYS=FILE: other lab domains than tests/bench/lab-keys (e.g. without bogus-some.test,
#   whose bogus address record is never cached, so each lookup of it asks the resolver)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$PWD/$build ;; esac
exec "$here/../lab/dnslab.sh" bash -c '
    export BENCH_KEYS="${BENCH_KEYS:-$1/lab-keys}"
    export BENCH_DAEMON_CONF_EXTRA="dns_servers = $LAB_RESOLVER:$LAB_RESOLVER_PORT
sts_ca_file = $LAB_CA_FILE
sts_allow_private = yes
requiretls_probe = no
log_level = warning"
    exec "$1/run.sh" "$2"' lab "$here" "$build"
