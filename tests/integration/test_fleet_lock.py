"""The fleet lock's lease (issue 13) inside the lab: two daemons share a real redis-server
started here. With the policy web server stopped (SIGSTOP: connections hang, as a slow
policy host's do), daemon A takes the lock for a fetch that hangs; while it is alive its
lease is renewed (the lock key keeps A's token past its lease, its PTTL refreshed) and
daemon B, asked for the same domain, waits without taking over. Then A takes the lock for
another domain and is killed with SIGKILL while it holds it: B, waiting for it, takes the
lock over once the lease lapses, fetches itself when the web server answers again, and
answers the right policy within lookup_timeout; its log and /metrics say it took over."""
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

from harness import Daemon, check, check_true, finish, free_port, netstring, read_netstring

if "LAB_CA_FILE" not in os.environ:
    raise SystemExit("run me inside the lab: tests/lab/dnslab.sh python3 test_fleet_lock.py")

CA = os.environ["LAB_CA_FILE"]
LOOKUP_TIMEOUT = 5.0
LEASE_MS = 1500  # SHARE_LEASE_MS
WILDCARD = "OK secure match=.wildcard.sts.test servername=hostname"
PREFIX = "fleet-lock-test:"

tmp = tempfile.mkdtemp(prefix="tlspolicyd-fleet-lock-")
os.chmod(tmp, 0o755)
rsock = os.path.join(tmp, "redis.sock")
with open(os.path.join(tmp, "redis.conf"), "w") as f:
    f.write(f"port 0\nunixsocket {rsock}\nunixsocketperm 777\ndir {tmp}\nsave \"\"\n"
            f"appendonly no\ndaemonize no\nlogfile {tmp}/redis.log\n")


def rcli(*args):
    p = subprocess.run(["redis-cli", "-s", rsock, *args], capture_output=True, text=True,
                       timeout=10)
    return p.stdout.rstrip("\n")


def wait_for(cond, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def nginx_pids():
    """The lab's nginx: the master from its pid file and its workers (this pid namespace)."""
    with open(os.environ["LAB_NGINX_PIDFILE"]) as f:
        master = int(f.read().split()[0])
    pids = [master]
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == master:
                        pids.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return pids


def nginx_signal(sig):
    for pid in nginx_pids():
        os.kill(pid, sig)


def asked(d, domain, out):
    s = d.connect()
    try:
        t0 = time.monotonic()
        s.sendall(netstring(f"policy {domain}".encode()))
        # The answer is timed here, not cut short at the harness's 5 s.
        ans = read_netstring(s, timeout=3 * LOOKUP_TIMEOUT)
        out.append((ans.decode() if ans is not None else None, time.monotonic() - t0))
    finally:
        s.close()


# lookup_timeout 5 s; a fetch of its own needs dns_timeout + sts_fetch_timeout = 5 s, so a
# waiter waits at most half of lookup_timeout (2.5 s); the holder renews for at most 6 s.
conf = [f"sts_ca_file = {CA}", "sts_allow_private = yes", "sts_connect_timeout = 4s",
        "sts_fetch_timeout = 4s", "dns_timeout = 1s", f"lookup_timeout = {int(LOOKUP_TIMEOUT)}s",
        f"redis = unix:{rsock}", f"redis_prefix = {PREFIX}", "redis_timeout = 300ms"]
metrics_port = free_port()
a = Daemon(conf_lines=conf, user="nobody")
b = Daemon(conf_lines=conf + [f"metrics_listen = inet:127.0.0.1:{metrics_port}"], user="nobody")
redis = None
stopped = False
threads = []
try:
    redis = subprocess.Popen(["redis-server", os.path.join(tmp, "redis.conf")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    check_true("redis-server answers",
               wait_for(lambda: os.path.exists(rsock) and rcli("PING") == "PONG"))
    for d in (a, b):
        d.start()
        check_true("daemon connected to Redis", d.wait_log("redis unix:"), d.log()[-600:])
    check_true("daemons connected", wait_for(lambda: all("connected" in d.log() for d in (a, b))))

    # A live but slow holder: its lease is renewed, B waits and does not take over.
    nginx_signal(signal.SIGSTOP)
    stopped = True
    lock = PREFIX + "sts-lock:enforce.sts.test"
    slow = []
    threads.append(threading.Thread(target=asked, args=(a, "enforce.sts.test", slow)))
    threads[-1].start()
    check_true("slow: A takes the lock", wait_for(lambda: rcli("EXISTS", lock) == "1"))
    token = rcli("GET", lock)
    threads.append(threading.Thread(target=asked, args=(b, "enforce.sts.test", slow)))
    threads[-1].start()
    samples = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.2:
        samples.append((time.monotonic() - t0, rcli("GET", lock), int(rcli("PTTL", lock) or -9)))
        time.sleep(0.05)
    check_true("slow: the lock keeps A's token past its lease (renewed, not taken over)",
               all(s[1] == token and 0 < s[2] <= LEASE_MS for s in samples), str(samples))
    check_true("slow: the lease's PTTL is refreshed", any(samples[i + 1][2] > samples[i][2] + 100
                                                          for i in range(len(samples) - 1)),
               str(samples))
    check_true("slow: B waits for A",
               "enforce.sts.test: another daemon of the fleet is fetching; waiting" in b.log(),
               b.log()[-800:])
    check_true("slow: B did not take over a live holder's lock", "taking over" not in b.log(),
               b.log()[-800:])
    for t in threads:
        t.join(30)
    threads = []
    check_true("slow: both answered within lookup_timeout (the policy host hangs: no policy "
               "or TEMP)", len(slow) == 2 and all(s[1] < LOOKUP_TIMEOUT + 0.3 for s in slow),
               f"{slow}\nA: {a.log()[-2500:]}\nB: {b.log()[-4000:]}")
    check_true("slow: B gave up waiting after its bound and fetched itself",
               b.wait_log("enforce.sts.test: another daemon's fetch is taking too long"),
               b.log()[-800:])
    check_true("slow: A's lock is released or lapses after its fetch failed",
               wait_for(lambda: rcli("EXISTS", lock) == "0", 10))

    # A dies holding the lock: B takes over after the lease and answers in time.
    lock = PREFIX + "sts-lock:wildcard.sts.test"
    dead, late = [], []
    threads.append(threading.Thread(target=asked, args=(a, "wildcard.sts.test", dead)))
    threads[-1].start()
    check_true("kill: A takes the lock", wait_for(lambda: rcli("EXISTS", lock) == "1"))
    threads.append(threading.Thread(target=asked, args=(b, "wildcard.sts.test", late)))
    threads[-1].start()
    check_true("kill: B waits for A",
               b.wait_log("wildcard.sts.test: another daemon of the fleet is fetching; waiting", 3),
               b.log()[-800:])
    check("kill: A still holds the lock", rcli("EXISTS", lock), "1")
    a.proc.kill()
    a.proc.wait()
    nginx_signal(signal.SIGCONT)
    stopped = False
    for t in threads:
        t.join(30)
    threads = []
    check("kill: B answers the policy", [x[0] for x in late], [WILDCARD])
    check_true("kill: within lookup_timeout", late and late[0][1] < LOOKUP_TIMEOUT, str(late))
    check_true("kill: B took over the lapsed lock",
               "wildcard.sts.test: the fleet lock is free again without a policy from its holder"
               in b.log(), b.log()[-800:])
    check_true("kill: B did not give up waiting first",
               "wildcard.sts.test: another daemon's fetch is taking too long" not in b.log(),
               b.log()[-800:])
    check_true("kill: B wrote the record for the fleet",
               wait_for(lambda: '"domain":"wildcard.sts.test"' in
                        rcli("GET", PREFIX + "sts:wildcard.sts.test")))
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    check("metrics: promtool", (p.returncode, p.stdout + p.stderr), (0, ""))
    check_true("metrics: the takeover counted",
               'tlspolicyd_shared_total{kind="sts",event="takeover"} 1' in text,
               [line for line in text.splitlines() if "shared_total" in line])
finally:
    if stopped:
        nginx_signal(signal.SIGCONT)
    for t in threads:
        t.join(30)
    if a.proc is not None and a.proc.poll() is None:
        check("daemon A exits cleanly", a.stop(), 0)
    rc = b.stop()
    check("daemon B exits cleanly", rc, 0)
    if rc != 0:
        print(b.log()[-3000:])
    for d in (a, b):
        d.cleanup()
    if redis is not None and redis.poll() is None:
        redis.kill()
        redis.wait()
    shutil.rmtree(tmp, ignore_errors=True)
finish()
