"""The fleet tier (issue 13) inside the lab: three daemons sharing one real redis-server
started here (two on its unix socket, one on a loopback TCP port; AUTH as an ACL user from
a 0600 file read before the switch to nobody). A policy fetched by one is answered by the
others with the policy hosts stopped; 30 concurrent cold lookups of one domain spread over
the three cause exactly one fetch (nginx's access log); corrupted values and a record under
another domain's key are refused, logged and replaced; Redis killed and restarted while
lookups run: every answer right, the daemons reconnect by themselves; Redis stopped with
SIGSTOP: every answer within lookup_timeout; /metrics through promtool."""
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

from harness import Daemon, check, check_true, finish, free_port

if "LAB_CA_FILE" not in os.environ:
    raise SystemExit("run me inside the lab: tests/lab/dnslab.sh python3 test_fleet.py")

CA = os.environ["LAB_CA_FILE"]
LOOKUP_TIMEOUT = 3.0
ENFORCE = "OK secure match=mx1.enforce.sts.test:.backup.sts.test servername=hostname"
WILDCARD = "OK secure match=.wildcard.sts.test servername=hostname"
CRLF = "OK secure match=mx1.crlf.sts.test servername=hostname"
ACCESS_LOG = os.path.join(os.environ["LAB_DIR"], "nginx-access.log")
PREFIX = "fleet-test:"

tmp = tempfile.mkdtemp(prefix="tlspolicyd-fleet-")
os.chmod(tmp, 0o755)
rsock = os.path.join(tmp, "redis.sock")
rport = free_port()
auth = os.path.join(tmp, "redis.auth")
with open(auth, "w") as f:
    f.write("tlsp s3cret-for-the-fleet\n")
os.chmod(auth, 0o600)
with open(os.path.join(tmp, "redis.conf"), "w") as f:
    f.write(f"port {rport}\nbind 127.0.0.1\nunixsocket {rsock}\nunixsocketperm 777\n"
            f"dir {tmp}\nsave \"\"\nappendonly no\ndaemonize no\nlogfile {tmp}/redis.log\n"
            "user default off\n"
            f"user tlsp on >s3cret-for-the-fleet ~{PREFIX}* +@all\n")
redis = None


def redis_start():
    global redis
    redis = subprocess.Popen(["redis-server", os.path.join(tmp, "redis.conf")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        if os.path.exists(rsock) and rcli("PING") == "PONG":
            return
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def rcli(*args, stdin=None):
    """redis-cli; with stdin, its text is the command's last argument (-x), for values
    longer than the kernel takes as one argument."""
    p = subprocess.run(["redis-cli", "-s", rsock, "--user", "tlsp", "--pass",
                        "s3cret-for-the-fleet", "--no-auth-warning",
                        *(["-x"] if stdin is not None else []), *args],
                       input=stdin, capture_output=True, text=True, timeout=10)
    return p.stdout.rstrip("\n")


def fetches(domain):
    try:
        with open(ACCESS_LOG) as f:
            return sum(1 for line in f if f"mta-sts.{domain} " in line)
    except FileNotFoundError:
        return 0


def wait_for(cond, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def timed_ask(d, domain):
    t0 = time.monotonic()
    ans = d.ask("policy", domain)
    return ans, time.monotonic() - t0


conf = ["requiretls_probe = yes", "probe_timeout = 2s", f"sts_ca_file = {CA}", "sts_allow_private = yes",
        "sts_connect_timeout = 1s", "sts_fetch_timeout = 1s", "dns_timeout = 1s",
        f"lookup_timeout = {int(LOOKUP_TIMEOUT)}s", f"redis_auth_file = {auth}",
        f"redis_prefix = {PREFIX}", "redis_timeout = 300ms"]
metrics_port = free_port()
daemons = [Daemon(conf_lines=conf + [f"redis = unix:{rsock}",
                                     f"metrics_listen = inet:127.0.0.1:{metrics_port}"],
                  user="nobody"),
           Daemon(conf_lines=conf + [f"redis = unix:{rsock}"], user="nobody"),
           Daemon(conf_lines=conf + [f"redis = inet:127.0.0.1:{rport}"], user="nobody")]
a, b, c = daemons
try:
    redis_start()
    # -t reads the auth file; a file others may read is refused.
    os.chmod(auth, 0o644)
    p = subprocess.run([os.environ.get("TLSPOLICYD", os.path.join(os.environ["TLSPOLICYD_BUILD"],
                                                                  "tlspolicyd")),
                        "-t", "-c", a.conf], capture_output=True, text=True, timeout=30)
    check_true("-t: an auth file others can read is refused",
               p.returncode != 0 and "lets others read it; chmod 600" in p.stderr, p.stderr)
    os.chmod(auth, 0o600)
    for d in daemons:
        d.start()
    for i, d in enumerate(daemons):
        check_true(f"daemon {i}: connected and authenticated to Redis as nobody's daemon",
                   d.wait_log("connected, authenticated"), d.log()[-600:])

    # A policy fetched by one daemon is answered by the others with the policy hosts stopped.
    check("shared: daemon 0 fetches enforce", a.ask("policy", "enforce.sts.test"), ENFORCE)
    check_true("shared: the record reaches Redis",
               wait_for(lambda: '"domain":"enforce.sts.test"' in rcli("GET", PREFIX + "sts:enforce.sts.test")))
    ttl = int(rcli("TTL", PREFIX + "sts:enforce.sts.test") or -1)
    check_true("shared: the record expires with the policy (max_age 86400)",
               86000 < ttl <= 86400, str(ttl))
    subprocess.run([os.environ["LAB_CTL"], "--https-stop"], check=True, timeout=30)
    check("shared: daemon 1 answers with the policy hosts stopped",
          b.ask("policy", "enforce.sts.test"), ENFORCE)
    check("shared: daemon 2 (TCP) answers with the policy hosts stopped",
          c.ask("policy", "enforce.sts.test"), ENFORCE)
    check_true("shared: daemon 1 says where the policy came from",
               "mta-sts: enforce.sts.test: policy id 20261129 from the fleet" in b.log(),
               b.log()[-600:])
    subprocess.run([os.environ["LAB_CTL"], "--https-start"], check=True, timeout=30)
    check("shared: one fetch in all", fetches("enforce.sts.test"), 1)

    # A REQUIRETLS probe result is shared: daemon 1 answers from daemon 0's probe with the
    # SMTP peers stopped (a probe of its own would fail); a corrupted result is refused.
    first = a.ask("requiretls", "rtls-dane.test")
    check_true("probe: daemon 0 probes rtls-dane.test", first.startswith("OK "), first)
    keys = lambda: rcli("--scan", "--pattern", PREFIX + "rtls:*").split()
    check_true("probe: the result reaches Redis", wait_for(lambda: len(keys()) == 1), str(keys()))
    pkey = keys()[0] if keys() else PREFIX + "rtls:none"
    check_true("probe: written with its key and probe_ttl",
               rcli("GET", pkey).startswith("tlspolicyd-probe 1 " + pkey[len(PREFIX) + 5:]) and
               3500 < int(rcli("TTL", pkey) or -1) <= 3600, rcli("GET", pkey))
    subprocess.run([os.environ["LAB_CTL"], "--smtp-stop"], check=True, timeout=30)
    check("probe: daemon 1 answers from the fleet with the SMTP peers stopped",
          b.ask("requiretls", "rtls-dane.test"), first)
    check_true("probe: daemon 1 says so", "result from the fleet" in b.log(), b.log()[-600:])
    subprocess.run([os.environ["LAB_CTL"], "--smtp-start"], check=True, timeout=30)
    # The right key, but REQUIRETLS and PKIX claimed without a TLS session.
    now = int(time.time())
    rcli("SET", pkey, f"tlspolicyd-probe 1 {pkey[len(PREFIX) + 5:]} {now} {now + 3600} "
         "1100110 1 0 - - 1 forged")
    check("probe: a corrupted result does not change the answer",
          c.ask("requiretls", "rtls-dane.test"), first)
    check_true("probe: the corrupted result is refused and logged",
               c.wait_log("shared result refused: an authenticated or REQUIRETLS result without TLS"),
               c.log()[-600:])
    check_true("probe: and replaced by daemon 2's own probe",
               wait_for(lambda: rcli("GET", pkey).startswith("tlspolicyd-probe 1 ") and
                        "forged" not in rcli("GET", pkey)), rcli("GET", pkey))

    # 30 concurrent cold lookups of one domain over the three daemons: one fetch.
    before = fetches("wildcard.sts.test")
    answers = [None] * 30

    def one(i):
        answers[i] = daemons[i % 3].ask("policy", "wildcard.sts.test")
    threads = [threading.Thread(target=one, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    check("burst: 30 right answers", answers, [WILDCARD] * 30)
    time.sleep(0.3)
    check("burst: exactly one fetch across the fleet", fetches("wildcard.sts.test") - before, 1)
    # The two daemons that did not fetch took the record from Redis (found at once, or after
    # waiting for the lock holder: which one depends on timing).
    check("burst: the other two daemons took the policy from the fleet",
          sum("mta-sts: wildcard.sts.test: policy id 20261129 from the fleet" in d.log()
              for d in daemons), 2)

    # A corrupted value is refused, logged and replaced; so is a record under another key.
    rcli("SET", PREFIX + "sts:testing.sts.test", "{not json")
    good = rcli("GET", PREFIX + "sts:enforce.sts.test")
    rcli("SET", PREFIX + "sts:split.sts.test", good)
    check("corrupt: answer as a fresh resolution gives", b.ask("policy", "testing.sts.test"),
          "NOTFOUND ")
    check_true("corrupt: refused and logged",
               b.wait_log("testing.sts.test: shared record refused: not JSON"), b.log()[-800:])
    check_true("corrupt: replaced by the fetch",
               wait_for(lambda: '"domain":"testing.sts.test"' in rcli("GET", PREFIX + "sts:testing.sts.test")))
    got = c.ask("policy", "split.sts.test")
    check_true("another domain's record: not used", got.startswith("OK secure match=") and
               "enforce" not in got, got)
    check_true("another domain's record: refused and logged",
               c.wait_log("split.sts.test: shared record refused: it names another domain"),
               c.log()[-800:])
    check_true("another domain's record: replaced",
               wait_for(lambda: '"domain":"split.sts.test"' in rcli("GET", PREFIX + "sts:split.sts.test")))

    # A value far longer than any record (1 MiB, as anyone with access to the prefix could
    # write): the daemon reads no more than one value's worth, drops the connection, answers
    # from its own fetch, and reconnects by itself.
    ROTATE = "OK secure match=mx1.rotate.sts.test servername=hostname"
    check("oversized: written", rcli("SET", PREFIX + "sts:rotate.sts.test", stdin="x" * (1 << 20)),
          "OK")
    check("oversized: 1 MiB in Redis", rcli("STRLEN", PREFIX + "sts:rotate.sts.test"), str(1 << 20))
    connects = c.log().count("connected, authenticated")
    check("oversized: answered from the daemon's own fetch", c.ask("policy", "rotate.sts.test"),
          ROTATE)
    check_true("oversized: refused and disconnected, in one line",
               c.wait_log("a reply longer than any value written"), c.log()[-800:])
    check("oversized: said once", c.log().count("a reply longer than any value written"), 1)
    check_true("oversized: reconnects by itself",
               wait_for(lambda: c.log().count("connected, authenticated") > connects, 20),
               c.log()[-600:])
    rcli("DEL", PREFIX + "sts:rotate.sts.test")
    check("oversized: answered again after the reconnection", c.ask("policy", "rotate.sts.test"),
          ROTATE)

    # Redis killed and restarted while lookups run: no wrong or lost answer.
    stop = threading.Event()
    wrong = []
    asked = [0]

    def loop():
        while not stop.is_set():
            for d in daemons:
                for dom, want in (("enforce.sts.test", ENFORCE), ("wildcard.sts.test", WILDCARD),
                                  ("notxt.sts.test", "NOTFOUND ")):
                    got = d.ask("policy", dom)
                    asked[0] += 1
                    if got != want:
                        wrong.append((dom, got))
    th = threading.Thread(target=loop)
    th.start()
    time.sleep(0.3)
    redis.kill()
    redis.wait()
    for i, d in enumerate(daemons):
        check_true(f"kill: daemon {i} notices", d.wait_log("lookups go on without the shared tier"),
                   d.log()[-600:])
    # A cold domain while Redis is gone: every daemon fetches for itself, rightly.
    for i, d in enumerate(daemons):
        check(f"kill: daemon {i} answers a cold domain", d.ask("policy", "crlf.sts.test"), CRLF)
    time.sleep(0.5)
    before = [d.log().count("connected, authenticated") for d in daemons]
    redis_start()
    for i, d in enumerate(daemons):
        check_true(f"restart: daemon {i} reconnects by itself",
                   wait_for(lambda: d.log().count("connected, authenticated") > before[i], 20),
                   d.log()[-600:])
    stop.set()
    th.join(30)
    check("kill and restart: no wrong or lost answer", wrong, [])
    check_true("kill and restart: lookups ran throughout", asked[0] > 30, str(asked[0]))
    # Shared again after the restart.
    check("restart: daemon 0 fetches none", a.ask("policy", "none.sts.test"), "NOTFOUND ")
    check_true("restart: shared again",
               wait_for(lambda: '"domain":"none.sts.test"' in rcli("GET", PREFIX + "sts:none.sts.test")))

    # Redis stopped (SIGSTOP) while lookups run: every answer within lookup_timeout.
    redis.send_signal(signal.SIGSTOP)
    results = []

    def ask_timed(d, dom):
        results.append((dom,) + timed_ask(d, dom))
    threads = [threading.Thread(target=ask_timed, args=(d, dom)) for d in daemons
               for dom in ("charset.sts.test", "enforce.sts.test", "notxt.sts.test",
                           "redirect.sts.test")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    slowest = max(r[2] for r in results)
    check_true("SIGSTOP: every answer within lookup_timeout", slowest < LOOKUP_TIMEOUT,
               f"{slowest:.2f}s")
    check_true("SIGSTOP: no TEMP", all(not r[1].startswith("TEMP") for r in results), str(results))
    want = {"enforce.sts.test": ENFORCE, "notxt.sts.test": "NOTFOUND ",
            "redirect.sts.test": "NOTFOUND "}
    check("SIGSTOP: right answers",
          [r[1] for r in results if r[0] != "charset.sts.test"],
          [want[r[0]] for r in results if r[0] != "charset.sts.test"])
    check_true("SIGSTOP: charset right", all(r[1].startswith("OK secure match=")
                                              for r in results if r[0] == "charset.sts.test"))
    check_true("SIGSTOP: the deadline dropped the connection",
               any("no answer within redis_timeout" in d.log() for d in daemons))
    before = [d.log().count("connected, authenticated") for d in daemons]
    redis.send_signal(signal.SIGCONT)
    for i, d in enumerate(daemons):
        check_true(f"SIGCONT: daemon {i} reconnects",
                   wait_for(lambda: d.log().count("connected, authenticated") > before[i], 20),
                   d.log()[-600:])

    # The counters: promtool accepts the exposition; the failures were counted.
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    with open(os.path.join(tmp, "metrics.txt"), "w") as f:
        f.write(text)
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    check("metrics: promtool", (p.returncode, p.stdout + p.stderr), (0, ""))
    vals = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
            if line.startswith("tlspolicyd_redis") or line.startswith("tlspolicyd_shared")}
    check_true("metrics: dropped or timed-out commands counted",
               vals['tlspolicyd_redis_commands_total{result="dropped"}'] +
               vals['tlspolicyd_redis_commands_total{result="timeout"}'] > 0, str(vals))
    check_true("metrics: failed connections counted",
               vals['tlspolicyd_redis_connections_total{result="error"}'] > 0, str(vals))
    check_true("metrics: records written",
               vals['tlspolicyd_shared_total{kind="sts",event="write"}'] >= 1, str(vals))
finally:
    for i, d in enumerate(daemons):
        rc = d.stop()
        check(f"daemon {i} exits cleanly", rc, 0)
        if rc != 0:
            print(d.log()[-3000:])
        d.cleanup()
    if redis is not None and redis.poll() is None:
        redis.send_signal(signal.SIGCONT)
        redis.kill()
        redis.wait()
    subprocess.run([os.environ["LAB_CTL"], "--https-start"], timeout=30)
    shutil.rmtree(tmp, ignore_errors=True)
finish()
