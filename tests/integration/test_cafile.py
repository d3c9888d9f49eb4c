"""CA bundles (issue 10 section 3) against the lab's MTA-STS side (tests/lab/dnslab.sh):
a CA file readable by root only still works after the switch to user = nobody, because it
is read into memory before the drop; -t and start-up refuse a CA file that is missing or
holds no certificate with one line naming it; SIGHUP re-reads the files and keeps the bundle
in memory when the new one is bad; and a fetch that fails on our side (a bundle libcurl
cannot read) answers TEMP for a domain whose TXT record announces a policy, counts
outcome="local" in /metrics and is not remembered, so the domain recovers at once."""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

from harness import TLSPOLICYD, Daemon, check, check_true, finish, free_port

if "LAB_CA_FILE" not in os.environ:
    raise SystemExit("run me inside the lab: tests/lab/dnslab.sh python3 test_cafile.py")

CA = os.environ["LAB_CA_FILE"]
SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"
BASE = ["requiretls_probe = no", "sts_allow_private = yes", "sts_connect_timeout = 2s",
        "sts_fetch_timeout = 2s", "lookup_timeout = 6s"]
ENFORCE = "OK secure match=mx1.enforce.sts.test:.backup.sts.test servername=hostname"
# One PEM block that is not a certificate: mbedTLS skips it, OpenSSL refuses the whole blob.
CORRUPT = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"

cadir = tempfile.mkdtemp(prefix="tlspolicyd-ca-")  # mode 0700, root's


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def read(path):
    with open(path) as f:
        return f.read()


def run(*args, timeout=30):
    p = subprocess.run([TLSPOLICYD, *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def error_lines(d, text):
    """Log lines at error level that contain text."""
    return [ln for ln in d.log().splitlines() if " error: " in ln and text in ln]


def wait_count(d, text, n, timeout=10.0):
    """Wait until text appears more than n times in the log."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if d.log().count(text) > n:
            return True
        time.sleep(0.02)
    return False


def metric(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    m = re.search("^" + re.escape(name) + r" (\d+)$", text, re.M)
    return (int(m.group(1)) if m else None), text


try:
    # 1. A private CA readable by root only (mode 0600 in a 0700 directory); the daemon
    # starts as root and switches to nobody, who cannot read the file.
    private = os.path.join(cadir, "private-ca.pem")
    write(private, read(CA), 0o600)
    d = Daemon(user="nobody", conf_lines=BASE + ["socket_mode = 0666", f"sts_ca_file = {private}",
                                                 f"probe_ca_file = {private}"])
    try:
        d.start()
        check_true("root-only CA: running as nobody", "running as user nobody" in d.log(),
                   d.log()[-300:])
        p = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            "cat", private], capture_output=True, text=True, timeout=10)
        check_true("root-only CA: nobody cannot read the file", p.returncode != 0, p.stdout[:80])
        check("root-only CA: MTA-STS enforce still answered", d.ask("policy", "enforce.sts.test"),
              ENFORCE)
        check("root-only CA: requiretls has its validated path",
              d.ask("requiretls", "enforce.sts.test"), ENFORCE)
        # SIGHUP as nobody: the file cannot be read again; the copy in memory stays.
        d.signal(signal.SIGHUP)
        check_true("root-only CA: SIGHUP says the file cannot be re-read",
                   d.wait_log("reload: sts_ca_file: CA file " + private), d.log()[-800:])
        lines = error_lines(d, "reload: sts_ca_file: CA file " + private)
        check_true("root-only CA: logged at error level, saying why and what stays",
                   len(lines) == 1 and "Permission denied" in lines[0]
                   and "keeping the CA bundle read from " + private in lines[0]
                   and "restart it to read this file" in lines[0], lines)
        check_true("root-only CA: the rest of the reload went through",
                   d.wait_log("reloaded configuration"), d.log()[-300:])
        check("root-only CA: a new fetch after SIGHUP still verifies",
              d.ask("policy", "wildcard.sts.test"),
              "OK secure match=.wildcard.sts.test servername=hostname")
    finally:
        check("root-only CA: daemon exits cleanly", d.stop(), 0)
        d.cleanup()

    # 2. -t and start-up: one line naming the file, non-zero exit, no socket left behind.
    empty = os.path.join(cadir, "empty.pem")
    text = os.path.join(cadir, "text.pem")
    write(empty, "")
    write(text, "# no certificate here\n")
    bad = [("sts_ca_file", "/nonexistent", "cannot open: No such file or directory"),
           ("probe_ca_file", "/nonexistent", "cannot open: No such file or directory"),
           ("sts_ca_file", empty, "holds no PEM certificate"),
           ("probe_ca_file", text, "holds no PEM certificate"),
           ("sts_ca_file", cadir, "not a regular file")]
    # -t also checks the socket's directory: one that exists, so the CA file decides.
    listen = f"listen=unix:{os.path.join(cadir, 't.sock')}"
    for key, path, why in bad:
        rc, out, err = run("-t", "-o", listen, "-o", f"{key}={path}")
        check(f"-t {key}={path}: exit", rc, 1)
        check_true(f"-t {key}={path}: names key and file",
                   err.startswith(f"tlspolicyd: {key}: CA file {path}: {why}"), err)
        check(f"-t {key}={path}: one line", err.count("\n"), 1)
    rc, out, err = run("-t", "-o", listen, "-o", f"sts_ca_file={private}",
                       "-o", f"probe_ca_file={private}")
    check("-t with a root-only CA file, as root: OK", (rc, "configuration OK" in err), (0, True))

    for key, path, why in bad[2:4]:
        d = Daemon(conf_lines=BASE + [f"{key} = {path}"])
        try:
            try:
                p = subprocess.run([TLSPOLICYD, "-c", d.conf], capture_output=True, text=True,
                                   timeout=10)
            except subprocess.TimeoutExpired as e:
                # It started: subprocess.run() has killed it.
                p = subprocess.CompletedProcess(e.cmd, "started", "", (e.stderr or b"").decode())
            check(f"start-up with {key} = {os.path.basename(path)}: exit", p.returncode, 1)
            check_true(f"start-up with {key} = {os.path.basename(path)}: names key and file",
                       p.stderr.startswith(f"tlspolicyd: fatal: {key}: CA file {path}: {why}"),
                       p.stderr)
            check(f"start-up with {key}: one line", p.stderr.count("\n"), 1)
            check(f"start-up with {key}: no socket left", os.path.exists(d.sock), False)
        finally:
            d.cleanup()

    # 3. SIGHUP re-reads the CA file; a broken one is logged and the one in memory stays.
    cafile = os.path.join(cadir, "ca.pem")
    write(cafile, read(CA))
    d = Daemon(conf_lines=BASE + [f"sts_ca_file = {cafile}"])
    try:
        d.start()
        check("reload: enforce before", d.ask("policy", "enforce.sts.test"), ENFORCE)
        write(cafile, "not a bundle\n")
        d.signal(signal.SIGHUP)
        check_true("reload: broken CA file logged",
                   d.wait_log(f"reload: sts_ca_file: CA file {cafile}: holds no PEM certificate"),
                   d.log()[-500:])
        check("reload: broken CA file: one error line naming it",
              len(error_lines(d, f"CA file {cafile}: holds no PEM certificate")), 1)
        check("reload: broken CA file: the bundle in memory still verifies a new fetch",
              d.ask("policy", "crlf.sts.test"),
              "OK secure match=mx1.crlf.sts.test servername=hostname")
        os.unlink(cafile)
        d.signal(signal.SIGHUP)
        check_true("reload: missing CA file logged",
                   d.wait_log(f"CA file {cafile}: cannot open: No such file or directory"),
                   d.log()[-500:])
        check_true("reload: missing CA file: still verifies",
                   d.ask("policy", "split.sts.test").startswith("OK secure match="))
        # A good bundle that does not hold the lab CA: the reload takes it, fetches now fail.
        write(cafile, read(SYSTEM_CA))
        n = d.log().count("reloaded configuration")
        d.signal(signal.SIGHUP)
        check_true("reload: a good new CA file is taken",
                   wait_count(d, "reloaded configuration", n), d.log()[-500:])
        check("reload: ... without an error", len(error_lines(d, f"CA file {cafile}")), 2)
        check("reload: the new bundle is in force (lab CA no longer trusted)",
              d.ask("policy", "charset.sts.test"), "NOTFOUND ")
        check_true("reload: ... because verification failed",
                   "charset.sts.test: no policy: policy fetch from mta-sts.charset.sts.test "
                   "failed: TLS failed" in d.log(), d.log()[-500:])
        check("reload: policies fetched before stay in force", d.ask("policy", "enforce.sts.test"),
              ENFORCE)
    finally:
        check("reload: daemon exits cleanly", d.stop(), 0)
        d.cleanup()

    # 4. A local fault at fetch time: a bundle with the lab CA and one corrupt block passes
    # the daemon's check (mbedTLS keeps the good certificate) but OpenSSL, which checks the
    # policy hosts' certificates, refuses the whole bundle (cafile_x509_store, as libcurl did
    # with the blob), so every fetch fails on our side.
    mixed = os.path.join(cadir, "mixed.pem")
    write(mixed, read(CA) + CORRUPT)
    port = free_port()
    d = Daemon(conf_lines=BASE + [f"sts_ca_file = {mixed}", "sts_fail_ttl = 10m",
                                  f"metrics_listen = inet:127.0.0.1:{port}"])
    local = 'tlspolicyd_sts_fetches_total{outcome="local"}'
    try:
        d.start()
        check_true("local fault: the bundle is accepted at start-up, with a warning",
                   "could not be parsed" in d.log(), d.log()[-500:])
        got = d.ask("policy", "enforce.sts.test")
        check_true("local fault: TEMP for a domain whose TXT record announces a policy",
                   got.startswith("TEMP MTA-STS policy of enforce.sts.test unknown: policy fetch "
                                  "from mta-sts.enforce.sts.test failed: local fault: "), got)
        check("local fault: counted", metric(port, local)[0], 1)
        check("local fault: logged at error level",
              len(error_lines(d, "mta-sts: enforce.sts.test: policy fetch from "
                                 "mta-sts.enforce.sts.test failed: local fault")), 1)
        check_true("local fault: never logged as no policy",
                   "enforce.sts.test: no policy" not in d.log(), d.log()[-500:])
        got = d.ask("policy", "enforce.sts.test")
        check_true("local fault: asked again, TEMP again", got.startswith("TEMP MTA-STS"), got)
        # Not remembered for sts_fail_ttl, but not a fetch per lookup either: tried again
        # after 1, 2, then every 4 s (a reload clears that wait, below).
        check("local fault: asked again at once: not fetched again", metric(port, local)[0], 1)
        got = d.ask("requiretls", "enforce.sts.test")
        check_true("local fault: requiretls defers (TEMP), no 5.7.10 bounce",
                   got.startswith("TEMP MTA-STS policy of enforce.sts.test unknown"), got)
        got = d.ask("requiretls-access", "user@enforce.sts.test")
        check_true("local fault: requiretls-access stays TEMP, no REJECT",
                   got.startswith("TEMP MTA-STS"), got)
        got = d.ask("policy", "testing.sts.test")
        check_true("local fault: a testing-mode domain too (the mode is unknown)",
                   got.startswith("TEMP MTA-STS"), got)
        check("local fault: no TXT record, no policy (RFC 8461 3.1)",
              d.ask("policy", "notxt.sts.test"), "NOTFOUND ")
        check("local fault: tlsoptional still waives", d.ask("tlsoptional", "enforce.sts.test"),
              "OK may")
        # query --json shows the fact the engine read (the command fetches for itself).
        p = subprocess.run([TLSPOLICYD, "query", "-c", d.conf, "-o", "state_dir=",
                            "-o", "metrics_listen=", "--json", "enforce.sts.test"],
                           capture_output=True, text=True, timeout=30)
        doc = json.loads(p.stdout or "[{}]")[0]
        sts = (doc.get("facts") or {}).get("sts") or {}
        check("query --json: rule, fetch outcome, local_fault, exit",
              (doc.get("rule"), sts.get("fetch"), sts.get("local_fault"), p.returncode),
              ("policy/sts-local-fault", "local", True, 1))
        n, text = metric(port, local)
        if shutil.which("promtool"):
            p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                               text=True, timeout=30)
            check("local fault: promtool check metrics", (p.returncode, p.stdout + p.stderr),
                  (0, ""))
        # The fault is fixed and the bundle reloaded: the next lookup fetches at once (the
        # reload ends the local fault's wait).
        write(mixed, read(CA))
        d.signal(signal.SIGHUP)
        check_true("local fault: fixed bundle reloaded",
                   wait_count(d, "reloaded configuration", 0))
        check("local fault fixed: the policy is answered at once",
              d.ask("policy", "enforce.sts.test"), ENFORCE)
        check("local fault fixed: no new local fault", metric(port, local)[0], n)
    finally:
        check("local fault: daemon exits cleanly", d.stop(), 0)
        d.cleanup()
finally:
    shutil.rmtree(cadir, ignore_errors=True)
finish()
