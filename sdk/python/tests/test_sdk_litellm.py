"""The LiteLLM callback through `litellm.completion(..., mock_response=...)`: no provider is
called (LiteLLM's cost map comes from its own package, not the network)."""
from __future__ import annotations

import asyncio
import os

import pytest
from sdk_fakes import sent_events

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
litellm = pytest.importorskip("litellm")

from aforo_sdk.integrations.litellm import AforoLogger  # noqa: E402


def _reset_callbacks():
    # LiteLLM copies `callbacks` into its own lists; a test's logger must not outlive it.
    for name in ("input_callback", "success_callback", "failure_callback",
                 "_async_success_callback", "_async_failure_callback", "callbacks"):
        setattr(litellm, name, [])


@pytest.fixture
def aforo_logger(aforo):
    _reset_callbacks()
    logger = AforoLogger(aforo, product="prod_chat", agent="litellm-app")
    litellm.callbacks = [logger]
    yield logger
    _reset_callbacks()


def _wait_events(aforo, server, n):
    import time

    deadline = time.monotonic() + 10
    while len(sent_events(server)) < n and time.monotonic() < deadline:
        aforo.flush(timeout=1)
        time.sleep(0.02)
    return sent_events(server)


def test_every_completion_is_metered_with_tokens_cost_and_user(aforo_logger, aforo,
                                                               aforo_server):
    reply = litellm.completion(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                               mock_response="hello there", user="cust_42",
                               metadata={"aforo": {"session": "sess_7"}})
    [event] = _wait_events(aforo, aforo_server, 1)
    usage = reply.usage
    # LiteLLM's cost for gpt-4o-mini: its own price table times the mock's usage
    cost = litellm.completion_cost(completion_response=reply)
    assert event["eventId"] == f"openai:{reply.id}"
    assert {k: event[k] for k in ("provider", "model", "customerId", "productId", "sessionId",
                                  "agent", "inputTokens", "outputTokens")} == {
        "provider": "openai", "model": "gpt-4o-mini", "customerId": "cust_42",
        "productId": "prod_chat", "sessionId": "sess_7", "agent": "litellm-app",
        "inputTokens": usage.prompt_tokens, "outputTokens": usage.completion_tokens}
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert event["aiCogsUsd"] == pytest.approx(cost, abs=1e-9) and event["aiCogsUsd"] > 0
    assert isinstance(event["latencyMs"], int)


def test_async_completions_and_other_providers(aforo_logger, aforo, aforo_server):
    async def run():
        reply = await litellm.acompletion(model="anthropic/claude-sonnet-4-6",
                                          messages=[{"role": "user", "content": "hi"}],
                                          mock_response="hi", user="cust_async")
        for _ in range(500):  # LiteLLM logs from a task of the running loop
            if aforo.stats.enqueued:
                break
            await asyncio.sleep(0.02)
        return reply

    reply = asyncio.run(run())
    [event] = _wait_events(aforo, aforo_server, 1)
    assert (event["eventId"], event["provider"], event["model"], event["customerId"]) == (
        f"anthropic:{reply.id}", "anthropic", "claude-sonnet-4-6", "cust_async")


def test_without_cost_aforo_prices_it(aforo, aforo_server):
    _reset_callbacks()
    litellm.callbacks = [AforoLogger(aforo, send_cost=False)]
    try:
        litellm.completion(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                           mock_response="y")
        [event] = _wait_events(aforo, aforo_server, 1)
    finally:
        _reset_callbacks()
    assert "aiCogsUsd" not in event and "customerId" not in event
