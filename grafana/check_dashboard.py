#!/usr/bin/env python3
"""Check that every metric the Grafana dashboard queries is exposed by the server.

    python3 grafana/check_dashboard.py SCRAPE [--dashboard FILE] [--list]

SCRAPE is the text of a `GET /metrics` (`-` reads it from stdin), e.g.

    curl -s http://127.0.0.1:9070/metrics > scrape.txt
    python3 grafana/check_dashboard.py scrape.txt

The metric names are taken from every panel's query expressions (and from the template
variables' queries): identifiers starting with `restate_` or `process_`, outside quoted
strings. A `NAME_sum` / `NAME_count` counts as NAME when NAME is a summary (per the scrape's
`# TYPE` line, or, if NAME is absent from the scrape, because the dashboard reads NAME's
`quantile` series). A name is present when the scrape has a `# TYPE NAME ...` line.
A metric queried with a `quantile` matcher must also be of type summary.

Exit 0 when all are present (prints how many names were checked); 1 when some are missing
or of the wrong type (lists them); 2 on a usage error or an unreadable file.

Note: the exporter writes a metric only once it has been recorded (a labelled counter after
its first increment), so scrape a server that has served some traffic.
"""

import argparse
import json
import os
import re
import sys

NAME_RE = re.compile(r"(?<![A-Za-z0-9_:])((?:restate|process)_[A-Za-z0-9_:]*)")
SELECTOR_RE = re.compile(r"(?<![A-Za-z0-9_:])((?:restate|process)_[A-Za-z0-9_:]*)\s*\{([^}]*)\}")
QUANTILE_RE = re.compile(r"(?<![A-Za-z0-9_])quantile\s*(?:=~|!~|!=|=)")
STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
TYPE_RE = re.compile(r"^#\s*TYPE\s+(\S+)\s+(\S+)")
SUFFIXES = ("_sum", "_count")


def panel_queries(panels):
    """(panel title, expression) for every target of every panel, rows' nested panels included."""
    for panel in panels or []:
        for target in panel.get("targets") or []:
            expr = target.get("expr")
            if isinstance(expr, str) and expr.strip():
                yield panel.get("title") or f"panel {panel.get('id')}", expr
        yield from panel_queries(panel.get("panels"))


def variable_queries(dashboard):
    for var in (dashboard.get("templating") or {}).get("list") or []:
        if var.get("type") != "query":
            continue
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if isinstance(query, str) and query.strip():
            yield f"variable ${var.get('name')}", query


def scrape_types(text):
    types = {}
    for line in text.splitlines():
        match = TYPE_RE.match(line)
        if match:
            types[match.group(1)] = match.group(2)
    return types


def main(argv):
    default_dashboard = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ratchet-dashboard.json")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scrape", help="text of a /metrics scrape, or - for stdin")
    parser.add_argument("--dashboard", default=default_dashboard,
                        help="dashboard JSON (default: ratchet-dashboard.json beside this script)")
    parser.add_argument("--list", action="store_true", help="print every checked name")
    args = parser.parse_args(argv)

    try:
        with open(args.dashboard, encoding="utf-8") as f:
            dashboard = json.load(f)
        if args.scrape == "-":
            scrape = sys.stdin.read()
        else:
            with open(args.scrape, encoding="utf-8") as f:
                scrape = f.read()
    except (OSError, ValueError) as err:
        print(f"check_dashboard: {err}", file=sys.stderr)
        return 2

    types = scrape_types(scrape)
    queries = list(panel_queries(dashboard.get("panels"))) + list(variable_queries(dashboard))
    if not queries:
        print(f"check_dashboard: no query expressions in {args.dashboard}", file=sys.stderr)
        return 2

    # Metrics whose `quantile` series a query reads: they must be summaries.
    quantile_used = {}
    for where, expr in queries:
        for name, matchers in SELECTOR_RE.findall(expr):
            if QUANTILE_RE.search(STRING_RE.sub('""', matchers)):
                quantile_used.setdefault(name, set()).add(where)

    used = {}  # checked name -> titles of the panels (or variables) that query it
    for where, expr in queries:
        for name in NAME_RE.findall(STRING_RE.sub('""', expr)):
            for suffix in SUFFIXES:
                base = name[: -len(suffix)]
                if name.endswith(suffix) and (
                    types.get(base) == "summary" or (name not in types and base in quantile_used)
                ):
                    name = base
                    break
            used.setdefault(name, set()).add(where)

    missing = sorted(name for name in used if name not in types)
    not_summary = sorted(
        name for name in quantile_used if name in types and types[name] != "summary"
    )

    if args.list:
        for name in sorted(used):
            print(f"  {name} ({types.get(name, 'MISSING')})")

    if missing or not_summary:
        source = "stdin" if args.scrape == "-" else args.scrape
        if missing:
            print(f"{len(missing)} of {len(used)} metric names are not in {source} (no # TYPE line):")
            for name in missing:
                print(f"  {name}   <- {', '.join(sorted(used[name]))}")
        if not_summary:
            print("queried by quantile but not of type summary:")
            for name in not_summary:
                print(f"  {name} is {types[name]}   <- {', '.join(sorted(quantile_used[name]))}")
        return 1

    print(f"ok: {len(used)} metric names checked, all present in the scrape")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
