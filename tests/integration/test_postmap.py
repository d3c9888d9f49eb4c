"""Postfix's own socketmap client (postmap -q, and postmap -q - for many keys over one
connection) against a running tlspolicyd, over a unix socket, TCP/IPv4 and TCP/IPv6:
every map name, the overrides table, key normalisation, parent probes, invalid keys,
unknown maps (SPEC section 4). Also SIGHUP reload and the privilege drop."""
import grp
import os
import signal
import socket
import time

from harness import Daemon, check, check_true, finish


def free_port(family, host):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


OVERRIDES = """\
# exact domains and .parent entries (Postfix table-source form)
example.com      secure match=.example.com servername=hostname
.example.net     dane-only
Upper.EXAMPLE.   verify match=mx.upper.example
xn--bcher-kva.example  encrypt
weak.example     may
weak.unsigned.test may
.p.unsigned.test dane-only
"""

p4 = free_port(socket.AF_INET, "127.0.0.1")
p6 = free_port(socket.AF_INET6, "::1")
d = Daemon(overrides=OVERRIDES, user="nobody", conf_lines=["socket_group = nogroup"])
# Listen on all three kinds at once.
with open(d.conf, "a") as f:
    f.write(f"listen = unix:{d.sock}, inet:127.0.0.1:{p4} inet:[::1]:{p6}\n")
try:
    d.start()
    endpoints = {"unix": f"unix:{d.sock}", "inet4": f"inet:127.0.0.1:{p4}",
                 "inet6": f"inet:[::1]:{p6}"}

    # (label, map, key, want exit status, want stdout)
    rows = [
        ("override exact", "policy", "example.com", 0, "secure match=.example.com servername=hostname"),
        ("override parent", "policy", "mx.a.example.net", 0, "dane-only"),
        ("parent entry does not match the parent itself", "policy", "p.unsigned.test", 1, ""),
        ("key normalised: case and trailing dot", "policy", "EXAMPLE.com.", 0,
         "secure match=.example.com servername=hostname"),
        ("override key normalised at load", "policy", "upper.example", 0, "verify match=mx.upper.example"),
        ("U-label key to A-label", "policy", "bücher.example", 0, "encrypt"),
        ("no policy", "policy", "nothing.unsigned.test", 1, ""),
        ("parent probe key", "policy", ".example.com", 1, ""),
        ("not a domain", "policy", "[192.0.2.1]", 1, ""),
        ("tlsoptional waives the override", "tlsoptional", "example.com", 0, "may"),
        ("tlsoptional without policy", "tlsoptional", "nothing.unsigned.test", 0, "may"),
        ("requiretls keeps an authenticated override", "requiretls", "example.com", 0,
         "secure match=.example.com servername=hostname"),
        ("requiretls parent dane-only", "requiretls", "mx.example.net", 0, "dane-only"),
    ]
    for ep_label, ep in endpoints.items():
        for label, name, key, want_rc, want_out in rows:
            rc, out, err = d.postmap(key, name, ep)
            check(f"{ep_label}: {label}: exit", rc, want_rc)
            check(f"{ep_label}: {label}: answer", out.strip(), want_out)

        # requiretls with only an unauthenticated level: a deferral, never "may".
        rc, out, err = d.postmap("weak.unsigned.test", "requiretls", ep)
        check(f"{ep_label}: requiretls refuses an unauthenticated override: exit", rc != 0, True)
        check_true(f"{ep_label}: requiretls temp error reported", "5.7.10" in err, err)

        # Unknown map: PERM, which Postfix reports as a table configuration error.
        rc, out, err = d.postmap("example.com", "nosuchmap", ep)
        check(f"{ep_label}: unknown map fails", rc != 0, True)
        check_true(f"{ep_label}: unknown map is a permanent error",
                   "permanent error: unknown map nosuchmap" in err, err)

    # Many keys over one connection: postmap -q - .
    before = d.log().count("connection opened")
    keys = ["example.com", "nothing.unsigned.test", "a.example.net", "weak.example", ".example.com"] * 40
    rc, out, err = d.postmap("-", "policy", stdin="\n".join(keys) + "\n")
    lines = out.splitlines()
    check("postmap -q -: exit", rc, 0)
    check("postmap -q -: found keys", len(lines), 3 * 40)
    check("postmap -q -: first answer", lines[0], "example.com\tsecure match=.example.com servername=hostname")
    check("postmap -q -: answers in order", lines[1], "a.example.net\tdane-only")
    check("postmap -q -: one connection for 200 keys",
          d.log().count("connection opened") - before, 1)

    # Privilege drop after binding (started as root with user = nobody).
    if os.geteuid() == 0:
        with open(f"/proc/{d.proc.pid}/status") as f:
            uid_line = [l for l in f if l.startswith("Uid:")][0].split()
        check("privileges dropped to nobody", uid_line[1:], ["65534"] * 4)
    st = os.stat(d.sock)
    check("socket mode 0660", oct(st.st_mode & 0o777), oct(0o660))
    check("socket group from socket_group", grp.getgrgid(st.st_gid).gr_name, "nogroup")

    # SIGHUP reload: a new table takes effect; a bad one is refused and the old stays.
    with open(d.overrides, "w") as f:
        f.write("example.com dane-only\nnew.example secure match=mx.new.example\n")
    d.signal(signal.SIGHUP)
    check_true("reload logged", d.wait_log("reloaded configuration"))
    check("after reload: changed entry", d.postmap("example.com", "policy")[1].strip(), "dane-only")
    check("after reload: new entry", d.postmap("new.example", "policy")[1].strip(),
          "secure match=mx.new.example")
    with open(d.overrides, "w") as f:
        f.write("example.com secure\nbroken.example sekure\n")
    d.signal(signal.SIGHUP)
    check_true("bad reload logged with file and line",
               d.wait_log(f"reload failed, keeping the configuration in force: {d.overrides}:2: unknown TLS security level"))
    check("after bad reload: old table answers", d.postmap("example.com", "policy")[1].strip(), "dane-only")
    # A key that needs a restart: the reload says so and keeps serving.
    with open(d.overrides, "w") as f:
        f.write("example.com dane-only\nnew.example secure match=mx.new.example\n")
    with open(d.conf, "a") as f:
        f.write("probe_timeout = 3s\n")
    d.signal(signal.SIGHUP)
    check_true("restart-only key on reload: logged",
               d.wait_log("the probe_* keys take effect only at restart"))
    check("restart-only key on reload: still serving", d.postmap("new.example", "policy")[0], 0)
    with open(d.conf, "a") as f:
        f.write("no_such_key = 1\n")
    with open(d.conf) as f:
        bad_line = len(f.read().splitlines())
    d.signal(signal.SIGHUP)
    check_true("bad configuration on reload logged",
               d.wait_log(f"{d.conf}:{bad_line}: no_such_key = 1: unknown parameter"))
    check("after bad config reload: still serving", d.postmap("new.example", "policy")[0], 0)
    check("clean exit on SIGTERM", d.stop(), 0)
    check_true("stop logged", "stopped" in d.log())
finally:
    d.cleanup()
finish()
