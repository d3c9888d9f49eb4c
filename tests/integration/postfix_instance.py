"""A throwaway Postfix instance for end-to-end tests, set up the way an administrator's
Debian 12 Postfix is: Debian's stock main.cf and master.cf as its postinst installs them
(main.cf.debian plus main.cf.tls, then the "Internet Site" postconf edits), smtp and smtpd
chrooted as shipped, the chroot filled by Debian's own configure-instance.sh, and then
exactly what the README tells the administrator: contrib/postfix/tlspolicyd-postfix-setup.

Only what makes it a private instance differs from a real one, each step named below: its
own configuration, queue, data and log directories under a temporary directory, the SMTP
server on 127.0.0.1:10025, the lab's CA, and the lab's short timers. Started and stopped by
the test; the mail log is a file (maillog_file), read to see what happened to each
message. Nothing touches the machine's own Postfix (/etc/postfix, /var/spool/postfix)."""
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CONTRIB = os.path.join(HERE, "..", "..", "contrib", "postfix")
SETUP = os.path.join(CONTRIB, "tlspolicyd-postfix-setup")
STOCK = "/usr/share/postfix"
CONFIGURE_INSTANCE = "/usr/lib/postfix/configure-instance.sh"

# What Debian's postinst sets with postconf -e on a fresh "Internet Site" install.
POSTINST_INTERNET_SITE = [
    "smtpd_relay_restrictions=permit_mynetworks permit_sasl_authenticated "
    "defer_unauth_destination",
    "myhostname=client.lab.test",
    "alias_maps=hash:/etc/aliases",
    "alias_database=hash:/etc/aliases",
    "myorigin=/etc/mailname",
    "mydestination=$myhostname, client.lab.test, localhost.lab.test, localhost",
    "relayhost=",
    "mynetworks=127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128",
    "mailbox_size_limit=0",
    "recipient_delimiter=+",
    "inet_interfaces=all",
    "inet_protocols=all",
]


class Postfix:
    def __init__(self, main_extra=(), ca_file=None, setup_args=()):
        """main_extra: further main.cf settings (postconf -e); ca_file: the lab's CA, added
        as smtp_tls_CAfile; setup_args: extra arguments for tlspolicyd-postfix-setup."""
        self.dir = tempfile.mkdtemp(prefix="tlspolicyd-postfix-")
        os.chmod(self.dir, 0o755)
        self.etc = os.path.join(self.dir, "etc")
        self.queue = os.path.join(self.dir, "queue")
        self.data = os.path.join(self.dir, "data")
        self.maillog = os.path.join(self.dir, "maillog")
        for d in (self.etc, self.queue, self.data):
            os.mkdir(d)
        shutil.chown(self.data, "postfix", "postfix")
        # The stock files, as Debian's postinst installs them.
        shutil.copy(os.path.join(STOCK, "master.cf.dist"), os.path.join(self.etc, "master.cf"))
        with open(os.path.join(self.etc, "main.cf"), "w") as out:
            for name in ("main.cf.debian", "main.cf.tls"):
                with open(os.path.join(STOCK, name)) as f:
                    out.write(f.read())
        self.postconf("-e", *POSTINST_INTERNET_SITE)
        # A private instance: its own directories, loopback only, no local delivery, and
        # the SMTP server on 127.0.0.1:10025 (chroot column as shipped).
        self.postconf(
            "-e", f"queue_directory={self.queue}", f"data_directory={self.data}",
            f"maillog_file={self.maillog}", f"maillog_file_prefixes={self.dir}",
            "inet_interfaces=127.0.0.1", "inet_protocols=ipv4", "mynetworks=127.0.0.0/8",
            "mydestination=", "myorigin=$myhostname", "alias_maps=", "alias_database=",
            "local_recipient_maps=", "smtputf8_enable=no",
            # The lab's timers: one delivery attempt is what the tests look at.
            "smtp_connect_timeout=5s", "smtp_helo_timeout=10s", "queue_run_delay=300s",
            "bounce_queue_lifetime=0", "smtp_tls_loglevel=1",
            # The lab resolver refuses the root zone, where Postfix's DNSSEC self-test looks.
            "dnssec_probe=ns:test.",
            *([f"smtp_tls_CAfile={ca_file}"] if ca_file else []),
            *main_extra)
        smtpd = " ".join(self.postconf("-Mf", "smtp/inet").split()[1:])
        self.postconf("-MX", "smtp/inet")
        self.postconf("-M", f"127.0.0.1:10025/inet=127.0.0.1:10025 {smtpd}")
        # What the README tells the administrator to run.
        p = subprocess.run([SETUP, "-c", self.etc, *setup_args], capture_output=True,
                           text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("tlspolicyd-postfix-setup: " + p.stdout + p.stderr)
        self.setup_output = p.stdout + p.stderr

    def postconf(self, *args):
        p = subprocess.run(["postconf", "-c", self.etc, *args], capture_output=True, text=True,
                           timeout=30)
        if p.returncode != 0:
            raise RuntimeError(f"postconf {' '.join(args)}: {p.stdout}{p.stderr}")
        return p.stdout

    def check(self):
        """postfix check: creates the queue directories; returns what it printed."""
        p = self.postfix("check")
        if p.returncode != 0:
            raise RuntimeError("postfix check: " + p.stdout + p.stderr)
        return p.stdout + p.stderr

    def chroot_setup(self):
        """What Debian does before every start (postfix@.service, init script): copy
        resolv.conf, hosts, services, the CA directory and a few libraries into the queue
        directory, for the chrooted services."""
        env = dict(os.environ, MAIL_CONFIG=self.etc)
        p = subprocess.run([CONFIGURE_INSTANCE, "-"], capture_output=True, text=True,
                           timeout=120, env=env)
        if p.returncode != 0:
            raise RuntimeError("configure-instance.sh: " + p.stdout + p.stderr)

    def postfix(self, *args):
        return subprocess.run(["postfix", "-c", self.etc] + list(args), capture_output=True,
                              text=True, timeout=60)

    def start(self):
        self.check()
        self.chroot_setup()
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
                self.last_line = m.group(0)
            if final:
                return final
            time.sleep(0.2)
        return None, "no delivery status logged for " + rcpt

    def release_held(self):
        """Release every held message and run the queue once (postsuper -H, postqueue -f)."""
        for args in (["postsuper", "-c", self.etc, "-H", "ALL"],
                     ["postqueue", "-c", self.etc, "-f"]):
            p = subprocess.run(args, capture_output=True, text=True, timeout=30)
            if p.returncode != 0:
                raise RuntimeError(" ".join(args) + ": " + p.stdout + p.stderr)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
