"""MTA-STS (RFC 8461) against the lab's HTTPS side (tests/lab/dnslab.sh: nginx and small
Python servers with a test CA, policy domains under the unsigned zone sts.test). Every
case is asked through Postfix's own postmap and the answer compared with the RFC's rule;
the slow cases are timed against the configured fetch timeout. Then: DANE precedence,
private addresses refused by default, failures remembered, a TXT id change picked up by
the background check, the cache bound (sts_cache_size), and a restart after SIGKILL with
the web server gone, with records on disk that must not be believed."""
import json
import os
import signal
import socket
import subprocess
import time

from harness import TLSPOLICYD, Daemon, check, check_true, finish, netstring, read_netstring

if "LAB_CA_FILE" not in os.environ:
    raise SystemExit("run me inside the lab: tests/lab/dnslab.sh python3 test_sts.py")

CA = os.environ["LAB_CA_FILE"]
FETCH_TIMEOUT = 2.0
# requiretls_probe = no: the requiretls answers here are the MTA-STS path alone; the probe
# is test_requiretls.py's.
STS_CONF = ["requiretls_probe = no", f"sts_ca_file = {CA}", "sts_allow_private = yes",
            "sts_connect_timeout = 2s",
            f"sts_fetch_timeout = {int(FETCH_TIMEOUT)}s", "lookup_timeout = 6s"]
ENFORCE = "secure match=mx1.enforce.sts.test:.backup.sts.test servername=hostname"

# (case, postmap exit, answer or prefix, RFC 8461 reason)
CASES = [
    ("enforce", 0, ENFORCE, "5: enforce, *.backup.sts.test rendered as .backup.sts.test"),
    ("wildcard", 0, "secure match=.wildcard.sts.test servername=hostname", "4.1: wildcard"),
    ("crlf", 0, "secure match=mx1.crlf.sts.test servername=hostname", "3.2: CRLF line ends"),
    ("split", 0, "secure match=", "3.1: TXT strings concatenated"),
    ("charset", 0, "secure match=", "3.3: text/plain with a charset parameter"),
    ("testing", 1, "", "5: testing mode does not constrain delivery"),
    ("none", 1, "", "5: mode none"),
    ("twotxt", 1, "", "3.1: more than one v=STSv1 record"),
    ("notxt", 1, "", "3.1: no TXT record, no policy"),
    ("badtxt", 1, "", "3.1: TXT record breaks the grammar"),
    ("redirect", 1, "", "3.3: redirects are not followed"),
    ("ctype", 1, "", "3.3: media type must be text/plain"),
    ("big", 1, "", "3.3 and SPEC 7: body over 64 KiB (Content-Length)"),
    ("bigchunked", 1, "", "SPEC 7: body over 64 KiB, chunked"),
    ("notfound", 1, "", "3.3: status other than 200"),
    ("syntax", 1, "", "3.2: invalid mode"),
    ("nomx", 1, "", "3.2: enforce without mx"),
    ("wrongname", 1, "", "3.3: certificate for another name"),
    ("untrusted", 1, "", "3.3: certificate from an untrusted CA"),
    ("expired", 1, "", "3.3: expired certificate"),
    ("slow", 1, "", "3.3: body trickled past the fetch timeout"),
    ("notls", 1, "", "3.3: TCP accepted, no TLS"),
    ("nohttp", 1, "", "3.3: TLS, then no HTTP answer"),
]
SLOW = {"slow", "notls", "nohttp"}

d = Daemon(conf_lines=STS_CONF)
try:
    d.start()
    for case, want_rc, want, why in CASES:
        domain = f"{case}.sts.test"
        t0 = time.monotonic()
        rc, out, err = d.postmap(domain, "policy")
        elapsed = time.monotonic() - t0
        got = out.strip()
        if want_rc == 0 and want.endswith("="):
            check(f"{case} ({why})", (rc, got[:len(want)]), (0, want))
        else:
            check(f"{case} ({why})", (rc, got), (want_rc, want))
        if case in SLOW:
            print(f"# {case}: answered in {elapsed:.2f}s (sts_fetch_timeout {FETCH_TIMEOUT:.0f}s)")
            check_true(f"{case}: bounded by the fetch timeout", elapsed < FETCH_TIMEOUT + 2.5,
                       f"{elapsed:.2f}s")

    # requiretls: an enforce or testing policy validates the MX (draft 4.2.1).
    check("requiretls: enforce", d.ask("requiretls", "enforce.sts.test"), "OK " + ENFORCE)
    check("requiretls: testing", d.ask("requiretls", "testing.sts.test"),
          "OK secure match=mx1.testing.sts.test servername=hostname")
    check_true("requiretls: mode none is no validation",
               d.ask("requiretls", "none.sts.test").startswith("TEMP 5.7.10"))
    check("tlsoptional waives the policy", d.ask("tlsoptional", "enforce.sts.test"), "OK may")

    # RFC 8461 2: DANE takes precedence over a published MTA-STS policy.
    check("dane-all.test also has STS: DANE wins", d.ask("policy", "dane-all.test"),
          "OK dane-only")

    # Issue 10.5: DANE on some MX hosts beside an MTA-STS enforce policy: "dane" would give
    # the host without TLSA unauthenticated TLS, which the policy forbids: dane-only.
    check("dane-some-sts.test: DANE on one host, STS enforce: dane-only",
          d.ask("policy", "dane-some-sts.test"), "OK dane-only")
    check_true("dane-some-sts.test: the decision names its rule",
               d.wait_log("policy/dane-only-sts"), d.log()[-1500:])

    # A failed fetch is remembered: asking again costs no second fetch.
    before = d.log().count("mta-sts: notfound.sts.test: no policy")
    check("notfound again", d.ask("policy", "notfound.sts.test"), "NOTFOUND ")
    check("notfound: failure remembered, no refetch",
          d.log().count("mta-sts: notfound.sts.test: no policy") - before, 0)

    # query --json shows the TXT record, the fetch outcome and the parsed policy.
    # Without the daemon's state_dir, so the command discovers and fetches for itself.
    p = subprocess.run([TLSPOLICYD, "query", "-c", d.conf, "-o", "state_dir=", "--json",
                        "enforce.sts.test", "ctype.sts.test"],
                       capture_output=True, text=True, timeout=30)
    doc = json.loads(p.stdout)
    sts = doc[0]["facts"]["sts"]
    check("json enforce: rule", doc[0]["rule"], "policy/sts-enforce")
    check("json enforce: state", (sts["state"], sts["cached"], sts["fetch"]), ("policy", False, "ok"))
    check_true("json enforce: txt", sts["txt"].startswith("v=STSv1"), sts["txt"])
    check("json enforce: mode and mx", (sts["policy"]["mode"], sts["policy"]["mx"]),
          ("enforce", ["mx1.enforce.sts.test", "*.backup.sts.test"]))
    check("json enforce: max_age", sts["policy"]["max_age"], 86400)
    check_true("json enforce: age", 0 <= sts["policy"]["age"] < 600, str(sts["policy"]["age"]))
    check("json ctype: fetch outcome", doc[1]["facts"]["sts"]["fetch"], "content-type")
finally:
    check("daemon exits cleanly", d.stop(), 0)
    d.cleanup()

# Default: policy hosts on loopback and private addresses are refused (SPEC 7).
d = Daemon(conf_lines=[f"sts_ca_file = {CA}", "sts_fetch_timeout = 2s"])
try:
    d.start()
    check("private address refused: no policy", d.ask("policy", "enforce.sts.test"), "NOTFOUND ")
    check_true("private address refused: logged",
               d.wait_log("is a loopback address; sts_allow_private = no"), d.log()[-500:])
finally:
    check("default daemon exits cleanly", d.stop(), 0)
    d.cleanup()

# Options, and one discovery and one fetch for a burst of lookups of an uncached domain.
d = Daemon(conf_lines=STS_CONF + ["sts_enforce_testing = yes", "sts_postfix_attributes = yes",
                                  "max_pipeline = 64"])
try:
    d.start()
    socks = []
    for i in range(5):
        s = d.connect(timeout=15)
        s.sendall(netstring(b"policy enforce.sts.test") * 20)
        socks.append(s)
    answers = [read_netstring(s, timeout=15) for s in socks for _ in range(20)]
    for s in socks:
        s.close()
    want = ("OK " + ENFORCE + " policy_type=sts policy_domain=enforce.sts.test"
            " mx_host_pattern=mx1.enforce.sts.test mx_host_pattern=*.backup.sts.test"
            " { policy_string = version: STSv1 } { policy_string = mode: enforce }"
            " { policy_string = mx: mx1.enforce.sts.test } { policy_string = mx: *.backup.sts.test }"
            " { policy_string = max_age: 86400 }")
    check("burst: 100 answers with Postfix 3.10 attributes",
          sum(1 for a in answers if a == want.encode()), 100)
    check("burst: one fetch", d.log().count("mta-sts: enforce.sts.test: policy id"), 1)
    rc, out, err = d.postmap("testing.sts.test", "policy")
    check("sts_enforce_testing: testing enforced",
          (rc, out.split(" policy_type=")[0].strip()),
          (0, "secure match=mx1.testing.sts.test servername=hostname"))
    check("sts_enforce_testing: requiretls unchanged", d.ask("requiretls", "none.sts.test")[:12],
          "TEMP 5.7.10 ")
finally:
    check("options daemon exits cleanly", d.stop(), 0)
    d.cleanup()

# TXT id change: the background check sees id=2 and fetches the new policy.
d = Daemon(conf_lines=STS_CONF + ["sts_recheck = 0", "dns_min_ttl = 0", "dns_max_ttl = 1s"])
try:
    d.start()
    check("rotate: first policy", d.ask("policy", "rotate.sts.test"),
          "OK secure match=mx1.rotate.sts.test servername=hostname")
    subprocess.run([os.environ["LAB_CTL"], "--sts-rotate"], check=True, timeout=30)
    time.sleep(1.2)  # the daemon's cached TXT answer expires
    want, got, deadline = "OK secure match=mx2.rotate.sts.test servername=hostname", None, time.time() + 15
    while time.time() < deadline:
        got = d.ask("policy", "rotate.sts.test")
        if got == want:
            break
        time.sleep(0.3)
    check("rotate: new id, new policy", got, want)
finally:
    check("rotate daemon exits cleanly", d.stop(), 0)
    d.cleanup()


def scrape(port):
    """{series: value} from the daemon's /metrics."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    out = {}
    for line in data.partition(b"\r\n\r\n")[2].decode().splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            out[series] = float(value)
    return out


# The cache bound: remembered failures are evicted, least recently used first, and so are
# policies whose record the store has committed (a later lookup reads it back); a policy in
# force that only memory holds never is (RFC 8461 5.1), even when such policies alone pass
# sts_cache_size.
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    mport = s.getsockname()[1]
ENTRIES, POLICIES = 'tlspolicyd_cache_entries{cache="sts"}', "tlspolicyd_sts_policies"
d = Daemon(conf_lines=STS_CONF + ["sts_cache_size = 3", f"metrics_listen = inet:127.0.0.1:{mport}"])
try:
    d.start()
    check("cap: enforce", d.ask("policy", "enforce.sts.test"), "OK " + ENFORCE)
    check_true("cap: enforce committed", d.wait_log("state_dir: enforce.sts.test: policy written"))
    failing = ["notfound", "ctype", "redirect", "syntax", "nomx", "wrongname", "untrusted",
               "expired"]
    for case in failing:
        check(f"cap: {case} fails", d.ask("policy", f"{case}.sts.test"), "NOTFOUND ")
    m = scrape(mport)
    check("cap: entries held at sts_cache_size, the stored policy evicted too",
          (m[ENTRIES], m[POLICIES]), (3.0, 0.0))
    check_true("cap: evictions", m['tlspolicyd_cache_evictions_total{cache="sts"}'] >= 6,
               str(m))
    subprocess.run([os.environ["LAB_CTL"], "--https-stop"], check=True, timeout=30)
    try:
        check("cap: the evicted policy answers from the store, policy host down",
              d.ask("policy", "enforce.sts.test"), "OK " + ENFORCE)
    finally:
        subprocess.run([os.environ["LAB_CTL"], "--https-start"], timeout=30)
    check("cap: the policy was not fetched again",
          d.log().count("mta-sts: enforce.sts.test: policy id"), 1)
    before = d.log().count("mta-sts: expired.sts.test: no policy")
    check("cap: the newest failure", d.ask("policy", "expired.sts.test"), "NOTFOUND ")
    check("cap: the newest failure is still remembered",
          d.log().count("mta-sts: expired.sts.test: no policy") - before, 0)
    before = d.log().count("mta-sts: notfound.sts.test: no policy")
    check("cap: the oldest failure", d.ask("policy", "notfound.sts.test"), "NOTFOUND ")
    check("cap: the oldest failure was forgotten: fetched again",
          d.log().count("mta-sts: notfound.sts.test: no policy") - before, 1)
finally:
    check("cap daemon exits cleanly", d.stop(), 0)
    d.cleanup()

# Without a store, policies are never evicted: they alone pass the cap, logged once.
d = Daemon(conf_lines=STS_CONF + ["sts_cache_size = 3", f"metrics_listen = inet:127.0.0.1:{mport}",
                                  "state_dir ="])
try:
    d.start()
    for case in ["enforce", "wildcard", "crlf", "split", "charset"]:
        check_true(f"cap, no store: {case} policy",
                   d.ask("policy", f"{case}.sts.test").startswith("OK "))
    m = scrape(mport)
    check("cap, no store: policies alone pass the cap", (m[ENTRIES], m[POLICIES]), (5.0, 5.0))
    check_true("cap, no store: growth past the cap logged once",
               d.log().count("rather than drop a policy") == 1, d.log()[-800:])
finally:
    check("cap, no store: daemon exits cleanly", d.stop(), 0)
    d.cleanup()


def record(domain, mx, fetched):
    return json.dumps({"version": 1, "domain": domain, "id": "1", "fetched": fetched,
                       "expires": fetched + 86400, "mode": "enforce", "max_age": 86400,
                       "mx": mx})


# Restart: policies cached, SIGKILL, web server gone, restart: enforce answers unchanged.
d = Daemon(conf_lines=STS_CONF)
try:
    d.start()
    check("restart: before", d.ask("policy", "enforce.sts.test"), "OK " + ENFORCE)
    check("restart: wildcard before", d.ask("policy", "wildcard.sts.test"),
          "OK secure match=.wildcard.sts.test servername=hostname")
    # The records are written off the event loop, just behind the answers.
    for dom in ("enforce", "wildcard"):
        check_true(f"restart: {dom} record written",
                   d.wait_log(f"state_dir: {dom}.sts.test: policy written"), d.log()[-800:])
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    d.logf.close()
    subprocess.run([os.environ["LAB_CTL"], "--https-stop"], check=True, timeout=30)
    # The per-file layout of an earlier version beside the store: migrated at start, its
    # bad records set aside as they always were.
    sts_dir = os.path.join(d.dir, "state", "sts")
    os.makedirs(sts_dir, 0o750)
    with open(os.path.join(sts_dir, "junk.test.json"), "w") as f:
        f.write("{not json")
    # A FIFO named like a record: opened without blocking, refused as not a regular file.
    os.mkfifo(os.path.join(sts_dir, "fifo.test.json"))
    # A line break in an mx pattern would add a line of its own to the rebuilt policy text.
    now = int(time.time())
    with open(os.path.join(sts_dir, "ctl.test.json"), "w") as f:
        f.write(record("ctl.test", ["mx1.ctl.test\nmx: evil.example"], now))
    with open(os.path.join(sts_dir, "ctl2.test.json"), "w") as f:
        f.write(record("ctl2.test", ["mx1.ctl2\u0001.test"], now))
    # A record from the future would stretch the policy's life past max_age.
    with open(os.path.join(sts_dir, "future.test.json"), "w") as f:
        f.write(record("future.test", ["mx1.future.test"], now + 30 * 86400))
    t0 = time.monotonic()
    d.start()
    check_true("restart: a FIFO does not hang start-up", time.monotonic() - t0 < 10)
    check_true("restart: policies stored", d.wait_log("2 MTA-STS policies stored"), d.log()[-800:])
    check_true("restart: migration counted",
               d.wait_log("0 records moved, 5 set aside, 0 expired"), d.log()[-800:])
    check_true("restart: corrupt record set aside", d.wait_log("set aside as junk.test.corrupt"))
    check_true("restart: FIFO set aside",
               d.wait_log("fifo.test.json: not a regular file; set aside as fifo.test.corrupt"),
               d.log()[-800:])
    check_true("restart: line break in mx set aside",
               d.wait_log("ctl.test.json: control character in mx list; set aside"))
    check_true("restart: control character in mx set aside",
               d.wait_log("ctl2.test.json: control character in mx list; set aside"))
    check_true("restart: record from the future set aside",
               d.wait_log("future.test.json: fetched in the future; set aside"))
    check("restart: no policy from a refused record", d.ask("policy", "ctl.test"), "NOTFOUND ")
    check("restart: enforce unchanged", d.ask("policy", "enforce.sts.test"), "OK " + ENFORCE)
    check("restart: wildcard unchanged", d.ask("policy", "wildcard.sts.test"),
          "OK secure match=.wildcard.sts.test servername=hostname")
    rc, out, err = d.postmap("enforce.sts.test", "policy")
    check("restart: postmap", (rc, out.strip()), (0, ENFORCE))
finally:
    check("restart daemon exits cleanly", d.stop(), 0)
    d.cleanup()
    subprocess.run([os.environ["LAB_CTL"], "--https-start"], timeout=30)

# max_age: 0 (RFC 8461 3.2 allows it): the policy is still cached for the floor of one hour,
# so six lookups make one fetch and one record, and the policy's own max_age is shown.
# split.sts.test's policy file (this lab's own copy) is changed for the case, then restored.
www = os.path.join(os.environ["LAB_DIR"], "www", "split", ".well-known", "mta-sts.txt")
with open(www) as f:
    saved = f.read()
d = Daemon(conf_lines=STS_CONF)
try:
    with open(www, "w") as f:
        f.write(saved.replace("max_age: 86400", "max_age: 0"))
    d.start()
    got = [d.ask("policy", "split.sts.test") for _ in range(6)]
    check("max_age 0: six lookups answered from the policy",
          got, ["OK secure match=mx1.split.sts.test servername=hostname"] * 6)
    d.wait_log("state_dir: split.sts.test: policy written", 5)
    time.sleep(0.3)
    check("max_age 0: six lookups, one fetch",
          d.log().count("mta-sts: split.sts.test: policy id"), 1)
    check("max_age 0: one record written",
          d.log().count("state_dir: split.sts.test: policy written"), 1)
    q = subprocess.run([TLSPOLICYD, "query", "--json", "-c", d.conf, "split.sts.test"],
                       capture_output=True, text=True, timeout=30)
    sts = json.loads(q.stdout)[0]["facts"]["sts"]["policy"] if q.returncode == 0 else {}
    check("max_age 0: the policy's own max_age shown, cached an hour",
          (sts.get("max_age"), sts.get("expires", 0) - sts.get("fetched", 0)), (0, 3600))
finally:
    with open(www, "w") as f:
        f.write(saved)
    check("max_age 0 daemon exits cleanly", d.stop(), 0)
    d.cleanup()
finish()
