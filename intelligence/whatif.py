"""What-if: a window's events repriced at other models' rate cards, margin before and after, per
product and customer; nothing is written.

"Before" is the window's margin from expected revenue (`cogs.expected`, grouped). "After" changes
only the events of the models being switched: each is priced by ingestion's own cost function
(`ingestion.costing.priced_split`, the tenant's rate card at the event's `occurredAt`) as if it
had named the target model, and the difference to its current cost (corrections included) is
added; a RATED event still settling is re-rated by its plan at the new cost (a markup follows
cost), while attributed, carried and estimated revenue stay as they are. An event keeps its
provider when the rate card prices the target model there, so switching a model to itself
leaves every event untouched: before and after agree to the nanodollar.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from aforo.errors import DomainError
from aforo.ledger.query import COST, ORIGINAL_COST, SETTLING, LedgerQuery
from aforo.models import Tenant
from cogs.margins import ZERO, Margin
from ingestion.costing import Usage, priced_split
from ingestion.rate_cards import RateCard, model_key, provider_candidates, rate_card_for
from intelligence.queries import margins_by

MAX_CHANGES = 20


@dataclass(frozen=True)
class ModelChange:
    from_model: str
    to_model: str
    to_provider: str = ""  # blank: the event's own provider if it prices the target, else the one


@dataclass
class Figures(Margin):
    """Cost and revenue summed over events; margin_usd and margin_pct as cogs.margins says."""

    cogs_usd: Decimal = ZERO
    revenue_usd: Decimal = ZERO

    def add(self, cogs: Decimal, revenue: Decimal) -> None:
        self.cogs_usd += cogs
        self.revenue_usd += revenue


@dataclass
class Comparison:
    before: Figures = field(default_factory=Figures)
    after: Figures = field(default_factory=Figures)


@dataclass
class WhatIf:
    start: datetime
    end: datetime
    changes: list[tuple[ModelChange, int]]  # each change and the events it repriced
    total: Comparison
    products: dict[str, Comparison]
    customers: dict[str, Comparison]
    events_repriced: int
    events_unpriced_after: int


def _providers_pricing(card: RateCard, model: str) -> list[str]:
    """The providers whose prices (the tenant's, then the platform's) name `model`."""
    model = model.strip()
    found: list[str] = []
    for table in (card.tenant_prices, card.platform_prices):
        for provider, priced in table:
            if priced == model and provider not in found:
                found.append(provider)
    return found


def _check(card: RateCard, changes: list[ModelChange]) -> dict[str, ModelChange]:
    if not changes:
        raise DomainError("Name at least one change of model.", field="changes")
    if len(changes) > MAX_CHANGES:
        raise DomainError(f"At most {MAX_CHANGES} changes at once.", field="changes")
    by_model: dict[str, ModelChange] = {}
    for index, change in enumerate(changes):
        if not change.from_model.strip():
            raise DomainError("fromModel is required.", field=f"changes.{index}.from_model")
        if change.from_model in by_model:
            raise DomainError(f"{change.from_model} is changed twice.",
                              field=f"changes.{index}.from_model")
        providers = _providers_pricing(card, change.to_model)
        if change.to_provider:
            if model_key(change.to_provider, "")[0] not in providers:
                raise DomainError(
                    f"No price for {change.to_model} at {change.to_provider} in the rate card.",
                    field=f"changes.{index}.to_provider")
        elif not providers:
            raise DomainError(f"No price for model {change.to_model!r} in the rate card.",
                              field=f"changes.{index}.to_model")
        by_model[change.from_model.strip()] = change
    return by_model


def _target_provider(card: RateCard, change: ModelChange, own_provider: str) -> str:
    if change.to_provider:
        return change.to_provider
    providers = _providers_pricing(card, change.to_model)
    if any(candidate in providers for candidate in provider_candidates(own_provider)):
        return own_provider
    return providers[0]


# The per-event columns the repricing reads: the original entry's dimensions, the usage (on
# the original entry only: corrections carry no tokens), the current cost (every COST entry),
# and what the event still counts as settling (COST net of SETTLE entries).
_EVENT_COLUMNS = (
    *(f"anyIf({d}, {ORIGINAL_COST}) AS e_{d}" for d in (
        "customer_id", "product_id", "provider", "model", "source_type", "occurred_at",
        "revenue_source")),
    *(f"toInt64(sumIf({m}, {COST})) AS e_{m}" for m in (
        "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens",
        "tool_calls", "reasoning_steps")),
    *(f"sumIf({m}, {COST}) AS e_{m}" for m in (
        "ai_cogs_usd", "infra_cogs_usd", "fee_cogs_usd", "unclassified_cogs_usd")),
    f"sumIf(rated_revenue_usd, {SETTLING}) AS e_settling_rated",
    f"toInt64(sumIf(event_count, {SETTLING})) AS e_settling",
)


def _changed_events(tenant: Tenant, start: datetime, end: datetime, models: list[str],
                    product_id: str | None, customer_id: str | None):
    columns, rows = (LedgerQuery(tenant.slug).between(start, end)
                     .where(product_id=product_id, customer_id=customer_id)
                     .where_in("model", models).where_sql(SETTLING)
                     .dimensions("event_id").expressions(*_EVENT_COLUMNS)
                     .group_by("event_id").order_by("event_id").rows())
    names = [c.removeprefix("e_") for c in columns]
    for row in rows:
        yield dict(zip(names, row, strict=True))


def what_if(*, tenant: Tenant, start: datetime, end: datetime, changes: list[ModelChange],
            product_id: str | None = None, customer_id: str | None = None) -> WhatIf:
    """Margin of [start, end) before and after repricing the changed models' events."""
    from billing.rating import rated_revenue

    card = rate_card_for(tenant)
    by_model = _check(card, changes)
    before = margins_by(tenant.slug, start=start, end=end, keys=("customer_id", "product_id"),
                        product_id=product_id, customer_id=customer_id)
    deltas: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    repriced: dict[str, int] = defaultdict(int)
    unpriced_after = 0
    rerate: list[tuple[tuple[str, str], dict, Decimal]] = []
    for event in _changed_events(tenant, start, end, list(by_model), product_id, customer_id):
        change = by_model.get(event["model"])
        if change is None:
            continue
        provider = _target_provider(card, change, event["provider"])
        if model_key(provider, change.to_model) == model_key(event["provider"],
                                                             event["model"]):
            continue  # the event already is what the change asks for
        cost = priced_split(card, Usage(
            provider=provider, model=change.to_model, product_id=event["product_id"],
            source_type=event["source_type"], occurred_at=event["occurred_at"],
            input_tokens=event["input_tokens"], output_tokens=event["output_tokens"],
            cached_input_tokens=event["cached_input_tokens"],
            reasoning_tokens=event["reasoning_tokens"]))
        current = (event["ai_cogs_usd"] + event["infra_cogs_usd"] + event["fee_cogs_usd"]
                   + event["unclassified_cogs_usd"])
        pair = (event["customer_id"], event["product_id"])
        deltas[pair][0] += cost.total - current
        repriced[change.from_model.strip()] += 1
        unpriced_after += 0 if cost.priced else 1
        if event["revenue_source"] == "RATED" and event["settling"] == 1:
            rerate.append((pair, {**event, "ai_cogs_usd": cost.ai, "infra_cogs_usd": cost.infra,
                                  "fee_cogs_usd": cost.fee, "unclassified_cogs_usd": ZERO},
                           event["settling_rated"]))
    if rerate:
        for (pair, _entry, current), revenue in zip(
                rerate, rated_revenue(tenant=tenant, entries=[e for _p, e, _c in rerate]),
                strict=True):
            deltas[pair][1] += revenue - current

    total = Comparison()
    products: dict[str, Comparison] = defaultdict(Comparison)
    customers: dict[str, Comparison] = defaultdict(Comparison)
    for pair in sorted(set(before) | set(deltas)):
        margin = before.get(pair)
        cogs = margin.cogs_usd if margin else ZERO
        revenue = margin.expected_revenue_usd if margin else ZERO
        cogs_delta, revenue_delta = deltas.get(pair, (ZERO, ZERO))
        for comparison in (total, products[pair[1]], customers[pair[0]]):
            comparison.before.add(cogs, revenue)
            comparison.after.add(cogs + cogs_delta, revenue + revenue_delta)
    return WhatIf(start=start, end=end,
                  changes=[(c, repriced.get(c.from_model.strip(), 0)) for c in changes],
                  total=total, products=dict(products), customers=dict(customers),
                  events_repriced=sum(repriced.values()), events_unpriced_after=unpriced_after)
