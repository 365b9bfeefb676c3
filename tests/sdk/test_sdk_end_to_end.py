"""The SDK against the live server: a real OpenAI client (pointed at a fake provider on
loopback) wrapped by `meter.wrap`, events through the batcher to uvicorn's /api/v1/events.
They land exactly once and the dashboard's token analysis shows them; with the server stopped
mid-run and started again nothing within the queue bound is lost, and what the bound dropped is
counted and logged."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import requests
from aforo_sdk import Aforo, meter
from openai import OpenAI

from ingestion.prices import model_price_create
from tests.conftest import issue_token

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "gpt-4o-mini-2024-07-18"


def _get(server, token, tenant, path):
    today = datetime.now(timezone.utc).date().isoformat()
    reply = requests.get(f"{server.url}{path}", params={"from": today, "to": today, "size": 200},
                         headers={"Authorization": f"Bearer {token}", "X-Tenant-Id": tenant.slug},
                         timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def test_events_land_once_and_survive_a_server_restart(restartable_api, browser_store, tenant,
                                                       fake_openai, caplog):
    model_price_create(tenant=tenant, provider="openai", model=MODEL,
                       effective_from=datetime.now(timezone.utc) - timedelta(days=1),
                       input_per_1m=Decimal("0.15"), cached_input_per_1m=Decimal("0.075"),
                       output_per_1m=Decimal("0.60"))
    token = issue_token(tenant, "DEVELOPER")
    aforo = Aforo(restartable_api.url, token, tenant.slug, batch_size=10, flush_interval=0.05,
                  max_queue=40, backoff_base=0.05, backoff_max=0.3, default=False)
    client = meter.wrap(OpenAI(api_key="sk-test", base_url=fake_openai.url), aforo=aforo,
                        product="prod_chat")
    try:
        # 1. the server up: 30 calls
        with meter(customer="cust_e2e", session="sess_e2e"):
            replies = [client.chat.completions.create(model="gpt-4o-mini", messages=[])
                       for _ in range(30)]
        assert aforo.flush(timeout=30)
        assert (aforo.stats.accepted, aforo.stats.dropped) == (30, 0)

        # the same response reported again is a duplicate, never a second event
        meter.record(replies[0], aforo=aforo, customer="cust_e2e", product="prod_chat")
        assert aforo.flush(timeout=30)
        assert aforo.stats.duplicates == 1

        # 2. the server stops mid-run; 60 calls while it is away, queue bound 40
        restartable_api.stop()
        retries_before = aforo.stats.retries
        with caplog.at_level(logging.WARNING, logger="aforo_sdk"), \
                meter(customer="cust_e2e", session="sess_e2e"):
            client.chat.completions.create(model="gpt-4o-mini", messages=[])
            _wait(lambda: aforo.stats.retries > retries_before)  # a batch is failing now
            for _ in range(59):
                client.chat.completions.create(model="gpt-4o-mini", messages=[])
        dropped = aforo.stats.dropped
        assert dropped == 60 - 40 - 1  # 1 in flight (retrying), 40 waiting
        assert any("dropped" in r.getMessage() for r in caplog.records)

        # 3. it comes back at the same address: everything that was kept lands
        restartable_api.start()
        assert aforo.flush(timeout=60)
    finally:
        aforo.close(timeout=10)
    assert aforo.stats.accepted == 30 + 60 - dropped
    landed = 30 + 60 - dropped

    dashboard = _get(restartable_api, token, tenant, "/api/v1/analytics/cogs/dashboard")
    assert dashboard["eventCount"] == landed
    rows = _get(restartable_api, token, tenant,
                "/api/v1/analytics/cogs/dashboard/transactions")
    ids = [row["eventId"] for row in rows["content"]]
    assert rows["totalElements"] == landed and len(set(ids)) == len(ids) == landed
    assert set(ids) >= {f"openai:chatcmpl-fake{n:06d}" for n in range(1, 32)}

    # 100 input (40 cached) and 20 output tokens per call:
    # (60 x 0.15 + 40 x 0.075 + 20 x 0.60) / 1M = $0.000024 a call, over 120 tokens
    tokens = _get(restartable_api, token, tenant,
                  "/api/v1/analytics/cogs/dashboard/token-analysis")
    assert tokens == {"inputTokens": 100 * landed, "outputTokens": 20 * landed,
                      "totalTokens": 120 * landed, "avgCostPer1kTokensUsd": 0.0002}
    assert Decimal(str(dashboard["aiModelSpendUsd"])) == Decimal("0.000024") * landed
