"""Intelligence benchmark: every detector's hourly run over 10M events of 10,000 customers, and
the forecast endpoint's latency, embedded (chdb) by default.

Generates N COST entries over 30 days straight into the ledger with INSERT ... SELECT (the
rollup views, ledger_hourly among them, fill as in production), 20 budgets, then times:

- the hourly run of all detectors for the tenant (USAGE_ANOMALY and COST_SPIKE over two
  hours each, CHURN_RISK over two weeks, QUOTA_PACING over the budgets), the first run and a
  re-run (which stores nothing new);
- the same usage-anomaly baseline query over the raw ledger, the reference that decided the
  hourly rollup (migration 0009);
- the hourly job's forecast step (the tenant and each product with history, every horizon);
- `GET /api/v1/analytics/cogs/forecast` through Django's test client (routing, auth, DRF,
  JSON) as a fresh web process would meet it (no fit of its own kept): after the hourly job
  (the stored fit), and with nothing stored (the request fits the scope); customers asked for
  the first time (fitted by the request), then after the next hourly run.

    .venv/bin/python benchmarks/signals.py                      # 10M events, embedded
    .venv/bin/python benchmarks/signals.py --events 1000000 --no-write
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TENANT = "bench-signals"
DAYS = 30
CUSTOMERS = 10_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3, help="timed detector runs")
    parser.add_argument("--requests", type=int, default=30, help="forecast requests per cell")
    parser.add_argument("--clickhouse-url", default="")
    parser.add_argument("--var-dir", default=str(ROOT / "var" / "bench-signals"))
    parser.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    return parser.parse_args()


ARGS = parse_args()
from benchmarks.common import django_setup  # noqa: E402

django_setup(ARGS.var_dir, ARGS.clickhouse_url)

from django.core.cache import cache  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from aforo import eventstore  # noqa: E402
from aforo.eventstore.migrate import migrate_eventstore  # noqa: E402
from aforo.models import Role, Tenant  # noqa: E402
from aforo.runtime import freeze_startup_heap  # noqa: E402
from aforo.tenancy import api_token_create  # noqa: E402

CHUNK = 1_000_000 if not ARGS.clickhouse_url else 100_000
COLUMNS = ("tenant_id, entry_id, entry_type, entry_kind, event_id, occurred_at, recorded_at, "
           "customer_id, product_id, product_type, provider, model, event_count, input_tokens, "
           "output_tokens, tool_calls, reasoning_steps, ai_cogs_usd, carried_revenue_usd, "
           "revenue_source, cost_source")
# One event per number, values a deterministic hash of it; a customer's traffic follows a
# daily curve (more by day than by night), so hour-of-day baselines are meaningful.
SELECT = f"""
SELECT %(tenant)s AS tenant_id, concat('e', toString(number)) AS entry_id, 'COST' AS entry_type,
       'ORIGINAL' AS entry_kind, entry_id AS event_id,
       toDateTime(%(start)s + cityHash64(number, 1) %% %(span)s, 'UTC') AS occurred_at,
       occurred_at AS recorded_at,
       concat('cust_', toString(cityHash64(number, 2) %% {CUSTOMERS})) AS customer_id,
       concat('prod_', toString(cityHash64(number, 3) %% 20)) AS product_id,
       'API_WITH_AI' AS product_type, 'OpenAI' AS provider,
       concat('model_', toString(cityHash64(number, 4) %% 8)) AS model,
       toInt32(1) AS event_count, toInt64(100 + cityHash64(number, 5) %% 4000) AS input_tokens,
       toInt64(20 + cityHash64(number, 6) %% 1000) AS output_tokens,
       toInt64(cityHash64(number, 7) %% 3) AS tool_calls, toInt64(0) AS reasoning_steps,
       toDecimal64(input_tokens * 2500 + output_tokens * 10000, 9) / 1000000000 AS ai_cogs_usd,
       toDecimal64(input_tokens * 9000, 9) / 1000000000 AS carried_revenue_usd,
       'CARRIED' AS revenue_source, 'CARRIED' AS cost_source
FROM numbers(%(offset)s, %(count)s)
"""


def ensure_data(now: datetime) -> Tenant:
    tenant, _ = Tenant.objects.get_or_create(slug=TENANT, defaults={"name": "Benchmark"})
    rows = eventstore.tenant_query(TENANT, "SELECT count() AS n FROM ledger "
                                   "WHERE tenant_id = %(tenant_id)s")
    have = int(rows[0]["n"]) if rows else 0
    if have == ARGS.events:
        print(f"Reusing {have:,} events")
        return tenant
    if have:
        sys.exit(f"{TENANT} holds {have:,} events: delete {ARGS.var_dir} and run again")
    start = int((now - timedelta(days=DAYS)).timestamp())
    began = time.perf_counter()
    for offset in range(0, ARGS.events, CHUNK):
        count = min(CHUNK, ARGS.events - offset)
        eventstore.command(f"INSERT INTO ledger ({COLUMNS}) SELECT {COLUMNS} FROM ({SELECT})",
                           {"tenant": TENANT, "start": start, "span": DAYS * 86400 - 60,
                            "offset": offset, "count": count})
        print(f"  {offset + count:,} / {ARGS.events:,} events", flush=True)
    print(f"Generated in {time.perf_counter() - began:.0f} s")
    from budgets.models import CostBudget
    from budgets.services import budget_create

    if not CostBudget.objects.filter(tenant=tenant).exists():
        from aforo.catalog import customer_create

        for n in range(20):
            customer_create(tenant=tenant, external_id=f"cust_{n}", name=f"Customer {n}")
            budget_create(tenant=tenant, name=f"Budget {n}", period="MONTHLY",
                          cap_usd=Decimal(50 + 10 * n), customer_id=f"cust_{n}")
    return tenant


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))]


def timed_ms(fn) -> float:
    began = time.perf_counter()
    fn()
    return (time.perf_counter() - began) * 1000


RAW_BASELINE = """
SELECT customer_id, countIf(hour = %(h0)s) AS now_n, count() AS n FROM (
    SELECT customer_id, toStartOfHour(occurred_at) AS hour, sum(event_count) AS events,
           sum(input_tokens) AS tokens_in
    FROM ledger WHERE tenant_id = %(tenant_id)s AND entry_type = 'COST'
      AND toStartOfHour(occurred_at) IN %(hours)s
    GROUP BY customer_id, hour) GROUP BY customer_id
"""


def main() -> None:
    from intelligence.detectors import DETECTORS, detectors_run, last_complete_hours
    from intelligence.models import Signal

    call_command("migrate", verbosity=0)
    migrate_eventstore(eventstore.get_store())
    now = datetime.now(timezone.utc).replace(microsecond=0)
    tenant = ensure_data(now)
    load_before = os.getloadavg()
    Signal.objects.filter(tenant=tenant).delete()

    # The reference: the usage baseline's GROUP BY over the raw ledger (15 hours of 30 days).
    hours = [last_complete_hours(now)[-1] - timedelta(days=d) for d in range(15)]
    raw_ms = [timed_ms(lambda: eventstore.tenant_query(
        TENANT, RAW_BASELINE, {"h0": hours[0], "hours": tuple(hours)}))
        for _ in range(ARGS.runs)]

    per_kind = {}
    for kind in DETECTORS:
        per_kind[kind] = statistics.median(
            timed_ms(lambda kind=kind: detectors_run(tenant=tenant, now=now, kinds=(kind,)))
            for _ in range(ARGS.runs))
    Signal.objects.filter(tenant=tenant).delete()
    first = timed_ms(lambda: detectors_run(tenant=tenant, now=now))
    stored = Signal.objects.filter(tenant=tenant).count()
    reruns = [timed_ms(lambda: detectors_run(tenant=tenant, now=now))
              for _ in range(ARGS.runs)]
    assert Signal.objects.filter(tenant=tenant).count() == stored  # idempotent

    token = api_token_create(tenant=tenant, role=Role.VIEWER, name="benchmark")
    freeze_startup_heap()
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token.raw}", HTTP_X_TENANT_ID=TENANT)
    from intelligence.forecast import _fits, forecasts_refresh
    from intelligence.models import ForecastFit

    def ask(params):
        return timed_ms(lambda: client.get("/api/v1/analytics/cogs/forecast", params))

    def scope_of(params):
        return dict(tenant=tenant, product_id=params.get("productId", ""),
                    customer_id=params.get("customerId", ""), horizon=params["horizon"])

    client.get("/api/v1/analytics/cogs/forecast", {"horizon": "30d"})  # imports statsmodels
    # The hourly job's forecast step: the tenant and each product with history, all horizons.
    ForecastFit.objects.filter(tenant=tenant).delete()
    _fits.clear()
    refresh_ms = timed_ms(lambda: forecasts_refresh(tenant, now=datetime.now(timezone.utc)))
    refreshed = ForecastFit.objects.filter(tenant=tenant).count()
    forecast_cells = {}
    for label, params in (("tenant, 30d", {"horizon": "30d"}),
                          ("tenant, 90d", {"horizon": "90d"}),
                          ("tenant, 12m", {"horizon": "12m"}),
                          ("product, 30d", {"horizon": "30d", "productId": "prod_3"})):
        served, fitted = [], []
        for _ in range(ARGS.requests):
            cache.clear()
            _fits.clear()  # nothing of this process's fits helps: as a fresh web worker
            served.append(ask(params))  # after the hourly job: the stored fit
            ForecastFit.objects.filter(**scope_of(params)).delete()
            _fits.clear()
            fitted.append(ask(params))  # nothing stored: fitted by the request
        forecast_cells[label] = (served, fitted)
    first_ever = [ask({"horizon": "30d", "customerId": f"cust_{n}"})  # a new customer each time
                  for n in range(ARGS.requests)]
    # the next hourly run keeps the customers just asked for fitted
    refresh_customers_ms = timed_ms(
        lambda: forecasts_refresh(tenant, now=datetime.now(timezone.utc)))
    _fits.clear()
    customers_served = [ask({"horizon": "30d", "customerId": f"cust_{n}"})
                        for n in range(ARGS.requests)]
    forecast_cells["customer, 30d (a new customer each request)"] = (customers_served,
                                                                     first_ever)
    load_after = os.getloadavg()

    from benchmarks.common import machine, record

    reference = statistics.median(raw_ms)
    first_s = first / 1000
    lines = [
        f"{ARGS.events:,} events of {CUSTOMERS:,} customers over {DAYS} days, 20 budgets, "
        f"{'server ' + ARGS.clickhouse_url if ARGS.clickhouse_url else 'embedded (chdb)'}; "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
        "(2 shared cores). Target: all detectors ≤ 10 s per hourly run embedded; forecast "
        "p95 ≤ 300 ms.",
        "",
        "| run | median ms | × reference |",
        "| --- | --- | --- |",
        f"| reference: the usage baseline GROUP BY over the raw ledger | {reference:.0f} | 1.00 |",
        *(f"| {kind} alone | {ms:.0f} | {ms / reference:.2f} |" for kind, ms in per_kind.items()),
        f"| all detectors, first run ({stored} signals stored) | {first:.0f} | "
        f"{first / reference:.2f} |",
        f"| all detectors, re-run (nothing new) | {statistics.median(reruns):.0f} | "
        f"{statistics.median(reruns) / reference:.2f} |",
        "",
        "| forecast request (a fresh process each time) | after the hourly job: p50 / p95 ms "
        "| × reference (p95) | nothing stored, fitted by the request: p50 / p95 ms |",
        "| --- | --- | --- | --- |",
        *(f"| {label} | {statistics.median(c):.0f} / {percentile(c, 0.95):.0f} | "
          f"{percentile(c, 0.95) / reference:.2f} | "
          f"{statistics.median(w):.0f} / {percentile(w, 0.95):.0f} |"
          for label, (c, w) in forecast_cells.items()),
        "",
        f"All detectors' hourly run: {first_s:.2f} s (target ≤ 10 s). The job's forecast step: "
        f"{refresh_ms / 1000:.2f} s for {refreshed} forecasts (the tenant and each product with "
        f"history, every horizon); {refresh_customers_ms / 1000:.2f} s with the "
        f"{ARGS.requests} customers asked for since.",
    ]
    print(machine())
    if ARGS.no_write:
        print("\n".join(lines))
    else:
        record(f"Intelligence: detectors and forecast, {ARGS.events:,} events", lines)


if __name__ == "__main__":
    main()
