"""The REQUIRETLS MX probe (daemon/requiretls/probe.c) through `tlspolicyd probe`, inside the lab
(tests/lab/dnslab.sh): every lab SMTP domain (smtplab.py; tests/lab/README.md "SMTP peers")
with the verdict draft-ietf-uta-smtp-require-tls-06 / RFC 8689 4.2.1 asks for, and then
SMTP servers of this test's own on 127.0.50.N with a throwaway PKI (root, intermediate,
leaves) for what the lab does not play: DANE-TA and DANE-EE variants, a refused STARTTLS,
a silent server, plaintext injected after STARTTLS, over-long lines, shared in-flight
probes, the result cache and its refresh in the background (a failed refresh keeps a good
result, a completed one replaces it), the concurrency bound, the probe queue's bound and
deadline, and destroying the service mid-probe.
Every run must exit without sanitizer reports and with its loop closed."""
import hashlib
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import TLSPOLICYD, check, check_true, finish  # noqa: E402

if "LAB_DIR" not in os.environ:
    raise SystemExit("test_probe.py: run it inside the lab: tests/lab/dnslab.sh python3 " + __file__)

HELO = "probe.client.test"
BASE = [f"dns_servers={os.environ['LAB_RESOLVER']}:{os.environ.get('LAB_RESOLVER_PORT', '53')}",
        "state_dir=", "log_level=warning", f"probe_helo_name={HELO}"]


def probe(args, opts=(), ca=None, timeout=60):
    """Run tlspolicyd probe --json; returns (exit status, parsed JSON or None, stderr, secs)."""
    cmd = [TLSPOLICYD, "probe", "--json"]
    for o in BASE + [f"probe_ca_file={ca or os.environ['LAB_CA_FILE']}"] + list(opts):
        cmd += ["-o", o]
    t0 = time.time()
    p = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout)
    secs = time.time() - t0
    try:
        out = json.loads(p.stdout)
    except ValueError:
        out = None
    clean = "Sanitizer" not in p.stderr and "runtime error" not in p.stderr and \
        "handles left open" not in p.stderr
    check_true(f"probe {' '.join(args)}: no sanitizer report, loop closed", clean, p.stderr[-2000:])
    return p.returncode, out, p.stderr, secs


def by_key(out):
    return {d["key"]: d for d in out or []}


# ---------------------------------------------------------------------------------------
# Part 1: the lab's SMTP domains.

def lab_domains():
    if "LAB_SMTP_ADDR_RTLS" not in os.environ:
        print("skip lab SMTP domains: this lab has no smtplab.py")
        return
    names = ["rtls.sts.test", "tlsonly.sts.test", "wrongcert.sts.test", "plain.unsigned.test",
             "rtls-dane.test", "tlsonly-dane.test", "mixed-rtls.sts.test", "stall.sts.test",
             "endless.sts.test"]
    rc, out, err, secs = probe(names, ["probe_timeout=3s"])
    check("lab: exit status (some domains fail)", rc, 1)
    d = by_key(out)
    check("lab: every domain answered", sorted(d), sorted(names))
    if sorted(d) != sorted(names):
        return

    def host(name, i=0):
        return d[name]["hosts"][i]

    def want(dom, label, i=0, **fields):
        h = host(dom, i)
        for k, v in fields.items():
            check(f"lab {dom} {h['name']}: {k}", h.get(k), v)
        return h

    h = want("rtls.sts.test", "", connected=True, starttls=True, tls=True, pkix=True,
             dane=False, tlsa=0, requiretls=True, ok=True, timed_out=False)
    check_true("lab rtls.sts.test: STARTTLS among the first caps, REQUIRETLS after",
               "REQUIRETLS" in h["caps"], h["caps"])
    check_true("lab rtls.sts.test: TLS 1.2 or later", h["tls_version"] in ("TLSv1.2", "TLSv1.3"),
               h["tls_version"])
    want("tlsonly.sts.test", "", tls=True, pkix=True, requiretls=False, ok=False)
    h = want("wrongcert.sts.test", "", tls=True, pkix=False, requiretls=True, ok=False)
    check_true("lab wrongcert: why names the name mismatch",
               "not valid for the MX host name" in h["why"], h["why"])
    h = want("plain.unsigned.test", "", connected=True, starttls=False, tls=False, ok=False)
    check_true("lab plain: why", "STARTTLS not offered" in h["why"], h["why"])
    h = want("rtls-dane.test", "", tls=True, dane=True, tlsa=1, requiretls=True, ok=True,
             addresses="secure")
    check("lab rtls-dane.test: DANE state", d["rtls-dane.test"]["dane"]["state"], "all")
    check_true("lab rtls-dane.test: why says DANE-EE", "DANE-EE 3 1 1" in h["why"], h["why"])
    want("tlsonly-dane.test", "", tls=True, dane=True, requiretls=False, ok=False)
    check("lab mixed-rtls: two MX hosts", len(d["mixed-rtls.sts.test"]["hosts"]), 2)
    want("mixed-rtls.sts.test", "", 0, name="mx1.mixed-rtls.sts.test", preference=10,
         requiretls=False, ok=False)
    want("mixed-rtls.sts.test", "", 1, name="mx2.mixed-rtls.sts.test", preference=20,
         requiretls=True, ok=True)
    h = want("stall.sts.test", "", starttls=True, tls=False, timed_out=True, ok=False)
    check_true("lab stall: why names the handshake and the bound",
               "timed out after 3000 ms in the TLS handshake" in h["why"], h["why"])
    check_true("lab stall: bounded by probe_timeout", 2900 <= h["elapsed_ms"] <= 4000,
               h["elapsed_ms"])
    h = want("endless.sts.test", "", tls=False, ok=False)
    check_true("lab endless: why names the reply bound", "more than 64 lines" in h["why"] or
               "timed out" in h["why"], h["why"])
    check_true("lab endless: bounded", h["elapsed_ms"] <= 3500, h["elapsed_ms"])
    check_true("lab: all nine domains within 12 s", secs < 12, secs)

    # Only passing domains: status 0; the text form says so per host.
    rc, out, err, _ = probe(["rtls.sts.test", "rtls-dane.test"])
    check("lab: exit status when every domain has a REQUIRETLS host", rc, 0)
    p = subprocess.run([TLSPOLICYD, "probe"] + sum((["-o", o] for o in BASE + [
        f"probe_ca_file={os.environ['LAB_CA_FILE']}"]), []) + ["mixed-rtls.sts.test"],
        capture_output=True, text=True, timeout=30)
    lines = p.stdout.splitlines()
    check("lab text: a domain line and a line per host address", len(lines), 3)
    check_true("lab text: mx1 not ok", len(lines) > 1 and "mx 10 mx1.mixed-rtls.sts.test "
               "[127.0.40.2]: REQUIRETLS not ok" in lines[1], lines)
    check_true("lab text: mx2 ok", len(lines) > 2 and "REQUIRETLS ok" in lines[2], lines)

    # Lookups that give up on the probe (lookup_timeout < probe_timeout, one probe slot held
    # by the stalling MX): the first abandons its running probe, the next ones theirs still
    # queued, which go from the queue (lookup.c on_deadline, rtls_cancel). No sanitizer
    # report, and the loop closes.
    cmd = [TLSPOLICYD, "query", "--json", "--map", "requiretls"]
    for o in BASE + [f"probe_ca_file={os.environ['LAB_CA_FILE']}",
                     f"sts_ca_file={os.environ['LAB_CA_FILE']}", "sts_allow_private=yes",
                     "lookup_timeout=1s", "probe_timeout=4s", "probe_max_concurrent=1"]:
        cmd += ["-o", o]
    t0 = time.time()
    p = subprocess.run(cmd + ["stall.sts.test", "rtls.sts.test", "rtls.sts.test"],
                       capture_output=True, text=True, timeout=60)
    secs = time.time() - t0
    check_true("lab query behind a stalled probe: no sanitizer report, loop closed",
               "Sanitizer" not in p.stderr and "runtime error" not in p.stderr and
               "handles left open" not in p.stderr, p.stderr[-2000:])
    try:
        answers = [d["answer"] for d in json.loads(p.stdout)]
    except (ValueError, KeyError, TypeError):
        answers = p.stdout[-500:]
    check("lab query behind a stalled probe: each lookup times out",
          answers, ["DNS lookups did not finish within lookup_timeout (1000 ms)"] * 3)
    check_true("lab query behind a stalled probe: bounded", secs < 8, secs)

    # Issue 10.2: two DANE hosts, mx1 good (its AAAA refuses), mx2's TLSA matches nothing.
    # dane-only keeps Postfix off mx2, so the REQUIRETLS answer is dane-only, not a 5.7.30
    # that says no authenticating host advertises REQUIRETLS (mx1 does).
    cmd = [TLSPOLICYD, "query", "--json"]
    for o in BASE + [f"probe_ca_file={os.environ['LAB_CA_FILE']}"]:
        cmd += ["-o", o]
    got = {}
    for m in ("requiretls", "policy"):
        p = subprocess.run(cmd + ["--map", m, "rtls-dane-two.test"], capture_output=True,
                           text=True, timeout=60)
        check_true(f"lab rtls-dane-two {m}: no sanitizer report", "Sanitizer" not in p.stderr
                   and "runtime error" not in p.stderr, p.stderr[-2000:])
        try:
            d = json.loads(p.stdout)[0]
            got[m] = (d["status"], d["answer"], d["rule"])
        except (ValueError, KeyError, IndexError, TypeError):
            got[m] = p.stdout[-500:]
    check("lab rtls-dane-two requiretls: dane-only (mx1 qualifies, mx2 cannot authenticate)",
          got["requiretls"], ("OK", "dane-only", "requiretls/dane-only"))
    check("lab rtls-dane-two policy: dane-only", got["policy"],
          ("OK", "dane-only", "policy/dane-only"))

    # What smtplab.py saw: our EHLO name, SNI, and a QUIT in each session.
    log = open(os.environ["LAB_SMTP_LOG"], errors="replace").read()
    check_true("lab log: EHLO with probe_helo_name", f"C: EHLO {HELO}" in log)
    check_true("lab log: SNI is the MX host name", "sni=mx.rtls.sts.test" in log)
    check_true("lab log: the probe says QUIT", "C: QUIT" in log)


# ---------------------------------------------------------------------------------------
# Part 2: servers of our own.

PORT = 2525
tmp = tempfile.mkdtemp(prefix="test-probe-")


def openssl(*args):
    return subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp).stdout


def make_ca(name, issuer=None):
    ext = os.path.join(tmp, f"{name}.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
    if issuer is None:
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj",
                f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    else:
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.pem", "-CAkey",
                f"{issuer}.key", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
                "-extfile", ext)


def make_leaf(name, dns, issuer):
    harness.make_leaf(tmp, name, dns, issuer)
    # The server sends its chain: the leaf, then the intermediate.
    with open(os.path.join(tmp, f"{name}-chain.pem"), "w") as f:
        f.write(open(os.path.join(tmp, f"{name}.pem")).read())
        f.write(open(os.path.join(tmp, f"{issuer}.pem")).read())


def der(name):
    return ssl.PEM_cert_to_DER_cert(open(os.path.join(tmp, f"{name}.pem")).read())


def spki(name):
    pub = openssl("x509", "-in", f"{name}.pem", "-pubkey", "-noout")
    return subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                          capture_output=True, check=True).stdout


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def sha512(b):
    return hashlib.sha512(b).hexdigest()


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.conns = 0
        self.active = 0
        self.max_active = 0
        self.quits = 0

    def enter(self):
        with self.lock:
            self.conns += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def leave(self):
        with self.lock:
            self.active -= 1


class Server(threading.Thread):
    """One listening socket with one behaviour; a thread per session."""

    def __init__(self, addr, behaviour, leaf=None, stats=None):
        super().__init__(daemon=True)
        self.behaviour = behaviour
        self.stats = stats or Stats()
        self.ctx = None
        if leaf:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(os.path.join(tmp, f"{leaf}-chain.pem"),
                                     os.path.join(tmp, f"{leaf}.key"))
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, PORT))
        self.sock.listen(64)
        self.start()

    def run(self):
        while True:
            c, _ = self.sock.accept()
            threading.Thread(target=self.session, args=(c,), daemon=True).start()

    def session(self, c):
        self.stats.enter()
        state = {"left": False}
        try:
            self.converse(c, state)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            if not state["left"]:
                self.stats.leave()
            try:
                c.close()
            except OSError:
                pass

    def converse(self, c, state):
        b = self.behaviour
        c.settimeout(20)
        if b == "silent":
            time.sleep(15)
            return
        if b == "slowbanner":
            time.sleep(0.4)
        if b == "noquit":
            time.sleep(0.3)
        if b == "badbanner":
            c.sendall(b"554 5.7.1 go away\r\n")
            c.recv(100)
            return
        c.sendall(b"220 own.test ESMTP\r\n")
        f = c.makefile("rb")
        tls = False
        while True:
            line = f.readline(1000)
            if not line:
                return
            cmd = line.strip().upper()
            if cmd.startswith(b"EHLO"):
                if b == "longline" and not tls:
                    c.sendall(b"250-own.test\r\n250-X" + b"y" * 600 + b"\r\n250 STARTTLS\r\n")
                    continue
                caps = [b"own.test", b"PIPELINING", b"SIZE 1000"]
                # "dropping": REQUIRETLS in the first session only (a real change of the host).
                if not tls:
                    caps.append(b"STARTTLS")
                elif b != "dropping" or self.stats.conns == 1:
                    caps.append(b"REQUIRETLS")
                c.sendall(b"".join(b"250-" + x + b"\r\n" for x in caps[:-1]) +
                          b"250 " + caps[-1] + b"\r\n")
            elif cmd == b"STARTTLS" and not tls:
                # "fading": TLS in the first session only, then refused (the host changed).
                if b == "refuse" or (b == "fading" and self.stats.conns > 1):
                    c.sendall(b"454 4.7.0 TLS not available\r\n")
                    continue
                # "inject": plaintext after the 220, which the client must drop (RFC 3207 6).
                c.sendall(b"220 2.0.0 go ahead\r\n" +
                          (b"250-injected\r\n250 REQUIRETLS\r\n" if b == "inject" else b""))
                c = self.ctx.wrap_socket(c, server_side=True)
                f = c.makefile("rb")
                tls = True
            elif cmd == b"QUIT" and b == "noquit":
                # Holds the client's slot until its QUIT grace runs out.
                time.sleep(5)
                return
            elif cmd == b"QUIT":
                with self.stats.lock:
                    self.stats.quits += 1
                # Counted out before the 221: the client frees its slot only after it.
                self.stats.leave()
                state["left"] = True
                c.sendall(b"221 2.0.0 bye\r\n")
                return
            else:
                c.sendall(b"502 5.5.1 no\r\n")


def own_servers():
    make_ca("root")
    make_ca("inter", issuer="root")
    make_leaf("good", "mx.own.test", "inter")
    make_leaf("wrong", "other.own.test", "inter")
    root = os.path.join(tmp, "root.pem")
    addr = {n: f"127.0.50.{i}" for i, n in enumerate(
        ["good", "wrongname", "refuse", "silent", "badbanner", "longline", "inject",
         "slow1", "slow2", "slow3", "slow4", "silent2", "fading", "noquit", "dropping",
         "queued1", "queued2"] + [f"stall{i}" for i in range(1, 9)], start=1)}
    good = Server(addr["good"], "rtls", "good")
    Server(addr["wrongname"], "rtls", "wrong")
    Server(addr["refuse"], "refuse", "good")
    Server(addr["silent"], "silent")
    Server(addr["silent2"], "silent")
    Server(addr["badbanner"], "badbanner")
    Server(addr["longline"], "longline", "good")
    Server(addr["inject"], "inject", "good")
    fading = Server(addr["fading"], "fading", "good")
    dropping = Server(addr["dropping"], "dropping", "good")
    Server(addr["noquit"], "noquit", "good")
    queued = [Server(addr[n], "silent") for n in ("queued1", "queued2")]
    stalls = [Server(addr[f"stall{i}"], "silent") for i in range(1, 9)]
    slow = Stats()
    for n in ("slow1", "slow2", "slow3", "slow4"):
        Server(addr[n], "slowbanner", "good", stats=slow)
    port = ["--port", str(PORT)]

    def one(host, a, tlsa=(), opts=(), ca=root, extra=()):
        args = port + ["--connect", a] + sum((["--tlsa", t] for t in tlsa), []) + list(extra)
        rc, out, err, secs = probe(args + [host], opts, ca=ca)
        hosts = out[0]["hosts"] if out else []
        return rc, hosts, secs

    inter_cert, inter_spki = der("inter"), spki("inter")
    leaf_cert, leaf_spki = der("good"), spki("good")

    # PKIX against our root, through the intermediate the server sends.
    rc, h, _ = one("mx.own.test", addr["good"])
    check("own good: exit status", rc, 0)
    check("own good: tls, pkix, requiretls", (h[0]["tls"], h[0]["pkix"], h[0]["requiretls"]),
          (True, True, True))
    check("own good: DANE not tried", (h[0]["dane"], h[0]["tlsa"]), (False, 0))
    rc, h, _ = one("MX.Own.Test", addr["good"])
    check("own good: the name compares without case", h[0]["pkix"], True)

    # DANE-TA (RFC 7672 3.1.2): the intermediate is in the chain; any bundle.
    for label, rec in [("2 0 1", f"2 0 1 {sha256(inter_cert)}"),
                       ("2 1 1", f"2 1 1 {sha256(inter_spki)}"),
                       ("2 1 2", f"2 1 2 {sha512(inter_spki)}"),
                       ("2 0 0", f"2 0 0 {inter_cert.hex()}")]:
        rc, h, _ = one("mx.own.test", addr["good"], [rec], ca=os.environ["LAB_CA_FILE"])
        check(f"own DANE-TA {label}: dane ok without PKIX", (h[0]["dane"], h[0]["pkix"]),
              (True, False))
        check(f"own DANE-TA {label}: verdict ok (DANE decides)", (rc, h[0]["ok"]), (0, True))
    rc, h, _ = one("mx.own.test", addr["wrongname"], [f"2 0 1 {sha256(inter_cert)}"])
    check("own DANE-TA, leaf for another name: no match (3.2.2 names)", h[0]["dane"], False)
    rc, h, _ = one("mx.own.test", addr["good"], [f"2 0 1 {sha256(der('root'))}"])
    check("own DANE-TA of a CA not in the chain: unsupported, no match", h[0]["dane"], False)
    check("own ... but PKIX still holds, the verdict follows DANE", (h[0]["pkix"], h[0]["ok"]),
          (True, False))

    # DANE-EE (RFC 7672 3.1.1): the leaf itself; names and the bundle do not matter.
    for label, rec in [("3 1 1", f"3 1 1 {sha256(leaf_spki)}"),
                       ("3 0 1", f"3 0 1 {sha256(leaf_cert)}"),
                       ("3 1 2", f"3 1 2 {sha512(leaf_spki)}"),
                       ("3 0 0", f"3 0 0 {leaf_cert.hex()}")]:
        rc, h, _ = one("mx.own.test", addr["good"], [rec], ca=os.environ["LAB_CA_FILE"])
        check(f"own DANE-EE {label}: dane ok", h[0]["dane"], True)
    wrong_spki = spki("wrong")
    rc, h, _ = one("mx.own.test", addr["wrongname"], [f"3 1 1 {sha256(wrong_spki)}"])
    check("own DANE-EE on a leaf for another name: dane ok, pkix not",
          (h[0]["dane"], h[0]["pkix"]), (True, False))
    rc, h, _ = one("mx.own.test", addr["good"], [f"3 1 1 {'00' * 32}", f"3 1 1 {'11' * 32}"])
    check("own DANE with no matching record: no", (h[0]["dane"], h[0]["tlsa"]), (False, 2))
    check_true("own DANE no match: why", "no TLSA record matched" in h[0]["why"], h[0]["why"])
    rc, h, _ = one("mx.own.test", addr["good"], [f"1 1 1 {sha256(leaf_spki)}"])
    check("own PKIX-EE(1) records are not used for SMTP (RFC 7672 3.1.3)", h[0]["dane"], False)

    # Failures and their reasons.
    rc, h, _ = one("mx.own.test", addr["refuse"])
    check("own refuse: starttls offered, no tls", (h[0]["starttls"], h[0]["tls"]), (True, False))
    check_true("own refuse: why", "STARTTLS refused: 454" in h[0]["why"], h[0]["why"])
    rc, h, secs = one("mx.own.test", addr["silent"], opts=["probe_timeout=1s"])
    check("own silent: timed out", h[0]["timed_out"], True)
    check_true("own silent: why", "timed out after 1000 ms waiting for the banner" in h[0]["why"],
               h[0]["why"])
    check_true("own silent: bounded", 900 <= h[0]["elapsed_ms"] <= 1600 and secs < 5,
               (h[0]["elapsed_ms"], secs))
    rc, h, _ = one("mx.own.test", addr["badbanner"])
    check_true("own 554 banner: why", "banner refused the session: 554" in h[0]["why"],
               h[0]["why"])
    rc, h, _ = one("mx.own.test", addr["longline"])
    check_true("own over-long line: why", "over 512 octets" in h[0]["why"], h[0]["why"])
    rc, h, _ = one("mx.own.test", addr["inject"])
    check("own injection after STARTTLS: dropped, TLS and REQUIRETLS from the real EHLO",
          (h[0]["tls"], h[0]["pkix"], h[0]["requiretls"]), (True, True, True))
    rc, h, _ = one("bad_name", addr["good"])
    check("own bad host name: usage error or refusal", rc in (1,), True)
    rc, h, _ = one("mx.own.test", "127.0.50.250")
    check("own nobody listening: no connection", (h[0]["connected"], h[0]["ok"]), (False, False))
    check_true("own nobody listening: why", "no connection to 127.0.50.250 port 2525" in
               h[0]["why"], h[0]["why"])

    # One probe for many waiters, then the cache.
    before = good.stats.conns
    rc, h, _ = one("mx.own.test", addr["good"], extra=["--repeat", "5"])
    check("own shared: five results", [x["ok"] for x in h], [True] * 5)
    check("own shared: one connection", good.stats.conns - before, 1)
    before = good.stats.conns
    rc, out, err, _ = probe(port + ["--connect", addr["good"], "mx.own.test", "mx.own.test"],
                            ca=root)
    check("own cache: second answer from the cache",
          [d["hosts"][0]["from_cache"] for d in out or []], [False, True])
    check("own cache: one connection", good.stats.conns - before, 1)
    before = good.stats.conns
    rc, out, err, _ = probe(port + ["--connect", addr["good"], "mx.own.test", "mx.own.test"],
                            ["probe_ttl=0"], ca=root)
    check("own probe_ttl=0: nothing cached", [d["hosts"][0]["from_cache"] for d in out or []],
          [False, False])
    check("own probe_ttl=0: two connections", good.stats.conns - before, 2)
    time.sleep(0.3)
    check("own: every session ended with QUIT", good.stats.quits, good.stats.conns)

    # Refresh in the background (probe_ttl=6s, asked every 1.7 s): at 1.7 s the cached result
    # is simply answered; at 3.4 s, past half its lifetime, it is answered at once and probed
    # again behind the answer, and that refresh fails (STARTTLS refused). The good result is
    # not replaced by the failure: at 5.1 s it is still answered from the cache, until its own
    # expiry; at 6.8 s, expired, the host is probed again and the failure goes to the asker.
    rc, out, err, secs = probe(port + ["--connect", addr["fading"], "--wait", "1700"] +
                               ["mx.own.test"] * 5, ["probe_ttl=6s"], ca=root)
    hs = [d["hosts"][0] for d in out or []]
    check("own refresh failure: probed, answered from the cache three times, probed again",
          [x["from_cache"] for x in hs], [False, True, True, True, False])
    check("own refresh failure: the good result kept until its expiry, then the failure",
          [(x["tls"], x["requiretls"], x["ok"]) for x in hs],
          [(True, True, True)] * 4 + [(False, False, False)])
    check_true("own refresh failure: the new probe says why",
               len(hs) == 5 and "STARTTLS refused: 454" in hs[4]["why"], hs[4:])
    check("own refresh failure: three connections (probe, refresh, probe)",
          fading.stats.conns, 3)
    check("own refresh failure: exit status follows the last answer", rc, 1)

    # A refresh that completes an authenticated TLS session replaces the result, whatever it
    # says: here REQUIRETLS is no longer advertised.
    rc, out, err, secs = probe(port + ["--connect", addr["dropping"], "--wait", "1700"] +
                               ["mx.own.test"] * 4, ["probe_ttl=6s"], ca=root)
    hs = [d["hosts"][0] for d in out or []]
    check("own refresh change: probed, then answered from the cache three times",
          [x["from_cache"] for x in hs], [False, True, True, True])
    check("own refresh change: REQUIRETLS until the refresh, then the refreshed result",
          [(x["tls"], x["pkix"], x["requiretls"]) for x in hs],
          [(True, True, True)] * 3 + [(True, True, False)])
    check("own refresh change: two connections, the probe and one refresh",
          dropping.stats.conns, 2)

    # probe_max_concurrent bounds connections at once; the rest wait their turn.
    args = port + sum((["--connect", addr[n]] for n in ("slow1", "slow2", "slow3", "slow4")), [])
    rc, out, err, secs = probe(args + ["mx.own.test"], ["probe_max_concurrent=2"], ca=root)
    h = out[0]["hosts"] if out else []
    check("own concurrency: four results, all ok", [x["ok"] for x in h], [True] * 4)
    check("own concurrency: at most two at once", slow.max_active, 2)
    check_true("own concurrency: queued ones waited", secs >= 0.8, secs)

    # The queue's bound: 4 * probe_max_concurrent probes wait; beyond them an asker is told at
    # once, without a connection and without caching it.
    args = port + sum((["--connect", addr[f"stall{i}"]] for i in range(1, 9)), [])
    rc, out, err, secs = probe(args + ["mx.own.test"],
                               ["probe_max_concurrent=1", "probe_timeout=1s"], ca=root)
    h = out[0]["hosts"] if out else []
    full = [x["address"] for x in h if "probe queue full" in x["why"]]
    check("own queue full: the last three of eight are turned away", full,
          [addr[f"stall{i}"] for i in (6, 7, 8)])
    check("own queue full: a failure at once, counted as a time-out",
          [(x["timed_out"], x["connected"], x["elapsed_ms"], x["from_cache"]) for x in h
           if "probe queue full" in x["why"]], [(True, False, 0, False)] * 3)
    time.sleep(0.3)
    check("own queue full: no connection for them", [s.stats.conns for s in stalls[5:]],
          [0, 0, 0])
    check("own queue full: the first one ran", stalls[0].stats.conns, 1)
    check_true("own queue full: the queued ones bounded by the queue deadline", secs < 6, secs)
    rc, out, err, _ = probe(port + ["--connect", addr["good"], "--connect", addr["good"],
                                    "mx.own.test"], ["probe_max_concurrent=1"], ca=root)
    h = out[0]["hosts"] if out else []
    check("own queue: the same probe twice is one, not a second queue place",
          [x["ok"] for x in h], [True, True])

    # The queue's deadline: with one slot, held by a probe whose server never answers QUIT
    # (the slot is free only after the QUIT grace, here probe_timeout), the probes queued
    # behind it are dropped after probe_timeout in the queue, without a connection.
    args = port + ["--connect", addr["noquit"], "--connect", addr["queued1"],
                   "--connect", addr["queued2"]]
    rc, out, err, secs = probe(args + ["mx.own.test"],
                               ["probe_max_concurrent=1", "probe_timeout=1s"], ca=root)
    h = out[0]["hosts"] if out else []
    check("own queue deadline: the running probe completes", [x["ok"] for x in h[:1]], [True])
    check("own queue deadline: the queued ones time out without a connection",
          [(x["timed_out"], x["connected"], x["from_cache"]) for x in h[1:]],
          [(True, False, False)] * 2)
    check_true("own queue deadline: why says so", len(h) == 3 and all(
        "waited in the probe queue longer than probe_timeout (1000 ms)" in x["why"]
        for x in h[1:]), [x["why"] for x in h])
    check("own queue deadline: their servers saw nobody", [q.stats.conns for q in queued], [0, 0])
    check_true("own queue deadline: answered after about probe_timeout", secs < 4, secs)

    # Destroying the service with probes in flight: no callbacks, no leaks, loop closed.
    rc, out, err, secs = probe(port + ["--connect", addr["silent2"], "--repeat", "3",
                                       "--destroy-after", "300", "mx.own.test"], ca=root)
    h = out[0]["hosts"] if out else []
    check("own destroy: exit 1 (not 2: the loop closed)", rc, 1)
    check("own destroy: probes abandoned", [x["done"] for x in h], [False] * 3)
    check_true("own destroy: at once", secs < 5, secs)


lab_domains()
own_servers()
finish()
