"""Rate-card writes: model prices, infrastructure and gateway-fee rules, the LiteLLM importer."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction

from aforo.models import Tenant
from ingestion.models import GatewayFeeRule, InfraCostRule, ModelPrice
from ingestion.rate_cards import rate_card_changed

MILLION = Decimal(1_000_000)
NOT_MODELS = {"sample_spec", "fallback_generalizations", "last_updated"}


def model_price_create(*, tenant: Tenant | None, provider: str, model: str,
                       effective_from: datetime, input_per_1m: Decimal, output_per_1m: Decimal,
                       cached_input_per_1m: Decimal | None = None,
                       reasoning_per_1m: Decimal | None = None,
                       cache_write_input_per_1m: Decimal | None = None,
                       per_call: Decimal = Decimal(0),
                       source: str = ModelPrice.Source.MANUAL) -> ModelPrice:
    price = ModelPrice.objects.create(
        tenant=tenant, provider=provider, model=model, effective_from=effective_from,
        input_per_1m=input_per_1m, output_per_1m=output_per_1m,
        cached_input_per_1m=cached_input_per_1m, reasoning_per_1m=reasoning_per_1m,
        cache_write_input_per_1m=cache_write_input_per_1m,
        per_call=per_call, source=source)
    rate_card_changed(tenant)
    return price


def model_price_update(*, price: ModelPrice, **changes: Any) -> ModelPrice:
    for name, value in changes.items():
        setattr(price, name, value)
    price.save()
    rate_card_changed(price.tenant)
    return price


def model_price_delete(*, price: ModelPrice) -> None:
    tenant = price.tenant
    price.delete()
    rate_card_changed(tenant)


def rule_create(*, kind: type[InfraCostRule] | type[GatewayFeeRule], tenant: Tenant,
                effective_from: datetime, **fields: Any) -> InfraCostRule | GatewayFeeRule:
    """An infrastructure rule (product_id, per_event_usd, per_1k_tokens_usd) or a gateway-fee
    rule (source_type, per_call_usd, pct_of_ai_cost) from `effective_from`, the amounts zero
    unless given; the tenant's cached rate card is dropped, as by every rate-card write."""
    rule = kind.objects.create(tenant=tenant, effective_from=effective_from, **fields)
    rate_card_changed(tenant)
    return rule


def rule_delete(*, rule: InfraCostRule | GatewayFeeRule) -> None:
    tenant = rule.tenant
    rule.delete()
    rate_card_changed(tenant)


@dataclass
class ImportReport:
    imported: int = 0
    skipped: list[str] = field(default_factory=list)  # entries with no token prices

    def as_json(self) -> dict[str, Any]:
        return {"imported": self.imported, "skipped": len(self.skipped),
                "skippedModels": self.skipped[:50]}


def _per_million(entry: dict[str, Any], key: str) -> Decimal | None:
    value = entry.get(key)
    if isinstance(value, Decimal):
        return value * MILLION
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value) * MILLION
    return None


def litellm_parse(text: str | bytes) -> dict[str, Any]:
    """LiteLLM's price map with every number exact (its prices are per single token)."""
    return json.loads(text, parse_float=Decimal)


@transaction.atomic
def litellm_import(*, tenant: Tenant | None, document: dict[str, Any],
                   effective_from: datetime) -> ImportReport:
    """Import LiteLLM `model_prices_and_context_window.json` entries as prices from a date.

    Token prices only (input, cache read, cache write, output, reasoning); entries priced in
    other units (images, seconds, characters) are skipped and reported. A model key's provider
    prefix (`azure/gpt-4o`) is dropped since the provider is its own column. Re-importing the
    same date replaces that date's prices.
    """
    report = ImportReport()
    rows: dict[tuple[str, str], ModelPrice] = {}
    for key, entry in document.items():
        if key in NOT_MODELS or not isinstance(entry, dict):
            continue
        input_price = _per_million(entry, "input_cost_per_token")
        output_price = _per_million(entry, "output_cost_per_token")
        provider = str(entry.get("litellm_provider") or "").strip()
        if input_price is None or output_price is None or not provider:
            report.skipped.append(key)
            continue
        model = key.split("/", 1)[1] if "/" in key else key
        if (provider, model) in rows:
            continue  # the same model under another key of the same provider: first one wins
        rows[(provider, model)] = ModelPrice(
            tenant=tenant, provider=provider, model=model, effective_from=effective_from,
            input_per_1m=input_price, output_per_1m=output_price,
            cached_input_per_1m=_per_million(entry, "cache_read_input_token_cost"),
            reasoning_per_1m=_per_million(entry, "output_cost_per_reasoning_token"),
            cache_write_input_per_1m=_per_million(entry, "cache_creation_input_token_cost"),
            per_call=Decimal(0), source=ModelPrice.Source.LITELLM)
    ModelPrice.objects.filter(tenant=tenant, effective_from=effective_from,
                              source=ModelPrice.Source.LITELLM).delete()
    ModelPrice.objects.bulk_create(rows.values(), batch_size=1000)
    report.imported = len(rows)
    transaction.on_commit(lambda: rate_card_changed(tenant))
    return report
