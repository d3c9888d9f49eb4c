"""The command line (SPEC section 3): -t, -p, -c, -o, start-up errors as one line naming
the file and line with a non-zero exit, unusable endpoints, stale and live sockets, and
"tlspolicyd query" in text and JSON."""
import json
import os
import socket
import subprocess
import time

from harness import TLSPOLICYD, Daemon, check, check_true, finish


def run(*args, timeout=30):
    p = subprocess.run([TLSPOLICYD, *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


d = Daemon(overrides="example.com secure match=.example.com\n.example.net dane-only\n")
try:
    rc, out, err = run("-t", "-c", d.conf)
    check("-t on a good configuration: exit", rc, 0)
    check_true("-t says OK", "configuration OK" in err and "2 overrides" in err, err)

    rc, out, err = run("-p", "-c", d.conf, "-o", "max_connections=77")
    check("-p: exit", rc, 0)
    check_true("-p shows -o overriding the file", "max_connections = 77" in out, out)
    check_true("-p shows the file's value", f"overrides = {d.overrides}" in out, out)

    # One-line errors naming file and line, non-zero exit: (label, file text, want in stderr)
    bad = [
        ("unknown key", "listen = unix:/tmp/x.sock\nfrobnicate = yes\n", ":2: frobnicate = yes: unknown parameter"),
        ("bad duration", "idle_timeout = soon\n", ":1: idle_timeout = soon: expected a duration"),
        ("bad mode", "socket_mode = 999\n", ":1: socket_mode = 999: expected an octal mode"),
        ("bad endpoint", "listen = tcp:1.2.3.4:5\n", ":1: listen = tcp:1.2.3.4:5: endpoint must start with unix: or inet:"),
        ("bad port", "listen = inet:127.0.0.1:99999\n", "port must be a number from 1 to 65535"),
        ("host name", "listen = inet:mail.example:25\n", "host must be a numeric IPv4 or IPv6 address"),
        ("not key = value", "listen unix:/tmp/x\n", ":1: expected '=' after the parameter name"),
        ("continuation of nothing", "  listen = x\n", ":1: line starts with whitespace but continues nothing"),
        ("bad log level", "# comment\n\nlog_level = loud\n", ":3: log_level = loud: expected error, warning"),
    ]
    for label, text, want in bad:
        path = os.path.join(d.dir, "bad.conf")
        with open(path, "w") as f:
            f.write(text)
        rc, out, err = run("-t", "-c", path)
        check(f"{label}: exit", rc, 1)
        check_true(f"{label}: message", want in err, err)
        check(f"{label}: one line", err.count("\n"), 1)

    # Continuation lines as in main.cf.
    path = os.path.join(d.dir, "cont.conf")
    with open(path, "w") as f:
        f.write(f"listen = unix:{d.dir}/a.sock,\n    inet:127.0.0.1:1\n# c\nuser =\n")
    rc, out, err = run("-p", "-c", path)
    check_true("continuation line joins the listen list",
               f"listen = unix:{d.dir}/a.sock inet:127.0.0.1:1" in out, out)

    rc, out, err = run("-t", "-o", "max_pipeline=0")
    check("-o with a bad value: exit", rc, 1)
    check_true("-o with a bad value: message", "-o max_pipeline=0: expected a number" in err, err)
    rc, out, err = run("-t", "-c", "/nonexistent/tlspolicyd.conf")
    check("missing file: exit", rc, 1)
    check_true("missing file: message", "/nonexistent/tlspolicyd.conf: cannot open" in err, err)

    with open(d.overrides + ".bad", "w") as f:
        f.write("ok.example may\nbad.example secure mtach=x\n")
    rc, out, err = run("-t", "-c", d.conf, "-o", f"overrides={d.overrides}.bad")
    check("bad overrides value: exit", rc, 1)
    check_true("bad overrides value: file and line", f"{d.overrides}.bad:2: TLS policy attribute unknown" in err, err)
    with open(d.overrides + ".bad", "w") as f:
        f.write("a.example may\nA.EXAMPLE. dane-only\n")
    rc, out, err = run("-t", "-c", d.conf, "-o", f"overrides={d.overrides}.bad")
    check_true("duplicate overrides entry rejected", rc == 1 and "duplicate entry for a.example" in err, err)

    # Unusable endpoints at start-up: one line, non-zero exit.
    rc, out, err = run("-c", d.conf, "-o", "listen=unix:/nonexistent-dir/s.sock", timeout=10)
    check("socket in a missing directory: exit", rc, 1)
    check_true("socket in a missing directory: message names the directory",
               "fatal: unix:/nonexistent-dir/s.sock: directory /nonexistent-dir does not exist"
               in err, err)
    check("socket in a missing directory: one line", err.count("\n"), 1)
    # -t checks what start-up will need: the socket's directory, the path, the group.
    for label, opt, want in (
            ("-t: socket in a missing directory", "listen=unix:/nonexistent-dir/s.sock",
             "unix:/nonexistent-dir/s.sock: directory /nonexistent-dir does not exist"),
            ("-t: socket under a file", f"listen=unix:{d.conf}/s.sock",
             f"unix:{d.conf}/s.sock: {d.conf} is not a directory"),
            ("-t: socket path is a file", f"listen=unix:{d.conf}",
             f"unix:{d.conf}: {d.conf} exists and is not a socket"),
            ("-t: relative socket in a missing directory", "listen=unix:no-such-dir/s.sock",
             "unix:no-such-dir/s.sock: directory no-such-dir does not exist"),
            ("-t: unknown socket_group", "socket_group=no-such-group-here",
             "socket_group no-such-group-here: no such group")):
        rc, out, err = run("-t", "-c", d.conf, "-o", opt)
        check(f"{label}: exit", rc, 1)
        check_true(f"{label}: message", want in err, err)
        check(f"{label}: one line", err.count("\n"), 1)
    # The default user is the daemon's own (not the shared nobody).
    rc, out, err = run("-p")
    check_true("-p: default user is tlspolicyd", "\nuser = tlspolicyd\n" in out, out)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    rc, out, err = run("-c", d.conf, "-o", f"listen=inet:127.0.0.1:{port}", timeout=10)
    check("TCP port in use: exit", rc, 1)
    check_true("TCP port in use: message", "address already in use" in err, err)
    blocker.close()
    fresh_state = os.path.join(d.dir, "state-for-unknown-user")
    rc, out, err = run("-c", d.conf, "-o", "user=no-such-user-here", "-o",
                       f"state_dir={fresh_state}", timeout=10)
    if os.geteuid() == 0:
        check("unknown user: exit", rc, 1)
        check_true("unknown user: message", "user = no-such-user-here: no such user" in err, err)
        check("unknown user: one line", err.count("\n"), 1)
        # Refused before anything is created for that user.
        check("unknown user: state_dir not created", os.path.exists(fresh_state), False)
        rc, out, err = run("-t", "-c", d.conf, "-o", "user=no-such-user-here")
        check("-t: unknown user: exit", rc, 1)
        check_true("-t: unknown user: message",
                   "user = no-such-user-here: no such user" in err, err)
        check("-t: unknown user: one line", err.count("\n"), 1)

    # A stale socket file is replaced; a live one is never stolen.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(d.sock)
    stale.close()
    d.start()
    check_true("stale socket replaced", "removed stale socket" in d.log())
    check("daemon serves on it", d.ask("policy", "example.com"), "OK secure match=.example.com")
    rc, out, err = run("-c", d.conf, timeout=10)
    check("second daemon on a live socket: exit", rc, 1)
    check_true("second daemon on a live socket: message", "another process is listening" in err, err)
    check("first daemon still serves", d.ask("policy", "example.com"), "OK secure match=.example.com")
    check("SIGTERM: clean exit", d.stop(), 0)

    # query: the same answers without a daemon.
    rc, out, err = run("query", "-c", d.conf, "example.com", "www.example.net", "nothing.unsigned.test")
    check("query: exit", rc, 0)
    lines = out.splitlines()
    check("query: first answer", lines[0], "example.com\tOK secure match=.example.com")
    check_true("query: says why", "rule policy/override, overrides entry example.com" in lines[1], out)
    check("query: parent entry", lines[2], "www.example.net\tOK dane-only")
    check("query: no policy", lines[4], "nothing.unsigned.test\tNOTFOUND")
    rc, out, err = run("query", "-c", d.conf, "--json", "--map", "requiretls", "example.com",
                       "nothing.unsigned.test", "not_a_domain")
    check("query --json requiretls: exit 1 (a TEMP answer)", rc, 1)
    doc = json.loads(out)
    check("query --json: three results", len(doc), 3)
    check("query --json: authenticated override", (doc[0]["status"], doc[0]["answer"], doc[0]["rule"]),
          ("OK", "secure match=.example.com", "requiretls/override"))
    check("query --json: facts", doc[0]["facts"]["override"],
          {"entry": "example.com", "value": "secure match=.example.com"})
    check("query --json: no validated path", (doc[1]["status"], doc[1]["rule"]),
          ("TEMP", "requiretls/unvalidated"))
    check("query --json: not a domain", (doc[2]["status"], doc[2]["domain"], doc[2]["rule"]),
          ("NOTFOUND", None, "request/not-a-domain"))
    rc, out, err = run("query", "--map", "nope", "example.com")
    check("query unknown map: exit 1", rc, 1)
    check_true("query unknown map: PERM", "PERM unknown map nope" in out, out)
    rc, out, err = run("query")
    check("query without domains: usage, exit 2", rc, 2)
finally:
    d.cleanup()
finish()
