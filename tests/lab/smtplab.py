#!/usr/bin/python3
"""smtplab.py: the lab's SMTP peers for REQUIRETLS tests, and the SMTP part of
`dnslab.sh --check`. Started by dnslab.sh; see tests/lab/README.md.

  smtplab.py serve --listen BEHAVIOUR=ADDR:PORT... [--cert BEHAVIOUR=CERT:KEY...]
                   --spool DIR --pidfile F --ready F [--idle-timeout S]
                   [--session-timeout S] [--max-connections N]
      one process, one thread per listening socket and per session; BEHAVIOUR is:
      rtls       STARTTLS; after it, EHLO lists REQUIRETLS; stores each message
      tlsonly    the same, but never REQUIRETLS (MAIL ... REQUIRETLS: 555 5.5.4)
      plain      no STARTTLS at all; mail in clear
      wrongcert  like rtls, with a certificate for a name no MX uses
      stall      lists STARTTLS, answers 220 to it, then says nothing (no ServerHello)
      endless    answers EHLO with 250- lines that never end (one each 10 ms)
      Each accepted message goes to SPOOL/BEHAVIOUR/N.eml, its first line
      X-Lab-Envelope: from=<..> params=<..> rcpt=<..>,<..> tls=yes|no server=B ...
  smtplab.py probe CAFILE HOST [--timeout S] [--tlsa HEX] [--spool DIR]
      one SMTP session with HOST:25 (EHLO, STARTTLS, EHLO, MAIL with and without
      REQUIRETLS, RCPT, DATA) that prints a one-line summary
  smtplab.py check CAFILE EXPECTFILE [--tlsa HOST=HEX...] [--spool DIR] [--timeout S]
      probes every `HOST WANT...` line of EXPECTFILE at once and compares the summaries
"""
import hashlib
import os
import re
import socket
import ssl
import sys
import threading
import time

# dnslab.sh runs this as `python3 -I -S`, which leaves this directory off sys.path (Python
# 3.11: -I implies -P). No __pycache__ in the source tree.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True
import labserver  # noqa: E402
from labserver import Timeout  # noqa: E402

PORT = 25
CMD_LINE_MAX = 2048         # RFC 5321 4.5.3.1.4 says 512; be lenient, but bounded
TEXT_LINE_MAX = 8192        # a message line (4.5.3.1.6 says 1000)
MESSAGE_MAX = 10 * 1024 * 1024
RCPT_MAX = 100
ERRORS_MAX = 20
TLS_TIMEOUT = 10.0
ENDLESS_DELAY = 0.01
LOG_LINE_MAX = 300
REQUIRETLS_SERVERS = ("rtls", "wrongcert")
TLS_SERVERS = ("rtls", "tlsonly", "wrongcert", "stall")


# ---------------------------------------------------------------------------------------
# serve

log = labserver.logger(millis=True, max_len=LOG_LINE_MAX)


class Closed(Exception):
    """The session is over (peer gone, timeout, limit); the reason is logged."""


class Spool:
    """SPOOL/BEHAVIOUR/N.eml, N counting from 1 (or on from what is there)."""

    def __init__(self, root):
        self.root = root
        self.lock = threading.Lock()
        self.next = {}

    def store(self, behaviour, data):
        d = os.path.join(self.root, behaviour)
        with self.lock:
            if behaviour not in self.next:
                os.makedirs(d, exist_ok=True)
                ns = [int(f[:-4]) for f in os.listdir(d) if re.fullmatch(r"\d+\.eml", f)]
                self.next[behaviour] = max(ns, default=0) + 1
            n = self.next[behaviour]
            self.next[behaviour] = n + 1
        # Written beside the directory, then renamed into it: whoever lists SPOOL/BEHAVIOUR
        # sees only whole messages.
        tmp = os.path.join(self.root, f".{behaviour}.{n}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(d, f"{n}.eml"))
        return f"{behaviour}/{n}.eml"


class Session:
    ids = 0
    ids_lock = threading.Lock()

    def __init__(self, srv, conn, peer):
        self.srv = srv
        self.b = srv.behaviour
        self.sock = conn
        self.peer = f"{peer[0]}:{peer[1]}"
        self.buf = b""
        self.tls = None           # "TLSv1.3 TLS_AES_256_GCM_SHA384" once STARTTLS is done
        self.sni = None
        self.helo = None
        self.esmtp = False
        self.errors = 0
        self.start = time.monotonic()
        self.end = self.start + srv.session_timeout
        self.reset()
        with Session.ids_lock:
            Session.ids += 1
            self.id = Session.ids

    def reset(self):
        self.mail_from = None
        self.params = []
        self.rcpts = []

    def log(self, what):
        log(f"{self.b}#{self.id} {what}")

    # I/O, bounded by the idle and the session timeouts.
    def timeout(self):
        left = self.end - time.monotonic()
        if left <= 0:
            raise Closed(f"session limit of {self.srv.session_timeout:g} s reached")
        return min(left, self.srv.idle_timeout)

    def recv(self):
        self.sock.settimeout(self.timeout())
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            if time.monotonic() >= self.end:
                raise Closed(f"session limit of {self.srv.session_timeout:g} s reached")
            raise Closed(f"idle for {self.srv.idle_timeout:g} s")
        if not data:
            raise Closed("peer closed")
        return data

    def send(self, text, quiet=False):
        if not quiet:
            for line in text.split("\r\n"):
                self.log(f"S: {line}")
        self.sock.settimeout(self.timeout())
        try:
            self.sock.sendall(text.encode() + b"\r\n")
        except (socket.timeout, TimeoutError):
            raise Closed("peer does not read (send timed out)")

    def readline(self, limit):
        """One line with its line end, at most limit bytes."""
        while True:
            i = self.buf.find(b"\n")
            if 0 <= i < limit:
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return line
            if i >= limit or len(self.buf) >= limit:
                raise OverflowError()
            self.buf += self.recv()

    # The dialogue.
    def run(self):
        self.log(f"connect from {self.peer}")
        why = "?"
        try:
            self.send(f"220 {self.srv.name} ESMTP smtplab {self.b}")
            self.dialogue()
        except Closed as e:
            why = str(e)
        except OverflowError:
            why = "line too long"
            try:
                self.send("500 5.5.2 Error: line too long")
            except (Closed, OSError):
                pass
        except (ssl.SSLError, OSError) as e:
            why = f"{type(e).__name__}: {e}"
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
            self.log(f"disconnect ({why}) after {time.monotonic() - self.start:.3f} s")

    def dialogue(self):
        while True:
            raw = self.readline(CMD_LINE_MAX)
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            self.log(f"C: {line}")
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            handler = getattr(self, "do_" + verb, None) if verb.isalpha() else None
            if handler is None:
                self.error("500 5.5.2 Error: command not recognized")
            elif handler(arg.strip()) == "quit":
                raise Closed("QUIT")

    def error(self, reply):
        self.errors += 1
        if self.errors > ERRORS_MAX:
            self.send("421 4.7.0 Error: too many errors")
            raise Closed("too many errors")
        self.send(reply)

    def keywords(self):
        k = ["PIPELINING", f"SIZE {MESSAGE_MAX}", "8BITMIME", "ENHANCEDSTATUSCODES"]
        if self.b in TLS_SERVERS and not self.tls:
            k.append("STARTTLS")
        if self.b in REQUIRETLS_SERVERS and self.tls:
            k.append("REQUIRETLS")
        return k

    def do_EHLO(self, arg):
        if not arg:
            return self.error("501 5.5.4 Syntax: EHLO hostname")
        self.helo, self.esmtp = arg, True
        self.reset()
        if self.b == "endless":
            return self.endless()
        lines = [f"{self.srv.name} hello {arg}"] + self.keywords()
        self.send("\r\n".join(f"250-{x}" for x in lines[:-1]) + f"\r\n250 {lines[-1]}")

    def endless(self):
        """250- lines, one each ENDLESS_DELAY, until the peer goes or stops reading (the
        idle timeout) or the session limit."""
        n = 0
        self.log(f"S: 250-{self.srv.name} hello {self.helo} (then 250- lines forever)")
        try:
            self.send(f"250-{self.srv.name} hello {self.helo}", quiet=True)
            while True:
                time.sleep(ENDLESS_DELAY)
                n += 1
                self.send(f"250-X-ENDLESS-{n} this reply never ends", quiet=True)
        except (Closed, OSError) as e:
            raise Closed(f"endless EHLO reply: {n} lines sent, then {e}")

    def do_HELO(self, arg):
        if not arg:
            return self.error("501 5.5.4 Syntax: HELO hostname")
        self.helo, self.esmtp = arg, False
        self.reset()
        self.send(f"250 {self.srv.name}")

    def do_STARTTLS(self, arg):
        if self.b not in TLS_SERVERS:
            return self.error("502 5.5.1 Error: command not implemented")
        if self.tls:
            return self.error("554 5.5.1 Error: TLS already active")
        if arg:
            return self.error("501 5.5.4 Syntax: STARTTLS")
        if self.buf:
            # Commands pipelined after STARTTLS would be taken as sent under TLS (the
            # STARTTLS command injection of CVE-2011-0411): refuse, as real servers do.
            self.send("554 5.5.1 Error: command pipelined after STARTTLS")
            raise Closed("data pipelined after STARTTLS")
        self.send("220 2.0.0 Ready to start TLS")
        if self.b == "stall":
            return self.stall()
        self.sock.settimeout(min(TLS_TIMEOUT, self.timeout()))
        try:
            self.sock = self.srv.ctx.wrap_socket(self.sock, server_side=True)
        except (socket.timeout, TimeoutError):
            raise Closed("TLS handshake timed out")
        except (ssl.SSLError, OSError) as e:
            raise Closed(f"TLS handshake failed: {e}")
        self.sni = getattr(self.sock, "lab_sni", None)
        self.tls = f"{self.sock.version()} {self.sock.cipher()[0]}"
        self.log(f"TLS established: {self.tls} sni={self.sni or '-'}")
        # RFC 3207 4.2: forget everything learnt before TLS, EHLO included.
        self.helo, self.esmtp = None, False
        self.reset()

    def stall(self):
        """Say nothing after the 220: read (a ClientHello) until the peer goes, or the
        session limit."""
        self.log("stall: no TLS handshake, silence from now on")
        got = 0
        while True:
            try:
                got += len(self.recv())
            except Closed as e:
                if str(e).startswith("idle"):
                    continue
                raise Closed(f"stalled after STARTTLS ({got} bytes read): {e}")

    def do_MAIL(self, arg):
        if not self.helo:
            return self.error("503 5.5.1 Error: send HELO/EHLO first")
        if self.mail_from is not None:
            return self.error("503 5.5.1 Error: nested MAIL command")
        m = re.fullmatch(r"(?i)FROM:\s*<([^<>]*)>\s*(.*)", arg)
        if not m:
            return self.error("501 5.5.4 Syntax: MAIL FROM:<address>")
        params = m.group(2).split()
        if params and not self.esmtp:
            return self.error("555 5.5.4 Error: MAIL parameters need EHLO")
        offered = [k.split()[0] for k in self.keywords()]
        for p in params:
            key, _, val = p.partition("=")
            key = key.upper()
            if key == "SIZE" and val.isdigit():
                if int(val) > MESSAGE_MAX:
                    return self.send("552 5.3.4 Error: message too big")
            elif key == "BODY" and val.upper() in ("7BIT", "8BITMIME"):
                pass
            elif key == "REQUIRETLS" and key in offered:
                pass   # the draft's options (-03: REQUIRETLS=...) are recorded as sent
            else:
                return self.error(f"555 5.5.4 Error: unsupported MAIL parameter {key}")
        self.mail_from, self.params = m.group(1), params
        self.send("250 2.1.0 Ok")

    def do_RCPT(self, arg):
        if self.mail_from is None:
            return self.error("503 5.5.1 Error: need MAIL command")
        m = re.fullmatch(r"(?i)TO:\s*<([^<>]+)>\s*(.*)", arg)
        if not m:
            return self.error("501 5.5.4 Syntax: RCPT TO:<address>")
        if m.group(2):
            return self.error("555 5.5.4 Error: RCPT parameters not supported")
        if len(self.rcpts) >= RCPT_MAX:
            return self.send("452 4.5.3 Error: too many recipients")
        self.rcpts.append(m.group(1))
        self.send("250 2.1.5 Ok")

    def do_DATA(self, arg):
        if self.mail_from is None:
            return self.error("503 5.5.1 Error: need MAIL command")
        if not self.rcpts:
            return self.error("554 5.5.1 Error: no valid recipients")
        self.send("354 End data with <CR><LF>.<CR><LF>")
        body, size, big = [], 0, False
        while True:
            line = self.readline(TEXT_LINE_MAX)
            if line in (b".\r\n", b".\n"):
                break
            if line.startswith(b"."):
                line = line[1:]
            size += len(line)
            if size > MESSAGE_MAX:
                big = True
            else:
                body.append(line)
        if big:
            self.reset()
            return self.send("552 5.3.4 Error: message too big")
        tls = f"no server={self.b}"
        if self.tls:
            tls = f"yes server={self.b} tls-version={self.tls.split()[0]} sni={self.sni or '-'}"
        env = (f"X-Lab-Envelope: from=<{self.mail_from}> params=<{' '.join(self.params)}> "
               f"rcpt={','.join(f'<{r}>' for r in self.rcpts)} tls={tls} "
               f"helo=<{self.helo}> session={self.id}\r\n")
        name = self.srv.spool.store(self.b, env.encode() + b"".join(body))
        self.log(f"stored {name}: {size} bytes, {env.strip()}")
        self.reset()
        self.send(f"250 2.0.0 Ok: queued as {name}")

    def do_RSET(self, arg):
        self.reset()
        self.send("250 2.0.0 Ok")

    def do_NOOP(self, arg):
        self.send("250 2.0.0 Ok")

    def do_VRFY(self, arg):
        self.send("252 2.0.0 Cannot VRFY; send some mail")

    def do_HELP(self, arg):
        self.send("214 2.0.0 smtplab: EHLO HELO STARTTLS MAIL RCPT DATA RSET NOOP QUIT")

    def do_QUIT(self, arg):
        self.send("221 2.0.0 Bye")
        return "quit"


def remember_sni(sslsock, name, ctx):
    """The name the client asked for, kept on its SSLSocket."""
    sslsock.lab_sni = name


class Server:
    def __init__(self, behaviour, where, cert, spool, a, slots):
        self.behaviour = behaviour
        self.name = f"{behaviour}.smtplab.test"
        self.spool = spool
        self.idle_timeout = a.idle_timeout
        self.session_timeout = a.session_timeout
        self.slots = slots
        self.ctx = None
        if behaviour in TLS_SERVERS and behaviour != "stall":
            if cert is None:
                sys.exit(f"smtplab.py: {behaviour} needs --cert {behaviour}=CERT:KEY")
            self.ctx = labserver.tls_server_context(*cert)
            self.ctx.sni_callback = remember_sni
        self.where = where
        self.sock = labserver.listen(where)

    def accept_loop(self):
        labserver.accept_forever(self.sock, self.behaviour, log, self.accepted)

    def accepted(self, conn, peer):
        if not self.slots.acquire(blocking=False):
            log(f"{self.behaviour}: connection from {peer[0]}:{peer[1]} refused: "
                f"too many connections")
            try:
                conn.settimeout(1)
                conn.sendall(b"421 4.7.0 Error: too many connections\r\n")
            except OSError:
                pass
            conn.close()
            return
        labserver.thread(self.session, conn, peer)

    def session(self, conn, peer):
        try:
            Session(self, conn, peer).run()
        finally:
            self.slots.release()


def serve(a):
    certs = {}
    for c in a.cert:
        b, _, files = c.partition("=")
        cert, _, key = files.partition(":")
        certs[b] = (cert, key)
    spool = Spool(a.spool)
    os.makedirs(a.spool, exist_ok=True)
    slots = threading.BoundedSemaphore(a.max_connections)
    servers = []
    for item in a.listen:
        b, _, where = item.partition("=")
        if b not in ("rtls", "tlsonly", "plain", "wrongcert", "stall", "endless"):
            sys.exit(f"smtplab.py: unknown behaviour {b}")
        os.makedirs(os.path.join(a.spool, b), exist_ok=True)
        servers.append(Server(b, where, certs.get(b), spool, a, slots))
    for s in servers:
        labserver.thread(s.accept_loop)
    labserver.ready_and_wait(a.pidfile, a.ready, log,
                             ", ".join(f"{s.behaviour} {s.where}" for s in servers))


# ---------------------------------------------------------------------------------------
# probe / check

def der_spki(der):
    """The DER SubjectPublicKeyInfo of a DER certificate."""
    def tlv(i):
        n, j = der[i + 1], i + 2
        if n & 0x80:
            k = n & 0x7F
            n, j = int.from_bytes(der[j:j + k], "big"), j + k
        return j, j + n          # content start, end

    _, _ = tlv(0)                # Certificate
    i, _ = tlv(0)
    i, _ = tlv(i)                # tbsCertificate: its first element
    if der[i] == 0xA0:           # [0] version
        i = tlv(i)[1]
    for _ in range(5):           # serial, signature, issuer, validity, subject
        i = tlv(i)[1]
    return der[i:tlv(i)[1]]


class Probe(labserver.Deadline):
    def __init__(self, host, timeout):
        super().__init__(timeout)
        self.host = host
        self.sock = None
        self.buf = b""
        self.phase = "resolve"
        self.lines = 0

    def reply(self):
        """(code, [text lines]) of one reply."""
        texts = []
        while True:
            while b"\n" not in self.buf:
                self.sock.settimeout(self.left())
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("connection closed")
                self.buf += data
            line, _, self.buf = self.buf.partition(b"\n")
            line = line.rstrip(b"\r").decode("utf-8", "replace")
            self.lines += 1
            texts.append(line[4:])
            if line[3:4] != "-":
                return line[:3], texts

    def cmd(self, text):
        self.sock.settimeout(self.left())
        self.sock.sendall(text.encode() + b"\r\n")
        return self.reply()

    def ehlo(self):
        self.phase, self.lines = "ehlo", 0
        code, texts = self.cmd("EHLO probe.smtplab.test")
        if code != "250":
            return code, []
        return code, [t.split()[0].upper() for t in texts[1:] if t.split()]


def probe(cafile, host, timeout=2.0, tlsa=None, spool=None):
    """One SMTP session with host:25; a one-line summary of what happened."""
    p = Probe(host, timeout)
    out = []
    try:
        ip = socket.getaddrinfo(host, PORT, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
        p.phase = "connect"
        p.sock = socket.create_connection((ip, PORT), timeout=p.left())
        p.phase = "banner"
        code, _ = p.reply()
        out.append(f"banner={code}")
        code, kw = p.ehlo()
        out.append(f"ehlo={','.join(kw) or code}")
        p.phase = "starttls"
        code, _ = p.cmd("STARTTLS")
        out.append(f"starttls={code}")
        if code == "220":
            p.phase = "tls-handshake"
            ctx = ssl.create_default_context(cafile=cafile)
            ctx.check_hostname = False   # the names are compared below
            p.sock.settimeout(p.left())
            try:
                p.sock = ctx.wrap_socket(p.sock, server_hostname=host)
            except ssl.SSLCertVerificationError as e:
                out.append(f"tls=verify-failed({e.verify_message})")
                return " ".join(out)
            cert = p.sock.getpeercert()
            san = [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
            out.append(f"tls=ok san={','.join(san)} "
                       f"name={'ok' if host in san else 'mismatch'}")
            if tlsa:
                spki = der_spki(p.sock.getpeercert(binary_form=True))
                ok = hashlib.sha256(spki).hexdigest() == tlsa.lower()
                out.append(f"tlsa={'match' if ok else 'mismatch'}")
            code, kw = p.ehlo()
            out.append(f"ehlo={','.join(kw) or code}")
        p.phase = "mail"
        mid = f"<{time.time_ns()}.{os.getpid()}@probe.smtplab.test>"
        code, _ = p.cmd("MAIL FROM:<probe@smtplab.test> REQUIRETLS")
        out.append(f"mail-requiretls={code}")
        if code != "250":
            p.cmd("RSET")
            code, _ = p.cmd("MAIL FROM:<probe@smtplab.test>")
            out.append(f"mail={code}")
            if code != "250":
                return " ".join(out)
        code, _ = p.cmd(f"RCPT TO:<postmaster@{host}>")
        out.append(f"rcpt={code}")
        code, _ = p.cmd("DATA")
        if code == "354":
            code, texts = p.cmd(f"Message-ID: {mid}\r\nSubject: smtplab probe\r\n\r\n"
                                f"..a dot-stuffed line\r\nbye\r\n.")
        out.append(f"data={code}")
        p.phase = "quit"
        p.cmd("QUIT")
        if code == "250" and spool:
            name = texts[0].rpartition(" ")[2]
            try:
                with open(os.path.join(spool, name), "rb") as f:
                    env = f.readline().decode()
                    rest = f.read()
                facts = dict(re.findall(r"([\w-]+)=(<[^>]*>(?:,<[^>]*>)*|\S+)", env))
                fine = mid.encode() in rest and b"\r\n.a dot-stuffed line\r\n" in rest
                out.append(f"stored={facts.get('server')}(params={facts.get('params')} "
                           f"tls={facts.get('tls')}{'' if fine else ' BAD-CONTENT'})")
            except OSError as e:
                out.append(f"stored=? ({e})")
        return " ".join(out)
    except (Timeout, socket.timeout, TimeoutError):
        if p.phase == "ehlo" and p.lines >= 50:
            out.append("timeout in ehlo (>=50 lines)")
        else:
            out.append(f"timeout in {p.phase}")
        return " ".join(out)
    except ConnectionRefusedError:
        return " ".join(out + [f"connection refused in {p.phase}"])
    except (OSError, ssl.SSLError, ValueError, IndexError) as e:
        return " ".join(out + [f"error in {p.phase}: {e}"])
    finally:
        if p.sock is not None:
            p.sock.close()


def check(a):
    tlsa = dict(t.split("=", 1) for t in a.tlsa)
    return labserver.check_all(a.expectfile,
                               lambda h: probe(a.cafile, h, a.timeout, tlsa.get(h), a.spool))


def main():
    p, sub = labserver.parser(__doc__)
    s = sub.add_parser("serve")
    s.add_argument("--listen", action="append", required=True)
    s.add_argument("--cert", action="append", default=[])
    for o in ("spool", "pidfile", "ready"):
        s.add_argument("--" + o, required=True)
    s.add_argument("--idle-timeout", type=float, default=60.0)
    s.add_argument("--session-timeout", type=float, default=300.0)
    s.add_argument("--max-connections", type=int, default=64)
    pr = sub.add_parser("probe")
    pr.add_argument("cafile")
    pr.add_argument("host")
    pr.add_argument("--timeout", type=float, default=2.0)
    pr.add_argument("--tlsa", help="hex SHA-256 of the SPKI that the certificate must have")
    pr.add_argument("--spool", default=os.environ.get("LAB_SMTP_DIR"))
    c = sub.add_parser("check")
    c.add_argument("cafile")
    c.add_argument("expectfile")
    c.add_argument("--timeout", type=float, default=2.0)
    c.add_argument("--tlsa", action="append", default=[], help="HOST=HEX")
    c.add_argument("--spool", default=os.environ.get("LAB_SMTP_DIR"))
    a = p.parse_args()
    if a.cmd == "serve":
        serve(a)
    elif a.cmd == "check":
        sys.exit(1 if check(a) else 0)
    else:
        print(probe(a.cafile, a.host, a.timeout, a.tlsa, a.spool))


if __name__ == "__main__":
    main()
