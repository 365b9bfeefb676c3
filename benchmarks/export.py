"""Export benchmark: the ledger of a period streamed as CSV and as Parquet (no gzip), rows per
second and RSS growth, and how long a dashboard query waits while an export runs.

Generates N COST entries over 30 days straight into the ledger with INSERT ... SELECT (as
benchmarks/dashboard.py does), then exports the whole period through exports.files (the code
the API and manage.py export_ledger run), counting the bytes instead of keeping them. While
each export runs, a second thread asks for the dashboard headline every 200 ms; its worst
latency says whether the embedded store stays answerable. RSS is sampled every 10 ms by a
thread; its growth is the peak over the RSS at the export's start (as before, when the RSS
was read only at each chunk's end, which is also given). Figures are appended to
benchmarks/RESULTS.md.

With --compare, each format is also exported the way it was before the read-ahead (one
thread reading then encoding, never purging the engine's freed memory), and with read-ahead
and the purge every 8 chunks alone and together, alternating with the code as it chooses
--rounds times in the same process, so all meet the same load.

    .venv/bin/python benchmarks/export.py --events 10000000
    .venv/bin/python benchmarks/export.py --events 3000000 --compare --rounds 2
    .venv/bin/python benchmarks/export.py --events 10000000 --generate-only  # data only
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TENANT = "bench-export"
DAYS = 30

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--events", type=int, default=10_000_000)
parser.add_argument("--chunk-rows", type=int, default=50_000)
parser.add_argument("--var-dir", default=str(ROOT / "var" / "bench-export"))
parser.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
parser.add_argument("--compare", action="store_true",
                    help="also export sequentially without purging (the code before), "
                         "alternating with the current code")
parser.add_argument("--rounds", type=int, default=1)
parser.add_argument("--generate-only", action="store_true",
                    help="generate the data (for benchmarks/analytics.py) and stop")
ARGS = parser.parse_args()

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aforo.settings")
os.environ.setdefault("AFORO_VAR_DIR", ARGS.var_dir)
os.environ.pop("CLICKHOUSE_URL", None)  # the embedded engine

import django  # noqa: E402

django.setup()

from aforo import eventstore  # noqa: E402
from aforo.eventstore.migrate import migrate_eventstore  # noqa: E402
from aforo.periods import Period  # noqa: E402

END = date(2026, 6, 30)
PERIOD = Period(first=END - timedelta(days=DAYS - 1), last=END)

_SELECT = """
SELECT %(tenant)s AS tenant_id, concat('evt_', toString(number)) AS entry_id, 'COST' AS entry_type,
       'ORIGINAL' AS entry_kind, entry_id AS event_id,
       toDateTime(%(start)s + cityHash64(number, 1) %% %(span)s, 'UTC') AS occurred_at,
       occurred_at AS recorded_at,
       concat('cust_', toString(cityHash64(number, 2) %% 10000)) AS customer_id,
       concat('prod_', toString(cityHash64(number, 3) %% 20)) AS product_id,
       'API_WITH_AI' AS product_type, 'OpenAI' AS provider,
       concat('model_', toString(cityHash64(number, 4) %% 16)) AS model,
       concat('s_', toString(intDiv(number, 8))) AS session_id,
       if(number %% 3 = 0, 'search', '') AS tool_name, 'GATEWAY' AS source_type,
       toInt32(1) AS event_count, toInt64(100 + cityHash64(number, 5) %% 4000) AS input_tokens,
       toInt64(20 + cityHash64(number, 6) %% 1000) AS output_tokens,
       toDecimal64(input_tokens * 2500 + output_tokens * 10000, 9) / 1000000000 AS ai_cogs_usd,
       toDecimal64(400000, 9) / 1000000000 AS infra_cogs_usd
FROM numbers(%(offset)s, %(count)s)
"""
_COLUMNS = ("tenant_id, entry_id, entry_type, entry_kind, event_id, occurred_at, recorded_at, "
            "customer_id, product_id, product_type, provider, model, session_id, tool_name, "
            "source_type, event_count, input_tokens, output_tokens, ai_cogs_usd, infra_cogs_usd")


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def generate(events: int) -> None:
    have = int(eventstore.tenant_query(
        TENANT, "SELECT count() AS n FROM ledger WHERE tenant_id = %(tenant_id)s")[0]["n"])
    if have == events:
        print(f"reusing {have:,} entries")
        return
    eventstore.command("ALTER TABLE ledger DELETE WHERE tenant_id = %(t)s "
                       "SETTINGS mutations_sync = 1", {"t": TENANT})
    start = datetime.combine(PERIOD.first, datetime.min.time(), tzinfo=timezone.utc)
    for offset in range(0, events, 1_000_000):
        count = min(1_000_000, events - offset)
        eventstore.command(f"INSERT INTO ledger ({_COLUMNS}) SELECT {_COLUMNS} FROM ({_SELECT})",
                           {"tenant": TENANT, "start": int(start.timestamp()),
                            "span": DAYS * 86400, "offset": offset, "count": count})
        print(f"  {offset + count:,} / {events:,}", flush=True)


class RssSampler:
    """The process's peak RSS while a block runs, sampled every 10 ms in a thread."""

    def __enter__(self) -> RssSampler:
        self.base = self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


# variant name: (read ahead, purge the engine's freed memory every this many chunks, 0 never;
# None: as the code chooses per format); the first is the code as it is, the last the code
# before the read-ahead and the purge.
VARIANTS = {"as the code chooses": (None, None), "read-ahead, no purge": (True, 0),
            "read-ahead, purge every 8": (True, 8), "sequential, purge every 8": (False, 8),
            "sequential, no purge (before)": (False, 0)}


def export_once(fmt, variant: str = "as the code chooses") -> dict:
    from aforo.models import Tenant
    from cogs import queries
    from exports.files import ledger_file

    read_ahead, purge_every = VARIANTS[variant]
    tenant = Tenant(slug=TENANT, name=TENANT)
    stop = threading.Event()
    waits: list[float] = []

    def dashboard() -> None:
        while not stop.is_set():
            began = time.perf_counter()
            queries.overview(tenant, PERIOD)
            waits.append(time.perf_counter() - began)
            time.sleep(0.2)

    rows = 0
    chunk_end_peak = 0.0

    def progress(written: int) -> None:
        nonlocal rows, chunk_end_peak
        rows = written
        chunk_end_peak = max(chunk_end_peak, rss_mb())

    size = 0
    watcher = threading.Thread(target=dashboard, daemon=True)
    with RssSampler() as rss:
        began, cpu_began = time.perf_counter(), time.process_time()
        watcher.start()
        for piece in ledger_file(tenant=tenant, period=PERIOD, fmt=fmt,
                                 chunk_rows=ARGS.chunk_rows, progress=progress,
                                 read_ahead=read_ahead, purge_every=purge_every).content:
            size += len(piece)
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_began
        stop.set()
        watcher.join()
    waits.sort()
    return {"rows": rows, "seconds": elapsed, "rows_per_s": rows / elapsed, "cpu_s": cpu,
            "mb": size / 1e6, "rss_growth_mb": rss.peak - rss.base, "variant": variant,
            "rss_chunk_end_growth_mb": max(chunk_end_peak, rss.base) - rss.base,
            "dashboard_p50_ms": waits[len(waits) // 2] * 1000 if waits else 0,
            "dashboard_max_ms": waits[-1] * 1000 if waits else 0, "dashboard_n": len(waits)}


def raw_export(fmt) -> dict:
    """The reference: the engine alone writes the same rows (the same expressions, in the same
    format) to /dev/null in one query, no Python in between."""
    from exports import queries

    engine_format = {"csv": "CSV", "parquet": "Parquet"}[fmt.value]
    native = "ArrowStream" if fmt.value == "parquet" else ""
    sql, params = queries._select(queries.ledger_period_query(TENANT, PERIOD),
                                  queries.ledger_columns(), native).sql()
    began = time.perf_counter()
    eventstore.command(f"{sql} INTO OUTFILE '/dev/null' TRUNCATE FORMAT {engine_format}",
                       params)
    return {"seconds": time.perf_counter() - began}


def main() -> None:
    from exports.formats import ExportFormat

    migrate_eventstore(eventstore.get_store())
    generate(ARGS.events)
    if ARGS.generate_only:
        return
    # A first export warms the engine's caches and the allocators' arenas (RSS rises once, by
    # ~200 MB embedded, then stays); what is measured after is the growth per export.
    from aforo.models import Tenant
    from exports.files import ledger_file

    for fmt in (ExportFormat.CSV, ExportFormat.PARQUET):
        for _piece in ledger_file(tenant=Tenant(slug=TENANT, name=TENANT), period=PERIOD,
                                  fmt=fmt, chunk_rows=ARGS.chunk_rows).content:
            pass
    results = []
    loads = [os.getloadavg()[0]]
    variants = list(VARIANTS) if ARGS.compare else ["as the code chooses"]
    for round_ in range(ARGS.rounds):
        for fmt in (ExportFormat.CSV, ExportFormat.PARQUET):
            raw = raw_export(fmt)
            # the order alternates per round, so neither variant always runs second
            for variant in (variants if round_ % 2 == 0 else variants[::-1]):
                figures = export_once(fmt, variant)
                loads.append(os.getloadavg()[0])
                figures.update(format=fmt.value, round=round_ + 1, raw_s=raw["seconds"],
                               raw_rows_per_s=figures["rows"] / raw["seconds"],
                               load=loads[-1])
                results.append(figures)
                print(f"round {round_ + 1} {fmt.value} {variant}: engine alone to /dev/null "
                      f"{raw['seconds']:.1f} s = {figures['raw_rows_per_s']:,.0f} rows/s; "
                      f"export {figures['rows']:,} rows in {figures['seconds']:.1f} s = "
                      f"{figures['rows_per_s']:,.0f} rows/s "
                      f"({figures['rows_per_s'] / figures['raw_rows_per_s']:.2f}x; "
                      f"CPU {figures['cpu_s']:.1f} s), {figures['mb']:,.0f} MB, RSS +"
                      f"{figures['rss_growth_mb']:.0f} MB (at chunk ends +"
                      f"{figures['rss_chunk_end_growth_mb']:.0f} MB), dashboard p50 "
                      f"{figures['dashboard_p50_ms']:.0f} ms max "
                      f"{figures['dashboard_max_ms']:.0f} ms ({figures['dashboard_n']} asked), "
                      f"load {loads[-1]:.1f}", flush=True)
    if ARGS.no_write:
        return
    lines = [f"\n## Export ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, embedded, "
             f"{ARGS.events:,} entries, chunks of {ARGS.chunk_rows:,}, "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores shared, "
             f"load average {min(loads):.1f} to {max(loads):.1f})\n",
             "| format | code | round | rows | seconds | CPU s (all threads) | rows/s "
             "| engine alone rows/s | × engine alone | file MB | RSS growth MB (10 ms samples) "
             "| RSS growth MB (at chunk ends) "
             "| dashboard p50 ms during | dashboard max ms during | load after |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
             "| --- | --- |"]
    for f in results:
        lines.append(f"| {f['format']} | {f['variant']} | {f['round']} | {f['rows']:,} | "
                     f"{f['seconds']:.1f} | {f['cpu_s']:.1f} | "
                     f"{f['rows_per_s']:,.0f} | {f['raw_rows_per_s']:,.0f} | "
                     f"{f['rows_per_s'] / f['raw_rows_per_s']:.2f} "
                     f"| {f['mb']:,.0f} | {f['rss_growth_mb']:.0f} | "
                     f"{f['rss_chunk_end_growth_mb']:.0f} | "
                     f"{f['dashboard_p50_ms']:.0f} | {f['dashboard_max_ms']:.0f} | "
                     f"{f['load']:.1f} |")
    with open(ROOT / "benchmarks" / "RESULTS.md", "a") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
