"""Test data through one door: `ingest(tenant, events)` sends API-shaped events through the real
ingestion service (validation, dedupe, pricing, rating, the ledger)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from aforo import eventstore
from aforo.catalog import customer_create
from aforo.ledger import ledger_append, ledger_entry
from aforo.models import Customer, Tenant
from billing.services import LineSpec, invoice_import, rate_plan_create, subscription_create
from ingestion.services import events_ingest_dicts

OCT = datetime(2026, 10, 1, tzinfo=timezone.utc)
NOV = datetime(2026, 11, 1, tzinfo=timezone.utc)

# The product page's example transaction (its revenue, 0.51, comes through attribution).
PRODUCT_PAGE_EVENT = {
    "eventId": "evt_a7f3k2m9", "occurredAt": "2026-06-14T18:33:00Z", "customerId": "cust_acme",
    "productId": "prod_translation", "productType": "API_WITH_AI", "provider": "Anthropic",
    "model": "claude-sonnet-4-6", "toolName": None, "sourceType": "GATEWAY",
    "aiCogsUsd": "0.14", "infraCogsUsd": "0.03", "feeCogsUsd": "0.01",
    "inputTokens": 1000, "outputTokens": 200}


# Amounts for property tests: up to 3 USD at the ledger's nanodollar quantum.
ledger_amounts = st.decimals(min_value=0, max_value=Decimal("3"), places=9, allow_nan=False,
                             allow_infinity=False)

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
    from ingestion.models import GatewayFeeRule, InfraCostRule
    from ingestion.prices import model_price_create, rule_create
    from margin_guard.models import GuardPolicy
    from margin_guard.services import guard_evaluate

    day = timedelta(days=1)
    model_price_create(tenant=tenant, provider="OpenAI", model="gpt-4o",
                       effective_from=now - 30 * day, input_per_1m=Decimal("2.5"),
                       output_per_1m=Decimal(10))
    rule_create(kind=InfraCostRule, tenant=tenant, product_id="prod_chat",
                effective_from=now - 30 * day, per_event_usd=Decimal("0.0001"))
    rule_create(kind=GatewayFeeRule, tenant=tenant, source_type="GATEWAY",
                effective_from=now - 30 * day, pct_of_ai_cost=Decimal("5"))
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


# --- Billing: invoices through the service, plans, the ledger's revenue read back -------------

def event(event_id: str, *, at: str = "2026-10-10T12:00:00Z", customer: str = "cust_a",
          product: str = "prod_x", **usage) -> dict:
    """One API-shaped event with its provider cost (override any field by keyword)."""
    return {"eventId": event_id, "occurredAt": at, "customerId": customer, "productId": product,
            "productType": "API_WITH_AI", "provider": "Anthropic", "model": "claude-sonnet-4-6",
            "cogsUsd": usage.pop("cogsUsd", "0.01"), **usage}


def invoice(tenant, invoice_id: str = "inv_1", *, customer: str = "cust_a",
            lines: list[tuple] = (("l1", "prod_x", "10.00", "EVENTS"),),
            start: datetime = OCT, end: datetime = NOV):
    """A finalized invoice through `invoice_import` (attribution runs as in production)."""
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


def subscribe(tenant, *components, starts=datetime(2026, 1, 1, tzinfo=timezone.utc),
              ends=None, customer="cust_a"):
    """A rate plan of `components` and the customer's subscription to it."""
    plan = rate_plan_create(tenant=tenant, code=f"plan{len(components)}{starts:%m}{customer}",
                            components=components)
    cust = (Customer.objects.filter(tenant=tenant, external_id=customer).first()
            or customer_create(tenant=tenant, external_id=customer))
    return subscription_create(tenant=tenant, customer=cust, plan=plan, starts_at=starts,
                               ends_at=ends)


def usage_row(**values) -> dict:
    """A ledger-shaped usage row for the rater (zero usage and cost unless given)."""
    row = {"customer_id": "cust_a", "product_id": "prod_x",
           "occurred_at": datetime(2026, 10, 10, 12, tzinfo=timezone.utc),
           "input_tokens": 0, "output_tokens": 0, "tool_calls": 0, "reasoning_steps": 0,
           "ai_cogs_usd": Decimal(0), "infra_cogs_usd": Decimal(0), "fee_cogs_usd": Decimal(0),
           "unclassified_cogs_usd": Decimal(0)}
    row.update(values)
    return row


# --- Ledger entries written as the billing app writes them (for the read side's tests) --------

def _at(event: dict[str, Any]) -> datetime:
    occurred = event["occurredAt"]
    if isinstance(occurred, str):
        occurred = datetime.fromisoformat(occurred.replace("Z", "+00:00"))
    return occurred


def _dimensions(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "customer_id": event.get("customerId", ""), "product_id": event.get("productId", ""),
        "product_type": event.get("productType", ""), "provider": event.get("provider", ""),
        "model": event.get("model", ""), "tool_name": event.get("toolName") or "",
        "source_type": event.get("sourceType", ""), "session_id": event.get("sessionId", ""),
        "agent": event.get("agent") or "",
    }


def revenue_entry(tenant: Tenant, event: dict[str, Any], amount: Decimal | str,
                  *, kind: str = "ORIGINAL") -> dict[str, Any]:
    """A REVENUE entry for an ingested event (API shape), as attribution writes them."""
    return ledger_entry(
        tenant_id=tenant.slug, entry_id=f"rev_{uuid.uuid4().hex}", entry_type="REVENUE",
        event_id=event["eventId"], occurred_at=_at(event), entry_kind=kind,
        revenue_usd=Decimal(str(amount)), invoice_id="inv_test", invoice_line_id="line_test",
        attribution_run_id="run_test", **_dimensions(event),
    )


def attribute(tenant: Tenant, event: dict[str, Any], amount: Decimal | str) -> None:
    """Give an event revenue as attribution would: its REVENUE entry, then its settlement."""
    from billing.settlement import settlements_reconcile_events

    ledger_append([revenue_entry(tenant, event, amount)])
    settlements_reconcile_events(tenant_slug=tenant.slug, events=[(event["eventId"], _at(event))],
                                 run_id=f"test-{uuid.uuid4().hex}")


def send_batch(tenant: Tenant, events: list[dict[str, Any]], corrections: list[dict],
               attributed: list[tuple[dict[str, Any], Decimal]], *,
               now: datetime | None = None) -> None:
    """One producer batch and what follows it: the events ingested (at `now`), then their cost
    corrections appended, then each attributed (REVENUE and SETTLE entries)."""
    if events:
        ingest(tenant, events, now=now)
    if corrections:
        ledger_append(corrections)
    for event, amount in attributed:
        attribute(tenant, event, amount)


def cost_correction_entry(tenant: Tenant, event: dict[str, Any], **amounts: Decimal) -> dict:
    """A COST correction (event_count 0) adding the given bucket amounts to an event."""
    return ledger_entry(
        tenant_id=tenant.slug, entry_id=f"cor_{uuid.uuid4().hex}", entry_type="COST",
        event_id=event["eventId"], occurred_at=_at(event), entry_kind="CORRECTION",
        event_count=0, **_dimensions(event), **amounts,
    )

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


# --- Entitlements and credits ---------------------------------------------------------------

def prepaid_wallet(tenant: Tenant, customer: str, *, credits: str = "100",
                   per_1k_tokens: str = "1", priority: int = 1, name: str = "Prepaid",
                   now: datetime | None = None, **fields: Any):
    """A wallet burning `per_1k_tokens` credits per 1,000 tokens, topped up with `credits`
    paid credits, through the services."""
    from entitlements.services import top_up_create, wallet_create

    wallet, _warnings = wallet_create(
        tenant=tenant, customer_id=customer, name=name, credit_value_usd=Decimal("0.01"),
        priority=priority, burn_rates=[{"feature": "TOKENS",
                                        "creditsPerUnit": str(Decimal(per_1k_tokens) / 1000)}],
        **fields)
    if Decimal(credits):
        top_up_create(wallet=wallet, paid_credits=Decimal(credits),
                      idempotency_key=f"seed-{wallet.pk}", now=now)
    return wallet


def token_events(prefix: str, count: int, tokens: int, *, customer: str = "cust_acme",
                 at: datetime | None = None, **fields: Any) -> list[dict[str, Any]]:
    """`count` events of `tokens` input tokens each, five minutes ago (or at `at`)."""
    at = at or datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)
    return usage_events(prefix, customer=customer, at=at, count=count, inputTokens=tokens,
                        outputTokens=0, cogsUsd="0.001", **fields)


def migrate_to(targets) -> Any:
    """Migrate the test database to `targets` (app, migration) pairs; the apps of that state,
    for a migration test's historical models."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest_migrations() -> list:
    """Every app's last migration: what a migration test migrates back to."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    return MigrationExecutor(connection).loader.graph.leaf_nodes()
