"""The LMDB store of state_dir (issue 12) inside the lab, with real daemons and commands:
-t names a store file that is a link or another user's; the per-file layout of an earlier version is migrated once (a bad file set aside, an expired
one dropped, the counts in one line) and answered from with the policy host stopped; a
garbage store file is set aside, reported in one line, and the daemon serves; kill -9 in
the middle of "state import" loses no committed batch (and leaves no half of one); kill -9
while the daemon writes under load loses no policy whose commit it logged: each is answered
from the store after the restart, with the policy hosts unreachable."""
import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from harness import TLSPOLICYD, Daemon, check, check_true, finish, mdb_entries

if "LAB_CA_FILE" not in os.environ:
    raise SystemExit("run me inside the lab: tests/lab/dnslab.sh python3 test_store.py")

CA = os.environ["LAB_CA_FILE"]
STS_CONF = ["requiretls_probe = no", f"sts_ca_file = {CA}", "sts_allow_private = yes",
            "sts_connect_timeout = 2s", "sts_fetch_timeout = 2s", "lookup_timeout = 6s"]
ENFORCE = "secure match=mx1.enforce.sts.test:.backup.sts.test servername=hostname"
NOBODY = pwd.getpwnam("nobody")
# The lab's sts.test cases whose policy is a valid one (tests/lab/README.md).
GOOD = ["enforce", "wildcard", "crlf", "split", "charset", "rotate"]


def line(domain, fetched, mx, **kw):
    rec = {"version": 1, "domain": domain, "id": "20261203", "fetched": fetched,
           "expires": fetched + 86400, "mode": "enforce", "max_age": 86400, "mx": mx}
    rec.update(kw)
    return json.dumps(rec, separators=(",", ":"))


def https(on):
    subprocess.run([os.environ["LAB_CTL"], "--https-start" if on else "--https-stop"],
                   check=True, timeout=30)


def give_to_nobody(path):
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            os.lchown(os.path.join(root, n), NOBODY.pw_uid, NOBODY.pw_gid)
    os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)


def state(*args, stdin=None, timeout=300):
    p = subprocess.run([TLSPOLICYD, "state", *args], capture_output=True, text=True,
                       input=stdin, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


# -t names a store file the daemon could not use, as start-up would.
d = Daemon(conf_lines=STS_CONF, user="nobody")
try:
    st = os.path.join(d.dir, "state")
    os.makedirs(st)
    give_to_nobody(st)
    os.symlink("/etc/passwd", os.path.join(st, "policies.mdb"))
    p = subprocess.run([TLSPOLICYD, "-t", "-c", d.conf], capture_output=True, text=True,
                       timeout=30)
    check("-t: store file a symbolic link: exit 1", p.returncode, 1)
    check_true("-t: one line naming it",
               "/state/policies.mdb is a symbolic link" in p.stderr and
               p.stderr.count("\n") == 1, p.stderr)
    os.unlink(os.path.join(st, "policies.mdb"))
    with open(os.path.join(st, "policies.mdb"), "w"):
        pass
    p = subprocess.run([TLSPOLICYD, "-t", "-c", d.conf], capture_output=True, text=True,
                       timeout=30)
    check("-t: store file of another user (root): exit 1", p.returncode, 1)
    check_true("-t: names the owner", "policies.mdb is owned by uid 0" in p.stderr, p.stderr)
finally:
    d.cleanup()

# Migration: sts/*.json of an earlier version moves into policies.mdb at the first start.
now = int(time.time())
d = Daemon(conf_lines=STS_CONF, user="nobody")
try:
    st = os.path.join(d.dir, "state")
    sts = os.path.join(st, "sts")
    os.makedirs(sts)
    files = {
        "enforce.sts.test.json": line("enforce.sts.test", now - 60,
                                      ["mx1.enforce.sts.test", "*.backup.sts.test"]),
        "wildcard.sts.test.json": line("wildcard.sts.test", now - 60, ["*.wildcard.sts.test"]),
        "junk.test.json": "{not json",
        "old.test.json": line("old.test", now - 100000, ["mx1.old.test"]),
        "half.test.json.tmp": "{\"version\":1,",
    }
    for name, text in files.items():
        with open(os.path.join(sts, name), "w") as f:
            f.write(text + "\n")
    give_to_nobody(st)
    https(False)
    try:
        d.start()
        check_true("migration: one line with the counts",
                   d.log().count("records moved") == 1 and
                   "2 records moved, 1 set aside, 1 expired and dropped" in d.log(),
                   d.log()[-800:])
        check_true("migration: the bad file named", "junk.test.json: not JSON; set aside as "
                   "junk.test.corrupt" in d.log(), d.log()[-800:])
        check("migration: only the set-aside file is left", sorted(os.listdir(sts)),
              ["junk.test.corrupt"])
        check("migration: enforce answered from the store, policy host down",
              d.ask("policy", "enforce.sts.test"), "OK " + ENFORCE)
        check("migration: wildcard answered from the store",
              d.ask("policy", "wildcard.sts.test"),
              "OK secure match=.wildcard.sts.test servername=hostname")
        check("migration: daemon exits cleanly", d.stop(), 0)
        # Idempotent: the next start finds nothing left to move and says nothing of it.
        d.start()
        check("migration: not run twice", d.log().count("records moved"), 1)
        check("migration: still answered", d.ask("policy", "enforce.sts.test"), "OK " + ENFORCE)
    finally:
        https(True)
    check("migration: second daemon exits cleanly", d.stop(), 0)
finally:
    d.cleanup()

# A garbage store file: set aside, one error line, a fresh store, and the daemon serves.
d = Daemon(conf_lines=STS_CONF, user="nobody")
try:
    st = os.path.join(d.dir, "state")
    os.makedirs(st)
    with open(os.path.join(st, "policies.mdb"), "wb") as f:
        f.write(os.urandom(100000))
    give_to_nobody(st)
    d.start()
    lines = [x for x in d.log().splitlines() if "set aside as policies.mdb.corrupt-" in x]
    check("corrupt store: one error line", len(lines), 1)
    check_true("corrupt store: the line says what and where",
               lines and " error: " in lines[0] and "/state/policies.mdb: mdb_env_open" in lines[0],
               d.log()[-600:])
    check("corrupt store: file set aside", len(glob.glob(os.path.join(st, "policies.mdb.corrupt-*"))), 1)
    check("corrupt store: the daemon serves", d.ask("policy", "enforce.sts.test"), "OK " + ENFORCE)
    check_true("corrupt store: and writes to the fresh store",
               d.wait_log("state_dir: enforce.sts.test: policy written"), d.log()[-600:])
    check("corrupt store: daemon exits cleanly", d.stop(), 0)
finally:
    d.cleanup()

# kill -9 during "state import": what mdb_stat shows committed is exactly a prefix of the
# input, whole batches of 1,000 lines; importing again completes it.
scratch = tempfile.mkdtemp(prefix="tlspolicyd-store-")
os.chmod(scratch, 0o755)
try:
    N = 100000
    src = os.path.join(scratch, "in.jsonl")
    with open(src, "w") as f:
        for i in range(N):
            f.write(line(f"d{i:06d}.example", now - 60, [f"mx{i % 3}.d{i:06d}.example"]) + "\n")
    with open(src) as f:
        want = f.read().splitlines(keepends=True)
    dest = os.path.join(scratch, "killed")
    db = os.path.join(dest, "policies.mdb")
    imp = subprocess.Popen([TLSPOLICYD, "state", "import", "-o", f"state_dir={dest}", "-o",
                            "user=nobody", src], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    seen, deadline = 0, time.time() + 120
    while time.time() < deadline and imp.poll() is None:
        # mdb_stat (root) must not be the one to create LMDB's lock file.
        if os.path.exists(db) and os.path.exists(db + "-lock"):
            seen = mdb_entries(db)
            if seen > 0:
                break
        time.sleep(0.005)
    imp.send_signal(signal.SIGKILL)
    imp.wait()
    got = mdb_entries(db)
    check_true("kill during import: killed after a batch committed and before the end",
               0 < seen <= got < N, f"seen {seen}, after the kill {got}")
    check("kill during import: whole batches only", got % 1000, 0)
    rc, out, err = state("export", "-o", f"state_dir={dest}", "-o", "user=nobody")
    check("kill during import: export exit", rc, 0)
    check_true("kill during import: the committed records are the input's first lines, "
               "byte for byte", out == "".join(want[:got]), f"{len(out)} bytes")
    rc, out, err = state("import", "-o", f"state_dir={dest}", "-o", "user=nobody", src)
    check("import again: summary", (rc, out), (1, f"imported {N - got}, skipped {got}\n"))
    rc, out, err = state("export", "-o", f"state_dir={dest}", "-o", "user=nobody")
    check_true("import again: export round-trips the whole input",
               out == "".join(want), f"{len(out)} bytes")
finally:
    shutil.rmtree(scratch, ignore_errors=True)

# kill -9 while the daemon writes under load: every domain whose commit was logged before
# the kill answers from the store after the restart, with the policy hosts unreachable.
d = Daemon(conf_lines=STS_CONF + ["max_connections = 200"], user="nobody")
try:
    d.start()
    stop = threading.Event()

    def load(dom):
        while not stop.is_set():
            try:
                d.ask("policy", f"{dom}.sts.test")
            except OSError:
                return

    threads = [threading.Thread(target=load, args=(dom,)) for dom in GOOD * 4]
    for t in threads:
        t.start()
    def written_domains():
        return sorted({x.split("state_dir: ")[1].split(":")[0] for x in d.log().splitlines()
                       if x.endswith(": policy written")})

    try:
        # Kill once at least four domains' commits are logged (bounded): later batches may
        # be under way at that instant, which is the point.
        deadline = time.time() + 30
        while len(written_domains()) < 4 and time.time() < deadline:
            time.sleep(0.005)
        committed = "writes committed" in d.log() or "write committed" in d.log()
    finally:
        d.kill9(stop, threads)
    check_true("kill under load: a batch committed before the kill", committed, d.log()[-600:])
    written = written_domains()
    check_true("kill under load: at least four domains reported committed", len(written) >= 4,
               d.log()[-600:])
    https(False)
    try:
        d.start()
        for dom in written:
            check_true(f"kill under load: {dom} answered from the store",
                       d.ask("policy", dom).startswith("OK secure match="), d.log()[-600:])
    finally:
        https(True)
    check("kill under load: restarted daemon exits cleanly", d.stop(), 0)
finally:
    d.cleanup()
finish()
