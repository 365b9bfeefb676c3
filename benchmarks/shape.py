"""Shape benchmark: the endpoints issue 13's shape changes touched, before and after, in one run.

The catalog's customer and product views, the budget, alert-rule and guard-policy lists (their
destinations now in notifications.Destination), and the two endpoints whose `limit`/`top`
parsing moved to aforo.pagination.int_param, on a small dataset (a few hundred customers, a few
thousand events). Each endpoint's p50 is reported as a ratio to a raw query measured in the same
process: a raw SQL SELECT on the Django database for the Django-served lists, the raw ledger
GROUP BY product for the ledger reads. Rounds alternate between the two trees (each its own
process and store), so the machine's load falls on both alike.

    .venv/bin/python benchmarks/shape.py --before /path/to/a/checkout/of/the/base
    .venv/bin/python benchmarks/shape.py --tree . --once      # one tree, no RESULTS.md
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TENANT = "bench-shape"
CUSTOMERS, PRODUCTS, OWNERS = 300, 20, 25
EVENTS = 3000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="a checkout of the base to compare with")
    parser.add_argument("--tree", help="measure this checkout once (a worker)")
    parser.add_argument("--once", action="store_true", help="print, write nothing")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per tree")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per cell")
    parser.add_argument("--var-dir", default=str(ROOT / "var" / "bench-shape"))
    parser.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    return parser.parse_args()


def _common():
    """This tree's benchmarks/common.py, whichever tree the worker imports the app from."""
    spec = importlib.util.spec_from_file_location("shape_common",
                                                  ROOT / "benchmarks" / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _timed(fn, runs: int) -> tuple[float, float]:
    """p50 and p95 of `runs` calls, ms, after three untimed ones."""
    for _ in range(3):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), statistics.quantiles(samples, n=20)[-1]


def _p50(fn, runs: int) -> float:
    return _timed(fn, runs)[0]


def _seed(now: datetime) -> None:
    from aforo import catalog, tenancy
    from aforo.models import Tenant
    from budgets import services as budgets
    from ingestion.services import events_ingest_dicts
    from margin_guard.services import guard_policy_create

    if Tenant.objects.filter(slug=TENANT).exists():
        return
    tenant = tenancy.tenant_create(slug=TENANT)
    for i in range(CUSTOMERS):
        catalog.customer_create(tenant=tenant, external_id=f"cust_{i}", name=f"Customer {i}")
    for i in range(PRODUCTS):
        catalog.product_create(tenant=tenant, external_id=f"prod_{i}", name=f"Product {i}")
    events = [{"eventId": f"e{i}", "occurredAt": (now - timedelta(minutes=i)).isoformat(),
               "customerId": f"cust_{i % CUSTOMERS}", "productId": f"prod_{i % PRODUCTS}",
               "provider": "OpenAI", "model": "gpt-4o", "cogsUsd": "0.01",
               "revenueUsd": "0.02"} for i in range(EVENTS)]
    for start in range(0, EVENTS, 500):
        events_ingest_dicts(tenant=tenant, events=events[start:start + 500], now=now)
    for i in range(OWNERS):
        budgets.budget_create(tenant=tenant, name=f"b{i}", period="MONTHLY", cap_usd=100,
                              notify_channel="EMAIL", notify_destination=f"ops{i}@example.com")
        budgets.alert_rule_create(tenant=tenant, name=f"r{i}", metric="COST", comparison="GT",
                                  threshold=1, window="24h", channel="EMAIL",
                                  destination=f"ops{i}@example.com")
        guard_policy_create(tenant=tenant, name=f"p{i}", scope="CUSTOMER",
                            customer_id=f"cust_{i}", mode="DRY_RUN", notifications=[
                                {"channel": "EMAIL", "destination": f"a{i}@example.com"},
                                {"channel": "EMAIL", "destination": f"b{i}@example.com"}])


def worker(tree: Path, var_dir: str, requests: int) -> dict:
    """Measure one tree: {cell: (p50 ms, ratio to its raw query, p95 ms)}."""
    sys.path.insert(0, str(tree))
    _common().django_setup(var_dir)
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from aforo import eventstore
    from aforo.eventstore.migrate import migrate_eventstore
    from aforo.models import Customer, Role, Tenant
    from aforo.tenancy import api_token_create
    from cogs import queries

    call_command("migrate", verbosity=0)
    migrate_eventstore(eventstore.get_store())
    now = datetime.now(timezone.utc)
    _seed(now)
    tenant = Tenant.objects.get(slug=TENANT)
    token = api_token_create(tenant=tenant, role=Role.OWNER, name="benchmark")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token.raw}", HTTP_X_TENANT_ID=TENANT)
    table = Customer._meta.db_table

    def raw_sql():
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id, external_id, name, tier FROM {table} "  # noqa: S608
                           "WHERE tenant_id = %s ORDER BY id", [tenant.pk])
            cursor.fetchall()

    today = now.date()
    period = queries.Period(first=today - timedelta(days=6), last=today)
    window = {"from": period.first.isoformat(), "to": period.last.isoformat()}
    references = {
        "sql": _p50(raw_sql, requests),
        "ledger": _p50(lambda: queries.totals_by(tenant, queries.Dimension.PRODUCT, period,
                                                 use_rollups=False), requests),
    }
    cells = [
        ("GET /customers", "sql", "/api/v1/customers", {}),
        ("GET /customers/{id}", "sql", "/api/v1/customers/cust_7", {}),
        ("GET /products", "sql", "/api/v1/products", {}),
        ("GET /cogs/budgets", "sql", "/api/v1/cogs/budgets", {}),
        ("GET /cogs/alert-rules", "sql", "/api/v1/cogs/alert-rules", {}),
        ("GET /margin-guard/policies", "sql", "/api/v1/margin-guard/policies", {}),
        ("GET dashboard/by-customer?limit=10", "ledger",
         "/api/v1/analytics/cogs/dashboard/by-customer", {**window, "limit": 10}),
        ("GET usage/by-billable-unit?top=5", "ledger",
         "/api/v1/analytics/usage/by-billable-unit", {**window, "top": 5}),
    ]
    results = {f"raw {name}": (p50, 1.0, p50) for name, p50 in references.items()}
    for name, reference, path, params in cells:
        def request(path=path, params=params):
            response = client.get(path, params)
            assert response.status_code == 200, (path, response.status_code, response.content)
        p50, p95 = _timed(request, requests)
        results[name] = (p50, p50 / references[reference], p95)
    return results


def main() -> None:
    args = parse_args()
    if args.tree:
        print(json.dumps(worker(Path(args.tree).resolve(), args.var_dir, args.requests)))
        return
    trees = {"before": Path(args.before).resolve(), "after": ROOT}
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for round_ in range(args.rounds):
        for label, tree in trees.items():
            answer = subprocess.run(
                [sys.executable, __file__, "--tree", str(tree), "--requests", str(args.requests),
                 "--var-dir", f"{args.var_dir}-{label}"],
                check=True, capture_output=True, text=True, cwd=tree)
            runs[label].append(json.loads(answer.stdout.strip().splitlines()[-1]))
            print(f"round {round_ + 1} {label} done", flush=True)
    cells = list(runs["after"][0])
    base = subprocess.run(["git", "-C", str(trees["before"]), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    lines = [f"Before {base}, after {head} (plus any uncommitted change), alternating "
             f"{args.rounds} rounds per tree, {args.requests} requests a cell, embedded "
             f"(chdb + SQLite), {CUSTOMERS} customers, {EVENTS:,} events, {OWNERS} budgets, "
             "rules and policies each. Median over rounds of each round's p50; the ratio is to "
             "the raw query of the same round (a SQL SELECT of the tenant's 300 customers, or "
             "the raw ledger "
             "GROUP BY product over 7 days). The machine is shared with other engineers' test "
             "runs and loaded (load average well above its 2 cores): compare ratios, not "
             "milliseconds.", "",
             "| cell | before p50 ms | before p95 ms | before ratio | after p50 ms "
             "| after p95 ms | after ratio |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for cell in cells:
        row = [cell]
        for label in ("before", "after"):
            row.append(f"{statistics.median(r[cell][0] for r in runs[label]):.1f}")
            row.append(f"{statistics.median(r[cell][2] for r in runs[label]):.1f}")
            row.append(f"{statistics.median(r[cell][1] for r in runs[label]):.2f}")
        lines.append("| " + " | ".join(row) + " |")
    if args.no_write or args.once:
        print("\n".join(lines))
    else:
        _common().record("Codebase shape (issue 13): touched endpoints before and after",
                         lines)


if __name__ == "__main__":
    main()
