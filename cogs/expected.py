"""Expected revenue: attributed, else carried, else rated, else estimated, for every event.

One definition serves every reader. Attributed revenue is the REVENUE entries; carried and rated
are the provisional revenue of events not yet settled (COST entries netted with their SETTLE
entries); estimated is the unsettled usage of events with no provisional revenue priced at the
per-unit rates attribution learnt (`billing.estimates`), applied in SQL by `estimate_sql` over
any basis grouped by customer and product. Events with no rate at all are counted as unknown.

`scope_margin` is the one function that measures a scope's margin over a window from expected
revenue: budgets, alert rules and Margin Guard call it, and the dashboard's expected fields sum
the same entries through the rollups.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext

from aforo import eventstore

ZERO = Decimal(0)
HUNDRED = Decimal(100)
NANOS_PER_USD = 1_000_000_000

# The estimation basis of the raw ledger (the rollup ledger_daily_unsourced holds the same
# sums): COST and SETTLE entries of events with no provisional revenue.
UNSOURCED = "revenue_source = 'NONE' AND entry_type IN ('COST', 'SETTLE')"
RAW_BASIS = (
    f"toInt64(sumIf(event_count, {UNSOURCED})) AS b_events, "
    f"toInt64(sumIf(input_tokens, {UNSOURCED})) AS b_in, "
    f"toInt64(sumIf(output_tokens, {UNSOURCED})) AS b_out, "
    f"toInt64(sumIf(tool_calls, {UNSOURCED})) AS b_tools, "
    f"toInt64(sumIf(reasoning_steps, {UNSOURCED})) AS b_steps, "
    f"sumIf(ai_cogs_usd + infra_cogs_usd + fee_cogs_usd + unclassified_cogs_usd, {UNSOURCED}) "
    "AS b_cogs"
)
ROLLUP_BASIS = (
    "toInt64(sum(events)) AS b_events, toInt64(sum(tokens_in)) AS b_in, "
    "toInt64(sum(tokens_out)) AS b_out, toInt64(sum(tool_calls_n)) AS b_tools, "
    "toInt64(sum(reasoning_steps_n)) AS b_steps, sum(cogs) AS b_cogs"
)
# Provisional revenue still settling, over the raw ledger (the rollups' revenue_carried and
# revenue_rated measures).
RAW_CARRIED = "sumIf(carried_revenue_usd, entry_type IN ('COST', 'SETTLE'))"
RAW_RATED = "sumIf(rated_revenue_usd, entry_type IN ('COST', 'SETTLE'))"

_LATEST = ("version = (SELECT max(version) FROM revenue_rates "
           "WHERE tenant_id = %(tenant_id)s)")
_RATE_COLUMNS = ("per_event", "per_input_token", "per_output_token", "per_tool_call",
                 "per_reasoning_step", "per_cogs_nano")
# The basis columns each rate multiplies (b_cogs in nanodollars, as its rate is per nano).
_BASIS_OF = ("b_events", "b_in", "b_out", "b_tools", "b_steps", "toInt64(b_cogs * 1000000000)")


def _rates_sql(prefix: str, customer: bool) -> str:
    keys = "customer_id, product_id" if customer else "product_id"
    rates = ", ".join(f"{column} AS {prefix}_{column}" for column in _RATE_COLUMNS)
    which = "customer_id != ''" if customer else "customer_id = '' AND product_id != ''"
    return (f"SELECT {keys}, toUInt8(1) AS {prefix}_has, {rates} FROM revenue_rates "
            f"WHERE tenant_id = %(tenant_id)s AND {_LATEST} AND {which}")


def _formula(prefix: str) -> str:
    return " + ".join(f"{basis} * {prefix}_{column}"
                      for basis, column in zip(_BASIS_OF, _RATE_COLUMNS, strict=True))


def estimate_sql(basis: str, keys: Sequence[str]) -> str:
    """Per `keys`: the estimated revenue, and the events and COGS with no rate (unknown).

    `basis` is a SELECT of `keys`, customer_id, product_id and the basis sums b_events, b_in,
    b_out, b_tools, b_steps, b_cogs, grouped by all of those keys. The customer's own rate wins,
    else the product's; exact in Decimal(38, 18).
    """
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    selected = f"{', '.join(keys)}, " if keys else ""
    unknown = "c_has = 0 AND p_has = 0"
    return (
        f"SELECT {selected}"
        f"sum(if(c_has = 1, {_formula('c')}, if(p_has = 1, {_formula('p')}, "
        "toDecimal128(0, 18)))) AS estimated, "
        f"toInt64(sumIf(b_events, {unknown})) AS unknown_events, "
        f"sumIf(b_cogs, {unknown}) AS unknown_cogs "
        f"FROM (SELECT * FROM ({basis}) AS basis ANY LEFT JOIN ({_rates_sql('c', True)}) AS own "
        f"USING (customer_id, product_id)) AS priced "
        f"ANY LEFT JOIN ({_rates_sql('p', False)}) AS fallback USING (product_id){group}"
    )


@dataclass(frozen=True)
class Estimate:
    estimated_usd: Decimal = ZERO
    unknown_events: int = 0
    unknown_cogs_usd: Decimal = ZERO


def estimates_by(tenant_slug: str, basis: str, keys: Sequence[str],
                 params: dict) -> dict[tuple, Estimate]:
    """estimate_sql's rows keyed by their `keys` values."""
    out = {}
    for row in eventstore.tenant_query(tenant_slug, estimate_sql(basis, keys), params):
        out[tuple(row[k] for k in keys)] = Estimate(
            estimated_usd=row["estimated"], unknown_events=int(row["unknown_events"]),
            unknown_cogs_usd=row["unknown_cogs"])
    return out


# --- per event: the same rates, applied in Python (the transactions list) ----------------

@dataclass(frozen=True)
class EventRates:
    values: tuple[Decimal, ...]

    def estimate(self, units: Sequence[int]) -> Decimal:
        """Exactly what estimate_sql gives the same units (integer × 18-decimal rate)."""
        with localcontext() as context:
            context.prec = 80
            return sum((Decimal(u) * r for u, r in zip(units, self.values, strict=True)), ZERO)


def event_rates(tenant_slug: str, pairs: Iterable[tuple[str, str]]
                ) -> dict[tuple[str, str], EventRates]:
    """The rate that prices each (customer, product): the customer's own, else the product's."""
    pairs = set(pairs)
    if not pairs:
        return {}
    rows = eventstore.tenant_query(
        tenant_slug,
        f"SELECT customer_id, product_id, {', '.join(_RATE_COLUMNS)} FROM revenue_rates "
        f"WHERE tenant_id = %(tenant_id)s AND {_LATEST} AND product_id IN %(products)s "
        "AND (customer_id IN %(customers)s OR customer_id = '')",
        {"products": tuple({p for _c, p in pairs}), "customers": tuple({c for c, _p in pairs})})
    found = {(r["customer_id"], r["product_id"]): EventRates(
        tuple(r[c] for c in _RATE_COLUMNS)) for r in rows}
    out = {}
    for customer_id, product_id in pairs:
        rates = found.get((customer_id, product_id)) if customer_id else None
        rates = rates or found.get(("", product_id))
        if rates is not None:
            out[(customer_id, product_id)] = rates
    return out


def event_units(events: int, tokens_in: int, tokens_out: int, tool_calls: int,
                reasoning_steps: int, cogs_usd: Decimal) -> tuple[int, ...]:
    """Basis sums in the order of the rates (cogs in nanodollars, as its rate is per nano)."""
    return (events, tokens_in, tokens_out, tool_calls, reasoning_steps,
            int(cogs_usd * NANOS_PER_USD))


# --- a scope over a window: what budgets, alert rules and Margin Guard act on ------------

@dataclass(frozen=True)
class ScopeMargin:
    """COGS and expected revenue of a scope over a window, and how much of it is unknown."""

    cogs_usd: Decimal
    events: int
    attributed_usd: Decimal
    carried_usd: Decimal
    rated_usd: Decimal
    estimated_usd: Decimal
    unknown_events: int
    unknown_cogs_usd: Decimal

    @property
    def expected_revenue_usd(self) -> Decimal:
        return self.attributed_usd + self.carried_usd + self.rated_usd + self.estimated_usd

    @property
    def margin_usd(self) -> Decimal:
        return self.expected_revenue_usd - self.cogs_usd

    @property
    def margin_pct(self) -> Decimal | None:
        """Null where revenue is zero (never infinite)."""
        return margin_pct(self.expected_revenue_usd, self.cogs_usd)

    @property
    def cost_to_revenue(self) -> Decimal | None:
        revenue = self.expected_revenue_usd
        return self.cogs_usd / revenue if revenue else None

    @property
    def known(self) -> ScopeMargin:
        """The same figures over only the events whose revenue is known (unknown ones left
        out): what a guard with onUnknownRevenue=HOLD judges on."""
        return ScopeMargin(
            cogs_usd=self.cogs_usd - self.unknown_cogs_usd,
            events=self.events - self.unknown_events, attributed_usd=self.attributed_usd,
            carried_usd=self.carried_usd, rated_usd=self.rated_usd,
            estimated_usd=self.estimated_usd, unknown_events=0, unknown_cogs_usd=ZERO)

    def sources_json(self) -> dict:
        return {"attributedUsd": str(self.attributed_usd), "carriedUsd": str(self.carried_usd),
                "ratedUsd": str(self.rated_usd), "estimatedUsd": str(self.estimated_usd),
                "unknownEvents": self.unknown_events}


def margin_pct(revenue: Decimal, cogs: Decimal) -> Decimal | None:
    """(revenue − COGS) / revenue × 100, or None where revenue is zero."""
    if revenue == 0:
        return None
    return (revenue - cogs) / revenue * HUNDRED


def scope_margin(tenant_slug: str, *, start: datetime, end: datetime,
                 product_id: str | None = None,
                 customer_id: str | None = None) -> ScopeMargin:
    """COGS and expected revenue of entries with occurred_at in [start, end), for the tenant or
    a customer and/or product of it."""
    scope = ""
    params: dict = {"start": start, "end": end}
    if product_id:
        scope += " AND product_id = %(product_id)s"
        params["product_id"] = product_id
    if customer_id:
        scope += " AND customer_id = %(customer_id)s"
        params["customer_id"] = customer_id
    where = (f"tenant_id = %(tenant_id)s AND occurred_at >= %(start)s "
             f"AND occurred_at < %(end)s{scope}")
    row = eventstore.tenant_query(
        tenant_slug,
        "SELECT sumIf(ai_cogs_usd + infra_cogs_usd + fee_cogs_usd + unclassified_cogs_usd, "
        "entry_type = 'COST') AS cogs, toInt64(sumIf(event_count, entry_type = 'COST')) "
        "AS events, sumIf(revenue_usd, entry_type = 'REVENUE') AS attributed, "
        f"{RAW_CARRIED} AS carried, {RAW_RATED} AS rated FROM ledger WHERE {where}",
        params)[0]
    basis = (f"SELECT customer_id, product_id, {RAW_BASIS} FROM ledger WHERE {where} "
             "GROUP BY customer_id, product_id")
    estimate = estimates_by(tenant_slug, basis, (), params).get((), Estimate())
    # :TRICKY: sum() over no rows is 0 on both versions, and Decimal sums come back Decimal.
    return ScopeMargin(
        cogs_usd=row["cogs"] or ZERO, events=int(row["events"] or 0),
        attributed_usd=row["attributed"] or ZERO, carried_usd=row["carried"] or ZERO,
        rated_usd=row["rated"] or ZERO, estimated_usd=estimate.estimated_usd or ZERO,
        unknown_events=estimate.unknown_events, unknown_cogs_usd=estimate.unknown_cogs_usd or ZERO)
