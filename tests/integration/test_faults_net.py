"""Network faults with the lab's real components (issue 14), one daemon per fault, each with
a mix of domains: DANE and MTA-STS (enforce and testing) and no-policy domains, some cached
before the fault and some first asked during it. For each fault: the answers are the engine
table's (SPEC 4, daemon/decide/engine.c), never weaker; the same daemon answers right again
once the fault is gone; and the log says what happened in one line, not one per lookup.

  resolver  killed, then started again (ICMP port unreachable)
            answering SERVFAIL for everything (restarted with a broken trust anchor)
            dropping every packet silently (nftables in the lab's network namespace)
  policy    hosts refusing connections (nginx and stslab.py stopped)
            resetting mid-body (a server here sends the headers and half the body, then RST)
            stalling (nginx SIGSTOPped: the kernel accepts, TLS never starts)
  Redis     killed, and started again

What the table says, per kind of domain:
  DNS fault, facts cached      the cached answer (no upstream query is needed)
  DNS fault, not cached        TEMP (the MX lookup fails: policy/dnssec-temp), whatever the
                               domain publishes: never "no policy"; so is a domain whose
                               MTA-STS policy is in memory once its DNS answers expire
  policy host fault, a policy  the policy in force (RFC 8461 5.1), fetch failure logged
    in force (in the store,
    with an older id)
  policy host fault, nothing   NOTFOUND: RFC 8461 3.3 ("continue with delivery as though
    cached                     the domain has not implemented MTA-STS"), SPEC 4's
                               "unfetchable policy with nothing cached" row
  Redis gone                   every answer as without a fleet tier (fetched here)
Timers are forced through the configuration: sts_fail_ttl = 0 (a failed fetch is not
remembered, so the first lookup after the fault fetches), and a cached policy's TXT check
forced by a reload that sets sts_recheck = 0. Every wait is a bounded poll."""
import json
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import shutil
import time

from harness import TLSPOLICYD, Daemon, check, check_true, finish

if "LAB_CA_FILE" not in os.environ:
    raise SystemExit("run me inside the lab: tests/lab/dnslab.sh python3 test_faults_net.py")

LAB_DIR = os.environ["LAB_DIR"]
CA = os.environ["LAB_CA_FILE"]
ENFORCE = "OK secure match=mx1.enforce.sts.test:.backup.sts.test servername=hostname"
WILDCARD = "OK secure match=.wildcard.sts.test servername=hostname"
TESTING = "OK secure match=mx1.testing.sts.test servername=hostname"
SEED_ENFORCE = "OK secure match=mx9.enforce.sts.test servername=hostname"
SEED_TESTING = "OK secure match=mx9.testing.sts.test servername=hostname"
CONF = ["log_level = info", "requiretls_probe = no", f"sts_ca_file = {CA}",
        "sts_allow_private = yes", "sts_connect_timeout = 1s", "sts_fetch_timeout = 1s",
        "dns_timeout = 1s", "lookup_timeout = 3s", "sts_fail_ttl = 0"]
LOOKUP_TIMEOUT = 3.0


def lab(arg):
    subprocess.run([os.environ["LAB_CTL"], arg], check=True, timeout=30)


def poll(fn, want, timeout=10.0):
    """fn() until it returns want, for at most timeout seconds; the last value."""
    deadline, got = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        got = fn()
        if got == want:
            break
        time.sleep(0.1)
    return got


def lines_since(d, mark):
    return [x for x in d.log()[mark:].splitlines() if x.strip()]


def timed(d, m, dom):
    t0 = time.monotonic()
    got = d.ask(m, dom)
    return got, time.monotonic() - t0


# ---------------------------------------------------------------------------------------
# The resolver

# (map, domain, answer): asked before the fault, so their facts are cached (the lab's TTLs
# are 60 s and each daemon lives a few seconds).
DNS_CACHED = [("policy", "dane-all.test", "OK dane-only"),
              ("policy", "enforce.sts.test", ENFORCE),
              ("requiretls", "testing.sts.test", TESTING),
              ("policy", "testing.sts.test", "NOTFOUND "),
              ("policy", "unsigned.test", "NOTFOUND ")]
# First asked during the fault: three different questions fail (the resolver's health
# line needs three), then the right answers once it is back.
DNS_UNCACHED = [("policy", "dane-mixed.test", "OK dane"),
                ("policy", "wildcard.sts.test", WILDCARD),
                ("policy", "none.sts.test", "NOTFOUND ")]


def dns_fault(name, inject, remove, why):
    d = Daemon(conf_lines=CONF)
    try:
        d.start()
        for m, dom, want in DNS_CACHED:
            check(f"{name}: before: {m} {dom}", d.ask(m, dom), want)
        mark = len(d.log())
        inject()
        for m, dom, want in DNS_CACHED:
            check(f"{name}: cached {m} {dom} unchanged", d.ask(m, dom), want)
        for m, dom, _ in DNS_UNCACHED:
            got, took = timed(d, m, dom)
            check(f"{name}: uncached {dom}: TEMP, never a weaker answer", got,
                  f"TEMP DNSSEC: MX lookup for {dom}: {why}")
            check_true(f"{name}: {dom} answered within lookup_timeout", took < LOOKUP_TIMEOUT,
                       f"{took:.2f}s")
        # Asked again: still TEMP, and still the one line.
        check(f"{name}: uncached again: TEMP", d.ask("policy", "dane-mixed.test")[:5], "TEMP ")
        during = lines_since(d, mark)
        check(f"{name}: one log line for the fault", len(during), 1)
        check_true(f"{name}: it says the resolver is failing, and why",
                   len(during) == 1 and "dns: resolver " in during[0] and "is failing" in during[0]
                   and why in during[0], "\n".join(during))
        mark = len(d.log())
        remove()
        for m, dom, want in DNS_UNCACHED:
            check(f"{name}: recovered, same process: {m} {dom}",
                  poll(lambda: d.ask(m, dom), want), want)
        for m, dom, want in DNS_CACHED:
            check(f"{name}: after: {m} {dom}", d.ask(m, dom), want)
        after = lines_since(d, mark)
        dns = [x for x in after if "dns: " in x]
        check_true(f"{name}: one log line for the recovery",
                   len(dns) == 1 and "dns: resolver " in dns[0] and "answers again" in dns[0],
                   "\n".join(after))
        print("# " + "\n# ".join(during + after))
    finally:
        check(f"{name}: daemon exits cleanly", d.stop(), 0)
        d.cleanup()


# Killed, then started again (fresh unbound, empty cache).
dns_fault("resolver killed", lambda: lab("--resolver-stop"), lambda: lab("--resolver-start"),
          "resolver unreachable (connection refused)")

# The same fault once the cached DNS answers have run out (dns_max_ttl = 1s): the MTA-STS
# policy is still in memory, but the MX lookup that decides whether DANE applies fails, so
# the engine answers TEMP (policy/dnssec-temp comes before policy/sts-enforce: MTA-STS never
# stands in for a DANE check it cannot make, RFC 8461 2); never "no policy". Every answer
# while the cache runs out is the cached one or that TEMP, nothing else.
d = Daemon(conf_lines=CONF + ["dns_min_ttl = 0", "dns_max_ttl = 1s"])
try:
    d.start()
    check("expired: before: enforce", d.ask("policy", "enforce.sts.test"), ENFORCE)
    check("expired: before: dane-all", d.ask("policy", "dane-all.test"), "OK dane-only")
    lab("--resolver-stop")
    TEMP_ENF = ("TEMP DNSSEC: MX lookup for enforce.sts.test: resolver unreachable "
                "(connection refused)")
    seen = set()

    def enforce_now():
        got = d.ask("policy", "enforce.sts.test")
        seen.add(got)
        return got
    check("expired: cached policy, MX unknown: TEMP", poll(enforce_now, TEMP_ENF), TEMP_ENF)
    check("expired: only the cached answer or TEMP meanwhile", seen - {ENFORCE, TEMP_ENF}, set())
    TEMP_DANE = "TEMP DNSSEC: MX lookup for dane-all.test: resolver unreachable (connection refused)"
    seen = set()

    def dane_now():
        got = d.ask("policy", "dane-all.test")
        seen.add(got)
        return got
    check("expired: DANE domain: TEMP", poll(dane_now, TEMP_DANE), TEMP_DANE)
    check("expired: DANE: only the cached answer or TEMP meanwhile",
          seen - {"OK dane-only", TEMP_DANE}, set())
    lab("--resolver-start")
    check("expired: resolver back: the policy in memory answers again",
          poll(lambda: d.ask("policy", "enforce.sts.test"), ENFORCE), ENFORCE)
    check("expired: resolver back: no refetch (the policy was kept)",
          d.log().count("mta-sts: enforce.sts.test: policy id"), 1)
    check("expired: resolver back: dane-all",
          poll(lambda: d.ask("policy", "dane-all.test"), "OK dane-only"), "OK dane-only")
finally:
    check("expired: daemon exits cleanly", d.stop(), 0)
    d.cleanup()

# SERVFAIL for everything: unbound restarted with a trust anchor that matches no key of
# test. (the DS digest's last hex digit changed): every answer below test. is bogus.
tmp = tempfile.mkdtemp(prefix="tlspolicyd-netfault-")
broken = {}


def servfail_start():
    anchor = open(os.environ["LAB_TRUST_ANCHOR"]).read().rstrip()
    last = anchor[-1]
    with open(os.path.join(tmp, "broken.anchor"), "w") as f:
        f.write(anchor[:-1] + ("0" if last != "0" else "1") + "\n")
    conf = open(os.environ["LAB_UNBOUND_CONF"]).read().replace(
        os.environ["LAB_TRUST_ANCHOR"], os.path.join(tmp, "broken.anchor"))
    with open(os.path.join(tmp, "unbound.conf"), "w") as f:
        f.write(conf)
    lab("--resolver-stop")
    broken["proc"] = subprocess.Popen(["unbound", "-d", "-c", os.path.join(tmp, "unbound.conf")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def status():
        p = subprocess.run(["dig", "+time=1", "+tries=1", "@" + os.environ["LAB_RESOLVER"],
                            "dane-all.test", "MX"], capture_output=True, text=True, timeout=10)
        return "SERVFAIL" if "status: SERVFAIL" in p.stdout else p.stdout[-200:]
    check("SERVFAIL: the broken unbound answers SERVFAIL", poll(status, "SERVFAIL"), "SERVFAIL")


def servfail_stop():
    p = broken.pop("proc")
    p.terminate()
    p.wait(20)
    lab("--resolver-start")


dns_fault("resolver SERVFAIL", servfail_start, servfail_stop, "SERVFAIL from the validating resolver")

# Every packet to the resolver dropped on its way in (a drop on the way out would fail the
# sender's sendto() with EPERM, which is no silence): queries time out (dns_timeout).
NFT = ["nft", "add table inet tlsp_fault",
       "add chain inet tlsp_fault in { type filter hook input priority 0 ; }",
       f"add rule inet tlsp_fault in ip daddr {os.environ['LAB_RESOLVER']} udp dport 53 drop",
       f"add rule inet tlsp_fault in ip daddr {os.environ['LAB_RESOLVER']} tcp dport 53 drop"]


def nft(*cmds):
    for c in cmds:
        subprocess.run(["nft"] + c.split(" "), check=True, timeout=10)


try:
    dns_fault("resolver drops packets", lambda: nft(*NFT[1:]),
              lambda: nft("delete table inet tlsp_fault"), "DNS query timed out")
finally:
    subprocess.run(["nft", "delete", "table", "inet", "tlsp_fault"], capture_output=True)

# ---------------------------------------------------------------------------------------
# The policy hosts


def seed(d):
    """Policies in the daemon's store, as an earlier life of it fetched them, with an id the
    TXT records no longer carry: the first lookup answers from them and fetches behind."""
    now = int(time.time())
    recs = [{"version": 1, "domain": "enforce.sts.test", "id": "seed1", "fetched": now - 60,
             "expires": now - 60 + 86400, "mode": "enforce", "max_age": 86400,
             "mx": ["mx9.enforce.sts.test"]},
            {"version": 1, "domain": "testing.sts.test", "id": "seed1", "fetched": now - 60,
             "expires": now - 60 + 86400, "mode": "testing", "max_age": 86400,
             "mx": ["mx9.testing.sts.test"]}]
    path = os.path.join(d.dir, "seed.jsonl")
    with open(path, "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in recs))
    p = subprocess.run([TLSPOLICYD, "state", "import", "-c", d.conf, path], capture_output=True,
                       text=True, timeout=30)
    check("seed: state import", (p.returncode, p.stderr[-300:] if p.returncode else ""), (0, ""))


def reload_recheck(d, value):
    with open(d.conf, "a") as f:
        f.write(f"sts_recheck = {value}\n")
    n = d.log().count("reloaded configuration")
    d.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and d.log().count("reloaded configuration") == n:
        time.sleep(0.05)
    check_true("reload done", d.log().count("reloaded configuration") > n, d.log()[-500:])


def https_fault(name, inject, remove, why):
    d = Daemon(conf_lines=CONF + ["sts_recheck = 1h"])
    try:
        seed(d)
        d.start()
        # Unaffected by policy hosts: a DANE domain (which publishes MTA-STS too), an
        # unsigned domain with no MTA-STS.
        check(f"{name}: before: dane-all.test", d.ask("policy", "dane-all.test"), "OK dane-only")
        check(f"{name}: before: unsigned.test", d.ask("policy", "unsigned.test"), "NOTFOUND ")
        mark = len(d.log())
        inject()
        # The stored policies answer at once; the TXT id differs, so a fetch runs behind.
        check(f"{name}: stored enforce policy answers", d.ask("policy", "enforce.sts.test"),
              SEED_ENFORCE)
        check(f"{name}: stored testing policy answers (requiretls)",
              d.ask("requiretls", "testing.sts.test"), SEED_TESTING)
        for dom in ("enforce", "testing"):
            check_true(f"{name}: {dom}: the failed fetch leaves the policy in force",
                       d.wait_log(f"mta-sts: {dom}.sts.test: policy fetch from "
                                  f"mta-sts.{dom}.sts.test failed: ", 10), d.log()[mark:])
        check(f"{name}: enforce still in force after the failed fetch",
              d.ask("policy", "enforce.sts.test"), SEED_ENFORCE)
        check(f"{name}: testing still in force", d.ask("requiretls", "testing.sts.test"),
              SEED_TESTING)
        # Nothing cached: RFC 8461 3.3, as though the domain had no MTA-STS.
        for dom in ("wildcard.sts.test", "none.sts.test"):
            got, took = timed(d, "policy", dom)
            check(f"{name}: uncached {dom}: no policy (RFC 8461 3.3)", got, "NOTFOUND ")
            check_true(f"{name}: {dom} within lookup_timeout", took < LOOKUP_TIMEOUT,
                       f"{took:.2f}s")
        check(f"{name}: no TXT, no fetch: notxt.sts.test", d.ask("policy", "notxt.sts.test"),
              "NOTFOUND ")
        check(f"{name}: DANE unaffected", d.ask("policy", "dane-all.test"), "OK dane-only")
        during = lines_since(d, mark)
        # One line per failed fetch, naming the domain, the host and the fault; nothing else
        # says "failed" (the other lines are the fetches announced and the notxt decision).
        for dom, tail in (("enforce", "the cached policy (id seed1) stays in force"),
                          ("testing", "the cached policy (id seed1) stays in force"),
                          ("wildcard", None), ("none", None)):
            mine = [x for x in during if f"mta-sts: {dom}.sts.test: " in x and "failed" in x]
            check_true(f"{name}: {dom}: one line, with the fault",
                       len(mine) == 1 and why in mine[0] and
                       (tail in mine[0] if tail else "no policy: policy fetch from" in mine[0]),
                       "\n".join(mine))
        check(f"{name}: four failures logged in all", sum("failed" in x for x in during), 4)
        print("# " + "\n# ".join(during))
        remove()
        # Recovery in the same process: the uncached domains fetch at once (sts_fail_ttl 0);
        # the cached ones at their next TXT check, forced by sts_recheck = 0.
        check(f"{name}: recovered: wildcard", poll(lambda: d.ask("policy", "wildcard.sts.test"),
                                                   WILDCARD), WILDCARD)
        reload_recheck(d, "0")
        check(f"{name}: recovered: enforce, the new policy",
              poll(lambda: d.ask("policy", "enforce.sts.test"), ENFORCE), ENFORCE)
        check(f"{name}: recovered: testing, the new policy",
              poll(lambda: d.ask("requiretls", "testing.sts.test"), TESTING), TESTING)
    finally:
        check(f"{name}: daemon exits cleanly", d.stop(), 0)
        d.cleanup()


https_fault("policy hosts refuse", lambda: lab("--https-stop"), lambda: lab("--https-start"),
            "no connection: ")


class ResetServer:
    """Plays nginx on its address: TLS with the lab's server certificate, the request read,
    a 200 with headers and half the body, then the connection reset (SO_LINGER 0)."""

    def __init__(self):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(os.path.join(LAB_DIR, "pki", "server.pem"),
                                 os.path.join(LAB_DIR, "pki", "server.key"))
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((os.environ["LAB_HTTPS_ADDR"], int(os.environ["LAB_HTTPS_PORT"])))
        self.sock.listen(16)
        self.served = 0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                conn.settimeout(5)
                s = self.ctx.wrap_socket(conn, server_side=True)
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                body = b"version: STSv1\nmode: enforce\nmx: mx1.enforce.sts.test\nmax_age: 86400\n"
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                          + str(len(body)).encode() + b"\r\n\r\n" + body[:len(body) // 2])
                # Whether the client has read the headers when the RST comes or not, its
                # transfer ends in "Connection reset by peer".
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.served += 1
                s.close()
            except (OSError, ssl.SSLError):
                conn.close()

    def close(self):
        # shutdown() wakes the accept() the thread is blocked in; close() alone would not,
        # and the socket would go on listening until its next connection.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(10)


reset = {}


def reset_start():
    lab("--https-stop")
    reset["srv"] = ResetServer()


def reset_stop():
    reset.pop("srv").close()
    lab("--https-start")


try:
    https_fault("policy hosts reset mid-body", reset_start, reset_stop, "reset")
finally:
    if "srv" in reset:
        reset.pop("srv").close()
        lab("--https-start")


def nginx_pid():
    return int(open(os.environ["LAB_NGINX_PIDFILE"]).read().split()[0])


try:
    https_fault("policy hosts stall", lambda: os.kill(nginx_pid(), signal.SIGSTOP),
                lambda: os.kill(nginx_pid(), signal.SIGCONT), "timed out: ")
finally:
    os.kill(nginx_pid(), signal.SIGCONT)

# ---------------------------------------------------------------------------------------
# Redis gone and back

rsock = os.path.join(tmp, "redis.sock")
with open(os.path.join(tmp, "redis.conf"), "w") as f:
    f.write(f"port 0\nunixsocket {rsock}\nunixsocketperm 777\ndir {tmp}\nsave \"\"\n"
            f"appendonly no\ndaemonize no\nlogfile {tmp}/redis.log\n")
redis = {}


def redis_start():
    redis["p"] = subprocess.Popen(["redis-server", os.path.join(tmp, "redis.conf")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    check("redis up", poll(lambda: rcli("PING"), "PONG"), "PONG")


def rcli(*args):
    p = subprocess.run(["redis-cli", "-s", rsock, *args], capture_output=True, text=True,
                       timeout=10)
    return p.stdout.strip()


d = Daemon(conf_lines=CONF + [f"redis = unix:{rsock}", "redis_timeout = 300ms",
                              "redis_prefix = f:"])
try:
    redis_start()
    d.start()
    check_true("redis: connected", d.wait_log("connected"), d.log()[-500:])
    check("redis: before: enforce fetched", d.ask("policy", "enforce.sts.test"), ENFORCE)
    check("redis: shared", poll(lambda: '"domain":"enforce.sts.test"' in rcli("GET", "f:sts:enforce.sts.test"),
                                True), True)
    mark = len(d.log())
    redis["p"].kill()
    redis["p"].wait()
    check_true("redis: the loss noticed", d.wait_log("lookups go on without the shared tier"),
               d.log()[mark:])
    for m, dom, want in [("policy", "enforce.sts.test", ENFORCE),
                         ("policy", "wildcard.sts.test", WILDCARD),
                         ("requiretls", "testing.sts.test", TESTING),
                         ("policy", "none.sts.test", "NOTFOUND "),
                         ("policy", "dane-all.test", "OK dane-only"),
                         ("policy", "unsigned.test", "NOTFOUND ")]:
        got, took = timed(d, m, dom)
        check(f"redis gone: {m} {dom}", got, want)
        check_true(f"redis gone: {dom} within lookup_timeout", took < LOOKUP_TIMEOUT, f"{took:.2f}s")
    # Reconnection attempts back off (100 ms doubling, 10 s at most) and fail meanwhile.
    redis_start()
    check_true("redis: reconnected by itself", poll(lambda: d.log()[mark:].count("connected"), 1, 15) == 1,
               d.log()[mark:])
    check("redis back: crlf fetched", d.ask("policy", "crlf.sts.test"),
          "OK secure match=mx1.crlf.sts.test servername=hostname")
    check("redis back: shared again",
          poll(lambda: '"domain":"crlf.sts.test"' in rcli("GET", "f:sts:crlf.sts.test"), True), True)
    during = [x for x in lines_since(d, mark) if "redis " in x]
    check("redis: one line when it went, one when it came back", len(during), 2)
    print("# " + "\n# ".join(during))
finally:
    check("redis: daemon exits cleanly", d.stop(), 0)
    d.cleanup()
    if "p" in redis and redis["p"].poll() is None:
        redis["p"].kill()
        redis["p"].wait()
    if "proc" in broken:
        broken["proc"].kill()
        broken["proc"].wait()
    shutil.rmtree(tmp, ignore_errors=True)
finish()
