"""Cold MTA-STS lookups on a fleet of three daemons, with and without the shared tier
(issue 13): every lab domain with a valid policy is asked of all three daemons at once,
cold; the policy fetches are counted in the lab nginx's access log, the answers timed.
Each round starts three fresh daemons (empty state_dir) and, with the tier, an empty Redis.
Run inside the lab:  tests/bench/fleet.sh BUILD_DIR [ROUNDS]"""
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import Daemon  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
DOMAINS = [f"{c}.sts.test" for c in ("enforce", "wildcard", "crlf", "split", "charset",
                                     "testing", "none")]
ACCESS_LOG = os.path.join(os.environ["LAB_DIR"], "nginx-access.log")
CONF = ["requiretls_probe = no", f"sts_ca_file = {os.environ['LAB_CA_FILE']}",
        "sts_allow_private = yes", "log_level = notice", "lookup_timeout = 8s"]


def fetches():
    try:
        with open(ACCESS_LOG) as f:
            return sum(1 for line in f if "/.well-known/mta-sts.txt" in line)
    except FileNotFoundError:
        return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_round(redis_sock):
    extra = [f"redis = unix:{redis_sock}"] if redis_sock else []
    ds = [Daemon(conf_lines=CONF + extra) for _ in range(3)]
    times, answers = [], []
    try:
        for d in ds:
            d.start()
            if redis_sock and not d.wait_log("connected", 10):
                raise RuntimeError("no Redis connection: " + d.log())
        before = fetches()
        cpu0 = sum(cpu_seconds(d.proc.pid) for d in ds)

        def ask(d, dom):
            t0 = time.monotonic()
            answers.append(d.ask("policy", dom))
            times.append(time.monotonic() - t0)
        threads = [threading.Thread(target=ask, args=(d, dom)) for dom in DOMAINS for d in ds]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        time.sleep(0.3)
        cpu = sum(cpu_seconds(d.proc.pid) for d in ds) - cpu0
        return fetches() - before, times, answers, cpu
    finally:
        for d in ds:
            d.stop()
            d.cleanup()


def run(mode):
    tmp = tempfile.mkdtemp(prefix="tlspolicyd-benchfleet-")
    sock = os.path.join(tmp, "redis.sock") if mode == "redis" else None
    redis = None
    nfetch, times, answers, cpu = 0, [], [], 0.0
    try:
        for _ in range(ROUNDS):
            if sock:
                redis = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", sock,
                                          "--save", "", "--appendonly", "no", "--dir", tmp],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for _ in range(100):
                    if os.path.exists(sock):
                        break
                    time.sleep(0.05)
            n, t, a, c = one_round(sock)
            nfetch, cpu = nfetch + n, cpu + c
            times += t
            answers += a
            if redis:
                redis.send_signal(signal.SIGTERM)
                redis.wait(10)
                redis = None
    finally:
        if redis:
            redis.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    times.sort()
    temp = sum(1 for a in answers if a is None or a.startswith("TEMP"))
    print(f"| {mode} | {len(times)} | {nfetch} | {statistics.median(times) * 1000:.1f} | "
          f"{times[int(len(times) * 0.99) - 1] * 1000:.1f} | {times[-1] * 1000:.1f} | "
          f"{cpu / len(times) * 1e6:.0f} | {temp} |")


print(f"3 daemons, {len(DOMAINS)} policy domains asked of each at once, cold, {ROUNDS} rounds; "
      f"load average before: {os.getloadavg()[0]:.2f}")
print("| shared tier | cold lookups | policy fetches | p50 ms | p99 ms | max ms | CPU us/lookup | TEMP |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
run("none")
run("redis")
print(f"load average after: {os.getloadavg()[0]:.2f}")
