"""Test data through one door: `ingest(tenant, events)` sends API-shaped events through the real
ingestion service (validation, dedupe, pricing, rating, the ledger)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
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


def seed_every_kind(tenant: Tenant, *, now: datetime) -> None:
    """A little of everything the API lists (events of every shape, an invoice attributed, a
    budget and rules that fired, a guard policy and its state, rate-card rows), so contract
    tests see real rows, nulls and nested objects rather than empty pages."""
    from datetime import timedelta
    from decimal import Decimal

    from billing.attribution import attribution_run
    from budgets import services as budgets
    from ingestion.prices import fee_rule_create, infra_rule_create, model_price_create
    from margin_guard.models import GuardPolicy
    from margin_guard.services import guard_evaluate

    day = timedelta(days=1)
    model_price_create(tenant=tenant, provider="OpenAI", model="gpt-4o",
                       effective_from=now - 30 * day, input_per_1m=Decimal("2.5"),
                       output_per_1m=Decimal(10))
    infra_rule_create(tenant=tenant, product_id="prod_chat", effective_from=now - 30 * day,
                      per_event_usd=Decimal("0.0001"))
    fee_rule_create(tenant=tenant, source_type="GATEWAY", effective_from=now - 30 * day,
                    pct_of_ai_cost=Decimal("5"))
    events = []
    for n in range(30):
        events.append({"eventId": f"seed-{n}", "occurredAt": now - timedelta(hours=n * 7),
                       "customerId": f"cust_{n % 3}", "productId": ("prod_chat", "prod_agent")[
                           n % 2], "productType": "API_WITH_AI", "provider": "OpenAI",
                       "model": "gpt-4o", "sourceType": "GATEWAY", "inputTokens": 1000 + n,
                       "outputTokens": 200, "toolName": "search" if n % 4 == 0 else None,
                       "sessionId": f"s{n % 5}"})
    events.append({"eventId": "seed-carried", "occurredAt": now - day, "customerId": "cust_0",
                   "productId": "prod_chat", "cogsUsd": "0.5", "aiCogsUsd": "0.3",
                   "revenueUsd": "0.9"})
    events.append({"eventId": "seed-spike", "occurredAt": now - day, "customerId": "cust_1",
                   "productId": "prod_chat", "provider": "OpenAI", "model": "gpt-4o",
                   "inputTokens": 900_000, "outputTokens": 100_000})
    ingest(tenant, events, now=now)
    start = (now - 20 * day).replace(hour=0, minute=0, second=0)
    invoice_lines(tenant, "inv-seed", customer="cust_0", start=start, end=now + day,
                  lines=[("l1", "prod_chat", "12.50", "EVENTS"),
                         ("l2", "prod_agent", "3.00", "TOKENS")])
    attribution_run(tenant=tenant, trigger="API")
    budgets.budget_create(tenant=tenant, name="Seed budget", period="MONTHLY",
                          cap_usd=Decimal("0.01"), notify_channel="EMAIL",
                          notify_destination="ops@example.com")
    budgets.alert_rule_create(tenant=tenant, name="Seed rule", metric="COST", comparison="GT",
                              threshold=Decimal("0.001"), window="30d", channel="EMAIL",
                              destination="ops@example.com")
    budgets.alert_rule_create(tenant=tenant, name="Seed margin", metric="MARGIN",
                              comparison="LT", threshold=Decimal(99), window="30d",
                              channel="EMAIL", destination="ops@example.com")
    budgets.alerts_evaluate(now=now, tenant=tenant)
    GuardPolicy.objects.create(tenant=tenant, name="Seed guard", scope="TENANT",
                               mode="DRY_RUN", min_events=1, notify_channel="EMAIL",
                               notify_destination="ops@example.com")
    guard_evaluate(tenant=tenant, customer_id="cust_1", product_id="prod_chat", now=now)
def usage_events(prefix: str, *, customer: str, at: datetime, count: int, product: str = "p1",
                 spacing_s: int = 1, **fields: Any) -> list[dict[str, Any]]:
    """`count` events of a customer starting at `at`, `spacing_s` seconds apart, ids
    `prefix-0`, `prefix-1`...; `fields` (inputTokens, cogsUsd, ...) go on every event."""
    from datetime import timedelta

    return [{"eventId": f"{prefix}-{n}", "customerId": customer, "productId": product,
             "occurredAt": at + timedelta(seconds=n * spacing_s), **fields}
            for n in range(count)]


REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


def reference_file(relative: str):
    """A file of ../shared/reference, read in place; the test is skipped where it is absent."""
    import pytest

    path = REFERENCE / relative
    if not path.exists():
        pytest.skip(f"reference file {relative} is not here")
    return path


def cost_source(tenant: Tenant, kind: str, name: str | None = None):
    """An UPLOAD cost source of the kind, through the service."""
    from cost_sources.services import cost_source_create

    return cost_source_create(tenant=tenant, name=name or f"{kind.lower()} bills", kind=kind)


def import_costs(source, path):
    """Import a file (a path) into the source through the import service; the run."""
    from cost_sources.services import cost_import_file

    with open(path, "rb") as stream:
        return cost_import_file(source=source, stream=stream, file_name=str(path))


def openai_costs_page(buckets: list[tuple[datetime, list[tuple[str, str]]]]) -> dict:
    """An OpenAI Costs API page (the reference's shape) of daily buckets of (line item, USD)."""
    return {"object": "page", "has_more": False, "next_page": None, "data": [
        {"object": "bucket", "start_time": int(day.timestamp()),
         "end_time": int((day + timedelta(days=1)).timestamp()),
         "results": [{"object": "organization.costs.result",
                      "amount": {"value": "__" + amount + "__", "currency": "usd"},
                      "line_item": item, "project_id": None, "api_key_id": None,
                      "quantity": None, "quantity_unit": None} for item, amount in lines]}
        for day, lines in buckets]}


def write_page(path, page: dict) -> None:
    import json

    # Amounts as JSON numbers (not strings), as OpenAI sends them.
    text = json.dumps(page)
    path.write_text(text.replace('"__', "").replace('__"', ""))
