"""Shared pieces of the integration tests: a tlspolicyd started in a private directory,
its log, raw socketmap clients, and Postfix's postmap as the real client.

Everything started here is stopped by Daemon.stop(); every wait is bounded.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("TLSPOLICYD_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
TLSPOLICYD = os.environ.get("TLSPOLICYD", os.path.join(BUILD, "tlspolicyd"))

failures = 0
checks = 0


def check(label, got, want):
    """Compare and count; a test's exit status comes from finish()."""
    global failures, checks
    checks += 1
    if got == want:
        print(f"ok   {label}")
    else:
        failures += 1
        print(f"FAIL {label}: got {got!r}, want {want!r}")


def check_true(label, cond, detail=""):
    check(label + (f" ({detail})" if detail and not cond else ""), bool(cond), True)


def finish():
    print(f"{checks - failures} passed, {failures} failed")
    sys.exit(1 if failures or checks == 0 else 0)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_leaf(tmp, name, dns, issuer):
    """In directory tmp: NAME.key and NAME.pem, a P-256 server certificate for the DNS name
    dns, signed by ISSUER.pem/ISSUER.key (and NAME.ext, NAME.csr on the way)."""
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp)

    with open(os.path.join(tmp, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName=DNS:{dns}\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={dns}")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.pem", "-CAkey",
            f"{issuer}.key", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
            "-extfile", f"{name}.ext")


def netstring(payload: bytes) -> bytes:
    return str(len(payload)).encode() + b":" + payload + b","


def read_netstring(sock, timeout=5.0):
    """Read one netstring reply; returns its payload, or None on EOF."""
    sock.settimeout(timeout)
    buf = b""
    while b":" not in buf:
        ch = sock.recv(1)
        if not ch:
            return None
        buf += ch
        if len(buf) > 12:
            raise ValueError(f"bad netstring prefix {buf!r}")
    n = int(buf[:-1])
    data = b""
    while len(data) < n + 1:
        chunk = sock.recv(n + 1 - len(data))
        if not chunk:
            return None
        data += chunk
    if data[-1:] != b",":
        raise ValueError("netstring without comma")
    return data[:-1]


class Daemon:
    """A tlspolicyd in its own temporary directory (readable by the unprivileged user)."""

    def __init__(self, conf_lines=(), overrides=None, opts=(), user="", env=None):
        self.dir = tempfile.mkdtemp(prefix="tlspolicyd-test-")
        os.chmod(self.dir, 0o755)
        self.sock = os.path.join(self.dir, "tlspolicyd.sock")
        self.conf = os.path.join(self.dir, "tlspolicyd.conf")
        self.log_path = os.path.join(self.dir, "daemon.log")
        self.overrides = os.path.join(self.dir, "overrides")
        with open(self.overrides, "w") as f:
            f.write(overrides or "")
        # DNS goes to the lab's validating resolver when the test runs inside the lab
        # (tests/lab/dnslab.sh), else to a closed loopback port: never to the machine's
        # own resolvers, so no test traffic leaves the machine.
        dns = os.environ.get("LAB_RESOLVER")
        dns = f"{dns}:{os.environ.get('LAB_RESOLVER_PORT', '53')}" if dns else "127.0.0.1:9"
        lines = [f"listen = unix:{self.sock}", f"overrides = {self.overrides}",
                 f"user = {user}", "log_level = debug", f"dns_servers = {dns}",
                 "dns_timeout = 2s", "lookup_timeout = 4s",
                 f"state_dir = {os.path.join(self.dir, 'state')}",
                 # No metrics endpoint unless a test asks (two daemons would share a port).
                 "metrics_listen ="] + list(conf_lines)
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.opts = list(opts)
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        # postmap needs a main.cf, even an empty one, in a directory given with -c.
        self.pfdir = os.path.join(self.dir, "postfix")
        os.mkdir(self.pfdir)
        open(os.path.join(self.pfdir, "main.cf"), "w").close()

    def start(self, wait_for=None):
        args = [TLSPOLICYD, "-c", self.conf]
        for o in self.opts:
            args += ["-o", o]
        self.logf = open(self.log_path, "ab")
        # Ready when the log says so (bounded): this start's own line, as the log is kept
        # across restarts and still holds the earlier starts' lines.
        seen = self.log().count(" ready;")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=self.logf, env=self.env)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.log()}")
            if self.log().count(" ready;") > seen:
                return self
            time.sleep(0.02)
        raise RuntimeError("daemon did not become ready: " + self.log())

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, text, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.log():
                return True
            time.sleep(0.02)
        return False

    def signal(self, sig):
        self.proc.send_signal(sig)

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return -1

    def stop(self, timeout=20.0):
        """SIGTERM, wait; returns the exit status (sanitizer reports make it non-zero)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return "killed"
        self.logf.close()
        return self.proc.returncode

    def kill9(self, stop, threads):
        """SIGKILL the daemon now (it leaves no chance to finish a write), then stop the
        load: set the event stop and join the threads that ask it."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        stop.set()
        for t in threads:
            t.join(timeout=30)
        self.logf.close()

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def connect(self, timeout=5.0):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.sock)
        return s

    def ask(self, name, key, sock=None):
        """One request on a new (or the given) connection; the reply payload as str."""
        own = sock is None
        s = self.connect() if own else sock
        try:
            s.sendall(netstring(f"{name} {key}".encode()))
            r = read_netstring(s)
            return None if r is None else r.decode()
        finally:
            if own:
                s.close()

    def postmap(self, key, name, endpoint=None, stdin=None):
        """postmap -q KEY socketmap:ENDPOINT:NAME; returns (exit status, stdout, stderr)."""
        ep = endpoint or f"unix:{self.sock}"
        args = ["postmap", "-c", self.pfdir, "-q", key, f"socketmap:{ep}:{name}"]
        p = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=30)
        return p.returncode, p.stdout, p.stderr


def mdb_entries(path):
    """How many records the store at path holds, as LMDB's mdb_stat counts them."""
    out = subprocess.run(["mdb_stat", "-n", path], capture_output=True, text=True,
                         timeout=30).stdout
    for x in out.splitlines():
        if x.strip().startswith("Entries:"):
            return int(x.split()[1])
    return -1
