"""Rated revenue at ingest: each price component, subscriptions in time, no per-event query."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.rating import rated_revenue
from billing.services import ComponentSpec
from tests.factories import subscribe
from tests.factories import usage_row as entry


@pytest.mark.parametrize(("component", "usage", "expected"), [
    (ComponentSpec("PER_EVENT", Decimal("0.002")), {}, "0.002"),
    (ComponentSpec("PER_1K_INPUT_TOKENS", Decimal("0.003")), {"input_tokens": 1842},
     "0.005526"),
    (ComponentSpec("PER_1K_OUTPUT_TOKENS", Decimal("0.015")), {"output_tokens": 623},
     "0.009345"),
    (ComponentSpec("PER_1K_TOKENS", Decimal("0.01")), {"input_tokens": 1000, "output_tokens": 500},
     "0.015"),
    (ComponentSpec("PER_TOOL_CALL", Decimal("0.002")), {"tool_calls": 3}, "0.006"),
    (ComponentSpec("PER_REASONING_STEP", Decimal("0.006")), {"reasoning_steps": 7}, "0.042"),
    (ComponentSpec("MARKUP_PCT", Decimal("50")),
     {"ai_cogs_usd": Decimal("0.02"), "infra_cogs_usd": Decimal("0.002")}, "0.033"),
    (ComponentSpec("FLAT_FEE", Decimal("49"), rating_events_per_period=1000), {}, "0.049"),
    (ComponentSpec("FLAT_FEE", Decimal("49")), {}, "0"),
    (ComponentSpec("PER_EVENT", Decimal("1"), tiers=[(Decimal(1000), Decimal("0.01")),
                                                     (None, Decimal("0.005"))]), {}, "0.01"),
    (ComponentSpec("PER_1K_INPUT_TOKENS", Decimal("1"), product_id="prod_other"),
     {"input_tokens": 1000}, "0"),
])
def test_each_component_rates_an_event(tenant, component, usage, expected):
    subscribe(tenant, component)
    [value] = rated_revenue(tenant=tenant, entries=[entry(**usage)])
    assert value == Decimal(expected)
    assert value.as_tuple().exponent == -9


def test_components_add_up_like_the_product_page(tenant):
    subscribe(tenant,
              ComponentSpec("PER_1K_INPUT_TOKENS", Decimal("0.003")),
              ComponentSpec("PER_1K_OUTPUT_TOKENS", Decimal("0.015")),
              ComponentSpec("PER_TOOL_CALL", Decimal("0.002")),
              ComponentSpec("PER_REASONING_STEP", Decimal("0.006")))
    [value] = rated_revenue(tenant=tenant, entries=[entry(
        input_tokens=1842, output_tokens=623, tool_calls=3, reasoning_steps=7)])
    assert value == Decimal("0.062871")


def test_no_subscription_or_outside_it_rates_zero(tenant):
    subscribe(tenant, ComponentSpec("PER_EVENT", Decimal("1")),
              starts=datetime(2026, 10, 1, tzinfo=timezone.utc),
              ends=datetime(2026, 11, 1, tzinfo=timezone.utc))
    values = rated_revenue(tenant=tenant, entries=[
        entry(), entry(customer_id="cust_none"), entry(customer_id=""),
        entry(occurred_at=datetime(2026, 9, 30, tzinfo=timezone.utc)),
        entry(occurred_at=datetime(2026, 11, 1, tzinfo=timezone.utc)),
    ])
    assert values == [Decimal(1), 0, 0, 0, 0]


def test_a_plan_change_rates_each_event_by_the_plan_of_its_time(tenant):
    subscribe(tenant, ComponentSpec("PER_EVENT", Decimal("1")),
              ends=datetime(2026, 10, 15, tzinfo=timezone.utc))
    subscribe(tenant, ComponentSpec("PER_EVENT", Decimal("2")),
              starts=datetime(2026, 10, 15, tzinfo=timezone.utc))
    assert rated_revenue(tenant=tenant, entries=[
        entry(), entry(occurred_at=datetime(2026, 10, 20, tzinfo=timezone.utc))]) == [1, 2]


def test_a_batch_costs_no_query_per_event(tenant):
    subscribe(tenant, ComponentSpec("PER_EVENT", Decimal("0.5")))
    for i in range(20):
        subscribe(tenant, ComponentSpec("PER_EVENT", Decimal(i)), customer=f"c{i}")
    entries = [entry(customer_id=f"c{i % 20}") for i in range(5000)]
    rated_revenue(tenant=tenant, entries=entries[:1])  # loads the tenant's plans
    with CaptureQueriesContext(connection) as queries:
        values = rated_revenue(tenant=tenant, entries=entries)
    assert len(queries) == 0
    assert values[3] == Decimal(3)
