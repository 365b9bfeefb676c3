"""Cost import benchmark: a 1,000,000-row CUR-shaped CSV through the import service, embedded
(chdb) by default; then the same file again (a re-import, which appends nothing).

The file is generated from the reference CUR excerpt's header and rows (read in place from
../shared/reference/aws_cur/), each row repeated with a new line id, a day of the month and a
cost of ten decimals (E-notation for the smallest), written to a temporary file. Target:
≤ 60 s embedded for the first import.

    .venv/bin/python benchmarks/cost_import.py                  # 1M rows, embedded
    .venv/bin/python benchmarks/cost_import.py --rows 100000 --no-write
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EXCERPT = ROOT.parent / "shared" / "reference" / "aws_cur" / "sample_cur_excerpt.csv"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--clickhouse-url", default="")
    parser.add_argument("--var-dir", default=str(ROOT / "var" / "bench-cost-import"))
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
from cost_sources.models import CostSource  # noqa: E402
from cost_sources.queries import billed_total  # noqa: E402
from cost_sources.services import cost_import_file, cost_source_create  # noqa: E402


def write_cur(path: Path, rows: int) -> Decimal:
    """The CUR-shaped file; returns its UnblendedCost total, summed here as it is written."""
    with open(EXCERPT, newline="") as handle:
        template = list(csv.reader(handle))
    header, body = template[0], template[1:]
    c_id, c_interval = header.index("identity/LineItemId"), header.index("identity/TimeInterval")
    c_start = header.index("lineItem/UsageStartDate")
    c_end = header.index("lineItem/UsageEndDate")
    c_cost = header.index("lineItem/UnblendedCost")
    total = Decimal(0)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for n in range(rows):
            row = list(body[n % len(body)])
            day = 1 + n % 30
            row[c_id] = f"line{n:012d}"
            row[c_interval] = (f"2023-11-{day:02d}T00:00:00Z/2023-11-{day:02d}T23:59:59Z")
            row[c_start] = f"2023-11-{day:02d}T00:00:00.000Z"
            row[c_end] = f"2023-11-{day:02d}T23:59:59.000Z"
            cost = Decimal(n % 9973) * Decimal("1.3E-9") if n % 3 else Decimal(n % 997) / 1000
            row[c_cost] = str(cost)  # 1.3E-9-style for the small ones, as the CUR writes them
            total += cost
            writer.writerow(row)
    return total


def main() -> None:
    call_command("migrate", verbosity=0)
    migrate_eventstore(eventstore.get_store())
    tenant, _ = Tenant.objects.get_or_create(slug=f"bench-costs-{int(time.time())}",
                                             defaults={"name": "Benchmark"})
    source = cost_source_create(tenant=tenant, name="CUR", kind="AWS_CUR")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cur.csv"
        began = time.perf_counter()
        expected = write_cur(path, ARGS.rows)
        size_mb = path.stat().st_size / 2**20
        print(f"Wrote {ARGS.rows:,} rows ({size_mb:.0f} MiB) in "
              f"{time.perf_counter() - began:.0f} s")
        timings = []
        for label in ("first import", "re-import (same file)"):
            load = os.getloadavg()[0]
            began = time.perf_counter()
            with open(path, "rb") as stream:
                run = cost_import_file(source=source, stream=stream, file_name="cur.csv")
            elapsed = time.perf_counter() - began
            timings.append((label, elapsed, run.rows_imported, run.lines_changed, load))
            print(f"{label}: {elapsed:.1f} s, {run.rows_imported:,} rows, "
                  f"{run.lines_changed:,} lines changed")
        billed = billed_total(tenant.slug)
        assert billed == expected, (billed, expected)
    backend = "server" if ARGS.clickhouse_url else "embedded (chdb)"
    lines = [
        f"{ARGS.rows:,} CUR rows ({size_mb:.0f} MiB, 94 columns) into one AWS_CUR source, "
        f"{backend}. Target: the first import ≤ 60 s embedded.", "",
        "| run | seconds | rows/s | rows imported | lines changed | load before |",
        "| --- | --- | --- | --- | --- | --- |",
        *[f"| {label} | {s:.1f} | {rows / s:,.0f} | {rows:,} | {changed:,} | {load:.1f} |"
          for label, s, rows, changed, load in timings],
        "", f"Billed total after both: ${billed.normalize():f}, equal to the sum written "
            "(checked exactly).",
    ]
    if not ARGS.no_write:
        record(f"Cost import: {ARGS.rows:,} CUR rows", lines)
    else:
        print("\n".join(lines))
    CostSource.objects.filter(pk=source.pk).delete()


if __name__ == "__main__":
    main()
