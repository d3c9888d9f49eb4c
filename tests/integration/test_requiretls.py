"""REQUIRETLS end to end (draft-ietf-uta-smtp-require-tls-06, RFC 8689) with a real Postfix
3.7 configured from contrib/postfix/ and the lab's SMTP peers (tests/lab/smtplab.py):
ordinary, REQUIRETLS-tagged and "TLS-Required: No" messages to domains with DANE, with
MTA-STS and with neither, and where each one went: delivered to which server, deferred, or
bounced with which status code. Runs inside the lab (tests/lab/dnslab.sh)."""
import grp
import os
import re
import shutil
import stat
import subprocess
import time

from harness import Daemon, check, check_true, finish
from postfix_instance import SETUP, Postfix

if "LAB_SMTP_DIR" not in os.environ:
    raise SystemExit("run me inside the lab: tests/lab/dnslab.sh python3 test_requiretls.py")

CA = os.environ["LAB_CA_FILE"]
# Bounces go back to the sender: a mailbox on the lab's REQUIRETLS server, reached as
# ordinary mail (its MTA-STS policy applies), so the test can read them.
SENDER = "alice@rtls.sts.test"
ORDINARY, REQUIRETLS, OPTIONAL, BOTH = "ordinary", "REQUIRETLS", "TLS-Required: No", "both tags"
OPTIONAL_DRAFT = "RequireTLS: NO"
SUBMIT = {ORDINARY: 10025, REQUIRETLS: 10587, OPTIONAL: 10025, OPTIONAL_DRAFT: 10025, BOTH: 10587}
HEADERS = {ORDINARY: (), REQUIRETLS: (), OPTIONAL: ("TLS-Required: No",),
           OPTIONAL_DRAFT: ("RequireTLS: NO",), BOTH: ("TLS-Required: No",)}

# (tag, recipient domain, expected fate, where, why)
#   fate: "sent" (delivered to the named lab server), "deferred", or a bounce "5.7.NN".
CASES = [
    (ORDINARY, "rtls-dane.test", "sent", "rtls", "RFC 7672: DANE-EE TLSA matches; dane-only"),
    (ORDINARY, "rtls.sts.test", "sent", "rtls", "RFC 8461: enforce, certificate valid"),
    (ORDINARY, "tlsonly.sts.test", "sent", "tlsonly",
     "ordinary mail does not need REQUIRETLS"),
    (ORDINARY, "wrongcert.sts.test", "deferred", None,
     "RFC 8461 5: enforce and a certificate for another name: no delivery"),
    (ORDINARY, "plain.unsigned.test", "sent", "plain", "no policy: opportunistic, in clear"),
    (REQUIRETLS, "rtls-dane.test", "sent", "rtls",
     "draft 4.2.1: DNSSEC-validated MX, DANE-authenticated, REQUIRETLS advertised"),
    (REQUIRETLS, "rtls.sts.test", "sent", "rtls",
     "draft 4.2.1: MTA-STS-validated MX, PKIX-authenticated, REQUIRETLS advertised"),
    (REQUIRETLS, "tlsonly-dane.test", "5.7.30", None,
     "draft 4.2.1 / 5: no MX host advertises REQUIRETLS: 5.7.30"),
    (REQUIRETLS, "tlsonly.sts.test", "5.7.30", None,
     "draft 4.2.1 / 5: no MX host advertises REQUIRETLS: 5.7.30"),
    (REQUIRETLS, "wrongcert.sts.test", "5.7.10", None,
     "draft 4.2.1: the certificate does not authenticate the MX: 5.7.10"),
    (REQUIRETLS, "plain.unsigned.test", "5.7.10", None,
     "draft 4.2.1: no DNSSEC or MTA-STS validation of the MX: 5.7.10"),
    (REQUIRETLS, "mixed-rtls.sts.test", "sent", "rtls",
     "draft 4.2.1: only the MX host that advertises REQUIRETLS is used"),
    (OPTIONAL, "wrongcert.sts.test", "sent", "wrongcert",
     "RFC 8689 5: TLS-Required: No waives the recipient's MTA-STS policy"),
    (OPTIONAL, "rtls.sts.test", "sent", "rtls", "RFC 8689 5: STARTTLS still attempted"),
    (OPTIONAL, "rtls-dane.test", "sent", "rtls", "RFC 8689 5: the DANE domain, waived"),
    (OPTIONAL, "plain.unsigned.test", "sent", "plain", "RFC 8689 5: no policy to waive"),
    (ORDINARY, "tlsonly-dane.test", "sent", "tlsonly", "RFC 7672: DANE, no REQUIRETLS needed"),
    (OPTIONAL_DRAFT, "wrongcert.sts.test", "sent", "wrongcert",
     "draft 3: the draft's header spelling waives the policy too"),
    (REQUIRETLS, "stall.sts.test", "deferred", None,
     "the MX stalls in the TLS handshake: nothing definite learnt, so the message waits "
     "and is retried (a passing outage must not bounce it)"),
    (BOTH, "tlsonly.sts.test", "5.7.30", None,
     "draft 4.1: with REQUIRETLS the TLS-Required header is ignored"),
]


def delivered_to(server, mid):
    """The lab server's stored copy of the message, with its envelope line, or None."""
    d = os.path.join(os.environ["LAB_SMTP_DIR"], server)
    if not os.path.isdir(d):
        return None
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), errors="replace") as f:
            text = f.read()
        if mid in text:
            return text
    return None


def admin_conf(queue_dir):
    """The daemon's configuration as the README installs it (contrib/systemd/tlspolicyd.conf):
    the socket in the queue directory's private/, group postfix, user tlspolicyd. Only the
    queue directory is this instance's; state_dir, dns_servers and metrics_listen are the
    harness's (the lab's resolver, a temporary state directory, no metrics port)."""
    lines = []
    with open(os.path.join(HERE, "..", "..", "contrib", "systemd", "tlspolicyd.conf")) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.split("=")[0].strip() in ("state_dir", "dns_servers", "metrics_listen"):
                continue
            lines.append(line.replace("/var/spool/postfix", queue_dir))
    return lines


HERE = os.path.dirname(os.path.abspath(__file__))
d = pf = None
try:
    pf = Postfix(ca_file=CA, main_extra=[
        "virtual_alias_domains = lists.lab.test",
        "virtual_alias_maps = inline:{ { team@lists.lab.test = bob@rtls.sts.test, carol@tlsonly.sts.test } }",
    ])
    # The README's setup edits Debian's files in place: no "overriding earlier entry".
    check("postfix check after tlspolicyd-postfix-setup: no warnings", pf.check(), "")
    # Running it again, or with --dry-run, changes nothing; --dry-run prints the commands.
    def files():
        return [open(os.path.join(pf.etc, n)).read() for n in ("main.cf", "master.cf")]
    before = files()
    dry = subprocess.run([SETUP, "-c", pf.etc, "--dry-run"], capture_output=True, text=True,
                         timeout=60)
    check("setup --dry-run changes nothing", files(), before)
    check_true("setup --dry-run prints the postconf commands",
               dry.returncode == 0 and "postconf -c " + pf.etc + " -M 'tlsoptional/unix=" in
               dry.stdout and "'smtp_tls_policy_maps = socketmap:unix:private/tlspolicyd:"
               "policy'" in dry.stdout, dry.stdout + dry.stderr)
    again = subprocess.run([SETUP, "-c", pf.etc], capture_output=True, text=True, timeout=60)
    check("setup run twice: exit", again.returncode, 0)
    check("setup run twice: same main.cf and master.cf", files(), before)
    # An administrator's own header_checks stay, after ours.
    other = Postfix(main_extra=["header_checks = regexp:/etc/postfix/local_header_checks"])
    check("setup keeps existing header_checks",
          other.postconf("-h", "header_checks").strip(),
          f"regexp:{other.etc}/tlspolicyd_header_checks, regexp:/etc/postfix/local_header_checks")
    shutil.rmtree(other.dir, ignore_errors=True)
    # The lab's CA where user tlspolicyd can read it after the switch from root.
    ca = os.path.join(pf.dir, "lab-ca.pem")
    shutil.copy(CA, ca)
    os.chmod(ca, 0o644)
    d = Daemon(user="tlspolicyd", conf_lines=admin_conf(pf.queue) + [
        f"sts_ca_file = {ca}", "sts_allow_private = yes", f"probe_ca_file = {ca}",
        "probe_timeout = 5s", "lookup_timeout = 8s"])
    d.start()
    sock = os.path.join(pf.queue, "private", "tlspolicyd")
    st = os.stat(sock)
    check("socket in the queue directory's private/: group postfix, mode 0660",
          (grp.getgrgid(st.st_gid).gr_name, stat.S_IMODE(st.st_mode)), ("postfix", 0o660))
    check_true("daemon runs as tlspolicyd", "running as user tlspolicyd" in d.log(), d.log())
    # The README's check with postmap, by the socket's absolute path.
    rc, out, err = d.postmap("rtls-dane.test", "policy", endpoint=f"unix:{sock}")
    check("postmap -q through private/tlspolicyd", (rc, out.strip()), (0, "dane-only"))
    pf.start()
    master = pf.postconf("-Mf")
    check_true("smtp runs chrooted as shipped",
               re.search(r"^smtp\s+unix\s+-\s+-\s+y\s", master, re.M), master)
    check_true("tlsoptional has a syslog_name",
               "-o syslog_name=postfix/tlsoptional" in master, master)
    sent = []
    # RFC 7960 / draft 4.1 and 6: a mediator inside this Postfix (a virtual alias) expands
    # a REQUIRETLS message; every expanded recipient keeps the tag.
    alias_mid = pf.send(SUBMIT[REQUIRETLS], SENDER, ["team@lists.lab.test"],
                        subject="REQUIRETLS to an alias")
    for tag, domain, fate, where, why in CASES:
        rcpt = f"bob@{domain}"
        mid = pf.send(SUBMIT[tag], SENDER, [rcpt], headers=HEADERS[tag], subject=f"{tag} {domain}")
        sent.append((tag, domain, fate, where, why, rcpt, mid))
    for tag, domain, fate, where, why, rcpt, mid in sent:
        status, detail = pf.fate(mid, rcpt, timeout=60)
        label = f"{tag} to {domain} ({why})"
        if fate == "sent":
            check(label, status, "sent")
            copy = delivered_to(where, mid)
            check_true(f"{label}: stored by the {where} server", copy is not None, detail)
        elif fate == "deferred":
            check(label, status, "deferred")
        else:
            check(label, status, "bounced")
            m = re.search(r"\b(5\.\d+\.\d+)\b", detail or "")
            check(f"{label}: status code", m.group(1) if m else detail, fate)
            # draft 5: the bounce returns the headers only (RET=HDRS), never the body.
            deadline, bounce = time.time() + 30, None
            while bounce is None and time.time() < deadline:
                bounce = delivered_to("rtls", mid)
                time.sleep(0.2)
            check_true(f"{label}: bounce delivered to the sender", bounce is not None)
            if bounce:
                check_true(f"{label}: bounce has the code", fate in bounce, bounce[:400])
                check_true(f"{label}: bounce returns headers only",
                           "text/rfc822-headers" in bounce and "lab test message" not in bounce,
                           bounce[-600:])
        print(f"# {tag:18} {domain:22} -> {status} ({(detail or '')[:110]})")
    for rcpt, fate in (("bob@rtls.sts.test", "sent"), ("carol@tlsonly.sts.test", "bounced")):
        status, detail = pf.fate(alias_mid, rcpt, timeout=60)
        check(f"alias expansion keeps REQUIRETLS: {rcpt}", status, fate)
        print(f"# alias team@lists.lab.test -> {rcpt}: {status} ({(detail or '')[:100]})")

    # Postfix's connection cache never carries a message over a connection opened for a
    # weaker requirement (README, "Connection reuse"): the cache keys start with the
    # master.cf service name, so a tlsoptional connection is not found by smtp. Caching on
    # for wrongcert.sts.test (MTA-STS enforce, certificate for another name), TLS
    # connections cached too (tlsproxy), one delivery at a time, cached for 60 s.
    pf.postconf("-e", "smtp_tls_connection_reuse = yes",
                "smtp_connection_cache_destinations = wrongcert.sts.test",
                "smtp_connection_cache_time_limit = 60s", "connection_cache_ttl_limit = 60s",
                "tlsoptional_destination_concurrency_limit = 1",
                "smtpd_sender_restrictions = check_sender_access "
                "inline:{{reuse@rtls.sts.test = HOLD}}")
    pf.postconf("-M", "tlsproxy/unix=tlsproxy unix - - y - 0 tlsproxy")
    check("postfix reload with connection caching", pf.postfix("reload").returncode, 0)
    time.sleep(1)
    rcpt = "bob@wrongcert.sts.test"
    # Two waived messages in one queue run: the second rides the first one's connection.
    waived = [pf.send(10025, "reuse@rtls.sts.test", [rcpt], headers=("TLS-Required: No",),
                      subject=f"reuse waived {i}") for i in (1, 2)]
    time.sleep(0.5)
    pf.release_held()
    uses = []
    for i, mid in enumerate(waived, 1):
        status, detail = pf.fate(mid, rcpt, timeout=60)
        check(f"reuse: waived message {i} to wrongcert.sts.test sent", status, "sent")
        m = re.search(r"conn_use=(\d+)", pf.last_line if status else "")
        uses.append(int(m.group(1)) if m else 1)
    # The queue manager picks the order; whichever went second rode the first's connection.
    check("reuse: the second waived message reused the first one's connection",
          sorted(uses), [1, 2])
    # While that connection waits in the cache, an ordinary message to the same MX: the
    # smtp service must open its own and refuse the certificate (MTA-STS enforce).
    ordinary = pf.send(10025, SENDER, [rcpt], subject="reuse ordinary")
    status, detail = pf.fate(ordinary, rcpt, timeout=60)
    ordinary_line = pf.last_line if status else detail
    check("reuse: ordinary message not carried by the waived connection", status, "deferred")
    check_true("reuse: ordinary message used no cached connection",
               "conn_use=" not in (pf.last_line if status else ""), pf.last_line)
    check_true("reuse: ordinary message never reached the server",
               delivered_to("wrongcert", ordinary) is None)
    # The waived connection was in the cache all along: a third waived message finds it.
    third = pf.send(10025, "reuse@rtls.sts.test", [rcpt], headers=("TLS-Required: No",),
                    subject="reuse waived 3")
    pf.release_held()
    status, detail = pf.fate(third, rcpt, timeout=60)
    m = re.search(r"conn_use=(\d+)", pf.last_line if status else "")
    check("reuse: the waived connection stayed cached meanwhile (third use)",
          (status, m.group(1) if m else None), ("sent", "3"))
    print(f"# reuse: waived conn_use {uses} then 3; ordinary: {ordinary_line[-140:]}")
finally:
    if pf is not None:
        if os.environ.get("KEEP_POSTFIX_LOG"):
            print(pf.log())
        pf.cleanup()
    if d is not None:
        check("daemon exits cleanly", d.stop(), 0)
        d.cleanup()
finish()
