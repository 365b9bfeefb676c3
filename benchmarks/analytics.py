"""Usage and agent analytics benchmark: each endpoint's p50 / p95 over the export benchmark's
tenant (benchmarks/export.py generates it: N events over 30 days, 10,000 customers, sessions of
8 events, a tool on every third), embedded, beside the raw ledger scan of the same 30-day window
(the reference measured in the same run: a ratio, since the machine is shared), and the same
reader before the 0014 rollups (`use_rollups=False`: ledger_hourly and the raw ledger).

Each endpoint runs its API view (query parameters parsed, the readers, the response rendered by
the API's JSON renderer) and is split into engine (the event-store calls, decoding included),
Python (the readers' and the view's own work) and rendering. Figures are appended to
benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/export.py --events 10000000 --generate-only   # once
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
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--requests", type=int, default=20)
parser.add_argument("--var-dir", default=str(ROOT / "var" / "bench-export"))
parser.add_argument("--no-write", action="store_true")
ARGS = parser.parse_args()

from benchmarks.common import django_setup, record  # noqa: E402

django_setup(ARGS.var_dir)

from rest_framework.request import Request  # noqa: E402
from rest_framework.test import APIRequestFactory  # noqa: E402

from aforo import eventstore  # noqa: E402
from aforo.eventstore.migrate import migrate_eventstore  # noqa: E402
from aforo.ledger.query import LedgerQuery  # noqa: E402
from aforo.models import Tenant  # noqa: E402
from aforo.periods import Period  # noqa: E402
from aforo.renderers import ExactJSONRenderer  # noqa: E402
from cogs import agents_api, usage_api  # noqa: E402
from cogs.queries import agents, usage  # noqa: E402

TENANT = Tenant(slug="bench-export", name="bench-export")
PERIOD = Period(first=date(2026, 6, 1), last=date(2026, 6, 30))
QUERY = {"from": "2026-06-01", "to": "2026-06-30"}
NOW = datetime(2026, 6, 30, 23, 0, tzinfo=timezone.utc)
SESSION = "s_1000"
# endpoint: (its view, extra query parameters, what it reads, the reader before 0014)
ENDPOINTS = {
    "usage/by-billable-unit": (usage_api.ByBillableUnit, {}, "usage_daily_customers + "
                               "usage_hourly_agents", lambda: usage.usage_by_billable_unit(
                                   TENANT, PERIOD, use_rollups=False)),
    "usage/by-customer": (usage_api.ByCustomer, {}, "usage_daily_customers",
                          lambda: usage.usage_by_customer(TENANT, PERIOD, use_rollups=False)),
    "usage/by-product-type": (usage_api.ByProductType, {}, "usage_hourly_agents + ledger_daily",
                              lambda: usage.usage_by_product_type(TENANT, PERIOD,
                                                                  use_rollups=False)),
    "agents/tools": (agents_api.Tools, {}, "usage_hourly_agents",
                     lambda: agents.tools_breakdown(TENANT, PERIOD, use_rollups=False)),
    "agents/by-agent": (agents_api.ByAgent, {}, "usage_hourly_agents",
                        lambda: agents.agents_breakdown(TENANT, PERIOD, use_rollups=False)),
    "agents/sessions, page 0": (agents_api.Sessions, {"pageSize": "25"}, "agent_sessions",
                                lambda: agents.sessions_page(TENANT, PERIOD, now=NOW, offset=0,
                                                             limit=25, use_rollups=False)),
    "agents/sessions?active=true": (agents_api.Sessions, {"active": "true"}, "agent_sessions",
                                    lambda: agents.sessions_page(
                                        TENANT, PERIOD, now=NOW, offset=0, limit=25,
                                        active_only=True, use_rollups=False)),
    "agents/sessions/{id}": (agents_api.SessionDetail, {}, "agent_sessions, then the ledger "
                             "over the session's first..last", lambda: agents.session_trace(
                                 TENANT, PERIOD, SESSION, use_rollups=False)),
}


class Clock:
    """Time spent inside the event store's read calls (engine and decoding)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, call):
        def timed(*args, **kwargs):
            began = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - began
        return timed


def _percentiles(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))]


def _call(view_class, params: dict, clock: Clock) -> tuple[float, float, float]:
    """One call of the endpoint: (total, engine, render) seconds."""
    request = Request(APIRequestFactory().get("/", {**QUERY, **params}))
    request.tenant = TENANT
    view = view_class()
    clock.seconds = 0.0
    began = time.perf_counter()
    with mock.patch.object(eventstore, "tenant_query", clock.wrap(eventstore.tenant_query)), \
            mock.patch.object(eventstore, "tenant_rows", clock.wrap(eventstore.tenant_rows)):
        if view_class is agents_api.SessionDetail:
            response = view.get(request, SESSION)
        elif view_class is agents_api.Sessions:
            with mock.patch.object(agents_api, "datetime", _Frozen):
                response = view.get(request)
        else:
            response = view.get(request)
    engine = clock.seconds
    rendering = time.perf_counter()
    ExactJSONRenderer().render(response.data)
    end = time.perf_counter()
    return end - began, engine, end - rendering


class _Frozen(datetime):
    @classmethod
    def now(cls, tz=None):  # the period's last hour, so some sessions are active
        return NOW


def _timed(read) -> list[float]:
    read()
    out = []
    for _ in range(ARGS.requests):
        began = time.perf_counter()
        read()
        out.append((time.perf_counter() - began) * 1000)
    return out


def main() -> None:
    migrate_eventstore(eventstore.get_store())
    events = int(LedgerQuery(TENANT.slug).measures("events").one()["events"])
    scan = _percentiles(_timed(lambda: LedgerQuery(TENANT.slug).period(PERIOD).measures(
        "events", "tokens_in", "tokens_out", "cogs").one()))
    rows = []
    for name, (view_class, params, reads, before) in ENDPOINTS.items():
        clock = Clock()
        _call(view_class, params, clock)
        calls = [_call(view_class, params, clock) for _ in range(ARGS.requests)]
        p50, p95 = _percentiles([total * 1000 for total, _e, _r in calls])
        engine = statistics.median(e * 1000 for _t, e, _r in calls)
        render = statistics.median(r * 1000 for _t, _e, r in calls)
        old50, old95 = _percentiles(_timed(before))
        rows.append(f"| {name} | {reads} | {p50:.0f} | {p95:.0f} | {engine:.0f} | "
                    f"{p50 - engine - render:.0f} | {render:.1f} | {p95 / scan[1]:.2f} | "
                    f"{old50:.0f} | {old95:.0f} |")
        print(rows[-1], flush=True)
    load = os.getloadavg()
    lines = [
        f"{events:,} events over 30 days (10,000 customers, 1,250,000 sessions of 8 events "
        f"spread over the month, a tool on every third), the 30-day period, embedded, "
        f"{ARGS.requests} calls each after one warm-up; load average {load[0]:.1f} / "
        f"{load[1]:.1f} (1 / 5 min) at the end. Reference: the raw ledger scan of the same "
        f"window (events, tokens and COGS summed), p50 {scan[0]:.0f} ms, p95 {scan[1]:.0f} ms.",
        "",
        "| endpoint | reads | p50 ms | p95 ms | engine ms | Python ms | render ms "
        "| p95 ÷ ledger scan p95 | before 0014 p50 ms | before p95 ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
    ]
    if ARGS.no_write:
        print("\n".join(lines))
    else:
        record("Usage and agent analytics on the 0014 rollups (benchmarks/analytics.py)", lines)


if __name__ == "__main__":
    main()
