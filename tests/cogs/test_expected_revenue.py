"""Expected revenue: attributed, else carried, else rated, else estimated, for every event; the
dashboard's sources add up, settlement replaces the expectation, and voiding brings it back.

The tenant, worked out by hand (every event costs $0.10):
- October, cust_stripe: 4 events of prod_x with 1,000 + 1,000 tokens each, invoiced (imported)
  at $8.00 per TOKENS: $0.001 a token once attributed.
- November: cust_plan 2 events on a $0.50-per-event plan (rated $1.00); cust_carry 2 events
  carrying revenueUsd 0.30 and 0.20 (carried $0.50); cust_stripe 2 events of 500 + 500 tokens
  (estimated from its own October invoice: $2.00); cust_new 1 event of prod_x, 100 + 100 tokens,
  never invoiced (estimated from prod_x's rate across customers: $0.20); cust_none 1 event of
  prod_y, which nobody was ever invoiced for (unknown).
"""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from billing.attribution import attribution_run
from billing.services import invoice_void
from cogs import queries
from cogs.queries import Period, RevenueSource, TransactionFilters
from tests.factories import ingest, invoice_lines, on_plan

pytestmark = pytest.mark.django_db
BASE = "/api/v1/analytics/cogs/dashboard"
OCT = datetime(2026, 10, 1, tzinfo=timezone.utc)
NOV = datetime(2026, 11, 1, tzinfo=timezone.utc)
OCTOBER = {"from": "2026-10-01", "to": "2026-10-31"}
NOVEMBER = {"from": "2026-11-01", "to": "2026-11-30"}


def event(event_id: str, customer: str, at: str, *, product: str = "prod_x", **fields) -> dict:
    return {"eventId": event_id, "occurredAt": at, "customerId": customer,
            "productId": product, "productType": "API_WITH_AI", "provider": "OpenAI",
            "model": "gpt-4o", "cogsUsd": "0.10", **fields}


@pytest.fixture
def mixed(store, tenant):
    on_plan(tenant, "cust_plan", starts_at=OCT, components=[("PER_EVENT", "0.50")])
    ingest(tenant, [event(f"oct{i}", "cust_stripe", f"2026-10-0{i + 1}T12:00:00Z",
                          inputTokens=1000, outputTokens=1000) for i in range(4)])
    invoice_lines(tenant, "in_oct", customer="cust_stripe", start=OCT, end=NOV,
                  lines=[("li_tokens", "prod_x", "8.00", "TOKENS")])
    attribution_run(tenant=tenant)
    ingest(tenant, [
        event("plan1", "cust_plan", "2026-11-02T10:00:00Z"),
        event("plan2", "cust_plan", "2026-11-03T10:00:00Z"),
        event("carry1", "cust_carry", "2026-11-02T11:00:00Z", revenueUsd="0.30"),
        event("carry2", "cust_carry", "2026-11-03T11:00:00Z", revenueUsd="0.20"),
        event("stripe1", "cust_stripe", "2026-11-04T10:00:00Z", inputTokens=500,
              outputTokens=500),
        event("stripe2", "cust_stripe", "2026-11-05T10:00:00Z", inputTokens=500,
              outputTokens=500),
        event("new1", "cust_new", "2026-11-06T10:00:00Z", inputTokens=100, outputTokens=100),
        event("none1", "cust_none", "2026-11-07T10:00:00Z", product="prod_y"),
    ])
    return tenant


def test_every_source_is_counted_apart(mixed, api):
    body = api.get(BASE, NOVEMBER).json()
    assert body["revenueSources"] == {"attributedUsd": 0.0, "carriedUsd": 0.5, "ratedUsd": 1.0,
                                      "estimatedUsd": 2.2, "unknownEvents": 1}
    assert (body["revenueUsd"], body["totalCogsUsd"], body["grossMarginPct"]) == (0.0, 0.8, None)
    assert (body["settlingRevenueUsd"], body["expectedRevenueUsd"],
            body["expectedMarginUsd"], body["expectedMarginPct"]) == (3.7, 3.7, 2.9, 78.38)


def test_each_event_names_its_source(mixed, api):
    rows = api.get(f"{BASE}/transactions", {**NOVEMBER, "size": 50}).json()["content"]
    got = {r["eventId"]: (r["revenueSource"], r["expectedRevenueUsd"], r["revenueStatus"])
           for r in rows}
    assert got == {
        "plan1": ("RATED", 0.5, "SETTLING"), "plan2": ("RATED", 0.5, "SETTLING"),
        "carry1": ("CARRIED", 0.3, "SETTLING"), "carry2": ("CARRIED", 0.2, "SETTLING"),
        "stripe1": ("ESTIMATED", 1.0, "SETTLING"), "stripe2": ("ESTIMATED", 1.0, "SETTLING"),
        "new1": ("ESTIMATED", 0.2, "SETTLING"), "none1": ("UNKNOWN", 0.0, "SETTLING"),
    }
    october = api.get(f"{BASE}/transactions", OCTOBER).json()["content"]
    assert {(r["revenueSource"], r["expectedRevenueUsd"]) for r in october} == {
        ("ATTRIBUTED", 2.0)}


def test_rows_carry_expected_revenue_per_customer_product_and_day(mixed, api):
    customers = {r["customerId"]: r for r in api.get(f"{BASE}/by-customer", NOVEMBER).json()}
    assert {c: (r["settlingRevenueUsd"], r["expectedMarginUsd"])
            for c, r in customers.items()} == {
        "cust_plan": (1.0, 0.8), "cust_carry": (0.5, 0.3), "cust_stripe": (2.0, 1.8),
        "cust_new": (0.2, 0.1), "cust_none": (0.0, -0.1)}
    products = {r["productId"]: r["expectedRevenueUsd"]
                for r in api.get(f"{BASE}/by-product", NOVEMBER).json()}
    assert products == {"prod_x": 3.7, "prod_y": 0.0}
    days = {r["date"]: r["settlingRevenueUsd"]
            for r in api.get(f"{BASE}/trends", NOVEMBER).json() if r["settlingRevenueUsd"]}
    assert days == {"2026-11-02": 0.8, "2026-11-03": 0.7, "2026-11-04": 1.0,
                    "2026-11-05": 1.0, "2026-11-06": 0.2}
    pnl = api.get(f"{BASE}/pnl", NOVEMBER).json()
    assert {r["customerId"]: r["expectedRevenueUsd"] for r in pnl["customers"]}["cust_stripe"] \
        == 2.0
    # still ranked by attributed margin (prod_y loses 0.10, prod_x 0.70 until invoiced)
    assert [(r["productId"], r["expectedRevenueUsd"]) for r in pnl["products"]] == [
        ("prod_y", 0.0), ("prod_x", 3.7)]


def test_a_settled_month_expects_exactly_what_was_attributed(mixed, api):
    body = api.get(BASE, OCTOBER).json()
    assert body["revenueSources"] == {"attributedUsd": 8.0, "carriedUsd": 0.0, "ratedUsd": 0.0,
                                      "estimatedUsd": 0.0, "unknownEvents": 0}
    exact = queries.overview(mixed, Period(first=OCT.date(), last=datetime(
        2026, 10, 31).date()), estimate=True).totals
    assert exact.expected_revenue_usd == exact.revenue_usd == Decimal("8")
    assert exact.settling_revenue_usd == 0


def test_invoicing_the_rated_and_carried_month_replaces_the_expectation(mixed, api):
    end = datetime(2026, 12, 1, tzinfo=timezone.utc)
    invoice_lines(mixed, "in_plan", customer="cust_plan", start=NOV, end=end,
                  lines=[("l1", "prod_x", "1.10", "EVENTS")])
    invoice_lines(mixed, "in_carry", customer="cust_carry", start=NOV, end=end,
                  lines=[("l1", "prod_x", "0.40", "EVENTS")])
    attribution_run(tenant=mixed)
    body = api.get(BASE, NOVEMBER).json()
    # the invoices' amounts replace rated 1.00 and carried 0.50; nothing is counted twice
    assert body["revenueSources"]["attributedUsd"] == 1.5
    assert (body["revenueSources"]["ratedUsd"], body["revenueSources"]["carriedUsd"]) == (0, 0)
    # cust_new's estimate now blends prod_x's three price lists by the events each covered:
    # per event (2 × 0.55 + 2 × 0.20) / 8 = 0.1875, per token 4 × 0.001 / 8 = 0.0005
    assert body["revenueSources"]["estimatedUsd"] == 2.0 + 0.1875 + 200 * 0.0005
    attribution_run(tenant=mixed)  # a second run changes nothing
    assert api.get(BASE, NOVEMBER).json() == body


def test_voiding_an_invoice_puts_its_events_back_on_their_expectation(mixed, api):
    from billing.models import Invoice

    invoice_void(invoice=Invoice.objects.get(tenant=mixed, invoice_id="in_oct"))
    october = api.get(BASE, OCTOBER).json()
    # no invoice left to learn a rate from: October's events have no revenue source now
    assert october["revenueSources"] == {"attributedUsd": 0.0, "carriedUsd": 0.0,
                                         "ratedUsd": 0.0, "estimatedUsd": 0.0,
                                         "unknownEvents": 4}
    assert api.get(BASE, NOVEMBER).json()["revenueSources"]["unknownEvents"] == 4


def test_repricing_a_settled_event_keeps_it_settled(mixed):
    from ingestion.prices import model_price_create
    from ingestion.services import events_reprice

    ingest(mixed, [{**event("priced", "cust_plan", "2026-11-08T10:00:00Z"), "cogsUsd": None,
                    "inputTokens": 1000}])
    end = datetime(2026, 12, 1, tzinfo=timezone.utc)
    invoice_lines(mixed, "in_plan", customer="cust_plan", start=NOV, end=end,
                  lines=[("l1", "prod_x", "3.00", "EVENTS")])
    attribution_run(tenant=mixed)
    model_price_create(tenant=mixed, provider="OpenAI", model="gpt-4o", effective_from=OCT,
                       input_per_1m=Decimal("5"), output_per_1m=Decimal("10"))
    assert events_reprice(tenant=mixed, start=NOV, end=end).events_corrected == 1
    period = Period(first=NOV.date(), last=datetime(2026, 11, 30).date())
    customers = {r.customer_id: r for r in queries.customer_ledger(
        mixed, period, queries.TagFloors())}
    assert customers["cust_plan"].settling_revenue_usd == 0
    (row,) = queries.transactions_page(mixed, period, TransactionFilters(
        customer_id="cust_plan"), offset=0, limit=1)[0]
    assert (row.event_id, row.revenue_source, row.cogs_usd) == (
        "priced", RevenueSource.ATTRIBUTED, Decimal("0.005"))
