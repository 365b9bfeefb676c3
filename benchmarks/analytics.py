"""Usage and agent analytics benchmark: each reader's p50 / p95 over the export benchmark's
tenant (benchmarks/export.py generates it: N events over 30 days, 10,000 customers, sessions of
8 events, a tool on every third), embedded. Figures are appended to benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/export.py --events 10000000   # once, to generate
    .venv/bin/python benchmarks/analytics.py
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--requests", type=int, default=10)
parser.add_argument("--var-dir", default=str(ROOT / "var" / "bench-export"))
parser.add_argument("--no-write", action="store_true")
ARGS = parser.parse_args()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aforo.settings")
os.environ.setdefault("AFORO_VAR_DIR", ARGS.var_dir)
os.environ.pop("CLICKHOUSE_URL", None)

import django  # noqa: E402

django.setup()

from aforo import eventstore  # noqa: E402
from aforo.models import Tenant  # noqa: E402
from aforo.periods import Period  # noqa: E402
from cogs.queries import agents, usage  # noqa: E402

TENANT = Tenant(slug="bench-export", name="bench-export")
PERIOD = Period(first=date(2026, 6, 1), last=date(2026, 6, 30))
NOW = datetime(2026, 6, 30, 23, 0, tzinfo=timezone.utc)
READERS = {
    "usage/by-billable-unit (hourly rollup)": lambda: usage.usage_by_billable_unit(
        TENANT, PERIOD),
    "usage/by-customer (hourly rollup)": lambda: usage.usage_by_customer(TENANT, PERIOD),
    "usage/by-product-type (hourly + daily rollups)": lambda: usage.usage_by_product_type(
        TENANT, PERIOD),
    "agents/tools (ledger scan)": lambda: agents.tools_breakdown(TENANT, PERIOD),
    "agents/by-agent (ledger scan, per event)": lambda: agents.agents_breakdown(TENANT, PERIOD),
    "agents/sessions page 0 (ledger scan)": lambda: agents.sessions_page(
        TENANT, PERIOD, now=NOW, offset=0, limit=25),
    "agents/sessions/{id} (ledger scan)": lambda: agents.session_trace(
        TENANT, PERIOD, "s_1000"),
}


def main() -> None:
    events = int(eventstore.tenant_query(
        TENANT.slug, "SELECT count() AS n FROM ledger WHERE tenant_id = %(tenant_id)s")[0]["n"])
    lines = [f"\n## Usage and agent analytics ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
             f"embedded, {events:,} events over 30 days, the 30-day period, "
             f"{ARGS.requests} calls each, {os.cpu_count()} cores shared)\n",
             "| reader | p50 ms | p95 ms |", "| --- | --- | --- |"]
    for name, read in READERS.items():
        read()
        times = []
        for _ in range(ARGS.requests):
            began = time.perf_counter()
            read()
            times.append((time.perf_counter() - began) * 1000)
        times.sort()
        p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
        lines.append(f"| {name} | {statistics.median(times):.0f} | {p95:.0f} |")
        print(lines[-1], flush=True)
    if not ARGS.no_write:
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as out:
            out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
