"""Totals by a whitelisted dimension: the headline, products, customers, models, providers and
days, each a sum() over the ledger or the daily rollups that sum it, so they reconcile exactly.
"""
from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from aforo.ledger.query import LedgerQuery, Table
from aforo.models import Tenant
from aforo.periods import Period
from cogs import expected
from cogs.margins import ZERO, CostBuckets, ExpectedMargin, cost_per_1k_tokens


class Dimension(enum.Enum):
    """The grains a breakdown may group by; anything else never reaches SQL."""

    PRODUCT = "product"
    CUSTOMER = "customer"
    PROVIDER = "provider"
    MODEL = "model"
    DAY = "day"


# The key columns per dimension, and columns carried alongside (max(): deterministic, and an
# entry that left one blank, e.g. a REVENUE entry, cannot win over the event's own value).
KEYS: dict[Dimension, tuple[str, ...]] = {
    Dimension.PRODUCT: ("product_id",),
    Dimension.CUSTOMER: ("customer_id",),
    Dimension.PROVIDER: ("provider",),
    Dimension.MODEL: ("provider", "model"),
    Dimension.DAY: ("day",),
}
_CARRIED: dict[Dimension, tuple[str, ...]] = {Dimension.PRODUCT: ("product_type",)}
# The measures a breakdown row holds.
TOTALS_MEASURES = ("events", "tokens_in", "tokens_out", "cogs_ai", "cogs_infra", "cogs_fee",
                   "cogs_unclassified", "revenue", "revenue_carried", "revenue_rated",
                   "events_unsourced")


@dataclass(slots=True)
class Totals(CostBuckets, ExpectedMargin):
    """Summed measures of one group (or of the whole period)."""

    key: tuple = ()
    attributes: dict | None = field(default=None, compare=False)
    event_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    ai_cogs_usd: Decimal = ZERO
    infra_cogs_usd: Decimal = ZERO
    fee_cogs_usd: Decimal = ZERO
    unclassified_cogs_usd: Decimal = ZERO
    revenue_usd: Decimal = ZERO
    # Expected revenue of the events not yet attributed (cogs.expected); the estimate is
    # filled where a reader asks for it (estimate=True), zero otherwise.
    carried_usd: Decimal = ZERO
    rated_usd: Decimal = ZERO
    estimated_usd: Decimal = ZERO
    unknown_events: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def settling_revenue_usd(self) -> Decimal:
        return self.carried_usd + self.rated_usd + self.estimated_usd

    def __add__(self, other: Totals) -> Totals:
        return Totals(key=(), **{name: getattr(self, name) + getattr(other, name)
                                 for name in _SUMMED})


_SUMMED = ("event_count", "input_tokens", "output_tokens", "ai_cogs_usd", "infra_cogs_usd",
           "fee_cogs_usd", "unclassified_cogs_usd", "revenue_usd", "carried_usd", "rated_usd",
           "estimated_usd", "unknown_events")


def totals_sum(rows: Iterable[Totals]) -> Totals:
    total = Totals()
    for row in rows:
        total = total + row
    return total


def rollup_for(dimension: Dimension, period: Period, use_rollups: bool) -> Table:
    """The table a breakdown reads: a daily rollup, or the raw ledger for periods of another
    time zone than the rollups' (UTC days) and when told so."""
    if use_rollups and period.is_utc:
        return Table.DAILY_CUSTOMERS if dimension is Dimension.CUSTOMER else Table.DAILY
    return Table.LEDGER


def allocated_cogs(tenant: Tenant, period: Period, *, use_rollups: bool = True) -> Decimal:
    """The part of the period's COGS that allocations spread onto its events (cost sources):
    included in every cost figure, shown apart in the composition."""
    row = (LedgerQuery(tenant.slug, rollup_for(Dimension.PRODUCT, period, use_rollups))
           .period(period).measures("cogs_allocated").one())
    return row["cogs_allocated"] or ZERO


def estimates(tenant: Tenant, keys: tuple[str, ...], period: Period, use_rollups: bool, *,
              customers: tuple[str, ...] | None = None) -> dict[tuple, expected.Estimate]:
    """Estimated revenue and unknown events per value of `keys` over the period, from the
    unsourced rollup or the raw ledger; of some customers only when `customers` names them."""
    if (customers is not None and not customers) or not expected.has_rates(tenant.slug):
        return {}  # nothing to price: every unsourced event stays unknown
    table = Table.UNSOURCED if use_rollups and period.is_utc else Table.LEDGER
    basis = expected.basis_query(tenant.slug, table, keys).period(period)
    if customers is not None:
        basis = basis.where_in("customer_id", customers)
    return expected.estimates_by(tenant.slug, basis, keys)


def _with_estimates(rows: list[Totals], found: dict[tuple, expected.Estimate]) -> None:
    """Rows given their estimates (a key without one has nothing the rates price)."""
    if not found:
        return
    for row in rows:
        estimate = found.get(row.key)
        row.estimated_usd = estimate.estimated_usd if estimate else ZERO
        row.unknown_events = estimate.unknown_events if estimate else 0


def decimal_keys(expression: str) -> tuple[str, str]:
    """ORDER BY keys for a Decimal expression: exactly its order, and fast on every server.

    :TRICKY: ClickHouse 18.16 sorts on several keys slowly once a Decimal key is compared
    (10,000 rows: 0.6 s instead of 0.08 s). Float64 first (monotone in the Decimal, so never
    out of order), the exact Decimal only to settle the float's ties.
    """
    return f"toFloat64({expression})", expression


COGS = "(cogs_ai + cogs_infra + cogs_fee + cogs_unclassified)"


class Rank(enum.Enum):
    """Orders for a limited breakdown: the biggest cost, or the best margin, first."""

    COGS = ", ".join(f"{key} DESC" for key in decimal_keys(COGS))
    MARGIN = ", ".join(f"{key} DESC" for key in decimal_keys(f"(revenue - {COGS})"))


def totals_by(tenant: Tenant, dimension: Dimension, period: Period, *,
              use_rollups: bool = True, rank: Rank | None = None,
              limit: int | None = None, estimate: bool = False) -> list[Totals]:
    """One row of totals per value of `dimension` in the period: all of them, unordered, or
    the first `limit` by `rank` (ties by key). `estimate` adds the estimated revenue and the
    unknown events (one more query)."""
    dimension = Dimension(dimension)
    keys = KEYS[dimension]
    carried = _CARRIED.get(dimension, ())
    query = (LedgerQuery(tenant.slug, rollup_for(dimension, period, use_rollups))
             .period(period).dimensions(*keys)
             .expressions(*(f"max({column}) AS {column}_max" for column in carried))
             .measures(*TOTALS_MEASURES).group_by(*keys))
    if limit is not None:
        query = query.order_by(Rank(rank).value, *keys).limit(limit)
    out = [
        Totals(
            key=tuple(row[column] for column in keys),
            attributes={column: row[f"{column}_max"] for column in carried} if carried else None,
            event_count=int(row["events"]), input_tokens=int(row["tokens_in"]),
            output_tokens=int(row["tokens_out"]), ai_cogs_usd=row["cogs_ai"],
            infra_cogs_usd=row["cogs_infra"], fee_cogs_usd=row["cogs_fee"],
            unclassified_cogs_usd=row["cogs_unclassified"], revenue_usd=row["revenue"],
            carried_usd=row["revenue_carried"], rated_usd=row["revenue_rated"],
            # unknown until an estimate prices them (below, when the tenant has rates)
            unknown_events=int(row["events_unsourced"]),
        )
        for row in query.fetch()
    ]
    if estimate:
        _with_estimates(out, estimates(tenant, keys, period, use_rollups))
    return out


def ranked_by_cost(rows: list[Totals]) -> list[Totals]:
    return sorted(rows, key=lambda r: (-r.cogs_usd, r.key))


def ranked(rows: list[Totals], rank: Rank) -> list[Totals]:
    """Rows in `rank` order, ties by key (the order totals_by's LIMIT uses)."""
    if rank is Rank.MARGIN:
        return sorted(rows, key=lambda r: (-r.margin_usd, r.key))
    return ranked_by_cost(rows)


def daily_series(tenant: Tenant, period: Period, *, use_rollups: bool = True,
                 estimate: bool = False) -> list[Totals]:
    """Every day of the period in order, zero where nothing happened."""
    found = {row.key[0]: row for row in totals_by(tenant, Dimension.DAY, period,
                                                   use_rollups=use_rollups, estimate=estimate)}
    return [found.get(day) or Totals(key=(day,)) for day in period.days]


@dataclass(frozen=True)
class Overview:
    """The headline: period totals and the number of products with an event."""

    totals: Totals
    active_products: int

    @property
    def cost_per_event_usd(self) -> Decimal | None:
        count = self.totals.event_count
        return self.totals.cogs_usd / count if count else None


def overview(tenant: Tenant, period: Period, *, use_rollups: bool = True,
             estimate: bool = False) -> Overview:
    # The headline is the sum of the per-product rows, so the two reconcile by construction.
    products = totals_by(tenant, Dimension.PRODUCT, period, use_rollups=use_rollups,
                         estimate=estimate)
    return Overview(totals=totals_sum(products),
                    active_products=sum(1 for row in products if row.event_count > 0))


def products_breakdown(tenant: Tenant, period: Period, *, use_rollups: bool = True,
                       estimate: bool = False) -> list[Totals]:
    """Per product, highest COGS first."""
    return ranked_by_cost(totals_by(tenant, Dimension.PRODUCT, period, use_rollups=use_rollups,
                                    estimate=estimate))


def customers_breakdown(tenant: Tenant, period: Period, *, use_rollups: bool = True,
                        rank: Rank = Rank.COGS, limit: int | None = None) -> list[Totals]:
    """Per customer in `rank` order (highest COGS first); all, or the first `limit`."""
    return ranked(totals_by(tenant, Dimension.CUSTOMER, period, use_rollups=use_rollups,
                            rank=rank, limit=limit), rank)


@dataclass(frozen=True)
class ModelCost:
    totals: Totals
    input_rate_per_1k: Decimal | None
    output_rate_per_1k: Decimal | None

    @property
    def provider(self) -> str:
        return self.totals.key[0]

    @property
    def model(self) -> str:
        return self.totals.key[1]

    @property
    def avg_cost_per_1k_usd(self) -> Decimal | None:
        return cost_per_1k_tokens(self.totals)


def models_breakdown(tenant: Tenant, period: Period, *, use_rollups: bool = True,
                     estimate: bool = False) -> list[ModelCost]:
    """Per provider+model, highest COGS first, with the rate card in force at the period's end."""
    from ingestion.rate_cards import model_price_at

    at = period.end_at - timedelta(microseconds=1)
    out = []
    for row in ranked_by_cost(totals_by(tenant, Dimension.MODEL, period,
                                        use_rollups=use_rollups, estimate=estimate)):
        provider, model = row.key
        price = model_price_at(tenant=tenant, provider=provider, model=model, at=at)
        out.append(ModelCost(totals=row,
                             input_rate_per_1k=price.input_per_1k if price else None,
                             output_rate_per_1k=price.output_per_1k if price else None))
    return out
