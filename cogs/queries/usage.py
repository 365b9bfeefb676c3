"""Usage by billable unit: per unit the period's total, its top customers and a daily trend;
every unit per customer; every unit per product type.

Per customer it reads `usage_daily_customers` (0014: the units per UTC day and customer) for the
period's whole UTC days and the hourly rollup (`ledger_hourly`) for the hours at its edges that
a time zone other than UTC leaves; the daily trend and the product types read
`usage_hourly_agents` (0014: per UTC hour and product), so a tenant-time-zone day is a sum of
its hours. A month of 10M events over 10,000 customers is then 300,000 customer-day rows and a
few ten thousand hour rows, where `ledger_hourly` holds nearly a row per event. With
`use_rollups=False` every figure reads `ledger_hourly` alone (the same figures; tests compare
them). Product types come from the daily rollup's product rows (a product carries its type).
"""
from __future__ import annotations

import enum
import heapq
from dataclasses import dataclass, field
from datetime import date, timedelta

from aforo.ledger.query import LedgerQuery, Table
from aforo.models import Tenant
from aforo.periods import Period, utc_midnight


class Unit(enum.StrEnum):
    """The billable units every event can carry, as API.md names them."""

    EVENTS = "EVENTS"
    INPUT_TOKENS = "INPUT_TOKENS"
    OUTPUT_TOKENS = "OUTPUT_TOKENS"
    TOOL_CALLS = "TOOL_CALLS"
    REASONING_STEPS = "REASONING_STEPS"


# The builder's measure of each unit over the hourly rollup.
UNIT_MEASURES: dict[Unit, str] = {
    Unit.EVENTS: "events", Unit.INPUT_TOKENS: "tokens_in", Unit.OUTPUT_TOKENS: "tokens_out",
    Unit.TOOL_CALLS: "tool_calls_n", Unit.REASONING_STEPS: "reasoning_steps_n",
}
_MEASURES = tuple(UNIT_MEASURES.values())


_UNIT_MEASURES = tuple(UNIT_MEASURES.items())


def _quantities(row: dict) -> dict[Unit, int]:
    return {unit: int(row[measure]) for unit, measure in _UNIT_MEASURES}


def _hourly(tenant: Tenant, period: Period, table: Table = Table.HOURLY) -> LedgerQuery:
    return LedgerQuery(tenant.slug, table).period(period)


def _per_customer(tenant: Tenant, period: Period, use_rollups: bool) -> list[dict]:
    """Each customer's units over the period's hours: the whole UTC days from the daily
    rollup, the hours before the first and after the last from the hourly one."""
    if not use_rollups:
        return (_hourly(tenant, period).dimensions("customer_id").measures(*_MEASURES)
                .group_by("customer_id").fetch())
    days_from = utc_midnight(period.start_at, up=True)
    days_to = max(days_from, utc_midnight(period.end_at, up=False))
    parts = [LedgerQuery(tenant.slug, Table.USAGE_CUSTOMERS)
             .where_sql("day >= %(u_from)s AND day < %(u_to)s", u_from=days_from.date(),
                        u_to=days_to.date())] if days_from < days_to else []
    edges = [(period.start_at, min(days_from, period.end_at)), (days_to, period.end_at)]
    parts += [LedgerQuery(tenant.slug, Table.HOURLY).between(start, end)
              for start, end in edges if start < end]
    fetched = [part.dimensions("customer_id").measures(*_MEASURES).group_by("customer_id")
               .fetch() for part in parts]
    if len(fetched) == 1:  # a UTC period: whole days only
        return fetched[0]
    summed: dict[str, dict] = {}
    for rows in fetched:
        for row in rows:
            into = summed.setdefault(row["customer_id"], dict.fromkeys(_MEASURES, 0))
            for measure in _MEASURES:
                into[measure] += int(row[measure])
    return [{"customer_id": customer, **units} for customer, units in summed.items()]


@dataclass(frozen=True)
class UnitUsage:
    """One unit over the period: its total, its biggest customers and each day's quantity."""

    unit: Unit
    total: int
    top_customers: list[tuple[str, int]]
    daily: list[tuple[date, int]]


def _hours(use_rollups: bool) -> Table:
    return Table.USAGE_HOURLY if use_rollups else Table.HOURLY


def usage_by_billable_unit(tenant: Tenant, period: Period, *, top: int = 5,
                           use_rollups: bool = True) -> list[UnitUsage]:
    per_customer = _per_customer(tenant, period, use_rollups)
    per_day = {row["day"]: _quantities(row) for row in (
        _hourly(tenant, period, _hours(use_rollups)).dimensions("day").measures(*_MEASURES)
        .group_by("day").fetch())}
    out = []
    customers = [row["customer_id"] for row in per_customer]
    for unit, measure in UNIT_MEASURES.items():
        quantities = [int(row[measure]) for row in per_customer]
        # the biggest first, ties by customer id (a heap of `top`, not a sort of them all)
        ranked = heapq.nsmallest(top, ((-quantity, customer) for customer, quantity
                                       in zip(customers, quantities, strict=True) if quantity))
        out.append(UnitUsage(
            unit=unit, total=sum(quantities),
            top_customers=[(customer, -negated) for negated, customer in ranked],
            daily=[(day, per_day.get(day, {}).get(unit, 0)) for day in period.days]))
    return out


@dataclass(frozen=True)
class GroupUsage:
    """Every unit of one customer or product type."""

    key: str
    quantities: dict[Unit, int] = field(default_factory=dict)


def _ranked(rows: list[GroupUsage]) -> list[GroupUsage]:
    return sorted(rows, key=lambda r: (-r.quantities[Unit.EVENTS], r.key))


def usage_by_customer(tenant: Tenant, period: Period, *, limit: int | None = None,
                      use_rollups: bool = True) -> list[GroupUsage]:
    """Per customer, most events first."""
    rows = _ranked([GroupUsage(row["customer_id"], _quantities(row))
                    for row in _per_customer(tenant, period, use_rollups)])
    return rows[:limit] if limit is not None else rows


def product_types(tenant: Tenant, period: Period) -> dict[str, str]:
    """Each product's type, from the daily rollup's rows of the period's UTC days (a day
    either side, so a day of another time zone is covered)."""
    rows = (LedgerQuery(tenant.slug, Table.DAILY)
            .where_sql("day >= %(t_first)s AND day <= %(t_last)s",
                       t_first=period.first - timedelta(days=1),
                       t_last=period.last + timedelta(days=1))
            .dimensions("product_id").expressions("max(product_type) AS type_max")
            .group_by("product_id").fetch())
    return {row["product_id"]: row["type_max"] for row in rows}


def usage_by_product_type(tenant: Tenant, period: Period, *,
                          use_rollups: bool = True) -> list[GroupUsage]:
    """Per product type (the sum of its products), most events first."""
    types = product_types(tenant, period)
    summed: dict[str, dict[Unit, int]] = {}
    for row in (_hourly(tenant, period, _hours(use_rollups)).dimensions("product_id")
                .measures(*_MEASURES).group_by("product_id").fetch()):
        into = summed.setdefault(types.get(row["product_id"], ""), dict.fromkeys(Unit, 0))
        for unit, quantity in _quantities(row).items():
            into[unit] += quantity
    return _ranked([GroupUsage(key, quantities) for key, quantities in summed.items()])
