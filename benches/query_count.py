#!/usr/bin/env python3
"""SQL introspection under retention: `restate sql "select count(*) from sys_invocation"`
latency and the server's peak RSS during that query, with N completed invocations retained,
for Ratchet and the real Restate server in the same run.

Usage (from the project root; the shared harness's service and the real server are needed):

    RESTATE_BIN=.../restate-server BENCH_SERVICE_BIN=.../restate-bench-service \\
      benches/query_count.py --ratchet target/release/ratchet --invocations 100000

Each server starts in a fresh temporary directory on 127.0.0.1 with the benchmark service
registered; `oha` sends N `Bench/noop` sends (64 at a time); once every invocation completed
(polled through /query), the CLI runs the count `--runs` times while the server's RSS is
sampled every 5 ms. Prints one markdown table; everything is bounded in count and time.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HOST = "127.0.0.1"
ADMIN = f"http://{HOST}:9070"
INGRESS = f"http://{HOST}:8080"


def http(method, url, body=None, headers=None, timeout=30):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def wait_healthy(timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if http("GET", f"{ADMIN}/health", timeout=1)[0] == 200:
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise SystemExit("server did not become healthy")


def tree_rss_kib(pid):
    pids, out = [pid], 0
    try:
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        pids += [int(p) for p in kids.split()]
    except Exception:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        out += int(line.split()[1])
        except OSError:
            pass
    return out


def pending():
    body = json.dumps(
        {"query": "SELECT count(*) AS n FROM sys_invocation WHERE status != 'completed'"}
    ).encode()
    _, raw = http(
        "POST",
        f"{ADMIN}/query",
        body,
        {"content-type": "application/json", "accept": "application/json"},
        timeout=120,
    )
    return json.loads(raw)["rows"][0]["n"]


def measure(name, cmd, env, args):
    data = tempfile.mkdtemp(prefix=f"query-count-{name}-")
    cmd = [c.replace("{datadir}", data) for c in cmd]
    srv = subprocess.Popen(cmd, env=env, cwd=data, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    svc = subprocess.Popen([args.service], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy()
        http(
            "POST",
            f"{ADMIN}/deployments",
            json.dumps({"uri": "http://127.0.0.1:9080"}).encode(),
            {"content-type": "application/json"},
        )
        subprocess.run(
            [args.oha, "--no-tui", "-n", str(args.invocations), "-c", "64", "-m", "POST",
             "-H", "content-type: application/json", "-d", '{"hello":"world"}',
             f"{INGRESS}/Bench/noop/send"],
            check=True, stdout=subprocess.DEVNULL,
        )
        deadline = time.time() + 600
        while pending() > 0:
            if time.time() > deadline:
                raise SystemExit(f"{name}: invocations still pending after 600 s")
            time.sleep(1)
        cli_env = dict(os.environ, RESTATE_ADMIN_URL=ADMIN + "/", NO_COLOR="1")
        cli_env["RESTATE_CLI_CONFIG_HOME"] = tempfile.mkdtemp(prefix="query-count-cli-")
        idle_kib = tree_rss_kib(srv.pid)
        times, peaks, counts = [], [], []
        for _ in range(args.runs):
            peak = [0]
            stop = threading.Event()

            def sample():
                while not stop.is_set():
                    peak[0] = max(peak[0], tree_rss_kib(srv.pid))
                    time.sleep(0.005)

            t = threading.Thread(target=sample)
            t.start()
            t0 = time.perf_counter()
            out = subprocess.run(
                [args.cli, "--yes", "sql", "select count(*) from sys_invocation"],
                env=cli_env, capture_output=True, text=True, timeout=300,
            )
            times.append(time.perf_counter() - t0)
            stop.set()
            t.join()
            peaks.append(peak[0])
            if out.returncode != 0:
                raise SystemExit(f"{name}: restate sql failed: {out.stdout}{out.stderr}")
            counts.append(out.stdout)
        return {
            "latency_s": statistics.median(times),
            "latency_min_s": min(times),
            "latency_max_s": max(times),
            "peak_rss_mib": max(peaks) / 1024,
            "idle_rss_mib": idle_kib / 1024,
            "counted": str(args.invocations) in counts[-1],
        }
    finally:
        for p in (svc, srv):
            p.terminate()
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ratchet", default="target/release/ratchet")
    ap.add_argument("--restate", default=os.environ.get("RESTATE_BIN"))
    ap.add_argument("--service", default=os.environ.get("BENCH_SERVICE_BIN"))
    ap.add_argument("--cli", default="tests/services/ts/node_modules/.bin/restate")
    ap.add_argument("--oha", default=shutil.which("oha") or "oha")
    ap.add_argument("--invocations", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if not args.restate or not args.service:
        sys.exit("set RESTATE_BIN and BENCH_SERVICE_BIN (or --restate / --service)")
    base_env = dict(os.environ, RESTATE_DISABLE_TELEMETRY="true")
    results = {
        "restate": measure(
            "restate",
            [args.restate, "--base-dir", "{datadir}", "--bind-ip", HOST, "--no-logo"],
            base_env, args,
        ),
        "ratchet": measure(
            "ratchet",
            [args.ratchet, "server", "--base-dir", "{datadir}", "--bind-ip", HOST],
            base_env, args,
        ),
    }
    a, b = results["restate"], results["ratchet"]
    print(f"`restate sql \"select count(*) from sys_invocation\"`, {args.invocations} completed "
          f"invocations retained, median of {args.runs}:\n")
    print("| metric | Restate 1.7.12 | Ratchet | Ratchet/Restate |")
    print("|---|---:|---:|---:|")
    for key, label in [("latency_s", "latency s (median)"), ("peak_rss_mib", "peak RSS during the query MiB"),
                       ("idle_rss_mib", "RSS before the query MiB")]:
        print(f"| {label} | {a[key]:.3f} | {b[key]:.3f} | {b[key] / a[key]:.2f}x |")
    print(f"\nlatency range: Restate {a['latency_min_s']:.3f}–{a['latency_max_s']:.3f} s, "
          f"Ratchet {b['latency_min_s']:.3f}–{b['latency_max_s']:.3f} s; "
          f"count printed: Restate {a['counted']}, Ratchet {b['counted']}")


if __name__ == "__main__":
    main()
