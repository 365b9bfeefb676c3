"""The margin rules, as pure functions of numbers: margin %, customer tags, unit economics.

No SQL and no Django here: the readers in `cogs/queries/` and `cogs/expected.py` compute with
these, and the tag's SQL twin (`cogs/queries/customers.py`) is tested to agree exactly.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

ZERO = Decimal(0)
HUNDRED = Decimal(100)
THOUSAND = Decimal(1000)


def margin_pct(revenue: Decimal, cogs: Decimal) -> Decimal | None:
    """(revenue − COGS) / revenue × 100, or None where revenue is zero (never infinite)."""
    if revenue == 0:
        return None
    return (revenue - cogs) / revenue * HUNDRED


class Margin:
    """margin_usd and margin_pct of a row with revenue_usd and cogs_usd: one definition for
    totals, transactions and customer rows."""

    __slots__ = ()

    @property
    def margin_usd(self) -> Decimal:
        return self.revenue_usd - self.cogs_usd

    @property
    def margin_pct(self) -> Decimal | None:
        return margin_pct(self.revenue_usd, self.cogs_usd)


class CostBuckets(Margin):
    """cogs_usd of a row carrying the four cost buckets."""

    __slots__ = ()

    @property
    def cogs_usd(self) -> Decimal:
        return (self.ai_cogs_usd + self.infra_cogs_usd + self.fee_cogs_usd
                + self.unclassified_cogs_usd)


class ExpectedMargin:
    """Expected revenue and margin of a row with revenue_usd (attributed), cogs_usd and
    settling_revenue_usd (the expected revenue of its events not yet attributed)."""

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


# --- customer tags ----------------------------------------------------------------------------

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
    the same as the SQL in cogs/queries/customers.py. Without positive revenue there is no
    margin % to speak of: a customer who is not losing money is then AT_RISK.
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


# --- unit economics ---------------------------------------------------------------------------

class _Summed(Protocol):
    event_count: int
    ai_cogs_usd: Decimal
    revenue_usd: Decimal

    @property
    def cogs_usd(self) -> Decimal: ...

    @property
    def margin_usd(self) -> Decimal: ...

    @property
    def total_tokens(self) -> int: ...


@dataclass(frozen=True)
class UnitEconomics:
    avg_cost_per_event_usd: Decimal | None
    avg_revenue_per_event_usd: Decimal | None
    avg_margin_per_event_usd: Decimal | None
    break_even_events: int | None


def unit_economics(totals: _Summed, fixed_costs_per_month_usd: Decimal | None) -> UnitEconomics:
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


def cost_per_1k_tokens(totals: _Summed) -> Decimal | None:
    """AI COGS / (input + output tokens) × 1000; None without tokens."""
    tokens = totals.total_tokens
    return totals.ai_cogs_usd / tokens * THOUSAND if tokens else None
