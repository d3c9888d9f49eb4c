"""labserver.py: what the lab's Python peers, stslab.py (MTA-STS policy hosts) and smtplab.py
(SMTP servers), share: time-stamped logging, listening sockets with an accept thread each,
the pid and ready files dnslab.sh waits for, deadlines, the `check` command that runs every
line of an expect file at once, and the command-line frame. See tests/lab/README.md.

dnslab.sh runs the servers as `python3 -I -S script.py`; isolated mode leaves the script's
directory off sys.path (Python 3.11: -I implies -P), so each script puts its own directory
there before importing this module.
"""
import argparse
import os
import socket
import ssl
import threading
import time


# ---------------------------------------------------------------------------------------
# serve

def logger(millis=False, max_len=None):
    """A log(what) that prints "HH:MM:SS what" on stdout ("HH:MM:SS.mmm" with millis), what
    cut after max_len characters (when given), one whole line at a time from any thread."""
    lock = threading.Lock()

    def log(what):
        t = time.time()
        stamp = time.strftime("%H:%M:%S", time.localtime(t))
        if millis:
            stamp += f".{int(t * 1000) % 1000:03d}"
        if max_len is not None and len(what) > max_len:
            what = what[:max_len] + "..."
        with lock:
            print(stamp, what, flush=True)
    return log


def listen(where):
    """A TCP socket listening on where, "ADDRESS:PORT" (IPv4)."""
    host, _, port = where.rpartition(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(64)
    return s


def tls_server_context(cert, key):
    """A server-side TLS context (TLS 1.2 at least) with this certificate and key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def thread(target, *args):
    """Run target(*args) in a daemon thread: it ends with the process."""
    threading.Thread(target=target, args=args, daemon=True).start()


def accept_forever(sock, name, log, handle):
    """Call handle(conn, peer) for every connection accepted on sock, for ever. An accept
    that fails (EMFILE and the like) is logged and tried again a little later."""
    while True:
        try:
            conn, peer = sock.accept()
        except OSError as e:
            log(f"{name}: accept: {e}")
            time.sleep(0.1)
            continue
        handle(conn, peer)


def ready_and_wait(pidfile, ready, log, listening):
    """Write the pid file, then the ready file dnslab.sh waits for, log what listens, and
    wait: the accept threads do the rest until SIGTERM ends the process."""
    with open(pidfile, "w") as f:
        f.write(f"{os.getpid()}\n")
    with open(ready, "w") as f:
        f.write("ready\n")
    log(f"listening: {listening}")
    threading.Event().wait()


# ---------------------------------------------------------------------------------------
# check

class Timeout(Exception):
    """A deadline passed."""


class Deadline:
    """timeout seconds from now; left() is what remains, or raises Timeout."""

    def __init__(self, timeout):
        self.end = time.monotonic() + timeout

    def left(self):
        r = self.end - time.monotonic()
        if r <= 0:
            raise Timeout()
        return r


def check_all(expectfile, summary):
    """Run summary(host) for each `HOST WANT...` line of expectfile, all at once, print one
    line each ("ok", or "FAIL" and what was wanted) and return how many failed."""
    want = []
    with open(expectfile) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                host, _, w = line.partition(" ")
                want.append((host, " ".join(w.split())))
    got = {}

    def run(h):
        got[h] = summary(h)

    threads = [threading.Thread(target=run, args=(h,)) for h, _ in want]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bad = 0
    for host, w in want:
        if got[host] == w:
            print(f"{host:<30} {w} ok")
        else:
            bad += 1
            print(f"{host:<30} {got[host]} FAIL\n{'':<30} want: {w}")
    return bad


# ---------------------------------------------------------------------------------------
# the command line

def parser(doc):
    """The argument parser of a lab script, its docstring as help, and its sub-commands."""
    p = argparse.ArgumentParser(description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    return p, p.add_subparsers(dest="cmd", required=True)
