"""Ingestion reads: unpriced events per model, and events' current cost for repricing."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from aforo import eventstore


def unpriced_models(tenant_slug: str, *, start: datetime | None = None,
                    end: datetime | None = None) -> list[dict[str, Any]]:
    """Per provider and model, the events still unpriced (no cost sent, no price in force)."""
    window = ""
    params: dict[str, Any] = {}
    if start is not None and end is not None:
        window = "AND occurred_at >= %(start)s AND occurred_at < %(end)s "
        params = {"start": start, "end": end}
    return eventstore.tenant_query(
        tenant_slug,
        "SELECT provider, model, sum(unpriced) AS events, min(occurred_at) AS first_seen, "
        "max(occurred_at) AS last_seen FROM ledger "
        f"WHERE tenant_id = %(tenant_id)s AND entry_type = 'COST' {window}"
        "GROUP BY provider, model HAVING events > 0 ORDER BY events DESC, provider, model",
        params,
    )


def priced_events_current(tenant_slug: str, *, start: datetime, end: datetime,
                          provider: str | None = None,
                          model: str | None = None) -> list[dict[str, Any]]:
    """Each rate-card-priced event in [start, end) with its cost as the ledger sums it now."""
    filters = ""
    params: dict[str, Any] = {"start": start, "end": end}
    if provider:
        filters += "AND lower(provider) = %(provider)s "
        params["provider"] = provider.strip().lower()
    if model:
        filters += "AND model = %(model)s "
        params["model"] = model
    # :TRICKY: ClickHouse aliases are visible in WHERE and inside other expressions, so an
    # alias equal to a column name (sum(x) AS x) turns `WHERE x ...` into an aggregate; every
    # alias here gets a cur_ prefix that is stripped below.
    # Corrections carry zero tokens, so sum() of tokens is the original's, and sum() of each
    # cost bucket is the event's current cost however many corrections it has had.
    dims = ("occurred_at", "customer_id", "product_id", "product_type", "provider", "model",
            "requested_model", "tool_name", "source_type", "session_id", "agent")
    measures = ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens",
                "reasoning_steps", "tool_calls", "quantity", "ai_cogs_usd", "infra_cogs_usd",
                "fee_cogs_usd", "unclassified_cogs_usd", "rated_revenue_usd", "unpriced")
    # An event's source is its ORIGINAL entry's (corrections copy it).
    columns = ", ".join([f"any({d}) AS cur_{d}" for d in dims]
                        + ["anyIf(revenue_source, entry_kind = 'ORIGINAL') AS cur_revenue_source"]
                        + [f"sum({m}) AS cur_{m}" for m in measures])
    rows = eventstore.tenant_query(
        tenant_slug,
        f"SELECT event_id, {columns} FROM ledger WHERE tenant_id = %(tenant_id)s "
        "AND entry_type = 'COST' AND cost_source = 'RATE_CARD' "
        "AND occurred_at >= %(start)s AND occurred_at < %(end)s "
        f"{filters}GROUP BY event_id ORDER BY event_id",
        params,
    )
    return [{key.removeprefix("cur_"): value for key, value in row.items()} for row in rows]
