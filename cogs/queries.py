"""COGS & Margins reads: totals by a whitelisted dimension, the per-event ledger, anomalies.

Every number is a sum() over ledger entries (or the daily rollups that sum them), so the
per-product, per-customer, per-model rows, the composition, the headline and the transaction
rows reconcile exactly. Money stays Decimal; rounding happens only when the API renders it.
"""
from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_FLOOR, Decimal
from typing import NamedTuple
from zoneinfo import ZoneInfo

from aforo import eventstore
from aforo.models import Tenant
from cogs import expected
from cogs.expected import margin_pct

ZERO = Decimal(0)
HUNDRED = Decimal(100)
THOUSAND = Decimal(1000)
NANO = Decimal("0.000000001")
# The engine's Float64 pre-filter uses lines this much lower (see anomalies()).
LINE_SLACK = Decimal("0.999999")
PICO = Decimal("0.000000000001")
MIN_ANOMALY_GROUP_EVENTS = 20
ANOMALY_CHUNK = 2000


# --- the period ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    """Calendar days `first`..`last` (both included) in `time_zone`."""

    first: date
    last: date
    time_zone: str = "UTC"

    @property
    def start_at(self) -> datetime:
        """The first instant of the period, in UTC."""
        return _day_start(self.first, self.time_zone)

    @property
    def end_at(self) -> datetime:
        """The first instant after the period, in UTC (exclusive end)."""
        return _day_start(self.last + timedelta(days=1), self.time_zone)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    @property
    def is_utc(self) -> bool:
        return self.time_zone == "UTC"


def _day_start(day: date, time_zone: str) -> datetime:
    local = datetime.combine(day, time.min, tzinfo=ZoneInfo(time_zone))
    return local.astimezone(timezone.utc)


def period_default(*, time_zone: str = "UTC", today: date | None = None) -> Period:
    """The last 30 days, ending today (in the tenant's time zone)."""
    today = today or datetime.now(ZoneInfo(time_zone)).date()
    return Period(first=today - timedelta(days=29), last=today, time_zone=time_zone)


# --- totals by dimension ------------------------------------------------------------------

class Dimension(enum.Enum):
    """The grains a breakdown may group by; anything else never reaches SQL."""

    PRODUCT = "product"
    CUSTOMER = "customer"
    PROVIDER = "provider"
    MODEL = "model"
    DAY = "day"


# The key columns per dimension, and columns carried alongside (max(): deterministic, and an
# entry that left one blank, e.g. a REVENUE entry, cannot win over the event's own value).
_KEYS: dict[Dimension, tuple[str, ...]] = {
    Dimension.PRODUCT: ("product_id",),
    Dimension.CUSTOMER: ("customer_id",),
    Dimension.PROVIDER: ("provider",),
    Dimension.MODEL: ("provider", "model"),
    Dimension.DAY: ("day",),
}
_CARRIED: dict[Dimension, tuple[str, ...]] = {Dimension.PRODUCT: ("product_type",)}

# Each measure over the raw ledger and over a rollup (see eventstore migration 0002).
_MEASURES = {
    "events": ("toInt64(sumIf(event_count, entry_type = 'COST'))", "toInt64(sum(events))"),
    "tokens_in": ("toInt64(sumIf(input_tokens, entry_type = 'COST'))", "toInt64(sum(tokens_in))"),
    "tokens_out": ("toInt64(sumIf(output_tokens, entry_type = 'COST'))",
                   "toInt64(sum(tokens_out))"),
    "cogs_ai": ("sumIf(ai_cogs_usd, entry_type = 'COST')", "sum(cogs_ai)"),
    "cogs_infra": ("sumIf(infra_cogs_usd, entry_type = 'COST')", "sum(cogs_infra)"),
    "cogs_fee": ("sumIf(fee_cogs_usd, entry_type = 'COST')", "sum(cogs_fee)"),
    "cogs_unclassified": ("sumIf(unclassified_cogs_usd, entry_type = 'COST')",
                          "sum(cogs_unclassified)"),
    "revenue": ("sumIf(revenue_usd, entry_type = 'REVENUE')", "sum(revenue)"),
    "revenue_carried": (expected.RAW_CARRIED, "sum(revenue_carried)"),
    "revenue_rated": (expected.RAW_RATED, "sum(revenue_rated)"),
}


def _measures(rollup: bool, names: Iterable[str] = _MEASURES) -> str:
    return ", ".join(f"{_MEASURES[name][rollup]} AS {name}" for name in names)


_RAW_MEASURES, _ROLLUP_MEASURES = _measures(False), _measures(True)


class _Margin:
    """margin_usd and margin_pct of a row with revenue_usd and cogs_usd: one definition for
    totals, transactions and customer rows."""

    __slots__ = ()

    @property
    def margin_usd(self) -> Decimal:
        return self.revenue_usd - self.cogs_usd

    @property
    def margin_pct(self) -> Decimal | None:
        return margin_pct(self.revenue_usd, self.cogs_usd)


class _CostBuckets(_Margin):
    """cogs_usd of a row carrying the four cost buckets."""

    __slots__ = ()

    @property
    def cogs_usd(self) -> Decimal:
        return (self.ai_cogs_usd + self.infra_cogs_usd + self.fee_cogs_usd
                + self.unclassified_cogs_usd)


@dataclass(slots=True)
class Totals(_CostBuckets):
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
    # Expected revenue of the events not yet attributed (cogs.expected); filled where a
    # reader asks for it (estimate=True), zero otherwise.
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

    @property
    def expected_revenue_usd(self) -> Decimal:
        return self.revenue_usd + self.settling_revenue_usd

    @property
    def expected_margin_usd(self) -> Decimal:
        return self.expected_revenue_usd - self.cogs_usd

    @property
    def expected_margin_pct(self) -> Decimal | None:
        return margin_pct(self.expected_revenue_usd, self.cogs_usd)

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


def _source(dimension: Dimension, period: Period, use_rollups: bool) -> tuple[str, str, str]:
    """(table, measures, period filter) for a breakdown."""
    # The rollups are by UTC day, so a period in another time zone reads the raw ledger.
    if use_rollups and period.is_utc:
        table = "ledger_daily_customers" if dimension is Dimension.CUSTOMER else "ledger_daily"
        return table, _ROLLUP_MEASURES, _ROLLUP_PERIOD
    return "ledger", _RAW_MEASURES, _RAW_PERIOD


_ROLLUP_PERIOD = "day >= %(first)s AND day <= %(last)s"
_RAW_PERIOD = "occurred_at >= %(start_at)s AND occurred_at < %(end_at)s"
# :TRICKY: toDate(DateTime, tz) gives the calendar day in that zone; the plain
# toDate(occurred_at) would use the column's own zone (UTC).
_RAW_DAY = "toDate(occurred_at, %(time_zone)s) AS day"


def _period_params(period: Period) -> dict:
    return {"first": period.first, "last": period.last, "start_at": period.start_at,
            "end_at": period.end_at, "time_zone": period.time_zone}


def _estimates(tenant: Tenant, keys: tuple[str, ...], period: Period, use_rollups: bool, *,
               customers: tuple[str, ...] | None = None) -> dict[tuple, expected.Estimate]:
    """Estimated revenue and unknown events per value of `keys` (columns of the ledger, or
    `day`) over the period, from the unsourced rollup or the raw ledger; of some customers
    only when `customers` names them."""
    params = _period_params(period)
    if customers is not None:
        if not customers:
            return {}
        params["customers"] = customers
    rollup = use_rollups and period.is_utc
    extra = [k for k in keys if k not in ("customer_id", "product_id")]
    if rollup:
        selected, basis, table, where = extra, expected.ROLLUP_BASIS, "ledger_daily_unsourced", \
            _ROLLUP_PERIOD
    else:
        selected = [_RAW_DAY if k == "day" else k for k in extra]
        basis, table, where = expected.RAW_BASIS, "ledger", _RAW_PERIOD
    grouped = ", ".join([*extra, "customer_id", "product_id"])
    if customers is not None:
        where += " AND customer_id IN %(customers)s"
    sql = (f"SELECT {', '.join([*selected, 'customer_id', 'product_id'])}, {basis} "
           f"FROM {table} WHERE tenant_id = %(tenant_id)s AND {where} GROUP BY {grouped}")
    return expected.estimates_by(tenant.slug, sql, keys, params)


def _with_estimates(rows: list[Totals], estimates: dict[tuple, expected.Estimate],
                    keys: tuple[str, ...]) -> list[Totals]:
    """Rows given their estimates; a key with only an estimate (no row) gets a row of its own."""
    by_key = {row.key: row for row in rows}
    for key, estimate in estimates.items():
        if not estimate.estimated_usd and not estimate.unknown_events:
            continue
        row = by_key.get(key)
        if row is None:  # a ranked, limited breakdown holds only some keys
            continue
        row.estimated_usd = estimate.estimated_usd
        row.unknown_events = estimate.unknown_events
    return rows


def decimal_keys(expression: str) -> tuple[str, str]:
    """ORDER BY keys for a Decimal expression: exactly its order, and fast on every server.

    :TRICKY: ClickHouse 18.16 sorts on several keys slowly once a Decimal key is compared
    (10,000 rows: 0.6 s instead of 0.08 s). Float64 first (monotone in the Decimal, so never
    out of order), the exact Decimal only to settle the float's ties.
    """
    return f"toFloat64({expression})", expression


_COGS = "(cogs_ai + cogs_infra + cogs_fee + cogs_unclassified)"


class Rank(enum.Enum):
    """Orders for a limited breakdown: the biggest cost, or the best margin, first."""

    COGS = ", ".join(f"{key} DESC" for key in decimal_keys(_COGS))
    MARGIN = ", ".join(f"{key} DESC" for key in decimal_keys(f"(revenue - {_COGS})"))


def totals_by(tenant: Tenant, dimension: Dimension, period: Period, *,
              use_rollups: bool = True, rank: Rank | None = None,
              limit: int | None = None, estimate: bool = False) -> list[Totals]:
    """One row of totals per value of `dimension` in the period: all of them, unordered, or
    the first `limit` by `rank` (ties by key). `estimate` adds the estimated revenue and the
    unknown events (one more query)."""
    dimension = Dimension(dimension)
    table, measures, period_filter = _source(dimension, period, use_rollups)
    keys = _KEYS[dimension]
    carried = _CARRIED.get(dimension, ())
    selected = [_RAW_DAY if column == "day" and table == "ledger" else column
                for column in keys]
    selected += [f"max({column}) AS {column}_max" for column in carried]
    sql = (
        f"SELECT {', '.join(selected)}, {measures} FROM {table} "
        f"WHERE tenant_id = %(tenant_id)s AND {period_filter} "
        f"GROUP BY {', '.join(keys)}"
    )
    if limit is not None:
        sql += f" ORDER BY {Rank(rank).value}, {', '.join(keys)} LIMIT %(limit)s"
    rows = eventstore.tenant_query(tenant.slug, sql, {**_period_params(period), "limit": limit})
    out = [
        Totals(
            key=tuple(row[column] for column in keys),
            attributes={column: row[f"{column}_max"] for column in carried} if carried else None,
            event_count=int(row["events"]), input_tokens=int(row["tokens_in"]),
            output_tokens=int(row["tokens_out"]), ai_cogs_usd=row["cogs_ai"],
            infra_cogs_usd=row["cogs_infra"], fee_cogs_usd=row["cogs_fee"],
            unclassified_cogs_usd=row["cogs_unclassified"], revenue_usd=row["revenue"],
            carried_usd=row["revenue_carried"], rated_usd=row["revenue_rated"],
        )
        for row in rows
    ]
    if estimate:
        _with_estimates(out, _estimates(tenant, keys, period, use_rollups), keys)
    return out


def _ranked_by_cost(rows: list[Totals]) -> list[Totals]:
    return sorted(rows, key=lambda r: (-r.cogs_usd, r.key))


def ranked(rows: list[Totals], rank: Rank) -> list[Totals]:
    """Rows in `rank` order, ties by key (the order totals_by's LIMIT uses)."""
    if rank is Rank.MARGIN:
        return sorted(rows, key=lambda r: (-r.margin_usd, r.key))
    return _ranked_by_cost(rows)


def daily_series(tenant: Tenant, period: Period, *, use_rollups: bool = True,
                 estimate: bool = False) -> list[Totals]:
    """Every day of the period in order, zero where nothing happened."""
    found = {row.key[0]: row for row in totals_by(tenant, Dimension.DAY, period,
                                                   use_rollups=use_rollups, estimate=estimate)}
    return [found.get(day) or Totals(key=(day,)) for day in period.days]


# --- headline, products, customers, models ------------------------------------------------

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
    return _ranked_by_cost(totals_by(tenant, Dimension.PRODUCT, period, use_rollups=use_rollups,
                                     estimate=estimate))


class CustomerTag(enum.StrEnum):
    HIGH_VALUE = "HIGH_VALUE"
    STANDARD = "STANDARD"
    AT_RISK = "AT_RISK"
    UNPROFITABLE = "UNPROFITABLE"


@dataclass(frozen=True)
class TagFloors:
    at_risk_pct: Decimal = Decimal(20)
    high_value_pct: Decimal = Decimal(60)


def tag_of(revenue: Decimal, cogs: Decimal, floors: TagFloors) -> CustomerTag | None:
    """A customer's tag from its revenue and COGS; None while both are zero.

    Compared without dividing (margin × 100 against floor × revenue), so the tag is exact and
    the same as the SQL in customer_ledger(). Without positive revenue there is no margin % to
    speak of: a customer who is not losing money is then AT_RISK.
    """
    if revenue == 0 and cogs == 0:
        return None
    margin = revenue - cogs
    if margin < 0:
        return CustomerTag.UNPROFITABLE
    if revenue <= 0 or margin * HUNDRED < floors.at_risk_pct * revenue:
        return CustomerTag.AT_RISK
    if margin * HUNDRED >= floors.high_value_pct * revenue:
        return CustomerTag.HIGH_VALUE
    return CustomerTag.STANDARD


def customers_breakdown(tenant: Tenant, period: Period, *, use_rollups: bool = True,
                        rank: Rank = Rank.COGS, limit: int | None = None) -> list[Totals]:
    """Per customer in `rank` order (highest COGS first); all, or the first `limit`."""
    return ranked(totals_by(tenant, Dimension.CUSTOMER, period, use_rollups=use_rollups,
                            rank=rank, limit=limit), rank)


# --- the customer ledger: ranked, tagged, counted and paged in SQL ------------------------

class _CustomerFields(NamedTuple):  # a tuple: 10k of them are built per request
    customer_id: str
    event_count: int
    cogs_usd: Decimal
    revenue_usd: Decimal
    tag: CustomerTag | None
    settling_revenue_usd: Decimal = ZERO  # expected revenue of events not yet attributed
    unknown_events: int = 0


class CustomerRow(_CustomerFields, _Margin):
    __slots__ = ()

    @property
    def expected_revenue_usd(self) -> Decimal:
        return self.revenue_usd + self.settling_revenue_usd

    @property
    def expected_margin_usd(self) -> Decimal:
        return self.expected_revenue_usd - self.cogs_usd

    @property
    def expected_margin_pct(self) -> Decimal | None:
        return margin_pct(self.expected_revenue_usd, self.cogs_usd)


# Tags as SQL ranks, worst first (the order a tag column sorts in); rank 4 is "no tag".
TAG_RANKS: tuple[CustomerTag | None, ...] = (
    CustomerTag.UNPROFITABLE, CustomerTag.AT_RISK, CustomerTag.STANDARD, CustomerTag.HIGH_VALUE,
    None)
# tag_of() in SQL: the same comparisons, exact in Decimal arithmetic.
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
    """A subquery of (customer_id, events, cogs, revenue, tag_rank) per customer; its params."""
    table, _all, period_filter = _source(Dimension.CUSTOMER, period, use_rollups)
    # Only the measures the ledger shows (the tokens would be summed for nothing).
    measures = _measures(table != "ledger", ("events", "cogs_ai", "cogs_infra", "cogs_fee",
                                             "cogs_unclassified", "revenue", "revenue_carried",
                                             "revenue_rated"))
    sql = (
        f"SELECT customer_id, events, {_COGS} AS cogs, revenue, {_TAG_RANK_SQL} AS tag_rank, "
        "revenue_carried + revenue_rated AS provisional "
        f"FROM (SELECT customer_id, {measures} FROM {table} "
        f"WHERE tenant_id = %(tenant_id)s AND {period_filter} GROUP BY customer_id)"
    )
    return sql, {
        "first": period.first, "last": period.last, "start_at": period.start_at,
        "end_at": period.end_at, "time_zone": period.time_zone,
        "at_risk": format(floors.at_risk_pct, "f"),
        "high_value": format(floors.high_value_pct, "f"),
    }


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
        sql += " LIMIT %(offset)s, %(limit)s"
        params |= {"offset": offset, "limit": limit}
    elif offset:
        raise ValueError("an offset needs a limit")
    make, ranks = tuple.__new__, TAG_RANKS
    _names, rows = eventstore.tenant_rows(tenant.slug, sql, params)
    shown = tuple(row[0] for row in rows) if limit is not None else None
    estimates = _estimates(tenant, ("customer_id",), period, use_rollups, customers=shown)
    none = expected.Estimate()
    out = []
    # Columns in CustomerRow's order, the tag as its rank (see _customer_totals).
    for customer_id, events, cogs, revenue, tag_rank, provisional in rows:
        estimate = estimates.get((customer_id,), none)
        out.append(make(CustomerRow, (customer_id, events, cogs, revenue, ranks[tag_rank],
                                      provisional + estimate.estimated_usd,
                                      estimate.unknown_events)))
    return out


def customer_tag_counts(tenant: Tenant, period: Period, floors: TagFloors, *,
                        use_rollups: bool = True) -> tuple[dict[CustomerTag, int], int]:
    """How many customers carry each tag, and how many customers there are in all."""
    subquery, params = _customer_totals(tenant, period, floors, use_rollups=use_rollups)
    counts = dict.fromkeys(CustomerTag, 0)
    total = 0
    for row in eventstore.tenant_query(
            tenant.slug, f"SELECT tag_rank, count() AS n FROM ({subquery}) GROUP BY tag_rank",
            params):
        tag, n = TAG_RANKS[row["tag_rank"]], int(row["n"])
        total += n
        if tag is not None:
            counts[tag] += n
    return counts, total


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


def cost_per_1k_tokens(totals: Totals) -> Decimal | None:
    """AI COGS / (input + output tokens) × 1000; None without tokens."""
    tokens = totals.total_tokens
    return totals.ai_cogs_usd / tokens * THOUSAND if tokens else None


def models_breakdown(tenant: Tenant, period: Period, *, use_rollups: bool = True,
                     estimate: bool = False) -> list[ModelCost]:
    """Per provider+model, highest COGS first, with the rate card in force at the period's end."""
    from ingestion.rate_cards import model_price_at

    at = period.end_at - timedelta(microseconds=1)
    out = []
    for row in _ranked_by_cost(totals_by(tenant, Dimension.MODEL, period,
                                         use_rollups=use_rollups, estimate=estimate)):
        provider, model = row.key
        price = model_price_at(tenant=tenant, provider=provider, model=model, at=at)
        out.append(ModelCost(totals=row,
                             input_rate_per_1k=price.input_per_1k if price else None,
                             output_rate_per_1k=price.output_per_1k if price else None))
    return out


# --- unit economics -----------------------------------------------------------------------

@dataclass(frozen=True)
class UnitEconomics:
    avg_cost_per_event_usd: Decimal | None
    avg_revenue_per_event_usd: Decimal | None
    avg_margin_per_event_usd: Decimal | None
    break_even_events: int | None


def unit_economics(totals: Totals, fixed_costs_per_month_usd: Decimal | None) -> UnitEconomics:
    """Per-event averages; break-even = fixed costs / average margin per event, rounded up."""
    count = totals.event_count
    if not count:
        return UnitEconomics(None, None, None, None)
    avg_margin = totals.margin_usd / count
    break_even = None
    if fixed_costs_per_month_usd is not None and fixed_costs_per_month_usd > 0 and avg_margin > 0:
        # Exact: fixed / (margin / count) = fixed × count / margin, with no rounded division.
        numerator = fixed_costs_per_month_usd * count
        quotient, remainder = divmod(numerator, totals.margin_usd)
        break_even = int(quotient) + (1 if remainder else 0)
    elif fixed_costs_per_month_usd is not None and fixed_costs_per_month_usd == 0 \
            and avg_margin > 0:
        break_even = 0
    return UnitEconomics(
        avg_cost_per_event_usd=totals.cogs_usd / count,
        avg_revenue_per_event_usd=totals.revenue_usd / count,
        avg_margin_per_event_usd=avg_margin,
        break_even_events=break_even,
    )


# --- the per-event ledger -----------------------------------------------------------------

@dataclass(frozen=True)
class Transaction(_CostBuckets):
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
    revenue_source: RevenueSource = None  # type: ignore[assignment]
    expected_revenue_usd: Decimal = ZERO

    @property
    def expected_margin_usd(self) -> Decimal:
        return self.expected_revenue_usd - self.cogs_usd


class RevenueSource(enum.StrEnum):
    """Where an event's expected revenue comes from (API.md, Real-time revenue)."""

    ATTRIBUTED = "ATTRIBUTED"
    CARRIED = "CARRIED"
    RATED = "RATED"
    ESTIMATED = "ESTIMATED"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class TransactionFilters:
    product_id: str | None = None
    customer_id: str | None = None
    provider: str | None = None

    def sql(self) -> tuple[str, dict]:
        clauses, params = [], {}
        for name, column in (("product_id", "product_id"), ("customer_id", "customer_id"),
                             ("provider", "provider")):
            value = getattr(self, name)
            if value is not None:
                clauses.append(f" AND {column} = %(f_{name})s")
                params[f"f_{name}"] = value
        return "".join(clauses), params


# Each event has exactly one ORIGINAL COST entry (event_count 1): it names the event once.
_ORIGINALS = ("tenant_id = %(tenant_id)s AND occurred_at >= %(start_at)s "
              "AND occurred_at < %(end_at)s AND entry_type = 'COST' AND entry_kind = 'ORIGINAL'")

_EVENT_COLUMNS = """
    event_id,
    anyIf(customer_id, {original}) AS customer_id,
    anyIf(product_id, {original}) AS product_id,
    anyIf(product_type, {original}) AS product_type,
    anyIf(provider, {original}) AS provider,
    anyIf(model, {original}) AS model,
    anyIf(tool_name, {original}) AS tool_name,
    anyIf(source_type, {original}) AS source_type,
    toInt64(sumIf(input_tokens, entry_type = 'COST')) AS tokens_in,
    toInt64(sumIf(output_tokens, entry_type = 'COST')) AS tokens_out,
    sumIf(ai_cogs_usd, entry_type = 'COST') AS cogs_ai,
    sumIf(infra_cogs_usd, entry_type = 'COST') AS cogs_infra,
    sumIf(fee_cogs_usd, entry_type = 'COST') AS cogs_fee,
    sumIf(unclassified_cogs_usd, entry_type = 'COST') AS cogs_unclassified,
    sumIf(revenue_usd, entry_type = 'REVENUE') AS revenue,
    countIf(entry_type = 'REVENUE' AND entry_kind = 'ORIGINAL')
        - countIf(entry_type = 'REVENUE' AND entry_kind = 'REVERSAL') AS revenue_entries,
    anyIf(revenue_source, {original}) AS source,
    {carried} AS carried, {rated} AS rated, {basis}
""".format(original="entry_type = 'COST' AND entry_kind = 'ORIGINAL'",
           carried=expected.RAW_CARRIED, rated=expected.RAW_RATED, basis=expected.RAW_BASIS)


def _expected_of(row: dict, settled: bool, rates: dict) -> tuple[RevenueSource, Decimal]:
    """An event's revenue source and expected revenue: the first of attributed, carried,
    rated, estimated (cogs.expected: the same rates and units as the aggregates)."""
    if settled:
        return RevenueSource.ATTRIBUTED, row["revenue"]
    if row["source"] == "CARRIED":
        return RevenueSource.CARRIED, row["carried"]
    if row["source"] == "RATED":
        return RevenueSource.RATED, row["rated"]
    found = rates.get((row["customer_id"], row["product_id"]))
    if found is None:
        return RevenueSource.UNKNOWN, ZERO
    return RevenueSource.ESTIMATED, found.estimate(expected.event_units(
        row["b_events"], row["b_in"], row["b_out"], row["b_tools"], row["b_steps"],
        row["b_cogs"]))


def _transactions_of(tenant: Tenant, picked: list[tuple[str, datetime]]) -> list[Transaction]:
    """Full rows for (event id, occurred at) pairs, in the order given."""
    if not picked:
        return []
    ids = tuple({event_id for event_id, _at in picked})
    # The events' own timestamps let the primary key skip every other granule.
    times = tuple({at for _id, at in picked})
    sql = (f"SELECT {_EVENT_COLUMNS} FROM ledger WHERE tenant_id = %(tenant_id)s "
           "AND occurred_at IN %(times)s AND event_id IN %(ids)s GROUP BY event_id")
    rows = {row["event_id"]: row for row in eventstore.tenant_query(
        tenant.slug, sql, {"times": times, "ids": ids})}
    rates = expected.event_rates(tenant.slug, {
        (row["customer_id"], row["product_id"]) for row in rows.values()
        if row["source"] == "NONE" and int(row["revenue_entries"]) <= 0})
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
        ))
    return out


def _daily_event_counts(tenant: Tenant, period: Period, filters: TransactionFilters, *,
                        use_rollups: bool) -> dict[date, int]:
    """Events per day of the period matching the filters, from a rollup when one fits."""
    where, params = filters.sql()
    params |= {"start_at": period.start_at, "end_at": period.end_at, "first": period.first,
               "last": period.last, "time_zone": period.time_zone}
    by_customer = filters.customer_id is not None
    by_dims = filters.product_id is not None or filters.provider is not None
    if use_rollups and period.is_utc and not (by_customer and by_dims):
        table = "ledger_daily_customers" if by_customer else "ledger_daily"
        sql = (f"SELECT day, toInt64(sum(events)) AS n FROM {table} "
               f"WHERE tenant_id = %(tenant_id)s AND day >= %(first)s AND day <= %(last)s{where} "
               "GROUP BY day")
    else:
        sql = (f"SELECT toDate(occurred_at, %(time_zone)s) AS day, count() AS n FROM ledger "
               f"WHERE {_ORIGINALS}{where} GROUP BY day")
    return {row["day"]: int(row["n"]) for row in eventstore.tenant_query(tenant.slug, sql, params)
            if int(row["n"])}


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
    where, params = filters.sql()
    params |= {"start_at": max(period.start_at, _day_start(window[-1], period.time_zone)),
               "end_at": min(period.end_at,
                             _day_start(window[0] + timedelta(days=1), period.time_zone)),
               "offset": offset - newer, "limit": limit}
    # Step 1 picks the page from original entries only (one per event, no GROUP BY);
    # step 2 sums every entry of just those events.
    picked = eventstore.tenant_query(
        tenant.slug,
        f"SELECT event_id, occurred_at FROM ledger WHERE {_ORIGINALS}{where} "
        "ORDER BY occurred_at DESC, event_id DESC LIMIT %(offset)s, %(limit)s",
        params,
    )
    return _transactions_of(tenant, [(r["event_id"], r["occurred_at"]) for r in picked]), total


# --- anomalies ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Anomaly:
    transaction: Transaction
    group_cogs_usd: Decimal
    group_event_count: int

    @property
    def average_cogs_usd(self) -> Decimal:
        return self.group_cogs_usd / self.group_event_count

    @property
    def ratio(self) -> Decimal | None:
        if self.group_cogs_usd == 0:
            return None
        return self.transaction.cogs_usd * self.group_event_count / self.group_cogs_usd


def anomalies(tenant: Tenant, period: Period, *, multiplier: Decimal, offset: int = 0,
              limit: int = 50, use_rollups: bool = True) -> tuple[list[Anomaly], int]:
    """Events costing ≥ multiplier × their product+model average (groups of ≥ 20 events),
    highest ratio first; and how many there are."""
    groups = _anomaly_groups(tenant, period, use_rollups=use_rollups)
    if not groups:
        return [], 0
    params: dict = {"start_at": period.start_at, "end_at": period.end_at}
    multiplier_pct = int((multiplier * HUNDRED).to_integral_value())
    by_key = {row.key: row for row in groups}
    cost = "(ai_cogs_usd + infra_cogs_usd + fee_cogs_usd + unclassified_cogs_usd)"
    in_period = ("tenant_id = %(tenant_id)s AND occurred_at >= %(start_at)s "
                 "AND occurred_at < %(end_at)s")

    def anomalous(cogs: Decimal, group: Totals | None) -> bool:
        # cost ≥ m × group cost / group events  ⇔  cost × events × 100 ≥ group cost × m×100,
        # in Decimal and integers: exact.
        return group is not None and (
            cogs * group.event_count * 100 >= group.cogs_usd * multiplier_pct)

    # Step 1 reads ledger_event_costs (one row per COST entry: its group's hash and its cost,
    # sorted by group and cost) and keeps the entries at or over their group's line, looked up
    # per row by transform(). The engine compares in Float64 against a line set a little
    # lower, so it returns a superset; every candidate is then checked exactly, in Decimal,
    # so a float can never add an anomaly. Only narrow columns are read: the candidates sit
    # at the high-cost end of their groups, a few granules, and the group comes from its hash
    # (the rows shown are checked against their own product and model below). A key condition
    # per group (80 ORs) cost more to analyse than this scan.
    by_hash = {group.attributes["hash"]: group for group in groups}
    entries: list[tuple] = []
    for start in range(0, len(groups), ANOMALY_CHUNK):  # keeps the SQL text under 256 KiB
        chunk = groups[start:start + ANOMALY_CHUNK]
        lines = [(multiplier * group.cogs_usd / group.event_count * LINE_SLACK).quantize(
            PICO, rounding=ROUND_FLOOR) for group in chunk]
        entries += eventstore.tenant_rows(
            tenant.slug,
            "SELECT event_id, occurred_at, entry_kind, group_hash, cogs FROM ledger_event_costs "
            f"WHERE {in_period} AND toFloat64(cogs) >= transform(group_hash, "
            "CAST(%(hashes)s AS Array(UInt64)), CAST(%(lines)s AS Array(Float64)), "
            "toFloat64(1e300))",
            params | {"hashes": [group.attributes["hash"] for group in chunk], "lines": lines},
        )[1]
    # An event with corrections costs the sum of its entries: those are settled in step 2.
    corrections = eventstore.tenant_query(
        tenant.slug,
        "SELECT DISTINCT event_id, occurred_at FROM ledger_event_costs "
        f"WHERE {in_period} AND entry_kind != 'ORIGINAL'",
        params,
    )
    corrected = {row["event_id"] for row in corrections}
    # An event with no correction costs exactly its original entry: decided here.
    found = [
        (event_id, at, cogs, group)
        for event_id, at, _kind, group_hash, cogs in entries
        if event_id not in corrected and anomalous(cogs, group := by_hash.get(group_hash))
    ]
    # Step 2, only for corrected events: sum all their entries. In chunks, so the SQL text
    # stays well under the servers' max_query_size (256 KiB).
    ordered = sorted({(row["occurred_at"], row["event_id"]) for row in corrections})
    for start in range(0, len(ordered), ANOMALY_CHUNK):
        chunk = ordered[start:start + ANOMALY_CHUNK]
        for row in eventstore.tenant_query(
            tenant.slug,
            f"SELECT event_id, product_id, provider, model, sum({cost}) AS cogs, "
            f"min(occurred_at) AS at FROM ledger WHERE {in_period} AND entry_type = 'COST' "
            "AND occurred_at IN %(times)s AND event_id IN %(ids)s "
            "GROUP BY event_id, product_id, provider, model",
            params | {"ids": tuple({event_id for _at, event_id in chunk}),
                      "times": tuple({at for at, _id in chunk})},
        ):
            group = by_key.get((row["product_id"], row["provider"], row["model"]))
            if anomalous(row["cogs"], group):
                found.append((row["event_id"], row["at"], row["cogs"], group))
    ranked = sorted(
        found, key=lambda item: (-(item[2] * item[3].event_count / item[3].cogs_usd),
                                 -item[1].timestamp(), item[0]))
    page = ranked[offset:offset + limit]
    transactions = _transactions_of(tenant, [(event_id, at) for event_id, at, _c, _g in page])
    out = [Anomaly(transaction=transaction, group_cogs_usd=group.cogs_usd,
                   group_event_count=group.event_count)
           for (_id, _at, _cogs, group), transaction in zip(page, transactions, strict=True)
           # An entry of another group under the same 64-bit hash (odds ~2^-64) is not shown
           # (it would still be counted).
           if (transaction.product_id, transaction.provider, transaction.model) == group.key]
    return out, len(ranked)


def _anomaly_groups(tenant: Tenant, period: Period, *, use_rollups: bool) -> list[Totals]:
    """Product+provider+model groups big enough (≥ 20 events) and with a cost to compare to."""
    table, measures, period_filter = _source(Dimension.MODEL, period, use_rollups)
    sql = (f"SELECT product_id, provider, model, "
           f"cityHash64(product_id, provider, model) AS group_hash, {measures} FROM {table} "
           f"WHERE tenant_id = %(tenant_id)s AND {period_filter} "
           "GROUP BY product_id, provider, model")
    rows = eventstore.tenant_query(tenant.slug, sql, {
        "first": period.first, "last": period.last, "start_at": period.start_at,
        "end_at": period.end_at,
    })
    groups = []
    for row in rows:
        totals = Totals(
            key=(row["product_id"], row["provider"], row["model"]),
            attributes={"hash": int(row["group_hash"])},
            event_count=int(row["events"]), ai_cogs_usd=row["cogs_ai"],
            infra_cogs_usd=row["cogs_infra"], fee_cogs_usd=row["cogs_fee"],
            unclassified_cogs_usd=row["cogs_unclassified"], revenue_usd=row["revenue"],
        )
        if totals.event_count >= MIN_ANOMALY_GROUP_EVENTS and totals.cogs_usd > 0:
            groups.append(totals)
    return groups
