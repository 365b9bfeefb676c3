"""Billing reads: usage per customer and product for invoicing, revenue status of events."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from aforo import eventstore

_USAGE = """
SELECT customer_id, product_id, sum(event_count) AS events,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(tool_calls) AS tool_calls, sum(reasoning_steps) AS reasoning_steps,
       sum(ai_cogs_usd + infra_cogs_usd + fee_cogs_usd + unclassified_cogs_usd) AS cogs_usd
FROM ledger
WHERE tenant_id = %(tenant_id)s AND entry_type = 'COST'
  AND occurred_at >= %(start)s AND occurred_at < %(end)s
  AND customer_id IN %(customers)s
GROUP BY customer_id, product_id
HAVING events > 0
ORDER BY customer_id, product_id
"""


def usage_by_customer_product(tenant_id: str, *, start: datetime, end: datetime,
                              customer_ids: Iterable[str]) -> list[dict]:
    """Metered usage and COGS of [start, end) per customer and product (COST entries)."""
    customers = tuple(sorted(set(customer_ids)))
    if not customers:
        return []
    # :TRICKY: sum() of Decimal(18, 9) comes back as Decimal(38, 9); still exact.
    return eventstore.tenant_query(tenant_id, _USAGE,
                                   {"start": start, "end": end, "customers": customers})


def revenue_status(tenant_id: str, event_ids: Iterable[str]) -> dict[str, str]:
    """SETTLED for events holding revenue from an invoice, else SETTLING.

    An event whose every REVENUE entry was reversed (its invoice voided) is SETTLING again.
    """
    ids = tuple(sorted(set(event_ids)))
    if not ids:
        return {}
    rows = eventstore.tenant_query(
        tenant_id,
        f"SELECT event_id, {REVENUE_STATUS_SQL} AS status FROM ledger "
        "WHERE tenant_id = %(tenant_id)s AND entry_type = 'REVENUE' AND event_id IN %(ids)s "
        "GROUP BY event_id",
        {"ids": ids},
    )
    settled = {row["event_id"] for row in rows if row["status"] == "SETTLED"}
    return {i: ("SETTLED" if i in settled else "SETTLING") for i in ids}


# revenueStatus as a column expression over an event's ledger entries (GROUP BY event_id), for
# readers that build their own per-event ledger query (the COGS transactions list): every
# REVERSAL undoes one earlier ORIGINAL REVENUE entry.
REVENUE_STATUS_SQL = (
    "if(countIf(entry_type = 'REVENUE' AND entry_kind = 'ORIGINAL') > "
    "countIf(entry_type = 'REVENUE' AND entry_kind = 'REVERSAL'), 'SETTLED', 'SETTLING')"
)
