"""Allocation benchmark: $1,000,000.00 spread by COGS onto 1,000,000 events of a month
(`cost_sources.allocations.allocation_create`: read the events' weights, the largest-remainder
split in Python, the entries appended, settlement's reconciliation), then reversed; each timed
against the raw insert of the same entry rows (`eventstore.insert_rows` into the ledger under a
scratch tenant), measured in the same run. Embedded (chdb) by default.

    .venv/bin/python benchmarks/allocation.py                       # 1M events, embedded
    .venv/bin/python benchmarks/allocation.py --events 100000 --no-write
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--clickhouse-url", default="")
    parser.add_argument("--var-dir", default=str(ROOT / "var" / "bench-allocation"))
    parser.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    return parser.parse_args()


ARGS = parse_args()
from benchmarks.common import django_setup  # noqa: E402

django_setup(ARGS.var_dir, ARGS.clickhouse_url)

from django.core.management import call_command  # noqa: E402

from aforo import eventstore  # noqa: E402
from aforo.eventstore.migrate import migrate_eventstore  # noqa: E402
from aforo.models import Tenant  # noqa: E402
from benchmarks.common import record  # noqa: E402
from cost_sources import allocations  # noqa: E402
from cost_sources.models import Allocation  # noqa: E402
from cost_sources.services import cost_source_create  # noqa: E402

FIRST, LAST = date(2026, 3, 1), date(2026, 3, 31)
AMOUNT = Decimal("1000000.00")
CHUNK = 1_000_000 if not ARGS.clickhouse_url else 200_000
COLUMNS = ("tenant_id, entry_id, entry_type, entry_kind, event_id, occurred_at, recorded_at, "
           "customer_id, product_id, product_type, provider, model, event_count, input_tokens, "
           "output_tokens, ai_cogs_usd, cost_source")
SELECT = """
SELECT %(tenant)s AS tenant_id, concat('e', toString(number)) AS entry_id, 'COST' AS entry_type,
       'ORIGINAL' AS entry_kind, entry_id AS event_id,
       toDateTime(%(start)s + cityHash64(number, 1) %% %(span)s, 'UTC') AS occurred_at,
       occurred_at AS recorded_at,
       concat('cust_', toString(cityHash64(number, 2) %% 10000)) AS customer_id,
       concat('prod_', toString(cityHash64(number, 3) %% 20)) AS product_id,
       'API_WITH_AI' AS product_type, 'OpenAI' AS provider,
       concat('model_', toString(cityHash64(number, 4) %% 8)) AS model,
       toInt32(1) AS event_count, toInt64(100 + cityHash64(number, 5) %% 4000) AS input_tokens,
       toInt64(20 + cityHash64(number, 6) %% 1000) AS output_tokens,
       toDecimal64(input_tokens * 2500 + output_tokens * 10000, 9) / 1000000000 AS ai_cogs_usd,
       'CARRIED' AS cost_source
FROM numbers(%(offset)s, %(count)s)
"""


def seed(tenant: str) -> float:
    start = int(datetime(2026, 3, 1, tzinfo=timezone.utc).timestamp())
    began = time.perf_counter()
    for offset in range(0, ARGS.events, CHUNK):
        count = min(CHUNK, ARGS.events - offset)
        eventstore.command(f"INSERT INTO ledger ({COLUMNS}) SELECT {COLUMNS} FROM ({SELECT})",
                           {"tenant": tenant, "start": start, "span": 31 * 86400 - 60,
                            "offset": offset, "count": count})
    return time.perf_counter() - began


def allocated_sum(tenant: str) -> tuple[Decimal, int]:
    row = eventstore.tenant_query(
        tenant, "SELECT sum(infra_cogs_usd) AS s, count() AS n FROM ledger "
        "WHERE tenant_id = %(tenant_id)s AND allocation_id != ''")[0]
    return row["s"], int(row["n"])


def reference_insert(allocation: Allocation, scratch: str) -> float:
    """The same entry rows, inserted raw (under a scratch tenant so no figure doubles)."""
    _columns, entries = allocations.allocation_entries(allocation)
    columns = ("tenant_id", "entry_id", "entry_type", "entry_kind", "event_id", "recorded_at",
               *allocations._CARRIED, "infra_cogs_usd", "allocation_id")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    rows = [(scratch, f"{event_id}#alloc#ref", "COST", "CORRECTION", event_id, now, *carried,
             share, "ref") for event_id, share, *carried in entries]
    began = time.perf_counter()
    for start in range(0, len(rows), allocations.INSERT_CHUNK):
        eventstore.insert_rows("ledger", columns, rows[start:start + allocations.INSERT_CHUNK])
    return time.perf_counter() - began


def main() -> None:
    call_command("migrate", verbosity=0)
    migrate_eventstore(eventstore.get_store())
    stamp = int(time.time())
    tenant = Tenant.objects.create(slug=f"bench-alloc-{stamp}", name="Benchmark")
    source = cost_source_create(tenant=tenant, name="AWS", kind="AWS_CUR")
    seeded = seed(tenant.slug)
    print(f"Seeded {ARGS.events:,} events in {seeded:.0f} s", flush=True)
    load = os.getloadavg()[0]
    began = time.perf_counter()
    allocation = allocations.allocation_create(
        tenant=tenant, source=source, first=FIRST, last=LAST, by="COGS", bucket="INFRA",
        amount=AMOUNT)
    allocate_s = time.perf_counter() - began
    total, entries = allocated_sum(tenant.slug)
    assert total == AMOUNT, total
    print(f"Allocated onto {allocation.events:,} events in {allocate_s:.1f} s", flush=True)
    reference_s = reference_insert(allocation, f"bench-alloc-ref-{stamp}")
    print(f"Raw insert of the same {entries:,} rows: {reference_s:.1f} s", flush=True)
    began = time.perf_counter()
    allocations.allocation_reverse(allocation=allocation)
    reverse_s = time.perf_counter() - began
    assert allocated_sum(tenant.slug)[0] == 0
    print(f"Reversed in {reverse_s:.1f} s", flush=True)
    # the split alone, on the same weights
    weights = [(n * 7919) % 4000 + 100 for n in range(ARGS.events)]
    began = time.perf_counter()
    allocations.largest_remainder(int(AMOUNT.scaleb(9)), weights)
    split_s = time.perf_counter() - began
    backend = "server" if ARGS.clickhouse_url else "embedded (chdb)"
    lines = [
        f"${AMOUNT:,} spread by COGS onto {ARGS.events:,} events of one month (one entry "
        f"each), {backend}; load average {load:.1f} before (a shared, loaded machine: 2 "
        "cores, six engineers). Reference: the raw `eventstore.insert_rows` of the same "
        "entry rows into the ledger, in the same run.", "",
        "| step | seconds | ratio to the raw insert |", "| --- | --- | --- |",
        f"| raw insert of the {entries:,} entries (reference) | {reference_s:.1f} | 1.00 |",
        f"| allocation_create (read weights, split, append, settle) | {allocate_s:.1f} | "
        f"{allocate_s / reference_s:.2f} |",
        f"| allocation_reverse (read shares, append, settle) | {reverse_s:.1f} | "
        f"{reverse_s / reference_s:.2f} |",
        f"| the largest-remainder split alone | {split_s:.1f} | {split_s / reference_s:.2f} |",
        "", f"The entries sum to exactly ${AMOUNT:,} (checked); after the reversal to 0.",
    ]
    if not ARGS.no_write:
        record(f"Allocation: {ARGS.events:,} events", lines)
    else:
        print("\n".join(lines))


if __name__ == "__main__":
    main()
