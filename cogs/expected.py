"""Expected revenue: attributed, else carried, else rated, else estimated, for every event.

One definition serves every reader. Attributed revenue is the REVENUE entries; carried and rated
are the provisional revenue of events not yet settled (COST entries netted with their SETTLE
entries); estimated is the unsettled usage of events with no provisional revenue priced at the
per-unit rates attribution learnt (`billing.estimates`), applied in SQL by `estimate_sql` over
any basis grouped by customer and product. Events with no rate at all are counted as unknown.

`scope_margin` is the one function that measures a scope's margin over a window from expected
revenue: alert rules and Margin Guard call it, and the dashboard's expected fields sum the same
entries through the rollups. `scopes_cogs` gives its COGS for many scopes in one read (a list of
budgets).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext

from aforo.ledger.query import BASIS, COGS_SUM, UNSOURCED, LedgerQuery, Table, tenant_sql
from billing.estimates import has_rates
from cogs.margins import ZERO, margin_pct

NANOS_PER_USD = 1_000_000_000

_RATE_COLUMNS = ("per_event", "per_input_token", "per_output_token", "per_tool_call",
                 "per_reasoning_step", "per_cogs_nano")
# The basis sums each rate multiplies (b_cogs in nanodollars, as its rate is per nano).
_BASIS_OF = ("b_events", "b_in", "b_out", "b_tools", "b_steps", "toInt64(b_cogs * 1000000000)")


def _rates(tenant_slug: str, prefix: str, *, customer: bool) -> tuple[str, dict]:
    """The latest rates, the customer's own (customer=True) or the products' (customer '')."""
    query = (LedgerQuery(tenant_slug, Table.REVENUE_RATES).latest_rates()
             .dimensions(*(("customer_id", "product_id") if customer else ("product_id",)))
             .expressions(f"toUInt8(1) AS {prefix}_has",
                          *(f"{column} AS {prefix}_{column}" for column in _RATE_COLUMNS)))
    if customer:
        return query.where_sql("customer_id != ''").sql()
    return query.where_sql("customer_id = '' AND product_id != ''").sql()


def _formula(prefix: str) -> str:
    return " + ".join(f"{basis} * {prefix}_{column}"
                      for basis, column in zip(_BASIS_OF, _RATE_COLUMNS, strict=True))


# Each basis unit as a column of the unsourced read model, and of a raw ledger entry.
_BASIS_COLUMNS = {
    Table.UNSOURCED: ("events", "tokens_in", "tokens_out", "tool_calls_n", "reasoning_steps_n",
                      "cogs"),
    Table.LEDGER: ("event_count", "input_tokens", "output_tokens", "tool_calls",
                   "reasoning_steps", f"({COGS_SUM})"),
}


def basis_query(tenant_slug: str, table: Table, keys: Sequence[str]) -> LedgerQuery:
    """The estimation basis as rows (not grouped: each row is priced on its own and the sums
    are linear), with `keys`, customer and product: the unsourced read model or the raw
    ledger's COST and SETTLE entries without provisional revenue. A reader adds its period or
    window and scope."""
    extra = [k for k in keys if k not in ("customer_id", "product_id")]
    query = LedgerQuery(tenant_slug, table).dimensions(*extra, "customer_id", "product_id")
    if table is Table.LEDGER:
        query = query.where_sql(UNSOURCED)
    return query.expressions(*(f"{column} AS {name}" for column, name in zip(
        _BASIS_COLUMNS[table], BASIS, strict=True)))


def estimate_sql(tenant_slug: str, basis: LedgerQuery, keys: Sequence[str],
                 ) -> tuple[str, dict]:
    """Per `keys`: the estimated revenue, and the events and COGS with no rate (unknown).

    `basis` is a `basis_query` (rows). The customer's own rate wins, else the product's; exact
    in Decimal(38, 18).
    """
    basis_sql, params = basis.sql()
    own_sql, own_params = _rates(tenant_slug, "c", customer=True)
    fallback_sql, fallback_params = _rates(tenant_slug, "p", customer=False)
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    selected = f"{', '.join(keys)}, " if keys else ""
    unknown = "c_has = 0 AND p_has = 0"
    sql = (
        f"SELECT {selected}"
        f"sum(if(c_has = 1, {_formula('c')}, if(p_has = 1, {_formula('p')}, "
        "toDecimal128(0, 18)))) AS estimated, "
        f"toInt64(sumIf(b_events, {unknown})) AS unknown_events, "
        f"sumIf(b_cogs, {unknown}) AS unknown_cogs "
        f"FROM (SELECT * FROM ({basis_sql}) AS basis ANY LEFT JOIN ({own_sql}) AS own "
        f"USING (customer_id, product_id)) AS priced "
        f"ANY LEFT JOIN ({fallback_sql}) AS fallback USING (product_id){group}"
    )
    return sql, {**params, **own_params, **fallback_params}


@dataclass(frozen=True)
class Estimate:
    estimated_usd: Decimal = ZERO
    unknown_events: int = 0
    unknown_cogs_usd: Decimal = ZERO


def estimates_by(tenant_slug: str, basis: LedgerQuery, keys: Sequence[str],
                 ) -> dict[tuple, Estimate]:
    """estimate_sql's rows keyed by their `keys` values."""
    out = {}
    sql, params = estimate_sql(tenant_slug, basis, keys)
    for row in tenant_sql(tenant_slug, sql, params):
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
    if not pairs or not has_rates(tenant_slug):
        return {}
    rows = (LedgerQuery(tenant_slug, Table.REVENUE_RATES).latest_rates()
            .dimensions("customer_id", "product_id").expressions(*_RATE_COLUMNS)
            .where_in("product_id", {p for _c, p in pairs})
            .where_sql("(customer_id IN %(customers)s OR customer_id = '')",
                       customers=tuple({c for c, _p in pairs} | {""}))
            .fetch())
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


def scope_margin(tenant_slug: str, *, start: datetime, end: datetime,
                 product_id: str | None = None, customer_id: str | None = None,
                 model: str | None = None) -> ScopeMargin:
    """COGS and expected revenue of entries with occurred_at in [start, end), for the tenant or
    a customer, product and/or model of it."""
    def scoped(query: LedgerQuery) -> LedgerQuery:
        return query.between(start, end).where(product_id=product_id or None,
                                               customer_id=customer_id or None,
                                               model=model or None)

    row = scoped(LedgerQuery(tenant_slug).measures(
        "cogs", "events", "revenue", "revenue_carried", "revenue_rated", "events_unsourced",
        "b_cogs")).one()
    if has_rates(tenant_slug):
        estimate = estimates_by(tenant_slug, scoped(basis_query(tenant_slug, Table.LEDGER, ())),
                                ()).get((), Estimate())
    else:  # no rate anywhere: every unsourced event is unknown
        estimate = Estimate(unknown_events=int(row["events_unsourced"] or 0),
                            unknown_cogs_usd=row["b_cogs"] or ZERO)
    # :TRICKY: sum() over no rows is 0 on both versions, and Decimal sums come back Decimal.
    return ScopeMargin(
        cogs_usd=row["cogs"] or ZERO, events=int(row["events"] or 0),
        attributed_usd=row["revenue"] or ZERO, carried_usd=row["revenue_carried"] or ZERO,
        rated_usd=row["revenue_rated"] or ZERO, estimated_usd=estimate.estimated_usd or ZERO,
        unknown_events=estimate.unknown_events, unknown_cogs_usd=estimate.unknown_cogs_usd or ZERO)


# --- many scopes' COGS in one read: what a list of budgets shows ------------------------------

@dataclass(frozen=True)
class CostScope:
    """Entries with occurred_at in [start, end), of a product and/or a customer ('': all)."""

    start: datetime
    end: datetime
    product_id: str = ""
    customer_id: str = ""


def scopes_cogs(tenant_slug: str, scopes: Iterable[CostScope]) -> dict[CostScope, Decimal]:
    """Each scope's COGS, exactly `scope_margin(...).cogs_usd` of it, from one read of the raw
    ledger: the entries of any of the windows, grouped by which windows hold them and by the
    products and customers the scopes name (the others in one group each), then summed per
    scope here."""
    scopes = list(dict.fromkeys(scopes))
    if not scopes:
        return {}
    windows = list(dict.fromkeys((s.start, s.end) for s in scopes))
    flags = {window: f"w{n}" for n, window in enumerate(windows)}
    query = LedgerQuery(tenant_slug).within(windows)
    for (start, end), name in flags.items():
        query = query.flag_between(name, start, end)
    keys = list(flags.values())
    for column, key in (("product_id", "scope_product"), ("customer_id", "scope_customer")):
        named = {getattr(s, column) for s in scopes} - {""}
        if not named:
            continue  # every scope takes every value: no need to tell them apart
        query = query.dimension_among(key, column, named)
        keys.append(key)
        if all(getattr(s, column) for s in scopes):
            query = query.where_in(column, named)
    rows = query.measures("cogs").group_by(*keys).fetch()
    out = {}
    with localcontext() as context:
        context.prec = 80  # exact: the groups' Decimal(38, 9) sums added without rounding
        for scope in scopes:
            flag = flags[(scope.start, scope.end)]
            total = sum((row["cogs"] for row in rows if row[flag]
                         and (not scope.product_id or row["scope_product"] == scope.product_id)
                         and (not scope.customer_id
                              or row["scope_customer"] == scope.customer_id)), ZERO)
            out[scope] = total or ZERO  # as scope_margin: a zero sum is ZERO
    return out
