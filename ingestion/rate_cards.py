"""Rate-card lookups: the price or rule in force at a moment, for a tenant.

Ingest prices thousands of events a second, so a tenant's whole rate card is loaded once into
memory (a `RateCard`) and looked up there; any write to the rate card bumps a version in the
cache, so every process reloads it on its next batch.
"""
from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from aforo.models import Tenant
from aforo.shared_cache import VersionedMemo
from ingestion.models import GatewayFeeRule, InfraCostRule, ModelPrice


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens (and per call) in force from `effective_from`."""

    effective_from: datetime
    input_per_1m: Decimal
    cached_input_per_1m: Decimal | None
    output_per_1m: Decimal
    reasoning_per_1m: Decimal | None
    per_call: Decimal
    cache_write_input_per_1m: Decimal | None = None

    @property
    def input_per_1k(self) -> Decimal:
        return self.input_per_1m / 1000

    @property
    def output_per_1k(self) -> Decimal:
        return self.output_per_1m / 1000


@dataclass(frozen=True)
class InfraRule:
    effective_from: datetime
    per_event_usd: Decimal
    per_1k_tokens_usd: Decimal


@dataclass(frozen=True)
class FeeRule:
    effective_from: datetime
    per_call_usd: Decimal
    pct_of_ai_cost: Decimal


class _Timeline:
    """Entries sorted by effective_from; `at(t)` is the last one starting at or before t."""

    def __init__(self) -> None:
        self.starts: list[datetime] = []
        self.entries: list = []

    def add(self, entry) -> None:
        i = bisect.bisect_right(self.starts, entry.effective_from)
        self.starts.insert(i, entry.effective_from)
        self.entries.insert(i, entry)

    def at(self, moment: datetime):
        i = bisect.bisect_right(self.starts, moment)
        return self.entries[i - 1] if i else None


def model_key(provider: str, model: str) -> tuple[str, str]:
    """Providers match case-insensitively ("Anthropic" is LiteLLM's "anthropic")."""
    return provider.strip().lower(), model.strip()


# How producers name providers versus LiteLLM's `litellm_provider` values.
PROVIDER_ALIASES = {
    "google": ("gemini", "vertex_ai-language-models"),
    "aws bedrock": ("bedrock", "bedrock_converse"),
    "aws": ("bedrock", "bedrock_converse"),
    "bedrock": ("bedrock_converse",),
    "azure openai": ("azure",),
    "mistral ai": ("mistral",),
}


def provider_candidates(provider: str) -> tuple[str, ...]:
    key = provider.strip().lower()
    return (key, *PROVIDER_ALIASES.get(key, ()))


class RateCard:
    """A tenant's prices and rules in memory: its own first, then the platform catalog."""

    def __init__(self) -> None:
        self.tenant_prices: dict[tuple[str, str], _Timeline] = defaultdict(_Timeline)
        self.platform_prices: dict[tuple[str, str], _Timeline] = defaultdict(_Timeline)
        self.infra: dict[str, _Timeline] = defaultdict(_Timeline)
        self.fees: dict[str, _Timeline] = defaultdict(_Timeline)

    def model_timelines(self, provider: str, model: str) -> list[_Timeline]:
        """The timelines a model's price is looked up in, first match wins: the tenant's,
        then the platform's, each by the provider's name and then its aliases."""
        model = model.strip()
        return [timeline for table in (self.tenant_prices, self.platform_prices)
                for candidate in provider_candidates(provider)
                if (timeline := table.get((candidate, model)))]

    def model_price(self, provider: str, model: str, at: datetime) -> Price | None:
        return first_at(self.model_timelines(provider, model), at)

    def infra_timelines(self, product_id: str) -> list[_Timeline]:
        return _specific_then_default(self.infra, product_id)

    def fee_timelines(self, source_type: str) -> list[_Timeline]:
        return _specific_then_default(self.fees, source_type)

    def infra_rule(self, product_id: str, at: datetime) -> InfraRule | None:
        return first_at(self.infra_timelines(product_id), at)

    def fee_rule(self, source_type: str, at: datetime) -> FeeRule | None:
        return first_at(self.fee_timelines(source_type), at)


def _specific_then_default(table: dict[str, _Timeline], key: str) -> list[_Timeline]:
    return [timeline for candidate in (key, "") if (timeline := table.get(candidate))]


def first_at(timelines: list[_Timeline], at: datetime):
    """The value in force at `at` in the first timeline that has one (first match wins)."""
    for timeline in timelines:
        found = timeline.at(at)
        if found is not None:
            return found
    return None


def _price(row: ModelPrice) -> Price:
    return Price(row.effective_from, row.input_per_1m, row.cached_input_per_1m,
                 row.output_per_1m, row.reasoning_per_1m, row.per_call,
                 row.cache_write_input_per_1m)


def rate_card_build(tenant: Tenant) -> RateCard:
    card = RateCard()
    for row in ModelPrice.objects.filter(tenant__isnull=True):
        card.platform_prices[model_key(row.provider, row.model)].add(_price(row))
    for row in ModelPrice.objects.filter(tenant=tenant):
        card.tenant_prices[model_key(row.provider, row.model)].add(_price(row))
    for row in InfraCostRule.objects.filter(tenant=tenant):
        card.infra[row.product_id].add(
            InfraRule(row.effective_from, row.per_event_usd, row.per_1k_tokens_usd))
    for row in GatewayFeeRule.objects.filter(tenant=tenant):
        card.fees[row.source_type].add(
            FeeRule(row.effective_from, row.per_call_usd, row.pct_of_ai_cost))
    return card


_rate_cards: VersionedMemo[RateCard] = VersionedMemo("rate-card", rate_card_build,
                                                     scopes=("platform",))


def rate_card_changed(tenant: Tenant | None) -> None:
    """Call after any write to prices or rules (tenant None: the platform catalog)."""
    _rate_cards.changed(tenant.pk if tenant else "platform")


def rate_card_for(tenant: Tenant) -> RateCard:
    """The tenant's rate card (its own prices and the platform's), rebuilt when either changes."""
    return _rate_cards.get(tenant)


def model_price_at(*, tenant: Tenant, provider: str, model: str, at: datetime) -> Price | None:
    """The price in force at `at` for a provider and model, or None when unpriced."""
    return rate_card_for(tenant).model_price(provider, model, at)
