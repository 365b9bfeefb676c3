"""The SDK's guard against the live decision endpoint: ALLOW keeps the model, THROTTLE answers
the downgrade (and a wrapped client calls the provider with it), BLOCK raises `Blocked`."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from aforo_sdk import Aforo, AsyncAforo, Blocked, GuardUnavailable, meter
from openai import OpenAI

from aforo.catalog import customer_create
from billing.services import ComponentSpec, rate_plan_create, subscription_create
from margin_guard.models import GuardPolicy
from tests.conftest import issue_token
from tests.factories import ingest

pytestmark = pytest.mark.django_db(transaction=True)


def _margin_at(tenant, cost: str, n: int, start: int) -> None:
    """cust_g pays $1.00 an event; n events costing `cost` each."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    ingest(tenant, [{"eventId": f"g{start + i}", "occurredAt": now, "customerId": "cust_g",
                     "productId": "prod_chat", "model": "gpt-4o", "cogsUsd": cost}
                    for i in range(n)])


def _until(aforo, expected, **kwargs):
    deadline = time.monotonic() + 3
    while True:
        decision = aforo.decide("cust_g", "prod_chat", **kwargs)
        if decision.decision == expected or time.monotonic() > deadline:
            return decision
        time.sleep(0.05)


@pytest.fixture
def guarded(tenant, http_sink):
    customer = customer_create(tenant=tenant, external_id="cust_g", name="Guarded Co")
    plan = rate_plan_create(tenant=tenant, code="per-call", components=[
        ComponentSpec(kind="PER_EVENT", unit_price=Decimal("1.00"))])
    subscription_create(tenant=tenant, customer=customer, plan=plan,
                        starts_at=datetime.now(timezone.utc) - timedelta(days=30))
    GuardPolicy.objects.create(tenant=tenant, name="Floor", scope="TENANT", mode="ENFORCE",
                               min_events=5, downgrade_map={"gpt-4o": "gpt-4o-mini"},
                               premium_features=["batch"], notify_channel="SLACK",
                               notify_destination=http_sink.url)
    return tenant


def test_guard_allows_downgrades_and_blocks(restartable_api, browser_store, guarded,
                                            fake_openai):
    tenant = guarded
    aforo = Aforo(restartable_api.url, issue_token(tenant, "DEVELOPER"), tenant.slug,
                  flush_interval=0.05, default=False)
    try:
        _margin_at(tenant, "0.70", 10, 0)  # margin 30%: ALLOW
        assert _until(aforo, "ALLOW", model="gpt-4o").answered
        assert aforo.guard("cust_g", "prod_chat", "gpt-4o") == "gpt-4o"

        _margin_at(tenant, "1.60", 10, 100)  # cost 23 / revenue 20: THROTTLE, not BLOCK yet
        throttled = _until(aforo, "THROTTLE", model="gpt-4o")
        assert (throttled.decision, throttled.model, throttled.downgraded) == (
            "THROTTLE", "gpt-4o-mini", True)
        assert aforo.guard("cust_g", "prod_chat", "gpt-4o") == "gpt-4o-mini"

        # wrapper mode: the provider is called with the downgrade; the event says both models
        fake_openai.model = "gpt-4o-mini-2024-07-18"
        client = meter.wrap(OpenAI(api_key="sk-test", base_url=fake_openai.url), aforo=aforo,
                            customer="cust_g", product="prod_chat", guard=True)
        client.chat.completions.create(model="gpt-4o", messages=[])
        assert fake_openai.requests[-1]["model"] == "gpt-4o-mini"
        assert aforo.flush(timeout=30) and aforo.stats.accepted == 1  # requestedModel valid

        _margin_at(tenant, "3.00", 20, 200)  # deep below the BLOCK floor
        _until(aforo, "BLOCK", model="gpt-4o", feature="batch")
        with pytest.raises(Blocked) as blocked:
            aforo.guard("cust_g", "prod_chat", "gpt-4o", feature="batch")
        assert "BLOCK floor" in str(blocked.value)
        # asyncio: the same answers, awaited
        async_client = AsyncAforo(restartable_api.url, issue_token(tenant), tenant.slug,
                                  default=False)
        with pytest.raises(Blocked):
            asyncio.run(async_client.guard("cust_g", "prod_chat", "gpt-4o", feature="batch"))
        assert asyncio.run(async_client.guard("cust_g", "prod_chat", "gpt-4o")) == "gpt-4o-mini"
        asyncio.run(async_client.aclose())
    finally:
        aforo.close(timeout=5)


def test_the_guard_fails_open_unless_told_otherwise(restartable_api, tenant):
    restartable_api.stop()
    open_client = Aforo(restartable_api.url, "tok", tenant.slug, default=False,
                        guard_timeout=0.5)
    closed_client = Aforo(restartable_api.url, "tok", tenant.slug, default=False,
                          guard_timeout=0.5, guard_fail_open=False)
    try:
        assert open_client.guard("cust_g", "prod_chat", "gpt-4o") == "gpt-4o"
        assert open_client.decide("cust_g", "prod_chat", "gpt-4o").answered is False
        with pytest.raises(GuardUnavailable):
            closed_client.guard("cust_g", "prod_chat", "gpt-4o")
    finally:
        open_client.close(timeout=1)
        closed_client.close(timeout=1)
