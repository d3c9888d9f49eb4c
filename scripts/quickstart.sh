#!/bin/bash
# Install what is missing, build, and run tlspolicyd in the foreground with its built-in
# configuration: socketmap on unix:run/tlspolicyd.sock under the source tree. Started as
# root, the daemon switches to the system user tlspolicyd after binding (deps.sh creates it).
# Extra arguments go to the daemon, e.g. scripts/quickstart.sh -o overrides=/etc/tlspolicyd/overrides
# For a Postfix installation, see README.md, "Installing for Postfix on Debian".
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
cmake --build build -j"$(nproc)"
mkdir -p run
cat >&2 <<EOF
quickstart: the daemon runs in the foreground; in another shell, try
    build/tlspolicyd query example.com          (the same lookup, without the daemon)
  or, with Postfix installed, as root (the socket is 0660 root's group; see socket_group;
  postmap takes a relative socket path from its own directory, so give it the full path):
    mkdir -p /tmp/pf && touch /tmp/pf/main.cf
    postmap -c /tmp/pf -q example.com socketmap:unix:$PWD/run/tlspolicyd.sock:policy
EOF
exec build/tlspolicyd "$@"
