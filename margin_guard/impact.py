"""The impact report: the net profit the guard recovered over any window (down to the last
hour), split by lever, with its method shown, the ROI, and each at-risk account's margin before
its first intervention against the margin since.

- Model switch: events that report `requestedModel` different from the model used. The saving
  is what the requested model would have cost for the same tokens (the rate card price in force
  on that day) minus the AI cost actually incurred (metered: an allocation's share of cost is
  not the call's).
- Rate limit and block: the decisions counted per hour (`GuardDecisionCount`, durable), each
  valued at the customer's average cost per call of that feature (or model) in the window, else
  in the 30 days before its end. Nobody knows what a refused call would have cost, so these are
  labelled estimates.
- ROI: recovered ÷ what Aforo costs the tenant over the same window (its monthly cost
  prorated by hours; `GuardSettings`), null without that setting.

The levers sum to the total by construction. Every read is of the guard's read models, except
`scope_margin`'s for product accounts or a tenant with estimate rates: the model switch reads a
window's whole UTC days from migration 0016's `guard_downgraded_days` and its partial days from
0015's `guard_downgraded` (per second, ordered by time); the refused calls' averages read
`guard_customer_days` for a window of whole UTC days, else 0015's `guard_customer_calls` (per
second, ordered by customer); the accounts read `guard_customer_calls`, so a window or an
intervention at any second is exact. `read_models=False` reads the raw ledger instead, with the
same figures.
"""
from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal

from django.db import DatabaseError
from django.db.models import Sum

from aforo.ledger.query import COST, DOWNGRADED, METERED, LedgerQuery, Table
from aforo.models import Tenant
from aforo.money import pct, usd
from aforo.periods import utc_midnight
from billing.estimates import has_rates
from cogs.expected import ScopeMargin, scope_margin
from ingestion.costing import Usage, ai_cost, money
from ingestion.rate_cards import rate_card_for
from margin_guard.counters import decision_counts_flush
from margin_guard.models import GuardAction, GuardDecisionCount, GuardSettings, Level

log = logging.getLogger(__name__)
ZERO = Decimal(0)
HOURS_PER_MONTH = Decimal(730)  # 365 × 24 / 12
AVERAGE_FALLBACK = timedelta(days=30)
ACCOUNTS_SHOWN = 20


Window = tuple[datetime, datetime]
Shape = Callable[[LedgerQuery], LedgerQuery]  # what a read selects, filters and groups


def _merged(windows: Iterable[Window]) -> list[Window]:
    """Windows sorted, the empty dropped, those that touch joined."""
    out: list[Window] = []
    for start, end in sorted(w for w in windows if w[0] < w[1]):
        if out and out[-1][1] >= start:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def day_split(start: datetime, end: datetime,
              cuts: Iterable[datetime] = ()) -> tuple[list[Window], list[Window]]:
    """[start, end) as whole UTC days (windows from midnight to midnight) and the seconds of
    the partial days, with no whole day holding a cut (an instant a read splits at) inside:
    a read flagging the entries since a cut then gets each day on its side."""
    points = sorted({start, end, *(cut for cut in cuts if start < cut < end)})
    days: list[Window] = []
    seconds: list[Window] = []
    for low, high in itertools.pairwise(points):
        first, last = utc_midnight(low, up=True), utc_midnight(high, up=False)
        if first < last:
            days.append((first, last))
            seconds += [(low, first), (last, high)]
        else:
            seconds.append((low, high))
    return _merged(days), _merged(seconds)


def _summed(rows: Iterable[dict], keys: Sequence[str]) -> list[dict]:
    """Rows of one shape from several reads, summed per key."""
    out: dict[tuple, dict] = {}
    for row in rows:
        key = tuple(row[k] for k in keys)
        into = out.get(key)
        if into is None:
            out[key] = dict(row)
        else:
            for name, value in row.items():
                if name not in keys:
                    into[name] += value
    return list(out.values())


def _read(tenant: Tenant, read_models: bool, days: Table, seconds: Table, entries: str,
          window: Window, shape: Shape, keys: Sequence[str], *, cuts: Iterable[datetime] = (),
          split: bool = True) -> list[dict]:
    """`shape`'s rows over [start, end), summed per key: the whole UTC days from the daily
    read model `days` and the partial ones from the per-second one (`split` False: a window
    with partial days all from the per-second one, in one read); or all of it from the raw
    ledger's entries matching `entries`."""
    if not read_models:
        return shape(LedgerQuery(tenant.slug).between(*window).where_sql(entries)).fetch()
    whole, partial = day_split(*window, cuts)
    if partial and not split:
        whole, partial = [], [window]
    rows = [row for table, ranges in ((days, whole), (seconds, partial)) if ranges
            for row in shape(LedgerQuery(tenant.slug, table).within(ranges)).fetch()]
    return _summed(rows, keys)


def _by_customer(tenant: Tenant, read_models: bool) -> LedgerQuery:
    """Every entry by customer: 0015's read model ordered by customer, or the ledger."""
    return LedgerQuery(tenant.slug, Table.GUARD_CUSTOMERS if read_models else Table.LEDGER)


@dataclass(frozen=True)
class AccountImpact:
    """One account's margin before its first intervention in the window, and since."""

    customer_id: str
    product_id: str
    first_intervention_at: datetime
    to_level: int
    before_start: datetime
    before: ScopeMargin
    after_end: datetime
    after: ScopeMargin


@dataclass(frozen=True)
class Lever:
    lever: str
    title: str
    calls: int
    recovered_usd: Decimal
    per_hour_usd: Decimal
    estimate: bool

    def as_json(self) -> dict:
        return {"lever": self.lever, "recoveredUsd": usd(self.recovered_usd),
                "perHourUsd": usd(self.per_hour_usd), "calls": self.calls,
                "estimate": self.estimate}


@dataclass
class ImpactReport:
    start: datetime
    end: datetime
    throttled_calls: int = 0
    throttled_requested_cost_usd: Decimal = ZERO
    throttled_actual_cost_usd: Decimal = ZERO
    unpriced_requested_models: set[str] = field(default_factory=set)
    blocked_calls: int = 0
    blocked_estimate_usd: Decimal = ZERO
    rate_limited_calls: int = 0
    rate_limited_estimate_usd: Decimal = ZERO
    product_cost_usd: Decimal | None = None
    accounts: list[AccountImpact] = field(default_factory=list)

    @property
    def throttle_savings_usd(self) -> Decimal:
        return self.throttled_requested_cost_usd - self.throttled_actual_cost_usd

    @property
    def net_recovered_usd(self) -> Decimal:
        return (self.throttle_savings_usd + self.blocked_estimate_usd
                + self.rate_limited_estimate_usd)

    @property
    def hours(self) -> Decimal:
        return Decimal((self.end - self.start).total_seconds()) / 3600

    def per_hour(self, amount: Decimal) -> Decimal:
        return amount / self.hours if self.hours else ZERO

    @property
    def roi_multiple(self) -> Decimal | None:
        if not self.product_cost_usd:
            return None
        return self.net_recovered_usd / self.product_cost_usd

    @property
    def lever_rows(self) -> list[Lever]:
        """Model switch, rate limit and block: their recovered amounts sum to the total."""
        return [Lever(lever, title, calls, amount, self.per_hour(amount), estimate)
                for lever, title, calls, amount, estimate in (
                    ("MODEL_SWITCH", "Model switch", self.throttled_calls,
                     self.throttle_savings_usd, False),
                    ("RATE_LIMIT", "Rate limit", self.rate_limited_calls,
                     self.rate_limited_estimate_usd, True),
                    ("BLOCK", "Block", self.blocked_calls, self.blocked_estimate_usd, True))]

    def as_json(self) -> dict:
        return {
            "windowStart": self.start, "windowEnd": self.end, "hours": pct(self.hours),
            "netRecoveredUsd": usd(self.net_recovered_usd),
            "netRecoveredPerHourUsd": usd(self.per_hour(self.net_recovered_usd)),
            "levers": [lever.as_json() for lever in self.lever_rows],
            "throttled": {
                "calls": self.throttled_calls,
                "requestedModelCostUsd": usd(self.throttled_requested_cost_usd),
                "actualCostUsd": usd(self.throttled_actual_cost_usd),
                "savingsUsd": usd(self.throttle_savings_usd),
                "unpricedRequestedModels": sorted(self.unpriced_requested_models),
                "method": "requested model's rate-card price for the same tokens, on the "
                          "event's day, minus the AI cost incurred",
            },
            "rateLimited": {
                "calls": self.rate_limited_calls,
                "estimatedSavingsUsd": usd(self.rate_limited_estimate_usd),
                "estimate": True,
                "method": "rate-limited decisions × the customer's average cost per call of "
                          "that feature in the window",
            },
            "blocked": {
                "calls": self.blocked_calls,
                "estimatedSavingsUsd": usd(self.blocked_estimate_usd),
                "estimate": True,
                "method": "blocked decisions × the customer's average cost per call of that "
                          "feature in the window",
            },
            "roi": {"productCostUsd": usd(self.product_cost_usd),
                    "roiMultiple": pct(self.roi_multiple)},
            "accounts": [_account_json(a) for a in self.accounts],
        }


def _margin_json(m: ScopeMargin, start: datetime, end: datetime) -> dict:
    return {"from": start, "to": end, "marginPct": pct(m.margin_pct), "cogsUsd": usd(m.cogs_usd),
            "revenueUsd": usd(m.expected_revenue_usd), "events": m.events}


def _account_json(a: AccountImpact) -> dict:
    return {"customerId": a.customer_id, "productId": a.product_id,
            "firstInterventionAt": a.first_intervention_at,
            "level": Level(a.to_level).label,
            "before": _margin_json(a.before, a.before_start, a.first_intervention_at),
            "after": _margin_json(a.after, a.first_intervention_at, a.after_end)}


def day_window(first, last) -> tuple[datetime, datetime]:
    """Days [first, last] (UTC) as instants [start, end)."""
    return (datetime.combine(first, time.min, tzinfo=timezone.utc),
            datetime.combine(last + timedelta(days=1), time.min, tzinfo=timezone.utc))


def impact_report(*, tenant: Tenant, start: datetime, end: datetime, accounts: bool = True,
                  read_models: bool = True) -> ImpactReport:
    """The report for [start, end), from the read models of migration 0015 (`read_models`
    False: from the raw ledger, the same figures; their test compares the two)."""
    try:
        decision_counts_flush()  # this process's latest counts, at least
    except DatabaseError:
        log.warning("guard decision counts not written yet", exc_info=True)
    report = ImpactReport(start=start, end=end)
    _model_switch(tenant, report, read_models)
    _refused(tenant, report, read_models)
    cost = (GuardSettings.objects.filter(tenant=tenant)
            .values_list("product_cost_usd_per_month", flat=True).first())
    if cost is not None:
        report.product_cost_usd = cost * report.hours / HOURS_PER_MONTH
    if accounts:
        report.accounts = _accounts(tenant, start, end, read_models)
    return report


def _model_switch(tenant: Tenant, report: ImpactReport, read_models: bool = True) -> None:
    card = rate_card_for(tenant)
    keys = ("day", "provider", "requested_model")
    rows = _read(tenant, read_models, Table.GUARD_DOWNGRADED_DAYS, Table.GUARD_DOWNGRADED,
                 f"{COST} AND {METERED} AND {DOWNGRADED}",
                 (report.start, report.end), lambda q: q.dimensions(*keys).measures(
                     "events", "tokens_in", "tokens_out", "tokens_cached", "tokens_reasoning",
                     "cogs_ai").group_by(*keys), keys)
    for row in rows:
        noon = datetime.combine(row["day"], time(12), tzinfo=timezone.utc)
        requested, calls = row["requested_model"], row["events"]
        price = card.model_price(row["provider"], requested, noon)
        if price is None:
            report.unpriced_requested_models.add(requested)
            continue
        usage = Usage(provider=row["provider"], model=requested, product_id="",
                      source_type="", occurred_at=noon, input_tokens=row["tokens_in"],
                      output_tokens=row["tokens_out"], cached_input_tokens=row["tokens_cached"],
                      reasoning_tokens=row["tokens_reasoning"])
        # ai_cost adds the per-call price once; a group holds `calls` calls
        per_call_extra = price.per_call * (calls - 1)
        report.throttled_calls += calls
        report.throttled_requested_cost_usd += money(ai_cost(price, usage) + per_call_extra)
        report.throttled_actual_cost_usd += row["cogs_ai"]


Costs = dict[tuple[str, str], tuple[Decimal, int]]


def _call_costs(tenant: Tenant, customers: set[str], start: datetime, end: datetime,
                read_models: bool, *, split_at: datetime | None = None) -> tuple[Costs, Costs]:
    """COGS and calls per (customer, feature: a tool or a model) of the given customers in
    [start, end), and (with `split_at`) in [split_at, end) from the same read."""
    if not customers:
        return {}, {}
    keys = ("customer_id", "tool_name", "model", *(("after_split",) if split_at else ()))

    def shape(query: LedgerQuery) -> LedgerQuery:
        query = (query.where_in("customer_id", sorted(customers))
                 .dimensions("customer_id", "tool_name", "model").measures("cogs", "events"))
        if split_at is not None:
            query = query.flag_since("after_split", split_at)
        return query.group_by(*keys)

    whole: Costs = {}
    since_split: Costs = {}
    # :TRICKY: the per-second read model is ordered by customer, so a read of it costs each
    # customer a few granules however short the time: partial days read there cost as much as
    # the whole window (measured: benchmarks/RESULTS.md, 0016), so a window with any is read
    # there whole, and only a window of whole UTC days from the daily read model.
    for row in _read(tenant, read_models, Table.GUARD_CUSTOMER_DAYS, Table.GUARD_CUSTOMERS, COST,
                     (start, end), shape, keys, cuts=[split_at] if split_at else [],
                     split=False):
        for costs, inside in ((whole, True), (since_split, row.get("after_split", 0))):
            if not inside:
                continue
            for feature in {row["tool_name"] or "", row["model"] or ""}:
                key = (row["customer_id"], feature)
                cogs, calls = costs.get(key, (ZERO, 0))
                costs[key] = (cogs + row["cogs"], calls + row["events"])
    return whole, since_split


def _average(costs: Costs, customer_id: str, feature: str) -> Decimal | None:
    """The customer's average COGS per call of a feature (a tool or a model)."""
    cogs, calls = costs.get((customer_id, feature), (ZERO, 0))
    return cogs / calls if calls else None


def _refused(tenant: Tenant, report: ImpactReport, read_models: bool = True) -> None:
    # :TRICKY: counts are per hour, so a window counts the hours that overlap it.
    first_hour = report.start.replace(minute=0, second=0, microsecond=0)
    rows = list(GuardDecisionCount.objects.filter(
        tenant=tenant, hour__gte=first_hour, hour__lt=report.end,
        kind__in=[GuardDecisionCount.Kind.BLOCKED, GuardDecisionCount.Kind.RATE_LIMITED])
        .values("customer_id", "feature", "kind").annotate(calls=Sum("count")))
    customers = {row["customer_id"] for row in rows}
    fallback_start = report.end - AVERAGE_FALLBACK
    fallback: Costs | None = None
    if report.start <= fallback_start:  # the window holds the fallback's 30 days: one read
        in_window, fallback = _call_costs(tenant, customers, report.start, report.end,
                                          read_models, split_at=fallback_start)
    else:
        in_window, _ = _call_costs(tenant, customers, report.start, report.end, read_models)
    for row in rows:
        average = _average(in_window, row["customer_id"], row["feature"])
        if average is None:  # no such call in the window: the 30 days before its end
            if fallback is None:
                fallback, _ = _call_costs(tenant, customers, fallback_start, report.end,
                                          read_models)
            average = _average(fallback, row["customer_id"], row["feature"])
        value = money(average * row["calls"]) if average is not None else ZERO
        if row["kind"] == GuardDecisionCount.Kind.BLOCKED:
            report.blocked_calls += row["calls"]
            report.blocked_estimate_usd += value
        else:
            report.rate_limited_calls += row["calls"]
            report.rate_limited_estimate_usd += value


def _accounts(tenant: Tenant, start: datetime, end: datetime,
              read_models: bool = True) -> list[AccountImpact]:
    """Accounts throttled or blocked (enforced) in the window: margin over the same length of
    time before the first intervention, against the margin since."""
    first: dict[tuple[str, str], GuardAction] = {}
    for action in (GuardAction.objects.filter(tenant=tenant, at__gte=start, at__lt=end,
                                              to_level__gte=Level.THROTTLE, mode="ENFORCE")
                   .order_by("at", "id")):
        first.setdefault((action.customer_id, action.product_id), action)
    chosen = list(first.items())[:ACCOUNTS_SHOWN]
    if chosen and not has_rates(tenant.slug) and all(not p for (_c, p), _a in chosen):
        return _accounts_grouped(tenant, chosen, end, read_models)
    shown = []
    for (customer_id, product_id), action in chosen:
        since = end - action.at
        before_start = action.at - since
        scope = dict(customer_id=customer_id, product_id=product_id or None)
        shown.append(AccountImpact(
            customer_id=customer_id, product_id=product_id, first_intervention_at=action.at,
            to_level=action.to_level, before_start=before_start,
            before=scope_margin(tenant.slug, start=before_start, end=action.at, **scope),
            after_end=end, after=scope_margin(tenant.slug, start=action.at, end=end, **scope)))
    return shown


_SCOPE_MEASURES = ("cogs", "events", "revenue", "revenue_carried", "revenue_rated",
                   "events_unsourced", "b_cogs")


def _accounts_grouped(tenant: Tenant, chosen: list, end: datetime,
                      read_models: bool) -> list[AccountImpact]:
    """The same figures as scope_margin for customer-wide accounts of a tenant without
    estimate rates (every unsourced event unknown), in one grouped read instead of two per
    account: each customer's entries from its own before-window's start, split at its own
    first intervention."""
    at = {customer: action.at for (customer, _p), action in chosen}
    lows = {c: at[c] - (end - at[c]) for c in at}
    # One read of the per-second read model: a customer's month is a granule or two of it,
    # and a daily split would read each customer twice.
    rows = (_by_customer(tenant, read_models).between(min(lows.values()), end)
            .where_in("customer_id", sorted(at)).since_each("customer_id", lows)
            .dimensions("customer_id").flag_since_each("after", "customer_id", at)
            .measures(*_SCOPE_MEASURES).group_by("customer_id", "after").fetch())
    sides = {(r["customer_id"], bool(r["after"])): r for r in rows}
    shown = []
    for (customer_id, _p), action in chosen:
        shown.append(AccountImpact(
            customer_id=customer_id, product_id="", first_intervention_at=action.at,
            to_level=action.to_level, before_start=lows[customer_id],
            before=_scope_of(sides.get((customer_id, False))), after_end=end,
            after=_scope_of(sides.get((customer_id, True)))))
    return shown


def _scope_of(row: dict | None) -> ScopeMargin:
    """A grouped row as scope_margin builds it for a tenant without estimate rates."""
    row = row or {}
    return ScopeMargin(
        cogs_usd=row.get("cogs") or ZERO, events=int(row.get("events") or 0),
        attributed_usd=row.get("revenue") or ZERO,
        carried_usd=row.get("revenue_carried") or ZERO,
        rated_usd=row.get("revenue_rated") or ZERO, estimated_usd=ZERO,
        unknown_events=int(row.get("events_unsourced") or 0),
        unknown_cogs_usd=row.get("b_cogs") or ZERO)
