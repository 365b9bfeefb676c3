"""Rated revenue at ingest: what each event's customer's plan will charge for it.

Ingest calls `rated_revenue` once per batch on its hot path, so a tenant's subscriptions and
plans are loaded once into memory (three queries) and kept until a plan or subscription of the
tenant changes (a version in the cache, as for rate cards); an event then costs a few Decimal
multiplications and no query.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from aforo.models import Tenant
from aforo.shared_cache import VersionedMemo

ZERO = Decimal(0)
NINE_PLACES = Decimal("0.000000001")
_THOUSAND = Decimal(1000)


@dataclass(frozen=True)
class Coefficients:
    """Rated revenue of an event = the sum of these times its measures."""

    per_event: Decimal = ZERO
    per_input_token: Decimal = ZERO
    per_output_token: Decimal = ZERO
    per_tool_call: Decimal = ZERO
    per_reasoning_step: Decimal = ZERO
    cogs_factor: Decimal = ZERO

    def __add__(self, other: Coefficients) -> Coefficients:
        return Coefficients(*(a + b for a, b in zip(self._values(), other._values(), strict=True)))

    def _values(self) -> tuple[Decimal, ...]:
        return (self.per_event, self.per_input_token, self.per_output_token, self.per_tool_call,
                self.per_reasoning_step, self.cogs_factor)


def component_coefficients(kind: str, unit_price: Decimal,
                           rating_events_per_period: int | None) -> Coefficients:
    """One component's contribution per event (tiers already resolved to `unit_price`)."""
    from billing.models import ComponentKind as K

    if kind == K.PER_EVENT:
        return Coefficients(per_event=unit_price)
    if kind == K.PER_1K_INPUT_TOKENS:
        return Coefficients(per_input_token=unit_price / _THOUSAND)
    if kind == K.PER_1K_OUTPUT_TOKENS:
        return Coefficients(per_output_token=unit_price / _THOUSAND)
    if kind == K.PER_1K_TOKENS:
        per_token = unit_price / _THOUSAND
        return Coefficients(per_input_token=per_token, per_output_token=per_token)
    if kind == K.PER_TOOL_CALL:
        return Coefficients(per_tool_call=unit_price)
    if kind == K.PER_REASONING_STEP:
        return Coefficients(per_reasoning_step=unit_price)
    if kind == K.FLAT_FEE:
        if rating_events_per_period:
            return Coefficients(per_event=unit_price / Decimal(rating_events_per_period))
        return Coefficients()
    if kind == K.MARKUP_PCT:
        return Coefficients(cogs_factor=1 + unit_price / 100)
    raise ValueError(f"unknown price component kind {kind!r}")


@dataclass(frozen=True)
class _PlanRates:
    """A plan's coefficients: for every product (blank key) plus per-product additions."""

    every_product: Coefficients
    by_product: dict[str, Coefficients]

    def for_product(self, product_id: str) -> Coefficients:
        extra = self.by_product.get(product_id)
        return self.every_product + extra if extra is not None else self.every_product


@dataclass(frozen=True)
class _Term:
    starts_at: datetime
    ends_at: datetime | None
    rates: _PlanRates


class PlanBook:
    """A tenant's subscriptions in memory: customer id -> terms sorted by start."""

    def __init__(self, terms: dict[str, list[_Term]]) -> None:
        self.terms = terms
        self.starts = {c: [t.starts_at for t in ts] for c, ts in terms.items()}

    def rates_at(self, customer_id: str, at: datetime) -> _PlanRates | None:
        terms = self.terms.get(customer_id)
        if not terms:
            return None
        i = bisect.bisect_right(self.starts[customer_id], at)
        if i == 0:
            return None
        term = terms[i - 1]  # the latest subscription started by then
        if term.ends_at is not None and at >= term.ends_at:
            return None
        return term.rates


def _plan_rates(plan) -> _PlanRates:
    every = Coefficients()
    by_product: dict[str, Coefficients] = {}
    for component in plan.components.all():
        tiers = list(component.tiers.all())
        # Volume tiers depend on the period's total, unknown at ingest: rate at the first
        # tier's price (the list price a new period starts at); the invoice settles it.
        price = tiers[0].unit_price if tiers else component.unit_price
        coefficients = component_coefficients(component.kind, price,
                                              component.rating_events_per_period)
        if component.product_id:
            by_product[component.product_id] = (
                by_product.get(component.product_id, Coefficients()) + coefficients)
        else:
            every = every + coefficients
    return _PlanRates(every, by_product)


def plan_book_build(tenant: Tenant) -> PlanBook:
    from billing.models import Subscription

    subscriptions = (Subscription.objects.filter(tenant=tenant)
                     .select_related("customer", "plan")
                     .prefetch_related("plan__components__tiers")
                     .order_by("customer_id", "starts_at"))
    rates: dict[int, _PlanRates] = {}
    terms: dict[str, list[_Term]] = {}
    for sub in subscriptions:
        if sub.plan_id not in rates:
            rates[sub.plan_id] = _plan_rates(sub.plan)
        terms.setdefault(sub.customer.external_id, []).append(
            _Term(sub.starts_at, sub.ends_at, rates[sub.plan_id]))
    return PlanBook(terms)


_plan_books: VersionedMemo[PlanBook] = VersionedMemo("billing-plans", plan_book_build)


def plans_changed(tenant: Tenant) -> None:
    """Call after any write to a tenant's plans, components, tiers or subscriptions."""
    _plan_books.changed(tenant.pk)


def plan_book_for(tenant: Tenant) -> PlanBook:
    return _plan_books.get(tenant)


def _dec(value: Any) -> Decimal:
    if value is None:
        return ZERO
    return value if isinstance(value, Decimal) else Decimal(str(value))


def rated_revenue(*, tenant: Tenant, entries: list[dict[str, Any]]) -> list[Decimal]:
    """Each ledger entry's rated revenue (0 where its customer has no plan); see plan_rating."""
    return [ZERO if value is None else value
            for value in plan_rating(tenant=tenant, entries=entries)]


def plan_rating(*, tenant: Tenant, entries: list[dict[str, Any]]) -> list[Decimal | None]:
    """Each ledger entry's rated revenue under its customer's plan at its occurred_at, or None
    where the customer had no subscription then (the event has no rated revenue at all).

    `entries` are ledger-row dicts (customer_id, product_id, occurred_at, input_tokens,
    output_tokens, tool_calls, reasoning_steps, ai/infra/fee/unclassified_cogs_usd).
    Quantized to 9 decimals, the ledger's scale.

    Approximations, settled by the invoice and its attribution later:
    - volume tiers rate at the first tier's price (the period's total is not known yet);
    - a flat fee per period is spread as fee / `rating_events_per_period` per event when the
      component sets that figure, and left out of rated revenue otherwise;
    - a markup rates the event's COGS × (1 + pct/100) with the COGS the entry carries.
    """
    if not entries:
        return []
    book = plan_book_for(tenant)
    out: list[Decimal | None] = []
    memo: dict[tuple[int, str], Coefficients] = {}
    for entry in entries:
        rates = book.rates_at(entry.get("customer_id") or "", entry["occurred_at"])
        if rates is None:
            out.append(None)
            continue
        product = entry.get("product_id") or ""
        key = (id(rates), product)
        c = memo.get(key)
        if c is None:
            c = memo[key] = rates.for_product(product)
        value = c.per_event
        if c.per_input_token:
            value += c.per_input_token * (entry.get("input_tokens") or 0)
        if c.per_output_token:
            value += c.per_output_token * (entry.get("output_tokens") or 0)
        if c.per_tool_call:
            value += c.per_tool_call * (entry.get("tool_calls") or 0)
        if c.per_reasoning_step:
            value += c.per_reasoning_step * (entry.get("reasoning_steps") or 0)
        if c.cogs_factor:
            cogs = (_dec(entry.get("ai_cogs_usd")) + _dec(entry.get("infra_cogs_usd"))
                    + _dec(entry.get("fee_cogs_usd")) + _dec(entry.get("unclassified_cogs_usd")))
            value += c.cogs_factor * cogs
        out.append(value.quantize(NINE_PLACES, rounding=ROUND_HALF_UP))
    return out
