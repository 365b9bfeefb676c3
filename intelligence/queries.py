"""Intelligence reads: the detectors' SQL over the hourly rollup, the sample events a signal
names, margins of a window per product and customer, and the daily history a forecast fits.

Every detector is one grouped query per tenant over `ledger_hourly` (the engine computes the
baselines, deviations and drops and returns only the scopes that fire), never a query or a
scan per customer in Python.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from aforo.ledger.query import COGS_SUM, ORIGINAL_COST, LedgerQuery, Table, tenant_sql
from aforo.periods import Period
from billing.estimates import has_rates
from cogs import expected
from cogs.expected import Estimate, ScopeMargin
from cogs.margins import ZERO

# Billable units a usage anomaly watches: the API's unit name → the hourly measure.
USAGE_UNITS = {"EVENTS": "events", "INPUT_TOKENS": "tokens_in", "OUTPUT_TOKENS": "tokens_out",
               "TOOL_CALLS": "tool_calls_n", "REASONING_STEPS": "reasoning_steps_n"}
COST_UNITS = {"COGS_USD": "cogs"}
# The ledger column that ranks a window's events as samples of a unit (most first).
SAMPLE_ORDER = {"EVENTS": "occurred_at", "INPUT_TOKENS": "input_tokens",
                "OUTPUT_TOKENS": "output_tokens", "TOOL_CALLS": "tool_calls",
                "REASONING_STEPS": "reasoning_steps", "COGS_USD": f"({COGS_SUM})"}
SAMPLES = 5


@dataclass(frozen=True)
class HourOutlier:
    """An hour of a scope outside its baseline: the same hour on each of the days before."""

    key: str              # the customer or the product
    unit: str
    value: Decimal        # the hour's sum, exact
    baseline: Decimal     # the baseline's mean, exact (zero hours count as zero)
    sd: float             # the baseline's spread the deviation is measured in
    z: float              # (value - baseline) / sd
    history_days: int     # baseline days with activity


def hour_outliers(tenant_slug: str, *, hour: datetime, group: str, units: dict[str, str],
                  baseline_days: int, min_history_days: int, min_hourly_events: Decimal,
                  sigma: Decimal, min_change: Decimal = ZERO) -> list[HourOutlier]:
    """Scopes (`group`: customer_id or product_id) whose `hour` is outside mean ± sigma·sd of
    the same hour on each of the `baseline_days` before, per unit.

    The spread is the baseline's sample standard deviation, floored at the noise of counting
    its events (mean / √(mean events per hour): a count of n varies by √n by itself), so a
    scope whose few baseline hours happen to agree does not fire on ordinary noise. A scope
    may fire once it has activity on `min_history_days` baseline days and a mean of
    `min_hourly_events` events in the hour; an hour with nothing in it counts as zero.
    """
    hours = [hour - timedelta(days=back) for back in range(baseline_days + 1)]
    measures = sorted({"events", *units.values()})
    inner, params = (LedgerQuery(tenant_slug, Table.HOURLY).where_in("hour", hours)
                     .dimensions(group, "hour").measures(*measures)
                     .group_by(group, "hour").sql())
    unpivot = ", ".join(f"('{unit}', toDecimal128({measure}, 9))"
                        for unit, measure in units.items())
    # :TRICKY: ClickHouse lets an aggregate's alias be used by the next expressions of the
    # same SELECT (mean from s1, sd from both); statistics are Float64, the value and the
    # baseline's sum stay Decimal. tupleElement, not u.1, for 18.16.
    sql = f"""
    SELECT key, unit, value, s1, active, sd, z FROM (
        SELECT {group} AS key, tupleElement(u, 1) AS unit,
               sumIf(tupleElement(u, 2), hour = %(h0)s) AS value,
               sumIf(tupleElement(u, 2), hour != %(h0)s) AS s1,
               sumIf(toFloat64(tupleElement(u, 2)) * toFloat64(tupleElement(u, 2)),
                     hour != %(h0)s) AS s2,
               countIf(hour != %(h0)s AND events > 0) AS active,
               sumIf(events, hour != %(h0)s) / %(n)s AS events_mean,
               toFloat64(s1) / %(n)s AS mean,
               sqrt(greatest((s2 - toFloat64(s1) * toFloat64(s1) / %(n)s) / (%(n)s - 1), 0))
                   AS sd_sample,
               greatest(sd_sample, mean / sqrt(greatest(events_mean, 1))) AS sd,
               if(sd > 0, (toFloat64(value) - mean) / sd, 0) AS z
        FROM ({inner}) AS hours ARRAY JOIN [{unpivot}] AS u
        GROUP BY key, unit
        HAVING active >= %(min_history)s AND events_mean >= %(min_events)s
    ) AS scored
    WHERE abs(z) >= %(sigma)s AND abs(toFloat64(value) - toFloat64(s1) / %(n)s) >= %(min_change)s
    ORDER BY key, unit"""
    params.update(h0=hour, n=baseline_days, min_history=min_history_days,
                  min_events=min_hourly_events, sigma=sigma, min_change=min_change)
    days = Decimal(baseline_days)
    return [HourOutlier(key=row["key"], unit=row["unit"], value=row["value"],
                        baseline=row["s1"] / days, sd=float(row["sd"]), z=float(row["z"]),
                        history_days=int(row["active"]))
            for row in tenant_sql(tenant_slug, sql, params)]


@dataclass(frozen=True)
class WeeklyDrop:
    customer_id: str
    this_week: int
    last_week: int

    @property
    def change_pct(self) -> Decimal:
        return (Decimal(self.this_week) - self.last_week) / self.last_week * 100


def weekly_drops(tenant_slug: str, *, week_start: datetime, week_end: datetime,
                 drop_pct: Decimal, min_weekly_events: int) -> list[WeeklyDrop]:
    """Customers whose events in [week_start, week_end) fell by at least `drop_pct` against
    the week before, where that week had at least `min_weekly_events`."""
    previous = week_start - (week_end - week_start)
    sql, params = (
        LedgerQuery(tenant_slug, Table.HOURLY).between(previous, week_end)
        .dimensions("customer_id")
        .expressions("toInt64(sumIf(events, hour >= %(week_start)s)) AS this_week",
                     "toInt64(sumIf(events, hour < %(week_start)s)) AS last_week")
        .group_by("customer_id")
        .having("last_week >= %(min_events)s "
                "AND this_week * 100 <= last_week * (100 - %(drop_pct)s)")
        .order_by("customer_id").sql())
    params.update(week_start=week_start, min_events=min_weekly_events, drop_pct=drop_pct)
    return [WeeklyDrop(row["customer_id"], int(row["this_week"]), int(row["last_week"]))
            for row in tenant_sql(tenant_slug, sql, params)]


@dataclass(frozen=True)
class Samples:
    event_ids: list[str]
    last_event_at: datetime | None


def samples_by(tenant_slug: str, *, start: datetime, end: datetime, group: str | None,
               keys: Iterable[str], unit: str, customer_id: str | None = None,
               product_id: str | None = None) -> dict[str, Samples]:
    """Per key of `group` (customer_id or product_id; None: the whole scope, key ''), the
    window's events that weigh most in `unit` and the time of its last event: one query for
    the samples (LIMIT n BY) and one for the last events, whatever the number of keys."""
    keys = sorted(set(keys))
    base = (LedgerQuery(tenant_slug).between(start, end).where_sql(ORIGINAL_COST)
            .where(customer_id=customer_id, product_id=product_id))
    if group:
        base = base.where_in(group, keys)
    key_sql = group or "''"
    order = SAMPLE_ORDER[unit]
    sql, params = (base.expressions(f"{key_sql} AS key", "event_id")
                   .order_by("key", f"{order} DESC", "event_id").sql())
    sql += " LIMIT %(samples)s BY key"
    params["samples"] = SAMPLES
    found: dict[str, list[str]] = {}
    for row in tenant_sql(tenant_slug, sql, params):
        found.setdefault(row["key"], []).append(row["event_id"])
    last_sql, last_params = base.expressions(f"{key_sql} AS key",
                                             "max(occurred_at) AS last_at").group_by(
        *((group,) if group else ())).sql()
    last = {row["key"]: row["last_at"] for row in tenant_sql(tenant_slug, last_sql, last_params)}
    return {key: Samples(found.get(key, []), last.get(key)) for key in (keys or [""])}


# --- margins of a window per product or customer (what-if) -----------------------------------

def margins_by(tenant_slug: str, *, start: datetime, end: datetime, keys: Sequence[str],
               product_id: str | None = None,
               customer_id: str | None = None) -> dict[tuple, ScopeMargin]:
    """`cogs.expected.scope_margin` per value of `keys` (customer_id and/or product_id): the
    same entries and the same estimate, grouped."""
    def scoped(query: LedgerQuery) -> LedgerQuery:
        return query.between(start, end).where(product_id=product_id, customer_id=customer_id)

    rows = scoped(LedgerQuery(tenant_slug).dimensions(*keys).measures(
        "cogs", "events", "revenue", "revenue_carried", "revenue_rated", "events_unsourced",
        "b_cogs").group_by(*keys)).fetch()
    estimates: dict[tuple, Estimate] = {}
    if has_rates(tenant_slug):
        estimates = expected.estimates_by(
            tenant_slug, scoped(expected.basis_query(tenant_slug, Table.LEDGER, keys)), keys)
    out = {}
    for row in rows:
        key = tuple(row[k] for k in keys)
        estimate = estimates.get(key) if estimates else Estimate(
            unknown_events=int(row["events_unsourced"]), unknown_cogs_usd=row["b_cogs"])
        estimate = estimate or Estimate()
        out[key] = ScopeMargin(
            cogs_usd=row["cogs"], events=int(row["events"]), attributed_usd=row["revenue"],
            carried_usd=row["revenue_carried"], rated_usd=row["revenue_rated"],
            estimated_usd=estimate.estimated_usd, unknown_events=estimate.unknown_events,
            unknown_cogs_usd=estimate.unknown_cogs_usd)
    return out


# --- the daily history a forecast fits ---------------------------------------------------------

@dataclass(frozen=True)
class DayActual:
    day: date
    cogs_usd: Decimal
    revenue_usd: Decimal   # expected revenue: attributed + carried + rated + estimated


def _history_table(period: Period, product_id: str | None, customer_id: str | None) -> Table:
    """The daily rollups serve UTC tenants at one grain (they hold products or customers, not
    both); everything else sums the raw ledger in the tenant's days."""
    if not period.is_utc or (product_id and customer_id):
        return Table.LEDGER
    return Table.DAILY_CUSTOMERS if customer_id else Table.DAILY


def daily_actuals(tenant_slug: str, period: Period, *, product_id: str | None = None,
                  customer_id: str | None = None) -> list[DayActual]:
    """Every day of the period in order (zero where nothing happened): COGS and expected
    revenue of the tenant, a product, a customer or a customer's use of a product."""
    table = _history_table(period, product_id, customer_id)
    rows = (LedgerQuery(tenant_slug, table).period(period)
            .where(product_id=product_id, customer_id=customer_id).dimensions("day")
            .measures("cogs", "revenue", "revenue_carried", "revenue_rated").group_by("day")
            .fetch())
    found = {row["day"]: row for row in rows}
    estimated: dict[tuple, Estimate] = {}
    if has_rates(tenant_slug):
        basis_table = Table.UNSOURCED if period.is_utc else Table.LEDGER
        basis = (expected.basis_query(tenant_slug, basis_table, ("day",)).period(period)
                 .where(product_id=product_id, customer_id=customer_id))
        estimated = expected.estimates_by(tenant_slug, basis, ("day",))
    out = []
    for day in period.days:
        row = found.get(day)
        estimate = estimated.get((day,))
        revenue = (row["revenue"] + row["revenue_carried"] + row["revenue_rated"]) if row \
            else ZERO
        out.append(DayActual(day=day, cogs_usd=row["cogs"] if row else ZERO,
                             revenue_usd=revenue + (estimate.estimated_usd if estimate
                                                    else ZERO)))
    return out


# --- signals for the console --------------------------------------------------------------------

def health_signals(tenant, *, limit: int = 8) -> list:
    """The Customer Health Signals tile: open and acknowledged signals, the most severe and
    the largest (times its threshold) first."""
    from intelligence.api import SEVERITY_ORDER
    from intelligence.models import Signal

    return list(Signal.objects.filter(tenant=tenant).exclude(state=Signal.State.RESOLVED)
                .annotate(rank=SEVERITY_ORDER).order_by("-rank", "-magnitude", "-id")[:limit])


def products_with_history(tenant_slug: str, period: Period) -> list[str]:
    """The products with COGS or expected revenue on the period's (UTC) days: the product
    forecasts the hourly job keeps fitted."""
    rows = (LedgerQuery(tenant_slug, Table.DAILY).period(period).dimensions("product_id")
            .measures("events").group_by("product_id").fetch())
    return sorted(row["product_id"] for row in rows if row["product_id"])
