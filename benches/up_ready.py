#!/usr/bin/env python3
"""Time from start to healthy: `ratchet up -r` against the real `restate-server`.

Each run starts the server in a fresh data directory on loopback with random ports, reads the
admin address it prints on standard output, and polls `GET /health` on it (every 0.5 ms) until
it answers 200; the figure is the time from spawn to that first 200. Both are stopped with
SIGTERM and their directories removed after each run. Runs alternate between the two servers.

usage: up_ready.py RATCHET_BIN [RESTATE_SERVER_BIN] [--runs N]
Prints one JSON line per server with median, p90, min and max in milliseconds.
"""

import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

RUNS_DEFAULT = 20
# A run that is not healthy within this long fails the benchmark.
READY_MAX_S = 30.0


def wait_admin(proc, pattern, deadline):
    """Reads stdout lines until one matches; returns the matched group."""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"exited before printing its address (rc={proc.poll()})")
        m = re.search(pattern, line)
        if m:
            return m.group(1)
    raise RuntimeError("no address printed in time")


def healthy(host, port):
    try:
        c = http.client.HTTPConnection(host, port, timeout=1)
        c.request("GET", "/health")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


def one_run(cmd, env, pattern, drain=False):
    """Spawns `cmd`, reads its admin address from standard output (`pattern`), and polls its
    `/health` until 200; returns the milliseconds from spawn. Ratchet prints its addresses
    first and logs to stderr; restate-server logs everything, the address included, to
    stdout (`drain` keeps reading it so it never blocks on a full pipe)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        deadline = t0 + READY_MAX_S
        url = wait_admin(proc, pattern, deadline)
        m = re.match(r"http://([^:/]+):(\d+)/?", url)
        host, port = m.group(1), int(m.group(2))
        if drain:
            threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
        while not healthy(host, port):
            if time.monotonic() > deadline:
                raise RuntimeError("not healthy in time")
            time.sleep(0.0005)
        return (time.monotonic() - t0) * 1000.0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def summary(name, xs):
    xs = sorted(xs)
    return {
        "server": name,
        "runs": len(xs),
        "median_ms": round(statistics.median(xs), 1),
        "p90_ms": round(xs[int(0.9 * (len(xs) - 1))], 1),
        "min_ms": round(xs[0], 1),
        "max_ms": round(xs[-1], 1),
    }


def main():
    args = sys.argv[1:]
    runs = RUNS_DEFAULT
    if "--runs" in args:
        i = args.index("--runs")
        runs = int(args[i + 1])
        del args[i : i + 2]
    ratchet = args[0]
    restate = args[1] if len(args) > 1 else None
    times = {"ratchet up": [], "restate-server": []}
    for _ in range(runs):
        tmp = tempfile.mkdtemp(prefix="upb-")
        try:
            env = dict(os.environ, TMPDIR=tmp)
            times["ratchet up"].append(
                one_run([ratchet, "up", "-r"], env, r"Admin:\s+(http://\S+)")
            )
            if restate:
                env = dict(os.environ, RESTATE_LOG_DISABLE_ANSI_CODES="true")
                cmd = [
                    restate,
                    "--base-dir",
                    os.path.join(tmp, "restate"),
                    "--bind-ip",
                    "127.0.0.1",
                    "--use-random-ports",
                    "true",
                ]
                times["restate-server"].append(
                    one_run(cmd, env, r"Admin API starting on: (http://\S+)", drain=True)
                )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    for name, xs in times.items():
        if xs:
            print(json.dumps(summary(name, xs)))
    if restate:
        r = statistics.median(times["ratchet up"]) / statistics.median(times["restate-server"])
        print(json.dumps({"ratio_median": round(r, 3)}))


if __name__ == "__main__":
    main()
