#!/usr/bin/python3
"""Where the time of a cold MTA-STS lookup goes, from tlspolicyd's debug log.

    tlspolicyd ... 2>&1 | cold_stages.py stamp > LOG     stamp each line with the time
    cold_stages.py report LOG                             the stages of each cold.test domain

"stamp" prefixes each line with the wall clock (seconds, microseconds), as it arrives.
"report" follows each domain dNNNNNN.cold.test through the daemon's debug lines (tests/bench/
cold.sh's records): MX query to its answer, the MX host's A/AAAA, its TLSA, the _mta-sts
TXT, the policy host's A/AAAA, the fetch (from the last address answer to the policy line)
and the answer, and prints p50, p90, p99 and max of each stage in milliseconds, so a long
tail can be put where it belongs: the resolver (the DNS stages), the policy server and TLS
(the fetch), or the daemon (gaps between one stage's answer and the next stage's query).
"""
import re
import sys


def stamp():
    import time
    out = sys.stdout
    for line in sys.stdin:
        out.write("%.6f %s" % (time.time(), line))
        out.flush()


QUERY = re.compile(r"dns query (\S+) type (\d+)$")
ANSWER = re.compile(r"dns (\S+) type (\d+): ")
POLICY = re.compile(r"mta-sts: (\S+): policy id")
LOOKUP = re.compile(r"lookup map=\S+ key=(\S+) ")
DOM = re.compile(r"(d\d{6}\.cold\.test)$")


def domain_of(name):
    m = DOM.search(name)
    return m.group(1) if m else None


def report(path):
    ev = {}
    for line in open(path, errors="replace"):
        t, _, rest = line.partition(" ")
        try:
            t = float(t)
        except ValueError:
            continue
        rest = rest.rstrip("\n")
        for rx, kind in ((QUERY, "q"), (ANSWER, "a")):
            m = rx.search(rest)
            if m:
                name, typ = m.group(1), m.group(2)
                d = domain_of(name)
                if d:
                    host = "mx" if name.startswith("mx.") else "sts" if name.startswith(
                        "mta-sts.") else "txt" if name.startswith("_mta-sts.") else (
                            "tlsa" if name.startswith("_25.") else "dom")
                    ev.setdefault(d, {}).setdefault("%s%s%s" % (kind, host, typ), t)
                break
        else:
            m = POLICY.search(rest)
            if m and domain_of(m.group(1)):
                ev.setdefault(m.group(1), {}).setdefault("policy", t)
            m = LOOKUP.search(rest)
            if m and domain_of(m.group(1)):
                ev.setdefault(m.group(1), {}).setdefault("answer", t)
    stages = [
        ("MX query to answer", "qdom15", "adom15"),
        ("MX answer to A/AAAA query (daemon)", "adom15", "qmx1"),
        ("MX host A/AAAA (both answered)", "qmx1", "amx"),
        ("to TLSA query (daemon)", "amx", "qtlsa52"),
        ("TLSA query to answer", "qtlsa52", "atlsa52"),
        ("to TXT query (daemon)", "atlsa52", "qtxt16"),
        ("TXT query to answer", "qtxt16", "atxt16"),
        ("to policy host A/AAAA query (daemon)", "atxt16", "qsts1"),
        ("policy host A/AAAA (both answered)", "qsts1", "asts"),
        ("fetch: connect, TLS, HTTP (to the policy line)", "asts", "policy"),
        ("policy line to answer (daemon)", "policy", "answer"),
        ("whole: MX query to answer", "qdom15", "answer"),
    ]
    rows = []
    for name, a, b in stages:
        xs = []
        for d, e in ev.items():
            e = dict(e)
            for h in ("mx", "sts"):
                both = [e.get("a%s1" % h), e.get("a%s28" % h)]
                if all(both):
                    e["a%s" % h] = max(both)
            if a in e and b in e:
                xs.append((e[b] - e[a]) * 1000)
        xs.sort()
        if not xs:
            rows.append((name, 0, "-", "-", "-", "-"))
            continue
        p = lambda q: "%.1f" % xs[min(len(xs) - 1, int(q * len(xs)))]
        rows.append((name, len(xs), p(0.5), p(0.9), p(0.99), "%.1f" % xs[-1]))
    print("| stage | domains | p50 ms | p90 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print("| %s | %s | %s | %s | %s | %s |" % r)


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] == "stamp":
        stamp()
    elif len(sys.argv) == 3 and sys.argv[1] == "report":
        report(sys.argv[2])
    else:
        sys.exit(__doc__)
