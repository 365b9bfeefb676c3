"""The customer ledger: every customer's figures, tagged, ranked, counted and paged by the
engine, so Python renders only the rows it shows (10,000 customers in one response)."""
from __future__ import annotations

import enum
from decimal import Decimal
from typing import NamedTuple

from aforo.ledger.query import LedgerQuery, tenant_sql, tenant_sql_rows
from aforo.models import Tenant
from aforo.periods import Period
from cogs import expected
from cogs.margins import ZERO, CustomerTag, ExpectedMargin, Margin, TagFloors
from cogs.queries.breakdowns import COGS, Dimension, decimal_keys, estimates, rollup_for


class _CustomerFields(NamedTuple):  # a tuple: 10k of them are built per request
    customer_id: str
    event_count: int
    cogs_usd: Decimal
    revenue_usd: Decimal
    tag: CustomerTag | None
    settling_revenue_usd: Decimal = ZERO  # expected revenue of events not yet attributed
    unknown_events: int = 0


class CustomerRow(_CustomerFields, Margin, ExpectedMargin):
    __slots__ = ()


# Tags as SQL ranks, worst first (the order a tag column sorts in); rank 4 is "no tag".
TAG_RANKS: tuple[CustomerTag | None, ...] = (
    CustomerTag.UNPROFITABLE, CustomerTag.AT_RISK, CustomerTag.STANDARD, CustomerTag.HIGH_VALUE,
    None)
# cogs.margins.tag_of in SQL: the same comparisons, exact in Decimal arithmetic.
_TAG_RANK_SQL = """multiIf(
    revenue = 0 AND cogs = 0, 4,
    revenue < cogs, 0,
    revenue <= 0 OR (revenue - cogs) * 100 < revenue * toDecimal64(%(at_risk)s, 2), 1,
    (revenue - cogs) * 100 >= revenue * toDecimal64(%(high_value)s, 2), 3,
    2)"""


class CustomerOrder(enum.Enum):
    """Sort keys of the customer ledger (ties by customer id, ascending)."""

    CUSTOMER = "customer"
    TAG = "tag"
    EVENTS = "events"
    REVENUE = "revenue"
    COGS = "cogs"
    MARGIN = "margin"
    MARGIN_PCT = "margin_pct"


# Each key sorted in the requested direction.
_ORDER_SQL = {
    CustomerOrder.CUSTOMER: ("lower(customer_id)",),
    CustomerOrder.TAG: ("tag_rank",),
    CustomerOrder.EVENTS: ("events",),
    CustomerOrder.REVENUE: decimal_keys("revenue"),
    CustomerOrder.COGS: decimal_keys("cogs"),
    CustomerOrder.MARGIN: decimal_keys("revenue - cogs"),
    # Customers without revenue (no margin %) sort below every percentage. The ratio is a
    # Float64 for ordering only; the figures shown are the exact Decimals.
    CustomerOrder.MARGIN_PCT: (
        "revenue != 0", "if(revenue != 0, toFloat64(revenue - cogs) / toFloat64(revenue), 0)"),
}


def _customer_totals(tenant: Tenant, period: Period, floors: TagFloors, *, use_rollups: bool,
                     ) -> tuple[str, dict]:
    """A subquery of (customer_id, events, cogs, revenue, tag_rank, provisional) per customer,
    and its params."""
    # Only the measures the ledger shows (the tokens would be summed for nothing).
    inner, params = (
        LedgerQuery(tenant.slug, rollup_for(Dimension.CUSTOMER, period, use_rollups))
        .period(period).dimensions("customer_id")
        .measures("events", "cogs_ai", "cogs_infra", "cogs_fee", "cogs_unclassified",
                  "revenue", "revenue_carried", "revenue_rated", "events_unsourced")
        .group_by("customer_id").sql())
    sql = (
        f"SELECT customer_id, events, {COGS} AS cogs, revenue, {_TAG_RANK_SQL} AS tag_rank, "
        f"revenue_carried + revenue_rated AS provisional, events_unsourced FROM ({inner})"
    )
    return sql, {**params, "at_risk": format(floors.at_risk_pct, "f"),
                 "high_value": format(floors.high_value_pct, "f")}


def customer_ledger(tenant: Tenant, period: Period, floors: TagFloors, *,
                    order: CustomerOrder = CustomerOrder.COGS, descending: bool = True,
                    offset: int = 0, limit: int | None = None,
                    use_rollups: bool = True) -> list[CustomerRow]:
    """Customers with their tag, sorted and sliced by the engine: all, or `limit` from `offset`."""
    subquery, params = _customer_totals(tenant, period, floors, use_rollups=use_rollups)
    direction = " DESC" if descending else ""
    keys = ", ".join(f"{key}{direction}" for key in _ORDER_SQL[CustomerOrder(order)])
    sql = f"SELECT * FROM ({subquery}) ORDER BY {keys}, customer_id"
    if limit is not None:
        sql += " LIMIT %(page_offset)s, %(page_limit)s"
        params |= {"page_offset": offset, "page_limit": limit}
    elif offset:
        raise ValueError("an offset needs a limit")
    make, ranks = tuple.__new__, TAG_RANKS
    _names, rows = tenant_sql_rows(tenant.slug, sql, params)
    shown = tuple(row[0] for row in rows) if limit is not None else None
    found = estimates(tenant, ("customer_id",), period, use_rollups, customers=shown)
    none = expected.Estimate()
    out = []
    # Columns in CustomerRow's order, the tag as its rank (see _customer_totals); with no
    # estimate at all, every unsourced event is unknown.
    for customer_id, events, cogs, revenue, tag_rank, provisional, unsourced in rows:
        if found:
            estimate = found.get((customer_id,), none)
            estimated, unknown = estimate.estimated_usd, estimate.unknown_events
        else:
            estimated, unknown = ZERO, unsourced
        out.append(make(CustomerRow, (customer_id, events, cogs, revenue, ranks[tag_rank],
                                      provisional + estimated, unknown)))
    return out


def customer_tag_counts(tenant: Tenant, period: Period, floors: TagFloors, *,
                        use_rollups: bool = True) -> tuple[dict[CustomerTag, int], int]:
    """How many customers carry each tag, and how many customers there are in all."""
    subquery, params = _customer_totals(tenant, period, floors, use_rollups=use_rollups)
    counts = dict.fromkeys(CustomerTag, 0)
    total = 0
    for row in tenant_sql(tenant.slug,
                          f"SELECT tag_rank, count() AS n FROM ({subquery}) GROUP BY tag_rank",
                          params):
        tag, n = TAG_RANKS[row["tag_rank"]], int(row["n"])
        total += n
        if tag is not None:
            counts[tag] += n
    return counts, total
