"""Test data through one door: `ingest(tenant, events)` takes events in the API's shape.

Until the ingestion service lands this writes the events' carried costs straight to the ledger
(events must carry their cost: cogsUsd and/or aiCogsUsd / infraCogsUsd / feeCogsUsd). When it
lands, this calls `ingestion.services.events_ingest`, and every test written against it keeps
working unchanged.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from aforo.catalog import catalog_register
from aforo.ledger import ledger_append, ledger_entry
from aforo.models import Tenant

ZERO = Decimal(0)


def _dec(value: Any) -> Decimal:
    return ZERO if value is None else Decimal(str(value))


def ingest(tenant: Tenant, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ingest events given as API dicts; returns the ledger rows written."""
    rows = []
    for event in events:
        ai, infra, fee = (_dec(event.get(k)) for k in ("aiCogsUsd", "infraCogsUsd", "feeCogsUsd"))
        total = event.get("cogsUsd")
        unclassified = _dec(total) - ai - infra - fee if total is not None else ZERO
        occurred = event["occurredAt"]
        if isinstance(occurred, str):
            occurred = datetime.fromisoformat(occurred.replace("Z", "+00:00"))
        rows.append(ledger_entry(
            tenant_id=tenant.slug, entry_id=event["eventId"], entry_type="COST",
            event_id=event["eventId"], occurred_at=occurred,
            customer_id=event.get("customerId", ""), product_id=event.get("productId", ""),
            product_type=event.get("productType", ""), provider=event.get("provider", ""),
            model=event.get("model", ""), requested_model=event.get("requestedModel", ""),
            tool_name=event.get("toolName") or "", source_type=event.get("sourceType", ""),
            session_id=event.get("sessionId", ""), event_count=1,
            input_tokens=event.get("inputTokens", 0), output_tokens=event.get("outputTokens", 0),
            cached_input_tokens=event.get("cachedInputTokens", 0),
            reasoning_tokens=event.get("reasoningTokens", 0),
            reasoning_steps=event.get("reasoningSteps", 0), tool_calls=event.get("toolCalls", 0),
            quantity=_dec(event.get("quantity", 1)), ai_cogs_usd=ai, infra_cogs_usd=infra,
            fee_cogs_usd=fee, unclassified_cogs_usd=unclassified, cost_source="CARRIED",
        ))
    catalog_register(
        tenant=tenant,
        customer_ids={e.get("customerId", "") for e in events},
        products={e.get("productId", ""): e.get("productType", "") for e in events},
    )
    ledger_append(rows)
    return rows
