"""The ledger query builder: every read of the ledger and its read models goes through here.

One table of measures (each measure's expression over the raw ledger and over the read models
that hold it), the whitelisted dimensions, periods and windows, scope filters, grouping,
ordering and limits. It always writes the tenant filter, so no reader types it (a test fails if
a module outside the event store, this builder and the exemptions it names writes
`tenant_id =`). Readers compose its SQL (`sql()`) into joins and outer SELECTs freely: the
tenant filter is inside.

    rows = (LedgerQuery(tenant, Table.DAILY).period(period)
            .group_by("product_id").measures("events", "cogs_ai").fetch())

Exempt, hand-written with the tenant filter of their own (each says why in a :TRICKY:
comment): attribution's allocation and reconciliation SQL (`billing/attribution.py`) and the
settlement reconciliation (`billing/settlement.py`), and a cost import's difference
(`cost_sources/imports.py`), INSERT ... SELECTs over joins and unions the builder would only
obscure.
"""
from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Protocol

from aforo import eventstore
from aforo.ledger.entries import EVENT_DIMENSIONS

# Modules that may write a tenant filter by hand (see the module docstring).
HAND_WRITTEN = ("aforo/eventstore/", "aforo/ledger/query.py", "billing/attribution.py",
                "billing/settlement.py", "cost_sources/imports.py")


class Table(enum.Enum):
    """The ledger and the read models the builder reads."""

    LEDGER = "ledger"
    DAILY = "ledger_daily"                      # by UTC day, product, provider, model
    DAILY_CUSTOMERS = "ledger_daily_customers"  # by UTC day, customer
    UNSOURCED = "ledger_daily_unsourced"        # the estimation basis (cogs.expected)
    EVENT_COSTS = "ledger_event_costs"          # COST entries by group and cost (anomalies)
    EVENT_IDS = "ledger_event_ids"              # every event id (dedupe)
    REVENUE_RATES = "revenue_rates"             # per-unit revenue estimates
    HOURLY = "ledger_hourly"                    # by UTC hour, customer, product (detectors)
    CUSTOMER_EVENTS = "ledger_customer_events"  # each customer's event ids in time order
    COST_LINES = "provider_cost_lines"          # providers' billed lines (cost sources)
    COST_IMPORT_LINES = "provider_cost_import_lines"  # each import's own lines
    CREDITS = "credit_ledger"                   # wallets' TOPUP, GRANT, DEBIT, EXPIRY (0011)
    USAGE_CUSTOMERS = "usage_daily_customers"   # units by UTC day, customer (0014)
    USAGE_HOURLY = "usage_hourly_agents"        # by UTC hour, product, tool, agent (0014)
    SESSIONS = "agent_sessions"                 # one row per session, aggregate states (0014)
    # Margin Guard's impact report (0015), both by occurred_at second: the downgraded calls,
    # and each customer's calls by tool and model with the figures of its margin.
    GUARD_DOWNGRADED = "guard_downgraded"
    GUARD_CUSTOMERS = "guard_customer_calls"
    # Both by UTC day (0016): the impact report reads a window of whole days here, and partial
    # days from the two above.
    GUARD_DOWNGRADED_DAYS = "guard_downgraded_days"
    GUARD_CUSTOMER_DAYS = "guard_customer_days"

    @property
    def by_day(self) -> bool:
        return self in (Table.DAILY, Table.DAILY_CUSTOMERS, Table.UNSOURCED, Table.COST_LINES,
                        Table.COST_IMPORT_LINES, Table.USAGE_CUSTOMERS,
                        Table.GUARD_DOWNGRADED_DAYS, Table.GUARD_CUSTOMER_DAYS)

    @property
    def time_column(self) -> str:
        """The column a window of instants filters on."""
        if self is Table.CREDITS:
            return "recorded_at"  # a wallet's entries count from when they were written
        if self is Table.SESSIONS:
            raise ValueError("agent_sessions has no time column: filter its sessions' bounds")
        return "hour" if self in (Table.HOURLY, Table.USAGE_HOURLY) else "occurred_at"


# --- entry kinds ----------------------------------------------------------------------------

COST = "entry_type = 'COST'"
REVENUE = "entry_type = 'REVENUE'"
ORIGINAL_COST = "entry_type = 'COST' AND entry_kind = 'ORIGINAL'"
SETTLING = "entry_type IN ('COST', 'SETTLE')"  # COST net of the SETTLE entries cancelling it
UNSOURCED = f"revenue_source = 'NONE' AND {SETTLING}"
COGS_SUM = "ai_cogs_usd + infra_cogs_usd + fee_cogs_usd + unclassified_cogs_usd"
# An allocation's entries (cost spread onto events, cost_sources.allocations) and the rest:
# what the events themselves metered. Repricing, anomalies and the detectors read METERED.
ALLOCATED = "allocation_id != ''"
METERED = "allocation_id = ''"
# Calls Margin Guard answered with a cheaper model than the one asked for.
DOWNGRADED = "requested_model != '' AND requested_model != model"


# --- measures ---------------------------------------------------------------------------------

_DAILY = (Table.DAILY, Table.DAILY_CUSTOMERS)


def _rollup(expression: str, tables: Sequence[Table] = _DAILY) -> dict[Table, str]:
    return dict.fromkeys(tables, expression)


_ALL_ROLLUPS = (*_DAILY, Table.HOURLY)
# The usage and agent rollups (0014): summed, and the sessions' aggregate states merged.
_USAGE = (Table.USAGE_CUSTOMERS, Table.USAGE_HOURLY)


def _summed(column: str, tables: Sequence[Table] = (*_USAGE, Table.SESSIONS), *,
            count: bool = True) -> dict[Table, str]:
    """The expression of a 0014 measure over its tables (the sum of its column, or the merge of
    its sumIf state on agent_sessions)."""
    def over(table: Table) -> str:
        inner = f"sumIfMerge({column})" if table is Table.SESSIONS else f"sum({column})"
        return f"toInt64({inner})" if count else inner
    return {table: over(table) for table in tables}
# Margin Guard's impact read models (0015 by second, 0016 by day): the downgraded calls, and
# each customer's calls by tool and model.
_DOWNGRADED = (Table.GUARD_DOWNGRADED, Table.GUARD_DOWNGRADED_DAYS)
_CUSTOMER_CALLS = (Table.GUARD_CUSTOMERS, Table.GUARD_CUSTOMER_DAYS)
_GUARD = (*_DOWNGRADED, *_CUSTOMER_CALLS)


@dataclass(frozen=True)
class Measure:
    """A summed figure: its expression over the raw ledger and over each read model."""

    raw: str
    read_models: Mapping[Table, str] = field(default_factory=dict)

    def over(self, table: Table) -> str:
        if table is Table.LEDGER and self.raw:
            return self.raw
        if table not in self.read_models:
            raise ValueError(f"{table.value} does not hold this measure")
        return self.read_models[table]


_MONEY_ROLLUPS = (Table.USAGE_HOURLY, Table.SESSIONS)  # cost and revenue (0014)


# :TRICKY: a measure's name never equals a ledger column it sums: ClickHouse substitutes an
# alias into the WHERE clause and the other aggregates of its SELECT (and 18.16 fails).
MEASURES: dict[str, Measure] = {
    "events": Measure(f"toInt64(sumIf(event_count, {COST}))",
                      {**_rollup("toInt64(sum(events))", (*_ALL_ROLLUPS, *_GUARD)),
                       **_summed("events"),
                       # one row per event, a copy possible until merged (0010)
                       Table.CUSTOMER_EVENTS: "toInt64(uniqExact(event_id))"}),
    "tokens_in": Measure(f"toInt64(sumIf(input_tokens, {COST}))", {
        **_rollup("toInt64(sum(tokens_in))", (*_ALL_ROLLUPS, *_DOWNGRADED)),
        **_summed("tokens_in")}),
    "tokens_out": Measure(f"toInt64(sumIf(output_tokens, {COST}))", {
        **_rollup("toInt64(sum(tokens_out))", (*_ALL_ROLLUPS, *_DOWNGRADED)),
        **_summed("tokens_out")}),
    "tokens_cached": Measure(f"toInt64(sumIf(cached_input_tokens, {COST}))",
                             _rollup("toInt64(sum(tokens_cached))", _DOWNGRADED)),
    "tokens_reasoning": Measure(f"toInt64(sumIf(reasoning_tokens, {COST}))",
                                _rollup("toInt64(sum(tokens_reasoning))", _DOWNGRADED)),
    "tool_calls_n": Measure(f"toInt64(sumIf(tool_calls, {COST}))",
                            {Table.HOURLY: "toInt64(sum(tool_calls_n))",
                             **_summed("tool_calls_n")}),
    "reasoning_steps_n": Measure(f"toInt64(sumIf(reasoning_steps, {COST}))",
                                 {Table.HOURLY: "toInt64(sum(reasoning_steps_n))",
                                  **_summed("reasoning_steps_n")}),
    "cogs_ai": Measure(f"sumIf(ai_cogs_usd, {COST})",
                       _rollup("sum(cogs_ai)", (*_DAILY, *_DOWNGRADED))),
    "cogs_infra": Measure(f"sumIf(infra_cogs_usd, {COST})", _rollup("sum(cogs_infra)")),
    "cogs_fee": Measure(f"sumIf(fee_cogs_usd, {COST})", _rollup("sum(cogs_fee)")),
    "cogs_unclassified": Measure(f"sumIf(unclassified_cogs_usd, {COST})",
                                 _rollup("sum(cogs_unclassified)")),
    "cogs": Measure(f"sumIf({COGS_SUM}, {COST})",
                    {**_rollup("sum(cogs_ai + cogs_infra + cogs_fee + cogs_unclassified)"),
                     Table.HOURLY: "sum(cogs)", **_rollup("sum(cogs)", _CUSTOMER_CALLS),
                     **_summed("cogs", _MONEY_ROLLUPS, count=False)}),
    "revenue": Measure(f"sumIf(revenue_usd, {REVENUE})",
                       {**_rollup("sum(revenue)", (*_DAILY, Table.GUARD_CUSTOMERS)),
                        **_summed("revenue", _MONEY_ROLLUPS, count=False)}),
    # The part of the COGS allocations spread onto the events (migration 0013).
    "cogs_allocated": Measure(f"sumIf({COGS_SUM}, {COST} AND {ALLOCATED})",
                              _rollup("sum(cogs_allocated)")),
    # Provisional revenue still settling (cogs.expected).
    "revenue_carried": Measure(f"sumIf(carried_revenue_usd, {SETTLING})",
                               {**_rollup("sum(revenue_carried)", (*_DAILY, Table.GUARD_CUSTOMERS)),
                                **_summed("revenue_carried", _MONEY_ROLLUPS, count=False)}),
    "revenue_rated": Measure(f"sumIf(rated_revenue_usd, {SETTLING})",
                             {**_rollup("sum(revenue_rated)", (*_DAILY, Table.GUARD_CUSTOMERS)),
                              **_summed("revenue_rated", _MONEY_ROLLUPS, count=False)}),
    "unpriced_events": Measure("sum(unpriced)"),
    "events_unsourced": Measure(f"toInt64(sumIf(event_count, {UNSOURCED}))", _rollup(
        "toInt64(sum(events_unsourced))", (*_DAILY, Table.GUARD_CUSTOMERS))),
    # The estimation basis: unsettled usage of events without provisional revenue.
    "b_events": Measure(f"toInt64(sumIf(event_count, {UNSOURCED}))",
                        {Table.UNSOURCED: "toInt64(sum(events))"}),
    "b_in": Measure(f"toInt64(sumIf(input_tokens, {UNSOURCED}))",
                    {Table.UNSOURCED: "toInt64(sum(tokens_in))"}),
    "b_out": Measure(f"toInt64(sumIf(output_tokens, {UNSOURCED}))",
                     {Table.UNSOURCED: "toInt64(sum(tokens_out))"}),
    "b_tools": Measure(f"toInt64(sumIf(tool_calls, {UNSOURCED}))",
                       {Table.UNSOURCED: "toInt64(sum(tool_calls_n))"}),
    "b_steps": Measure(f"toInt64(sumIf(reasoning_steps, {UNSOURCED}))",
                       {Table.UNSOURCED: "toInt64(sum(reasoning_steps_n))"}),
    "b_cogs": Measure(f"sumIf({COGS_SUM}, {UNSOURCED})",
                      {Table.UNSOURCED: "sum(cogs)", Table.GUARD_CUSTOMERS: "sum(b_cogs)"}),
}
# Providers' billed cost (no ledger entry holds it: the raw ledger has no such measure).
_LINES = (Table.COST_LINES, Table.COST_IMPORT_LINES)
MEASURES["billed"] = Measure("", _rollup("sum(cost_usd)", _LINES))
MEASURES["billed_quantity"] = Measure("", _rollup("sum(quantity)", _LINES))
MEASURES["lines"] = Measure("", _rollup("toInt64(count())", _LINES))
# The credit ledger: signed nano-credits (entitlements.ledger turns them into Decimal credits).
_CREDITS = (Table.CREDITS,)
MEASURES["credits_net"] = Measure("", _rollup("toInt64(sum(credits_nano))", _CREDITS))
for _kind in ("TOPUP", "GRANT", "DEBIT", "EXPIRY"):
    MEASURES[f"credits_{_kind.lower()}"] = Measure("", _rollup(
        f"toInt64(sumIf(credits_nano, entry_type = '{_kind}'))", _CREDITS))
MEASURES["credit_entries"] = Measure("", _rollup("toInt64(count())", _CREDITS))
BASIS = ("b_events", "b_in", "b_out", "b_tools", "b_steps", "b_cogs")


# --- dimensions -------------------------------------------------------------------------------

# The columns a reader may group or filter by, and the tables that hold each (the raw ledger
# holds them all). `day` is computed on the raw ledger, the customer events and the hourly
# rollup (in the period's time zone).
_EVERYWHERE = frozenset(Table)
DIMENSIONS: dict[str, frozenset[Table]] = {
    # Every event dimension is on the raw ledger; the lines after say which rollups hold it too.
    **{column: frozenset({Table.LEDGER}) for column in (
        *EVENT_DIMENSIONS, "entry_type", "entry_kind", "invoice_id", "invoice_line_id",
        "attribution_run_id", "cost_source", "revenue_source", "allocation_id")},
    "customer_id": frozenset({Table.LEDGER, Table.DAILY_CUSTOMERS, Table.UNSOURCED, Table.CREDITS,
                              Table.REVENUE_RATES, Table.HOURLY, Table.CUSTOMER_EVENTS,
                              Table.USAGE_CUSTOMERS, *_CUSTOMER_CALLS}),
    "product_id": frozenset({Table.LEDGER, Table.DAILY, Table.UNSOURCED, Table.EVENT_COSTS,
                             Table.REVENUE_RATES, Table.HOURLY, Table.CUSTOMER_EVENTS,
                             Table.USAGE_HOURLY}),
    "tool_name": frozenset({Table.LEDGER, Table.USAGE_HOURLY, *_CUSTOMER_CALLS}),
    "agent": frozenset({Table.LEDGER, Table.USAGE_HOURLY}),
    "session_id": frozenset({Table.LEDGER, Table.SESSIONS}),
    "product_type": frozenset({Table.LEDGER, Table.DAILY}),
    "provider": frozenset({Table.LEDGER, Table.DAILY, Table.UNSOURCED, Table.EVENT_COSTS,
                           Table.CUSTOMER_EVENTS, *_DOWNGRADED, *_LINES}),
    "model": frozenset({Table.LEDGER, Table.DAILY, Table.UNSOURCED, Table.EVENT_COSTS, *_GUARD,
                        *_LINES}),
    "requested_model": frozenset({Table.LEDGER, *_DOWNGRADED}),
    "day": frozenset({Table.LEDGER, Table.DAILY, Table.DAILY_CUSTOMERS, Table.UNSOURCED,
                      Table.HOURLY, Table.CUSTOMER_EVENTS, *_GUARD, *_LINES, *_USAGE}),
    "hour": frozenset({Table.HOURLY, Table.USAGE_HOURLY}),
    "event_id": frozenset({Table.LEDGER, Table.EVENT_COSTS, Table.EVENT_IDS,
                           Table.CUSTOMER_EVENTS, Table.CREDITS}),
    "occurred_at": frozenset({Table.LEDGER, Table.EVENT_COSTS, Table.EVENT_IDS,
                              Table.CUSTOMER_EVENTS, Table.CREDITS, Table.GUARD_DOWNGRADED,
                              Table.GUARD_CUSTOMERS}),
    "entry_id": frozenset({Table.LEDGER, Table.CREDITS}),
    "recorded_at": frozenset({Table.LEDGER, Table.CREDITS, *_LINES}),
    "entry_type": frozenset({Table.LEDGER, Table.CREDITS}),
    **{column: frozenset({Table.CREDITS}) for column in ("wallet_id", "credits_nano", "lot_id")},
    **{column: frozenset(_LINES) for column in (
        "source_id", "import_id", "line_key", "service", "line_item", "account_id",
        "project_id", "charge_category", "unit")},
}
# :TRICKY: toDate(DateTime, tz) gives the calendar day in that zone; the plain
# toDate(occurred_at) would use the column's own zone (UTC).
RAW_DAY = "toDate(occurred_at, %(time_zone)s)"
HOURLY_DAY = "toDate(hour, %(time_zone)s)"


class Period(Protocol):
    """Calendar days first..last in a time zone (cogs.periods.Period)."""

    first: date
    last: date
    time_zone: str

    @property
    def start_at(self) -> datetime: ...

    @property
    def end_at(self) -> datetime: ...


_EPOCH_DAY = date(1970, 1, 1).toordinal()


def _check_column(table: Table, column: str) -> str:
    if column not in DIMENSIONS or table not in DIMENSIONS[column]:
        raise ValueError(f"{column!r} is not a column of {table.value}")
    return column


@dataclass(frozen=True)
class LedgerQuery:
    """One SELECT over one table, scoped to one tenant. Each method returns a new query."""

    tenant: str
    table: Table = Table.LEDGER
    _select: tuple[str, ...] = ()
    _where: tuple[str, ...] = ()
    _group: tuple[str, ...] = ()
    _having: tuple[str, ...] = ()
    _order: tuple[str, ...] = ()
    _limit: str = ""
    _params: Mapping[str, Any] = field(default_factory=dict)
    _flags: tuple[str, ...] = ()

    def _with(self, **changes: Any) -> LedgerQuery:
        params = changes.pop("params", None)
        if params:
            changes["_params"] = {**self._params, **params}
        return replace(self, **changes)

    # -- what to read ------------------------------------------------------------------------

    def dimensions(self, *columns: str) -> LedgerQuery:
        """Select dimension columns as they are (`day` computed on the raw ledger)."""
        selected = []
        for column in columns:
            _check_column(self.table, column)
            if column == "day" and self.table in (Table.LEDGER, Table.CUSTOMER_EVENTS,
                                                  Table.GUARD_DOWNGRADED, Table.GUARD_CUSTOMERS):
                selected.append(f"{RAW_DAY} AS day")
            elif column == "day" and self.table in (Table.HOURLY, Table.USAGE_HOURLY):
                selected.append(f"{HOURLY_DAY} AS day")
            else:
                selected.append(column)
        return self._with(_select=self._select + tuple(selected))

    def measures(self, *names: str) -> LedgerQuery:
        """Select measures from the table of measures, each under its own name."""
        unknown = [n for n in names if n not in MEASURES]
        if unknown:
            raise ValueError(f"unknown measures {unknown}")
        return self._with(_select=self._select + tuple(
            f"{MEASURES[name].over(self.table)} AS {name}" for name in names))

    def expressions(self, *sql: str) -> LedgerQuery:
        """Select hand-written expressions (per-event columns, group hashes...)."""
        return self._with(_select=self._select + sql)

    # -- which rows --------------------------------------------------------------------------

    def period(self, period: Period) -> LedgerQuery:
        """The period's calendar days: `day` on the daily read models, instants on the rest."""
        params = {"first": period.first, "last": period.last, "start_at": period.start_at,
                  "end_at": period.end_at, "time_zone": period.time_zone}
        if self.table.by_day:
            return self._with(_where=self._where + (
                "day >= %(first)s AND day <= %(last)s",), params=params)
        column = self.table.time_column
        return self._with(_where=self._where + (
            f"{column} >= %(start_at)s AND {column} < %(end_at)s",), params=params)

    def between(self, start: datetime, end: datetime, time_zone: str = "UTC") -> LedgerQuery:
        """Entries with occurred_at in [start, end) (`day` is a day of `time_zone`); on the
        hourly rollup, the hours starting in it."""
        column = self.table.time_column
        return self._with(_where=self._where + (
            f"{column} >= %(w_start)s AND {column} < %(w_end)s",),
            params={"w_start": start, "w_end": end, "time_zone": time_zone})

    def within(self, ranges: Sequence[tuple[datetime, datetime]]) -> LedgerQuery:
        """Entries in any of the windows [start, end); on a daily read model each window is
        whole UTC days (its bounds midnights), and a day counts if it starts inside."""
        # :TRICKY: the column itself against typed bounds, so the primary key prunes.
        column = "day" if self.table.by_day else self.table.time_column
        clauses, params = [], {}
        for n, (start, end) in enumerate(ranges):
            name = f"wi{len(self._where)}_{n}"  # unique to this condition
            clauses.append(f"({column} >= %({name}_from)s AND {column} < %({name}_to)s)")
            params.update({f"{name}_from": self._bound(start), f"{name}_to": self._bound(end)})
        if not self.table.by_day:  # the `day` of these instants: UTC unless set
            params["time_zone"] = self._params.get("time_zone", "UTC")
        return self._with(_where=self._where + (
            f"({' OR '.join(clauses)})" if clauses else "0",), params=params)

    def where(self, **equal: Any) -> LedgerQuery:
        """Whitelisted columns equal to values; None leaves a column unfiltered."""
        clauses, params = [], {}
        for column, value in equal.items():
            if value is None:
                continue
            _check_column(self.table, column)
            clauses.append(f"{column} = %(f_{column})s")
            params[f"f_{column}"] = value
        return self._with(_where=self._where + tuple(clauses), params=params)

    def where_in(self, column: str, values: Iterable[Any]) -> LedgerQuery:
        _check_column(self.table, column)
        return self._with(_where=self._where + (f"{column} IN %(in_{column})s",),
                          params={f"in_{column}": tuple(values)})

    def latest_rates(self) -> LedgerQuery:
        """revenue_rates of the tenant's latest version only."""
        if self.table is not Table.REVENUE_RATES:
            raise ValueError("only revenue_rates has versions")
        return self._with(_where=self._where + (
            "version = (SELECT max(version) FROM revenue_rates "
            "WHERE tenant_id = %(tenant_id)s)",))

    def where_sql(self, condition: str, **params: Any) -> LedgerQuery:
        """A hand-written condition (entry kinds, a subquery, a transform); never the tenant."""
        if "tenant_id" in condition.replace("%(tenant_id)s", ""):
            raise ValueError("the builder writes the tenant filter itself")
        return self._with(_where=self._where + (condition,), params=params)

    def since_each(self, column: str, instants: Mapping[str, datetime]) -> LedgerQuery:
        """Entries at or after each `column` value's own instant (other values: none); with
        `flag_since_each`, one read holds every value's window."""
        return self._with(_where=self._where + (
            f"{self._epoch()} >= {self._instant_of(column, 'se')}",),
            params=self._instants_params(instants, "se"))

    def flag_since(self, name: str, instant: datetime) -> LedgerQuery:
        """Select `name`: 1 for entries at or after `instant`, else 0, to group by (one read
        serves windows that share their end; on a daily read model, days starting at or after
        it)."""
        return self._with(_select=self._select + (
            f"toUInt8({self._epoch()} >= %(fl_{name})s) AS {name}",),
            _flags=self._flags + (name,), params={f"fl_{name}": int(instant.timestamp())})

    def flag_since_each(self, name: str, column: str,
                        instants: Mapping[str, datetime]) -> LedgerQuery:
        """Select `name`: 1 for entries at or after their `column` value's own instant."""
        return self._with(_select=self._select + (
            f"toUInt8({self._epoch()} >= {self._instant_of(column, name)}) AS {name}",),
            _flags=self._flags + (name,), params=self._instants_params(instants, name))

    def flag_between(self, name: str, start: datetime, end: datetime) -> LedgerQuery:
        """Select `name`: 1 for entries `between(start, end)` would keep, else 0, to group by
        (one read serves windows with different starts and ends)."""
        column = self.table.time_column
        return self._with(_select=self._select + (
            f"toUInt8({column} >= %(fb_{name}_from)s AND {column} < %(fb_{name}_to)s) "
            f"AS {name}",), _flags=self._flags + (name,),
            params={f"fb_{name}_from": start, f"fb_{name}_to": end})

    def dimension_among(self, name: str, column: str, values: Iterable[str]) -> LedgerQuery:
        """Select `name`: the `column` value where it is one of `values`, else '' (to group by
        the few values readers ask for, the rest in one group)."""
        _check_column(self.table, column)
        values = tuple(sorted(set(values)))
        if not values:
            raise ValueError(f"dimension_among needs some values of {column}")
        # :TRICKY: `name` must differ from `column`: ClickHouse would substitute the alias
        # into this very expression and the WHERE clause.
        if name == column:
            raise ValueError("name the narrowed column differently from the column")
        return self._with(_select=self._select + (
            f"if({column} IN %(da_{name})s, {column}, '') AS {name}",),
            _flags=self._flags + (name,), params={f"da_{name}": values})

    def _epoch(self) -> str:
        """The entry's instant in epoch seconds (a day's: its UTC midnight)."""
        # :TRICKY: a Date converts to its day number, on 18.16 and the current engine alike.
        if self.table.by_day:
            return "toUInt32(day) * 86400"
        return f"toUInt32({self.table.time_column})"

    def _bound(self, instant: datetime) -> datetime | date:
        """A window's bound as the time column's type (a daily read model's: a UTC day)."""
        if not self.table.by_day:
            return instant
        days, rest = divmod(int(instant.timestamp()), 86400)
        if rest:
            raise ValueError(f"{self.table.value} holds whole UTC days, not {instant}")
        return date.fromordinal(_EPOCH_DAY + days)

    def _instant_of(self, column: str, name: str) -> str:
        # :TRICKY: transform() maps each row's value to its own instant; epoch seconds as
        # UInt32 arrays keep the types equal on 18.16 and the current engine alike, and a value
        # not named maps past every instant.
        _check_column(self.table, column)
        return (f"transform({column}, %(ie_{name}_keys)s, %(ie_{name}_at)s, "
                f"toUInt32(4294967295))")

    @staticmethod
    def _instants_params(instants: Mapping[str, datetime], name: str) -> dict[str, Any]:
        keys = sorted(instants)
        return {f"ie_{name}_keys": keys,
                f"ie_{name}_at": [int(instants[k].timestamp()) for k in keys]}

    # -- shape -------------------------------------------------------------------------------

    def group_by(self, *columns: str) -> LedgerQuery:
        for column in columns:
            if column not in self._flags:
                _check_column(self.table, column)
        return self._with(_group=self._group + columns)

    def having(self, condition: str, **params: Any) -> LedgerQuery:
        return self._with(_having=self._having + (condition,), params=params)

    def order_by(self, *keys: str) -> LedgerQuery:
        return self._with(_order=self._order + keys)

    def limit(self, limit: int, offset: int = 0) -> LedgerQuery:
        return self._with(_limit=" LIMIT %(q_offset)s, %(q_limit)s",
                          params={"q_offset": offset, "q_limit": limit})

    # -- out ---------------------------------------------------------------------------------

    def sql(self) -> tuple[str, dict[str, Any]]:
        if not self._select:
            raise ValueError("a query selects something")
        where = " AND ".join(("tenant_id = %(tenant_id)s", *self._where))
        sql = f"SELECT {', '.join(self._select)} FROM {self.table.value} WHERE {where}"
        if self._group:
            sql += f" GROUP BY {', '.join(self._group)}"
        if self._having:
            sql += f" HAVING {' AND '.join(self._having)}"
        if self._order:
            sql += f" ORDER BY {', '.join(self._order)}"
        return sql + self._limit, {**self._params, "tenant_id": self.tenant}

    def fetch(self) -> list[dict[str, Any]]:
        """The rows as dicts."""
        sql, params = self.sql()
        return eventstore.tenant_query(self.tenant, sql, params)

    def rows(self) -> tuple[list[str], list[tuple]]:
        """The column names and the rows as tuples (for results of many rows)."""
        sql, params = self.sql()
        return eventstore.tenant_rows(self.tenant, sql, params)

    def formatted(self, fmt: str) -> bytes:
        """The rows in an output format the store writes itself (eventstore.native_formats)."""
        sql, params = self.sql()
        return eventstore.tenant_formatted(self.tenant, sql, params, fmt)

    def one(self) -> dict[str, Any]:
        """The single row of an aggregate without GROUP BY."""
        return self.fetch()[0]


def tenant_sql(tenant: str, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Run SQL composed around builder queries (their params merged in `params`)."""
    return eventstore.tenant_query(tenant, sql, params)


def tenant_sql_rows(tenant: str, sql: str, params: Mapping[str, Any],
                    ) -> tuple[list[str], list[tuple]]:
    return eventstore.tenant_rows(tenant, sql, params)
