"""Where the time of the read side's slow paths goes: engine, decode, Python, rendering.

Reuses benchmarks/dashboard.py's data set (its --var-dir; generate it there first with
`dashboard.py --generate-only`), requests each path through Django's test client as the
dashboard benchmark does, and splits every request's wall time into

- engine: time inside the store's query call (chdb runs the SQL and writes JSONCompact; on the
  server, the driver's round trip including its own decoding),
- decode: msgspec turning chdb's JSONCompact into typed tuples (chdb only),
- render: the API's JSON renderer (`ExactJSONRenderer.render`),
- database: Django's own queries (auth, settings),
- Python: the rest (routing, auth, DRF, the query layer building SQL and rows, the view's
  dicts),

each as a median over the timed requests, beside the raw ledger GROUP BY product of the same
window measured in the same run (the ratio column). Appends a section to RESULTS.md.

    .venv/bin/python benchmarks/read_profile.py --var-dir var/bench-dashboard
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TENANT = "bench-dashboard"
PATHS = {
    "/by-customer": ("/by-customer", {}),
    "/pnl": ("/pnl", {}),
    "/anomalies": ("/anomalies", {}),
    "/transactions?customerId": ("/transactions", {"customerId": "cust_42"}),
    "/transactions (first page, reference)": ("/transactions", {}),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--var-dir", default=str(ROOT / "var" / "bench-dashboard"))
    parser.add_argument("--clickhouse-url", default="")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--label", default="", help="a note for the section title")
    return parser.parse_args()


ARGS = parse_args()
from benchmarks.common import django_setup  # noqa: E402

django_setup(ARGS.var_dir, ARGS.clickhouse_url)

from django.test import Client  # noqa: E402

from aforo import eventstore  # noqa: E402
from aforo.models import Role, Tenant  # noqa: E402
from aforo.runtime import freeze_startup_heap  # noqa: E402
from aforo.tenancy import api_token_create  # noqa: E402
from benchmarks.common import probe_store, profile_requests  # noqa: E402


def main() -> None:
    probe_store()
    tenant = Tenant.objects.get(slug=TENANT)
    token = api_token_create(tenant=tenant, role=Role.VIEWER, name="profile")
    freeze_startup_heap()
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token.raw}", HTTP_X_TENANT_ID=TENANT)
    base = "/api/v1/analytics/cogs/dashboard"
    # The data set's last day (dashboard.py ends it on the day it generated).
    last = eventstore.tenant_query(
        TENANT, "SELECT max(occurred_at) AS at FROM ledger WHERE tenant_id = %(tenant_id)s",
        {})[0]["at"].date()
    first = last - timedelta(days=ARGS.days - 1)
    period = {"from": first.isoformat(), "to": last.isoformat()}

    from cogs import queries

    raw_period = queries.Period(first=first, last=last)
    results = []
    load_before = os.getloadavg()[0]

    def raw_reference() -> float:
        samples = []
        for i in range(8):
            began = time.perf_counter()
            queries.totals_by(tenant, queries.Dimension.PRODUCT, raw_period, use_rollups=False)
            if i >= 1:
                samples.append((time.perf_counter() - began) * 1000)
        return statistics.median(samples)

    raw_before = raw_reference()
    for name, (path, params) in PATHS.items():
        med, size, slowest = profile_requests(client, base + path, {**period, **params},
                                              warmup=ARGS.warmup, requests=ARGS.requests)
        results.append((name, med, size, slowest))
        print(f"{name:<40} total {med['total']:7.1f}  engine {med['engine']:6.1f}  "
              f"decode {med['decode']:5.1f}  python {med['python']:6.1f}  "
              f"db {med['db']:5.1f}  render {med['render']:5.1f} ms  ({med['queries']:.0f} "
              f"queries, {size:,} bytes)", flush=True)
        for sql, times in sorted(slowest.items(), key=lambda kv: -sum(kv[1]))[:4]:
            print(f"      {sum(times) / ARGS.requests:6.1f} ms/request  {sql}")
    raw_after = raw_reference()
    raw = (raw_before + raw_after) / 2
    print(f"raw ledger GROUP BY product: {raw_before:.1f} ms before, {raw_after:.1f} ms after")
    if not ARGS.no_write:
        write(results, raw, raw_before, raw_after, load_before, first, last)


def write(results, raw, raw_before, raw_after, load_before, first, last) -> None:
    from benchmarks.common import record

    events = eventstore.tenant_query(
        TENANT, "SELECT toInt64(sum(event_count)) AS n FROM ledger WHERE tenant_id = "
        "%(tenant_id)s AND entry_type = 'COST'", {})[0]["n"]
    mode = eventstore.get_store().name
    lines = [
        f"{int(events):,} events of benchmarks/dashboard.py's set (90 days, 10,000 customers), "
        f"{mode}; the {ARGS.days}-day period {first}…{last}; Django test client end to end, "
        f"medians of {ARGS.requests} requests after {ARGS.warmup} warm-up. Load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after (2 shared cores). "
        f"Reference: the raw ledger GROUP BY product of the same period, "
        f"{raw_before:.0f} ms before and {raw_after:.0f} ms after the paths.",
        "",
        "| path | total ms | ÷ raw | engine | decode | Python | database | render | queries "
        "| bytes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, med, size, _slowest in results:
        lines.append(
            f"| `{name}` | {med['total']:.1f} | {med['total'] / raw:.2f} | "
            f"{med['engine']:.1f} | {med['decode']:.1f} | {med['python']:.1f} | "
            f"{med['db']:.1f} | {med['render']:.1f} | {med['queries']:.0f} | {size:,} |")
    lines += ["", "Engine time per query (ms per request, the costliest of each path):", ""]
    for name, _med, _size, slowest in results:
        top = sorted(slowest.items(), key=lambda kv: -sum(kv[1]))[:3]
        lines.append(f"- `{name}`: " + "; ".join(
            f"{sum(t) / ARGS.requests:.1f} ms `{sql[:70]}…`" for sql, t in top))
    title = (f"Read side profile ({mode}, {int(events):,} events, {ARGS.days}D)"
             + (f": {ARGS.label}" if ARGS.label else ""))
    record(title, lines)


if __name__ == "__main__":
    main()
