"""Totals over a time window for one scope: what budgets, alert rules and Margin Guard act on.

Windows are moments (the last hour, period to date), not the dashboards' whole days. Revenue
here is the revenue rated at ingest (what the customer's plan will charge for each event),
because invoice attribution lags by a night and an alert or a guard must act now.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from aforo import eventstore

ZERO = Decimal(0)
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class WindowTotals:
    cogs_usd: Decimal
    rated_revenue_usd: Decimal
    events: int

    @property
    def margin_usd(self) -> Decimal:
        return self.rated_revenue_usd - self.cogs_usd

    @property
    def margin_pct(self) -> Decimal | None:
        """Null where revenue is zero (never infinite)."""
        if not self.rated_revenue_usd:
            return None
        return self.margin_usd / self.rated_revenue_usd * HUNDRED

    @property
    def cost_to_revenue(self) -> Decimal | None:
        if not self.rated_revenue_usd:
            return None
        return self.cogs_usd / self.rated_revenue_usd


def window_totals(tenant_slug: str, *, start: datetime, end: datetime,
                  product_id: str | None = None,
                  customer_id: str | None = None) -> WindowTotals:
    """COGS, rated revenue and events of COST entries with occurred_at in [start, end)."""
    scope = ""
    params = {"start": start, "end": end}
    if product_id:
        scope += "AND product_id = %(product_id)s "
        params["product_id"] = product_id
    if customer_id:
        scope += "AND customer_id = %(customer_id)s "
        params["customer_id"] = customer_id
    row = eventstore.tenant_query(
        tenant_slug,
        "SELECT sum(ai_cogs_usd + infra_cogs_usd + fee_cogs_usd + unclassified_cogs_usd) "
        "AS cogs, sum(rated_revenue_usd) AS rated, sum(event_count) AS events FROM ledger "
        "WHERE tenant_id = %(tenant_id)s AND entry_type = 'COST' "
        f"AND occurred_at >= %(start)s AND occurred_at < %(end)s {scope}",
        params,
    )[0]
    # :TRICKY: sum() over no rows is 0 on both versions, but Decimal(38, 9) sums of
    # Decimal(18, 9) columns come back as Decimal; events as int.
    return WindowTotals(cogs_usd=row["cogs"] or ZERO, rated_revenue_usd=row["rated"] or ZERO,
                        events=int(row["events"] or 0))
