#!/usr/bin/python3
"""stslab.py: the MTA-STS policy hosts of the lab that nginx cannot play, and the HTTPS part
of `dnslab.sh --check`. Started by dnslab.sh; see tests/lab/README.md.

  stslab.py serve --notls A:P --nohttp A:P --slow A:P --cert F --key F --slow-body F
                  --pidfile F --ready F
      notls:  accepts TCP, reads, never answers (no TLS handshake ever)
      nohttp: completes the TLS handshake, reads the request, never answers
      slow:   TLS, answers 200 text/plain with Content-Length at once, then trickles the
              body at SLOW_BYTES every SLOW_DELAY seconds (the whole takes > 20 s)
  stslab.py check CAFILE EXPECTFILE [TIMEOUT]
      fetches https://HOST/.well-known/mta-sts.txt for each `HOST WANT...` line of
      EXPECTFILE (names resolved through /etc/resolv.conf, i.e. the lab's unbound), all at
      once with a TIMEOUT (2 s) for each whole fetch, and compares a one-line summary
  stslab.py fetch CAFILE HOST [TIMEOUT]
      prints that summary for one host
"""
import os
import socket
import ssl
import sys
import time

# dnslab.sh runs this as `python3 -I -S`, which leaves this directory off sys.path (Python
# 3.11: -I implies -P). No __pycache__ in the source tree.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True
import labserver  # noqa: E402
from labserver import Timeout  # noqa: E402

SLOW_BYTES = 1
SLOW_DELAY = 0.4   # 66 bytes: about 26 s
PATH = "/.well-known/mta-sts.txt"


# ---------------------------------------------------------------------------------------
# serve

log = labserver.logger()


def silent(name, conn, ctx):
    """Read whatever comes (after a TLS handshake, given ctx) until the peer goes; never
    write."""
    try:
        if ctx is not None:
            conn = ctx.wrap_socket(conn, server_side=True)
            log(f"{name}: handshake done")
        while conn.recv(4096):
            pass
    except (OSError, ssl.SSLError) as e:
        log(f"{name}: {e}")
    finally:
        log(f"{name}: peer closed")
        conn.close()


def slow(body, conn, ctx):
    try:
        conn = ctx.wrap_socket(conn, server_side=True)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 16384:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
        for i in range(0, len(body), SLOW_BYTES):
            time.sleep(SLOW_DELAY)
            conn.sendall(body[i:i + SLOW_BYTES])
        log("slow: body sent")
    except (OSError, ssl.SSLError) as e:
        log(f"slow: {e}")
    finally:
        conn.close()


def serve(a):
    """One thread per listening socket and one per connection; SIGTERM ends it all."""
    ctx = labserver.tls_server_context(a.cert, a.key)
    with open(a.slow_body, "rb") as f:
        body = f.read()
    servers = []
    for name, where, handler, tls in (("notls", a.notls, silent, None),
                                      ("nohttp", a.nohttp, silent, ctx),
                                      ("slow", a.slow, slow, ctx)):
        arg = body if handler is slow else name
        servers.append((name, labserver.listen(where), handler, arg, tls))

    def accept(name, s, handler, arg, tls):
        def handle(conn, peer):
            log(f"{name}: connection from {peer[0]}:{peer[1]}")
            labserver.thread(handler, arg, conn, tls)
        labserver.accept_forever(s, name, log, handle)

    for srv in servers:
        labserver.thread(accept, *srv)
    labserver.ready_and_wait(a.pidfile, a.ready, log,
                             f"notls {a.notls}, nohttp {a.nohttp}, slow {a.slow}")


# ---------------------------------------------------------------------------------------
# check / fetch

VERIFY = {10: "certificate expired", 20: "unknown issuer", 62: "name mismatch"}


def summarize_policy(body):
    if b"\r\n" in body:
        eol = "crlf" if body.count(b"\n") == body.count(b"\r\n") else "mixed"
    else:
        eol = "lf"
    mode, mx = "-", []
    for line in body.decode("utf-8", "replace").splitlines():
        k, _, v = line.partition(":")
        k, v = k.strip(), v.strip()
        if k == "mode":
            mode = v
        elif k == "mx":
            mx.append(v)
    return f"eol={eol} mode={mode} mx={','.join(mx) or '-'}"


def dechunk(data):
    out, i = b"", 0
    while True:
        j = data.index(b"\r\n", i)
        n = int(data[i:j].split(b";")[0], 16)
        if n == 0:
            return out
        out += data[j + 2:j + 2 + n]
        i = j + 2 + n + 2


def fetch(cafile, host, timeout=2.0, port=443):
    """One line: how a policy fetch from host went."""
    left = labserver.Deadline(timeout).left
    phase = "resolve"

    sock = None
    try:
        ip = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
        phase = "connect"
        sock = socket.create_connection((ip, port), timeout=left())
        phase = "tls-handshake"
        ctx = ssl.create_default_context(cafile=cafile)
        sock.settimeout(left())
        try:
            sock = ctx.wrap_socket(sock, server_hostname=host)
        except ssl.SSLCertVerificationError as e:
            return f"verify failed ({VERIFY.get(e.verify_code, e.verify_message)})"
        phase = "response"
        sock.settimeout(left())
        sock.sendall(f"GET {PATH} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
                     f"User-Agent: dnslab-check\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            sock.settimeout(left())
            chunk = sock.recv(65536)
            if not chunk:
                return f"verify ok, connection closed in {phase} ({len(data)} bytes)"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split(" ")[1]
        hdr = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdr[k.strip().lower()] = v.strip()
        phase = f"body after {status}"
        while True:
            sock.settimeout(left())
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        got = f"verify ok, {status}"
        if status.startswith("3"):
            return f"{got} location={hdr.get('location', '-')}"
        got += f" {hdr.get('content-type', '-')}"
        if status != "200":
            return got
        if hdr.get("transfer-encoding", "").lower() == "chunked":
            body = dechunk(body)
            got += f" chunked={len(body)}"
        elif "content-length" in hdr:
            if int(hdr["content-length"]) != len(body):
                return f"{got} length {hdr['content-length']} but {len(body)} bytes"
            got += f" length={len(body)}"
        else:
            got += f" close-delimited={len(body)}"
        return f"{got} {summarize_policy(body)}"
    except (Timeout, socket.timeout):
        return f"timeout in {phase}"
    except ConnectionRefusedError:
        return f"connection refused in {phase}"
    except (OSError, ssl.SSLError, ValueError, IndexError) as e:
        return f"error in {phase}: {e}"
    finally:
        if sock is not None:
            sock.close()


def check(cafile, expectfile, timeout):
    return labserver.check_all(expectfile, lambda h: fetch(cafile, h, timeout))


def main():
    p, sub = labserver.parser(__doc__)
    s = sub.add_parser("serve")
    for o in ("notls", "nohttp", "slow", "cert", "key", "slow-body", "pidfile", "ready"):
        s.add_argument("--" + o, required=True)
    c = sub.add_parser("check")
    c.add_argument("cafile")
    c.add_argument("expectfile")
    c.add_argument("timeout", nargs="?", type=float, default=2.0)
    f = sub.add_parser("fetch")
    f.add_argument("cafile")
    f.add_argument("host")
    f.add_argument("timeout", nargs="?", type=float, default=2.0)
    a = p.parse_args()
    if a.cmd == "serve":
        serve(a)
    elif a.cmd == "check":
        sys.exit(1 if check(a.cafile, a.expectfile, a.timeout) else 0)
    else:
        print(fetch(a.cafile, a.host, a.timeout))


if __name__ == "__main__":
    main()
