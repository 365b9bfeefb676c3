"""Reconciliation: a tenant whose metered OpenAI cost is 3% under the imported bill is
UNDER_METERED by exactly the gap; within the tolerance it is MATCHED."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from cost_sources.queries import reconciliation
from cost_sources.services import reconciliation_settings_update
from tests.factories import cost_source, import_costs, ingest, openai_costs_page, write_page

pytestmark = pytest.mark.django_db


def _midnight(days_ago: int) -> datetime:
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days_ago)


@pytest.fixture
def seeded(tenant, store, tmp_path):
    day1, day2 = _midnight(3), _midnight(2)
    page = openai_costs_page([
        (day1, [("gpt-4o-2024-08-06, input", "60.00"), ("gpt-4o-2024-08-06, output", "40.00")]),
        (day2, [("gpt-4o-2024-08-06, input", "50.00")]),
    ])
    path = tmp_path / "openai-costs.json"
    write_page(path, page)
    run = import_costs(cost_source(tenant, "OPENAI_COSTS"), path)
    assert run.total_usd == Decimal("150.00")
    # Metered: day 1, 97 events of $1.00 (3% under $100.00); day 2, 4 events of $12.45
    # ($49.80, 0.4% under $50.00).
    events = [{"eventId": f"d1-{n}", "occurredAt": day1 + timedelta(minutes=10 + n),
               "customerId": "cust_a", "productId": "prod_chat", "provider": "openai",
               "model": "gpt-4o-2024-08-06", "aiCogsUsd": "1.00"} for n in range(97)]
    events += [{"eventId": f"d2-{n}", "occurredAt": day2 + timedelta(hours=1 + n),
                "customerId": "cust_a", "productId": "prod_chat", "provider": "openai",
                "model": "gpt-4o-2024-08-06", "aiCogsUsd": "12.45"} for n in range(4)]
    ingest(tenant, events)
    return tenant, day1.date(), day2.date()


def test_three_percent_under_the_bill_is_under_metered_with_the_exact_gap(seeded):
    tenant, day1, day2 = seeded
    reconciliation_settings_update(tenant=tenant, tolerance_pct=Decimal("1.00"))
    rows = reconciliation(tenant.slug, first=day1, last=day2, by="provider",
                          tolerance_pct=Decimal("1.00"))
    got = [(r.day, r.group, r.billed_usd, r.metered_usd, r.gap_usd, r.gap_pct, r.status)
           for r in rows]
    assert got == [
        (day1, "OpenAI", Decimal("100"), Decimal("97"), Decimal("3"), Decimal("3"),
         "UNDER_METERED"),
        (day2, "OpenAI", Decimal("50"), Decimal("49.8"), Decimal("0.2"), Decimal("0.4"),
         "MATCHED"),
    ]


def test_the_endpoint_reports_the_gap_per_day_and_model(seeded, api):
    tenant, day1, day2 = seeded
    assert api.patch("/api/v1/cost-sources/settings", {"tolerancePct": "0.25"},
                     format="json").json() == {"tolerancePct": 0.25}
    body = api.get(f"/api/v1/analytics/cogs/reconciliation?from={day1}&to={day2}"
                   f"&by=model").json()
    assert body["tolerancePct"] == 0.25
    assert (body["billedUsd"], body["meteredUsd"], body["gapUsd"]) == (150, 146.8, 3.2)
    assert body["rows"] == [
        {"date": day1.isoformat(), "group": "gpt-4o-2024-08-06", "billedUsd": 100,
         "meteredUsd": 97, "gapUsd": 3, "gapPct": 3, "status": "UNDER_METERED"},
        {"date": day2.isoformat(), "group": "gpt-4o-2024-08-06", "billedUsd": 50,
         "meteredUsd": 49.8, "gapUsd": 0.2, "gapPct": 0.4, "status": "UNDER_METERED"},
    ]


def test_metered_cost_the_bill_does_not_hold_is_over_metered(tenant, store):
    ingest(tenant, [{"eventId": "e1", "occurredAt": _midnight(1) + timedelta(hours=2),
                     "customerId": "c", "productId": "p", "provider": "Anthropic",
                     "model": "claude-sonnet-4-5", "aiCogsUsd": "2.50"}])
    day = _midnight(1).date()
    rows = reconciliation(tenant.slug, first=day, last=day, by="provider",
                          tolerance_pct=Decimal(1))
    assert [(r.group, r.billed_usd, r.metered_usd, r.gap_usd, r.gap_pct, r.status)
            for r in rows] == [("Anthropic", 0, Decimal("2.5"), Decimal("-2.5"), None,
                                "OVER_METERED")]


def test_reconciliation_rejects_a_bad_grouping_and_period(api, store):
    response = api.get("/api/v1/analytics/cogs/reconciliation?by=customer")
    assert response.status_code == 400 and response.json()["error"]["field"] == "by"
    response = api.get("/api/v1/analytics/cogs/reconciliation?from=2026-13-01")
    assert response.status_code == 400 and response.json()["error"]["field"] == "from"
