"""A throwaway Postfix instance for end-to-end tests: its own configuration, queue and
log directories under a temporary directory, Debian's stock master.cf with chroot off and
the SMTP server on 127.0.0.1:10025, plus the services of contrib/postfix/ with the
daemon's socket path filled in. Started and stopped by the test; the mail log is a file
(maillog_file), read to see what happened to each message."""
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CONTRIB = os.path.join(HERE, "..", "..", "contrib", "postfix")
MASTER_DIST = "/usr/share/postfix/master.cf.dist"
PIPE_SERVICES = {"maildrop", "uucp", "ifmail", "bsmtp", "scalemail-backend", "mailman"}


class Postfix:
    def __init__(self, socket_path, main_extra=(), ca_file=None):
        """main_extra: further main.cf lines; ca_file: replaces the system CA bundle."""
        self.dir = tempfile.mkdtemp(prefix="tlspolicyd-postfix-")
        os.chmod(self.dir, 0o755)
        self.etc = os.path.join(self.dir, "etc")
        self.queue = os.path.join(self.dir, "queue")
        self.data = os.path.join(self.dir, "data")
        self.maillog = os.path.join(self.dir, "maillog")
        for d in (self.etc, self.queue, self.data):
            os.mkdir(d)
        shutil.chown(self.data, "postfix", "postfix")
        sock = f"socketmap:unix:{socket_path}"
        with open(os.path.join(CONTRIB, "main.cf.tlspolicyd")) as f:
            contrib_main = f.read().replace("socketmap:unix:/run/tlspolicyd/tlspolicyd.sock", sock)
        contrib_main = contrib_main.replace("/etc/postfix/tlspolicyd_header_checks",
                                            os.path.join(self.etc, "tlspolicyd_header_checks"))
        if ca_file:
            contrib_main = contrib_main.replace("/etc/ssl/certs/ca-certificates.crt", ca_file)
        for table in ("tlspolicyd_header_checks", "tlspolicyd_requiretls_command_filter"):
            shutil.copy(os.path.join(CONTRIB, table), self.etc)
        main = [
            "compatibility_level = 3.6",
            f"queue_directory = {self.queue}",
            f"data_directory = {self.data}",
            "mail_owner = postfix",
            "setgid_group = postdrop",
            "myhostname = client.lab.test",
            "mydomain = lab.test",
            "myorigin = $myhostname",
            "mydestination =",
            "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4",
            "mynetworks = 127.0.0.0/8",
            f"maillog_file = {self.maillog}",
            f"maillog_file_prefixes = {self.dir}",
            "alias_maps =",
            "alias_database =",
            "local_recipient_maps =",
            "smtputf8_enable = no",
            "biff = no",
            # One delivery attempt is what the tests look at; no fallback relay.
            "smtp_connect_timeout = 5s",
            "smtp_helo_timeout = 10s",
            "queue_run_delay = 300s",
            "bounce_queue_lifetime = 0",
            "smtp_tls_loglevel = 1",
            "smtp_tls_session_cache_database =",
            # The lab resolver refuses the root zone, where Postfix's DNSSEC self-test looks.
            "dnssec_probe = ns:test.",
        ] + list(main_extra)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write("\n".join(main) + "\n\n" + contrib_main)
        lines = []
        skip = False
        with open(MASTER_DIST) as f:
            for line in f:
                if line.startswith("#") or not line.strip():
                    continue
                if line[0].isspace():
                    if not skip:
                        lines.append(line.rstrip("\n"))
                    continue
                fields = line.split()
                skip = fields[0] in PIPE_SERVICES
                if skip:
                    continue
                if fields[0] == "smtp" and fields[1] == "inet":
                    fields[0] = "127.0.0.1:10025"
                fields[4] = "n"  # chroot off: the daemon's socket is outside any chroot
                lines.append(" ".join(fields))
        with open(os.path.join(CONTRIB, "master.cf.tlspolicyd")) as f:
            contrib_master = f.read().replace("socketmap:unix:/run/tlspolicyd/tlspolicyd.sock", sock)
        contrib_master = contrib_master.replace("/etc/postfix/", self.etc + "/")
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write("\n".join(lines) + "\n\n" + contrib_master)

    def postfix(self, *args):
        return subprocess.run(["postfix", "-c", self.etc] + list(args), capture_output=True,
                              text=True, timeout=60)

    def start(self):
        p = self.postfix("check")
        if p.returncode != 0:
            raise RuntimeError("postfix check: " + p.stdout + p.stderr)
        p = self.postfix("start")
        if p.returncode != 0:
            raise RuntimeError("postfix start: " + p.stdout + p.stderr + self.log())
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                with smtplib.SMTP("127.0.0.1", 10025, timeout=2) as s:
                    s.noop()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("postfix did not listen on 10025: " + self.log())

    def stop(self):
        return self.postfix("stop").returncode

    def log(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def send(self, port, sender, rcpts, headers=(), subject="test"):
        """Submit a message; returns its Message-ID (unique, for finding it in the log)."""
        mid = f"<{time.time_ns()}.{os.getpid()}@client.lab.test>"
        body = "".join(f"{h}\r\n" for h in headers)
        body += (f"From: {sender}\r\nTo: {', '.join(rcpts)}\r\nSubject: {subject}\r\n"
                 f"Message-ID: {mid}\r\n\r\nlab test message\r\n")
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.sendmail(sender, rcpts, body)
        return mid

    def queue_ids(self, mid):
        """Every queue id whose cleanup logged this Message-ID."""
        pat = re.compile(r"\b([0-9A-F]{6,}): message-id=" + re.escape(mid))
        return [m.group(1) for m in pat.finditer(self.log())]

    def fate(self, mid, rcpt, timeout=60):
        """(status, detail) of the delivery attempt to rcpt of the message mid, following
        it through the REQUIRETLS gate (each pass through Postfix has its own queue id; the
        gate's "sent" only hands the message on)."""
        deadline = time.time() + timeout
        line = re.compile(r"postfix/([\w./-]+)\[\d+\]: ([0-9A-F]+): to=<" + re.escape(rcpt) +
                          r">.*?status=(\w+) \((.*)\)$", re.M)
        while time.time() < deadline:
            ids = set(self.queue_ids(mid))
            final = None
            for m in line.finditer(self.log()):
                service, qid, status, detail = m.groups()
                if qid not in ids:
                    continue
                if service.startswith("requiretls-gate") and status == "sent":
                    continue
                final = (status, detail)
            if final:
                return final
            time.sleep(0.2)
        return None, "no delivery status logged for " + rcpt

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
