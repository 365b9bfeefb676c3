"""Shared helpers of the billing tests: invoices through the service, ledger read-backs."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from aforo import eventstore
from billing.services import LineSpec, invoice_import

OCT = datetime(2026, 10, 1, tzinfo=timezone.utc)
NOV = datetime(2026, 11, 1, tzinfo=timezone.utc)


def event(event_id: str, *, at: str = "2026-10-10T12:00:00Z", customer: str = "cust_a",
          product: str = "prod_x", **usage) -> dict:
    return {"eventId": event_id, "occurredAt": at, "customerId": customer, "productId": product,
            "productType": "API_WITH_AI", "provider": "Anthropic", "model": "claude-sonnet-4-6",
            "cogsUsd": usage.pop("cogsUsd", "0.01"), **usage}


def invoice(tenant, invoice_id: str = "inv_1", *, customer: str = "cust_a",
            lines: list[tuple] = (("l1", "prod_x", "10.00", "EVENTS"),),
            start: datetime = OCT, end: datetime = NOV):
    return invoice_import(
        tenant=tenant, invoice_id=invoice_id, customer_id=customer, period_start=start,
        period_end=end,
        lines=[LineSpec(line_id=lid, product_id=pid, amount_usd=Decimal(amount), unit=unit)
               for lid, pid, amount, unit in lines])


def revenue_by_event(tenant, invoice_id: str | None = None) -> dict[str, Decimal]:
    """Net REVENUE per event (events netting to zero left out)."""
    rows = eventstore.tenant_query(
        tenant.slug,
        "SELECT event_id, sum(revenue_usd) AS revenue FROM ledger "
        "WHERE tenant_id = %(tenant_id)s AND entry_type = 'REVENUE' "
        "AND (%(invoice)s = '' OR invoice_id = %(invoice)s) GROUP BY event_id",
        {"invoice": invoice_id or ""})
    return {r["event_id"]: r["revenue"] for r in rows if r["revenue"] != 0}


def revenue_entries(tenant) -> list[dict]:
    return eventstore.tenant_query(
        tenant.slug,
        "SELECT * FROM ledger WHERE tenant_id = %(tenant_id)s AND entry_type = 'REVENUE' "
        "ORDER BY event_id, recorded_at, entry_kind")
