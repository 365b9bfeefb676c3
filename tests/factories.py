"""Test data through one door: `ingest(tenant, events)` sends API-shaped events through the real
ingestion service (validation, dedupe, pricing, rating, the ledger)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aforo.models import Tenant
from ingestion.services import events_ingest_dicts


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def ingest(tenant: Tenant, events: list[dict[str, Any]],
           now: datetime | None = None) -> list[dict[str, Any]]:
    """Ingest events given as API dicts; returns the ledger rows written. Any rejected event
    fails the test, so test data is always valid."""
    events = [{k: _iso(v) for k, v in e.items()} for e in events]
    report = events_ingest_dicts(tenant=tenant, events=events,
                                 now=now or datetime.now(timezone.utc))
    rejected = [r for r in report.results if r.status == "rejected"]
    assert not rejected, f"test events rejected: {rejected[:3]}"
    return report.rows


def invoice_lines(tenant: Tenant, invoice_id: str, *, customer: str, start: datetime,
                  end: datetime, lines: list[tuple[str, str, str, str]]):
    """Import a finalized invoice through the billing service: lines as (line id, product id,
    amount, unit)."""
    from decimal import Decimal

    from billing.services import LineSpec, invoice_import

    return invoice_import(
        tenant=tenant, invoice_id=invoice_id, customer_id=customer, period_start=start,
        period_end=end,
        lines=[LineSpec(line_id=lid, product_id=pid, amount_usd=Decimal(amount), unit=unit)
               for lid, pid, amount, unit in lines])


def on_plan(tenant: Tenant, customer_id: str, *, starts_at: datetime,
            components: list[tuple[str, str]], code: str | None = None):
    """Subscribe a customer (created if new) to a plan of (kind, unit price) components."""
    from decimal import Decimal

    from aforo.catalog import customer_create
    from aforo.models import Customer
    from billing.services import ComponentSpec, rate_plan_create, subscription_create

    customer = (Customer.objects.filter(tenant=tenant, external_id=customer_id).first()
                or customer_create(tenant=tenant, external_id=customer_id, name=customer_id))
    plan = rate_plan_create(tenant=tenant, code=code or f"plan-{customer_id}", components=[
        ComponentSpec(kind=kind, unit_price=Decimal(price)) for kind, price in components])
    return subscription_create(tenant=tenant, customer=customer, plan=plan, starts_at=starts_at)


def usage_events(prefix: str, *, customer: str, at: datetime, count: int, product: str = "p1",
                 spacing_s: int = 1, **fields: Any) -> list[dict[str, Any]]:
    """`count` events of a customer starting at `at`, `spacing_s` seconds apart, ids
    `prefix-0`, `prefix-1`...; `fields` (inputTokens, cogsUsd, ...) go on every event."""
    from datetime import timedelta

    return [{"eventId": f"{prefix}-{n}", "customerId": customer, "productId": product,
             "occurredAt": at + timedelta(seconds=n * spacing_s), **fields}
            for n in range(count)]
