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
    # :TRICKY: corrections carry zero tokens, so sum() of tokens is the original's, and sum()
    # of each cost bucket is the event's current cost however many corrections it has had.
    return eventstore.tenant_query(
        tenant_slug,
        "SELECT event_id, any(occurred_at) AS occurred_at, any(customer_id) AS customer_id, "
        "any(product_id) AS product_id, any(product_type) AS product_type, "
        "any(provider) AS provider, any(model) AS model, "
        "any(requested_model) AS requested_model, any(tool_name) AS tool_name, "
        "any(source_type) AS source_type, any(session_id) AS session_id, "
        "sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
        "sum(cached_input_tokens) AS cached_input_tokens, "
        "sum(reasoning_tokens) AS reasoning_tokens, sum(reasoning_steps) AS reasoning_steps, "
        "sum(tool_calls) AS tool_calls, sum(quantity) AS quantity, "
        "sum(ai_cogs_usd) AS ai_cogs_usd, sum(infra_cogs_usd) AS infra_cogs_usd, "
        "sum(fee_cogs_usd) AS fee_cogs_usd, sum(unclassified_cogs_usd) AS unclassified_cogs_usd, "
        "sum(rated_revenue_usd) AS rated_revenue_usd, sum(unpriced) AS unpriced "
        "FROM ledger WHERE tenant_id = %(tenant_id)s AND entry_type = 'COST' "
        "AND cost_source = 'RATE_CARD' AND occurred_at >= %(start)s AND occurred_at < %(end)s "
        f"{filters}GROUP BY event_id ORDER BY event_id",
        params,
    )
