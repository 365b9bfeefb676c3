"""What a migration's views cost ingest (the read side's 0010 by default; --migration
0014_usage_rollups, 0015_guard_impact or 0016_guard_impact_days): the ledger insert with and
without them, each as a ratio to the engine's raw insert of the same rows, in one run.

A fresh embedded store (or --clickhouse-url), migrated; batches of ledger rows (COST entries as
ingest writes them, through `ledger_append`, with sessions of 8 events, a tool on every third
and one in 50 a downgraded call) inserted into the ledger with every view, into the ledger with
the migration's views dropped, and into `bench_raw_ledger` (the ledger's columns, no view: the
engine's raw insert), interleaved batch by batch so a change of load hits all three alike.

    .venv/bin/python benchmarks/read_side_ingest.py [--batches 60] [--batch 1000]
    .venv/bin/python benchmarks/read_side_ingest.py --migration 0014_usage_rollups
    .venv/bin/python benchmarks/read_side_ingest.py --migration 0015_guard_impact
    .venv/bin/python benchmarks/read_side_ingest.py --migration 0016_guard_impact_days
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--batches", type=int, default=60)
parser.add_argument("--batch", type=int, default=1000)
parser.add_argument("--clickhouse-url", default="")
parser.add_argument("--var-dir", default=str(ROOT / "var" / "bench-read-side-ingest"))
parser.add_argument("--no-write", action="store_true")
parser.add_argument("--migration", default="0010_read_side",
                    help="the event-store migration whose materialized views are measured")
ARGS = parser.parse_args()
if not ARGS.clickhouse_url:
    shutil.rmtree(ARGS.var_dir, ignore_errors=True)
from benchmarks.common import django_setup  # noqa: E402

django_setup(ARGS.var_dir, ARGS.clickhouse_url)

from aforo import eventstore  # noqa: E402
from aforo.eventstore.migrate import migrate_eventstore  # noqa: E402
from aforo.ledger import ledger_append, ledger_entry  # noqa: E402

MIGRATION = __import__(f"aforo.eventstore.migrations.{ARGS.migration}",
                       fromlist=["statements"])
NUMBER = ARGS.migration[:4]


def batch(n: int, now: datetime) -> list[dict]:
    rows = []
    for i in range(ARGS.batch):
        k = n * ARGS.batch + i
        rows.append(ledger_entry(
            tenant_id="bench-ingest", entry_id=f"cost_{uuid.uuid4().hex}", entry_type="COST",
            event_id=f"evt_{k}", occurred_at=now - timedelta(seconds=k % 86_400),
            customer_id=f"cust_{k % 10_000}", product_id=f"prod_{k % 20}",
            product_type="API_WITH_AI", provider="OpenAI", model=f"model_{k % 16}",
            session_id=f"s_{k // 8}", tool_name="search" if k % 3 == 0 else "",
            requested_model="model_big" if k % 50 == 0 else "",
            source_type="GATEWAY", event_count=1, input_tokens=100 + k % 4000,
            output_tokens=20 + k % 1000, ai_cogs_usd=Decimal("0.001234567"),
            infra_cogs_usd=Decimal("0.000400000"), fee_cogs_usd=Decimal("0.000100000"),
            cost_source="CARRIED"))
    return rows


def main() -> None:
    from django.core.management import call_command

    from aforo.eventstore.migrate import topology_for

    call_command("migrate", verbosity=0)
    store = eventstore.get_store()
    migrate_eventstore(store)
    eventstore.command("DROP TABLE IF EXISTS bench_raw_ledger")
    eventstore.command("CREATE TABLE bench_raw_ledger AS ledger")
    view_sql = [s for s in MIGRATION.statements(topology_for(store))
                if s.startswith("CREATE MATERIALIZED VIEW")]
    views = [sql.split()[6] for sql in view_sql]  # CREATE MATERIALIZED VIEW IF NOT EXISTS x
    now = datetime.now(timezone.utc).replace(microsecond=0)
    times: dict[str, list[float]] = {"raw": [], "with": [], "without": []}
    have_view = True
    for n in range(ARGS.batches):
        rows = batch(n, now)
        # the order of the three rotates, so none always runs first
        order = [("raw", "with", "without"), ("with", "without", "raw"),
                 ("without", "raw", "with")][n % 3]
        for kind in order:
            if kind == "with" and not have_view:
                for sql in view_sql:
                    eventstore.command(sql)
                have_view = True
            if kind == "without" and have_view:
                for view in views:
                    eventstore.command(f"DROP TABLE IF EXISTS {view}")
                have_view = False
            copy = [{**row, "event_id": f"{row['event_id']}_{kind}"} for row in rows]
            began = time.perf_counter()
            if kind == "raw":
                eventstore.insert("bench_raw_ledger", copy)
            else:
                ledger_append(copy)
            times[kind].append((time.perf_counter() - began) * 1000)
    med = {kind: statistics.median(values[3:]) for kind, values in times.items()}
    load = os.getloadavg()[0]
    print(f"raw {med['raw']:.1f} ms, ledger with {NUMBER} {med['with']:.1f} ms, without "
          f"{med['without']:.1f} ms per {ARGS.batch}-row batch; load {load:.1f}")
    with_ratio, without_ratio = med["with"] / med["raw"], med["without"] / med["raw"]
    loss = 1 - without_ratio / with_ratio
    print(f"ratio to raw: with {with_ratio:.2f}, without {without_ratio:.2f}; "
          f"throughput lost to {NUMBER}: {loss:.1%}")
    if not ARGS.no_write:
        from benchmarks.common import record

        record(f"{ARGS.migration} ({', '.join(views)}): what its views cost ingest, "
               f"{store.name} mode", [
            f"{ARGS.batches} batches of {ARGS.batch:,} COST entries through `ledger_append` "
            "into a fresh store, interleaved with the same rows into `bench_raw_ledger` (the "
            "ledger's columns, no view: the engine's raw insert) and into the ledger with "
            f"{NUMBER}'s views dropped; medians after 3 warm-up batches. Load average "
            f"{load:.1f} at the end (2 shared cores).",
            "",
            "| insert | median ms per batch | ÷ raw insert |",
            "| --- | ---: | ---: |",
            f"| raw insert (no views) | {med['raw']:.1f} | 1.00 |",
            f"| ledger, every view but {NUMBER}'s | {med['without']:.1f} | {without_ratio:.2f} |",
            f"| ledger, every view and {NUMBER}'s | {med['with']:.1f} | {with_ratio:.2f} |",
            "",
            f"Ingest throughput lost to {NUMBER}'s views: {loss:.1%}.",
        ])


if __name__ == "__main__":
    main()
