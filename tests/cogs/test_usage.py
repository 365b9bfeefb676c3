"""Usage by billable unit, by customer and by product type: the figures equal hand-computed
sums of events sent through the ingestion service, on both event-store backends."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from aforo.models import Role
from tests.conftest import api_client
from tests.factories import ingest

pytestmark = pytest.mark.django_db
BASE = "/api/v1/analytics/usage"
PERIOD = {"from": "2026-06-10", "to": "2026-06-12"}
AT = datetime(2026, 6, 10, 22, 30, tzinfo=timezone.utc)


def _events() -> list[dict]:
    out = []
    for i in range(30):
        out.append({
            "eventId": f"u-{i}", "occurredAt": AT + timedelta(hours=i * 2),
            "customerId": ("acme", "beta", "gamma")[i % 3],
            "productId": ("p_chat", "p_agent", "p_api")[i % 3 if i < 20 else 0],
            "productType": {"p_chat": "API_WITH_AI", "p_agent": "AI_AGENT",
                            "p_api": "API"}[("p_chat", "p_agent", "p_api")[
                                i % 3 if i < 20 else 0]],
            "inputTokens": 100 * (i + 1), "outputTokens": 10 * i, "toolCalls": i % 4,
            "reasoningSteps": i % 5, "aiCogsUsd": "0.001"})
    return out


EVENTS = _events()
# outside the period (June 13th) and another tenant's: never counted
LATE = {**EVENTS[0], "eventId": "late", "occurredAt": datetime(2026, 6, 13, 0, 0, 1,
                                                                tzinfo=timezone.utc)}
IN_PERIOD = [e for e in EVENTS if e["occurredAt"] < datetime(2026, 6, 13, tzinfo=timezone.utc)]
FIELDS = {"EVENTS": None, "INPUT_TOKENS": "inputTokens", "OUTPUT_TOKENS": "outputTokens",
          "TOOL_CALLS": "toolCalls", "REASONING_STEPS": "reasoningSteps"}


def _quantity(event: dict, unit: str) -> int:
    return 1 if FIELDS[unit] is None else event[FIELDS[unit]]


@pytest.fixture
def usage_tenant(store, tenant, other_tenant):
    ingest(tenant, [*EVENTS, LATE])
    ingest(other_tenant, EVENTS[:5])
    return tenant


def test_by_billable_unit_totals_top_customers_and_daily_trend(usage_tenant):
    answer = api_client(usage_tenant, Role.VIEWER).get(f"{BASE}/by-billable-unit",
                                                       {**PERIOD, "top": 2})
    assert answer.status_code == 200
    by_unit = {row["unit"]: row for row in answer.json()}
    assert list(by_unit) == list(FIELDS)
    for unit, row in by_unit.items():
        assert row["total"] == sum(_quantity(e, unit) for e in IN_PERIOD)
        per_customer: dict[str, int] = {}
        for e in IN_PERIOD:
            per_customer[e["customerId"]] = per_customer.get(e["customerId"], 0) + _quantity(
                e, unit)
        expected = sorted(((c, q) for c, q in per_customer.items() if q),
                          key=lambda p: (-p[1], p[0]))[:2]
        assert [(c["customerId"], c["quantity"]) for c in row["topCustomers"]] == expected
        daily = {d["date"]: d["quantity"] for d in row["daily"]}
        assert list(daily) == ["2026-06-10", "2026-06-11", "2026-06-12"]
        for day in daily:
            assert daily[day] == sum(_quantity(e, unit) for e in IN_PERIOD
                                     if e["occurredAt"].date().isoformat() == day)
    assert by_unit["EVENTS"]["topCustomers"][0]["sharePct"] == pytest.approx(
        100 * by_unit["EVENTS"]["topCustomers"][0]["quantity"] / by_unit["EVENTS"]["total"],
        abs=0.01)


def test_days_follow_the_tenants_time_zone(usage_tenant):
    usage_tenant.time_zone = "America/New_York"  # UTC-4 in June
    usage_tenant.save()
    answer = api_client(usage_tenant).get(f"{BASE}/by-billable-unit", PERIOD).json()
    daily = {d["date"]: d["quantity"] for d in answer[0]["daily"]}
    start, end = (datetime(2026, 6, 10, 4, tzinfo=timezone.utc),
                  datetime(2026, 6, 13, 4, tzinfo=timezone.utc))
    local = [e for e in [*EVENTS, LATE] if start <= e["occurredAt"] < end]
    assert answer[0]["total"] == len(local)
    assert daily["2026-06-10"] == sum(
        1 for e in local if e["occurredAt"] < datetime(2026, 6, 11, 4, tzinfo=timezone.utc))


def test_by_customer_has_every_unit(usage_tenant):
    rows = api_client(usage_tenant).get(f"{BASE}/by-customer", PERIOD).json()
    assert [r["customerId"] for r in rows][:1] == ["acme"]
    for row in rows:
        mine = [e for e in IN_PERIOD if e["customerId"] == row["customerId"]]
        assert row["units"] == {unit: sum(_quantity(e, unit) for e in mine) for unit in FIELDS}
    limited = api_client(usage_tenant).get(f"{BASE}/by-customer", {**PERIOD, "limit": 1})
    assert len(limited.json()) == 1


def test_by_product_type_sums_its_products(usage_tenant):
    rows = api_client(usage_tenant).get(f"{BASE}/by-product-type", PERIOD).json()
    assert {r["productType"] for r in rows} == {"API_WITH_AI", "AI_AGENT", "API"}
    for row in rows:
        mine = [e for e in IN_PERIOD if e["productType"] == row["productType"]]
        assert row["units"] == {unit: sum(_quantity(e, unit) for e in mine) for unit in FIELDS}


def test_bad_input_is_a_400_naming_the_field(db, tenant):
    client = api_client(tenant)
    for path, params, field in (("by-billable-unit", {"top": "0"}, "top"),
                                ("by-billable-unit", {"from": "June"}, "from"),
                                ("by-customer", {"limit": "x"}, "limit")):
        answer = client.get(f"{BASE}/{path}", params)
        assert answer.status_code == 400 and answer.json()["error"]["field"] == field
    assert api_client(tenant, send_tenant=False).get(f"{BASE}/by-customer").status_code == 403
