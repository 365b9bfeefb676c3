"""Recommended actions for an account the guard acted on: rules over the customer's history,
each with the figures that triggered it, so a person (and a test) can check it by hand.

The rules, first match first (all of them are listed; the first is *the* recommended action):

- DOWNGRADE_MODEL: the model with the most AI COGS in the policy's window takes at least
  DOWNGRADE_SHARE_PCT of it and the policy's downgrade map has a cheaper model for it.
- ADD_OVERAGE_SURCHARGE: the customer's plan charges only a flat fee that includes N events a
  period (`ratingEventsPerPeriod`), and the month to date used at least OVERAGE_MULTIPLE × N.
- MOVE_TO_PLAN: each of the last HIGH_USAGE_MONTHS full months had events and a margin below
  the policy's alert floor, and a higher tier's customers are on a plan (the most common one
  among the next tier up is named).
- RENEGOTIATE: COGS per event in the last full month is more than RENEGOTIATE_PCT above the
  same figure RENEGOTIATE_MONTHS months earlier.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from aforo.ledger.query import LedgerQuery
from aforo.models import Customer, CustomerTier, Tenant
from aforo.money import pct, usd
from aforo.periods import period_bounds, window_bounds
from billing.models import ComponentKind, Subscription
from cogs.expected import scope_margin

DOWNGRADE_SHARE_PCT = Decimal(50)
OVERAGE_MULTIPLE = Decimal(2)
HIGH_USAGE_MONTHS = 3
RENEGOTIATE_PCT = Decimal(50)
RENEGOTIATE_MONTHS = 3
TIER_ORDER = [CustomerTier.FREE, CustomerTier.PRO, CustomerTier.ENTERPRISE]
ZERO = Decimal(0)


@dataclass(frozen=True)
class Month:
    start: datetime
    events: int
    cogs_usd: Decimal
    margin_pct: Decimal | None

    @property
    def cost_per_event(self) -> Decimal | None:
        return self.cogs_usd / self.events if self.events else None


@dataclass(frozen=True)
class CustomerHistory:
    """What the rules read: the policy's window by model, the plan, and full months (oldest
    first, the month to date last)."""

    customer_id: str
    alert_below_pct: Decimal
    downgrade_map: dict[str, str]
    ai_cogs_by_model: dict[str, Decimal]
    months: list[Month]
    month_to_date_events: int
    plan_name: str = ""
    flat_only_included_events: int | None = None  # a flat-fee-only plan's included events
    higher_plan: str = ""
    higher_tier: str = ""


@dataclass(frozen=True)
class Recommendation:
    kind: str
    text: str
    figures: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "figures": self.figures}


def _downgrade(h: CustomerHistory) -> Recommendation | None:
    total = sum(h.ai_cogs_by_model.values(), ZERO)
    if not total:
        return None
    model, cost = max(h.ai_cogs_by_model.items(), key=lambda kv: (kv[1], kv[0]))
    share = cost / total * 100
    target = h.downgrade_map.get(model)
    if not target or share < DOWNGRADE_SHARE_PCT:
        return None
    return Recommendation("DOWNGRADE_MODEL", (
        f"Downgrade {model} to {target}: {share:.0f}% of this account's AI cost "
        f"(${cost:.2f}) is on {model}."), {
        "model": model, "toModel": target, "sharePct": pct(share), "aiCogsUsd": usd(cost)})


def _overage(h: CustomerHistory) -> Recommendation | None:
    included = h.flat_only_included_events
    if not included:
        return None
    multiple = Decimal(h.month_to_date_events) / included
    if multiple < OVERAGE_MULTIPLE:
        return None
    return Recommendation("ADD_OVERAGE_SURCHARGE", (
        f"Add an overage surcharge to {h.plan_name}: {h.month_to_date_events} events this "
        f"month against {included} included ({multiple:.1f}×)."), {
        "plan": h.plan_name, "includedEvents": included, "events": h.month_to_date_events,
        "multiple": pct(multiple)})


def _move(h: CustomerHistory) -> Recommendation | None:
    full = h.months[:-1][-HIGH_USAGE_MONTHS:]
    if not h.higher_plan or len(full) < HIGH_USAGE_MONTHS:
        return None
    if not all(m.events and m.margin_pct is not None and m.margin_pct < h.alert_below_pct
               for m in full):
        return None
    return Recommendation("MOVE_TO_PLAN", (
        f"Move to {h.higher_plan} ({h.higher_tier} tier): margin below {h.alert_below_pct}% "
        f"for {HIGH_USAGE_MONTHS} months running with consistent usage."), {
        "plan": h.higher_plan, "tier": h.higher_tier, "months": HIGH_USAGE_MONTHS,
        "marginPcts": [pct(m.margin_pct) for m in full],
        "events": [m.events for m in full]})


def _renegotiate(h: CustomerHistory) -> Recommendation | None:
    full = h.months[:-1]
    if len(full) < RENEGOTIATE_MONTHS + 1:
        return None
    before, after = full[-1 - RENEGOTIATE_MONTHS].cost_per_event, full[-1].cost_per_event
    if not before or after is None:
        return None
    increase = (after - before) / before * 100
    if increase <= RENEGOTIATE_PCT:
        return None
    return Recommendation("RENEGOTIATE", (
        f"Renegotiate the contract: cost per event rose {increase:.0f}% in "
        f"{RENEGOTIATE_MONTHS} months (${before:.4f} → ${after:.4f})."), {
        "costPerEventBeforeUsd": usd(before), "costPerEventAfterUsd": usd(after),
        "increasePct": pct(increase), "months": RENEGOTIATE_MONTHS})


RULES = (_downgrade, _overage, _move, _renegotiate)
_DECIMAL_KEYS = ("Usd", "Pct", "Pcts", "multiple")


def recommendation_out(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored recommendation (its decimals kept as strings by the JSON column) with its
    figures as exact numbers again, for payloads and the API."""
    def exact(key: str, value: Any) -> Any:
        if not key.endswith(_DECIMAL_KEYS) or value is None:
            return value
        if isinstance(value, list):
            return [None if v is None else Decimal(str(v)) for v in value]
        return Decimal(str(value))

    figures = {k: exact(k, v) for k, v in (stored.get("figures") or {}).items()}
    return {**stored, "figures": figures}


def recommendations_for(history: CustomerHistory) -> list[Recommendation]:
    """Every rule that matches, in order; the first is the recommended action."""
    return [r for r in (rule(history) for rule in RULES) if r is not None]


# --- the history, read from the ledger and the plans -----------------------------------------

def _months(tenant: Tenant, customer_id: str, now: datetime) -> list[Month]:
    start, _ = period_bounds("MONTHLY", now, tenant.time_zone)
    starts = [start]
    for _ in range(RENEGOTIATE_MONTHS + 1):
        starts.insert(0, period_bounds("MONTHLY", starts[0] - timedelta(days=1),
                                       tenant.time_zone)[0])
    months = []
    for first, following in zip(starts, [*starts[1:], now], strict=True):
        measured = scope_margin(tenant.slug, start=first, end=following,
                                customer_id=customer_id)
        months.append(Month(first, measured.events, measured.cogs_usd, measured.margin_pct))
    return months


def _plans(tenant: Tenant, customer: Customer | None, now: datetime) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if customer is None:
        return found
    live = Subscription.objects.filter(tenant=tenant, starts_at__lte=now).exclude(
        ends_at__lte=now).select_related("plan", "customer")
    mine = live.filter(customer=customer).order_by("-starts_at").first()
    if mine is not None:
        found["plan_name"] = mine.plan.name or mine.plan.code
        components = list(mine.plan.components.all())
        if components and all(c.kind == ComponentKind.FLAT_FEE for c in components):
            included = sum(c.rating_events_per_period or 0 for c in components)
            found["flat_only_included_events"] = included or None
    tier = customer.tier if customer.tier in TIER_ORDER else CustomerTier.FREE
    higher = TIER_ORDER[TIER_ORDER.index(tier) + 1:]
    for next_tier in higher:
        plans = Counter(s.plan.name or s.plan.code
                        for s in live.filter(customer__tier=next_tier))
        if plans:
            found["higher_plan"] = sorted(plans.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
            found["higher_tier"] = str(next_tier)
            break
    return found


def customer_history(*, tenant: Tenant, customer_id: str, product_id: str, policy,
                     now: datetime) -> CustomerHistory:
    start, end = window_bounds(policy.window, now, tenant.time_zone)
    rows = (LedgerQuery(tenant.slug).dimensions("model").measures("cogs_ai")
            .between(start, end + timedelta(seconds=1))
            .where(customer_id=customer_id, product_id=product_id or None)
            .group_by("model").fetch())
    months = _months(tenant, customer_id, now)
    customer = Customer.objects.filter(tenant=tenant, external_id=customer_id).first()
    return CustomerHistory(
        customer_id=customer_id, alert_below_pct=policy.alert_below_pct,
        downgrade_map=dict(policy.downgrade_map or {}),
        ai_cogs_by_model={r["model"]: r["cogs_ai"] for r in rows if r["model"] and r["cogs_ai"]},
        months=months, month_to_date_events=months[-1].events,
        **_plans(tenant, customer, now))
