"""Bad input and abusive clients (SPEC section 4): each gets a clear log line and is
closed, costs bounded memory, and never disturbs a well-behaved client that queries the
whole time. Run under ASan/UBSan by the test command; a clean SIGTERM exit at the end
means no sanitizer report and no leak."""
import os
import resource
import socket
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
finish()
