"""Accepted events go to the tenant's Channels group, where the console's live ledger listens."""
from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from aforo.models import Tenant

log = logging.getLogger(__name__)
MAX_PER_MESSAGE = 200  # the live view shows the newest events; a 1,000-event batch is trimmed


def ledger_group(tenant_slug: str) -> str:
    return f"ledger.{tenant_slug}"


def live_row(row: dict[str, Any]) -> dict[str, Any]:
    """A COST entry as the live ledger shows it (the transaction row's fields; money as text)."""
    cogs = (row["ai_cogs_usd"] + row["infra_cogs_usd"] + row["fee_cogs_usd"]
            + row["unclassified_cogs_usd"])
    return {
        "eventId": row["event_id"],
        "occurredAt": row["occurred_at"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "customerId": row["customer_id"], "productId": row["product_id"],
        "productType": row["product_type"], "provider": row["provider"], "model": row["model"],
        "toolName": row["tool_name"] or None, "sourceType": row["source_type"],
        "cogsUsd": str(cogs), "aiCogsUsd": str(row["ai_cogs_usd"]),
        "infraCogsUsd": str(row["infra_cogs_usd"]), "feeCogsUsd": str(row["fee_cogs_usd"]),
        "unclassifiedCogsUsd": str(row["unclassified_cogs_usd"]),
        "revenueUsd": "0", "revenueStatus": "SETTLING",
    }


def ledger_broadcast(*, tenant: Tenant, rows: list[dict[str, Any]]) -> None:
    """Send accepted events to the live ledger; a failure here never fails the ingest."""
    layer = get_channel_layer()
    if layer is None or not rows:
        return
    message = {"type": "ledger.events",
               "events": [live_row(r) for r in rows[-MAX_PER_MESSAGE:]]}
    try:
        async_to_sync(layer.group_send)(ledger_group(tenant.slug), message)
    except Exception:  # the events are written; the live view is best effort
        log.warning("live ledger broadcast failed for %s", tenant.slug, exc_info=True)
