"""Ingestion reads: unpriced events per model, and events' current cost for repricing."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from aforo.ledger import EVENT_DIMENSIONS
from aforo.ledger.query import COST, METERED, LedgerQuery


def unpriced_models(tenant_slug: str, *, start: datetime | None = None,
                    end: datetime | None = None) -> list[dict[str, Any]]:
    """Per provider and model, the events still unpriced (no cost sent, no price in force)."""
    query = LedgerQuery(tenant_slug).where_sql(COST)
    if start is not None and end is not None:
        query = query.between(start, end)
    rows = (query.dimensions("provider", "model").measures("unpriced_events")
            .expressions("min(occurred_at) AS first_seen", "max(occurred_at) AS last_seen")
            .group_by("provider", "model").having("unpriced_events > 0")
            .order_by("unpriced_events DESC", "provider", "model").fetch())
    return [{"provider": r["provider"], "model": r["model"], "events": r["unpriced_events"],
             "first_seen": r["first_seen"], "last_seen": r["last_seen"]} for r in rows]


# The dimensions and measures of an event's current cost, as repricing needs them.
_DIMENSIONS = ("occurred_at", *EVENT_DIMENSIONS)
_MEASURES = ("input_tokens", "output_tokens", "cached_input_tokens",
             "cache_write_input_tokens", "reasoning_tokens",
             "reasoning_steps", "tool_calls", "quantity", "ai_cogs_usd", "infra_cogs_usd",
             "fee_cogs_usd", "unclassified_cogs_usd", "rated_revenue_usd", "unpriced")


def priced_events_current(tenant_slug: str, *, start: datetime, end: datetime,
                          provider: str | None = None,
                          model: str | None = None) -> list[dict[str, Any]]:
    """Each rate-card-priced event in [start, end) with its cost as the ledger sums it now."""
    # An allocation's entries are not the event's price: repricing never sees (or undoes) them.
    query = (LedgerQuery(tenant_slug).between(start, end).where_sql(COST).where_sql(METERED)
             .where(cost_source="RATE_CARD", model=model or None))
    if provider:
        query = query.where_sql("lower(provider) = %(provider_lower)s",
                                provider_lower=provider.strip().lower())
    # :TRICKY: ClickHouse aliases are visible in WHERE and inside other expressions, so an
    # alias equal to a column name (sum(x) AS x) turns `WHERE x ...` into an aggregate; every
    # alias here gets a cur_ prefix that is stripped below.
    # Corrections carry zero tokens, so sum() of tokens is the original's, and sum() of each
    # cost bucket is the event's current cost however many corrections it has had. An event's
    # source is its ORIGINAL entry's (corrections copy it).
    rows = (query.dimensions("event_id")
            .expressions(*(f"any({d}) AS cur_{d}" for d in _DIMENSIONS),
                         "anyIf(revenue_source, entry_kind = 'ORIGINAL') AS cur_revenue_source",
                         *(f"sum({m}) AS cur_{m}" for m in _MEASURES))
            .group_by("event_id").order_by("event_id").fetch())
    return [{key.removeprefix("cur_"): value for key, value in row.items()} for row in rows]
