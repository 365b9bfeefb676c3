"""An entitlement's usage honours its product and model scope for every feature, and matches
the dashboard's figure for the same scope (through the real ingestion service, both backends)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from entitlements.services import entitlement_create
from margin_guard.decision import decide
from tests.conftest import api_client
from tests.factories import ingest

pytestmark = pytest.mark.django_db(transaction=True)
AT = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)


def _event(event_id, model, revenue, cogs, product="prod_chat"):
    return {"eventId": event_id, "customerId": "cust_acme", "productId": product,
            "occurredAt": AT, "provider": "OpenAI", "model": model, "inputTokens": 100,
            "cogsUsd": cogs, "revenueUsd": revenue}


def test_a_model_scoped_revenue_entitlement_counts_only_that_models_events(store, tenant):
    ingest(tenant, [_event("g1", "gpt-4o", "0.30", "0.10"), _event("g2", "gpt-4o", "0.25", "0.05"),
                    _event("c1", "claude-sonnet-4-6", "0.50", "0.20"),
                    _event("g3", "gpt-4o", "0.40", "0.10", product="prod_agent")])
    client = api_client(tenant)
    revenue = entitlement_create(tenant=tenant, customer_id="cust_acme", feature="REVENUE_USD",
                                 model="gpt-4o", period="NONE", limit=Decimal(1))
    both = entitlement_create(tenant=tenant, customer_id="cust_acme", feature="REVENUE_USD",
                              model="gpt-4o", product_id="prod_chat", period="NONE",
                              limit=Decimal("0.55"))
    cogs = entitlement_create(tenant=tenant, customer_id="cust_acme", feature="COGS_USD",
                              model="gpt-4o", period="NONE", limit=Decimal(1))
    day = {"from": f"{AT:%Y-%m-%d}", "to": f"{AT:%Y-%m-%d}"}
    rows = {r["model"]: r for r in client.get("/api/v1/analytics/cogs/dashboard/by-model",
                                              day).json()}
    got = client.get(f"/api/v1/entitlements/{revenue.pk}").json()
    assert got["usage"] == rows["gpt-4o"]["expectedRevenueUsd"] == 0.95
    assert client.get(f"/api/v1/entitlements/{cogs.pk}").json()["usage"] == rows[
        "gpt-4o"]["cogsUsd"] == 0.25
    # product and model together: only prod_chat's gpt-4o events, 0.30 + 0.25, at its limit
    body = client.get(f"/api/v1/entitlements/{both.pk}").json()
    assert (body["usage"], body["status"]) == (0.55, "EXCEEDED")
    assert decide(tenant.slug, customer_id="cust_acme", product_id="prod_chat",
                  model="gpt-4o").reason_code == "ENTITLEMENT_EXCEEDED"
    # the other model, and the same model on the other product, are not held by it
    assert decide(tenant.slug, customer_id="cust_acme", product_id="prod_chat",
                  model="claude-sonnet-4-6").decision == "ALLOW"
    assert decide(tenant.slug, customer_id="cust_acme", product_id="prod_agent",
                  model="gpt-4o").decision == "ALLOW"
