"""What-if: ingestion's own cost function at the target model, nothing written, and switching
a model to itself changes nothing to the nanodollar."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from aforo.ledger.query import LedgerQuery
from aforo.periods import period_default
from cogs.expected import scope_margin
from ingestion.models import GatewayFeeRule
from ingestion.prices import model_price_create, rule_create
from intelligence.whatif import ModelChange, what_if
from tests.factories import ingest, on_plan

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def _prices(tenant):
    start = NOW - timedelta(days=90)
    model_price_create(tenant=tenant, provider="openai", model="gpt-4o", effective_from=start,
                       input_per_1m=Decimal("2.50"), output_per_1m=Decimal("10"),
                       cached_input_per_1m=Decimal("1.25"))
    model_price_create(tenant=tenant, provider="openai", model="gpt-4o-mini",
                       effective_from=start, input_per_1m=Decimal("0.15"),
                       output_per_1m=Decimal("0.60"))
    model_price_create(tenant=tenant, provider="anthropic", model="claude-haiku",
                       effective_from=start, input_per_1m=Decimal("0.80"),
                       output_per_1m=Decimal("4"), per_call=Decimal("0.0001"))
    rule_create(kind=GatewayFeeRule, tenant=tenant, source_type="GATEWAY", effective_from=start,
                per_call_usd=Decimal("0.0002"), pct_of_ai_cost=Decimal("3"))


def _events(model: str, provider: str = "openai") -> list[dict]:
    out = []
    for n in range(60):
        out.append({"eventId": f"w{n}", "occurredAt": NOW - timedelta(hours=n),
                    "customerId": f"cust_{n % 3}", "productId": f"prod_{n % 2}",
                    "provider": provider, "model": model, "sourceType": "GATEWAY",
                    "inputTokens": 1000 + 37 * n, "outputTokens": 200 + 11 * n,
                    "cachedInputTokens": 100 if n % 4 == 0 else 0})
    # some events of another model, untouched by the change
    out += [{"eventId": f"other{n}", "occurredAt": NOW - timedelta(hours=n),
             "customerId": "cust_0", "productId": "prod_0", "provider": "anthropic",
             "model": "claude-haiku", "inputTokens": 500, "outputTokens": 50}
            for n in range(5)]
    return out


def _tenant_with(tenant, model: str, provider: str = "openai"):
    _prices(tenant)
    for customer in ("cust_0", "cust_1", "cust_2"):  # a markup plan: revenue follows cost
        on_plan(tenant, customer, starts_at=NOW - timedelta(days=60),
                components=[("MARKUP_PCT", "40"), ("PER_EVENT", "0.001")],
                code=f"plan-{customer}")
    ingest(tenant, _events(model, provider), now=NOW)


def _ledger_rows(tenant) -> int:
    return LedgerQuery(tenant.slug).expressions("count() AS n").one()["n"]


WINDOW = dict(start=NOW - timedelta(days=5), end=NOW + timedelta(seconds=1))


def test_switching_a_model_to_itself_changes_nothing_to_the_nanodollar(store, tenant):
    _tenant_with(tenant, "gpt-4o")
    rows = _ledger_rows(tenant)
    result = what_if(tenant=tenant, changes=[ModelChange("gpt-4o", "gpt-4o")], **WINDOW)
    assert result.events_repriced == 0
    for comparison in (result.total, *result.products.values(), *result.customers.values()):
        assert comparison.after.cogs_usd == comparison.before.cogs_usd
        assert comparison.after.revenue_usd == comparison.before.revenue_usd
    assert result.total.before.cogs_usd > 0
    assert _ledger_rows(tenant) == rows  # nothing written


def test_the_after_is_what_ingestion_would_have_charged(store, tenant, other_tenant):
    """The same events sent to another tenant with the target model: its COGS and expected
    revenue are exactly the what-if's after, in total and per product and customer."""
    _tenant_with(tenant, "gpt-4o")
    _tenant_with(other_tenant, "gpt-4o-mini")
    rows = _ledger_rows(tenant)
    result = what_if(tenant=tenant, changes=[ModelChange("gpt-4o", "gpt-4o-mini")], **WINDOW)
    assert result.events_repriced == 60 and result.events_unpriced_after == 0
    truth = scope_margin(other_tenant.slug, **WINDOW)
    assert result.total.after.cogs_usd == truth.cogs_usd
    assert result.total.after.revenue_usd == truth.expected_revenue_usd
    assert result.total.after.cogs_usd < result.total.before.cogs_usd
    for product, comparison in result.products.items():
        expected = scope_margin(other_tenant.slug, product_id=product, **WINDOW)
        assert comparison.after.cogs_usd == expected.cogs_usd
    for customer, comparison in result.customers.items():
        expected = scope_margin(other_tenant.slug, customer_id=customer, **WINDOW)
        assert comparison.after.revenue_usd == expected.expected_revenue_usd
    assert _ledger_rows(tenant) == rows


def test_switching_provider_uses_the_target_providers_card(store, tenant, other_tenant):
    _tenant_with(tenant, "gpt-4o")
    _tenant_with(other_tenant, "claude-haiku", provider="anthropic")
    result = what_if(tenant=tenant, changes=[ModelChange("gpt-4o", "claude-haiku")], **WINDOW)
    assert result.total.after.cogs_usd == scope_margin(other_tenant.slug, **WINDOW).cogs_usd


@pytest.mark.django_db
def test_the_endpoint_answers_before_and_after_and_names_a_bad_change(store, tenant, api):
    _tenant_with(tenant, "gpt-4o")
    period = period_default()
    body = api.post("/api/v1/analytics/cogs/what-if", {
        "from": period.first.isoformat(), "to": period.last.isoformat(),
        "changes": [{"fromModel": "gpt-4o", "toModel": "gpt-4o-mini"}]}, format="json")
    assert body.status_code == 200, body.json()
    data = body.json()
    assert data["eventsRepriced"] == 60
    assert data["after"]["cogsUsd"] < data["before"]["cogsUsd"]
    assert {p["productId"] for p in data["products"]} == {"prod_0", "prod_1"}
    assert {c["customerId"] for c in data["customers"]} == {"cust_0", "cust_1", "cust_2"}
    assert set(data["before"]) == {"cogsUsd", "revenueUsd", "marginUsd", "marginPct"}
    bad = api.post("/api/v1/analytics/cogs/what-if", {
        "changes": [{"fromModel": "gpt-4o", "toModel": "no-such-model"}]}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "changes.0.toModel"
    empty = api.post("/api/v1/analytics/cogs/what-if", {"changes": []}, format="json")
    assert empty.status_code == 400 and empty.json()["error"]["field"] == "changes"
    backwards = api.post("/api/v1/analytics/cogs/what-if", {
        "from": "2026-02-02", "to": "2026-02-01",
        "changes": [{"fromModel": "gpt-4o", "toModel": "gpt-4o"}]}, format="json")
    assert backwards.status_code == 400 and backwards.json()["error"]["field"] == "from"
