"""Bad input and abusive clients (SPEC section 4): each gets a clear log line and is
closed, costs bounded memory, and never disturbs a well-behaved client that queries the
whole time. Run under ASan/UBSan by the test command; a clean SIGTERM exit at the end
means no sanitizer report and no leak."""
import os
import pwd
import resource
import shutil
import socket
import stat
import tempfile
import threading
import time

from harness import Daemon, check, check_true, finish, netstring, read_netstring

OVERRIDES = "example.com secure match=.example.com\n"
GOOD_ANSWER = "OK secure match=.example.com"


class GoodClient(threading.Thread):
    """Asks the whole time, on one kept connection and on fresh ones, like Postfix."""

    def __init__(self, d):
        super().__init__(daemon=True)
        self.d, self.stop_flag = d, threading.Event()
        self.count, self.errors, self.worst = 0, [], 0.0

    def run(self):
        kept = None
        while not self.stop_flag.is_set():
            try:
                if kept is None:
                    kept = self.d.connect()
                for sock in (kept, None):
                    t0 = time.monotonic()
                    got = self.d.ask("policy", "example.com", sock)
                    self.worst = max(self.worst, time.monotonic() - t0)
                    if got != GOOD_ANSWER:
                        self.errors.append(got)
                    self.count += 1
            except Exception as e:  # any failure of the good client is a test failure
                self.errors.append(repr(e))
                kept = None
            time.sleep(0.005)


def closed_by_daemon(s, timeout=5.0):
    """True when the daemon closes s (EOF or reset) within timeout."""
    s.settimeout(timeout)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
# ASan keeps freed memory in quarantine, which would hide whether the daemon's own memory
# stays bounded; this daemon runs with the quarantine off (leak checking stays on).
asan = os.environ.get("ASAN_OPTIONS", "")
d = Daemon(overrides=OVERRIDES, conf_lines=["request_timeout = 1s", "idle_timeout = 3s",
                                            "max_connections = 1500", "max_pipeline = 16"],
           env={"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=0"})
try:
    d.start()
    good = GoodClient(d)
    good.start()
    time.sleep(0.2)
    rss0 = d.rss_kib()

    # Malformed netstrings: closed with a reason.
    cases = [
        ("not a netstring", b"hello world", "netstring does not start with a decimal length"),
        ("20-digit length", b"12345678901234567890:policy x,", "netstring length exceeds the request size limit"),
        ("length over the limit", b"20000:", "netstring length exceeds the request size limit"),
        ("leading zero", b"07:policy,", "netstring length has a leading zero"),
        ("missing comma", b"18:policy example.comX", "netstring payload is not followed by ','"),
    ]
    for label, data, logtext in cases:
        s = d.connect()
        s.sendall(data)
        check_true(f"{label}: connection closed", closed_by_daemon(s))
        s.close()
        check_true(f"{label}: log says why", d.wait_log(logtext), logtext)

    # A request over 10,000 bytes, sent whole: refused from its length prefix.
    s = d.connect()
    big = netstring(b"policy " + b"a" * 10200)
    try:
        s.sendall(big)
    except (BrokenPipeError, ConnectionResetError):
        pass
    check_true("request over 10,000 bytes: connection closed", closed_by_daemon(s))
    s.close()

    # A key of exactly 10,000 bytes is within Postfix's limit: answered, and not a domain.
    s = d.connect()
    check("10,000-byte key answered NOTFOUND", d.ask("policy", "a" * 10000, s), "NOTFOUND ")
    check("connection still usable after it", d.ask("policy", "example.com", s), GOOD_ANSWER)
    s.close()

    # Well-framed but malformed requests: PERM, and the connection goes on.
    s = d.connect()
    s.sendall(netstring(b"policyexample.com"))
    check("no space: PERM", read_netstring(s).decode(),
          "PERM malformed request: request has no space between map name and key")
    s.sendall(netstring(b"policy exa\x00mple.com"))
    check("NUL in key: PERM", read_netstring(s).decode(), "PERM malformed request: key contains a NUL byte")
    s.sendall(netstring(b"policy \xff\xfe.example"))
    check("invalid UTF-8 key: NOTFOUND", read_netstring(s).decode(), "NOTFOUND ")
    s.sendall(netstring(b"policy example.com\r\nfake log line"))
    check("CRLF in key: NOTFOUND", read_netstring(s).decode(), "NOTFOUND ")
    check("same connection still answers", d.ask("policy", "example.com", s), GOOD_ANSWER)
    s.close()

    # Half a request, then silence: closed after request_timeout (1 s here).
    s = d.connect()
    s.sendall(b"18:policy exa")
    t0 = time.monotonic()
    check_true("half request: closed", closed_by_daemon(s, timeout=10))
    check_true("half request: closed by the request timeout, not at once",
               time.monotonic() - t0 >= 0.8)
    s.close()
    check_true("half request: logged", d.wait_log("incomplete request (13 bytes) for 1000 ms"))

    # Pipelined requests, answered in order.
    s = d.connect()
    keys = [f"k{i}.unsigned.test" if i % 3 else "example.com" for i in range(100)]
    s.sendall(b"".join(netstring(f"policy {k}".encode()) for k in keys))
    got = [read_netstring(s).decode() for _ in keys]
    want = [GOOD_ANSWER if k == "example.com" else "NOTFOUND " for k in keys]
    check("100 pipelined requests answered in order", got, want)
    s.close()

    # Half-close after the request (Exim's readsocket): the answer still comes, then EOF.
    s = d.connect()
    s.sendall(netstring(b"policy example.com") + netstring(b"tlsoptional example.com"))
    s.shutdown(socket.SHUT_WR)
    check("half-close: first answer", read_netstring(s).decode(), GOOD_ANSWER)
    check("half-close: second answer", read_netstring(s).decode(), "OK may")
    check("half-close: then EOF", read_netstring(s), None)
    s.close()

    # Half-close in the middle of a request: logged, closed.
    s = d.connect()
    s.sendall(b"18:policy exa")
    s.shutdown(socket.SHUT_WR)
    check("half-close mid-request: closed", read_netstring(s), None)
    s.close()
    check_true("half-close mid-request: logged",
               d.wait_log("client closed the connection in the middle of a request (13 bytes"))

    # A client that writes requests and never reads: reading pauses (bounded memory),
    # then the daemon gives up on it after request_timeout.
    s = d.connect()
    s.setblocking(False)
    req = netstring(b"policy example.com") * 1000
    sent, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < 3:
        try:
            sent += s.send(req)
        except BlockingIOError:
            time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            break
    check_true("non-reading client: the daemon stopped reading (sender blocked)",
               sent < 50 * 1024 * 1024, f"sent {sent}")
    check_true("non-reading client: closed and logged",
               d.wait_log("the client has not read its answers"))
    s.close()

    # 1,000 simultaneous connections, each with a request; all answered.
    conns = []
    for i in range(1000):
        c = d.connect(timeout=20)
        c.sendall(netstring(b"policy example.com"))
        conns.append(c)
    answers = [read_netstring(c, timeout=20) for c in conns]
    check("1,000 simultaneous connections answered",
          sum(1 for a in answers if a == GOOD_ANSWER.encode()), 1000)
    rss_1000 = d.rss_kib()
    for c in conns:
        c.close()

    # Idle connections are closed after idle_timeout (3 s here).
    s = d.connect()
    check_true("idle connection closed", closed_by_daemon(s, timeout=10))
    s.close()
    check_true("idle close logged", d.wait_log("closing idle connection after 3000 ms"))

    # Bounded memory: a second round of 1,000 connections costs no more than the first.
    conns = []
    for i in range(1000):
        c = d.connect(timeout=20)
        c.sendall(netstring(b"policy example.com"))
        conns.append(c)
    for c in conns:
        read_netstring(c, timeout=20)
    rss_again = d.rss_kib()
    for c in conns:
        c.close()
    print(f"# RSS KiB: start {rss0}, after 1,000 connections {rss_1000}, after a second round {rss_again}")
    check_true("memory does not grow with a second round of 1,000 connections",
               rss_again <= rss_1000 * 1.1 + 2048, f"{rss_1000} -> {rss_again}")

    good.stop_flag.set()
    good.join(10)
    check("good client: no errors while all this went on", good.errors[:3], [])
    check_true("good client: kept being answered", good.count > 100, f"{good.count} answers")
    check_true("good client: never waited a second", good.worst < 1.0, f"worst {good.worst:.3f}s")
    print(f"# good client: {good.count} answers, worst latency {good.worst * 1000:.1f} ms")
    check("daemon exits cleanly (no sanitizer report, no leak)", d.stop(), 0)
finally:
    d.cleanup()

# Over max_connections: refused at once, logged, and the daemon keeps serving.
d = Daemon(overrides=OVERRIDES, conf_lines=["max_connections = 5"])
try:
    d.start()
    held = [d.connect() for _ in range(5)]
    for c in held:
        check("held connection answered", d.ask("policy", "example.com", c), GOOD_ANSWER)
    extra = d.connect()
    check_true("sixth connection closed at once", closed_by_daemon(extra))
    extra.close()
    check_true("refusal logged", d.wait_log("refusing connections: max_connections (5) are open"))
    held.pop().close()
    time.sleep(0.2)
    check("after one closes, a new connection is served", d.ask("policy", "example.com"), GOOD_ANSWER)
    for c in held:
        c.close()
    check("daemon exits cleanly", d.stop(), 0)
finally:
    d.cleanup()
# A hostile state_dir (the daemon's user owns it and may plant anything in it): started as
# root with user = nobody, the daemon must never follow a symbolic link there, never hand a
# file or directory of someone else's to its user, and never unlink or rename inside one.
# It refuses to start with one line instead.
NOBODY = pwd.getpwnam("nobody")


def snapshot(path):
    """(uid, gid, mode) of path itself and {name: (uid, gid, mode, bytes)} of its entries."""
    st = os.lstat(path)
    entries = {}
    if stat.S_ISDIR(st.st_mode):
        for name in sorted(os.listdir(path)):
            est = os.lstat(os.path.join(path, name))
            data = b"(not a regular file)"
            if stat.S_ISREG(est.st_mode):
                with open(os.path.join(path, name), "rb") as f:
                    data = f.read()
            entries[name] = (est.st_uid, est.st_gid, stat.S_IMODE(est.st_mode), data)
    return (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), entries


def victim_dir():
    """A root-owned directory holding what store_load() would unlink or rename."""
    v = tempfile.mkdtemp(prefix="tlspolicyd-victim-")
    os.chmod(v, 0o700)
    for name, text in (("a.json.tmp", "half a write"), ("junk.json", "{not json"),
                       ("old.json", '{"domain":"old","id":"1","fetched":1,"expires":2,'
                                    '"mode":"none","max_age":0,"mx":[]}')):
        with open(os.path.join(v, name), "w") as f:
            f.write(text)
    return v


def hostile_state(label, plant, refusal, user="nobody"):
    """plant(state_dir) sets the trap and returns the paths whose state must not change."""
    d = Daemon(overrides=OVERRIDES, user=user)
    victims = []
    try:
        state = os.path.join(d.dir, "state")
        victims = plant(state)
        before = [snapshot(v) for v in victims]
        try:
            d.start()
            started = True
        except RuntimeError:
            started = False
        check_true(f"state_dir {label}: refused to start", not started, d.log()[-400:])
        check_true(f"state_dir {label}: one clear line", refusal in d.log(), d.log()[-400:])
        for v, b in zip(victims, before):
            check(f"state_dir {label}: {v} untouched (owner, mode, entries)", snapshot(v), b)
    finally:
        d.stop()
        d.cleanup()
        for v in victims:
            if os.path.isdir(v) and not os.path.islink(v):
                shutil.rmtree(v, ignore_errors=True)
            elif os.path.lexists(v):
                os.unlink(v)


def own_state(state):
    os.mkdir(state, 0o750)
    os.chown(state, NOBODY.pw_uid, NOBODY.pw_gid)


def sts_link_to_dir(state):
    own_state(state)
    v = victim_dir()
    os.symlink(v, os.path.join(state, "sts"))
    os.lchown(os.path.join(state, "sts"), NOBODY.pw_uid, NOBODY.pw_gid)
    return [v]


def sts_link_to_file(state):
    own_state(state)
    fd, v = tempfile.mkstemp(prefix="tlspolicyd-victim-")
    os.write(fd, b"root's secret\n")
    os.close(fd)
    os.chmod(v, 0o600)
    os.symlink(v, os.path.join(state, "sts"))
    return [v]


def state_link_to_dir(state):
    v = victim_dir()
    os.symlink(v, state)
    return [v]


def sts_not_a_dir(state):
    own_state(state)
    with open(os.path.join(state, "sts"), "w") as f:
        f.write("a file\n")
    os.chown(os.path.join(state, "sts"), NOBODY.pw_uid, NOBODY.pw_gid)
    return [os.path.join(state, "sts")]


hostile_state("sts symlink to a root directory", sts_link_to_dir, "/state/sts is a symbolic link")
hostile_state("sts symlink to a root file", sts_link_to_file, "/state/sts is a symbolic link")
hostile_state("state_dir symlink to a root directory", state_link_to_dir,
              "/state is a symbolic link")
hostile_state("sts a regular file", sts_not_a_dir, "/state/sts is not a directory")
# A daemon that stays root (user empty) does not use a directory another user can write.
hostile_state("owned by another user", lambda state: own_state(state) or [state],
              f"/state is owned by uid {NOBODY.pw_uid}, not by the daemon's user (uid 0)", user="")

# The ordinary case: created for the daemon's user, mode 0750, and the daemon serves.
d = Daemon(overrides=OVERRIDES, user="nobody")
try:
    d.start()
    for sub in ("state", "state/sts"):
        st = os.lstat(os.path.join(d.dir, sub))
        check(f"state_dir: {sub} made for nobody, 0750",
              (stat.S_ISDIR(st.st_mode), st.st_uid, stat.S_IMODE(st.st_mode)),
              (True, NOBODY.pw_uid, 0o750))
    check("state_dir: the daemon serves", d.ask("policy", "example.com"), GOOD_ANSWER)
    check("state_dir: daemon exits cleanly", d.stop(), 0)
finally:
    d.cleanup()
finish()
