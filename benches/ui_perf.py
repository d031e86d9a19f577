#!/usr/bin/env python3
"""Web UI performance under retention: the `/internal/ui/` routes the UI reads (keyset list
pages, exact counts, one invocation's detail) and first paint of `/ui/` and `/ui/invocations`
in a real browser, with N completed invocations retained.

Usage (from the project root):

    benches/ui_perf.py --ratchet target/release/ratchet --invocations 100000 \\
      [--restate .../restate-server]

Needs the shared harness's benchmark service (BENCH_SERVICE_BIN or --service; default
/tmp/bench/service/target/release/restate-bench-service), `oha`, node, Debian's
/usr/bin/chromium and playwright-core from admin-ui/node_modules (the browser part is
benches/ui_paint.mjs).

The server starts in a fresh temporary directory on 127.0.0.1 with random ports; the benchmark
service is registered; seeded, oldest first: 50 completed `Counter/c<i>/add` calls, 100
`Bench/noop` and 100 `Counter/s<i>/add` sends delayed by 1 h (status scheduled), then N
`Bench/noop` sends through `oha` (64 at a time). So the selective filters (status=scheduled,
service=Counter) must walk past all N newer rows. Once `/internal/ui/counts` reports every
invocation, each route is asked `--runs` times on one kept-alive connection (median and p90
of the `server-timing: read;dur=` value and of the client's wall time), then the browser
loads each page `--paint-runs` times, cold (a new context each time). With `--restate`, the
real Restate server is then seeded the same way and asked the list and count questions
through SQL (`POST /query`), next to the same SQL asked of Ratchet. Everything is bounded in
count and time; prints a markdown table (and a second one for the SQL comparison).
"""

import argparse
import http.client
import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

HOST = "127.0.0.1"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

COUNTER_DONE = 50  # completed Counter/c<i>/add calls
SCHEDULED_BENCH = 100  # Bench/noop sends delayed by 1 h
SCHEDULED_COUNTER = 100  # Counter/s<i>/add sends delayed by 1 h
SCHEDULED = SCHEDULED_BENCH + SCHEDULED_COUNTER
SERVER_TARGET_MS = 100
PAINT_TARGET_MS = 500
TIMING = re.compile(r"read;dur=([0-9.]+)")


def log(msg):
    print(f"[ui_perf] {msg}", file=sys.stderr, flush=True)


def call(method, url, body=None, headers=None, timeout=30):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def pct(xs, p):
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


class Server:
    """A server process whose admin and ingress URLs are read from its stdout by `parse`
    (a function of one line returning {"admin": url} / {"ingress": url} / {})."""

    def __init__(self, name, cmd, parse, env):
        self.name = name
        self.data = tempfile.mkdtemp(prefix=f"ui-perf-{name}-")
        self.log_path = os.path.join(self.data, "server.log")
        self.urls = {}
        found = threading.Event()
        cmd = [c.replace("{datadir}", self.data) for c in cmd]
        logf = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, env=env, cwd=self.data, stdout=subprocess.PIPE,
                                     stderr=logf, text=True)

        def read():
            for line in self.proc.stdout:  # keeps draining after the URLs are known
                logf.write(line)
                if not found.is_set():
                    self.urls.update(parse(line))
                    if "admin" in self.urls and "ingress" in self.urls:
                        found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(60):
            self.stop()
            raise SystemExit(f"{name}: no admin/ingress address on stdout within 60 s")
        self.admin = self.urls["admin"].rstrip("/")
        self.ingress = self.urls["ingress"].rstrip("/")
        deadline = time.time() + 60
        while True:
            try:
                if call("GET", f"{self.admin}/health", timeout=1)[0] == 200:
                    break
            except Exception:
                pass
            if time.time() > deadline:
                self.stop()
                raise SystemExit(f"{name}: not healthy within 60 s")
            time.sleep(0.05)

    def tail(self, n=20):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.data, ignore_errors=True)


def parse_ratchet(line):
    for prefix, key in (("Admin: ", "admin"), ("HTTP Ingress: ", "ingress")):
        if line.startswith(prefix):
            return {key: line[len(prefix):].strip()}
    return {}


def parse_restate(line):
    # RESTATE_LOG_FORMAT=json: {"span": {"server_name": "admin-api-server", "server.port": …}}
    try:
        span = json.loads(line).get("span") or {}
    except ValueError:
        return {}
    key = {"admin-api-server": "admin", "http-ingress-server": "ingress"}.get(span.get("server_name"))
    return {key: f"http://{span['server.address']}:{span['server.port']}"} if key else {}


def start_service(path):
    port = free_port()
    env = dict(os.environ, BENCH_SERVICE_ADDR=f"{HOST}:{port}", BENCH_STATS_ADDR="off")
    proc = subprocess.Popen([path], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return proc, port
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise SystemExit(f"benchmark service {path} not listening on {port} within 30 s")
            time.sleep(0.05)


def seed(srv, svc_port, args):
    """Registers the service and sends the seed load (see the module doc); returns at once."""
    call("POST", f"{srv.admin}/deployments", json.dumps({"uri": f"http://{HOST}:{svc_port}"}).encode(),
         {"content-type": "application/json"})
    js = {"content-type": "application/json"}
    for i in range(COUNTER_DONE):
        call("POST", f"{srv.ingress}/Counter/c{i}/add", b"1", js)
    for i in range(SCHEDULED_BENCH):
        call("POST", f"{srv.ingress}/Bench/noop/send?delay=1h", b'{"hello":"world"}', js)
    for i in range(SCHEDULED_COUNTER):
        call("POST", f"{srv.ingress}/Counter/s{i}/add/send?delay=1h", b"1", js)
    t0 = time.time()
    out = subprocess.run(
        [args.oha, "--no-tui", "--output-format", "json", "-n", str(args.invocations), "-c", "64",
         "-m", "POST", "-H", "content-type: application/json", "-d", '{"hello":"world"}',
         f"{srv.ingress}/Bench/noop/send"],
        check=True, capture_output=True, text=True, timeout=1800,
    )
    report = json.loads(out.stdout[out.stdout.index("{"):])  # oha may print warnings first
    codes = report.get("statusCodeDistribution") or {}
    bad = {k: v for k, v in codes.items() if not str(k).startswith("2")}
    if bad or report.get("errorDistribution") or sum(codes.values()) != args.invocations:
        raise SystemExit(f"{srv.name}: seeding sends failed: status codes {codes}, "
                         f"errors {report.get('errorDistribution')}")
    log(f"{srv.name}: {args.invocations} sends accepted in {time.time() - t0:.1f} s")


def wait_done(srv, args, counts):
    """Polls `counts()` -> (completed, scheduled, total) until every seeded invocation is there."""
    want = (args.invocations + COUNTER_DONE, SCHEDULED, args.invocations + COUNTER_DONE + SCHEDULED)
    t0 = time.time()
    deadline = t0 + args.settle_timeout
    while True:
        got = counts()
        if got == want:
            log(f"{srv.name}: all {want[2]} invocations counted ({time.time() - t0:.1f} s after the sends)")
            return
        if time.time() > deadline:
            raise SystemExit(f"{srv.name}: after {args.settle_timeout} s the counts are "
                             f"(completed, scheduled, total) = {got}, want {want}")
        time.sleep(1)


class Client:
    """One kept-alive HTTP/1.1 connection to the admin port (as the browser keeps one)."""

    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.conn = None

    def request(self, method, path, body=None, headers=None, timeout=120):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
            try:
                t0 = time.perf_counter()
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                raw = r.read()
                wall = (time.perf_counter() - t0) * 1000
                return r.status, r.headers, raw, wall
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise

    def ui(self, path):
        """GET of a UI route -> (json, server ms, wall ms); fails loudly on an error or a
        missing server-timing header."""
        status, headers, raw, wall = self.request("GET", path)
        if status != 200:
            raise SystemExit(f"GET {path} answered {status}: {raw[:300]!r}")
        m = TIMING.search(headers.get("server-timing") or "")
        if not m:
            raise SystemExit(f"GET {path}: no `server-timing: read;dur=` header in the answer")
        return json.loads(raw), float(m.group(1)), wall

    def sql(self, query):
        body = json.dumps({"query": query}).encode()
        status, _, raw, wall = self.request(
            "POST", "/query", body, {"content-type": "application/json", "accept": "application/json"})
        if status != 200:
            raise SystemExit(f"POST /query {query!r} answered {status}: {raw[:300]!r}")
        return json.loads(raw)["rows"], wall


def fill_page(client, query, limit=50, max_calls=25):
    """What the list page does for one page: follow next_cursor until `limit` items or the end
    (at most 25 calls, as admin-ui/www/pages/invocations.js). -> (server ms, wall ms, calls, items)"""
    items, cursor, server, wall, calls = 0, None, 0.0, 0.0, 0
    while True:
        q = dict(query, limit=limit - items)
        if cursor:
            q["cursor"] = cursor
        body, s, w = client.ui("/internal/ui/invocations?" + urllib.parse.urlencode(q))
        server, wall, calls = server + s, wall + w, calls + 1
        items += len(body["items"])
        cursor = body.get("next_cursor")
        if not cursor or items >= limit or calls >= max_calls:
            return server, wall, calls, items


def measure_routes(client, args):
    """-> list of rows {name, server: [ms], wall: [ms], note}"""
    rows = []
    runs = args.runs

    def repeat(name, path, note=""):
        body, _, _ = client.ui(path)  # warm-up, not counted
        server, wall = [], []
        for _ in range(runs):
            _, s, w = client.ui(path)
            server.append(s)
            wall.append(w)
        if callable(note):
            note = note(body)
        rows.append({"name": name, "server": server, "wall": wall, "note": note})

    def scanned(body):
        return f"{len(body['items'])} items, {body['scanned']:,} rows scanned"

    first, _, _ = client.ui("/internal/ui/invocations?limit=50")
    if len(first["items"]) != 50:
        raise SystemExit(f"first page has {len(first['items'])} items, want 50")
    repeat("list, first page (`limit=50`)", "/internal/ui/invocations?limit=50", scanned)

    # 20 pages deep: page 1, then 19 pages following next_cursor; each of those counted.
    per_page_s, per_page_w, walk_s, walk_w, detail_id = [], [], [], [], None
    for run in range(runs):
        body, s0, w0 = client.ui("/internal/ui/invocations?limit=50")
        ts, tw = s0, w0
        for page in range(2, 21):
            cursor = body.get("next_cursor")
            if not cursor:
                raise SystemExit(f"no next_cursor after page {page - 1}")
            body, s, w = client.ui("/internal/ui/invocations?" + urllib.parse.urlencode({"limit": 50, "cursor": cursor}))
            if len(body["items"]) != 50:
                raise SystemExit(f"page {page} has {len(body['items'])} items, want 50")
            per_page_s.append(s)
            per_page_w.append(w)
            ts, tw = ts + s, tw + w
            if page == 10 and detail_id is None:
                detail_id = next((i["id"] for i in body["items"] if i["status"] == "succeeded"), None)
        walk_s.append(ts)
        walk_w.append(tw)
    rows.append({"name": "list, pages 2–20 following `next_cursor` (each page)", "server": per_page_s,
                 "wall": per_page_w, "note": f"{len(per_page_s)} pages"})
    rows.append({"name": "list, 20 pages walked (sum)", "server": walk_s, "wall": walk_w, "note": "",
                 "target": None})

    for name, query in (("`status=scheduled`", {"status": "scheduled"}), ("`service=Counter`", {"service": "Counter"})):
        qs = urllib.parse.urlencode(dict(query, limit=50))
        repeat(f"list, {name}, first call", f"/internal/ui/invocations?{qs}", scanned)
        fill_page(client, query)  # warm-up
        server, wall, calls, items = [], [], set(), set()
        for _ in range(runs):
            s, w, c, n = fill_page(client, query)
            server.append(s)
            wall.append(w)
            calls.add(c)
            items.add(n)
        rows.append({"name": f"list, {name}, page filled as the UI does (sum of calls)", "server": server,
                     "wall": wall, "note": f"{'/'.join(map(str, sorted(calls)))} calls, "
                                           f"{'/'.join(map(str, sorted(items)))} items"})

    counts, _, _ = client.ui("/internal/ui/counts")
    repeat("counts, all", "/internal/ui/counts", f"total {counts['total']}")
    repeat("counts, `status=scheduled`", "/internal/ui/counts?status=scheduled")
    repeat("counts, `service=Counter`", "/internal/ui/counts?service=Counter")
    if not detail_id:
        raise SystemExit("no succeeded invocation on page 10 to ask the detail of")
    repeat("detail `/internal/ui/invocations/{id}`", f"/internal/ui/invocations/{detail_id}")
    return rows


def measure_sql(client, runs):
    """The list and count questions through SQL; -> {label: [wall ms]}"""
    out = {}
    for label, q in SQL_QUESTIONS:
        client.sql(q)  # warm-up
        out[label] = [client.sql(q)[1] for _ in range(runs)]
    return out


SQL_QUESTIONS = [
    ("newest 50", "SELECT id, target, status, created_at, modified_at FROM sys_invocation "
                  "ORDER BY created_at DESC LIMIT 50"),
    ("count by status", "SELECT status, count(*) AS n FROM sys_invocation GROUP BY status"),
]


def sql_counts(client):
    rows, _ = client.sql("SELECT status, count(*) AS n FROM sys_invocation GROUP BY status")
    by = {r["status"]: r["n"] for r in rows}
    return by.get("completed", 0), by.get("scheduled", 0), sum(by.values())


def ui_counts(client):
    body, _, _ = client.ui("/internal/ui/counts")
    by = body["by_status"]
    return by.get("succeeded", 0) + by.get("failed", 0), by.get("scheduled", 0), body["total"]


def preflight(client):
    """Before seeding: the binary must serve the UI routes and pages (a binary built before the
    UI work answers 404), so a long seeding run is not wasted."""
    for path in ("/internal/ui/counts", "/internal/ui/invocations?limit=1", "/ui/", "/ui/app.js"):
        status, headers, raw, _ = client.request("GET", path)
        if status != 200:
            raise SystemExit(f"GET {path} answered {status}: this binary does not serve the web UI "
                             "(built before admin-ui/ and the /internal/ui routes?)")
        if path.startswith("/internal/") and not TIMING.search(headers.get("server-timing") or ""):
            raise SystemExit(f"GET {path}: no `server-timing: read;dur=` header")


def paint(admin, args):
    driver = os.path.join(HERE, "ui_paint.mjs")
    if not os.path.exists(args.chromium):
        raise SystemExit(f"{args.chromium} not found: the first-paint part needs Debian's chromium")
    if not os.path.isdir(args.playwright):
        raise SystemExit(f"{args.playwright} not found: run `npm ci` in admin-ui/")
    out = subprocess.run(["node", driver, admin + "/", str(args.paint_runs), args.chromium, args.playwright],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"first paint failed:\n{out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def with_server(name, cmd, parse, env, args, body):
    srv = Server(name, cmd, parse, env)
    svc, port = start_service(args.service)
    try:
        return body(srv, port)
    except BaseException:
        log(f"{name}: server log tail:\n{srv.tail()}")
        raise
    finally:
        svc.terminate()
        try:
            svc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            svc.kill()
        srv.stop()


def fmt(x):
    return f"{x:,.1f}" if x < 1000 else f"{x:,.0f}"


def verdict(ok):
    return "holds" if ok else "**misses**"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ratchet", default="target/release/ratchet")
    ap.add_argument("--restate", help="the real restate-server, for the SQL comparison (optional)")
    ap.add_argument("--service", default=os.environ.get("BENCH_SERVICE_BIN")
                    or "/tmp/bench/service/target/release/restate-bench-service")
    ap.add_argument("--oha", default=shutil.which("oha") or os.path.expanduser("~/.cargo/bin/oha"))
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--playwright", default=os.path.join(ROOT, "admin-ui/node_modules/playwright-core"))
    ap.add_argument("--invocations", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=20, help="repetitions of each route")
    ap.add_argument("--paint-runs", type=int, default=10, help="cold loads of each page")
    ap.add_argument("--sql-runs", type=int, default=5, help="repetitions of each SQL question")
    ap.add_argument("--settle-timeout", type=int, default=900,
                    help="seconds to wait for every seeded invocation to be counted")
    args = ap.parse_args()
    for what, path in (("--ratchet", args.ratchet), ("--service", args.service), ("--oha", args.oha)):
        if not path or not os.access(path, os.X_OK):
            sys.exit(f"{what}: {path!r} is not an executable")
    if args.restate and not os.access(args.restate, os.X_OK):
        sys.exit(f"--restate: {args.restate!r} is not an executable")
    env = dict(os.environ, RESTATE_DISABLE_TELEMETRY="true")
    load = {}

    def ratchet_body(srv, port):
        client = Client(srv.admin)
        preflight(client)
        seed(srv, port, args)
        wait_done(srv, args, lambda: ui_counts(client))
        load["routes"] = os.getloadavg()[0]
        log("ratchet: measuring the UI routes")
        rows = measure_routes(client, args)
        load["paint"] = os.getloadavg()[0]
        log("ratchet: first paint in chromium")
        painted = paint(srv.admin, args)
        sql = None
        if args.restate:
            log("ratchet: the SQL questions")
            sql = measure_sql(client, args.sql_runs)
        return rows, painted, sql

    ratchet_cmd = [args.ratchet, "server", "--base-dir", "{datadir}", "--bind-ip", HOST,
                   "--use-random-ports", "--listen-mode", "tcp"]
    rows, painted, ratchet_sql = with_server("ratchet", ratchet_cmd, parse_ratchet, env, args, ratchet_body)

    restate_sql = None
    if args.restate:
        def restate_body(srv, port):
            client = Client(srv.admin)
            seed(srv, port, args)
            wait_done(srv, args, lambda: sql_counts(client))
            log("restate: the SQL questions")
            return measure_sql(client, args.sql_runs)

        restate_cmd = [args.restate, "--base-dir", "{datadir}", "--bind-ip", HOST, "--no-logo",
                       "--use-random-ports", "true", "--listen-mode", "tcp"]
        restate_sql = with_server("restate", restate_cmd, parse_restate,
                                  dict(env, RESTATE_LOG_FORMAT="json"), args, restate_body)

    version = subprocess.run([args.ratchet, "--version"], capture_output=True, text=True).stdout.strip()
    total = args.invocations + COUNTER_DONE + SCHEDULED
    print(f"Web UI, {args.ratchet} ({version or 'version unknown'}), N = {args.invocations:,} completed "
          f"`Bench/noop` sends retained ({total:,} invocations in all: + {COUNTER_DONE} completed "
          f"`Counter/add`, {SCHEDULED} scheduled an hour ahead, the oldest rows), "
          f"{os.cpu_count()} cores. Routes: {args.runs} runs each on one kept-alive connection after a "
          f"warm-up; server = `server-timing: read;dur`, wall = client round trip. "
          f"Pages: {args.paint_runs} cold loads each (new browser context) after a warm-up, ms from "
          f"navigation start. A target holds when the p90 is under it. Load average (1 min) when the "
          f"routes were measured {load['routes']:.2f}, at the browser part {load['paint']:.2f}.\n")
    print("| what | server median ms | server p90 ms | wall median ms | wall p90 ms | target | note |")
    print("|---|---:|---:|---:|---:|---|---|")
    for r in rows:
        s, w = r["server"], r["wall"]
        target = f"server < {SERVER_TARGET_MS} ms: {verdict(pct(s, 90) < SERVER_TARGET_MS)}" \
            if r.get("target", True) is not None else ""
        print(f"| {r['name']} | {fmt(statistics.median(s))} | {fmt(pct(s, 90))} | {fmt(statistics.median(w))} "
              f"| {fmt(pct(w, 90))} | {target} | {r['note']} |")
    for page, label in (("overview", "`/ui/` (overview)"), ("invocations", "`/ui/invocations`")):
        p = painted[page]
        for key, what, sel in (("fcp", "first contentful paint", ""),
                               ("data", "data visible", " (`[data-testid^=\"count-\"]`)" if page == "overview"
                                else " (`[data-testid=\"inv-row\"]`)")):
            xs = p[key]
            note = f"{len(xs)} loads"
            if key == "data":
                med = {k: statistics.median(v) if None not in v else None
                       for k, v in p.items() if k in ("scripts", "req_start", "req_end")}
                if None not in med.values():
                    note += (f"; medians: last script in at {fmt(med['scripts'])}, data request "
                             f"{fmt(med['req_start'])}→{fmt(med['req_end'])}")
            print(f"| {label}: {what}{sel} | | | {fmt(statistics.median(xs))} | {fmt(pct(xs, 90))} "
                  f"| < {PAINT_TARGET_MS} ms: {verdict(pct(xs, 90) < PAINT_TARGET_MS)} | {note} |")
    if restate_sql:
        print(f"\nThe same questions through SQL (`POST /query`, wall ms, median / p90 of {args.sql_runs}; "
              "Restate seeded the same way, after Ratchet stopped):\n")
        print("| question | Restate 1.7.12 | Ratchet `/query` | Ratchet UI route |")
        print("|---|---:|---:|---:|")
        ui_equiv = {"newest 50": rows[0], "count by status": next(r for r in rows if r["name"] == "counts, all")}
        for label, q in SQL_QUESTIONS:
            a, b, u = restate_sql[label], ratchet_sql[label], ui_equiv[label]["wall"]
            print(f"| {label}: `{q}` | {fmt(statistics.median(a))} / {fmt(pct(a, 90))} "
                  f"| {fmt(statistics.median(b))} / {fmt(pct(b, 90))} "
                  f"| {fmt(statistics.median(u))} / {fmt(pct(u, 90))} |")


if __name__ == "__main__":
    main()
