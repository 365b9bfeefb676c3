"""The ingest hot path computes exactly what the reference functions compute: the batch pricer
is priced_split (or carried_split), the template-built row is the checked `ledger_entry` of the
same fields (same keys in the same order, same values), for any rate card and event
(Hypothesis)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from aforo.ledger import ledger_entry
from aforo.models import Tenant
from ingestion.costing import BatchPricer, Usage, carried_split, priced_split
from ingestion.rate_cards import FeeRule, InfraRule, Price, RateCard, model_key
from ingestion.schema import Event
from ingestion.services import _cost_row, _event_cost

BASE = datetime(2026, 1, 1, tzinfo=timezone.utc)
PROVIDERS = ["OpenAI", "openai", "Google", "gemini", "Anthropic", "AWS", "bedrock", ""]
MODELS = ["gpt-4o", "gemini-2.5-pro", "claude", "m", ""]
PRODUCTS = ["p1", "p2", ""]
SOURCES = ["GATEWAY", "SDK", ""]
money = st.decimals(min_value=0, max_value=100, places=9, allow_nan=False,
                    allow_infinity=False)
moments = st.integers(0, 100).map(lambda d: BASE + timedelta(days=d))


@st.composite
def rate_cards(draw) -> RateCard:
    card = RateCard()
    for _ in range(draw(st.integers(0, 6))):
        table = card.tenant_prices if draw(st.booleans()) else card.platform_prices
        provider = draw(st.sampled_from(["openai", "gemini", "anthropic", "bedrock"]))
        price = Price(draw(moments), draw(money), draw(st.none() | money), draw(money),
                      draw(st.none() | money), draw(money), draw(st.none() | money))
        table[model_key(provider, draw(st.sampled_from(MODELS[:4])))].add(price)
    for _ in range(draw(st.integers(0, 3))):
        card.infra[draw(st.sampled_from(PRODUCTS))].add(
            InfraRule(draw(moments), draw(money), draw(money)))
    for _ in range(draw(st.integers(0, 3))):
        card.fees[draw(st.sampled_from(SOURCES))].add(
            FeeRule(draw(moments), draw(money), draw(money)))
    return card


@st.composite
def events(draw, n: int) -> Event:
    tokens = draw(st.integers(0, 2_000_000))
    output = draw(st.integers(0, 500_000))
    cached = draw(st.integers(0, tokens))
    carried = draw(st.booleans())
    return Event(
        event_id=f"e{n}", occurred_at=draw(moments),
        customer_id=draw(st.none() | st.sampled_from(["c1", "c2"])),
        product_id=draw(st.none() | st.sampled_from(PRODUCTS)),
        product_type=draw(st.none() | st.just("API_WITH_AI")),
        provider=draw(st.none() | st.sampled_from(PROVIDERS)),
        model=draw(st.none() | st.sampled_from(MODELS)),
        source_type=draw(st.none() | st.sampled_from(SOURCES)),
        latency_ms=draw(st.none() | st.integers(0, 10_000)),
        input_tokens=tokens, output_tokens=output, cached_input_tokens=cached,
        cache_write_input_tokens=draw(st.integers(0, tokens - cached)),
        reasoning_tokens=draw(st.integers(0, output)),
        quantity=draw(st.none() | money),
        cogs_usd=draw(money) if carried else None,
        revenue_usd=draw(st.none() | money),
    )


def event_cost(card, event):
    """The reference: a carried cost as it came, else the rate card's price of the usage."""
    if any(getattr(event, n) is not None
           for n in ("cogs_usd", "ai_cogs_usd", "infra_cogs_usd", "fee_cogs_usd")):
        return carried_split(event.cogs_usd, event.ai_cogs_usd, event.infra_cogs_usd,
                             event.fee_cogs_usd)
    return priced_split(card, Usage(
        provider=event.provider or "", model=event.model or "", product_id=event.product_id or "",
        source_type=event.source_type or "", occurred_at=event.occurred_at,
        input_tokens=event.input_tokens, output_tokens=event.output_tokens,
        cached_input_tokens=event.cached_input_tokens, reasoning_tokens=event.reasoning_tokens,
        cache_write_input_tokens=event.cache_write_input_tokens))


def cost_entry(tenant, event, cost, now):
    """The reference: an event's original COST entry through the checked constructor."""
    return ledger_entry(
        tenant_id=tenant.slug, entry_id=event.event_id, entry_type="COST",
        event_id=event.event_id, occurred_at=event.occurred_at, recorded_at=now,
        customer_id=event.customer_id or "", product_id=event.product_id or "",
        product_type=event.product_type or "", provider=event.provider or "",
        model=event.model or "", requested_model=event.requested_model or "",
        tool_name=event.tool_name or "", source_type=event.source_type or "",
        session_id=event.session_id or "", agent=event.agent or "",
        latency_ms=event.latency_ms or 0, event_count=1,
        input_tokens=event.input_tokens, output_tokens=event.output_tokens,
        cached_input_tokens=event.cached_input_tokens,
        cache_write_input_tokens=event.cache_write_input_tokens,
        reasoning_tokens=event.reasoning_tokens,
        reasoning_steps=event.reasoning_steps, tool_calls=event.tool_calls,
        quantity=event.quantity if event.quantity is not None else Decimal(1),
        ai_cogs_usd=cost.ai, infra_cogs_usd=cost.infra, fee_cogs_usd=cost.fee,
        unclassified_cogs_usd=cost.unclassified,
        cost_source="CARRIED" if cost.carried else "RATE_CARD",
        unpriced=0 if cost.priced else 1,
        **({"carried_revenue_usd": event.revenue_usd, "revenue_source": "CARRIED"}
           if event.revenue_usd is not None else {}),
    )


@settings(max_examples=300, deadline=None)
@given(card=rate_cards(), batch=st.lists(st.integers(0, 10**6), min_size=1, max_size=20)
       .flatmap(lambda ns: st.tuples(*[events(n) for n in range(len(ns))])))
def test_the_batch_pricer_and_row_builder_match_the_reference(card, batch):
    tenant = Tenant(slug="t1", name="T")
    now = BASE + timedelta(days=200)
    pricer = BatchPricer(card)  # shared by the batch, as ingest shares it
    for event in batch:
        expected_cost = event_cost(card, event)
        cost = _event_cost(pricer, event)
        assert cost == expected_cost
        if not expected_cost.carried:
            assert cost == priced_split(card, Usage(
                provider=event.provider or "", model=event.model or "",
                product_id=event.product_id or "", source_type=event.source_type or "",
                occurred_at=event.occurred_at, input_tokens=event.input_tokens,
                output_tokens=event.output_tokens, cached_input_tokens=event.cached_input_tokens,
                reasoning_tokens=event.reasoning_tokens,
                cache_write_input_tokens=event.cache_write_input_tokens))
        expected_row = cost_entry(tenant, event, expected_cost, now)
        row = _cost_row(tenant.slug, event, cost, now)
        assert list(row) == list(expected_row)
        assert row == expected_row
        assert all(type(row[k]) is type(expected_row[k]) for k in row)
        assert all(isinstance(row[k], Decimal) for k in ("ai_cogs_usd", "quantity"))
