"""Billing reads: usage per customer and product for invoicing, revenue status of events."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from aforo.ledger.query import COST, REVENUE, LedgerQuery


def usage_by_customer_product(tenant_id: str, *, start: datetime, end: datetime,
                              customer_ids: Iterable[str]) -> list[dict]:
    """Metered usage and COGS of [start, end) per customer and product (COST entries), with
    the keys the invoicing reads (events, input_tokens, output_tokens, tool_calls,
    reasoning_steps, cogs_usd)."""
    customers = tuple(sorted(set(customer_ids)))
    if not customers:
        return []
    rows = (LedgerQuery(tenant_id).between(start, end).where_sql(COST)
            .where_in("customer_id", customers)
            .dimensions("customer_id", "product_id")
            .measures("events", "tokens_in", "tokens_out", "tool_calls_n", "reasoning_steps_n",
                      "cogs")
            .group_by("customer_id", "product_id").having("events > 0")
            .order_by("customer_id", "product_id").fetch())
    return [{"customer_id": r["customer_id"], "product_id": r["product_id"],
             "events": r["events"], "input_tokens": r["tokens_in"],
             "output_tokens": r["tokens_out"], "tool_calls": r["tool_calls_n"],
             "reasoning_steps": r["reasoning_steps_n"], "cogs_usd": r["cogs"]} for r in rows]


def revenue_status(tenant_id: str, event_ids: Iterable[str]) -> dict[str, str]:
    """SETTLED for events holding revenue from an invoice, else SETTLING.

    An event whose every REVENUE entry was reversed (its invoice voided) is SETTLING again.
    """
    ids = tuple(sorted(set(event_ids)))
    if not ids:
        return {}
    rows = (LedgerQuery(tenant_id).dimensions("event_id")
            .expressions(f"{REVENUE_STATUS_SQL} AS status").where_sql(REVENUE)
            .where_in("event_id", ids).group_by("event_id").fetch())
    settled = {row["event_id"] for row in rows if row["status"] == "SETTLED"}
    return {i: ("SETTLED" if i in settled else "SETTLING") for i in ids}


# revenueStatus as a column expression over an event's ledger entries (GROUP BY event_id), for
# readers that build their own per-event ledger query (the COGS transactions list): every
# REVERSAL undoes one earlier ORIGINAL REVENUE entry.
REVENUE_STATUS_SQL = (
    "if(countIf(entry_type = 'REVENUE' AND entry_kind = 'ORIGINAL') > "
    "countIf(entry_type = 'REVENUE' AND entry_kind = 'REVERSAL'), 'SETTLED', 'SETTLING')"
)
