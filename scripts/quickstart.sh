#!/bin/bash
# Install what is missing, build, and run tlspolicyd in the foreground with its built-in
# configuration: socketmap on unix:run/tlspolicyd.sock under the source tree. Extra
# arguments go to the daemon, e.g. scripts/quickstart.sh -o overrides=/etc/tlspolicyd/overrides
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
cmake --build build -j"$(nproc)"
mkdir -p run
echo "quickstart: try   postmap -q example.com socketmap:unix:$PWD/run/tlspolicyd.sock:policy" >&2
exec build/tlspolicyd "$@"
