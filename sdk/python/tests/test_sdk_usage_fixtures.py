"""Usage extraction on every real provider response in ../shared/reference (read in place).

Each row's counts come from reading the fixture by hand, under Aforo's rules: cached and
cache-write tokens are part of inputTokens (Anthropic and Bedrock report them beside it, so
they are added), reasoning tokens part of outputTokens (Gemini reports thoughts beside the
output, so they are added).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from aforo_sdk import streams
from aforo_sdk import usage as u
from aforo_sdk.client import build_event

REFERENCE = Path(os.environ.get("AFORO_REFERENCE_DIR",
                                Path(__file__).resolve().parents[4] / "shared" / "reference"))
FIXTURES = REFERENCE / "events" / "provider_response_fixtures"

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(),
                                reason=f"the reference fixtures are absent ({FIXTURES})")

# file: (model, response id, input, output, cached, cache write, reasoning, tool calls)
NATIVE = {
    "openai_native/01_plain_chat.json": (
        "gpt-4o-mini-2024-07-18", "chatcmpl-Dkn8rdIFbTd9EfFHjOXXA4pRjMF8R", 13, 23, 0, 0, 0, 0),
    "openai_native/02_tool_use_chat.json": (
        "gpt-4o-mini-2024-07-18", "chatcmpl-Dkn8sYZgalPsBNluUfJ7rWW80Fwh0", 60, 5, 0, 0, 0, 1),
    "openai_native/03_cache_call1_chat.json": (
        "gpt-4o-mini-2024-07-18", "chatcmpl-Dkn8troaHOR66ipcDGaytoKv6Vdmf", 3819, 20, 0, 0, 0,
        0),
    "openai_native/04_cache_call2_chat.json": (
        "gpt-4o-mini-2024-07-18", "chatcmpl-Dkn8uVrLuXJiU7Ef7z5Yix39CCOus", 3819, 20, 3712, 0,
        0, 0),
    "openai_native/05_streaming_chat.json": (
        "gpt-4o-mini-2024-07-18", "chatcmpl-Dkn8vwv6VoUsxIF5EssIBJgb3ruqv", 13, 29, 0, 0, 0, 0),
    "openai_native/06_reasoning_chat.json": (
        "o4-mini-2025-04-16", "chatcmpl-Dkn8wt8xNufUS91CnuPY3a2IUhErr", 33, 1579, 0, 0, 832, 0),
    "openai_native/07_multi_turn_chat.json": (
        "gpt-4o-mini-2024-07-18", "chatcmpl-Dkn96bNjx7tRhEKJbRCcXPVYlugPs", 34, 8, 0, 0, 0, 0),
    "openai_native/08_plain_responses.json": (
        "gpt-4o-mini-2024-07-18", "resp_0a1d246c78dc3537006a195258f9f481a1816a2d26b761d722",
        13, 19, 0, 0, 0, 0),
    "openai_native/09_tool_use_responses.json": (
        "gpt-4o-mini-2024-07-18", "resp_0c3beedd7242846a006a19525ae42881949bd176fd7d3aa90e",
        53, 6, 0, 0, 0, 1),
    "openai_native/10_reasoning_responses.json": (
        "o4-mini-2025-04-16", "resp_01686e0eda1186ad006a19525c9244819281061c5e851add1a",
        33, 981, 0, 0, 320, 0),
    "anthropic_native/01_plain_haiku.json": (
        "claude-haiku-4-5-20251001", "msg_014oRrBt8p4HqV5k5eS1RyKN", 13, 35, 0, 0, 0, 0),
    "anthropic_native/02_plain_sonnet.json": (
        "claude-sonnet-4-6", "msg_01Y3fakcdpcj6tk6FJrxV5GJ", 13, 39, 0, 0, 0, 0),
    "anthropic_native/03_tool_use.json": (
        "claude-sonnet-4-6", "msg_01FBZLSB8UduV9akqUkEtyEW", 658, 38, 0, 0, 0, 1),
    # 13 uncached + 2803 written to the 5-minute cache
    "anthropic_native/04_cache_create_5m.json": (
        "claude-sonnet-4-6", "msg_01VtgdQSaox4WMdGvHipchpn", 2816, 30, 0, 2803, 0, 0),
    # 13 uncached + 2803 read from the cache
    "anthropic_native/05_cache_read.json": (
        "claude-sonnet-4-6", "msg_011bpj3E8EKkiNzynaPfBuJu", 2816, 30, 2803, 0, 0, 0),
    # 7 uncached + 2808 written to the 1-hour cache
    "anthropic_native/06_cache_create_1h.json": (
        "claude-sonnet-4-6", "msg_01CnMDjYpfBiy7JWKyMeNWsL", 2815, 12, 0, 2808, 0, 0),
    # thinking is inside Anthropic's output_tokens and not counted apart
    "anthropic_native/07_extended_thinking.json": (
        "claude-sonnet-4-6", "msg_01EAk8qJYaKDY7YNx6hiKBta", 66, 862, 0, 0, 0, 0),
    "anthropic_native/08_stream.json": (
        "claude-haiku-4-5-20251001", "msg_01A9ASsVixqCzpb4qwbcCkd2", 13, 35, 0, 0, 0, 0),
    "anthropic_native/09_multi_turn.json": (
        "claude-haiku-4-5-20251001", "msg_01Tg1sNzgCXenQnUBLwQ8Ycr", 34, 14, 0, 0, 0, 0),
    # output = candidates + thoughts
    "gemini_native/01_plain_flash.json": (
        "gemini-2.5-flash", "gnIZaribIvXzxs0Pt-rpkAI", 7, 23 + 442, 0, 0, 442, 0),
    "gemini_native/02_tool_use.json": (
        "gemini-2.5-flash", "hnIZauLSI77zxs0Pm_iDmQY", 49, 15 + 69, 0, 0, 69, 1),
    "gemini_native/03_streaming.json": (
        "gemini-2.5-flash", "h3IZapK5NI_hxs0P2p2dqQQ", 14, 9 + 29, 0, 0, 29, 0),
    "gemini_native/04_thinking.json": (
        "gemini-2.5-flash", "iHIZaqGILdbMvdIPt6ussAQ", 27, 1003 + 1546, 0, 0, 1546, 0),
    "gemini_native/05_multi_turn.json": (
        "gemini-2.5-flash", "lHIZasOaHvu3vdIP-9KoyQQ", 22, 25 + 147, 0, 0, 147, 0),
    "mistral_native/01_plain_small.json": (
        "mistral-small-latest", "5176798e23804670a466c10526e4ce8f", 22, 19, 0, 0, 0, 0),
    "mistral_native/02_plain_large.json": (
        "mistral-large-latest", "3906eb5bc6b946ca90a7bc5e4ed46a85", 10, 19, 0, 0, 0, 0),
    "mistral_native/03_tool_use.json": (
        "mistral-small-latest", "886d52677c2143e38323bce6083ddc52", 83, 23, 0, 0, 0, 1),
    "mistral_native/04_reasoning_magistral.json": (
        "magistral-small-latest", "3530b1cf8a194427894e148c54c79d86", 54, 600, 0, 0, 0, 0),
    "mistral_native/05_stream.json": (
        "mistral-small-latest", "c16c7be4a8104784aa4c16265a5aa416", 22, 19, 0, 0, 0, 0),
    "mistral_native/06_multi_turn.json": (
        "mistral-small-latest", "85301cac304e489db12772d361d0d421", 37, 18, 0, 0, 0, 0),
    "mistral_native/07_cache_attempt_call1.json": (
        "mistral-large-latest", "07503bc413a14ca99ba9baf600787a12", 1210, 14, 0, 0, 0, 0),
    "mistral_native/07_cache_attempt_call2.json": (
        "mistral-large-latest", "86d4a560d354407ab3ddf37e8edc3c5d", 1210, 14, 0, 0, 0, 0),
}

# Bedrock Converse, by file name (the model id with ":" as "_"):
# (input, output, latencyMs from the response's metrics)
BEDROCK = {
    "eu.amazon.nova-2-lite-v1_0": (51, 29, 641),
    "eu.amazon.nova-lite-v1_0": (5, 17, 574),
    "eu.amazon.nova-micro-v1_0": (5, 26, 609),
    "eu.amazon.nova-pro-v1_0": (5, 17, 498),
    "eu.anthropic.claude-haiku-4-5-20251001-v1_0": (12, 30, 1139),
    "eu.anthropic.claude-opus-4-5-20251101-v1_0": (12, 32, 1860),
    "eu.anthropic.claude-opus-4-6-v1": (12, 35, 1900),
    "eu.anthropic.claude-opus-4-7": (21, 37, 1263),
    "eu.anthropic.claude-sonnet-4-5-20250929-v1_0": (12, 36, 1627),
    "eu.anthropic.claude-sonnet-4-6": (12, 36, 1334),
    "eu.mistral.pixtral-large-2502-v1_0": (10, 21, 629),
    "google.gemma-3-12b-it": (14, 21, 544),
    "google.gemma-3-27b-it": (14, 31, 828),
    "google.gemma-3-4b-it": (14, 19, 404),
    "minimax.minimax-m2.1": (43, 40, 519),
    "minimax.minimax-m2.5": (43, 40, 30251),
    "minimax.minimax-m2": (27, 40, 409),
    "mistral.devstral-2-123b": (9, 19, 586),
    "mistral.magistral-small-2509": (9, 24, 709),
    "mistral.ministral-3-14b-instruct": (9, 27, 324),
    "mistral.ministral-3-3b-instruct": (9, 23, 385),
    "mistral.ministral-3-8b-instruct": (9, 26, 431),
    "mistral.mistral-7b-instruct-v0_2": (15, 30, 469),
    "mistral.mistral-large-2402-v1_0": (10, 23, 729),
    "mistral.mixtral-8x7b-instruct-v0_1": (15, 35, 584),
    "mistral.voxtral-mini-3b-2507": (9, 19, 170),
    "mistral.voxtral-small-24b-2507": (9, 24, 697),
    "nvidia.nemotron-nano-12b-v2": (21, 33, 519),
    "nvidia.nemotron-nano-3-30b": (22, 22, 418),
    "nvidia.nemotron-nano-9b-v2": (18, 40, 425),
    "openai.gpt-oss-120b-1_0": (72, 40, 524),
    "openai.gpt-oss-20b-1_0": (72, 40, 479),
    "openai.gpt-oss-safeguard-120b": (72, 40, 305),
    "openai.gpt-oss-safeguard-20b": (72, 40, 502),
    "qwen.qwen3-32b-v1_0": (17, 21, 374),
    "qwen.qwen3-coder-30b-a3b-v1_0": (13, 24, 408),
    "qwen.qwen3-next-80b-a3b": (13, 26, 605),
    "qwen.qwen3-vl-235b-a22b": (13, 25, 684),
    "zai.glm-4.7-flash": (10, 27, 450),
}

PROVIDER = {"openai_native": "openai", "anthropic_native": "anthropic",
            "gemini_native": "gemini", "mistral_native": "mistral"}


def _load(relative: str) -> dict:
    return json.loads((FIXTURES / relative).read_text())


def _extract(relative: str) -> u.Usage:
    """The SDK's reading of one fixture, through the path a wrapped client takes."""
    fixture = _load(relative)
    response = fixture["_response"]
    folder = relative.split("/", 1)[0]
    if folder == "mistral_native":
        if "chunks" in response:
            return streams.read_stream(response["chunks"], streams.MistralChat())
        return u.mistral_chat(response)
    if "chunks" in response:
        acc = {"openai_native": streams.OpenAIChat, "gemini_native": streams.Gemini}[folder]
        return streams.read_stream(response["chunks"], acc())
    if "events" in response:
        return streams.read_stream(response["events"], streams.Anthropic())
    found = u.detect(response)  # by shape, as meter.record and the decorator read it
    assert found is not None, relative
    return found


def test_every_fixture_has_a_row():
    on_disk = {str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.json")}
    listed = set(NATIVE) | {f"bedrock/converse/{m}.json" for m in BEDROCK}
    assert on_disk == listed
    assert len(on_disk) == 71


@pytest.mark.parametrize("relative", sorted(NATIVE))
def test_native_fixture_usage(relative):
    model, response_id, inp, out, cached, cache_write, reasoning, tools = NATIVE[relative]
    found = _extract(relative)
    provider = PROVIDER[relative.split("/", 1)[0]]
    event = build_event(found, customer="cust_1", product="prod_chat")
    expected = {"eventId": f"{provider}:{response_id}", "provider": provider, "model": model,
                "inputTokens": inp, "outputTokens": out, "customerId": "cust_1",
                "productId": "prod_chat"}
    for name, value in (("cachedInputTokens", cached), ("cacheWriteInputTokens", cache_write),
                        ("reasoningTokens", reasoning), ("toolCalls", tools)):
        if value:
            expected[name] = value
    event.pop("occurredAt")
    assert event == expected
    assert event["inputTokens"] >= event.get("cachedInputTokens", 0) + \
        event.get("cacheWriteInputTokens", 0)
    assert event["outputTokens"] >= event.get("reasoningTokens", 0)


@pytest.mark.parametrize("stem", sorted(BEDROCK))
def test_bedrock_converse_fixture_usage(stem):
    inp, out, latency = BEDROCK[stem]
    fixture = _load(f"bedrock/converse/{stem}.json")
    model_id = fixture["_model_id"]  # the modelId the call was made with
    assert model_id.replace(":", "_") == stem
    found = u.detect(fixture["_response"], model_id)
    event = build_event(found)
    assert (event["provider"], event["model"]) == ("bedrock", model_id)
    assert (event["inputTokens"], event["outputTokens"], event["latencyMs"]) == (inp, out, latency)
    assert "cachedInputTokens" not in event and "toolCalls" not in event
    assert event["eventId"].startswith("bedrock:sdk-")  # a Converse body carries no id


def test_bedrock_cache_tokens_join_the_input():
    """Converse reports cache reads and writes beside inputTokens, as Anthropic does."""
    response = {"usage": {"inputTokens": 12, "outputTokens": 30, "cacheReadInputTokens": 2000,
                          "cacheWriteInputTokens": 500, "totalTokens": 2542},
                "output": {"message": {"content": [{"toolUse": {"name": "get_weather"}}]}},
                "ResponseMetadata": {"RequestId": "req-1"}}
    event = build_event(u.detect(response, "eu.anthropic.claude-sonnet-4-6"))
    assert (event["inputTokens"], event["cachedInputTokens"], event["cacheWriteInputTokens"],
            event["toolCalls"], event["eventId"]) == (2512, 2000, 500, 1, "bedrock:req-1")


def test_the_same_response_always_gives_the_same_event_id():
    first = build_event(_extract("openai_native/01_plain_chat.json"))
    again = build_event(_extract("openai_native/01_plain_chat.json"))
    other = build_event(_extract("openai_native/07_multi_turn_chat.json"))
    assert first["eventId"] == again["eventId"] != other["eventId"]
