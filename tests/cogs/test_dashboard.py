"""Every dashboard endpoint against a small tenant whose numbers are worked out by hand."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from aforo.ledger import ledger_append
from aforo.models import Role
from cogs import queries
from ingestion.prices import model_price_create
from tests.conftest import api_client
from tests.factories import PRODUCT_PAGE_EVENT, attribute, cost_correction_entry, ingest

pytestmark = pytest.mark.django_db
BASE = "/api/v1/analytics/cogs/dashboard"
PERIOD = {"from": "2026-06-12", "to": "2026-06-14"}

# The product page's example row, exactly.
E1 = PRODUCT_PAGE_EVENT
E2 = {"eventId": "e2", "occurredAt": "2026-06-12T12:00:00Z", "customerId": "cust_b",
      "productId": "prod_translation", "productType": "API_WITH_AI", "provider": "OpenAI",
      "model": "gpt-4o", "sourceType": "SDK", "cogsUsd": "0.10",
      "inputTokens": 500, "outputTokens": 100}
E3 = {"eventId": "e3", "occurredAt": "2026-06-14T23:59:59Z", "customerId": "cust_acme",
      "productId": "prod_agent", "productType": "AI_AGENT", "provider": "Anthropic",
      "model": "claude-sonnet-4-6", "toolName": "web_search", "sourceType": "AGENT",
      "aiCogsUsd": "0.20", "infraCogsUsd": "0.05", "inputTokens": 2000, "outputTokens": 500}
E4 = {"eventId": "e4", "occurredAt": "2026-06-12T08:00:00Z", "customerId": "cust_c",
      "productId": "prod_translation", "productType": "API_WITH_AI", "provider": "Google",
      "model": "gemini-2.5-flash", "sourceType": "GATEWAY", "aiCogsUsd": "0.01",
      "inputTokens": 100, "outputTokens": 50}
E5 = {"eventId": "e5", "occurredAt": "2026-06-12T09:00:00Z", "customerId": "cust_d",
      "productId": "prod_agent", "productType": "AI_AGENT", "provider": "OpenAI",
      "model": "gpt-4o", "sourceType": "AGENT", "aiCogsUsd": "0.06",
      "inputTokens": 300, "outputTokens": 60}
E6 = {"eventId": "e6", "occurredAt": "2026-06-12T10:00:00Z", "customerId": "cust_e",
      "productId": "prod_agent", "productType": "AI_AGENT", "provider": "OpenAI",
      "model": "gpt-4o", "sourceType": "AGENT", "cogsUsd": "0"}
BEFORE = {"eventId": "before", "occurredAt": "2026-06-11T23:59:59Z", "customerId": "cust_acme",
          "productId": "prod_translation", "productType": "API_WITH_AI", "provider": "Anthropic",
          "model": "claude-sonnet-4-6", "aiCogsUsd": "1.00", "inputTokens": 9}
AFTER = {**BEFORE, "eventId": "after", "occurredAt": "2026-06-15T00:00:00Z"}


@pytest.fixture
def demo_numbers(store, tenant, other_tenant):
    ingest(tenant, [E1, E2, E3, E4, E5, E6, BEFORE, AFTER])
    for event, amount in ((E1, "0.51"), (E2, "0.05"), (E4, "0.10"), (E5, "0.10"),
                          (BEFORE, "2.00"), (AFTER, "3.00")):
        attribute(tenant, event, amount)
    # Another tenant's busy day inside the period must not show.
    noise = {**E1, "eventId": "noise", "occurredAt": "2026-06-13T12:00:00Z", "aiCogsUsd": "5"}
    ingest(other_tenant, [noise])
    attribute(other_tenant, noise, "7")
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for start, price_in in ((at, "3"), (datetime(2026, 6, 14, 12, tzinfo=timezone.utc), "4"),
                            (datetime(2026, 6, 15, tzinfo=timezone.utc), "99")):
        model_price_create(tenant=tenant, provider="Anthropic", model="claude-sonnet-4-6",
                           effective_from=start, input_per_1m=Decimal(price_in),
                           output_per_1m=Decimal("15"))
    return tenant


def get(tenant, path, **params):
    response = api_client(tenant, Role.VIEWER).get(f"{BASE}{path}", {**PERIOD, **params})
    assert response.status_code == 200, response.content
    return response.json()


def test_headline(demo_numbers):
    assert get(demo_numbers, "") == {
        "totalCogsUsd": 0.60, "revenueUsd": 0.76, "grossMarginPct": 21.05,
        "costPerEventUsd": 0.10, "aiModelSpendUsd": 0.41, "activeProducts": 2, "eventCount": 6,
        # expected revenue: nothing settling (e3 and e6 have no revenue source at all)
        "settlingRevenueUsd": 0.0, "expectedRevenueUsd": 0.76, "expectedMarginUsd": 0.16,
        "expectedMarginPct": 21.05,
        "revenueSources": {"attributedUsd": 0.76, "carriedUsd": 0.0, "ratedUsd": 0.0,
                           "estimatedUsd": 0.0, "unknownEvents": 2},
    }


def test_trends_have_every_day_zero_where_quiet(demo_numbers):
    assert get(demo_numbers, "/trends") == [
        {"date": "2026-06-12", "cogsUsd": 0.17, "revenueUsd": 0.25, "marginPct": 32.0,
         "settlingRevenueUsd": 0.0, "expectedRevenueUsd": 0.25,
         "expectedMarginUsd": 0.08, "expectedMarginPct": 32.0},
        {"date": "2026-06-13", "cogsUsd": 0.0, "revenueUsd": 0.0, "marginPct": None,
         "settlingRevenueUsd": 0.0, "expectedRevenueUsd": 0.0,
         "expectedMarginUsd": 0.0, "expectedMarginPct": None},
        {"date": "2026-06-14", "cogsUsd": 0.43, "revenueUsd": 0.51, "marginPct": 15.69,
         "settlingRevenueUsd": 0.0, "expectedRevenueUsd": 0.51,
         "expectedMarginUsd": 0.08, "expectedMarginPct": 15.69},
    ]


def test_cost_composition(demo_numbers):
    assert get(demo_numbers, "/cost-composition") == {
        "aiCogsUsd": 0.41, "infraCogsUsd": 0.08, "feeCogsUsd": 0.01, "unclassifiedUsd": 0.10,
        "totalCogsUsd": 0.60,
    }


def test_by_product(demo_numbers):
    assert get(demo_numbers, "/by-product") == [
        {"productId": "prod_agent", "productType": "AI_AGENT", "cogsUsd": 0.31,
         "aiCogsUsd": 0.26,
         "revenueUsd": 0.10, "marginUsd": -0.21, "marginPct": -210.0, "eventCount": 3,
         "settlingRevenueUsd": 0.0, "expectedRevenueUsd": 0.1,
         "expectedMarginUsd": -0.21, "expectedMarginPct": -210.0},
        {"productId": "prod_translation", "productType": "API_WITH_AI", "cogsUsd": 0.29,
         "aiCogsUsd": 0.15,
         "revenueUsd": 0.66, "marginUsd": 0.37, "marginPct": 56.06, "eventCount": 3,
         "settlingRevenueUsd": 0.0, "expectedRevenueUsd": 0.66,
         "expectedMarginUsd": 0.37, "expectedMarginPct": 56.06},
    ]


def test_by_customer_tags_each_account(demo_numbers):
    rows = get(demo_numbers, "/by-customer")
    assert rows == [
        {"customerId": "cust_acme", "cogsUsd": 0.43, "revenueUsd": 0.51, "marginUsd": 0.08,
         "marginPct": 15.69, "eventCount": 2, "tag": "AT_RISK",
         "settlingRevenueUsd": 0.0, "expectedRevenueUsd": 0.51,
         "expectedMarginUsd": 0.08, "expectedMarginPct": 15.69},
        {"customerId": "cust_b", "cogsUsd": 0.10, "revenueUsd": 0.05, "marginUsd": -0.05,
         "marginPct": -100.0, "eventCount": 1, "tag": "UNPROFITABLE",
         "settlingRevenueUsd": 0.0, "expectedRevenueUsd": 0.05,
         "expectedMarginUsd": -0.05, "expectedMarginPct": -100.0},
        {"customerId": "cust_d", "cogsUsd": 0.06, "revenueUsd": 0.10, "marginUsd": 0.04,
         "marginPct": 40.0, "eventCount": 1, "tag": "STANDARD",
         "settlingRevenueUsd": 0.0, "expectedRevenueUsd": 0.1,
         "expectedMarginUsd": 0.04, "expectedMarginPct": 40.0},
        {"customerId": "cust_c", "cogsUsd": 0.01, "revenueUsd": 0.10, "marginUsd": 0.09,
         "marginPct": 90.0, "eventCount": 1, "tag": "HIGH_VALUE",
         "settlingRevenueUsd": 0.0, "expectedRevenueUsd": 0.1,
         "expectedMarginUsd": 0.09, "expectedMarginPct": 90.0},
        {"customerId": "cust_e", "cogsUsd": 0.0, "revenueUsd": 0.0, "marginUsd": 0.0,
         "marginPct": None, "eventCount": 1, "tag": None,
         "settlingRevenueUsd": 0.0, "expectedRevenueUsd": 0.0,
         "expectedMarginUsd": 0.0, "expectedMarginPct": None},
    ]


def test_customer_tags_follow_the_tenants_floors(demo_numbers):
    owner = api_client(demo_numbers, Role.OWNER)
    assert owner.patch("/api/v1/analytics/cogs/settings",
                       {"atRiskFloorPct": 10, "highValueFloorPct": 40},
                       format="json").status_code == 200
    tags = {r["customerId"]: r["tag"] for r in get(demo_numbers, "/by-customer")}
    assert tags == {"cust_acme": "STANDARD", "cust_b": "UNPROFITABLE", "cust_d": "HIGH_VALUE",
                    "cust_c": "HIGH_VALUE", "cust_e": None}


def test_by_model_with_the_rate_card_in_force_at_the_periods_end(demo_numbers):
    assert get(demo_numbers, "/by-model") == [
        {"provider": "Anthropic", "model": "claude-sonnet-4-6", "inputTokens": 3000,
         "outputTokens": 700, "totalTokens": 3700, "cogsUsd": 0.43, "aiCogsUsd": 0.34,
         "revenueUsd": 0.51, "marginUsd": 0.08, "marginPct": 15.69,
         "avgCostPer1kUsd": 0.091892, "inputRatePer1k": 0.004, "outputRatePer1k": 0.015,
         "eventCount": 2, "settlingRevenueUsd": 0.0, "expectedRevenueUsd": 0.51,
         "expectedMarginUsd": 0.08, "expectedMarginPct": 15.69},
        {"provider": "OpenAI", "model": "gpt-4o", "inputTokens": 800, "outputTokens": 160,
         "totalTokens": 960, "cogsUsd": 0.16, "aiCogsUsd": 0.06, "avgCostPer1kUsd": 0.0625,
         "revenueUsd": 0.15, "marginUsd": -0.01, "marginPct": -6.67,
         "inputRatePer1k": None, "outputRatePer1k": None, "eventCount": 3,
         "settlingRevenueUsd": 0.0, "expectedRevenueUsd": 0.15,
         "expectedMarginUsd": -0.01, "expectedMarginPct": -6.67},
        {"provider": "Google", "model": "gemini-2.5-flash", "inputTokens": 100,
         "outputTokens": 50, "totalTokens": 150, "cogsUsd": 0.01, "aiCogsUsd": 0.01,
         "revenueUsd": 0.1, "marginUsd": 0.09, "marginPct": 90.0,
         "avgCostPer1kUsd": 0.066667, "inputRatePer1k": None, "outputRatePer1k": None,
         "eventCount": 1, "settlingRevenueUsd": 0.0, "expectedRevenueUsd": 0.1,
         "expectedMarginUsd": 0.09, "expectedMarginPct": 90.0},
    ]


def test_token_analysis(demo_numbers):
    assert get(demo_numbers, "/token-analysis") == {
        "totalTokens": 4810, "inputTokens": 3900, "outputTokens": 910,
        "avgCostPer1kTokensUsd": 0.085239,
    }


def test_pnl_without_fixed_costs_has_no_break_even(demo_numbers):
    body = get(demo_numbers, "/pnl")
    assert body["unitEconomics"] == {
        "avgCostPerEventUsd": 0.10, "avgRevenuePerEventUsd": 0.126667,
        "avgMarginPerEventUsd": 0.026667, "breakEvenEvents": None,
    }
    assert [p["productId"] for p in body["products"]] == ["prod_translation", "prod_agent"]
    assert [c["customerId"] for c in body["customers"]] == [
        "cust_c", "cust_acme", "cust_d", "cust_e", "cust_b"]
    assert body["customers"][0]["tag"] == "HIGH_VALUE"


@pytest.mark.parametrize(("fixed", "events"), [("100", 3750), ("101", 3788)])
def test_break_even_is_fixed_costs_over_margin_per_event_rounded_up(demo_numbers, fixed, events):
    owner = api_client(demo_numbers, Role.BILLING_ADMIN)
    assert owner.patch("/api/v1/analytics/cogs/settings", {"fixedCostsPerMonthUsd": fixed},
                       format="json").status_code == 200
    # 100 / (0.16 / 6) = 3750 exactly; 101 / (0.16 / 6) = 3787.5, rounded up.
    assert get(demo_numbers, "/pnl")["unitEconomics"]["breakEvenEvents"] == events


def test_break_even_is_null_when_margin_is_not_positive(store, tenant):
    ingest(tenant, [{**E2, "occurredAt": "2026-06-13T00:00:00Z"}])
    api_client(tenant).patch("/api/v1/analytics/cogs/settings", {"fixedCostsPerMonthUsd": 50},
                             format="json")
    assert get(tenant, "/pnl")["unitEconomics"]["breakEvenEvents"] is None


def test_transactions_newest_first_with_the_split_and_settlement(demo_numbers):
    body = get(demo_numbers, "/transactions", size=2)
    assert (body["page"], body["size"], body["totalElements"], body["totalPages"]) == (0, 2, 6, 3)
    assert [r["eventId"] for r in body["content"]] == ["e3", "evt_a7f3k2m9"]
    e3 = body["content"][0]
    assert e3 == {
        "eventId": "e3", "occurredAt": "2026-06-14T23:59:59Z", "customerId": "cust_acme",
        "productId": "prod_agent", "productType": "AI_AGENT", "provider": "Anthropic",
        "model": "claude-sonnet-4-6", "toolName": "web_search", "sourceType": "AGENT",
        "cogsUsd": 0.25, "revenueUsd": 0.0, "marginUsd": -0.25, "marginPct": None,
        "aiCogsUsd": 0.20, "infraCogsUsd": 0.05, "feeCogsUsd": 0.0, "unclassifiedCogsUsd": 0.0,
        "inputTokens": 2000, "outputTokens": 500, "totalTokens": 2500,
        "revenueStatus": "SETTLING", "revenueSource": "UNKNOWN", "expectedRevenueUsd": 0.0,
    }
    rest = [get(demo_numbers, "/transactions", size=2, page=n)["content"] for n in (1, 2)]
    assert [r["eventId"] for page in rest for r in page] == ["e2", "e6", "e5", "e4"]
    assert get(demo_numbers, "/transactions", size=2, page=3)["content"] == []


@pytest.mark.parametrize(("params", "expected"), [
    ({"provider": "OpenAI"}, ["e2", "e6", "e5"]),
    ({"customerId": "cust_acme"}, ["e3", "evt_a7f3k2m9"]),
    ({"productId": "prod_translation"}, ["evt_a7f3k2m9", "e2", "e4"]),
    ({"productId": "prod_translation", "provider": "Google"}, ["e4"]),
    ({"customerId": "nobody"}, []),
])
def test_transaction_filters(demo_numbers, params, expected):
    body = get(demo_numbers, "/transactions", **params)
    assert [r["eventId"] for r in body["content"]] == expected
    assert body["totalElements"] == len(expected)


def test_transactions_sum_corrections_into_the_event(demo_numbers):
    ledger_append([cost_correction_entry(demo_numbers, E2,
                                         unclassified_cogs_usd=Decimal("0.015"))])
    row = get(demo_numbers, "/transactions", customerId="cust_b")["content"][0]
    assert (row["cogsUsd"], row["unclassifiedCogsUsd"], row["marginUsd"]) == (0.115, 0.115,
                                                                              -0.065)
    assert row["revenueStatus"] == "SETTLED"
    assert get(demo_numbers, "")["eventCount"] == 6  # a correction is not an event


def test_size_is_capped_at_200(demo_numbers):
    assert get(demo_numbers, "/transactions", size=5000)["size"] == 200


def test_time_zone_setting_moves_the_day_boundaries(demo_numbers):
    # In New York (UTC-4 in June), 2026-06-14 23:59:59Z is still the 14th and
    # "before" (2026-06-11 23:59:59Z) falls on the 11th; the 15th 00:00Z is the 14th.
    owner = api_client(demo_numbers)
    assert owner.patch("/api/v1/analytics/cogs/settings", {"timeZone": "America/New_York"},
                       format="json").status_code == 200
    trends = get(demo_numbers, "/trends")
    assert [d["date"] for d in trends] == ["2026-06-12", "2026-06-13", "2026-06-14"]
    headline = get(demo_numbers, "")
    assert headline["eventCount"] == 7  # "after" joins, e4 (08:00Z = 04:00 EDT) stays
    assert headline["totalCogsUsd"] == 1.60


def test_rollups_and_raw_ledger_agree(demo_numbers):
    period = queries.Period(first=datetime(2026, 6, 12).date(), last=datetime(2026, 6, 14).date())
    for dimension in queries.Dimension:
        rolled = sorted(queries.totals_by(demo_numbers, dimension, period), key=lambda r: r.key)
        raw = sorted(queries.totals_by(demo_numbers, dimension, period, use_rollups=False),
                     key=lambda r: r.key)
        assert rolled == raw, dimension


def test_limit_keeps_the_first_customers_of_each_ranking(demo_numbers):
    assert [r["customerId"] for r in get(demo_numbers, "/by-customer", limit=2)] == [
        "cust_acme", "cust_b"]
    pnl = get(demo_numbers, "/pnl", limit=2)
    assert [r["customerId"] for r in pnl["customers"]] == ["cust_c", "cust_acme"]
    assert pnl["unitEconomics"]["avgCostPerEventUsd"] == 0.10  # still the whole period
    response = api_client(demo_numbers).get(f"{BASE}/by-customer", {"limit": "0"})
    assert response.status_code == 400 and response.json()["error"]["field"] == "limit"
