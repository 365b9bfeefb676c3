"""Margin Guard on expected revenue: a tenant that imports its invoices and has no Aforo plans is
guarded on the revenue its invoices imply, never blocked for revenue it cannot see, and a
customer whose carried or estimated revenue falls below its cost moves down the ladder and back.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from billing.attribution import attribution_run
from margin_guard import decision
from margin_guard.models import GuardAction, GuardPolicy, GuardState
from tests.factories import ingest, invoice_lines

pytestmark = pytest.mark.django_db(transaction=True)
NOW = datetime.now(timezone.utc).replace(microsecond=0)
LAST_MONTH = (NOW - timedelta(days=40), NOW - timedelta(days=10))
_seq = iter(range(10**6))


def send(tenant, customer: str, n: int, cost: str, *, product: str = "prod_chat",
         at: datetime = NOW, **fields):
    ingest(tenant, [{"eventId": f"g{next(_seq)}", "occurredAt": at.isoformat(),
                     "customerId": customer, "productId": product, "model": "gpt-4o",
                     "cogsUsd": cost, **fields} for _ in range(n)])


def invoiced_last_month(tenant, customer: str, per_event: str, events: int = 20):
    """`events` events last month, invoiced (imported, as from Stripe) at `per_event` each."""
    send(tenant, customer, events, "0.10", at=LAST_MONTH[0] + timedelta(days=5))
    total = f"{float(per_event) * events:.2f}"
    invoice_lines(tenant, f"in_{customer}", customer=customer, start=LAST_MONTH[0],
                  end=LAST_MONTH[1], lines=[("calls", "prod_chat", total, "EVENTS")])


def level_of(tenant, customer: str, expected: int, within: float = 2.0) -> GuardState:
    """The customer's state once an evaluation has set its level to `expected` (evaluation
    runs after each batch)."""
    deadline = time.monotonic() + within
    while True:
        state = GuardState.objects.filter(tenant=tenant, customer_id=customer).first()
        done = state is not None and state.evaluated_at is not None and state.level == expected
        if done or time.monotonic() > deadline:
            return state
        time.sleep(0.02)


def decided(tenant, customer: str, expected: str, within: float = 1.0):
    """The decision once it says `expected` (the guard promises a second)."""
    deadline = time.monotonic() + within
    while True:
        verdict = decision.decide(tenant.slug, customer_id=customer, product_id="prod_chat",
                                  model="gpt-4o")
        if verdict.decision == expected or time.monotonic() > deadline:
            return verdict
        time.sleep(0.02)


def enforce(tenant, **extra) -> GuardPolicy:
    values = {"min_events": 20, "downgrade_map": {"gpt-4o": "gpt-4o-mini"}, **extra}
    return GuardPolicy.objects.create(tenant=tenant, name="Floors", scope="TENANT",
                                      mode="ENFORCE", **values)


def test_invoices_without_plans_guard_on_the_revenue_they_imply(store, tenant):
    invoiced_last_month(tenant, "cust_healthy", "1.00")
    invoiced_last_month(tenant, "cust_lossy", "0.20")
    attribution_run(tenant=tenant)
    enforce(tenant)
    send(tenant, "cust_healthy", 25, "0.10")   # estimated $1.00 an event: 90 %
    send(tenant, "cust_lossy", 25, "0.30")     # estimated $0.20 an event: -50 %
    send(tenant, "cust_unseen", 25, "0.10", product="prod_new")  # no revenue source at all
    assert level_of(tenant, "cust_lossy", 3).level == 3
    healthy = level_of(tenant, "cust_healthy", 0)
    assert (healthy.level, healthy.margin_pct, healthy.unknown_events) == (0, 90, 0)
    assert Decimal(healthy.revenue_sources["estimatedUsd"]) == 25
    unseen = level_of(tenant, "cust_unseen", 0)
    assert (unseen.level, unseen.events, unseen.unknown_events) == (0, 25, 25)
    for customer, verdict in (("cust_healthy", "ALLOW"), ("cust_unseen", "ALLOW"),
                              ("cust_lossy", "THROTTLE")):
        assert decided(tenant, customer, verdict).decision == verdict, customer
    assert not GuardAction.objects.filter(tenant=tenant, customer_id="cust_unseen").exists()


def test_a_level_held_for_unknown_revenue_says_so(store, tenant):
    enforce(tenant, min_events=0)
    send(tenant, "cust_unseen", 3, "0.10")
    state = level_of(tenant, "cust_unseen", 0)
    api_state = next(s for s in _states(tenant) if s["customerId"] == "cust_unseen")
    assert (api_state["level"], api_state["unknownEvents"], api_state["events"]) == (
        "NONE", 3, 3)
    assert state.revenue_sources["unknownEvents"] == 3
    assert state.reason.startswith("revenue unknown for 3 of 3 events (left out)")
    assert api_state["reason"] == state.reason


def test_treat_as_zero_counts_unknown_revenue_as_nothing(store, tenant):
    enforce(tenant, on_unknown_revenue="TREAT_AS_ZERO")
    send(tenant, "cust_unseen", 25, "0.10")
    state = level_of(tenant, "cust_unseen", 3)
    assert state.level == 3
    action = GuardAction.objects.get(tenant=tenant, customer_id="cust_unseen")
    assert action.reason.startswith("revenue unknown for 25 of 25 events (counted as $0)")
    assert action.unknown_events == 25


def test_carried_revenue_below_cost_escalates_and_recovers(store, tenant):
    enforce(tenant)
    send(tenant, "cust_carry", 20, "0.50", revenueUsd="0.60")  # 16.7 %: ALERT
    assert level_of(tenant, "cust_carry", 1).level == 1
    send(tenant, "cust_carry", 20, "0.70", revenueUsd="0.60")  # 0 %: THROTTLE
    assert level_of(tenant, "cust_carry", 2).level == 2
    assert decided(tenant, "cust_carry", "THROTTLE").downgrade_to == "gpt-4o-mini"
    send(tenant, "cust_carry", 60, "0.05", revenueUsd="0.60")  # 59 %: back to NONE
    assert level_of(tenant, "cust_carry", 0).level == 0
    moves = [(a.from_level, a.to_level) for a in
             GuardAction.objects.filter(tenant=tenant, customer_id="cust_carry").order_by("id")]
    assert moves == [(0, 1), (1, 2), (2, 0)]


def _states(tenant):
    from tests.conftest import api_client

    return api_client(tenant).get("/api/v1/margin-guard/states").json()["content"]
