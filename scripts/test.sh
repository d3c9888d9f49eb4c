#!/bin/bash
# Install what is missing, build under AddressSanitizer and UndefinedBehaviorSanitizer,
# and run every test: unit tables, fuzz corpus replays, integration tests against
# Postfix's postmap, bad-input tests. ctest prints the closing count.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh test
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DENABLE_ASAN=ON -DENABLE_UBSAN=ON >/dev/null
cmake --build build-test -j"$(nproc)"
# Leaks are errors; reports go to the test's output.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd build-test
ctest --output-on-failure -j2 "$@"
