"""Ledger entries: the one shape every COST and REVENUE row of the event store has."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from aforo import eventstore

ZERO = Decimal(0)

# What every entry of an event carries, copied from its COST entry onto its REVENUE, SETTLE and
# CORRECTION entries so each groups with its event. A new dimension is one more name here (and
# its column: an event-store migration; its ingest field; the builder's DIMENSIONS).
EVENT_DIMENSIONS = ("customer_id", "product_id", "product_type", "provider", "model",
                    "requested_model", "tool_name", "source_type", "session_id", "agent")

LEDGER_DEFAULTS: dict[str, Any] = {
    "entry_kind": "ORIGINAL",
    **dict.fromkeys(EVENT_DIMENSIONS, ""),
    "latency_ms": 0, "event_count": 0,
    "input_tokens": 0, "output_tokens": 0, "cached_input_tokens": 0,
    "cache_write_input_tokens": 0, "reasoning_tokens": 0, "reasoning_steps": 0, "tool_calls": 0,
    "quantity": ZERO, "ai_cogs_usd": ZERO, "infra_cogs_usd": ZERO, "fee_cogs_usd": ZERO,
    "unclassified_cogs_usd": ZERO, "rated_revenue_usd": ZERO, "carried_revenue_usd": ZERO,
    "revenue_source": "NONE", "revenue_usd": ZERO,
    "cost_source": "RATE_CARD", "unpriced": 0,
    "invoice_id": "", "invoice_line_id": "", "attribution_run_id": "",
    # Set only on an allocation's entries (cost_sources.allocations, migration 0013).
    "allocation_id": "",
    # The wallets an event burns and the nano-credits taken from each (entitlements.burn);
    # a materialized view writes them to the credit ledger as DEBIT entries (0011). Never
    # mutated: a row that burns gets lists of its own.
    "credit_wallet_ids": [], "credit_debits_nano": [],
}
LEDGER_COLUMNS = ("tenant_id", "entry_id", "entry_type", "event_id", "occurred_at",
                  "recorded_at", *LEDGER_DEFAULTS)


def ledger_entry(*, tenant_id: str, entry_id: str, entry_type: str, event_id: str,
                 occurred_at: datetime, recorded_at: datetime | None = None,
                 **values: Any) -> dict[str, Any]:
    """A complete ledger row: unknown columns are an error, missing ones take their default."""
    unknown = set(values) - set(LEDGER_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown ledger columns: {sorted(unknown)}")
    row = {"tenant_id": tenant_id, "entry_id": entry_id, "entry_type": entry_type,
           "event_id": event_id, "occurred_at": occurred_at,
           "recorded_at": recorded_at or datetime.now(timezone.utc)}
    row.update(LEDGER_DEFAULTS)
    row.update(values)
    return row


def ledger_append(rows: list[dict[str, Any]]) -> int:
    """Append entries to the ledger (never updates); returns the number written."""
    return eventstore.insert("ledger", rows)
