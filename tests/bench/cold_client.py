#!/usr/bin/python3
"""Ask a socketmap server every key of a file exactly once, through C connections.

    cold_client.py SOCKET MAP KEYS_FILE CONNECTIONS TIMEOUT_S [LATENCIES_FILE]

Each connection is lockstep (one request outstanding, as Postfix's smtp processes ask) and
takes the next key nobody has asked yet, so no key is asked twice and no connection waits
for another's key. Prints one JSON line: wall time (first write to last reply), the number
of answers of each kind, and the latency percentiles (write to reply, milliseconds). A key
without an answer within TIMEOUT_S counts as "timeout"; the whole run is bounded by the
number of keys times TIMEOUT_S over CONNECTIONS plus TIMEOUT_S. With LATENCIES_FILE, each
key's latency and answer go there, one "KEY<TAB>MS<TAB>START_MS<TAB>ANSWER" line each.
"""
import asyncio
import json
import resource
import sys
import time


async def ask(reader, writer, mapname, key, timeout):
    q = ("%s %s" % (mapname, key)).encode()
    writer.write(b"%d:%s," % (len(q), q))
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b":"), timeout)
    n = int(head[:-1])
    body = await asyncio.wait_for(reader.readexactly(n + 1), timeout)
    return body[:-1].decode("utf-8", "replace")


async def worker(path, mapname, keys, state, timeout, out):
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        while state["next"] < len(keys):
            key = keys[state["next"]]
            state["next"] += 1
            t0 = time.monotonic()
            try:
                reply = await ask(reader, writer, mapname, key, timeout)
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, OSError):
                reply = "(timeout)"
                writer.close()
                reader, writer = await asyncio.open_unix_connection(path)
            out.append((key, (time.monotonic() - t0) * 1000, (t0 - state["t0"]) * 1000, reply))
    finally:
        writer.close()


def cpu_s():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def pct(sorted_ms, p):
    if not sorted_ms:
        return 0.0
    i = min(len(sorted_ms) - 1, max(0, int(round(p / 100.0 * len(sorted_ms) + 0.5)) - 1))
    return sorted_ms[i]


async def main():
    path, mapname, keys_file, conns, timeout = sys.argv[1:6]
    conns, timeout = int(conns), float(timeout)
    with open(keys_file) as f:
        keys = [k.strip() for k in f if k.strip()]
    state = {"next": 0, "t0": time.monotonic()}
    out = []
    bound = timeout * (len(keys) / max(1, conns) + 1) + 10
    await asyncio.wait_for(
        asyncio.gather(*(worker(path, mapname, keys, state, timeout, out)
                         for _ in range(min(conns, len(keys))))), bound)
    wall = time.monotonic() - state["t0"]
    ms = sorted(o[1] for o in out)
    kinds = {}
    for o in out:
        k = o[3].split(" ", 1)[0] if not o[3].startswith("(") else "timeout"
        kinds[k] = kinds.get(k, 0) + 1
    print(json.dumps({"keys": len(keys), "answers": len(out), "wall_s": round(wall, 3),
                      "kinds": kinds, "p50_ms": round(pct(ms, 50), 1),
                      "p90_ms": round(pct(ms, 90), 1), "p99_ms": round(pct(ms, 99), 1),
                      "max_ms": round(ms[-1] if ms else 0, 1),
                      "client_cpu_pct": round(100 * cpu_s() / wall) if wall > 0 else 0}))
    if len(sys.argv) > 6:
        with open(sys.argv[6], "w") as f:
            for o in out:
                f.write("%s\t%.1f\t%.1f\t%s\n" % o)


asyncio.run(main())
