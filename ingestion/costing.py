"""An event's cost, split into AI inference / infrastructure / gateway fees / unclassified.

The rules are API.md's. An event that carries any cost keeps it as sent: only `cogsUsd` goes
to unclassified, parts go to their buckets, and `cogsUsd` minus the parts is unclassified.
An event that carries none is priced: AI from the model price in force at `occurredAt`,
infrastructure and gateway fees from their rules. With no price it is accepted unpriced.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from aforo.money import ledger as money
from ingestion.rate_cards import FeeRule, InfraRule, Price, RateCard, first_at

ZERO = Decimal(0)
MILLION = Decimal(1_000_000)
THOUSAND = Decimal(1000)
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Usage:
    provider: str
    model: str
    product_id: str
    source_type: str
    occurred_at: datetime
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_input_tokens: int = 0


@dataclass(frozen=True)
class CostSplit:
    ai: Decimal
    infra: Decimal
    fee: Decimal
    unclassified: Decimal
    carried: bool
    priced: bool  # False: no carried cost and no model price for it

    @property
    def total(self) -> Decimal:
        return self.ai + self.infra + self.fee + self.unclassified


def ai_cost(price: Price, usage: Usage) -> Decimal:
    """API.md: uncached input, cached input, cache-write input, non-reasoning output and
    reasoning tokens at their prices (missing cached, cache-write and reasoning prices fall back
    to input/output), plus the per-call price."""
    return _ai_cost(price, usage.input_tokens, usage.cached_input_tokens,
                    usage.cache_write_input_tokens, usage.output_tokens, usage.reasoning_tokens)


def _ai_cost(price: Price, input_tokens: int, cached_input_tokens: int,
             cache_write_input_tokens: int, output_tokens: int, reasoning_tokens: int,
             ) -> Decimal:
    cached_price = price.cached_input_per_1m if price.cached_input_per_1m is not None \
        else price.input_per_1m
    write_price = price.cache_write_input_per_1m \
        if price.cache_write_input_per_1m is not None else price.input_per_1m
    reasoning_price = price.reasoning_per_1m if price.reasoning_per_1m is not None \
        else price.output_per_1m
    uncached = input_tokens - cached_input_tokens - cache_write_input_tokens
    per_million = (
        uncached * price.input_per_1m
        + cached_input_tokens * cached_price
        + cache_write_input_tokens * write_price
        + (output_tokens - reasoning_tokens) * price.output_per_1m
        + reasoning_tokens * reasoning_price
    )
    return per_million / MILLION + price.per_call


def carried_split(cogs: Decimal | None, ai: Decimal | None, infra: Decimal | None,
                  fee: Decimal | None) -> CostSplit:
    parts = [ai or ZERO, infra or ZERO, fee or ZERO]
    unclassified = cogs - sum(parts, ZERO) if cogs is not None else ZERO
    return CostSplit(money(parts[0]), money(parts[1]), money(parts[2]), money(unclassified),
                     carried=True, priced=True)


def priced_split(card: RateCard, usage: Usage) -> CostSplit:
    price = card.model_price(usage.provider, usage.model, usage.occurred_at) \
        if usage.model else None
    return _split(price, card.infra_rule(usage.product_id, usage.occurred_at),
                  card.fee_rule(usage.source_type, usage.occurred_at), bool(usage.model),
                  usage.input_tokens, usage.output_tokens, usage.cached_input_tokens,
                  usage.reasoning_tokens, usage.cache_write_input_tokens)


def _split(price: Price | None, rule: InfraRule | None, fee_rule: FeeRule | None,
           has_model: bool, input_tokens: int, output_tokens: int, cached_input_tokens: int,
           reasoning_tokens: int, cache_write_input_tokens: int) -> CostSplit:
    ai = money(_ai_cost(price, input_tokens, cached_input_tokens, cache_write_input_tokens,
                        output_tokens, reasoning_tokens)) if price is not None else ZERO
    infra = ZERO
    if rule is not None:
        tokens = Decimal(input_tokens + output_tokens)
        infra = money(rule.per_event_usd + tokens * rule.per_1k_tokens_usd / THOUSAND)
    fee = ZERO
    if fee_rule is not None:
        fee = money(fee_rule.per_call_usd + ai * fee_rule.pct_of_ai_cost / HUNDRED)
    # An event naming no model has no AI cost to price; only a model without a price is unpriced.
    priced = price is not None or not has_model
    return CostSplit(ai, infra, fee, ZERO, carried=False, priced=priced)


class BatchPricer:
    """priced_split for the events of one batch, with the rate card's lookups done once per
    distinct (provider, model), product and source type: each key's timelines are resolved
    once, and only the bisection by `occurred_at` runs per event. Same results, same
    arithmetic (the one formula above)."""

    def __init__(self, card: RateCard) -> None:
        self.card = card
        self._models: dict[tuple[str, str], list] = {}
        self._infra: dict[str, list] = {}
        self._fees: dict[str, list] = {}

    def split(self, *, provider: str, model: str, product_id: str, source_type: str,
              occurred_at: datetime, input_tokens: int = 0, output_tokens: int = 0,
              cached_input_tokens: int = 0, reasoning_tokens: int = 0,
              cache_write_input_tokens: int = 0) -> CostSplit:
        price = None
        if model:
            key = (provider, model)
            timelines = self._models.get(key)
            if timelines is None:
                timelines = self._models[key] = self.card.model_timelines(provider, model)
            price = first_at(timelines, occurred_at)
        infra = self._infra.get(product_id)
        if infra is None:
            infra = self._infra[product_id] = self.card.infra_timelines(product_id)
        fees = self._fees.get(source_type)
        if fees is None:
            fees = self._fees[source_type] = self.card.fee_timelines(source_type)
        return _split(price, first_at(infra, occurred_at), first_at(fees, occurred_at),
                      bool(model), input_tokens, output_tokens, cached_input_tokens,
                      reasoning_tokens, cache_write_input_tokens)
