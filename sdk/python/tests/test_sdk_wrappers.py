"""meter.wrap on the providers' real SDK clients, pointed at a fake provider on loopback that
answers with the reference fixtures; the events reach a stand-in Aforo through the batcher."""
from __future__ import annotations

import asyncio
import json

import pytest
from aforo_sdk import Blocked, meter
from sdk_fakes import Answer, fixture_response, sent_events


def _flushed(aforo, server) -> list[dict]:
    assert aforo.flush(timeout=5)
    return sent_events(server)


def _sse(chunks, event_of=None) -> list[str]:
    blocks = []
    for chunk in chunks:
        data = f"data: {json.dumps(chunk)}"
        blocks.append(f"event: {event_of(chunk)}\n{data}" if event_of else data)
    return blocks


# --- OpenAI --------------------------------------------------------------------------------

def test_openai_chat_is_metered_with_the_callers_scope(provider, aforo_server, aforo):
    from openai import OpenAI

    body = fixture_response("openai_native/04_cache_call2_chat.json")
    provider.route("POST", "/v1/chat/completions", Answer(200, body))
    client = meter.wrap(OpenAI(api_key="sk-test", base_url=f"{provider.url}/v1"),
                        product="prod_chat", agent="support-bot")
    with meter(customer="cust_42", session="sess_1"):
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert reply.id == "chatcmpl-Dkn8uVrLuXJiU7Ef7z5Yix39CCOus"
    [event] = _flushed(aforo, aforo_server)
    assert event["eventId"] == "openai:chatcmpl-Dkn8uVrLuXJiU7Ef7z5Yix39CCOus"
    assert {k: event[k] for k in ("provider", "model", "customerId", "productId", "sessionId",
                                  "agent", "inputTokens", "outputTokens",
                                  "cachedInputTokens")} == {
        "provider": "openai", "model": "gpt-4o-mini-2024-07-18", "customerId": "cust_42",
        "productId": "prod_chat", "sessionId": "sess_1", "agent": "support-bot",
        "inputTokens": 3819, "outputTokens": 20, "cachedInputTokens": 3712}
    assert isinstance(event["latencyMs"], int) and event["latencyMs"] >= 0
    # the request reached Aforo with the token and the tenant
    sent = aforo_server.received("/api/v1/events")[0]["headers"]
    assert (sent["Authorization"], sent["X-Tenant-Id"]) == ("Bearer tok_test", "acme")


def test_openai_stream_asks_for_and_reads_the_final_usage_chunk(provider, aforo_server, aforo):
    from openai import OpenAI

    chunks = fixture_response("openai_native/05_streaming_chat.json")["chunks"]
    provider.route("POST", "/v1/chat/completions", Answer(sse=_sse(chunks) + ["data: [DONE]"]))
    client = meter.wrap(OpenAI(api_key="sk-test", base_url=f"{provider.url}/v1"),
                        customer="cust_1", product="prod_chat")
    text = "".join(c.choices[0].delta.content or "" for c in
                   client.chat.completions.create(model="gpt-4o-mini", messages=[],
                                                  stream=True) if c.choices)
    assert text.startswith("Dolphins")
    assert provider.requests[0]["json"]["stream_options"] == {"include_usage": True}
    [event] = _flushed(aforo, aforo_server)
    assert (event["eventId"], event["inputTokens"], event["outputTokens"]) == (
        "openai:chatcmpl-Dkn8vwv6VoUsxIF5EssIBJgb3ruqv", 13, 29)


def test_openai_responses_api_with_reasoning(provider, aforo_server, aforo):
    from openai import OpenAI

    provider.route("POST", "/v1/responses",
                   Answer(200, fixture_response("openai_native/10_reasoning_responses.json")))
    client = meter.wrap(OpenAI(api_key="sk-test", base_url=f"{provider.url}/v1"),
                        customer="cust_1")
    client.responses.create(model="o4-mini", input="why?")
    [event] = _flushed(aforo, aforo_server)
    assert (event["model"], event["inputTokens"], event["outputTokens"],
            event["reasoningTokens"]) == ("o4-mini-2025-04-16", 33, 981, 320)


def test_async_openai_client(provider, aforo_server, aforo):
    from openai import AsyncOpenAI

    provider.route("POST", "/v1/chat/completions",
                   Answer(200, fixture_response("openai_native/02_tool_use_chat.json")))
    client = meter.wrap(AsyncOpenAI(api_key="sk-test", base_url=f"{provider.url}/v1"))

    @meter(customer=lambda user: user["id"], product="prod_agent")
    async def answer(user):
        return await client.chat.completions.create(model="gpt-4o-mini", messages=[])

    reply = asyncio.run(answer({"id": "cust_async"}))
    assert reply.choices[0].message.tool_calls[0].function.name == "get_weather"
    [event] = _flushed(aforo, aforo_server)  # metered once, by the client, not again
    assert (event["customerId"], event["productId"], event["toolCalls"],
            event["inputTokens"]) == ("cust_async", "prod_agent", 1, 60)


def test_the_same_response_reported_twice_has_one_event_id(provider, aforo_server, aforo):
    from openai import OpenAI

    provider.route("POST", "/v1/chat/completions",
                   Answer(200, fixture_response("openai_native/01_plain_chat.json")))
    raw = OpenAI(api_key="sk-test", base_url=f"{provider.url}/v1")
    reply = raw.chat.completions.create(model="gpt-4o-mini", messages=[])
    meter.record(reply, customer="cust_1")
    meter.record(reply, customer="cust_1")
    first, second = _flushed(aforo, aforo_server)
    assert first["eventId"] == second["eventId"] == \
        "openai:chatcmpl-Dkn8rdIFbTd9EfFHjOXXA4pRjMF8R"


def test_the_decorator_meters_a_response_its_function_returns(provider, aforo_server, aforo):
    from openai import OpenAI

    provider.route("POST", "/v1/chat/completions",
                   Answer(200, fixture_response("openai_native/06_reasoning_chat.json")))
    raw = OpenAI(api_key="sk-test", base_url=f"{provider.url}/v1")

    @meter(product="prod_reason", customer="cust_9")
    def think():
        return raw.chat.completions.create(model="o4-mini", messages=[])

    think()
    [event] = _flushed(aforo, aforo_server)
    assert (event["productId"], event["customerId"], event["outputTokens"],
            event["reasoningTokens"]) == ("prod_reason", "cust_9", 1579, 832)


# --- Anthropic -----------------------------------------------------------------------------

def test_anthropic_message_with_cache_reads(provider, aforo_server, aforo):
    from anthropic import Anthropic

    provider.route("POST", "/v1/messages",
                   Answer(200, fixture_response("anthropic_native/05_cache_read.json")))
    client = meter.wrap(Anthropic(api_key="sk-ant", base_url=provider.url), customer="c1")
    client.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=[])
    [event] = _flushed(aforo, aforo_server)
    assert (event["provider"], event["inputTokens"], event["cachedInputTokens"],
            event["outputTokens"]) == ("anthropic", 2816, 2803, 30)


def test_anthropic_stream(provider, aforo_server, aforo):
    from anthropic import Anthropic

    raw_types = {"message_start", "content_block_start", "content_block_delta",
                 "content_block_stop", "message_delta", "message_stop"}
    events = [e for e in fixture_response("anthropic_native/08_stream.json")["events"]
              if e["type"] in raw_types]
    provider.route("POST", "/v1/messages", Answer(sse=_sse(events, lambda e: e["type"])))
    client = meter.wrap(Anthropic(api_key="sk-ant", base_url=provider.url), customer="c1")
    with client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=[],
                                stream=True) as stream:
        kinds = [e.type for e in stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    [event] = _flushed(aforo, aforo_server)
    assert (event["eventId"], event["model"], event["inputTokens"], event["outputTokens"]) == (
        "anthropic:msg_01A9ASsVixqCzpb4qwbcCkd2", "claude-haiku-4-5-20251001", 13, 35)


def test_anthropic_stream_helper(provider, aforo_server, aforo):
    """`messages.stream()`, the helper most code uses: metered from the final snapshot."""
    from anthropic import Anthropic

    raw_types = {"message_start", "content_block_start", "content_block_delta",
                 "content_block_stop", "message_delta", "message_stop"}
    events = [e for e in fixture_response("anthropic_native/08_stream.json")["events"]
              if e["type"] in raw_types]
    provider.route("POST", "/v1/messages", Answer(sse=_sse(events, lambda e: e["type"])))
    client = meter.wrap(Anthropic(api_key="sk-ant", base_url=provider.url), customer="c2")
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=64,
                                messages=[]) as stream:
        text = "".join(stream.text_stream)
    assert text.startswith("Dolphins")
    [event] = _flushed(aforo, aforo_server)
    assert (event["eventId"], event["customerId"], event["inputTokens"],
            event["outputTokens"]) == ("anthropic:msg_01A9ASsVixqCzpb4qwbcCkd2", "c2", 13, 35)


# --- the guard in wrapper mode --------------------------------------------------------------

def test_guard_mode_downgrades_the_model_before_the_call(provider, aforo_server, aforo):
    from anthropic import Anthropic

    aforo_server.route("POST", "/api/v1/margin-guard/decide", Answer(200, {
        "decision": "THROTTLE", "level": "THROTTLE", "model": "claude-haiku-4-5",
        "downgradeTo": "claude-haiku-4-5", "retryAfter": None, "reason": "margin below floor"},
        headers={"X-Aforo-Model-Downgrade": "claude-haiku-4-5"}))
    provider.route("POST", "/v1/messages",
                   Answer(200, fixture_response("anthropic_native/01_plain_haiku.json")))
    client = meter.wrap(Anthropic(api_key="sk-ant", base_url=provider.url),
                        customer="cust_low", product="prod_chat", guard=True)
    client.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=[])
    assert provider.requests[0]["json"]["model"] == "claude-haiku-4-5"
    asked = aforo_server.received("/api/v1/margin-guard/decide")[0]["json"]
    assert asked == {"customerId": "cust_low", "productId": "prod_chat",
                     "model": "claude-sonnet-4-6", "feature": ""}
    [event] = _flushed(aforo, aforo_server)
    assert (event["model"], event["requestedModel"]) == ("claude-haiku-4-5-20251001",
                                                         "claude-sonnet-4-6")


def test_guard_mode_blocks_without_calling_the_provider(provider, aforo_server, aforo):
    from openai import OpenAI

    aforo_server.route("POST", "/api/v1/margin-guard/decide", Answer(200, {
        "decision": "BLOCK", "level": "BLOCK", "model": "gpt-4o", "downgradeTo": None,
        "retryAfter": None, "reason": "margin below the BLOCK floor: premium feature suspended",
        "reasonCode": "MARGIN_FLOOR"}))
    client = meter.wrap(OpenAI(api_key="sk-test", base_url=f"{provider.url}/v1"),
                        customer="cust_low", guard=True)
    with pytest.raises(Blocked) as blocked:
        client.chat.completions.create(model="gpt-4o", messages=[])
    assert blocked.value.reason_code == "MARGIN_FLOOR"
    assert "premium feature suspended" in str(blocked.value)
    assert provider.requests == []
    assert _flushed(aforo, aforo_server) == []


# --- Google GenAI, Mistral, Bedrock --------------------------------------------------------

def _camel(value):
    """The Gemini fixtures are the SDK's snake_case dumps; the wire is camelCase."""
    if isinstance(value, dict):
        return {k.split("_")[0] + "".join(p.capitalize() for p in k.split("_")[1:]): _camel(v)
                for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def test_gemini_generate_content_and_stream(provider, aforo_server, aforo):
    from google import genai
    from google.genai import types

    provider.route("POST", "/v1/models/gemini-2.5-flash:generateContent",
                   Answer(200, _camel(fixture_response("gemini_native/04_thinking.json"))))
    chunks = _camel(fixture_response("gemini_native/03_streaming.json")["chunks"])
    provider.route("POST", "/v1/models/gemini-2.5-flash:streamGenerateContent",
                   Answer(sse=_sse(chunks)))
    client = meter.wrap(genai.Client(api_key="g-test",
                                     http_options=types.HttpOptions(base_url=provider.url)),
                        customer="cust_g")
    client.models.generate_content(model="gemini-2.5-flash", contents="think")
    text = "".join(c.text or "" for c in client.models.generate_content_stream(
        model="gemini-2.5-flash", contents="count"))
    assert text == "1\n2\n3\n4\n5"
    plain, streamed = _flushed(aforo, aforo_server)
    assert (plain["eventId"], plain["inputTokens"], plain["outputTokens"],
            plain["reasoningTokens"]) == ("gemini:iHIZaqGILdbMvdIPt6ussAQ", 27, 2549, 1546)
    assert (streamed["eventId"], streamed["inputTokens"], streamed["outputTokens"],
            streamed["reasoningTokens"]) == ("gemini:h3IZapK5NI_hxs0P2p2dqQQ", 14, 38, 29)


def test_mistral_complete_and_stream(provider, aforo_server, aforo):
    from mistralai.client import Mistral

    body = fixture_response("mistral_native/03_tool_use.json")
    chunks = [c["data"] for c in fixture_response("mistral_native/05_stream.json")["chunks"]]

    def answer(request):
        if request["json"].get("stream"):
            return Answer(sse=_sse(chunks) + ["data: [DONE]"])
        return Answer(200, body)

    provider.route("POST", "/v1/chat/completions", answer)
    client = meter.wrap(Mistral(api_key="m-test", server_url=provider.url), customer="cust_m")
    client.chat.complete(model="mistral-small-latest", messages=[{"role": "user",
                                                                   "content": "hi"}])
    for _ in client.chat.stream(model="mistral-small-latest",
                                messages=[{"role": "user", "content": "hi"}]):
        pass
    plain, streamed = _flushed(aforo, aforo_server)
    assert (plain["provider"], plain["inputTokens"], plain["outputTokens"],
            plain["toolCalls"]) == ("mistral", 83, 23, 1)
    assert (streamed["eventId"], streamed["inputTokens"], streamed["outputTokens"]) == (
        "mistral:c16c7be4a8104784aa4c16265a5aa416", 22, 19)


def test_bedrock_converse(provider, aforo_server, aforo):
    import boto3

    model_id = "eu.anthropic.claude-sonnet-4-6"
    provider.route("POST", f"/model/{model_id}/converse",
                   Answer(200, fixture_response(f"bedrock/converse/{model_id}.json"),
                          headers={"x-amzn-RequestId": "5f1c0d2e-req"}))
    client = meter.wrap(boto3.client("bedrock-runtime", region_name="eu-west-1",
                                     endpoint_url=provider.url, aws_access_key_id="AKIDTEST",
                                     aws_secret_access_key="secret"), customer="cust_b")
    client.converse(modelId=model_id, messages=[{"role": "user", "content": [{"text": "hi"}]}])
    [event] = _flushed(aforo, aforo_server)
    assert (event["eventId"], event["provider"], event["model"], event["inputTokens"],
            event["outputTokens"]) == ("bedrock:5f1c0d2e-req", "bedrock", model_id, 12, 36)


def test_bedrock_converse_stream_reads_the_metadata_event():
    """converse_stream's events as boto3 yields them (dicts): usage in the `metadata` event."""
    from aforo_sdk import streams

    events = [{"messageStart": {"role": "assistant"}},
              {"contentBlockStart": {"start": {"toolUse": {"toolUseId": "t1",
                                                           "name": "get_weather"}},
                                     "contentBlockIndex": 0}},
              {"contentBlockDelta": {"delta": {"toolUse": {"input": "{}"}}}},
              {"messageStop": {"stopReason": "tool_use"}},
              {"metadata": {"usage": {"inputTokens": 40, "outputTokens": 12,
                                      "cacheReadInputTokens": 1000, "totalTokens": 1052},
                            "metrics": {"latencyMs": 812}}}]
    found = streams.read_stream(events, streams.BedrockConverse("eu.amazon.nova-pro-v1:0"))
    assert (found.model, found.input_tokens, found.cached_input_tokens, found.output_tokens,
            found.tool_calls, found.provider_latency_ms) == (
        "eu.amazon.nova-pro-v1:0", 1040, 1000, 12, 1, 812)


def test_the_module_guard_uses_the_default_client(aforo_server, aforo):
    import aforo_sdk
    from aforo_sdk import RateLimited

    answers = iter([
        Answer(200, {"decision": "ALLOW", "level": "NONE", "model": "gpt-4o",
                     "downgradeTo": None, "retryAfter": None, "reason": ""}),
        Answer(429, {"decision": "THROTTLE", "level": "THROTTLE", "model": "gpt-4o-mini",
                     "downgradeTo": "gpt-4o-mini", "retryAfter": 17,
                     "reason": "over the throttle limit of 10 calls a minute"},
               headers={"Retry-After": "17"})])
    aforo_server.route("POST", "/api/v1/margin-guard/decide", lambda request: next(answers))
    assert aforo_sdk.guard("cust_1", "prod_chat", "gpt-4o") == "gpt-4o"
    with pytest.raises(RateLimited) as limited:
        aforo_sdk.guard("cust_1", "prod_chat", "gpt-4o")
    assert limited.value.retry_after == 17


def test_a_wrapped_client_outside_any_scope_keeps_no_memory(provider, aforo_server, aforo):
    from openai import OpenAI

    provider.route("POST", "/v1/chat/completions",
                   Answer(200, fixture_response("openai_native/01_plain_chat.json")))
    client = meter.wrap(OpenAI(api_key="sk-test", base_url=f"{provider.url}/v1"))
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert client._aforo_scope.recorded is None
    assert len(_flushed(aforo, aforo_server)) == 3
