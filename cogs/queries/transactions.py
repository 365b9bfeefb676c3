"""The per-event ledger: one page of events, newest first, each with its cost split, its
revenue and where its expected revenue comes from."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from aforo.ledger.query import ORIGINAL_COST, REVENUE, LedgerQuery, Table
from aforo.models import Tenant
from aforo.money import from_nanos
from aforo.periods import Period, day_start
from cogs import expected
from cogs.margins import ZERO, CostBuckets


class RevenueSource(enum.StrEnum):
    """Where an event's expected revenue comes from (API.md, Real-time revenue)."""

    ATTRIBUTED = "ATTRIBUTED"
    CARRIED = "CARRIED"
    RATED = "RATED"
    ESTIMATED = "ESTIMATED"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class Transaction(CostBuckets):
    event_id: str
    occurred_at: datetime
    customer_id: str
    product_id: str
    product_type: str
    provider: str
    model: str
    tool_name: str
    source_type: str
    input_tokens: int
    output_tokens: int
    ai_cogs_usd: Decimal
    infra_cogs_usd: Decimal
    fee_cogs_usd: Decimal
    unclassified_cogs_usd: Decimal
    revenue_usd: Decimal
    settled: bool
    revenue_source: RevenueSource = RevenueSource.UNKNOWN
    expected_revenue_usd: Decimal = ZERO
    session_id: str = ""
    credits_debited: Decimal | None = None  # prepaid credits burnt; None: no wallet debit

    @property
    def expected_margin_usd(self) -> Decimal:
        return self.expected_revenue_usd - self.cogs_usd


@dataclass(frozen=True)
class TransactionFilters:
    product_id: str | None = None
    customer_id: str | None = None
    provider: str | None = None

    def apply(self, query: LedgerQuery) -> LedgerQuery:
        return query.where(product_id=self.product_id, customer_id=self.customer_id,
                           provider=self.provider)


_DIMENSIONS = ("customer_id", "product_id", "product_type", "provider", "model", "tool_name",
               "source_type", "session_id")
# An event's row: its dimensions from its ORIGINAL COST entry, its measures summed over all its
# entries (corrections, revenue, settlement).
# :TRICKY: the per-event aliases equal the columns they read; safe because nothing in this
# SELECT's WHERE or other aggregates names those columns.
_EVENT_COLUMNS = (
    *(f"anyIf({d}, {ORIGINAL_COST}) AS {d}" for d in _DIMENSIONS),
    f"countIf({REVENUE} AND entry_kind = 'ORIGINAL') "
    f"- countIf({REVENUE} AND entry_kind = 'REVERSAL') AS revenue_entries",
    f"anyIf(revenue_source, {ORIGINAL_COST}) AS source",
    # the prepaid credits the event burnt (entitlements writes them on its COST entry)
    f"toInt64(sumIf(arraySum(credit_debits_nano), {ORIGINAL_COST})) AS credits_nano",
)
_EVENT_MEASURES = ("tokens_in", "tokens_out", "cogs_ai", "cogs_infra", "cogs_fee",
                   "cogs_unclassified", "revenue", "revenue_carried", "revenue_rated")
# The estimation basis, read only for a tenant with rates to price it (two more columns of
# every granule the page's events lie in; without rates every unsourced event is UNKNOWN).
_BASIS_MEASURES = ("b_events", "b_in", "b_out", "b_tools", "b_steps", "b_cogs")


def _expected_of(row: dict, settled: bool, rates: dict) -> tuple[RevenueSource, Decimal]:
    """An event's revenue source and expected revenue: the first of attributed, carried,
    rated, estimated (cogs.expected: the same rates and units as the aggregates)."""
    if settled:
        return RevenueSource.ATTRIBUTED, row["revenue"]
    if row["source"] == "CARRIED":
        return RevenueSource.CARRIED, row["revenue_carried"]
    if row["source"] == "RATED":
        return RevenueSource.RATED, row["revenue_rated"]
    found = rates.get((row["customer_id"], row["product_id"]))
    if found is None:
        return RevenueSource.UNKNOWN, ZERO
    return RevenueSource.ESTIMATED, found.estimate(expected.event_units(
        row["b_events"], row["b_in"], row["b_out"], row["b_tools"], row["b_steps"],
        row["b_cogs"]))


def transactions_of(tenant: Tenant, picked: list[tuple[str, datetime]]) -> list[Transaction]:
    """Full rows for (event id, occurred at) pairs, in the order given."""
    if not picked:
        return []
    # The events' own timestamps let the primary key skip every other granule.
    priced = expected.has_rates(tenant.slug)
    rows = {row["event_id"]: row for row in (
        LedgerQuery(tenant.slug).dimensions("event_id").expressions(*_EVENT_COLUMNS)
        .measures(*_EVENT_MEASURES, *(_BASIS_MEASURES if priced else ()))
        .where_in("occurred_at", {at for _id, at in picked})
        .where_in("event_id", {event_id for event_id, _at in picked})
        .group_by("event_id").fetch())}
    rates = expected.event_rates(tenant.slug, {
        (row["customer_id"], row["product_id"]) for row in rows.values()
        if row["source"] == "NONE" and int(row["revenue_entries"]) <= 0}) if priced else {}
    out = []
    for event_id, at in picked:
        row = rows[event_id]
        # as billing.queries.REVENUE_STATUS_SQL: revenue fully reversed is settling again
        settled = int(row["revenue_entries"]) > 0
        source, expected_revenue = _expected_of(row, settled, rates)
        out.append(Transaction(
            event_id=event_id, occurred_at=at, customer_id=row["customer_id"],
            product_id=row["product_id"], product_type=row["product_type"],
            provider=row["provider"], model=row["model"], tool_name=row["tool_name"],
            source_type=row["source_type"], input_tokens=int(row["tokens_in"]),
            output_tokens=int(row["tokens_out"]), ai_cogs_usd=row["cogs_ai"],
            infra_cogs_usd=row["cogs_infra"], fee_cogs_usd=row["cogs_fee"],
            unclassified_cogs_usd=row["cogs_unclassified"], revenue_usd=row["revenue"],
            settled=settled, revenue_source=source, expected_revenue_usd=expected_revenue,
            session_id=row["session_id"],
            credits_debited=from_nanos(row["credits_nano"])
            if int(row["credits_nano"]) else None,
        ))
    return out


def _daily_event_counts(tenant: Tenant, period: Period, filters: TransactionFilters, *,
                        use_rollups: bool) -> dict[date, int]:
    """Events per day of the period matching the filters, from a read model when one fits:
    a customer's from its own events (any time zone, any other filter), the rest from the
    daily rollup."""
    if use_rollups and filters.customer_id is not None:
        query = LedgerQuery(tenant.slug, Table.CUSTOMER_EVENTS).measures("events")
    elif use_rollups and period.is_utc:
        query = LedgerQuery(tenant.slug, Table.DAILY).measures("events")
    else:
        query = (LedgerQuery(tenant.slug).where_sql(ORIGINAL_COST)
                 .expressions("toInt64(count()) AS events"))
    query = filters.apply(query.period(period).dimensions("day").group_by("day"))
    return {row["day"]: int(row["events"]) for row in query.fetch() if int(row["events"])}


def transactions_page(tenant: Tenant, period: Period, filters: TransactionFilters, *,
                      offset: int, limit: int, use_rollups: bool = True,
                      ) -> tuple[list[Transaction], int]:
    """One page of events, newest first, and the number of events that match."""
    per_day = _daily_event_counts(tenant, period, filters, use_rollups=use_rollups)
    total = sum(per_day.values())
    if offset >= total or limit < 1:
        return [], total
    # The daily counts say which days hold rows offset..offset+limit (newest first), so the
    # page is sorted out of those days only, not out of the whole period.
    newer = 0  # events on days newer than the window
    window: list[date] = []
    for day in sorted(per_day, reverse=True):
        if newer + per_day[day] <= offset and not window:
            newer += per_day[day]
            continue
        window.append(day)
        if newer + sum(per_day[d] for d in window) >= offset + limit:
            break
    start = max(period.start_at, day_start(window[-1], period.time_zone))
    end = min(period.end_at, day_start(window[0] + timedelta(days=1), period.time_zone))
    # Step 1 picks the page from original entries only (one per event, no GROUP BY): a
    # customer's from its own events, ordered by customer and time (0010; DISTINCT, as a copy
    # may wait for its merge), the rest from the ledger's days that hold the page. Step 2
    # reads every entry of just those events from the ledger.
    if use_rollups and filters.customer_id is not None:
        pick = LedgerQuery(tenant.slug, Table.CUSTOMER_EVENTS).expressions(
            "DISTINCT event_id", "occurred_at")
    else:
        pick = (LedgerQuery(tenant.slug).dimensions("event_id", "occurred_at")
                .where_sql(ORIGINAL_COST))
    picked = filters.apply(
        pick.between(start, end).order_by("occurred_at DESC", "event_id DESC")
        .limit(limit, offset - newer)).fetch()
    return transactions_of(tenant, [(r["event_id"], r["occurred_at"]) for r in picked]), total


__all__ = ["RevenueSource", "Transaction", "TransactionFilters", "transactions_of",
           "transactions_page"]
