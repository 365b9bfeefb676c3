"""Subscription rules that need real concurrency or count queries: two requests racing to put
one customer on two plans, and lists that cost the same queries however many rows they hold."""
from __future__ import annotations

import threading
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from aforo.catalog import customer_create
from aforo.errors import DomainError
from billing.models import Subscription
from billing.services import ComponentSpec, rate_plan_create, subscription_create
from tests.conftest import api_client

START = datetime(2026, 10, 1, tzinfo=timezone.utc)


@pytest.mark.django_db(transaction=True)
def test_two_racing_subscribes_put_a_customer_on_one_plan(tenant):
    customer = customer_create(tenant=tenant, external_id="cust_race")
    plans = [rate_plan_create(tenant=tenant, code=f"p{n}") for n in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def subscribe(plan) -> None:
        try:
            barrier.wait()
            subscription_create(tenant=tenant, customer=customer, plan=plan, starts_at=START)
            outcomes.append("created")
        except DomainError as refused:
            outcomes.append(refused.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=subscribe, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created", "subscription_overlap"]
    assert Subscription.objects.filter(customer=customer).count() == 1


def test_lists_cost_the_same_queries_for_three_rows_or_thirty(tenant):
    api = api_client(tenant, "VIEWER")

    def grow(first: int, last: int) -> None:
        for n in range(first, last):
            plan = rate_plan_create(tenant=tenant, code=f"plan{n}", components=[
                ComponentSpec("PER_EVENT", Decimal("0.01")),
                ComponentSpec("PER_TOOL_CALL", tiers=[(Decimal(10), Decimal(1)),
                                                      (None, Decimal("0.5"))])])
            subscription_create(tenant=tenant, plan=plan, starts_at=START,
                                customer=customer_create(tenant=tenant, external_id=f"c{n}"))

    def queries_for(path: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert api.get(path, {"size": 100}).status_code == 200
        return len(captured)

    grow(0, 3)
    api.get("/api/v1/billing/plans")  # the token's first use writes its last_used_at
    few = {path: queries_for(path) for path in ("/api/v1/billing/plans",
                                                "/api/v1/billing/subscriptions")}
    grow(3, 30)
    many = {path: queries_for(path) for path in few}
    assert many == few
