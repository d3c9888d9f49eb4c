"""tlspolicyd state export and state import (issue 12) inside the lab: a daemon running as
nobody fetches real policies; export reads its state_dir without changing it (even while it
runs); import into an empty state_dir round-trips exactly, as the daemon's user, from a file
or from stdin, with -o state_dir= honoured; bad lines are reported with their line numbers
and skipped; the newer fetched wins; import refuses while a daemon holds state_dir and a
daemon refuses to start while an import does; a daemon started on the imported state answers
the imported enforce policy from it with the policy host stopped."""
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time

from harness import TLSPOLICYD, Daemon, check, check_true, finish, mdb_entries

if "LAB_CA_FILE" not in os.environ:
    raise SystemExit("run me inside the lab: tests/lab/dnslab.sh python3 test_state.py")

CA = os.environ["LAB_CA_FILE"]
STS_CONF = ["requiretls_probe = no", f"sts_ca_file = {CA}", "sts_allow_private = yes",
            "sts_connect_timeout = 2s", "sts_fetch_timeout = 2s", "lookup_timeout = 6s"]
ENFORCE = "secure match=mx1.enforce.sts.test:.backup.sts.test servername=hostname"
FIELDS = ["version", "domain", "id", "fetched", "expires", "mode", "max_age", "mx"]
NOBODY = pwd.getpwnam("nobody")


def run(*args, stdin=None, timeout=60):
    p = subprocess.run([TLSPOLICYD, "state", *args], capture_output=True, text=True,
                       input=stdin, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def listing(state):
    """What state_dir holds: names, sizes and times, to see that nothing changed (but LMDB's
    lock file, whose reader table every reader writes to by design)."""
    out = []
    for root, dirs, files in os.walk(state):
        for n in sorted(dirs + files):
            if n == "policies.mdb-lock":
                continue
            st = os.lstat(os.path.join(root, n))
            out.append((os.path.relpath(os.path.join(root, n), state), st.st_size, st.st_mtime_ns))
    return sorted(out)


def line(domain, fetched, **kw):
    rec = {"version": 1, "domain": domain, "id": "20261203", "fetched": fetched,
           "expires": fetched + 86400, "mode": "enforce", "max_age": 86400,
           "mx": [f"mx1.{domain}"]}
    rec.update(kw)
    return json.dumps(rec, separators=(",", ":"))


def mdb_load(path, pairs):
    """Key and value pairs into the store at path with LMDB's mdb_load (plain text, -T)."""
    text = "".join(f"{k}\n{v}\n" for k, v in pairs)
    subprocess.run(["mdb_load", "-n", "-T", path], input=text, text=True, check=True,
                   timeout=30)


scratch = tempfile.mkdtemp(prefix="tlspolicyd-state-")
os.chmod(scratch, 0o755)
d = Daemon(conf_lines=STS_CONF, user="nobody")
try:
    # A daemon fetches real policies and writes them through to its state_dir.
    d.start()
    check("fetch: enforce", d.ask("policy", "enforce.sts.test"), "OK " + ENFORCE)
    check_true("fetch: wildcard", d.ask("policy", "wildcard.sts.test").startswith("OK "))
    check("fetch: testing", d.ask("policy", "testing.sts.test"), "NOTFOUND ")
    for dom in ("enforce", "wildcard", "testing"):
        check_true(f"fetch: {dom} record written",
                   d.wait_log(f"state_dir: {dom}.sts.test: policy written"), d.log()[-800:])
    state = os.path.join(d.dir, "state")

    # Export while the daemon runs: allowed, read-only.
    rc, live, err = run("export", "-c", d.conf)
    check("export while the daemon runs: exit", rc, 0)
    check("export while the daemon runs: three records", len(live.splitlines()), 3)
    # Import while the daemon runs: refused with one line, nothing written.
    rc, out, err = run("import", "-c", d.conf, "-", stdin=live)
    check("import while the daemon runs: exit 2", rc, 2)
    check_true("import while the daemon runs: says why",
               "is in use by a running tlspolicyd" in err and err.count("\n") == 1, err)
    check("daemon exits cleanly", d.stop(), 0)

    # Export: one record a line, exactly today's fields, in domain order.
    rc, dump, err = run("export", "-c", d.conf)
    check("export: exit", rc, 0)
    recs = [json.loads(x) for x in dump.splitlines()]
    check("export: domains in order", [r["domain"] for r in recs],
          ["enforce.sts.test", "testing.sts.test", "wildcard.sts.test"])
    check("export: exactly the record's fields", [list(r) for r in recs], [FIELDS] * 3)
    check("export: enforce policy", (recs[0]["mode"], recs[0]["mx"]),
          ("enforce", ["mx1.enforce.sts.test", "*.backup.sts.test"]))
    check_true("export: summary on stderr", "exported 3, skipped 0" in err, err)

    # Export is read-only: a corrupt and an expired record (put into the store with LMDB's
    # own mdb_load) are reported, not removed.
    saved = os.path.join(scratch, "saved.mdb")
    shutil.copy2(os.path.join(state, "policies.mdb"), saved)
    now = int(time.time())
    mdb_load(os.path.join(state, "policies.mdb"),
             [("junk.test", "{not json"), ("old.test", line("old.test", now - 100000))])
    before = listing(state)
    rc, out, err = run("export", "-c", d.conf)
    check("export with bad records: exit", rc, 0)
    check("export with bad records: the same good ones", out, dump)
    check_true("export: corrupt record reported", "junk.test: not JSON; skipped" in err, err)
    check_true("export: expired record reported", "old.test: expired; skipped" in err, err)
    check("export: state_dir unchanged", listing(state), before)
    shutil.copy2(saved, os.path.join(state, "policies.mdb"))

    # Import into an empty state_dir (-o state_dir=), from a file: exact round trip.
    dumpfile = os.path.join(scratch, "dump.jsonl")
    with open(dumpfile, "w") as f:
        f.write(dump)
    fresh = os.path.join(scratch, "fresh")
    rc, out, err = run("import", "-c", d.conf, "-o", f"state_dir={fresh}", dumpfile)
    check("import file: exit", (rc, err), (0, ""))
    check("import file: summary", out, "imported 3, skipped 0\n")
    rc, again, err = run("export", "-c", d.conf, "-o", f"state_dir={fresh}")
    check("import file: export round-trips exactly", again, dump)
    owners = {(os.lstat(os.path.join(r, n)).st_uid) for r, ds, fs in os.walk(fresh)
              for n in ds + fs} | {os.lstat(fresh).st_uid}
    check("import as root: everything belongs to the daemon's user", owners, {NOBODY.pw_uid})

    # From stdin.
    piped = os.path.join(scratch, "piped")
    rc, out, err = run("import", "-c", d.conf, "-o", f"state_dir={piped}", "-", stdin=dump)
    check("import -: exit and summary", (rc, out), (0, "imported 3, skipped 0\n"))
    rc, again, err = run("export", "-c", d.conf, "-o", f"state_dir={piped}")
    check("import -: export round-trips exactly", again, dump)

    # Bad lines: each named with its line number and reason; the good ones imported.
    enf = recs[0]
    bad = [
        line("seed.test", now),                                           # 1 good
        "{not json",                                                      # 2
        json.dumps({k: v for k, v in enf.items() if k != "mx"}),          # 3
        line("mode.test", now, mode="strict"),                            # 4
        line("ctl.test", now, id="2026\u00011203"),                       # 5
        line("pattern.test", now, mx=["mx1.*.pattern.test"]),             # 6
        line("expired.test", now - 100000),                               # 7
        line("not a domain", now),                                        # 8
        "",                                                               # 9 blank: ignored
        line("seed.test", now - 60, id="older"),                          # 10 older than 1
        line("newer.test", now - 60),                                     # 11 good
        line("newer.test", now, id="newer"),                              # 12 good, newer
        json.dumps(dict(enf, domain="../../etc/cron.d/x")),               # 13
    ]
    mixed = os.path.join(scratch, "mixed")
    rc, out, err = run("import", "-c", d.conf, "-o", f"state_dir={mixed}", "-",
                       stdin="\n".join(bad) + "\n")
    check("bad lines: exit 1", rc, 1)
    check("bad lines: summary", out, "imported 3, skipped 9\n")
    want = {2: "not JSON", 3: "fields missing", 4: "mode", 5: "control character in id",
            6: "mx", 7: "expired.test: expired", 8: "not a normalised domain name",
            10: "seed.test: not newer than the stored record",
            13: "not a normalised domain name"}
    for n, reason in want.items():
        hit = [x for x in err.splitlines() if f"line {n}: " in x]
        check_true(f"bad lines: line {n} reported ({reason})",
                   len(hit) == 1 and reason in hit[0] and hit[0].endswith("; skipped"), err)
    check("bad lines: nothing else reported", len(err.splitlines()), len(want))
    rc, out, err = run("export", "-c", d.conf, "-o", f"state_dir={mixed}")
    got = {r["domain"]: r["id"] for r in map(json.loads, out.splitlines())}
    check("bad lines: the good ones stored, the newer wins", got,
          {"seed.test": "20261203", "newer.test": "newer"})

    # A daemon refuses to start while an import holds state_dir (stdin kept open).
    imp = subprocess.Popen([TLSPOLICYD, "state", "import", "-c", d.conf, "-o",
                            f"state_dir={fresh}", "-"], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    d3 = Daemon(conf_lines=STS_CONF, user="nobody", opts=[f"state_dir={fresh}"])
    try:
        try:
            d3.start()
            started = True
        except RuntimeError:
            started = False
        check("daemon during an import: refused", started, False)
        check_true("daemon during an import: says why",
                   'locked by a running "tlspolicyd state import"' in d3.log(), d3.log())
    finally:
        d3.stop()
        d3.cleanup()
    out, err = imp.communicate("", timeout=30)
    check("the held import ends cleanly", (imp.returncode, out), (0, "imported 0, skipped 0\n"))

    # A daemon on the imported state answers from it, with the policy host stopped.
    subprocess.run([os.environ["LAB_CTL"], "--https-stop"], check=True, timeout=30)
    d2 = Daemon(conf_lines=STS_CONF, user="nobody", opts=[f"state_dir={fresh}"])
    try:
        d2.start()
        check_true("imported state: stored", d2.wait_log("3 MTA-STS policies stored"),
                   d2.log()[-800:])
        check("imported state: enforce answered from it", d2.ask("policy", "enforce.sts.test"),
              "OK " + ENFORCE)
        check("imported state: no fetch", "enforce.sts.test: policy id" in d2.log(), False)
        rc, out, err = run("import", "-c", d.conf, "-o", f"state_dir={fresh}", dumpfile)
        check("import while that daemon runs: refused", rc, 2)
    finally:
        check("imported-state daemon exits cleanly", d2.stop(), 0)
        d2.cleanup()
        subprocess.run([os.environ["LAB_CTL"], "--https-start"], timeout=30)

    # Usage and configuration errors: exit 2, one line.
    for label, args in [("no verb", []), ("unknown verb", ["list"]),
                        ("import without a file", ["import"]),
                        ("export with an argument", ["export", "x"]),
                        ("state_dir empty", ["export", "-o", "state_dir="]),
                        ("state_dir missing", ["export", "-o",
                                               f"state_dir={scratch}/nothing-here"]),
                        ("input missing", ["import", "-o", f"state_dir={scratch}/n",
                                           f"{scratch}/no-such-file"])]:
        rc, out, err = run(*args)
        check(f"{label}: exit 2", rc, 2)
    check("missing input: state_dir not created", os.path.exists(f"{scratch}/n"), False)
finally:
    d.stop()
    d.cleanup()
    shutil.rmtree(scratch, ignore_errors=True)
finish()
