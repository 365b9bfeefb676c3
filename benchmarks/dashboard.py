"""COGS & Margins dashboard benchmark: every endpoint end to end over HTTP, 7D / 30D / 90D.

Generates N events over 90 days (10k customers, 20 products, 4 providers, 16 models, a
REVENUE entry and its SETTLE entry for every event older than a day, plus other tenants'
noise) straight into the ledger with INSERT ... SELECT (the rollup views fill as in
production), then requests every endpoint through Django's test client (URL routing, auth,
DRF, JSON rendering) and reports p50 / p95 per endpoint and period. Figures are appended to
benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/dashboard.py --events 1000000            # embedded (chdb)
    .venv/bin/python benchmarks/dashboard.py --clickhouse-url clickhouse://default@127.0.0.1:19000/bench
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TENANT = "bench-dashboard"
NOISE_TENANTS = ["bench-noise-1", "bench-noise-2", "bench-noise-3"]
DAYS = 90
ENDPOINTS = ["", "/trends", "/cost-composition", "/by-product", "/by-customer", "/by-model",
             "/token-analysis", "/pnl", "/transactions", "/anomalies"]
EXTRA = {"/transactions?provider": ("/transactions", {"provider": "OpenAI"}),
         "/transactions?customerId": ("/transactions", {"customerId": "cust_42"}),
         "/transactions?page=100": ("/transactions", {"page": 100}),
         "/by-customer?limit=100": ("/by-customer", {"limit": 100}),
         "/pnl?limit=100": ("/pnl", {"limit": 100})}
PERIODS = {"7D": 7, "30D": 30, "90D": 90}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000,
                        help="events of the benchmarked tenant (default 10M)")
    parser.add_argument("--noise", type=float, default=0.1,
                        help="other tenants' events, as a share of --events (default 0.1)")
    parser.add_argument("--requests", type=int, default=40, help="timed requests per cell")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--clickhouse-url", default="",
                        help="benchmark a ClickHouse server instead of the embedded engine")
    parser.add_argument("--var-dir", default=str(ROOT / "var" / "bench-dashboard"))
    parser.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--chunk", type=int, default=0,
                        help="events per INSERT ... SELECT (default 1M embedded, 100k server: "
                             "a server insert must finish within the client's 30 s timeout)")
    parser.add_argument("--generate-only", action="store_true",
                        help="write the events and stop (a later run reuses them)")
    parser.add_argument("--views-per-insert", action="store_true",
                        help="feed the ledger's views on every insert, as ingest does, instead "
                             "of once after the load (slower; the reference for the load)")
    return parser.parse_args()


ARGS = parse_args()
from benchmarks.common import disk_used, django_setup, ledger_views_deferred  # noqa: E402

django_setup(ARGS.var_dir, ARGS.clickhouse_url)

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from aforo import eventstore  # noqa: E402
from aforo.eventstore.migrate import migrate_eventstore  # noqa: E402
from aforo.models import Role, Tenant  # noqa: E402
from aforo.runtime import freeze_startup_heap  # noqa: E402
from aforo.tenancy import api_token_create  # noqa: E402

CHUNK = ARGS.chunk or (100_000 if ARGS.clickhouse_url else 1_000_000)
PROVIDERS = ["Anthropic", "OpenAI", "Google", "AWS Bedrock"]
PRODUCT_TYPES = ["API_WITH_AI", "AI_AGENT", "AI_FEATURE", "API", "SAAS", "OTHER"]

# One event per `number`; every value a deterministic hash of it. Prices are integer nano-USD
# per token so costs are exact Decimal(18, 9) values (no floats anywhere).
_EVENT_SELECT = """
SELECT
    %(tenant)s AS tenant_id, {entry_type} AS entry_type,
    concat(toString(entry_type), '_', toString(number)) AS entry_id,
    'ORIGINAL' AS entry_kind, concat('evt_', toString(number)) AS event_id,
    toDateTime(%(start)s + cityHash64(number, 1) %% %(span)s, 'UTC') AS occurred_at,
    occurred_at AS recorded_at,
    concat('cust_', toString(cityHash64(number, 2) %% 10000)) AS customer_id,
    cityHash64(number, 3) %% 20 AS p,
    concat('prod_', toString(p)) AS product_id,
    arrayElement(%(types)s, p %% 6 + 1) AS product_type,
    (p * 3 + cityHash64(number, 4) %% 4) %% 16 AS m,
    arrayElement(%(providers)s, m %% 4 + 1) AS provider, concat('model_', toString(m)) AS model,
    '' AS requested_model, '' AS tool_name, 'GATEWAY' AS source_type, '' AS session_id,
    {event_count} AS event_count,
    toInt64(100 + cityHash64(number, 5) %% 4000) AS in_n,
    toInt64(20 + cityHash64(number, 6) %% 1000) AS out_n,
    {sign} * in_n AS input_tokens, {sign} * out_n AS output_tokens,
    toInt64(0) AS cached_input_tokens, toInt64(0) AS reasoning_tokens,
    toInt64(0) AS reasoning_steps, toInt64(0) AS tool_calls, toDecimal64(1, 9) AS quantity,
    -- a few events cost 10x (the anomalies), 6 %% carry only a total (unclassified)
    (in_n * (m + 1) * 150 + out_n * (m + 1) * 600)
        * if(cityHash64(number, 8) %% 1000 = 0, 10, 1) AS ai_nanos,
    400000 + (in_n + out_n) * 200 AS infra_nanos,
    100000 + intDiv(ai_nanos * 3, 100) AS fee_nanos,
    cityHash64(number, 7) %% 100 < 6 AS unsplit,
    {ai} AS ai_cogs_usd, {infra} AS infra_cogs_usd, {fee} AS fee_cogs_usd,
    {unclassified} AS unclassified_cogs_usd,
    toDecimal64(0, 9) AS rated_revenue_usd,
    {revenue} AS revenue_usd,
    'CARRIED' AS cost_source, toInt8(0) AS unpriced, {invoice} AS invoice_id,
    '' AS invoice_line_id, '' AS attribution_run_id
FROM numbers(%(offset)s, %(count)s)
{where}
"""
_NANOS = "toDecimal64({n}, 9) / 1000000000"
COST = dict(entry_type="'COST'", event_count="toInt32(1)",
            ai="if(unsplit, toDecimal64(0, 9), " + _NANOS.format(n="ai_nanos") + ")",
            infra="if(unsplit, toDecimal64(0, 9), " + _NANOS.format(n="infra_nanos") + ")",
            fee="if(unsplit, toDecimal64(0, 9), " + _NANOS.format(n="fee_nanos") + ")",
            unclassified="if(unsplit, " + _NANOS.format(n="ai_nanos + infra_nanos + fee_nanos")
            + ", toDecimal64(0, 9))",
            revenue="toDecimal64(0, 9)", invoice="''", where="", sign="1")
# Revenue: a price per event by product and customer tier, settled for events over a day old;
# some customers (every 13th) pay under cost.
REVENUE = dict(COST, entry_type="'REVENUE'", event_count="toInt32(0)",
               ai="toDecimal64(0, 9)", infra="toDecimal64(0, 9)", fee="toDecimal64(0, 9)",
               unclassified="toDecimal64(0, 9)",
               revenue=_NANOS.format(
                   n="if(cityHash64(number, 2) %% 10000 %% 13 = 5, 300000, "
                     "(1500000 + (p %% 7) * 900000) * (1 + cityHash64(number, 2) %% 3))"),
               invoice="'inv_bench'", where="WHERE occurred_at < %(settled_before)s")
# What attribution writes beside that revenue: the SETTLE entry that stops the event counting
# as settling (billing.settlement): minus its usage and cost.
SETTLE = dict(COST, entry_type="'SETTLE'", event_count="toInt32(-1)", sign="-1",
              **{bucket: f"-{COST[bucket]}" for bucket in ("ai", "infra", "fee", "unclassified")},
              where=REVENUE["where"])
LEDGER_ORDER = ("tenant_id, entry_id, entry_type, entry_kind, event_id, occurred_at, "
                "recorded_at, customer_id, product_id, product_type, provider, model, "
                "requested_model, tool_name, source_type, session_id, event_count, input_tokens, "
                "output_tokens, cached_input_tokens, reasoning_tokens, reasoning_steps, "
                "tool_calls, quantity, ai_cogs_usd, infra_cogs_usd, fee_cogs_usd, "
                "unclassified_cogs_usd, rated_revenue_usd, revenue_usd, cost_source, unpriced, "
                "invoice_id, invoice_line_id, attribution_run_id")


def generate(tenant: str, events: int, end: date, offset_base: int = 0) -> None:
    start = datetime.combine(end - timedelta(days=DAYS - 1), datetime.min.time(),
                             tzinfo=timezone.utc)
    span = DAYS * 86400
    settled_before = datetime.combine(end - timedelta(days=1), datetime.min.time(),
                                      tzinfo=timezone.utc)
    for offset in range(0, events, CHUNK):
        count = min(CHUNK, events - offset)
        params = {"tenant": tenant, "start": int(start.timestamp()), "span": span,
                  "types": PRODUCT_TYPES, "providers": PROVIDERS,
                  "offset": offset_base + offset, "count": count,
                  "settled_before": settled_before}
        for shape in (COST, REVENUE, SETTLE):
            select = _EVENT_SELECT.format(**shape)
            eventstore.command(
                f"INSERT INTO ledger ({LEDGER_ORDER}) SELECT {LEDGER_ORDER} FROM ({select})",
                params)
        print(f"  {tenant}: {offset + count:,} / {events:,} events", flush=True)


def event_count(tenant: str) -> int:
    rows = eventstore.tenant_query(
        tenant, "SELECT sum(event_count) AS n FROM ledger WHERE tenant_id = %(tenant_id)s "
        "AND entry_type = 'COST'")
    return int(rows[0]["n"] or 0) if rows else 0


def ensure_data(end: date) -> None:
    tenant, _ = Tenant.objects.get_or_create(slug=TENANT, defaults={"name": "Benchmark"})
    have = event_count(TENANT)
    if have == ARGS.events:
        print(f"Reusing {have:,} events of {TENANT}")
        return
    if have:
        sys.exit(f"{TENANT} holds {have:,} events, not {ARGS.events:,}: delete {ARGS.var_dir} "
                 "(or use another --var-dir) and run again")
    began = time.perf_counter()
    store = eventstore.get_store()
    # Views fed once after the load, about 2M events' days at a time (benchmarks.common): the
    # same read models in about half the time of feeding them per insert.
    with (contextlib.nullcontext() if ARGS.views_per_insert or store.cluster
          else ledger_views_deferred(store, [TENANT, *NOISE_TENANTS],
                                     slice_days=max(1, DAYS * 2_000_000 // ARGS.events))):
        generate(TENANT, ARGS.events, end)
        noise = int(ARGS.events * ARGS.noise)
        for n, slug in enumerate(NOISE_TENANTS):
            generate(slug, noise // len(NOISE_TENANTS), end, offset_base=(n + 1) * 10**9)
    spent = time.perf_counter() - began
    total = ARGS.events + noise // len(NOISE_TENANTS) * len(NOISE_TENANTS)
    print(f"Generated {total:,} events in {spent:.0f} s ({total / spent:,.0f} events/s; views "
          f"{'fed per insert' if ARGS.views_per_insert else 'fed after the load'}); "
          f"disk {disk_used(Path(ARGS.var_dir)) / 2**30:.1f} GiB in {ARGS.var_dir}")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[index]


def timed(fn, warmup: int, runs: int) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples), percentile(samples, 0.95)


def machine() -> str:
    from benchmarks.common import cpu_model

    return (f"{platform.node()}: {cpu_model()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}")


def main() -> None:
    call_command("migrate", verbosity=0)
    store = eventstore.get_store()
    migrate_eventstore(store)
    end = datetime.now(timezone.utc).date()
    ensure_data(end)
    if ARGS.generate_only:
        return
    tenant = Tenant.objects.get(slug=TENANT)
    token = api_token_create(tenant=tenant, role=Role.VIEWER, name="benchmark")
    freeze_startup_heap()  # as aforo/asgi.py does in the server
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token.raw}", HTTP_X_TENANT_ID=TENANT)
    base = "/api/v1/analytics/cogs/dashboard"

    results: list[tuple[str, str, float, float]] = []
    cells = [(name, path, {}) for name, path in ((e or "/", e) for e in ENDPOINTS)]
    cells += [(name, path, params) for name, (path, params) in EXTRA.items()]
    for label, days in PERIODS.items():
        period = {"from": (end - timedelta(days=days - 1)).isoformat(), "to": end.isoformat()}
        for name, path, params in cells:
            def request(path=path, params=params, period=period):
                response = client.get(base + path, {**period, **params})
                assert response.status_code == 200, response.content[:300]
                return response
            p50, p95 = timed(request, ARGS.warmup, ARGS.requests)
            results.append((label, name, p50, p95))
            print(f"{label:>4} {name:<28} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms", flush=True)

    # The engine's raw scan rate for comparison: the per-product GROUP BY over the raw ledger.
    from cogs import queries

    raw = {}
    for label, days in PERIODS.items():
        period = queries.Period(first=end - timedelta(days=days - 1), last=end)
        raw[label] = timed(lambda period=period: queries.totals_by(
            tenant, queries.Dimension.PRODUCT, period, use_rollups=False), 2, 15)
        print(f"{label:>4} raw ledger GROUP BY product  p50 {raw[label][0]:7.1f} ms   "
              f"p95 {raw[label][1]:7.1f} ms", flush=True)
    if not ARGS.no_write:
        write_results(store.name, results, raw)


def write_results(mode: str, results, raw) -> None:
    noise = int(ARGS.events * ARGS.noise)
    lines = [
        "",
        f"## COGS dashboard, {mode} mode, {ARGS.events:,} events "
        f"(+{noise:,} other tenants'), {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {machine()}; load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())} "
        "at the end (other processes share the cores). "
        "Django test client end to end (routing, auth, DRF, JSON); "
        f"{ARGS.requests} timed requests per cell after {ARGS.warmup} warm-up. "
        "Targets: aggregate endpoints p95 ≤ 100 ms at 30D embedded; first transactions page "
        "≤ 50 ms.",
        "",
        "| endpoint | " + " | ".join(f"{p} p50 / p95 ms" for p in PERIODS) + " |",
        "| --- | " + " | ".join("---" for _ in PERIODS) + " |",
    ]
    names = list(dict.fromkeys(name for _p, name, _a, _b in results))
    for name in names:
        cells = []
        for label in PERIODS:
            p50, p95 = next((a, b) for p, n, a, b in results if p == label and n == name)
            cells.append(f"{p50:.1f} / {p95:.1f}")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines.append("| raw ledger GROUP BY product (engine scan, no HTTP) | "
                 + " | ".join(f"{raw[p][0]:.1f} / {raw[p][1]:.1f}" for p in PERIODS) + " |")
    with open(ROOT / "benchmarks" / "RESULTS.md", "a") as out:
        out.write("\n".join(lines) + "\n")
    print("Appended to benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
