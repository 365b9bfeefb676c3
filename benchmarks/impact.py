"""Margin Guard impact benchmark: `GET /api/v1/margin-guard/impact` for a 30-day window over N
events (default 10M) of 10,000 customers, embedded (chdb) by default. Target: p95 ≤ 100 ms.

Generates N COST entries over 30 days straight into the ledger with INSERT ... SELECT (feeding
its views, among them migration 0015's read models the report reads), one in 50 a call the
guard downgraded (`requested_model` set), 200 customers' blocked and rate-limited
decisions counted per hour, and 20 enforced throttles (the at-risk accounts), then times the
endpoint through Django's test client (routing, auth, DRF, JSON) for the API's 30 days (whole
UTC days), the last 720 hours (as long, from inside a day to now) and the last hour.

    .venv/bin/python benchmarks/impact.py                      # 10M events, embedded
    .venv/bin/python benchmarks/impact.py --events 1000000 --no-write
    .venv/bin/python benchmarks/impact.py --profile     # where a request's time goes

`--profile` splits each request's wall time into the engine (inside the store's query call),
chdb's decoding, Django's own database queries, the JSON renderer and the rest (Python), with
each event-store query's engine time (benchmarks.common.probe_store).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TENANT = "bench-impact"
DAYS = 30
CUSTOMERS = 10_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--clickhouse-url", default="")
    parser.add_argument("--var-dir", default=str(ROOT / "var" / "bench-impact"))
    parser.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--profile", action="store_true",
                        help="where each request's time goes instead of its percentiles")
    parser.add_argument("--label", default="", help="a note for the section title")
    return parser.parse_args()


ARGS = parse_args()
from benchmarks.common import django_setup  # noqa: E402

django_setup(ARGS.var_dir, ARGS.clickhouse_url)

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from aforo import eventstore  # noqa: E402
from aforo.eventstore.migrate import migrate_eventstore  # noqa: E402
from aforo.models import Role, Tenant  # noqa: E402
from aforo.tenancy import api_token_create  # noqa: E402

CHUNK = 1_000_000 if not ARGS.clickhouse_url else 100_000
COLUMNS = ("tenant_id, entry_id, entry_type, entry_kind, event_id, occurred_at, recorded_at, "
           "customer_id, product_id, product_type, provider, model, requested_model, tool_name, "
           "event_count, input_tokens, output_tokens, ai_cogs_usd, carried_revenue_usd, "
           "revenue_source, cost_source")
SELECT = f"""
SELECT %(tenant)s AS tenant_id, concat('e', toString(number)) AS entry_id, 'COST' AS entry_type,
       'ORIGINAL' AS entry_kind, entry_id AS event_id,
       toDateTime(%(start)s + cityHash64(number, 1) %% %(span)s, 'UTC') AS occurred_at,
       occurred_at AS recorded_at,
       concat('cust_', toString(cityHash64(number, 2) %% {CUSTOMERS})) AS customer_id,
       'prod_chat' AS product_id, 'API_WITH_AI' AS product_type, 'OpenAI' AS provider,
       if(number %% 50 = 0, 'gpt-4o-mini', 'gpt-4o') AS model,
       if(number %% 50 = 0, 'gpt-4o', '') AS requested_model,
       if(number %% 7 = 0, 'batch', '') AS tool_name,
       toInt32(1) AS event_count, toInt64(100 + cityHash64(number, 5) %% 4000) AS input_tokens,
       toInt64(20 + cityHash64(number, 6) %% 1000) AS output_tokens,
       toDecimal64(input_tokens * 2500 + output_tokens * 10000, 9) / 1000000000 AS ai_cogs_usd,
       toDecimal64(input_tokens * 9000, 9) / 1000000000 AS carried_revenue_usd,
       'CARRIED' AS revenue_source, 'CARRIED' AS cost_source
FROM numbers(%(offset)s, %(count)s)
"""


READ_MODELS = ("guard_downgraded", "guard_customer_calls",  # event-store migration 0015
               "guard_downgraded_days", "guard_customer_days")  # and 0016


def ensure_data(now: datetime) -> Tenant:
    from decimal import Decimal

    from ingestion.prices import model_price_create
    from margin_guard.counters import decision_count, decision_counts_flush
    from margin_guard.models import GuardAction, GuardSettings

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
    # Each 1M-row insert leaves a part of the read models spanning every customer, so a
    # customer's rows would sit in ten parts; background merges fold them in a store fed by
    # ingest, here they are folded at once (the ledger is left as generated).
    for table in READ_MODELS:
        began = time.perf_counter()
        eventstore.command(f"OPTIMIZE TABLE {table} FINAL")
        print(f"  {table} merged in {time.perf_counter() - began:.0f} s")
    for model, price_in, price_out in (("gpt-4o", "2.5", "10"), ("gpt-4o-mini", "0.15", "0.6")):
        model_price_create(tenant=tenant, provider="OpenAI", model=model,
                           effective_from=now - timedelta(days=DAYS + 1),
                           input_per_1m=Decimal(price_in), output_per_1m=Decimal(price_out))
    for n in range(200):  # 200 customers refused across the month, hour by hour
        for day in range(0, DAYS, 3):
            at = now - timedelta(days=day, hours=n % 24)
            decision_count(TENANT, f"cust_{n}", "prod_chat", "batch", "BLOCKED", at=at)
            decision_count(TENANT, f"cust_{n}", "prod_chat", "gpt-4o", "RATE_LIMITED", at=at)
    decision_counts_flush()
    for n in range(20):
        GuardAction.objects.create(
            tenant=tenant, customer_id=f"cust_{n}", product_id="", from_level=0, to_level=2,
            mode="ENFORCE", cost_usd=0, revenue_usd=0, events_evaluated=0, reason="bench",
            actor="bench", at=now - timedelta(days=n + 1))
    GuardSettings.objects.update_or_create(tenant=tenant,
                                           defaults={"product_cost_usd_per_month": 499})
    return tenant


RAW_WINDOW = """
SELECT count() AS n, sum(ai_cogs_usd) AS cogs FROM ledger
WHERE tenant_id = %(tenant_id)s AND entry_type = 'COST' AND occurred_at >= %(start)s
  AND occurred_at < %(end)s
"""


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))]


def timed_ms(fn) -> float:
    began = time.perf_counter()
    fn()
    return (time.perf_counter() - began) * 1000


# The API's 30 days are whole days of the tenant's zone (UTC here); the last 720 hours are the
# same length ending now, so they start and end inside a day.
WINDOWS = (("30 days", {}), ("last 720 hours", {"lastHours": 720}),
           ("last hour", {"lastHours": 1}))


def profile(client, raw_ms: list[float], load_before) -> None:
    """Each window's request split into engine, decode, database, render and Python."""
    from benchmarks.common import probe_store, profile_requests, record

    probe_store()
    results = [(label, *profile_requests(client, "/api/v1/margin-guard/impact", params,
                                         warmup=2, requests=ARGS.requests))
               for label, params in WINDOWS]
    raw = statistics.median(raw_ms)
    lines = [
        f"{ARGS.events:,} events (benchmarks/impact.py's set), "
        f"{'server' if ARGS.clickhouse_url else 'embedded'}; Django test client end to end, "
        f"medians of {ARGS.requests} requests after 2 warm-up; load average "
        f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after (2 shared cores). "
        f"Reference: one raw read of the 30 days (count and AI cost), {raw:.0f} ms median.",
        "",
        "| window | total ms | ÷ raw | engine | decode | Python | database | render | queries |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(f"| {label} | {med['total']:.1f} | {med['total'] / raw:.2f} | {med['engine']:.1f} | "
          f"{med['decode']:.1f} | {med['python']:.1f} | {med['db']:.1f} | {med['render']:.1f} "
          f"| {med['queries']:.0f} |" for label, med, _size, _slowest in results),
        "",
        "Engine time per event-store query (ms per request, median):",
        "",
    ]
    for label, _med, _size, slowest in results:
        lines.append(f"- {label}: " + "; ".join(
            f"{statistics.median(t):.1f} ms `{sql[:80]}…`"
            for sql, t in sorted(slowest.items(), key=lambda kv: -sum(kv[1]))))
    title = f"Margin Guard impact profile, {ARGS.events:,} events" + (
        f": {ARGS.label}" if ARGS.label else "")
    if ARGS.no_write:
        print("\n".join(lines))
    else:
        record(title, lines)


def main() -> None:
    call_command("migrate", verbosity=0)
    migrate_eventstore(eventstore.get_store())
    now = datetime.now(timezone.utc).replace(microsecond=0)
    tenant = ensure_data(now)
    load_before = os.getloadavg()
    token = api_token_create(tenant=tenant, role=Role.VIEWER, name="benchmark")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token.raw}", HTTP_X_TENANT_ID=TENANT)
    from margin_guard import impact

    # The reference: one raw read of the window (events and AI cost of its COST entries).
    end = datetime.now(timezone.utc)
    start = end - timedelta(days=DAYS)
    raw_ms = [timed_ms(lambda: eventstore.tenant_query(TENANT, RAW_WINDOW,
                                                       {"start": start, "end": end}))
              for _ in range(ARGS.requests)]
    if ARGS.profile:
        profile(client, raw_ms, load_before)
        return
    from aforo.periods import period_default

    period = period_default()  # the API's 30 days
    start, end = period.start_at, period.end_at
    parts = {
        "model switch read": lambda: impact._model_switch(
            tenant, impact.ImpactReport(start=start, end=end)),
        "refused calls' valuation": lambda: impact._refused(
            tenant, impact.ImpactReport(start=start, end=end)),
        "at-risk accounts": lambda: impact._accounts(tenant, start, end),
    }
    part_ms = {label: statistics.median(timed_ms(fn) for _ in range(5))
               for label, fn in parts.items()}
    cells = {}
    for label, params in WINDOWS:
        answer = client.get("/api/v1/margin-guard/impact", params)
        assert answer.status_code == 200, answer.content[:300]
        cells[label] = [timed_ms(lambda params=params: client.get(
            "/api/v1/margin-guard/impact", params)) for _ in range(ARGS.requests)]
    load_after = os.getloadavg()
    from benchmarks.common import machine, record

    lines = [
        f"{ARGS.events:,} events of {CUSTOMERS:,} customers over {DAYS} days (one in 50 a "
        "downgraded call), 200 customers' hourly block and rate-limit counts, 20 at-risk "
        f"accounts; {'server ' + ARGS.clickhouse_url if ARGS.clickhouse_url else 'embedded'}"
        f"; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after (2 shared "
        "cores). Target: p95 ≤ 100 ms for 30 days.",
        "",
        "| request | p50 ms | p95 ms | × reference (p95) |",
        "| --- | --- | --- | --- |",
        f"| reference: one raw read of the 30 days (count and AI cost) | "
        f"{statistics.median(raw_ms):.0f} | {percentile(raw_ms, 0.95):.0f} | 1.00 |",
        *(f"| {label} | {statistics.median(ms):.0f} | {percentile(ms, 0.95):.0f} | "
          f"{percentile(ms, 0.95) / percentile(raw_ms, 0.95):.2f} |"
          for label, ms in cells.items()),
        "",
        "Its parts for the API's 30 days (median of 5, called directly): " + "; ".join(
            f"{label} {ms:.0f} ms" for label, ms in part_ms.items()) + ".",
    ]
    print(machine())
    if ARGS.no_write:
        print("\n".join(lines))
    else:
        record(f"Margin Guard impact report, {ARGS.events:,} events", lines)


if __name__ == "__main__":
    main()
