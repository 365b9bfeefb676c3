"""A transaction's revenueStatus follows attribution: SETTLING, SETTLED, and SETTLING again
once its invoice is voided (the same rule as billing.queries.REVENUE_STATUS_SQL)."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from billing.attribution import attribution_run
from billing.services import LineSpec, invoice_import, invoice_void
from tests.conftest import api_client
from tests.factories import ingest

URL = "/api/v1/analytics/cogs/dashboard/transactions"


def statuses(tenant) -> dict[str, str]:
    body = api_client(tenant).get(URL, {"from": "2026-10-01", "to": "2026-10-31"}).json()
    return {row["eventId"]: row["revenueStatus"] for row in body["content"]}


def test_revenue_status_follows_attribution_and_voids(store, tenant):
    ingest(tenant, [{"eventId": f"rs{n}", "occurredAt": f"2026-10-0{n + 1}T10:00:00Z",
                     "customerId": "cust_rs", "productId": "prod_rs", "cogsUsd": "0.10"}
                    for n in range(2)])
    assert set(statuses(tenant).values()) == {"SETTLING"}
    invoice = invoice_import(
        tenant=tenant, invoice_id="inv-rs", customer_id="cust_rs",
        period_start=datetime(2026, 10, 1, tzinfo=timezone.utc),
        period_end=datetime(2026, 11, 1, tzinfo=timezone.utc),
        lines=[LineSpec(line_id="l1", product_id="prod_rs", amount_usd=Decimal("1.00"),
                        unit="EVENTS")])
    attribution_run(tenant=tenant)
    assert set(statuses(tenant).values()) == {"SETTLED"}
    invoice_void(invoice=invoice)
    attribution_run(tenant=tenant)
    assert set(statuses(tenant).values()) == {"SETTLING"}
