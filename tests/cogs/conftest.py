"""COGS test helpers: revenue and cost-correction entries written as the billing app will."""
from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from aforo.ledger import ledger_append, ledger_entry
from aforo.models import Tenant


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


def cost_correction_entry(tenant: Tenant, event: dict[str, Any], **amounts: Decimal) -> dict:
    """A COST correction (event_count 0) adding the given bucket amounts to an event."""
    return ledger_entry(
        tenant_id=tenant.slug, entry_id=f"cor_{uuid.uuid4().hex}", entry_type="COST",
        event_id=event["eventId"], occurred_at=_at(event), entry_kind="CORRECTION",
        event_count=0, **_dimensions(event), **amounts,
    )
