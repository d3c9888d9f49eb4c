"""Local faults (issue 14), with real components inside the lab: state_dir on a tiny tmpfs
that fills up (ENOSPC) and a store at state_max_size (MDB_MAP_FULL); state_dir made
read-only (a read-only bind mount) while the daemon runs and at its restart; the store file
corrupted while the daemon runs and at its restart; SIGKILL while writes fail under load;
descriptors exhausted (prlimit on the running daemon) while lookups arrive, so that neither
c-ares nor libcurl can open a socket and accept() fails; too few descriptors at start.

After each fault: every answer is the engine table's (SPEC 4), never weaker: a policy in
memory answers as before, what needs our disk, DNS socket or fetch socket answers TEMP, never
"no policy"; the log says what happened in one line per fault (and one when it is over); the
daemon recovers by itself, within a bounded time, once the fault is removed.

Run inside the lab with DNSLAB_EXTRA_RECORDS=faults_local.records (tests/CMakeLists.txt)."""
import glob
import os
import pwd
import signal
import socket
import subprocess
import threading
import time

from harness import (TLSPOLICYD, Daemon, check, check_true, finish, free_port, mdb_entries,
                     netstring, read_netstring)

if "LAB_CA_FILE" not in os.environ:
    raise SystemExit("run me inside the lab: tests/lab/dnslab.sh python3 test_faults_local.py")

CA = os.environ["LAB_CA_FILE"]
STS_CONF = ["requiretls_probe = no", f"sts_ca_file = {CA}", "sts_allow_private = yes",
            "sts_connect_timeout = 2s", "sts_fetch_timeout = 2s", "lookup_timeout = 6s",
            "sts_fail_ttl = 1s", "dns_min_ttl = 0"]
NOBODY = pwd.getpwnam("nobody")
DANE = ("dane-all.test", "OK dane-only")
ENFORCE = ("enforce.sts.test",
           "OK secure match=mx1.enforce.sts.test:.backup.sts.test servername=hostname")
WILDCARD = ("wildcard.sts.test", "OK secure match=.wildcard.sts.test servername=hostname")
NOPOLICY = ("notxt.sts.test", "NOTFOUND ")
# The lab's valid policies (tests/lab/README.md), each "OK secure match=..." when fetched.
GOOD = ["enforce", "wildcard", "crlf", "split", "charset", "rotate"]


def sh(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=60)


def https(on):
    sh(os.environ["LAB_CTL"], "--https-start" if on else "--https-stop")


def tmpfs(path, size):
    """A tmpfs of size at path (the lab's own mount namespace: gone when the lab ends)."""
    os.makedirs(path, exist_ok=True)
    sh("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", path)


def umount(path):
    sh("umount", path, check=False)


def errors(d, since=0):
    """The error lines the daemon logged after byte offset since."""
    return [x for x in d.log()[since:].splitlines() if ": error: " in x]


def until(fn, timeout):
    """fn() until it is true, for at most timeout seconds (polled every 50 ms)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if fn():
            return True
        time.sleep(0.05)
    return fn()


def warm(d, label):
    for dom, want in (DANE, ENFORCE, NOPOLICY):
        check(f"{label}: {dom} before the fault", d.ask("policy", dom), want)


def fill(path):
    """Write zeros to path until its file system is full (ENOSPC), to the last byte."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def still_right(d, label, sock=None):
    """The domains warmed up answer exactly as before (from memory)."""
    for dom, want in (DANE, ENFORCE, NOPOLICY):
        check(f"{label}: {dom} answered as before", d.ask("policy", dom, sock), want)


# ---- state_dir full: ENOSPC on a 2 MiB tmpfs, then room again -------------------------------
d = Daemon(conf_lines=STS_CONF, user="nobody")
st = os.path.join(d.dir, "state")
try:
    tmpfs(st, "2m")
    d.start()
    warm(d, "enospc")
    check_true("enospc: the enforce policy committed",
               d.wait_log("state_dir: enforce.sts.test: policy written"), d.log()[-400:])
    # Fill the file system to the last byte.
    filler = os.path.join(st, "filler")
    fill(filler)
    try:
        with open(filler, "ab") as f:
            while True:
                f.write(b"\0" * 512)
                f.flush()
    except OSError:
        pass
    mark = len(d.log())
    for dom in ("wildcard", "crlf", "split"):
        check(f"enospc: {dom}.sts.test fetched and answered with the disk full",
              d.ask("policy", f"{dom}.sts.test").startswith("OK secure match="), True)
    check_true("enospc: the write failure logged",
               d.wait_log("No space left on device"), d.log()[mark:][-800:])
    still_right(d, "enospc")
    # Writes are tried again (1, 2, 4 s): let two retries fail, then count the lines.
    time.sleep(3.5)
    lines = [x for x in errors(d, mark) if "not committed" in x]
    check("enospc: one error line for the fault, not one per write or retry", len(lines), 1)
    check_true("enospc: the line says what and that the policies stay",
               lines and "No space left on device" in lines[0] and "stay in memory" in lines[0],
               lines)
    check("enospc: nothing else logged at error", len(errors(d, mark)), 1)
    os.unlink(filler)
    check_true("enospc: writes commit again without a restart, one line",
               d.wait_log("writes commit again", timeout=8) and
               d.log().count("writes commit again") == 1, d.log()[mark:][-800:])
    check_true("enospc: the held policies reach the store",
               until(lambda: all(f"state_dir: {x}.sts.test: policy written" in d.log()
                                 for x in ("wildcard", "crlf", "split")), 5), d.log()[-800:])
    check("enospc: the store holds all four policies", mdb_entries(os.path.join(st, "policies.mdb")), 4)

    # ---- SIGKILL while writes fail under load; restart once the disk has room ---------------
    fill(filler)
    stop = threading.Event()
    bad = []

    def load(dom):
        while not stop.is_set():
            try:
                got = d.ask("policy", dom)
            except OSError:
                return
            if got is not None and not got.startswith("OK secure match="):
                bad.append((dom, got))

    mark = len(d.log())
    threads = [threading.Thread(target=load, args=(f"{dom}.sts.test",)) for dom in GOOD * 3]
    for t in threads:
        t.start()
    try:
        check_true("kill: writes failing under load",
                   until(lambda: "charset.sts.test" in d.log()[mark:] and
                         "rotate.sts.test" in d.log()[mark:] and
                         "not committed" in d.log()[mark:], 15), d.log()[mark:][-800:])
    finally:
        d.kill9(stop, threads)
    check("kill: every answer under load was the policy", bad, [])
    os.unlink(filler)
    https(False)
    try:
        d.start()
        # Committed before the kill: answered from the store with the policy hosts down.
        for dom, want in (ENFORCE, WILDCARD):
            check(f"kill: {dom} answered from the store after the restart",
                  d.ask("policy", dom), want)
        # Never committed (the disk was full): not in the store, so a fresh lookup, which
        # with the policy hosts down finds no policy: what RFC 8461 says for a first fetch.
        check("kill: charset.sts.test, never committed, is looked up afresh",
              d.ask("policy", "charset.sts.test"), "NOTFOUND ")
    finally:
        https(True)
    check("kill: restarted daemon exits cleanly", d.stop(), 0)

    # ---- state_dir read-only (a read-only bind mount) while the daemon runs, and at restart --
    d.start()
    mark = len(d.log())
    sh("mount", "--bind", st, st)
    sh("mount", "-o", "remount,bind,ro", st)
    try:
        check_true("read-only: state_dir cannot be written now",
                   sh("sh", "-c", f"touch {st}/x", check=False).returncode != 0)
        # The store's files were opened before: LMDB keeps writing through them.
        check("read-only: split.sts.test answered", d.ask("policy", "split.sts.test"),
              "OK secure match=mx1.split.sts.test servername=hostname")
        check_true("read-only: its record still committed through the open file",
                   d.wait_log("state_dir: split.sts.test: policy written"), d.log()[-600:])
        still_right(d, "read-only")
        check("read-only: nothing logged at error while running", errors(d, mark), [])
        check("read-only: daemon exits cleanly", d.stop(), 0)
        # A start cannot open the store read-write: it refuses, in one line, and never
        # serves without the policies it holds.
        p = subprocess.run([TLSPOLICYD, "-c", d.conf], capture_output=True, text=True,
                           timeout=30)
        check("read-only: a start is refused", p.returncode, 1)
        fatal = [x for x in p.stderr.splitlines() if "fatal" in x or ": error: " in x]
        check_true("read-only: one line naming the read-only file system",
                   len(fatal) == 1 and "policies.mdb: mdb_env_open: Read-only file system"
                   in fatal[0], p.stderr)
    finally:
        umount(st)
    d.start()
    check("read-only: after the mount is gone, the daemon starts and answers from the store",
          d.ask("policy", "split.sts.test"),
          "OK secure match=mx1.split.sts.test servername=hostname")
    check("read-only: daemon exits cleanly again", d.stop(), 0)
finally:
    d.cleanup()
    umount(st)

# ---- state_max_size met: MDB_MAP_FULL, then a reload with a larger bound -----------------
def record(i, now):
    return (f'{{"version":1,"domain":"d{i:05d}.example","id":"20261203","fetched":{now - 60},'
            f'"expires":{now - 60 + 86400},"mode":"enforce","max_age":86400,'
            f'"mx":["mx.d{i:05d}.example"]}}\n')


def fill_store(sdir, conf):
    """Import records into sdir until not one more fits under state_max_size (1M): whole
    batches first, then fewer and fewer lines, down to one. Returns the records stored and
    the (status, stderr) of each import that did not take all its lines."""
    now = int(time.time())
    refused = []
    path = os.path.join(os.path.dirname(sdir), "fill.jsonl")
    i, step = 0, 4096
    while step >= 1:
        with open(path, "w") as f:
            f.write("".join(record(j, now) for j in range(i, i + step)))
        p = subprocess.run([TLSPOLICYD, "state", "import", "-c", conf, path],
                           capture_output=True, text=True, timeout=120)
        if f"imported {step}," in p.stdout:
            i += step
        else:
            refused.append((p.returncode, p.stderr))
            step //= 4
    return i, refused


d = Daemon(conf_lines=STS_CONF + ["state_max_size = 1M"], user="nobody")
st = os.path.join(d.dir, "state")
try:
    stored, refused = fill_store(st, d.conf)
    check_true("map full: the store filled to state_max_size", stored > 1000, stored)
    # An import that meets the bound names it (not LMDB's MDB_BAD_TXN for the lines after),
    # in one line, stops, and exits 2.
    check_true("map full: import refused at the bound", len(refused) > 0, refused)
    check_true("map full: import says state_max_size reached, once, exit 2",
               all(rc == 2 and "MDB_MAP_FULL" in err
                   and err.count("(state_max_size reached)") == 1
                   and "records not imported" in err and "MDB_BAD_TXN" not in err
                   for rc, err in refused), refused)
    d.start()
    mark = len(d.log())
    warm(d, "map full")
    for dom in ("wildcard", "crlf", "rotate"):
        check(f"map full: {dom}.sts.test answered with the store full",
              d.ask("policy", f"{dom}.sts.test").startswith("OK secure match="), True)
    check_true("map full: MDB_MAP_FULL logged", d.wait_log("MDB_MAP_FULL"), d.log()[-600:])
    time.sleep(2.5)
    lines = [x for x in errors(d, mark)]
    check("map full: one error line, not one per write or retry", len(lines), 1)
    check_true("map full: it names state_max_size",
               lines and "state_max_size reached" in lines[0], lines)
    still_right(d, "map full")
    # The fix without a restart: a larger bound, and SIGHUP.
    with open(d.conf) as f:
        text = f.read()
    with open(d.conf, "w") as f:
        f.write(text.replace("state_max_size = 1M", "state_max_size = 2M"))
    d.signal(signal.SIGHUP)
    check_true("map full: the reload applies the new bound",
               d.wait_log("state_max_size now 2 MiB"), d.log()[mark:][-600:])
    check_true("map full: the held policies are written at once",
               until(lambda: all(f"state_dir: {x}.sts.test: policy written" in d.log()
                                 for x in ("wildcard", "crlf", "rotate")), 5), d.log()[-800:])
    check("map full: still the one error line", len(errors(d, mark)), 1)
    check_true("map full: a line says writes commit again", "writes commit again" in d.log())
    check("map full: every record is there",
          mdb_entries(os.path.join(st, "policies.mdb")), stored + 4)
    check("map full: daemon exits cleanly", d.stop(), 0)
finally:
    d.cleanup()


# ---- descriptors exhausted: prlimit on the running daemon --------------------------------
def lowest_free_fd(pid):
    used = {int(x) for x in os.listdir(f"/proc/{pid}/fd")}
    n = 0
    while n in used:
        n += 1
    return n


def nofile(pid):
    with open(f"/proc/{pid}/limits") as f:
        for x in f:
            if x.startswith("Max open files"):
                return x.split()[3], x.split()[4]
    return None


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


MPORT = free_port()
d = Daemon(conf_lines=STS_CONF + [f"metrics_listen = inet:127.0.0.1:{MPORT}"], user="nobody")
try:
    d.start()
    pid = d.proc.pid
    warm(d, "fds")
    # notfound: the policy host answers 404 (no policy, remembered 1 s; its DNS answers stay
    # cached 60 s). shortttl: DANE facts (an insecure MX) for 60 s, its TXT record for 1 s.
    check("fds: notfound.sts.test before", d.ask("policy", "notfound.sts.test"), "NOTFOUND ")
    check("fds: shortttl.sts.test before", d.ask("policy", "shortttl.sts.test"), "NOTFOUND ")
    conn = d.connect()
    check("fds: a connection held open", d.ask("policy", DANE[0], conn), DANE[1])
    time.sleep(1.5)  # the remembered failures and shortttl's TXT record expire
    soft, hard = nofile(pid)
    limit = lowest_free_fd(pid)
    mark = len(d.log())
    # The soft limit only, and as the daemon's own user: lowering and raising it back needs
    # no capability (the container may lack CAP_SYS_RESOURCE).
    as_nobody = ["setpriv", f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}",
                 "--clear-groups", "prlimit", f"--pid={pid}"]
    sh(*as_nobody, f"--nofile={limit}:{hard}")
    try:
        still_right(d, "fds: cached", conn)
        # A fetch whose DNS answers are cached: libcurl cannot open its socket.
        check("fds: notfound.sts.test: no socket for the fetch: TEMP, not no policy",
              d.ask("policy", "notfound.sts.test", conn).startswith("TEMP "), True)
        # DANE facts cached, the TXT query needs a socket c-ares cannot open.
        got = d.ask("policy", "shortttl.sts.test", conn)
        check_true("fds: shortttl.sts.test: no socket for the TXT query: TEMP, not no policy",
                   got.startswith("TEMP "), got)
        got = d.ask("policy", "dane-mixed.test", conn)
        check_true("fds: dane-mixed.test, nothing cached: TEMP", got.startswith("TEMP "), got)
        got = d.ask("requiretls", "notfound.sts.test", conn)
        check_true("fds: requiretls for notfound.sts.test: TEMP (a deferral, not 5.7.10)",
                   got.startswith("TEMP ") and "5.7.10" not in got, got)
        # A lasting fault is not a fetch per lookup: 10 lookups in half a second, at most one
        # attempt per second (1, 2, then 4 s apart).
        before = d.log().count("notfound.sts.test: policy fetch from")
        for _ in range(10):
            check("fds: notfound.sts.test still TEMP",
                  d.ask("policy", "notfound.sts.test", conn)[:5], "TEMP ")
            time.sleep(0.05)
        tries = d.log().count("notfound.sts.test: policy fetch from") - before
        check_true("fds: at most 2 fetch attempts for 10 lookups", tries <= 2, tries)
        # New clients: accepted and closed at once (libuv's reserve descriptor), and the
        # loop does not spin on accept().
        t0 = cpu_s(pid)
        dropped = 0
        for _ in range(30):
            try:
                s = d.connect(timeout=2)
                s.sendall(b"19:policy dane-all.test,")
                if s.recv(100) == b"":
                    dropped += 1
                s.close()
            except OSError:
                dropped += 1
        rc, out, err = d.postmap(DANE[0], "policy")
        check_true("fds: postmap gets no answer from a dropped connection",
                   rc != 0 and out == "", (rc, out, err))
        time.sleep(1.2)
        used = cpu_s(pid) - t0
        check("fds: new connections closed unanswered", dropped, 30)
        check_true("fds: no busy loop (CPU over the 31 connections and 1.2 s idle < 0.6 s)",
                   used < 0.6, used)
        still_right(d, "fds: still", conn)
        lines = errors(d, mark)
        check("fds: one line for the shortage",
              sum("out of file descriptors" in x for x in lines), 1)
        check_true("fds: one line per domain's fault, none per lookup or attempt",
                   sum("notfound.sts.test" in x for x in lines) == 1 and
                   sum("shortttl.sts.test" in x for x in lines) == 1 and len(lines) <= 4,
                   lines)
        check_true("fds: the TXT fault named as ours",
                   any("shortttl.sts.test" in x and "local fault: cannot open a DNS socket" in x
                       for x in lines), lines)
    finally:
        sh(*as_nobody, f"--nofile={soft}:{hard}")
    check_true("fds: one line when descriptors are back",
               d.wait_log("file descriptors are available again", timeout=3) and
               d.log().count("file descriptors are available again") == 1, d.log()[mark:][-600:])
    # Recovery by itself, within the backoff (at most 4 s).
    for dom, want in (("notfound.sts.test", "NOTFOUND "), ("shortttl.sts.test", "NOTFOUND "),
                      ("dane-mixed.test", "OK dane")):
        check_true(f"fds: {dom} recovers: {want!r}",
                   until(lambda: d.ask("policy", dom, conn) == want, 6), d.log()[-600:])
    check("fds: new connections served again", d.ask("policy", DANE[0]), DANE[1])
    check_true("fds: the local fault of notfound.sts.test ends with one line",
               d.log().count("notfound.sts.test: the local fault is over") == 1, d.log()[-800:])
    # No descriptor at all (the soft limit below every descriptor the daemon holds): libuv's
    # reserve cannot shed a new client, nor can ours; libuv would call accept() again at
    # once, for ever. The listener pauses instead, the client waits in the backlog; so does
    # the metrics endpoint with a scrape waiting (before, that scrape spun the loop at 100%
    # CPU and the daemon served nothing until a descriptor was free).
    mark = len(d.log())
    sh(*as_nobody, f"--nofile=3:{hard}")
    try:
        waiting = d.connect(timeout=10)
        waiting.sendall(netstring(b"policy " + DANE[0].encode()))
        scrape = socket.create_connection(("127.0.0.1", MPORT), timeout=10)
        scrape.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        time.sleep(0.5)
        t0 = cpu_s(pid)
        check("fds: none at all: the held connection is still served",
              d.ask("policy", ENFORCE[0], conn), ENFORCE[1])
        time.sleep(1.0)
        used = cpu_s(pid) - t0
        check_true("fds: none at all: no busy loop (CPU over 1 s < 0.5 s)", used < 0.5, used)
        for ep in (f"unix:{d.sock}", f"inet:127.0.0.1:{MPORT}"):
            check(f"fds: none at all: {ep} pauses, in one line",
                  d.log()[mark:].count(f"{ep}: not accepting connections until a descriptor "
                                       "is free"), 1)
    finally:
        sh(*as_nobody, f"--nofile={soft}:{hard}")
    for ep in (f"unix:{d.sock}", f"inet:127.0.0.1:{MPORT}"):
        check_true(f"fds: none at all: {ep} accepting again once the limit is raised",
                   d.wait_log(f"{ep}: accepting connections again", timeout=3),
                   d.log()[mark:][-600:])
    got = read_netstring(waiting, 5)
    check("fds: the client that waited in the backlog is answered",
          got.decode() if got else got, DANE[1])
    waiting.close()
    reply = b""
    try:
        while chunk := scrape.recv(65536):
            reply += chunk
    except OSError:
        pass
    scrape.close()
    check_true("fds: the scrape that waited is answered (200, the metrics)",
               reply.startswith(b"HTTP/1.1 200 ") and b"tlspolicyd_lookups_total" in reply,
               reply[:200])
    check("fds: and new clients too", d.ask("policy", DANE[0]), DANE[1])
    conn.close()
    check("fds: daemon exits cleanly", d.stop(), 0)
finally:
    d.cleanup()


# ---- descriptors short at start: a low open file limit before the daemon starts -----------
# Below about 16 descriptors libuv used to abort while it made the loop, or the loop was NULL
# and the daemon crashed, without a word; below 32 it now refuses in one line (fdwatch.h).
def refused(cmd, want_rc, label):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    said = [x for x in p.stderr.splitlines() if "open file limit" in x]
    check(f"{label}: exit status", p.returncode, want_rc)
    check(f"{label}: one line names the limit, the floor and how to raise it", len(said), 1)
    check_true(f"{label}: ... in those words",
               said and said[0].endswith("open file limit 8 (hard limit 8) is below the 32 "
                                         "descriptors tlspolicyd needs to start; raise it "
                                         "(LimitNOFILE=, ulimit -n)"), p.stderr[-600:])
    check_true(f"{label}: no crash, no sanitizer report",
               p.returncode >= 0 and "Sanitizer" not in p.stderr and "runtime error" not in p.stderr,
               p.stderr[-600:])


d = Daemon(conf_lines=STS_CONF, user="nobody")
try:
    refused(["prlimit", "--nofile=8", TLSPOLICYD, "-c", d.conf], 1, "fds at start: daemon")
    check_true("fds at start: no socket file left behind", not os.path.exists(d.sock))
    refused(["prlimit", "--nofile=8", TLSPOLICYD, "query", "-c", d.conf, DANE[0]], 2,
            "fds at start: tlspolicyd query")
    refused(["prlimit", "--nofile=8", TLSPOLICYD, "state", "export", "-c", d.conf], 2,
            "fds at start: tlspolicyd state export")
    # A soft limit under the floor with a hard one above it: raised to the hard one, and served.
    with open(d.log_path, "ab") as logf:
        proc = subprocess.Popen(["prlimit", "--nofile=8:4096", TLSPOLICYD, "-c", d.conf],
                                stdout=logf, stderr=logf)
    try:
        check_true("fds at start: a soft limit of 8 under a hard one of 4096: it starts",
                   d.wait_log(" ready;", timeout=15), d.log()[-600:])
        check("fds at start: its soft limit raised to the hard one", nofile(proc.pid),
              ("4096", "4096"))
        check("fds at start: and it answers", d.ask("policy", DANE[0]), DANE[1])
    finally:
        proc.send_signal(signal.SIGTERM)
        check("fds at start: daemon exits cleanly", proc.wait(timeout=20), 0)
finally:
    d.cleanup()


# ---- the store file corrupted while the daemon runs, and at its restart -------------------
d = Daemon(conf_lines=STS_CONF + ["sts_cache_size = 3"], user="nobody")
st = os.path.join(d.dir, "state")
db = os.path.join(st, "policies.mdb")
try:
    d.start()
    # Each commit before the next fetch: a policy whose write is pending is never evicted,
    # so which ones the cache keeps would otherwise depend on how fast the disk is.
    for i, dom in enumerate(GOOD[:4]):
        check(f"corrupt: {dom}.sts.test fetched",
              d.ask("policy", f"{dom}.sts.test").startswith("OK secure match="), True)
        check_true(f"corrupt: {dom}.sts.test committed",
                   until(lambda: d.log().count(": policy written") >= i + 1, 10), d.log()[-600:])
    # The cache (3 MTA-STS entries) now holds enforce, notxt and split: wildcard and crlf
    # were evicted, and are read from the store when asked again.
    warm(d, "corrupt")
    mark = len(d.log())
    # An administrator's "> policies.mdb": every page past the end would fault (SIGBUS).
    os.truncate(db, 0)
    for dom in ("wildcard", "crlf", "charset"):
        got = d.ask("policy", f"{dom}.sts.test")
        check_true(f"corrupt: truncated: {dom}.sts.test, not in memory: TEMP, not no policy",
                   got.startswith("TEMP ") and "cannot be read" in got, got)
    check("corrupt: truncated: DANE still answered", d.ask("policy", DANE[0]), DANE[1])
    still_right(d, "corrupt: truncated")
    # Overwritten in place, header and all.
    with open(db, "wb") as f:
        f.write(b"\x41" * 65536)
    for dom in ("wildcard", "rotate"):
        got = d.ask("policy", f"{dom}.sts.test")
        check_true(f"corrupt: overwritten: {dom}.sts.test: TEMP", got.startswith("TEMP "), got)
    check_true("corrupt: the daemon is still running", d.proc.poll() is None)
    lines = errors(d, mark)
    check_true("corrupt: one error line while it lasts, not one per lookup",
               len(lines) == 1 and "state_dir cannot be read" in lines[0], lines)
    check("corrupt: daemon exits cleanly", d.stop(), 0)
    # At the restart the file is set aside, in one line, and the daemon serves.
    mark = len(d.log())
    d.start()
    check_true("corrupt: restart: set aside in one line",
               d.log()[mark:].count("set aside as policies.mdb.corrupt-") == 1 and
               len(glob.glob(db + ".corrupt-*")) == 1, d.log()[mark:][-600:])
    check("corrupt: restart: enforce fetched again", d.ask("policy", ENFORCE[0]), ENFORCE[1])
    check_true("corrupt: restart: and written to the fresh store",
               d.wait_log("state_dir: enforce.sts.test: policy written"), d.log()[-600:])
    check("corrupt: restart: daemon exits cleanly", d.stop(), 0)
finally:
    d.cleanup()

finish()
