"""Usage from streams: an accumulator per provider reads each chunk as it passes, and the
metered stream records one event when the stream ends (or is closed early)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aforo_sdk import usage as u
from aforo_sdk.usage import Usage, field


class Accumulator:
    provider = ""

    def __init__(self, model_id: str | None = None) -> None:
        self.usage = Usage(self.provider, model=model_id)
        self.saw_usage = False

    def add(self, chunk: Any) -> None:
        raise NotImplementedError

    def result(self) -> Usage:
        return self.usage


class OpenAIChat(Accumulator):
    """Chat Completions chunks; usage comes in the last chunk (stream_options.include_usage).
    Mistral's stream is the same inside each event's `data`."""

    provider = "openai"

    def __init__(self, model_id: str | None = None) -> None:
        super().__init__(model_id)
        self._tools: set[tuple[int, int]] = set()

    def add(self, chunk: Any) -> None:
        chunk = field(chunk, "data", chunk) if self.provider == "mistral" else chunk
        self.usage.response_id = field(chunk, "id", self.usage.response_id)
        self.usage.model = field(chunk, "model", self.usage.model)
        for choice in field(chunk, "choices", ()):
            for call in field(field(choice, "delta"), "tool_calls", ()):
                self._tools.add((field(choice, "index", 0), field(call, "index", 0)))
        usage = field(chunk, "usage")
        if usage is not None:
            u.openai_chat_usage(usage, self.usage)
            self.saw_usage = True

    def result(self) -> Usage:
        self.usage.tool_calls = len(self._tools)
        return self.usage


class MistralChat(OpenAIChat):
    provider = "mistral"


class OpenAIResponses(Accumulator):
    """Responses API events: the `response.completed` event carries the whole response."""

    provider = "openai"

    def add(self, chunk: Any) -> None:
        response = field(chunk, "response")
        if response is not None:
            self.usage.response_id = field(response, "id", self.usage.response_id)
            self.usage.model = field(response, "model", self.usage.model)
            if field(response, "usage") is not None:
                self.usage = u.openai_responses(response)
                self.saw_usage = True


class Anthropic(Accumulator):
    """message_start carries the id, model and input usage; message_delta the running output
    count (and, lately, the input counts again)."""

    provider = "anthropic"

    def __init__(self, model_id: str | None = None) -> None:
        super().__init__(model_id)
        self._usage: dict[str, int] = {}
        self._tools = 0

    def _merge(self, usage: Any) -> None:
        for name in ("input_tokens", "output_tokens", "cache_read_input_tokens",
                     "cache_creation_input_tokens"):
            value = field(usage, name)
            if value is not None:
                self._usage[name] = value
        self.saw_usage = True

    def add(self, chunk: Any) -> None:
        kind = field(chunk, "type")
        if kind == "message_start":
            message = field(chunk, "message")
            self.usage.response_id = field(message, "id", self.usage.response_id)
            self.usage.model = field(message, "model", self.usage.model)
            self._merge(field(message, "usage"))
        elif kind == "message_delta" and field(chunk, "usage") is not None:
            self._merge(field(chunk, "usage"))
        elif kind == "content_block_start":
            if field(field(chunk, "content_block"), "type") in ("tool_use", "server_tool_use"):
                self._tools += 1

    def result(self) -> Usage:
        u.anthropic_usage(self._usage, self.usage)
        self.usage.tool_calls = self._tools
        return self.usage


class Gemini(Accumulator):
    """Each chunk may carry usage_metadata (running totals): the last one counts."""

    provider = "gemini"

    def __init__(self, model_id: str | None = None) -> None:
        super().__init__(model_id)
        self._tools = 0

    def add(self, chunk: Any) -> None:
        self.usage.response_id = field(chunk, "response_id", self.usage.response_id)
        self.usage.model = field(chunk, "model_version", self.usage.model)
        self._tools += u.gemini_function_calls(chunk)
        usage = field(chunk, "usage_metadata")
        if usage is not None:
            u.gemini_usage(usage, self.usage)
            self.saw_usage = True

    def result(self) -> Usage:
        self.usage.tool_calls = self._tools
        return self.usage


class BedrockConverse(Accumulator):
    """converse_stream events: `metadata` carries usage and metrics; toolUse blocks start in
    `contentBlockStart`."""

    provider = "bedrock"

    def __init__(self, model_id: str | None = None) -> None:
        super().__init__(model_id)
        self._tools = 0

    def add(self, chunk: Any) -> None:
        start = field(field(chunk, "contentBlockStart"), "start")
        if field(start, "toolUse") is not None:
            self._tools += 1
        metadata = field(chunk, "metadata")
        if metadata is not None:
            u.bedrock_usage(field(metadata, "usage"), self.usage)
            latency = field(field(metadata, "metrics"), "latencyMs")
            if latency is not None:
                self.usage.provider_latency_ms = int(latency)
            self.saw_usage = True

    def result(self) -> Usage:
        self.usage.tool_calls = self._tools
        return self.usage


def read_stream(chunks, accumulator: Accumulator) -> Usage:
    """Usage of a whole stream already in hand (a list of chunks)."""
    for chunk in chunks:
        accumulator.add(chunk)
    return accumulator.result()


class MeteredStream:
    """Passes a provider stream through unchanged, reading each chunk; `on_end(usage, seen)`
    runs once, when the stream is exhausted, closed or left."""

    def __init__(self, stream: Any, accumulator: Accumulator,
                 on_end: Callable[[Usage, bool], None]) -> None:
        self._stream = stream
        self._iter = None
        self._acc = accumulator
        self._on_end = on_end
        self._ended = False

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._on_end(self._acc.result(), self._acc.saw_usage)

    def __iter__(self):
        return self

    def __next__(self):
        if self._iter is None:
            self._iter = iter(self._stream)
        try:
            chunk = next(self._iter)
        except StopIteration:
            self._end()
            raise
        self._acc.add(chunk)
        return chunk

    def __enter__(self):
        if hasattr(self._stream, "__enter__"):
            self._stream.__enter__()
        return self

    def __exit__(self, *exc):
        try:
            if hasattr(self._stream, "__exit__"):
                return self._stream.__exit__(*exc)
        finally:
            self._end()

    def close(self) -> None:
        try:
            closer = getattr(self._stream, "close", None)
            if closer is not None:
                closer()
        finally:
            self._end()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)

    def __del__(self):
        try:
            self._end()
        except Exception:  # noqa: BLE001 (never raise from a finalizer)
            pass


class AsyncMeteredStream(MeteredStream):
    def __aiter__(self):
        return self

    async def __anext__(self):
        if self._iter is None:
            self._iter = self._stream.__aiter__()
        try:
            chunk = await self._iter.__anext__()
        except StopAsyncIteration:
            self._end()
            raise
        self._acc.add(chunk)
        return chunk

    async def __aenter__(self):
        if hasattr(self._stream, "__aenter__"):
            await self._stream.__aenter__()
        return self

    async def __aexit__(self, *exc):
        try:
            if hasattr(self._stream, "__aexit__"):
                return await self._stream.__aexit__(*exc)
        finally:
            self._end()

    async def aclose(self) -> None:
        try:
            closer = getattr(self._stream, "close", None) or getattr(self._stream, "aclose", None)
            if closer is not None:
                result = closer()
                if hasattr(result, "__await__"):
                    await result
        finally:
            self._end()
