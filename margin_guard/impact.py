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

The levers sum to the total by construction. Every read is of migration 0015's read models
(`guard_downgraded`, `guard_customer_calls`, kept per second so any window is exact), except
`scope_margin`'s for product accounts or a tenant with estimate rates; `read_models=False`
reads the raw ledger instead, with the same figures.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal

from django.db import DatabaseError
from django.db.models import Sum

from aforo.ledger.query import COST, DOWNGRADED, METERED, LedgerQuery, Table
from aforo.models import Tenant
from aforo.money import pct, usd
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


def _downgraded(tenant: Tenant, read_models: bool) -> LedgerQuery:
    """The downgraded calls' metered COST entries: their read model (0015), or the ledger."""
    if read_models:
        return LedgerQuery(tenant.slug, Table.GUARD_DOWNGRADED)
    return LedgerQuery(tenant.slug).where_sql(f"{COST} AND {METERED}").where_sql(DOWNGRADED)


def _by_customer(tenant: Tenant, read_models: bool, *, costs: bool) -> LedgerQuery:
    """Entries by customer (0015's read model ordered by customer, or the ledger); `costs`: the
    COST entries only (the read model's cost measures count nothing else)."""
    if read_models:
        return LedgerQuery(tenant.slug, Table.GUARD_CUSTOMERS)
    query = LedgerQuery(tenant.slug)
    return query.where_sql(COST) if costs else query


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
    rows = (_downgraded(tenant, read_models).between(report.start, report.end)
            .dimensions("day", "provider", "requested_model")
            .measures("events", "tokens_in", "tokens_out", "tokens_cached", "tokens_reasoning",
                      "cogs_ai")
            .group_by("day", "provider", "requested_model").fetch())
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
    query = (_by_customer(tenant, read_models, costs=True).between(start, end)
             .where_in("customer_id", sorted(customers))
             .dimensions("customer_id", "tool_name", "model").measures("cogs", "events")
             .group_by("customer_id", "tool_name", "model"))
    if split_at is not None:
        query = query.flag_since("after_split", split_at).group_by("after_split")
    whole: Costs = {}
    since_split: Costs = {}
    for row in query.fetch():
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
    rows = (_by_customer(tenant, read_models, costs=False).between(min(lows.values()), end)
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
