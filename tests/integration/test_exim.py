"""Exim integration (contrib/exim): Debian's real exim binary (exim4-daemon-heavy, unpacked by
scripts/exim-extract.sh, not installed) runs the dlfunc module against a running tlspolicyd.

1. `exim -C CONF -be '${dlfunc{SO}{FN}{DOMAIN}{TAG}{SOCKET}}'` for each answer kind (overrides,
   DANE, MTA-STS, REQUIRETLS refusals, TEMP, PERM) and each function; then with the daemon
   stopped: the decision functions fail the expansion (DEFER) with a clear message, the
   host-list functions give their strictest list.
2. One exim process, many expansions: the daemon sees one connection.
3. End to end, the way it is installed: Debian's exim4-config (unpacked, not installed) in
   overlays over /etc, /var, /usr/sbin and /usr/local inside the lab's mount namespace, the
   pieces of contrib/exim/debian copied in as the README says, update-exim4.conf, then exim
   from its compiled-in configuration path (no -C) delivers to SMTP sinks on the lab's MX
   addresses; the test reads Exim's main log (delivered / deferred / bounced, with the
   reason) and the sinks. Then: connection reuse in both orders (a TLS-Required: No message
   and an ordinary one to an MTA-STS domain whose MX certificate has the wrong name), host
   retry records, a resolv.conf without trust-ad, a socket closed to Debian-exim, the daemon
   stopped; the paniclog must stay empty.

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
MOUNTS = []  # what part 3 mounted in the lab's namespace, unmounted at the end
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
        self.received = []  # (rcpts, tls_version or None, data, connection number)
        self.sessions = 0
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
        self.sessions += 1
        sid = self.sessions
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
                    self.received.append((rcpts, tlsver, data.decode("utf-8", "replace"), sid))
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
        # decide: the record router/190_tlspolicyd keeps in $r_tlspolicyd.
        ("decide MTA-STS enforce", "decide", "enforce.sts.test", "policy",
         'action=deliver class=verify level=secure ignore="!^(?i)mx1\\\\.enforce\\\\.sts'
         '\\\\.test$ ; !*.backup.sts.test ; *"'),
        ("decide no policy", "decide", "unsigned.test", "policy",
         'action=deliver class=opportunistic level=nopolicy ignore=""'),
        ("decide TLS-Required: No", "decide", "enforce.sts.test", "tlsoptional",
         'action=deliver class=waived level=may ignore=""'),
        ("decide dane-only (lab resolv.conf has trust-ad)", "decide", "dane-all.test", "policy",
         'action=deliver class=daneonly level=dane-only ignore=""'),
        ("decide dane-only, implicit MX (NODATA carries AD)", "decide", "nomx-tlsa.test",
         "policy", 'action=deliver class=daneonly level=dane-only ignore=""'),
        ("decide dane", "decide", "dane-mixed.test", "policy",
         'action=deliver class=dane level=dane ignore=""'),
        ("decide REQUIRETLS refused", "decide", "unsigned.test", "requiretls",
         R(r'^action=fail why="5\.7\.10 ')),
        ("decide DNSSEC bogus defers", "decide", "bogus-mx.test", "policy",
         R(r'^action=defer why="tlspolicyd: TEMP ')),
        ("decide fingerprint defers", "decide", "over-fp.example", "policy",
         R(r'^action=defer why="tlspolicyd: policy \\"fingerprint')),
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

    # ------------------------------------------------------------- 3. end to end
    # A stock Debian Exim, set up the way the README's "Installing for Exim on Debian" says.
    # Inside the lab's private mount namespace, overlays over /etc, /var, /usr/sbin and
    # /usr/local stand for the machine: what the packages would install (exim4-config's
    # /etc/exim4, exim4-base's directories, exim at /usr/sbin/exim4) and what the
    # administrator adds go there, and vanish with the namespace. Exim then runs exactly as
    # installed: its compiled-in configuration path (/var/lib/exim4/config.autogenerated,
    # written by update-exim4.conf), no -C, no -D, the setuid binary re-executing itself.
    S = {}
    for name, (tls, rtls) in sinks.items():
        S[name] = Sink(name, lab_addr(name), tls, rtls)

    def sh(*args, **kw):
        return subprocess.run(list(args), check=True, capture_output=True, text=True, **kw)

    ovl = os.path.join(WORK, "overlay")
    for top in ("/etc", "/var", "/usr/sbin", "/usr/local"):
        tag = top.strip("/").replace("/", "_")
        up, wk = os.path.join(ovl, tag, "upper"), os.path.join(ovl, tag, "work")
        os.makedirs(up)
        os.makedirs(wk)
        sh("mount", "-t", "overlay", "overlay", "-o",
           f"lowerdir={top},upperdir={up},workdir={wk}", top)
        MOUNTS.append(top)
    # The lab's resolv.conf (nameserver 127.0.10.2, options trust-ad) again, over the overlay.
    sh("mount", "--bind", os.environ["LAB_RESOLV_CONF"], "/etc/resolv.conf")
    MOUNTS.append("/etc/resolv.conf")

    # What the packages would have installed: exim4-config's /etc/exim4 and its debconf
    # answers ("internet site"), exim4-base's directories, the binary.
    ROOT = os.path.join(CACHE, "root")
    shutil.copytree(os.path.join(ROOT, "etc", "exim4"), "/etc/exim4")
    shutil.copy(os.path.join(ROOT, "etc", "email-addresses"), "/etc/email-addresses")
    with open("/etc/exim4/update-exim4.conf.conf", "w") as f:
        f.write("dc_eximconfig_configtype='internet'\ndc_other_hostnames='sender.test'\n"
                "dc_local_interfaces='127.0.0.1 ; ::1'\ndc_readhost=''\ndc_relay_domains=''\n"
                "dc_minimaldns='false'\ndc_relay_nets=''\ndc_smarthost=''\nCFILEMODE='644'\n"
                "dc_use_split_config='true'\ndc_hide_mailname=''\ndc_mailname_in_oh='true'\n"
                "dc_localdelivery='mail_spool'\n")
    with open("/etc/mailname", "w") as f:
        f.write("sender.test\n")
    for path, mode in (("/var/spool/exim4", 0o750), ("/var/log/exim4", 0o2750),
                       ("/var/lib/exim4", 0o755)):
        os.makedirs(path, exist_ok=True)
        shutil.chown(path, "Debian-exim", "Debian-exim")
        os.chmod(path, mode)
    for n in ("exim4", "exim"):
        if not os.path.lexists(f"/usr/sbin/{n}"):
            os.symlink(EXIM, f"/usr/sbin/{n}")
    UPDATE = os.path.join(ROOT, "usr", "sbin", "update-exim4.conf")

    # What the README tells the administrator, step by step:
    # (1) the module where the configuration expects it (cmake --install puts it there). In
    #     an instrumented build the module is built again without sanitizers: exim re-executes
    #     itself setuid, and a setuid exec drops LD_PRELOAD, so an ASan module cannot load.
    os.makedirs("/usr/local/lib/tlspolicyd", exist_ok=True)
    MODULE = "/usr/local/lib/tlspolicyd/tlspolicyd_exim.so"
    if ASAN:
        sh("cc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror",
           "-Wno-unused-parameter", "-I/usr/include/exim4", f"-I{TOP}/proto", "-o", MODULE,
           f"{TOP}/contrib/exim/tlspolicyd_exim.c", f"{TOP}/contrib/exim/client.c",
           f"{TOP}/proto/netstring.c", f"{TOP}/proto/sockmap.c", "-lresolv")
    else:
        shutil.copy(SO, MODULE)
    # (2) the pieces for exim4-config's split configuration, copied as they are.
    # (TLSPOLICYD_EXIM_PIECES: another directory of pieces, to run this test against an
    # earlier configuration.)
    DEB = os.environ.get("TLSPOLICYD_EXIM_PIECES", os.path.join(TOP, "contrib", "exim", "debian"))
    for sub in ("main", "acl", "router", "transport"):
        for fn in os.listdir(os.path.join(DEB, "conf.d", sub)):
            shutil.copy(os.path.join(DEB, "conf.d", sub, fn), f"/etc/exim4/conf.d/{sub}/{fn}")
    shutil.copy(os.path.join(DEB, "tlspolicyd_acl_check_data"), "/etc/exim4/")
    # (3) the lab's own settings, as local macros (README: "Macros"): the daemon's socket
    #     (a test directory, not /run/tlspolicyd), the test CA, and MX hosts on 127.0.0.0/8
    #     allowed (Debian ignores loopback MX hosts; the lab has nothing else).
    with open("/etc/exim4/conf.d/main/000_localmacros", "w") as f:
        f.write(f"TLSPOLICYD_SOCKET = {d.sock}\nTLSPOLICYD_TLS_CA = {PKI}/ca.pem\n"
                "ROUTER_DNSLOOKUP_IGNORE_TARGET_HOSTS = <; 0.0.0.0 ; 255.255.255.255\n")
    # (4) update-exim4.conf writes /var/lib/exim4/config.autogenerated (and checks it with
    #     exim -bV).
    p = subprocess.run([UPDATE, "--verbose"], capture_output=True, text=True, timeout=60)
    check_true("update-exim4.conf builds the configuration", p.returncode == 0,
               p.stdout[-800:] + p.stderr[-800:])
    # (5) the daemon's socket reachable by Debian-exim (socket_group = Debian-exim).
    def restart(extra):
        """Stop the daemon, add configuration lines, start it; ready when the new process
        says so (the log keeps the earlier "ready" lines)."""
        d.stop()
        with open(d.conf, "a") as f:
            f.write(extra)
        n = d.log().count(" ready;")
        d.start()
        deadline = time.time() + 15
        while d.log().count(" ready;") <= n and time.time() < deadline:
            time.sleep(0.02)
        check_true("daemon restarted", d.log().count(" ready;") > n, d.log()[-300:])

    restart("socket_group = Debian-exim\nsocket_mode = 0660\n")

    MAINLOG, PANICLOG = "/var/log/exim4/mainlog", "/var/log/exim4/paniclog"
    p = exim(["-bV"])
    check_true("exim reads the generated configuration from its default path",
               p.returncode == 0 and "/var/lib/exim4/config.autogenerated" in p.stdout,
               p.stdout[-500:] + p.stderr[-500:])
    p = exim(["-bP", "transport_list"])
    check_true("the tlspolicyd transports are in the configuration",
               "tlspolicyd_waived" in p.stdout and "tlspolicyd_verify" in p.stdout, p.stdout)

    # (6) The unsplit configuration, as the README says: the same files pasted into
    #     exim4.conf.template (main piece before "begin acl", the ACL after it, the routers
    #     before dnslookup_relay_to_domains, the transports after "begin transports"). Only
    #     generated and read here; the deliveries below use the split configuration.
    tmpl = open("/etc/exim4/exim4.conf.template").read()

    def piece(p):
        with open(os.path.join(DEB, "conf.d", p)) as f:
            return f.read()

    i = tmpl.index("\nbegin acl\n")
    tmpl = tmpl[:i] + "\n" + piece("main/05_tlspolicyd") + tmpl[i:]
    i = tmpl.index("\nbegin acl\n") + len("\nbegin acl\n")
    tmpl = tmpl[:i] + piece("acl/50_tlspolicyd_tag") + tmpl[i:]
    i = tmpl.index("\ndnslookup_relay_to_domains:\n")
    tmpl = tmpl[:i] + "\n" + piece("router/190_tlspolicyd") + tmpl[i:]
    i = tmpl.index("\nbegin transports\n") + len("\nbegin transports\n")
    tmpl = tmpl[:i] + piece("transport/30_tlspolicyd") + tmpl[i:]
    unsplit = os.path.join(WORK, "unsplit")
    shutil.copytree("/etc/exim4", unsplit)
    with open(os.path.join(unsplit, "exim4.conf.template"), "w") as f:
        f.write(tmpl)
    with open(os.path.join(unsplit, "update-exim4.conf.conf")) as f:
        ue = f.read().replace("dc_use_split_config='true'", "dc_use_split_config='false'")
    with open(os.path.join(unsplit, "update-exim4.conf.conf"), "w") as f:
        f.write(ue)
    out = os.path.join(WORK, "unsplit.conf")
    p = subprocess.run([UPDATE, "--confdir", unsplit, "--output", out], capture_output=True,
                       text=True, timeout=60)
    check_true("unsplit template: update-exim4.conf builds it", p.returncode == 0,
               p.stdout[-500:] + p.stderr[-500:])
    p = exim(["-C", out, "-bP", "router_list", "transport_list", "acl_not_smtp"])
    check_true("unsplit template: the routers come before Debian's",
               re.search(r"tlspolicyd_decide.*tlspolicyd_nomatch.*dnslookup_relay_to_domains",
                         p.stdout.replace("\n", " ")), p.stdout + p.stderr)
    check_true("unsplit template: the transports and the tagging ACL",
               "tlspolicyd_requiretls_verify" in p.stdout
               and "acl_not_smtp = acl_tlspolicyd_tag" in p.stdout, p.stdout + p.stderr)

    def mainlog():
        try:
            with open(MAINLOG) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def submit(rcpt, hdrs, tag, mode="-odqs"):
        msg = (f"From: nobody@sender.test\nTo: {rcpt}\nSubject: {tag}\n"
               f"Message-Id: <{tag}@sender.test>\n{hdrs}\n{tag}\n")
        p = exim([mode, "-f", "nobody@sender.test", rcpt], stdin=msg)
        check(f"queued {tag}", p.returncode, 0)
        if p.returncode:
            print(p.stdout[:800], p.stderr[:800], mainlog()[-600:])
        m = re.search(r" (\S{6}-\S{6}-\S{2}) <= .* id=" + re.escape(tag) + "@sender", mainlog())
        return m.group(1) if m else "?"

    def outcome(mid, rcpt):
        lines = [l for l in mainlog().splitlines() if f" {mid} " in l and f" {rcpt}" in l]
        kinds = {"=>": "delivered", "==": "deferred", "**": "bounced"}
        got = [kinds[l.split()[3]] for l in lines if len(l.split()) > 3 and l.split()[3] in kinds]
        return (got[-1] if got else "none"), (lines[-1] if lines else ""), got

    def sink_got(rcpt):
        return [(n, r) for n, s in S.items() for r in s.received if f"<{rcpt}>" in r[0]]

    def clear_queue():
        ids = exim(["-bpu"]).stdout
        for mid in re.findall(r"\b(\S{6}-\S{6}-\S{2})\b", ids):
            exim(["-Mrm", mid])

    # 3a. The table of cases, one forced queue run.
    TABLE = [
        ("MTA-STS enforce, matching MX, valid certificate", "a@enforce.sts.test", "",
         "delivered", "mx1.enforce.sts.test", True, r"CV=yes"),
        ("MTA-STS enforce, certificate without the MX name", "a@wildcard.sts.test", "",
         "deferred", None, None, r"(certificate|verif|TLS)"),
        ("no policy (MTA-STS testing), no STARTTLS", "a@testing.sts.test", "",
         "delivered", "mx1.testing.sts.test", False, r"T=tlspolicyd_opportunistic"),
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
         "TLS-Required: No\n", "delivered", "mx1.wildcard.sts.test", True,
         r"T=tlspolicyd_waived"),
        ("TLS-Required: No waives DANE", "b@dane-all.test", "TLS-Required: No\n",
         "delivered", None, True, r""),
        ("REQUIRETLS, no validated MX path: bounce 5.7.10", "c@unsigned.test",
         "X-RequireTLS: yes\n", "bounced", None, None, r"5\.7\.10"),
        ("REQUIRETLS wins over TLS-Required: No", "d@unsigned.test",
         "X-RequireTLS: yes\nTLS-Required: No\n", "bounced", None, None, r"5\.7\.10"),
        ("ordinary mail, no policy, STARTTLS offered", "e@unsigned.test", "",
         "delivered", "mx.unsigned.test", True, r""),
        ("REQUIRETLS, MTA-STS MX that advertises REQUIRETLS: delivered", "f@charset.sts.test",
         "X-RequireTLS: yes\n", "delivered", "mx1.charset.sts.test", True,
         r"T=tlspolicyd_requiretls_verify"),
        ("REQUIRETLS, MTA-STS MX without REQUIRETLS: bounce 5.7.30", "g@enforce.sts.test",
         "X-RequireTLS: yes\n", "bounced", None, None, r"5\.7\.30"),
        ("DANE-only, the server's key matches TLSA: delivered by DANE", "h@rtls-dane.test", "",
         "delivered", None, None, r"T=tlspolicyd_daneonly.*CV=dane"),
        # Issue 10.5: DANE on one host beside an MTA-STS enforce policy answers dane-only; the
        # DANE host refuses connections and the other (mx.unsigned.test, insecure, a sink
        # here) must not be used: deferred, never delivered unauthenticated, never bounced.
        ("DANE on some hosts beside MTA-STS enforce: dane-only, the insecure host unused",
         "i@dane-some-sts.test", "", "deferred", None, None, r"T=tlspolicyd_daneonly defer"),
    ]
    mids = [submit(rcpt, hdrs, f"case{i}") for i, (label, rcpt, hdrs, *_r) in enumerate(TABLE)]
    p = exim(["-qff"], timeout=300)
    check("queue run exit", p.returncode, 0)
    for i, (label, rcpt, hdrs, want, sink, tls, rx) in enumerate(TABLE):
        got, line, _ = outcome(mids[i], rcpt)
        check(f"e2e {label}: {rcpt}", got, want)
        if rx:
            check_true(f"e2e {label}: log says why", re.search(rx, line), line)
        hit = sink_got(rcpt)
        if want == "delivered" and sink:
            check_true(f"e2e {label}: the sink got it", hit, str(hit))
            if hit:
                check(f"e2e {label}: at {sink}", hit[0][0], sink)
                if tls is not None:
                    check(f"e2e {label}: TLS used", hit[0][1][1] is not None, tls)
        elif want != "delivered":
            check(f"e2e {label}: no sink got it", [n for n, _ in hit], [])
    check("e2e: X-RequireTLS never leaves this host",
          [n for n, s_ in S.items() for r in s_.received if "x-requiretls" in r[2].lower()], [])
    clear_queue()

    # 3a'. Over SMTP (exim -bs, as from a relay_from_hosts client at 127.0.0.1): the tag
    # comes through acl_check_data (CHECK_DATA_LOCAL_ACL_FILE).
    def smtp_submit(rcpt, hdrs, tag):
        msg = (f"From: nobody@sender.test\r\nTo: {rcpt}\r\nMessage-Id: <{tag}@sender.test>\r\n"
               f"{hdrs}\r\n{tag}\r\n")
        dialogue = (f"EHLO client.sender.test\r\nMAIL FROM:<nobody@sender.test>\r\n"
                    f"RCPT TO:<{rcpt}>\r\nDATA\r\n{msg}.\r\nQUIT\r\n")
        p = exim(["-bs", "-odqs", "-oMa", "127.0.0.1"], stdin=dialogue)
        check_true(f"SMTP {tag}: accepted", "250 OK id=" in p.stdout, p.stdout[-500:])
        m = re.search(r" (\S{6}-\S{6}-\S{2}) <= .* id=" + re.escape(tag) + "@sender", mainlog())
        return m.group(1) if m else "?"

    sm = [(smtp_submit("s1@unsigned.test", "X-RequireTLS: yes\r\n", "smtp-rtls"),
           "s1@unsigned.test", "bounced", r"5\.7\.10"),
          (smtp_submit("s2@charset.sts.test", "X-RequireTLS: yes\r\n", "smtp-rtls-ok"),
           "s2@charset.sts.test", "delivered", r"T=tlspolicyd_requiretls_verify")]
    exim(["-qf"], timeout=120)
    for mid, rcpt, want, rx in sm:
        got, line, _ = outcome(mid, rcpt)
        check(f"SMTP REQUIRETLS {rcpt}", got, want)
        check_true(f"SMTP REQUIRETLS {rcpt}: log says why", re.search(rx, line), line)
    hit = sink_got("s2@charset.sts.test")
    check_true("SMTP REQUIRETLS: the header is removed",
               hit and "x-requiretls" not in hit[0][1][2].lower(), str(hit)[:300])
    clear_queue()

    # 3b. Connection reuse never downgrades: the waived message and an ordinary one to the
    # same MTA-STS enforce domain (its MX's certificate names another host), both queued
    # (-odqs), then one queue run, each order, twice: with -qf (the queue runner's order)
    # and with -M A B (this order exactly). The ordinary one must be deferred every time,
    # never delivered, and the server must see one message per connection.
    wild = S["mx1.wildcard.sts.test"]
    for run, (first, how) in enumerate([(f, h) for h in ("-qf", "-M") for f in ("waived",
                                                                                   "ordinary")]):
        before = len(wild.received)
        msgs = {}
        for kind in ((first, "ordinary" if first == "waived" else "waived")):
            hdrs = "TLS-Required: No\n" if kind == "waived" else ""
            rcpt = f"{kind}{run}@wildcard.sts.test"
            msgs[kind] = (rcpt, submit(rcpt, hdrs, f"reuse{run}{kind}"))
        order = [msgs[first][1], msgs["ordinary" if first == "waived" else "waived"][1]]
        p = exim(["-qf"] if how == "-qf" else ["-M"] + order, timeout=120)
        label = f"reuse ({first} queued first, {how})"
        got_w = outcome(msgs["waived"][1], msgs["waived"][0])
        got_o = outcome(msgs["ordinary"][1], msgs["ordinary"][0])
        check(f"{label}: the waived message is delivered", got_w[0], "delivered")
        check(f"{label}: the ordinary message is deferred", got_o[0], "deferred")
        check(f"{label}: the ordinary message is never delivered", "delivered" in got_o[2],
              False)
        check(f"{label}: the server never got the ordinary message",
              [r[3] for r in wild.received if f"<{msgs['ordinary'][0]}>" in r[0]], [])
        sessions = [r[3] for r in wild.received[before:]]
        check(f"{label}: one message per connection", len(sessions), len(set(sessions)))
        clear_queue()

    # 3c. A refused policy delivery does not hold the waived mail for the same host: a
    # deferral (certificate for another name) writes a host retry record; an ordinary,
    # not forced, queue run must still deliver the waived message.
    mid_o = submit("o@wrongcert.sts.test", "", "retry-ordinary", mode="-odq")
    exim(["-qf"], timeout=120)
    check("retry: the ordinary message to wrongcert.sts.test is deferred",
          outcome(mid_o, "o@wrongcert.sts.test")[0], "deferred")
    mid_w = submit("w@wrongcert.sts.test", "TLS-Required: No\n", "retry-waived", mode="-odq")
    exim(["-q"], timeout=120)
    got, line, _ = outcome(mid_w, "w@wrongcert.sts.test")
    check_true("retry: the waived message is delivered by a plain queue run",
               got == "delivered", line or "no log line")
    clear_queue()

    # 3d. DNSSEC on this host: without "options trust-ad" glibc drops the AD bit and Exim's
    # DANE sees nothing secure; a dane-only domain must then wait, saying why, not bounce.
    noad = os.path.join(WORK, "resolv-noad.conf")
    with open(noad, "w") as f:
        f.write(f"nameserver {os.environ['LAB_RESOLVER']}\noptions edns0\n")
    sh("mount", "--bind", noad, "/etc/resolv.conf")
    try:
        mid = submit("i@rtls-dane.test", "", "noad", mode="-odq")
        exim(["-qf"], timeout=120)
        got, line, _ = outcome(mid, "i@rtls-dane.test")
        check("no trust-ad: the dane-only message is deferred", got, "deferred")
        check_true("no trust-ad: the reason names trust-ad", "trust-ad" in line, line)
    finally:
        sh("umount", "/etc/resolv.conf")
    exim(["-qf"], timeout=120)
    got, line, _ = outcome(mid, "i@rtls-dane.test")
    check_true("trust-ad back: the same message is delivered by DANE",
               got == "delivered" and "CV=dane" in line, line)
    clear_queue()

    # 3e. The transport runs as Debian-exim and never asks the daemon: with the daemon's
    # socket closed to Debian-exim (root:root 0660, the daemon's default), routing (root)
    # still decides and mail leaves as the policy says; nothing is bounced.
    restart("socket_group = root\n")
    st = os.stat(d.sock)
    check("socket closed to Debian-exim: group root, 0660", (st.st_gid, st.st_mode & 0o777),
          (0, 0o660))
    cases = [("j@unsigned.test", "delivered", r"T=tlspolicyd_opportunistic"),
             ("j@enforce.sts.test", "delivered", r"T=tlspolicyd_verify.*CV=yes"),
             ("k@wildcard.sts.test", "deferred", r"")]
    ids = [submit(r, "", f"perm{i}") for i, (r, _w, _x) in enumerate(cases)]
    exim(["-qf"], timeout=120)
    for (rcpt, want, rx), mid in zip(cases, ids):
        got, line, allk = outcome(mid, rcpt)
        check(f"socket closed to Debian-exim: {rcpt} {want}", got, want)
        check(f"socket closed to Debian-exim: {rcpt} never bounced", "bounced" in allk, False)
        if rx:
            check_true(f"socket closed to Debian-exim: {rcpt} as the policy says",
                       re.search(rx, line), line)
    clear_queue()

    # 3f. The daemon stopped: ordinary mail waits with the reason in the main log, nothing
    # goes to the paniclog (Debian's cron mails root when it is not empty).
    status = d.stop()
    check("daemon exit status", status, 0)
    for fn in ("route", "level", "query"):
        got = dl(fn, "enforce.sts.test")
        check_true(f"-be daemon stopped: {fn} fails (DEFER) with the reason",
                   got.startswith("Failed: tlspolicyd: cannot connect to ") and d.sock in got, got)
    got = dl("decide", "enforce.sts.test")
    check_true("-be daemon stopped: decide defers with the reason",
               got.startswith("action=defer why=\"tlspolicyd: cannot connect to "), got)
    for fn, strict in (("require_tls", "*"), ("verify_hosts", "*"), ("require_dane", "*"),
                       ("ignore_hosts", "*"), ("try_dane", "*"), ("avoid_tls", "")):
        check(f"-be daemon stopped: {fn} gives its strictest list", dl(fn, "unsigned.test"), strict)
    ids = [submit(r, "", f"down{i}") for i, r in enumerate(("z@unsigned.test",
                                                            "z@enforce.sts.test"))]
    exim(["-qf"], timeout=120)
    for rcpt, mid in zip(("z@unsigned.test", "z@enforce.sts.test"), ids):
        got, line, _ = outcome(mid, rcpt)
        check_true(f"e2e daemon stopped: {rcpt} deferred with the reason",
                   got == "deferred" and "cannot connect" in line, line)
        check(f"e2e daemon stopped: no sink got {rcpt}", [n for n, _ in sink_got(rcpt)], [])

    panic = open(PANICLOG).read() if os.path.exists(PANICLOG) else ""
    check("Exim's paniclog stays empty", panic, "")
    if failures_so_far := [l for l in mainlog().splitlines() if "tlspolicyd" in l]:
        print("mainlog lines from the module or its routers (first 40):")
        for l in failures_so_far[:40]:
            print("   ", l)

    # The systemd pieces for an Exim host: the drop-ins load with the units (an unknown key
    # would be reported on stderr), and the configuration they go with passes -t.
    if shutil.which("systemd-analyze"):
        units = os.path.join(WORK, "units")
        os.mkdir(units)
        for unit in ("tlspolicyd.service", "tlspolicyd.socket"):
            with open(os.path.join(TOP, "contrib", "systemd", unit)) as f:
                text = f.read().replace("/usr/local/sbin/tlspolicyd", os.path.abspath(TLSPOLICYD))
            with open(os.path.join(units, unit), "w") as f:
                f.write(text)
        for dropin in ("tlspolicyd.socket.d", "tlspolicyd.service.d"):
            shutil.copytree(os.path.join(TOP, "contrib", "systemd", "exim", dropin),
                            os.path.join(units, dropin))
        p = subprocess.run(["systemd-analyze", "verify", "--man=no",
                            os.path.join(units, "tlspolicyd.socket"),
                            os.path.join(units, "tlspolicyd.service")],
                           capture_output=True, text=True, timeout=120)
        check_true("systemd-analyze verify with the Exim drop-ins",
                   p.returncode == 0 and not p.stderr.strip(), p.stdout + p.stderr)
    else:
        print("note: systemd-analyze not installed; the Exim drop-ins were not verified")
    # -t checks that the socket's directory exists; /run/tlspolicyd is made by systemd (the
    # socket unit's DirectoryMode=, the service's RuntimeDirectory=), not here: the same
    # path under a directory of the test's own stands for it.
    rundir = tempfile.mkdtemp(prefix="tlspolicyd-run-")
    os.mkdir(os.path.join(rundir, "tlspolicyd"))
    p = subprocess.run([TLSPOLICYD, "-c", os.path.join(TOP, "contrib", "systemd", "exim",
                                                       "tlspolicyd.conf"), "-t", "-o",
                        f"listen=unix:{rundir}/tlspolicyd/tlspolicyd.sock"],
                       capture_output=True, text=True, timeout=30)
    shutil.rmtree(rundir)
    check_true("contrib/systemd/exim/tlspolicyd.conf passes -t", p.returncode == 0,
               p.stdout + p.stderr)

    check("no sanitizer reports from the module inside exim", sanitizer_reports, [])
    if ASAN:
        print("(the module ran under AddressSanitizer and UBSan inside exim -be)")
finally:
    for m in reversed(MOUNTS):
        subprocess.run(["umount", "-l", m], capture_output=True)
    d.cleanup()
    shutil.rmtree(WORK, ignore_errors=True)
finish()
