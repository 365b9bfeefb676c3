"""The customer ledger (by-customer, P&L): ranked, tagged, counted and paged by the engine.

For any set of customers' revenue and cost and any floors, on both event-store backends: every
row's tag is tag_of() of its own numbers, every sort order is the one the definitions give,
pages put together are the whole list, and the tag counts add up.
"""
from __future__ import annotations

import uuid
from collections import Counter
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aforo.ledger import ledger_append
from aforo.tenancy import tenant_create
from cogs import queries
from cogs.queries import CustomerOrder, TagFloors, tag_of
from tests.conftest import api_client
from tests.factories import cost_correction_entry, ingest, revenue_entry

pytestmark = pytest.mark.django_db
DAY = date(2026, 5, 4)
PERIOD = queries.Period(first=DAY, last=DAY)
# Two decimals, so distinct margin ratios are far apart compared with a Float64's resolution
# (the margin % order is computed in Float64; the figures stay exact).
amount = st.decimals(min_value=Decimal("-2"), max_value=Decimal("5"), places=2,
                     allow_nan=False, allow_infinity=False)
customer_strategy = st.tuples(amount, amount, st.integers(1, 3))  # revenue, cost, events
floor = st.decimals(min_value=0, max_value=100, places=2, allow_nan=False, allow_infinity=False)


def _write(tenant, customers: dict[str, tuple[Decimal, Decimal, int]]) -> None:
    events, extra = [], []
    for customer_id, (revenue, cost, count) in customers.items():
        for n in range(count):
            event = {"eventId": f"{customer_id}_{n}", "customerId": customer_id,
                     "occurredAt": datetime(2026, 5, 4, 10, n, tzinfo=timezone.utc),
                     "productId": "prod_a", "provider": "OpenAI", "model": "gpt-4o",
                     # The whole cost on the first event; a negative cost as a correction.
                     "cogsUsd": max(cost, Decimal(0)) if n == 0 else Decimal(0)}
            events.append(event)
            if n == 0 and cost < 0:
                extra.append(cost_correction_entry(tenant, event, unclassified_cogs_usd=cost))
            if n == 0 and revenue:
                extra.append(revenue_entry(tenant, event, revenue))
    ingest(tenant, events)
    if extra:
        ledger_append(extra)


def _oracle_key(order: CustomerOrder, customer_id: str, revenue: Decimal, cost: Decimal,
                events: int, floors: TagFloors):
    margin = revenue - cost
    return {
        CustomerOrder.CUSTOMER: customer_id.lower(),
        CustomerOrder.TAG: queries.TAG_RANKS.index(tag_of(revenue, cost, floors)),
        CustomerOrder.EVENTS: events,
        CustomerOrder.REVENUE: revenue,
        CustomerOrder.COGS: cost,
        CustomerOrder.MARGIN: margin,
        CustomerOrder.MARGIN_PCT: (revenue != 0, margin / revenue if revenue else 0),
    }[order]


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(customers=st.dictionaries(st.sampled_from(["Acme", "beta", "cust_3", "cust_4", "DELTA",
                                                  "cust_6", "cust_7"]),
                                 customer_strategy, max_size=7),
       at_risk=floor, high_value=floor)
def test_customer_ledger_matches_the_definitions(store, customers, at_risk, high_value):
    tenant = tenant_create(slug=f"c-{uuid.uuid4().hex[:12]}", name="Customers")
    if customers:
        _write(tenant, customers)
    floors = TagFloors(at_risk_pct=at_risk, high_value_pct=high_value)
    expected = {cid: (revenue, cost, count) for cid, (revenue, cost, count) in customers.items()}

    everyone = queries.customer_ledger(tenant, PERIOD, floors)
    assert {row.customer_id: (row.revenue_usd, row.cogs_usd, row.event_count)
            for row in everyone} == expected
    for row in everyone:
        assert row.tag == tag_of(row.revenue_usd, row.cogs_usd, floors), row
    # The raw ledger (what a non-UTC period reads) gives the same rows.
    assert queries.customer_ledger(tenant, PERIOD, floors, use_rollups=False) == everyone

    counts, total = queries.customer_tag_counts(tenant, PERIOD, floors)
    assert total == len(expected)
    tags = Counter(tag_of(revenue, cost, floors) for revenue, cost, _n in expected.values())
    assert counts == {tag: tags.get(tag, 0) for tag in queries.CustomerTag}

    for order in CustomerOrder:
        for descending in (True, False):
            rows = queries.customer_ledger(tenant, PERIOD, floors, order=order,
                                           descending=descending)
            keys = [_oracle_key(order, r.customer_id, r.revenue_usd, r.cogs_usd,
                                r.event_count, floors) for r in rows]
            assert keys == sorted(keys, reverse=descending), (order, descending)
            if order is not CustomerOrder.MARGIN_PCT:  # exact keys: ties go by customer id
                oracle = sorted(sorted(expected), key=lambda cid, order=order: _oracle_key(
                    order, cid, *expected[cid], floors), reverse=descending)
                assert [r.customer_id for r in rows] == oracle, (order, descending)
            pages = [row for offset in range(0, len(rows), 3) for row in queries.customer_ledger(
                tenant, PERIOD, floors, order=order, descending=descending, offset=offset,
                limit=3)]
            assert pages == rows, (order, descending)


def test_tags_at_the_floors_exactly():
    floors = TagFloors(at_risk_pct=Decimal(20), high_value_pct=Decimal(60))
    assert tag_of(Decimal("1.00"), Decimal("0.80"), floors) is queries.CustomerTag.STANDARD
    assert tag_of(Decimal("1.00"), Decimal("0.800000001"), floors) is queries.CustomerTag.AT_RISK
    assert tag_of(Decimal("1.00"), Decimal("0.40"), floors) is queries.CustomerTag.HIGH_VALUE
    assert tag_of(Decimal("1.00"), Decimal("0.400000001"), floors) is queries.CustomerTag.STANDARD
    assert tag_of(Decimal("1.00"), Decimal("1.000000001"),
                  floors) is queries.CustomerTag.UNPROFITABLE
    assert tag_of(Decimal(0), Decimal(0), floors) is None
    # No positive revenue, not losing money: no margin % to stand on.
    assert tag_of(Decimal(0), Decimal("-0.5"), floors) is queries.CustomerTag.AT_RISK
    assert tag_of(Decimal("-1"), Decimal("-2"), floors) is queries.CustomerTag.AT_RISK


def test_by_customer_and_pnl_render_every_customer_in_order(store, tenant):
    _write(tenant, {f"cust_{n:02d}": (Decimal(n % 5), Decimal(n % 3), 1) for n in range(30)})
    client = api_client(tenant)
    period = {"from": DAY.isoformat(), "to": DAY.isoformat()}
    base = "/api/v1/analytics/cogs/dashboard"
    rows = client.get(base + "/by-customer", period).json()
    assert len(rows) == 30
    assert [(-r["cogsUsd"], r["customerId"]) for r in rows] == sorted(
        (-r["cogsUsd"], r["customerId"]) for r in rows)
    pnl = client.get(base + "/pnl", period).json()["customers"]
    assert [(-r["marginUsd"], r["customerId"]) for r in pnl] == sorted(
        (-r["marginUsd"], r["customerId"]) for r in pnl)
    assert {r["customerId"] for r in pnl} == {r["customerId"] for r in rows}
    top = client.get(base + "/pnl", {**period, "limit": 4}).json()["customers"]
    assert top == pnl[:4]
    # Exact JSON numbers: 6 decimals at most, the tag from the same figures.
    row = next(r for r in rows if r["customerId"] == "cust_07")
    # (the expected-revenue fields API.md adds come after the product page's own)
    assert row == {"customerId": "cust_07", "cogsUsd": 1.0, "revenueUsd": 2.0, "marginUsd": 1.0,
                   "marginPct": 50.0, "eventCount": 1, "tag": "STANDARD",
                   "settlingRevenueUsd": 0.0, "expectedRevenueUsd": 2.0,
                   "expectedMarginUsd": 1.0, "expectedMarginPct": 50.0}


def test_engine_tags_at_the_floors_exactly(store, tenant):
    _write(tenant, {"at_20": (Decimal("5"), Decimal("4"), 1),       # 20 %: not at risk
                    "under_20": (Decimal("5"), Decimal("4.01"), 1),
                    "at_60": (Decimal("5"), Decimal("2"), 1),       # 60 %: high value
                    "under_60": (Decimal("5"), Decimal("2.01"), 1),
                    "break_even": (Decimal("1"), Decimal("1"), 1),
                    "losing": (Decimal("1"), Decimal("1.01"), 1),
                    "free": (Decimal(0), Decimal(0), 1),
                    "credited": (Decimal(0), Decimal("-1"), 1)})
    tags = {row.customer_id: row.tag.value if row.tag else None
            for row in queries.customer_ledger(tenant, PERIOD, TagFloors())}
    assert tags == {"at_20": "STANDARD", "under_20": "AT_RISK", "at_60": "HIGH_VALUE",
                    "under_60": "STANDARD", "break_even": "AT_RISK", "losing": "UNPROFITABLE",
                    "free": None, "credited": "AT_RISK"}
