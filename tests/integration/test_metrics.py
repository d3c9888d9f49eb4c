"""Operations: the metrics endpoint, logging of decisions, socket activation and the
operator files, against real tools.

- /metrics after a mix of lookups: `promtool check metrics` is clean, every family appears
  once with its samples together, and the counters moved by exactly what was asked
  (answers by map and answer, DNS queries, cache hits, connections, HTTP requests).
- /healthz, 404, 405, 400, 505, HEAD.
- 500 idle HTTP connections and a client that trickles its request: socketmap answers stay
  fast throughout, the HTTP connections are refused or timed out, and /metrics works again
  afterwards.
- log_decisions = info writes one line per decision; log_format = json writes one JSON
  object per line with the key escaped.
- Socket activation (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES) for socketmap and metrics.
- `promtool check rules` on contrib/prometheus, `systemd-analyze verify` on contrib/systemd
  (where systemd is installed), `man -l` on the manual pages, the Grafana dashboard parses.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (TLSPOLICYD, Daemon, check, check_true, finish, free_port, netstring,
                     read_netstring)

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OVERRIDES = "example.com secure match=.example.com\n.example.net dane-only\nlegacy.example may\n"


def http(port, request, timeout=5.0):
    """Send raw request bytes; return (status, headers text, body bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(request)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else None
    return status, head.decode(errors="replace"), body


def get(port, path="/metrics"):
    return http(port, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: test\r\n\r\n".encode())


def parse(text):
    """{series: value} from the exposition."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        series, _, value = line.rpartition(" ")
        out[series] = float(value)
    return out


def delta(before, after, series):
    return after.get(series, 0.0) - before.get(series, 0.0)


def promtool_metrics(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    return p.returncode, (p.stdout + p.stderr).strip()


def check_families(text):
    """Every family has one HELP and one TYPE, and its samples follow them, together."""
    seen, current, kind, problems = set(), None, None, []
    for line in text.splitlines():
        m = re.match(r"# (HELP|TYPE) (\S+)", line)
        if m:
            if m.group(1) == "HELP":
                if m.group(2) in seen:
                    problems.append(f"family {m.group(2)} twice")
                seen.add(m.group(2))
                current = m.group(2)
            else:
                kind = line.split()[3]
                if m.group(2) != current:
                    problems.append(f"TYPE {m.group(2)} without its HELP")
            continue
        name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
        base = name
        if kind == "histogram":
            base = re.sub(r"_(bucket|sum|count)$", "", name)
        if base != current:
            problems.append(f"sample {name} outside its family (under {current})")
    return sorted(seen), problems


def lookup_ms(d, sock, name, key):
    t = time.monotonic()
    sock.sendall(netstring(f"{name} {key}".encode()))
    r = read_netstring(sock)
    return (time.monotonic() - t) * 1000, None if r is None else r.decode()


# 1. Counters after a known mix of lookups.
port = free_port()
d = Daemon(overrides=OVERRIDES, conf_lines=[f"metrics_listen = inet:127.0.0.1:{port}",
                                             "log_level = info", "log_decisions = info"])
try:
    d.start()
    check_true("metrics endpoint announced", d.wait_log(f"metrics on http://127.0.0.1:{port}/metrics"),
               d.log()[-500:])
    st, head, body = get(port)
    check("scrape status", st, 200)
    check_true("content type", "text/plain; version=0.0.4" in head, head)
    before = parse(body.decode())

    s = d.connect()
    for _ in range(5):
        check("policy example.com", d.ask("policy", "example.com", s), "OK secure match=.example.com")
    for _ in range(3):
        check("parent probe", d.ask("policy", ".example.com", s), "NOTFOUND ")
    check("tlsoptional", d.ask("tlsoptional", "legacy.example", s), "OK may")
    check("requiretls", d.ask("requiretls", "example.com", s), "OK secure match=.example.com")
    for _ in range(2):
        check("unknown map", d.ask("nosuchmap", "example.com", s), "PERM unknown map nosuchmap")
    s.sendall(netstring(b"justoneword"))
    check_true("malformed request is PERM", read_netstring(s).decode().startswith("PERM "))
    lab = "LAB_RESOLVER" in os.environ
    if lab:
        check("dane-all.test", d.ask("policy", "dane-all.test", s), "OK dane-only")
        check("dane-all.test again (cache)", d.ask("policy", "dane-all.test", s), "OK dane-only")
    s.close()
    # A second connection, and one over nothing: accepted counts two more.
    d.ask("policy", "example.com")
    time.sleep(0.2)

    st, head, body = get(port)
    text = body.decode()
    after = parse(text)
    rc, out = promtool_metrics(text)
    check("promtool check metrics exit status", rc, 0)
    check("promtool check metrics output", out, "")

    fams, problems = check_families(text)
    check("families neither duplicated nor split", problems, [])
    for fam in ["tlspolicyd_lookups_total", "tlspolicyd_lookup_duration_seconds",
                "tlspolicyd_cache_entries", "tlspolicyd_cache_hits_total",
                "tlspolicyd_cache_misses_total", "tlspolicyd_cache_evictions_total",
                "tlspolicyd_dns_queries_total", "tlspolicyd_sts_fetches_total",
                "tlspolicyd_sts_refreshes_total", "tlspolicyd_probes_total",
                "tlspolicyd_store_writes_total", "tlspolicyd_connections_open",
                "tlspolicyd_connections_accepted_total", "tlspolicyd_connections_refused_total",
                "tlspolicyd_http_requests_total", "tlspolicyd_build_info", "tlspolicyd_up",
                "process_cpu_seconds_total", "process_resident_memory_bytes",
                "process_open_fds", "process_max_fds", "process_start_time_seconds"]:
        check_true(f"family {fam}", fam in fams)
    check_true("no domain in any label", "example" not in text and ".test" not in text)

    L = 'tlspolicyd_lookups_total{map="%s",answer="%s"}'
    check("policy/ok moved by 6", delta(before, after, L % ("policy", "ok")), 6.0 + (2 if lab else 0))
    check("policy/notfound moved by 3", delta(before, after, L % ("policy", "notfound")), 3.0)
    check("tlsoptional/ok moved by 1", delta(before, after, L % ("tlsoptional", "ok")), 1.0)
    check("requiretls/ok moved by 1", delta(before, after, L % ("requiretls", "ok")), 1.0)
    check("unknown/perm moved by 3 (2 maps, 1 malformed)", delta(before, after, L % ("unknown", "perm")), 3.0)
    total = sum(delta(before, after, k) for k in after if k.startswith("tlspolicyd_lookups_total"))
    check("all answers counted", total, 14.0 + (2 if lab else 0))
    H = 'tlspolicyd_lookup_duration_seconds_%s{map="policy"%s}'
    check("histogram count = policy answers", delta(before, after, H % ("count", "")),
          9.0 + (2 if lab else 0))
    check("histogram +Inf = count", after[H % ("bucket", ',le="+Inf"')], after[H % ("count", "")])
    check_true("overrides answers under 10 ms", delta(before, after, H % ("bucket", ',le="0.01"')) >= 9)
    check("connections accepted moved by 2", delta(before, after, "tlspolicyd_connections_accepted_total"), 2.0)
    check("http 200s on /metrics moved by 1",
          delta(before, after, 'tlspolicyd_http_requests_total{handler="metrics",code="200"}'), 1.0)
    check("up", after["tlspolicyd_up"], 1.0)
    if lab:
        dns = sum(delta(before, after, k) for k in after if k.startswith("tlspolicyd_dns_queries_total"))
        check_true("DNS queries counted", dns >= 4, str(dns))
        check_true("secure MX answers counted",
                   delta(before, after, 'tlspolicyd_dns_queries_total{type="MX",outcome="secure"}') == 1)
        check_true("TLSA answers counted",
                   delta(before, after, 'tlspolicyd_dns_queries_total{type="TLSA",outcome="secure"}') >= 1)
        check_true("DNS cache entries", after['tlspolicyd_cache_entries{cache="dns"}'] >= 4)
        check_true("DNS cache missed first", delta(before, after, 'tlspolicyd_cache_misses_total{cache="dns"}') >= 4)
        # A domain asked again is answered from its DANE facts, without asking the DNS cache.
        check("DANE facts cache missed first", delta(before, after, 'tlspolicyd_cache_misses_total{cache="dane"}'), 1.0)
        check("DANE facts cache hit after", delta(before, after, 'tlspolicyd_cache_hits_total{cache="dane"}'), 1.0)
        check_true("DANE facts cache entries", after['tlspolicyd_cache_entries{cache="dane"}'] >= 1)
    else:
        print("note: outside the lab: DNS counters not exercised")

    # Decisions at log_decisions = info, with domain, map, answer and rule.
    log = d.log()
    check_true("decision line at info",
               re.search(r": info: lookup map=policy key=example.com domain=example.com "
                         r'answer="OK secure match=.example.com" rule=policy/override', log),
               log[-800:])
    check_true("parent probe decision", 'map=policy key=.example.com answer=NOTFOUND rule=request/parent-probe' in log)

    # 2. The other paths.
    st, _, body = get(port, "/healthz")
    check("healthz", (st, body), (200, b"ok\n"))
    check("404", get(port, "/nope")[0], 404)
    check("root", get(port, "/")[0], 200)
    st, head, body = http(port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
    check("HEAD: status and no body", (st, body), (200, b""))
    check_true("HEAD: Content-Length of the body", re.search(r"Content-Length: [1-9]", head), head)
    st, head, _ = http(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    check("POST", st, 405)
    check_true("405 has Allow", "Allow: GET, HEAD" in head)
    check("garbage", http(port, b"\x16\x03\x01\x00\x05hello\r\n\r\n")[0], 400)
    check("HTTP/2 request line", http(port, b"GET / HTTP/2.0\r\n\r\n")[0], 505)
    check("oversized head", http(port, b"GET / HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n")[0], 431)
    check("query string ignored", get(port, "/metrics?format=x")[0], 200)

    # 3. 500 idle HTTP connections and a trickling client do not touch socketmap.
    trickler = socket.create_connection(("127.0.0.1", port))
    idle = []
    for _ in range(500):
        c = socket.socket()
        c.setblocking(True)
        c.connect(("127.0.0.1", port))
        idle.append(c)
    sm = d.connect()
    worst, answers, sent, t0 = 0.0, 0, 0, time.monotonic()
    times = []
    request = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    trickle_closed_at = None
    rounds = 0
    while time.monotonic() - t0 < 7.0:
        rounds += 1
        # One byte every third round: the whole request would take over 12 s.
        if rounds % 3 == 0 and sent < len(request) and trickle_closed_at is None:
            try:
                trickler.sendall(request[sent:sent + 1])
                sent += 1
            except OSError:
                trickle_closed_at = time.monotonic() - t0
        ms, r = lookup_ms(d, sm, "policy", "example.com")
        answers += r == "OK secure match=.example.com"
        worst = max(worst, ms)
        times.append(ms)
        time.sleep(0.1)
    times.sort()
    slow = sum(1 for x in times if x >= 100)
    print(f"socketmap during the HTTP flood: {answers} answers, median {times[len(times) // 2]:.1f}"
          f" ms, worst {worst:.1f} ms, {slow} at 100 ms or more")
    check_true("socketmap answered throughout", answers >= 50, str(answers))
    # An HTTP connection that held the loop (a blocking read on the trickler, a scan of the
    # 500 idle ones per event) would slow most answers, by the trickler's 0.3 s between bytes
    # or more; a busy machine delays one now and then (once 188 ms under a load of 9, in
    # scripts/test-repeat.sh): the median and nearly all answers must stay fast.
    check_true("socketmap answers stayed fast (median < 20 ms, at most 3 of them >= 100 ms)",
               times[len(times) // 2] < 20 and slow <= 3,
               f"median {times[len(times) // 2]:.1f} ms, {slow} slow, worst {worst:.1f} ms")
    trickler.settimeout(3)
    try:
        reply = trickler.recv(4096)
    except OSError:
        reply = b""
    check_true("the trickler got 408 or was closed, never an answer",
               reply.startswith(b"HTTP/1.1 408") or reply == b"", repr(reply[:40]))
    for c in idle:
        c.close()
    time.sleep(0.3)
    st, _, body = get(port)
    check("scrape works again after the flood", st, 200)
    m = parse(body.decode())
    check_true("refused HTTP connections counted (500 - 64 at least)",
               m['tlspolicyd_http_connections_total{event="refused"}'] >= 436,
               str(m['tlspolicyd_http_connections_total{event="refused"}']))
    check_true("timed-out requests counted as 408",
               m.get('tlspolicyd_http_requests_total{handler="other",code="408"}', 0) >= 1)
    check("HTTP connections all closed", m["tlspolicyd_http_connections_open"], 1.0)
    sm.close()
    check("clean exit", d.stop(), 0)
finally:
    d.cleanup()

# 4. JSON log lines, keys escaped; metrics off (the harness default) leaves no endpoint.
d = Daemon(overrides=OVERRIDES, conf_lines=["log_format = json", "log_level = info",
                                             "log_decisions = info"])
try:
    d.start()
    d.ask("policy", "example.com")
    d.ask("policy", 'ex"am\nple\\.com')
    d.ask("requiretls", ".example.net")
    time.sleep(0.2)
    check("clean exit (json)", d.stop(), 0)
    lines = [l for l in d.log().splitlines() if l.strip()]
    parsed = []
    for l in lines:
        try:
            parsed.append(json.loads(l))
        except ValueError:
            check_true("every log line is JSON", False, l)
    check_true("JSON lines have time, level, pid", all({"time", "level", "pid"} <= set(o) for o in parsed))
    lookups = [o for o in parsed if o.get("event") == "lookup"]
    check("three decisions logged", len(lookups), 3)
    if lookups:
        check("decision fields", {k: lookups[0].get(k) for k in ("level", "map", "domain", "answer", "rule")},
              {"level": "info", "map": "policy", "domain": "example.com",
               "answer": "OK secure match=.example.com", "rule": "policy/override"})
        check("hostile key escaped, one line", lookups[1].get("key"), 'ex"am\\x0aple\\\\.com')
    check_true("no metrics endpoint when metrics_listen is empty",
               not any("metrics on" in o.get("msg", "") for o in parsed))
finally:
    d.cleanup()

# 5. Socket activation: systemd's protocol by hand (sockets at fd 3.., LISTEN_PID = us).
d = Daemon(overrides=OVERRIDES)
try:
    path = os.path.join(d.dir, "activated.sock")
    us = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    us.bind(path)
    us.listen(16)
    mport = free_port()
    ms_ = socket.socket()
    ms_.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ms_.bind(("127.0.0.1", mport))
    ms_.listen(16)
    fds = [us.fileno(), ms_.fileno()]

    def place():
        # dup2 to 3 and 4 without clobbering: move both high first.
        hi = [os.dup(f) for f in fds]
        for i, f in enumerate(hi):
            os.dup2(f, 3 + i)
            os.set_inheritable(3 + i, True)

    logf = open(d.log_path, "ab")
    env = dict(os.environ, LISTEN_FDS="2", LISTEN_FDNAMES="socketmap:metrics")
    proc = subprocess.Popen(["sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"', TLSPOLICYD, "-c", d.conf,
                             "-o", f"listen=unix:{path}"],
                            stdout=logf, stderr=logf, env=env, preexec_fn=place, close_fds=False)
    d.proc, d.logf = proc, logf
    us.close()
    ms_.close()
    ready = d.wait_log(" ready;", 15)
    check_true("activated daemon ready", ready, d.log()[-600:])
    check_true("socketmap socket taken from systemd",
               f"listening on unix:{path} (socket from systemd)" in d.log(), d.log()[-600:])
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(path)
    c.sendall(netstring(b"policy example.com"))
    check("answer over the inherited unix socket", read_netstring(c), b"OK secure match=.example.com")
    c.close()
    # metrics_listen is off (the harness default): the socket named "metrics" is not used.
    check_true("unused metrics socket reported", "is named metrics but metrics_listen is off" in d.log(),
               d.log()[-600:])
    check("clean exit (activated)", d.stop(), 0)
    check_true("inherited socket file left in place", os.path.exists(path))
finally:
    d.cleanup()

# A socket systemd passes needs no binding, so the start-up check of the socket's directory
# (which a daemon under User= may not even see, e.g. Postfix's private/, mode 0700) must not
# refuse it. Here the directory is gone altogether once the socket is bound.
d = Daemon(overrides=OVERRIDES)
try:
    gone = os.path.join(d.dir, "gone")
    os.mkdir(gone)
    path = os.path.join(gone, "activated.sock")
    us = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    us.bind(path)
    us.listen(16)
    os.unlink(path)
    os.rmdir(gone)

    def place_unix():
        f = os.dup(us.fileno())
        os.dup2(f, 3)
        os.set_inheritable(3, True)

    logf = open(d.log_path, "ab")
    env = dict(os.environ, LISTEN_FDS="1", LISTEN_FDNAMES="socketmap")
    proc = subprocess.Popen(["sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"', TLSPOLICYD, "-c", d.conf,
                             "-o", f"listen=unix:{path}"],
                            stdout=logf, stderr=logf, env=env, preexec_fn=place_unix,
                            close_fds=False)
    d.proc, d.logf = proc, logf
    check_true("activated socket in a directory start-up cannot see: ready",
               d.wait_log(" ready;", 15), d.log()[-600:])
    check_true("activated socket in a directory start-up cannot see: taken from systemd",
               f"listening on unix:{path} (socket from systemd)" in d.log(), d.log()[-600:])
    check("clean exit (activated, directory gone)", d.stop(), 0)
    us.close()
finally:
    d.cleanup()

d = Daemon(overrides=OVERRIDES)
try:
    mport = free_port()
    ms_ = socket.socket()
    ms_.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ms_.bind(("127.0.0.1", mport))
    ms_.listen(16)

    def place_one():
        f = os.dup(ms_.fileno())
        os.dup2(f, 3)
        os.set_inheritable(3, True)

    logf = open(d.log_path, "ab")
    env = dict(os.environ, LISTEN_FDS="1", LISTEN_FDNAMES="metrics")
    proc = subprocess.Popen(["sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"', TLSPOLICYD, "-c", d.conf,
                             "-o", f"metrics_listen=inet:127.0.0.1:{mport}"],
                            stdout=logf, stderr=logf, env=env, preexec_fn=place_one, close_fds=False)
    d.proc, d.logf = proc, logf
    ms_.close()
    check_true("activated daemon ready (metrics)", d.wait_log(" ready;", 15), d.log()[-600:])
    check_true("metrics socket from systemd", "(socket from systemd)" in d.log() and "metrics on" in d.log(),
               d.log()[-600:])
    check("scrape over the inherited TCP socket", get(mport, "/healthz")[:3:2], (200, b"ok\n"))
    check("clean exit (activated metrics)", d.stop(), 0)
finally:
    d.cleanup()

# 6. Operator files.
rules = os.path.join(SRC, "contrib", "prometheus", "tlspolicyd.rules.yml")
p = subprocess.run(["promtool", "check", "rules", rules], capture_output=True, text=True, timeout=60)
check("promtool check rules", p.returncode, 0)
if p.returncode:
    print(p.stdout + p.stderr)
with open(os.path.join(SRC, "contrib", "grafana", "tlspolicyd.json")) as f:
    dash = json.load(f)
exprs = [t["expr"] for pnl in dash["panels"] for t in pnl["targets"]]
check_true("dashboard queries name only tlspolicyd and process metrics",
           all(re.findall(r"\b(tlspolicyd_\w+|process_\w+)", e) for e in exprs))

for page in ("tlspolicyd.8", "tlspolicyd.conf.5"):
    p = subprocess.run(["man", "--warnings", "-l", os.path.join(SRC, "doc", page)],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat"))
    check(f"man -l {page}", p.returncode, 0)
    check_true(f"{page} renders NAME and no warnings", "NAME" in p.stdout and p.stderr.strip() == "",
               p.stderr[:300])

if shutil.which("systemd-analyze"):
    tmp = tempfile.mkdtemp(prefix="tlspolicyd-units-")
    try:
        for unit in ("tlspolicyd.service", "tlspolicyd.socket"):
            with open(os.path.join(SRC, "contrib", "systemd", unit)) as f:
                text = f.read().replace("/usr/local/sbin/tlspolicyd", os.path.abspath(TLSPOLICYD))
            with open(os.path.join(tmp, unit), "w") as f:
                f.write(text)
        p = subprocess.run(["systemd-analyze", "verify", "--man=no",
                            os.path.join(tmp, "tlspolicyd.socket"), os.path.join(tmp, "tlspolicyd.service")],
                           capture_output=True, text=True, timeout=120)
        check("systemd-analyze verify", p.returncode, 0)
        if p.returncode or p.stderr.strip():
            print(p.stdout + p.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
else:
    print("note: systemd-analyze not installed; units not verified")

finish()
