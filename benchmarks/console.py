"""Console render time: every COGS & Margins tab, server side, at 7D / 30D / 90D.

Uses the dashboard benchmark's data set (benchmarks/dashboard.py --generate-only: N events over
90 days, 10k customers, 20 products, 4 providers, 16 models, revenue for every event older
than a day, other tenants' noise), then requests each tab as a signed-in member through
Django's test client: session auth, the view, every cogs.queries call, Plotly figure building
and template rendering, i.e. everything but the browser drawing the page. p50 / p95 per tab
and period are appended to benchmarks/RESULTS.md. Target: p95 ≤ 300 ms at 30D.

    .venv/bin/python benchmarks/console.py [--events 10000000] [--requests 20]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TENANT = "bench-dashboard"  # the tenant benchmarks/dashboard.py generates
PERIODS = {"7D": "7d", "30D": "30d", "90D": "90d"}
TABS = {
    "Overview": ("/console/", {}),
    "P&L Analysis": ("/console/cogs/pnl/", {}),
    "P&L, customers by margin % (page 3)": ("/console/cogs/pnl/",
                                            {"sort": "margin_pct", "dir": "asc", "page": 2}),
    "Cost Breakdown": ("/console/cogs/costs/", {}),
    "Transactions": ("/console/cogs/transactions/", {}),
    "Transactions, provider filter, page 40": ("/console/cogs/transactions/",
                                               {"provider": "OpenAI", "page": 40}),
    "Budgets & Alerts": ("/console/cogs/budgets/", {}),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--requests", type=int, default=20, help="timed requests per cell")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--var-dir", default=str(ROOT / "var" / "bench-console"))
    parser.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    return parser.parse_args()


def ensure_data(args: argparse.Namespace) -> None:
    """Generate (or reuse) the data set in its own process, before this one opens chdb."""
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "dashboard.py"), "--generate-only",
                    "--events", str(args.events), "--var-dir", args.var_dir], check=True)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))]


def main() -> None:
    args = parse_args()
    ensure_data(args)
    os.environ["AFORO_VAR_DIR"] = args.var_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aforo.settings")
    for name in ("CLICKHOUSE_URL", "DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    from aforo.models import Role, Tenant
    from aforo.runtime import freeze_startup_heap
    from aforo.tenancy import membership_set
    from benchmarks.common import record

    tenant = Tenant.objects.get(slug=TENANT)
    user, _ = get_user_model().objects.get_or_create(username="bench-console")
    membership_set(tenant=tenant, user=user, role=Role.VIEWER)
    freeze_startup_heap()  # as aforo/asgi.py does in the server
    client = Client()
    client.force_login(user)

    load_before = os.getloadavg()[0]
    rows = []
    for tab, (path, params) in TABS.items():
        cells = []
        for label, preset in PERIODS.items():
            def render(path=path, params=params, preset=preset) -> None:
                response = client.get(path, {"period": preset, **params})
                assert response.status_code == 200, response.content[:500]

            for _ in range(args.warmup):
                render()
            samples = []
            for _ in range(args.requests):
                began = time.perf_counter()
                render()
                samples.append((time.perf_counter() - began) * 1000)
            p50, p95 = statistics.median(samples), percentile(samples, 0.95)
            cells.append(f"{p50:.0f} / {p95:.0f}")
            print(f"{tab:<42} {label:>4}  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms", flush=True)
        rows.append(f"| {tab} | " + " | ".join(cells) + " |")

    if args.no_write:
        return
    end = datetime.now(timezone.utc).date()
    record(
        f"Console render time per tab, embedded mode (chdb), {args.events:,} events",
        [
            f"Data: benchmarks/dashboard.py's set ({args.events:,} events over 90 days ending "
            f"{end}, 10k customers, 20 products, 16 models, +10% other tenants' noise). "
            "Each cell: a signed-in member's GET of the tab through Django's test client "
            "(session auth, view, every cogs.queries call, Plotly figures, template), "
            f"{args.requests} timed after {args.warmup} warm-up; the browser's drawing is not "
            "included. Target: p95 ≤ 300 ms at 30D.",
            "",
            "| tab | " + " | ".join(f"{p} p50 / p95 ms" for p in PERIODS) + " |",
            "| --- | " + " | ".join("---" for _ in PERIODS) + " |",
            *rows,
            "",
            f"Period windows: 7D {end - timedelta(days=6)}…{end}, 30D from "
            f"{end - timedelta(days=29)}, 90D from {end - timedelta(days=89)}. "
            f"Load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after the run "
            "(the machine's 2 cores are shared with other work; figures on a quiet machine are "
            "lower).",
        ],
    )


if __name__ == "__main__":
    main()
