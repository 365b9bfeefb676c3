"""What a provider's response says was used, read under Aforo's rules.

Aforo counts `cachedInputTokens` and `cacheWriteInputTokens` as part of `inputTokens`, and
`reasoningTokens` as part of `outputTokens`. Providers differ: OpenAI and Mistral already
include cached tokens in their input; Anthropic and Bedrock report cache reads and writes
beside the input; Gemini reports thinking tokens beside the output. Every reader takes the SDK's
objects or their plain-dict form (`model_dump()`, boto3's dicts) alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def field(obj: Any, name: str, default: Any = None) -> Any:
    """`obj[name]` for a dict, `obj.name` otherwise; None-safe."""
    if obj is None:
        return default
    value = obj.get(name) if type(obj) is dict else getattr(obj, name, None)
    return default if value is None else value


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) else 0


@dataclass
class Usage:
    provider: str
    model: str | None = None
    response_id: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_input_tokens: int = 0
    reasoning_tokens: int = 0
    tool_calls: int = 0
    provider_latency_ms: int | None = None  # what the provider reports (Bedrock's metrics)

    def fields(self) -> dict[str, Any]:
        """The event's usage fields in the ingest API's names."""
        out: dict[str, Any] = {"provider": self.provider,
                               "inputTokens": self.input_tokens,
                               "outputTokens": self.output_tokens}
        if self.model:
            out["model"] = self.model
        if self.cached_input_tokens:
            out["cachedInputTokens"] = self.cached_input_tokens
        if self.cache_write_input_tokens:
            out["cacheWriteInputTokens"] = self.cache_write_input_tokens
        if self.reasoning_tokens:
            out["reasoningTokens"] = self.reasoning_tokens
        if self.tool_calls:
            out["toolCalls"] = self.tool_calls
        return out


# --- OpenAI ---------------------------------------------------------------------------------

def openai_chat_usage(usage: Any, into: Usage) -> None:
    """Chat Completions (and Mistral's, same shape): prompt tokens include the cached ones."""
    into.input_tokens = _int(field(usage, "prompt_tokens"))
    into.output_tokens = _int(field(usage, "completion_tokens"))
    into.cached_input_tokens = _int(field(field(usage, "prompt_tokens_details"),
                                          "cached_tokens"))
    into.reasoning_tokens = _int(field(field(usage, "completion_tokens_details"),
                                       "reasoning_tokens"))


def openai_chat(response: Any, provider: str = "openai") -> Usage:
    out = Usage(provider, model=field(response, "model"), response_id=field(response, "id"))
    openai_chat_usage(field(response, "usage"), out)
    out.tool_calls = sum(len(field(field(choice, "message"), "tool_calls", ()))
                         for choice in field(response, "choices", ()))
    return out


def openai_responses(response: Any) -> Usage:
    """The Responses API: input_tokens include cached, output_tokens include reasoning."""
    usage = field(response, "usage")
    out = Usage("openai", model=field(response, "model"), response_id=field(response, "id"),
                input_tokens=_int(field(usage, "input_tokens")),
                output_tokens=_int(field(usage, "output_tokens")),
                cached_input_tokens=_int(field(field(usage, "input_tokens_details"),
                                               "cached_tokens")),
                reasoning_tokens=_int(field(field(usage, "output_tokens_details"),
                                            "reasoning_tokens")))
    out.tool_calls = sum(1 for item in field(response, "output", ())
                         if str(field(item, "type", "")).endswith("_call"))
    return out


# --- Anthropic ------------------------------------------------------------------------------

def _cache_excluded(usage: Any, into: Usage, *, input: str, read: str, write: str,
                    output: str) -> None:
    """Usage whose input count excludes cache reads and writes (Anthropic, Bedrock's Converse):
    Aforo's input_tokens adds them, and counts each on its own."""
    cached, written = _int(field(usage, read)), _int(field(usage, write))
    into.input_tokens = _int(field(usage, input)) + cached + written
    into.cached_input_tokens = cached
    into.cache_write_input_tokens = written
    into.output_tokens = _int(field(usage, output))


def anthropic_usage(usage: Any, into: Usage) -> None:
    """Anthropic's output_tokens include thinking, not split out."""
    _cache_excluded(usage, into, input="input_tokens", read="cache_read_input_tokens",
                    write="cache_creation_input_tokens", output="output_tokens")


def anthropic_message(response: Any) -> Usage:
    out = Usage("anthropic", model=field(response, "model"), response_id=field(response, "id"))
    anthropic_usage(field(response, "usage"), out)
    out.tool_calls = sum(1 for block in field(response, "content", ())
                         if field(block, "type") in ("tool_use", "server_tool_use"))
    return out


# --- Google GenAI (Gemini) ------------------------------------------------------------------

def gemini_usage(usage: Any, into: Usage) -> None:
    """Gemini counts thinking apart from the output and tool-use prompts apart from the
    prompt; the prompt count includes the cached content."""
    thoughts = _int(field(usage, "thoughts_token_count"))
    into.input_tokens = _int(field(usage, "prompt_token_count")) + \
        _int(field(usage, "tool_use_prompt_token_count"))
    into.cached_input_tokens = _int(field(usage, "cached_content_token_count"))
    into.output_tokens = _int(field(usage, "candidates_token_count")) + thoughts
    into.reasoning_tokens = thoughts


def gemini_function_calls(response: Any) -> int:
    return sum(1 for candidate in field(response, "candidates", ())
               for part in field(field(candidate, "content"), "parts", ())
               if field(part, "function_call") is not None)


def gemini_response(response: Any) -> Usage:
    out = Usage("gemini", model=field(response, "model_version"),
                response_id=field(response, "response_id"))
    gemini_usage(field(response, "usage_metadata"), out)
    out.tool_calls = gemini_function_calls(response)
    return out


# --- Mistral --------------------------------------------------------------------------------

def mistral_chat(response: Any) -> Usage:
    return openai_chat(response, provider="mistral")


# --- AWS Bedrock (Converse) -----------------------------------------------------------------

def bedrock_usage(usage: Any, into: Usage) -> None:
    """Converse's totalTokens adds the cache reads and writes its inputTokens exclude."""
    _cache_excluded(usage, into, input="inputTokens", read="cacheReadInputTokens",
                    write="cacheWriteInputTokens", output="outputTokens")


def bedrock_converse(response: Any, model_id: str | None = None) -> Usage:
    request_id = field(field(response, "ResponseMetadata"), "RequestId")
    out = Usage("bedrock", model=model_id, response_id=request_id)
    bedrock_usage(field(response, "usage"), out)
    latency = field(field(response, "metrics"), "latencyMs")
    out.provider_latency_ms = _int(latency) if latency is not None else None
    out.tool_calls = sum(1 for block in field(field(field(response, "output"), "message"),
                                              "content", ())
                         if field(block, "toolUse") is not None)
    return out


# --- any response, by its shape -------------------------------------------------------------

def detect(response: Any, model_id: str | None = None) -> Usage | None:
    """Usage from a response of any supported provider, recognised by its shape; None when
    it is not a provider response."""
    if field(response, "usage_metadata") is not None and field(response, "candidates") is not None:
        return gemini_response(response)
    usage = field(response, "usage")
    if usage is None:
        return None
    if field(usage, "inputTokens") is not None and field(response, "output") is not None:
        return bedrock_converse(response, model_id)
    if field(response, "object") == "response":
        return openai_responses(response)
    if field(response, "type") == "message" and field(usage, "input_tokens") is not None:
        return anthropic_message(response)
    if field(usage, "prompt_tokens") is not None:
        module = type(response).__module__ or ""
        return mistral_chat(response) if module.startswith("mistralai") else \
            openai_chat(response)
    return None
