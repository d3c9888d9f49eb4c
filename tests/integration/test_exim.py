"""Exim integration (contrib/exim): Debian's real exim binary (exim4-daemon-heavy, unpacked by
scripts/exim-extract.sh, not installed) runs the dlfunc module against a running tlspolicyd.

1. `exim -C CONF -be '${dlfunc{SO}{FN}{DOMAIN}{TAG}{SOCKET}}'` for each answer kind (overrides,
   DANE, MTA-STS, REQUIRETLS refusals, TEMP, PERM) and each function; then with the daemon
   stopped: the decision functions fail the expansion (DEFER) with a clear message, the
   host-list functions give their strictest list.
2. One exim process, many expansions: the daemon sees one connection.
3. End to end: an Exim instance with contrib/exim/exim.conf unchanged (paths set with -D)
   delivers test messages to SMTP sinks on the lab's MX addresses; the test reads Exim's main
   log and compares delivered / deferred / bounced, with the reason, against TABLE.

The module runs under AddressSanitizer when the build is instrumented: libasan is preloaded
into exim (LD_PRELOAD) and every exim run's stderr is checked for sanitizer reports.

Runs inside the DNS lab (tests/lab/dnslab.sh): lab DNS gives the MX hosts, DNSSEC and MTA-STS.
"""
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

from harness import BUILD, TLSPOLICYD, Daemon, check, check_true, finish

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
SO = os.path.join(BUILD, "contrib", "exim", "tlspolicyd_exim.so")
CONF = os.path.join(TOP, "contrib", "exim", "exim.conf")
CACHE = os.environ.get("EXIM_CACHE", "/var/cache/tlspolicyd-exim")

if "LAB_RESOLVER" not in os.environ:
    print("run inside the lab: tests/lab/dnslab.sh python3 tests/integration/test_exim.py")
    sys.exit(2)

if not os.path.exists(SO):
    print(f"FAIL {SO} was not built: install exim4-dev (scripts/deps.sh test) and rebuild")
    check("Exim module built", False, True)
    finish()

# The exim binary: unpacked outside the lab by scripts/deps.sh test (the lab has no network);
# exim-extract.sh only finds it here.
p = subprocess.run([os.path.join(TOP, "scripts", "exim-extract.sh"), CACHE],
                   capture_output=True, text=True, timeout=600)
EXIM = p.stdout.strip().splitlines()[-1] if p.returncode == 0 and p.stdout.strip() else ""
if not EXIM or not os.access(EXIM, os.X_OK):
    print(f"FAIL no exim binary: {p.stderr.strip()}")
    check("exim binary available (scripts/exim-extract.sh)", False, True)
    finish()

# ASan: an instrumented module needs the runtime loaded first.
ENV = dict(os.environ)
ldd = subprocess.run(["ldd", SO], capture_output=True, text=True).stdout
if "libasan" in ldd:
    pre = []
    for lib in ("libasan.so", "libubsan.so"):
        if lib.split(".")[0] in ldd:
            pre.append(subprocess.run(["gcc", f"-print-file-name={lib}"], capture_output=True,
                                      text=True).stdout.strip())
    ENV["LD_PRELOAD"] = ":".join(pre)
    # Exim's own allocations live in its pools until exit; leak reports would be Exim's.
    ENV["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
    ENV["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    print(f"module is ASan-instrumented: LD_PRELOAD={ENV['LD_PRELOAD']}")
ASAN = "libasan" in ldd
sanitizer_reports = []

WORK = tempfile.mkdtemp(prefix="tlspolicyd-exim-")
os.chmod(WORK, 0o755)


def exim(args, stdin=None, timeout=120):
    p = subprocess.run([EXIM] + args, input=stdin, capture_output=True, text=True,
                       timeout=timeout, env=ENV)
    for stream in (p.stdout, p.stderr):
        if "Sanitizer" in stream or "runtime error:" in stream:
            sanitizer_reports.append(stream)
    return p


# A minimal configuration for -be: spool and log in the work directory.
BECONF = os.path.join(WORK, "be.conf")
with open(BECONF, "w") as f:
    f.write(f"spool_directory = {WORK}/be-spool\nlog_file_path = {WORK}/be-%slog\n"
            "keep_environment =\n")


def be(expr):
    """exim -be EXPR: the expansion, or 'Failed: ...' (exim exits 0 either way)."""
    p = exim(["-C", BECONF, "-be", expr])
    return p.stdout.strip()


def dl(fn, domain, tag="policy", sock=None):
    return be("${dlfunc{%s}{%s}{%s}{%s}{%s}}" % (SO, fn, domain, tag, sock or d.sock))


# ------------------------------------------------------------------------------------------
# Certificates for the SMTP sinks: a CA of our own, one certificate naming every MX host the
# sinks play, and one naming none of them.
PKI = os.path.join(WORK, "pki")
os.mkdir(PKI)


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=PKI)


def make_pki(names):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=exim test CA")
    for name, sans in (("good", names), ("wrong", ["mx.elsewhere.test"])):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={sans[0]}")
        with open(os.path.join(PKI, f"{name}.ext"), "w") as f:
            f.write("subjectAltName=" + ",".join("DNS:" + s for s in sans) + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")


# ------------------------------------------------------------------------------------------
# SMTP sinks: one thread per listening address; each records what it received.
class Sink:
    def __init__(self, name, addr, tls=None, requiretls=False):
        self.name, self.addr, self.tls, self.requiretls = name, addr, tls, requiretls
        self.received = []  # (rcpts, tls_version or None, data)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, 25))
        self.sock.listen(16)
        self.ctx = None
        if tls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(os.path.join(PKI, f"{tls}.pem"),
                                     os.path.join(PKI, f"{tls}.key"))
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(c,), daemon=True).start()

    def session(self, c):
        c.settimeout(30)
        f = c.makefile("rwb")
        tlsver, rcpts = None, []

        def say(line):
            f.write(line.encode() + b"\r\n")
            f.flush()
        try:
            say(f"220 {self.name} ESMTP sink")
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line.decode("ascii", "replace").strip()
                verb = cmd.split(" ")[0].upper()
                if verb in ("EHLO", "HELO"):
                    caps = [self.name, "PIPELINING", "8BITMIME"]
                    if self.ctx and not tlsver:
                        caps.append("STARTTLS")
                    if self.requiretls and tlsver:
                        caps.append("REQUIRETLS")
                    for i, cap in enumerate(caps):
                        say(("250 " if i == len(caps) - 1 else "250-") + cap)
                elif verb == "STARTTLS" and self.ctx and not tlsver:
                    say("220 go ahead")
                    f.close()
                    c = self.ctx.wrap_socket(c, server_side=True)
                    f = c.makefile("rwb")
                    tlsver = c.version()
                elif verb == "MAIL":
                    rcpts = []
                    say("250 ok")
                elif verb == "RCPT":
                    rcpts.append(cmd[8:].strip())
                    say("250 ok")
                elif verb == "DATA":
                    say("354 go on")
                    data = b""
                    while True:
                        l2 = f.readline()
                        if not l2 or l2 in (b".\r\n", b".\n"):
                            break
                        data += l2
                    self.received.append((rcpts, tlsver, data.decode("utf-8", "replace")))
                    say(f"250 queued as {self.name}-{len(self.received)}")
                elif verb == "QUIT":
                    say("221 bye")
                    return
                elif verb in ("RSET", "NOOP"):
                    say("250 ok")
                else:
                    say("502 not implemented")
        except (OSError, ssl.SSLError):
            return
        finally:
            try:
                c.close()
            except OSError:
                pass


def lab_addr(name):
    return socket.gethostbyname(name)


# ------------------------------------------------------------------------------------------
OVERRIDES = """\
over-secure.example  secure match=.example.com:mx.other.example servername=hostname
.over-dane.example   dane-only
over-may.example     may
over-none.example    none
over-enc.example     encrypt
over-fp.example      fingerprint match=AA:BB
over-verify.example  verify
over-long.example    secure servername=hostname match=mx00.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx01.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx02.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx03.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx04.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx05.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx06.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx07.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx08.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx09.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx10.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx11.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx12.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx13.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx14.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx15.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx16.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx17.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx18.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx19.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx20.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx21.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx22.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx23.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx24.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx25.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx26.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx27.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx28.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx29.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx30.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example:mx31.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.long.example
# End-to-end domains (the lab's sts.test cases without a policy of their own)
notxt.sts.test       encrypt
badtxt.sts.test      secure match=mx9.elsewhere.test servername=hostname
redirect.sts.test    none
ctype.sts.test       fingerprint match=AA:BB
"""

lab_ca = os.environ.get("LAB_CA_FILE", "")
conf = ["socket_mode = 0666", "sts_allow_private = yes"]
if lab_ca:
    conf.append(f"sts_ca_file = {lab_ca}")
d = Daemon(overrides=OVERRIDES, conf_lines=conf)
# A daemon built before metrics existed does not know the harness's "metrics_listen =".
t = subprocess.run([TLSPOLICYD, "-c", d.conf, "-t"], capture_output=True, text=True)
if t.returncode != 0 and "metrics_listen" in t.stderr:
    with open(d.conf) as f:
        kept = [l for l in f if not l.startswith("metrics_listen")]
    with open(d.conf, "w") as f:
        f.writelines(kept)
# The MX probe (REQUIRETLS), where the daemon has one, must trust the sinks' CA.
probe = subprocess.run([TLSPOLICYD, "-c", d.conf, "-p"], capture_output=True, text=True).stdout
HAS_PROBE = "probe_ca_file" in probe
if HAS_PROBE:
    with open(d.conf, "a") as f:
        f.write(f"probe_ca_file = {PKI}/ca.pem\nprobe_timeout = 3s\n")

try:
    mxnames = ["mx1.enforce.sts.test", "mx1.wildcard.sts.test", "mx1.testing.sts.test",
               "mx1.notxt.sts.test", "mx1.badtxt.sts.test", "mx1.redirect.sts.test",
               "mx1.ctype.sts.test", "mx1.charset.sts.test", "mx.unsigned.test",
               "mx1.dane-all.test", "mx2.dane-all.test"]
    make_pki(mxnames)
    d.start()

    # ---------------------------------------------------------------- 1. answer kinds (-be)
    # (label, function, domain, tag, want: exact string, or a compiled regex)
    R = re.compile
    rows = [
        ("override secure: query", "query", "over-secure.example", "policy",
         "OK secure match=.example.com:mx.other.example servername=hostname"),
        ("override secure: route", "route", "over-secure.example", "policy", "deliver"),
        ("override secure: level", "level", "over-secure.example", "policy", "secure"),
        ("override secure: require_tls", "require_tls", "over-secure.example", "policy", "*"),
        ("override secure: verify_hosts", "verify_hosts", "over-secure.example", "policy",
         r"*.example.com : ^(?i)mx\.other\.example$"),
        ("override secure: ignore_hosts", "ignore_hosts", "over-secure.example", "policy",
         r"!*.example.com : !^(?i)mx\.other\.example$ : *"),
        ("override secure: require_dane", "require_dane", "over-secure.example", "policy", ""),
        ("override verify: verify_hosts (hostname)", "verify_hosts", "over-verify.example",
         "policy", "*"),
        ("override verify: ignore_hosts (any MX)", "ignore_hosts", "over-verify.example",
         "policy", ""),
        ("override parent dane-only: level", "level", "mx.over-dane.example", "policy",
         "dane-only"),
        ("override dane-only: require_dane", "require_dane", "a.over-dane.example", "policy", "*"),
        ("override dane-only: require_tls", "require_tls", "a.over-dane.example", "policy", "*"),
        ("override may: require_tls", "require_tls", "over-may.example", "policy", ""),
        ("override may: try_dane", "try_dane", "over-may.example", "policy", ""),
        ("override none: avoid_tls", "avoid_tls", "over-none.example", "policy", "*"),
        ("override encrypt: require_tls", "require_tls", "over-enc.example", "policy", "*"),
        ("override encrypt: verify_hosts", "verify_hosts", "over-enc.example", "policy", ""),
        ("override fingerprint: route defers", "route", "over-fp.example", "policy",
         R(r"^defer tlspolicyd: policy .fingerprint match=AA:BB. cannot be applied: .*Exim")),
        ("override fingerprint: level fails", "level", "over-fp.example", "policy",
         R(r"^Failed: tlspolicyd: policy .fingerprint")),
        ("override fingerprint: require_tls strict", "require_tls", "over-fp.example",
         "policy", "*"),
        ("DANE all hosts: level", "level", "dane-all.test", "policy", "dane-only"),
        ("DANE all hosts: require_dane", "require_dane", "dane-all.test", "policy", "*"),
        ("DANE some hosts: level", "level", "dane-mixed.test", "policy", "dane"),
        ("DANE some hosts: require_dane", "require_dane", "dane-mixed.test", "policy", ""),
        ("DANE some hosts: try_dane", "try_dane", "dane-mixed.test", "policy", "*"),
        ("MTA-STS enforce: query", "query", "enforce.sts.test", "policy",
         "OK secure match=mx1.enforce.sts.test:.backup.sts.test servername=hostname"),
        ("MTA-STS enforce: verify_hosts", "verify_hosts", "enforce.sts.test", "policy",
         r"^(?i)mx1\.enforce\.sts\.test$ : *.backup.sts.test"),
        ("MTA-STS enforce: ignore_hosts", "ignore_hosts", "enforce.sts.test", "policy",
         r"!^(?i)mx1\.enforce\.sts\.test$ : !*.backup.sts.test : *"),
        ("MTA-STS testing: no policy", "level", "testing.sts.test", "policy", "nopolicy"),
        ("no policy: query", "query", "unsigned.test", "policy", "NOTFOUND"),
        ("no policy: route", "route", "unsigned.test", "policy", "deliver"),
        ("no policy: require_tls", "require_tls", "unsigned.test", "policy", ""),
        ("no policy: try_dane (Exim's default)", "try_dane", "unsigned.test", "policy", "*"),
        ("tlsoptional: level may", "level", "enforce.sts.test", "tlsoptional", "may"),
        ("tlsoptional: no TLS required", "require_tls", "dane-all.test", "tlsoptional", ""),
        ("tlsoptional: no DANE", "try_dane", "dane-all.test", "tlsoptional", ""),
        ("requiretls, no validated path: route fails 5.7.10", "route", "unsigned.test",
         "requiretls", R(r"^fail 5\.7\.10 ")),
        ("requiretls, no validated path: level fails", "level", "unsigned.test", "requiretls",
         R(r"^Failed: tlspolicyd: TEMP 5\.7\.10 ")),
        ("requiretls, no validated path: ignore_hosts strict", "ignore_hosts", "unsigned.test",
         "requiretls", "*"),
        ("DNSSEC bogus: route defers", "route", "bogus-mx.test", "policy",
         R(r"^defer tlspolicyd: TEMP ")),
        ("DNSSEC bogus: require_tls strict", "require_tls", "bogus-mx.test", "policy", "*"),
        ("DNSSEC bogus: require_dane strict", "require_dane", "bogus-mx.test", "policy", "*"),
        ("DNSSEC bogus: avoid_tls strict", "avoid_tls", "bogus-mx.test", "policy", ""),
        ("unknown tag: PERM, route defers", "route", "unsigned.test", "nosuchmap",
         "defer tlspolicyd: PERM unknown map nosuchmap"),
        ("empty tag means policy", "query", "over-may.example", "", "OK may"),
        # A long (legal) match list: every pattern, never cut (a cut list would admit hosts).
        ("long match list: verify_hosts whole", "verify_hosts", "over-long.example", "policy",
         " : ".join(r"^(?i)mx%02d\." % i + r"a\." * 44 + r"long\.example$" for i in range(32))),
        ("long match list: ignore_hosts whole", "ignore_hosts", "over-long.example", "policy",
         " : ".join(r"!^(?i)mx%02d\." % i + r"a\." * 44 + r"long\.example$" for i in range(32))
         + " : *"),
        ("stats", "stats", "x", "policy", R(r"^pid=\d+ connections=0 questions=0$")),
    ]
    for label, fn, dom, tag, want in rows:
        got = dl(fn, dom, tag)
        if isinstance(want, re.Pattern):
            check_true(f"-be {label}", want.search(got), got)
        else:
            check(f"-be {label}", got, want)

    # Usage errors and other endpoints.
    got = be("${dlfunc{%s}{route}}" % SO)
    check_true("-be no arguments: usage error", got.startswith("Failed: tlspolicyd: usage"), got)
    got = be("${dlfunc{%s}{route}{x.example}{policy}{relative/path}}" % SO)
    check_true("-be bad socket name", "bad socket" in got, got)

    # ------------------------------------------------ 2. one connection per exim process
    before = d.log().count("connection opened")
    keys = [f"k{i}.over-dane.example" for i in range(40)] + ["over-secure.example"] * 10
    # exim -be with no expression reads one per line from stdin, all in one process.
    lines = ["${dlfunc{%s}{level}{%s}{policy}{%s}}" % (SO, k, d.sock) for k in keys]
    lines.append("${dlfunc{%s}{stats}{x}}" % SO)
    p = exim(["-C", BECONF, "-be"], stdin="\n".join(lines) + "\n")
    out = " ".join(w for w in p.stdout.split() if w != ">")
    if not out:
        print("50 expansions:", p.stderr[-500:])
    words = out.split()
    check("50 expansions in one exim process: answers", words[:50],
          ["dane-only"] * 40 + ["secure"] * 10)
    check_true("50 expansions: module stats", out.endswith("connections=1 questions=50"), out)
    time.sleep(0.3)
    check("50 expansions: the daemon saw one connection",
          d.log().count("connection opened") - before, 1)

    # ------------------------------------------------------------- 3. end to end
    sinks = {
        # name: (tls certificate or None, advertises REQUIRETLS after STARTTLS)
        "mx1.enforce.sts.test": ("good", False),
        "mx1.wildcard.sts.test": ("wrong", False),
        "mx1.testing.sts.test": (None, False),
        "mx1.notxt.sts.test": (None, False),
        "mx1.badtxt.sts.test": ("good", False),
        "mx1.redirect.sts.test": ("good", False),
        "mx1.ctype.sts.test": ("good", False),
        "mx1.charset.sts.test": ("good", True),
        "mx.unsigned.test": ("good", True),
        "mx1.dane-all.test": ("good", True),
        "mx2.dane-all.test": ("good", True),
    }
    S = {}
    for name, (tls, rtls) in sinks.items():
        S[name] = Sink(name, lab_addr(name), tls, rtls)

    spool, logdir = os.path.join(WORK, "spool"), os.path.join(WORK, "log")
    os.makedirs(logdir)
    os.chmod(logdir, 0o777)
    defs = [f"-DTLSPOLICYD_MODULE={SO}", f"-DTLSPOLICYD_SOCKET={d.sock}", f"-DTLS_CA={PKI}/ca.pem",
            f"-DSPOOL={spool}", f"-DEXIM_PATH={EXIM}", f"-DLOGDIR={logdir}", "-DHOSTNAME=exim.sender.test",
            "-DLOCAL_DOMAINS=@ : sender.test"]
    econf = ["-C", CONF] + defs

    p = exim(econf + ["-bV"])
    check_true("exim accepts contrib/exim/exim.conf", p.returncode == 0 and "Configuration file is" in p.stdout,
               p.stdout[-500:] + p.stderr[-500:])

    # (label, recipient, extra headers, want: 'delivered' (and to which sink, with TLS?),
    #  'deferred' or 'bounced', and a regex the log line must contain)
    TABLE = [
        ("MTA-STS enforce, matching MX, valid certificate", "a@enforce.sts.test", "",
         "delivered", "mx1.enforce.sts.test", True, r"CV=yes"),
        ("MTA-STS enforce, certificate without the MX name", "a@wildcard.sts.test", "",
         "deferred", None, None, r"(certificate|verif|TLS)"),
        ("no policy (MTA-STS testing), no STARTTLS", "a@testing.sts.test", "",
         "delivered", "mx1.testing.sts.test", False, r""),
        ("override encrypt, no STARTTLS", "a@notxt.sts.test", "",
         "deferred", None, None, r"TLS"),
        ("override secure, MX matches no pattern", "a@badtxt.sts.test", "",
         "deferred", None, None, r"no MX host of badtxt\.sts\.test matches its TLS policy"),
        ("override none: plaintext although STARTTLS offered", "a@redirect.sts.test", "",
         "delivered", "mx1.redirect.sts.test", False, r""),
        ("override fingerprint: Exim cannot apply it", "a@ctype.sts.test", "",
         "deferred", None, None, r"fingerprint"),
        ("DANE-only, certificate does not match TLSA", "a@dane-all.test", "",
         "deferred", None, None, r"(DANE|dane|TLSA|tls)"),
        ("TLS-Required: No waives MTA-STS (bad certificate accepted)", "b@wildcard.sts.test",
         "TLS-Required: No\n", "delivered", "mx1.wildcard.sts.test", True, r""),
        ("TLS-Required: No waives DANE", "b@dane-all.test", "TLS-Required: No\n",
         "delivered", None, True, r""),
        ("REQUIRETLS, no validated MX path: bounce 5.7.10", "c@unsigned.test",
         "X-RequireTLS: yes\n", "bounced", None, None, r"5\.7\.10"),
        ("REQUIRETLS wins over TLS-Required: No", "d@unsigned.test",
         "X-RequireTLS: yes\nTLS-Required: No\n", "bounced", None, None, r"5\.7\.10"),
        ("ordinary mail, no policy, STARTTLS offered", "e@unsigned.test", "",
         "delivered", "mx.unsigned.test", True, r""),
        # The daemon's MX probe decides these (draft 4.2.1): the host must advertise
        # REQUIRETLS after STARTTLS with a certificate that authenticates it.
        ("REQUIRETLS, MTA-STS MX that advertises REQUIRETLS: delivered", "f@charset.sts.test",
         "X-RequireTLS: yes\n", "delivered", "mx1.charset.sts.test", True, r""),
        ("REQUIRETLS, MTA-STS MX without REQUIRETLS: bounce 5.7.30", "g@enforce.sts.test",
         "X-RequireTLS: yes\n", "bounced", None, None, r"5\.7\.30"),
    ]
    for i, (label, rcpt, hdrs, *_rest) in enumerate(TABLE):
        msg = (f"From: sender@sender.test\nTo: {rcpt}\nSubject: case {i}\n"
               f"Message-Id: <case{i}@sender.test>\n{hdrs}\ncase {i}: {label}\n")
        p = exim(econf + ["-odq", "-f", "sender@sender.test", rcpt], stdin=msg)
        check(f"queued case {i}", p.returncode, 0)
        if p.returncode:
            print(p.stdout[-800:], p.stderr[-800:])
    p = exim(econf + ["-qff"], timeout=300)
    check("queue run exit", p.returncode, 0)
    time.sleep(0.5)
    with open(os.path.join(logdir, "mainlog")) as f:
        mainlog = f.read()
    # message id -> case number, from the <= lines
    ids = {}
    for line in mainlog.splitlines():
        m = re.search(r" (\S{6}-\S{6}-\S{2}) <= .* id=case(\d+)@sender\.test", line)
        if m:
            ids[int(m.group(2))] = m.group(1)
    for i, (label, rcpt, hdrs, want, sink, tls, rx) in enumerate(TABLE):
        mid = ids.get(i, "?")
        lines = [l for l in mainlog.splitlines() if f" {mid} " in l and f" {rcpt}" in l]
        kinds = {"=>": "delivered", "==": "deferred", "**": "bounced"}
        got = [kinds[l.split()[3]] for l in lines if len(l.split()) > 3 and l.split()[3] in kinds]
        outcome = got[-1] if got else "none"
        check(f"e2e {label}: {rcpt}", outcome, want)
        line = lines[-1] if lines else ""
        if rx:
            check_true(f"e2e {label}: log says why", re.search(rx, line), line)
        if want == "delivered":
            hit = [(n, r) for n, s in S.items() for r in s.received if f"<{rcpt}>" in r[0]]
            check_true(f"e2e {label}: the sink got it", hit, str(hit))
            if hit and sink:
                check(f"e2e {label}: at {sink}", hit[0][0], sink)
            if hit and tls is not None:
                check(f"e2e {label}: TLS used", hit[0][1][1] is not None, tls)
        else:
            hit = [n for n, s in S.items() for r in s.received if f"<{rcpt}>" in r[0]]
            check(f"e2e {label}: no sink got it", hit, [])
    if failures_so_far := [l for l in mainlog.splitlines() if "tlspolicyd" in l]:
        print("mainlog lines from the module or its routers:")
        for l in failures_so_far[:40]:
            print("   ", l)

    # The daemon stops: the decision defers with a clear message; host lists turn strict.
    status = d.stop()
    check("daemon exit status", status, 0)
    for fn in ("route", "level", "query"):
        got = dl(fn, "enforce.sts.test")
        check_true(f"-be daemon stopped: {fn} fails (DEFER) with the reason",
                   got.startswith("Failed: tlspolicyd: cannot connect to ") and d.sock in got, got)
    for fn, strict in (("require_tls", "*"), ("verify_hosts", "*"), ("require_dane", "*"),
                       ("ignore_hosts", "*"), ("try_dane", "*"), ("avoid_tls", "")):
        check(f"-be daemon stopped: {fn} gives its strictest list", dl(fn, "unsigned.test"), strict)
    # ... and a real delivery defers.
    msg = "From: sender@sender.test\nTo: z@unsigned.test\nMessage-Id: <down@sender.test>\n\nx\n"
    exim(econf + ["-odq", "-f", "sender@sender.test", "z@unsigned.test"], stdin=msg)
    exim(econf + ["-qff"], timeout=120)
    with open(os.path.join(logdir, "mainlog")) as f:
        tail = [l for l in f.read().splitlines() if " z@unsigned.test" in l]
    check_true("e2e daemon stopped: the message is deferred, not delivered",
               tail and " == " in tail[-1] and "cannot connect" in tail[-1], str(tail[-1:]))
    check("e2e daemon stopped: no sink got it",
          [n for n, s in S.items() for r in s.received if "<z@unsigned.test>" in r[0]], [])

    check("no sanitizer reports from the module inside exim", sanitizer_reports, [])
    if ASAN:
        print("(the module ran under AddressSanitizer and UBSan inside exim)")
finally:
    d.cleanup()
    shutil.rmtree(WORK, ignore_errors=True)
finish()
