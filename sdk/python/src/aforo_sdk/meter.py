"""`@meter(product=..., customer=...)` and `meter.wrap(client)`: every provider call made in a
metered scope, or through a wrapped client, becomes one Aforo event.

The scope (customer, product, session, agent, ...) lives in a context variable, so it follows
threads' and asyncio tasks' own call stacks. A wrapped client reads usage from each response
or stream; the decorator also meters a provider response its function returns, unless a
wrapped client already did.
"""
from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from aforo_sdk import client as client_module
from aforo_sdk import streams
from aforo_sdk import usage as u
from aforo_sdk.client import Aforo
from aforo_sdk.usage import Usage

log = logging.getLogger("aforo_sdk")

SCOPE_NAMES = ("customer", "product", "session", "agent", "product_type", "source_type", "tool")


@dataclass(frozen=True)
class Scope:
    customer: Any = None
    product: Any = None
    session: Any = None
    agent: Any = None
    product_type: Any = None
    source_type: Any = None
    tool: Any = None
    aforo: Aforo | None = None
    guard: bool = False
    # ids of the responses metered inside an open `meter(...)` scope (None outside one), so
    # the decorator does not meter a returned response a wrapped client already metered
    recorded: set | None = field(default=None, compare=False)

    def merged(self, inner: Scope) -> Scope:
        """`inner` over self: an inner scope's values win where it sets them."""
        values = {n: getattr(inner, n) if getattr(inner, n) is not None else getattr(self, n)
                  for n in SCOPE_NAMES}
        return Scope(**values, aforo=inner.aforo or self.aforo, guard=inner.guard or self.guard,
                     recorded=inner.recorded)

    def dimensions(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in SCOPE_NAMES if getattr(self, n) is not None}


_current: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("aforo_scope",
                                                                       default=None)
_warned_no_client = False


def current_scope() -> Scope:
    return _current.get() or Scope()


def _client(scope: Scope) -> Aforo | None:
    global _warned_no_client
    chosen = scope.aforo or client_module.default_client()
    if chosen is None and not _warned_no_client:
        _warned_no_client = True
        log.warning("aforo: no client (make Aforo(...) or set AFORO_BASE_URL); "
                    "provider calls are not metered")
    return chosen


def _record(scope: Scope, usage: Usage, started: float, *, requested_model: str | None = None,
            response: Any = None) -> None:
    aforo = _client(scope)
    if aforo is None:
        return
    if response is not None and scope.recorded is not None:
        scope.recorded.add(id(response))
    try:
        aforo.record_usage(usage, latency_ms=int((time.perf_counter() - started) * 1000),
                           requested_model=requested_model, **scope.dimensions())
    except Exception:  # noqa: BLE001 (metering never breaks the caller's call)
        log.exception("aforo: could not record a provider call")


class _Metered:
    """What `meter(...)` returns: a decorator and a context manager at once."""

    def __init__(self, scope: Scope, resolvers: dict[str, Callable]) -> None:
        self.scope = scope
        self.resolvers = resolvers  # scope values given as callables of the function's args
        self._tokens: list = []

    def _enter(self, args: tuple = (), kwargs: dict | None = None) -> contextvars.Token:
        scope = self.scope
        if self.resolvers:
            scope = replace(scope, **{n: f(*args, **(kwargs or {}))
                                      for n, f in self.resolvers.items()})
        outer = _current.get()
        scope = outer.merged(scope) if outer else scope
        scope = replace(scope, recorded=set())
        return _current.set(scope)

    def __enter__(self) -> Scope:
        self._tokens.append(self._enter())
        return _current.get()

    def __exit__(self, *exc: Any) -> None:
        _current.reset(self._tokens.pop())

    async def __aenter__(self) -> Scope:
        return self.__enter__()

    async def __aexit__(self, *exc: Any) -> None:
        self.__exit__(*exc)

    def __call__(self, fn: Callable) -> Callable:
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def run_async(*args, **kwargs):
                token = self._enter(args, kwargs)
                started = time.perf_counter()
                try:
                    result = await fn(*args, **kwargs)
                    _meter_returned(result, started)
                    return result
                finally:
                    _current.reset(token)
            return run_async

        @functools.wraps(fn)
        def run(*args, **kwargs):
            token = self._enter(args, kwargs)
            started = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
                _meter_returned(result, started)
                return result
            finally:
                _current.reset(token)
        return run


def _meter_returned(result: Any, started: float) -> None:
    scope = current_scope()
    if result is None or (scope.recorded is not None and id(result) in scope.recorded):
        return
    found = u.detect(result)
    if found is not None:
        _record(scope, found, started, response=result)


# --- wrapped clients -----------------------------------------------------------------------

@dataclass(frozen=True)
class Method:
    """How to meter one client method."""

    read: Callable[[Any, dict], Usage]           # (response, kwargs) -> usage
    stream: Callable[[dict], streams.Accumulator] | None = None  # kwargs -> accumulator
    is_stream: Callable[[dict], bool] = lambda kwargs: bool(kwargs.get("stream"))
    model_param: str = "model"
    prepare: Callable[[dict], None] | None = None  # adjusts kwargs before the call
    stream_key: str | None = None  # the response's stream is under this key (boto3)
    manager: bool = False  # the call returns a stream manager (Anthropic's messages.stream)


def _openai_chat_prepare(kwargs: dict) -> None:
    # The final usage chunk comes only when asked for.
    if kwargs.get("stream") and "stream_options" not in kwargs:
        kwargs["stream_options"] = {"include_usage": True}


OPENAI_CHAT = Method(read=lambda r, k: u.openai_chat(r),
                     stream=lambda k: streams.OpenAIChat(k.get("model")),
                     prepare=_openai_chat_prepare)
OPENAI_RESPONSES = Method(read=lambda r, k: u.openai_responses(r),
                          stream=lambda k: streams.OpenAIResponses(k.get("model")))
ANTHROPIC_MESSAGES = Method(read=lambda r, k: u.anthropic_message(r),
                            stream=lambda k: streams.Anthropic(k.get("model")))
ANTHROPIC_STREAM_HELPER = Method(read=lambda r, k: u.anthropic_message(r), manager=True)
GEMINI = Method(read=lambda r, k: u.gemini_response(r),
                stream=lambda k: streams.Gemini(k.get("model")), is_stream=lambda k: False)
GEMINI_STREAM = Method(read=lambda r, k: u.gemini_response(r),
                       stream=lambda k: streams.Gemini(k.get("model")),
                       is_stream=lambda k: True)
MISTRAL = Method(read=lambda r, k: u.mistral_chat(r), is_stream=lambda k: False)
MISTRAL_STREAM = Method(read=lambda r, k: u.mistral_chat(r),
                        stream=lambda k: streams.MistralChat(k.get("model")),
                        is_stream=lambda k: True)
BEDROCK = Method(read=lambda r, k: u.bedrock_converse(r, k.get("modelId")),
                 is_stream=lambda k: False, model_param="modelId")
BEDROCK_STREAM = Method(read=lambda r, k: u.bedrock_converse(r, k.get("modelId")),
                        stream=lambda k: streams.BedrockConverse(k.get("modelId")),
                        is_stream=lambda k: True, model_param="modelId", stream_key="stream")

# Paths from the client object to the methods metered, per SDK (sync and async clients alike).
CLIENTS: dict[str, dict[str, Method]] = {
    "openai": {"chat.completions.create": OPENAI_CHAT, "chat.completions.parse": OPENAI_CHAT,
               "responses.create": OPENAI_RESPONSES, "responses.parse": OPENAI_RESPONSES},
    "anthropic": {"messages.create": ANTHROPIC_MESSAGES,
                  "messages.stream": ANTHROPIC_STREAM_HELPER},
    "google": {"models.generate_content": GEMINI,
               "models.generate_content_stream": GEMINI_STREAM,
               "aio.models.generate_content": GEMINI,
               "aio.models.generate_content_stream": GEMINI_STREAM},
    "mistralai": {"chat.complete": MISTRAL, "chat.complete_async": MISTRAL,
                  "chat.stream": MISTRAL_STREAM, "chat.stream_async": MISTRAL_STREAM},
    "botocore": {"converse": BEDROCK, "converse_stream": BEDROCK_STREAM},
}


def client_kind(client: Any) -> str:
    module = type(client).__module__ or ""
    root = module.split(".", 1)[0]
    if root in CLIENTS:
        return root
    raise TypeError(f"meter.wrap does not know {type(client).__qualname__} from {module!r}; "
                    f"it wraps OpenAI, Anthropic, Google GenAI, Mistral and boto3 Bedrock "
                    f"clients")


class _Wrapped:
    """A client (or one of its resources) with the metered methods replaced."""

    def __init__(self, target: Any, methods: dict[str, Method], path: str, scope: Scope):
        self._aforo_target = target
        self._aforo_methods = methods
        self._aforo_path = path
        self._aforo_scope = scope

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._aforo_target, name)
        path = f"{self._aforo_path}.{name}" if self._aforo_path else name
        method = self._aforo_methods.get(path)
        if method is not None and callable(value):
            wrapped = _metered_call(value, method, self._aforo_scope)
        elif any(p.startswith(path + ".") for p in self._aforo_methods):
            wrapped = _Wrapped(value, self._aforo_methods, path, self._aforo_scope)
        else:
            return value
        # Kept on the instance: the next access finds it without __getattr__ (the hot path).
        self.__dict__[name] = wrapped
        return wrapped

    def __repr__(self) -> str:
        return f"<metered {self._aforo_target!r}>"


def _scope_for_call(wrapped: Scope) -> Scope:
    outer = _current.get()
    return wrapped.merged(outer) if outer is not None else wrapped


def _guard_asked(scope: Scope, method: Method, kwargs: dict):
    """(client, customer, product, requested model) when the scope asks the guard, else None."""
    if not scope.guard:
        return None
    aforo = _client(scope)
    if aforo is None or scope.customer is None:
        return None
    return aforo, str(scope.customer), _str(scope.product), kwargs.get(method.model_param)


def _guard_applied(decided: str | None, requested: str | None, method: Method,
                   kwargs: dict) -> str | None:
    """The call switched to the guard's model; the model it asked for when it changed."""
    if decided and decided != requested:
        kwargs[method.model_param] = decided
        return requested
    return None


def _guard_model(scope: Scope, method: Method, kwargs: dict) -> str | None:
    asked = _guard_asked(scope, method, kwargs)
    if asked is None:
        return None
    aforo, customer, product, requested = asked
    return _guard_applied(aforo.guard(customer, product, requested), requested, method, kwargs)


async def _guard_model_async(scope: Scope, method: Method, kwargs: dict) -> str | None:
    asked = _guard_asked(scope, method, kwargs)
    if asked is None:
        return None
    aforo, customer, product, requested = asked
    decided = await aforo.guard_async(customer, product, requested)
    return _guard_applied(decided, requested, method, kwargs)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


class _StreamManager:
    """Anthropic's `messages.stream()` manager, metered: the stream it opens accumulates the
    message, and the snapshot read when the block exits carries the id, model and usage."""

    def __init__(self, manager: Any, on_message: Callable[[Any], None]) -> None:
        self._manager = manager
        self._on_message = on_message
        self._stream = None

    def _finish(self) -> None:
        try:
            snapshot = self._stream.current_message_snapshot
        except Exception:  # noqa: BLE001 (no event arrived: nothing was billed)
            snapshot = None
        if snapshot is not None:
            self._on_message(snapshot)

    def __enter__(self):
        self._stream = self._manager.__enter__()
        return self._stream

    def __exit__(self, *exc):
        try:
            return self._manager.__exit__(*exc)
        finally:
            self._finish()

    async def __aenter__(self):
        self._stream = await self._manager.__aenter__()
        return self._stream

    async def __aexit__(self, *exc):
        try:
            return await self._manager.__aexit__(*exc)
        finally:
            self._finish()

    def __getattr__(self, name: str):
        return getattr(self._manager, name)


def _finish(scope: Scope, method: Method, kwargs: dict, response: Any, started: float,
            requested: str | None, *, is_async: bool) -> Any:
    if method.manager:
        def on_message(message: Any) -> None:
            _record(scope, method.read(message, kwargs), started, requested_model=requested)

        return _StreamManager(response, on_message)
    if method.stream is not None and method.is_stream(kwargs):
        def on_end(found: Usage, seen: bool) -> None:
            if not seen:
                log.warning("aforo: a %s stream ended before its usage arrived; not metered",
                            found.provider)
                return
            _record(scope, found, started, requested_model=requested)

        cls = streams.AsyncMeteredStream if is_async else streams.MeteredStream
        if method.stream_key:  # boto3: a dict holding the event stream
            response[method.stream_key] = cls(response[method.stream_key],
                                              method.stream(kwargs), on_end)
            return response
        return cls(response, method.stream(kwargs), on_end)
    try:
        found = method.read(response, kwargs)
    except Exception:  # noqa: BLE001
        log.exception("aforo: could not read the usage of a provider response")
        return response
    if found.model is None:
        found.model = kwargs.get(method.model_param)
    _record(scope, found, started, requested_model=requested, response=response)
    return response


def _metered_call(fn: Callable, method: Method, wrapped_scope: Scope) -> Callable:
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def call_async(*args, **kwargs):
            scope = _scope_for_call(wrapped_scope)
            if method.prepare:
                method.prepare(kwargs)
            requested = await _guard_model_async(scope, method, kwargs)
            started = time.perf_counter()
            response = await fn(*args, **kwargs)
            return _finish(scope, method, kwargs, response, started, requested, is_async=True)
        return call_async

    @functools.wraps(fn)
    def call(*args, **kwargs):
        scope = _scope_for_call(wrapped_scope)
        if method.prepare:
            method.prepare(kwargs)
        requested = _guard_model(scope, method, kwargs)
        started = time.perf_counter()
        response = fn(*args, **kwargs)
        if inspect.isawaitable(response):  # an async client whose method is not `async def`
            return _finish_later(scope, method, kwargs, response, started, requested)
        return _finish(scope, method, kwargs, response, started, requested, is_async=False)
    return call


async def _finish_later(scope, method, kwargs, pending, started, requested):
    response = await pending
    return _finish(scope, method, kwargs, response, started, requested, is_async=True)


class Meter:
    """`meter(...)` opens a metered scope; `meter.wrap(client)` meters a provider client."""

    def __call__(self, *, aforo: Aforo | None = None, guard: bool = False,
                 **values: Any) -> _Metered:
        unknown = set(values) - set(SCOPE_NAMES)
        if unknown:
            raise TypeError(f"meter() got unknown fields {sorted(unknown)}; "
                            f"it takes {', '.join(SCOPE_NAMES)}")
        resolvers = {n: v for n, v in values.items() if callable(v)}
        plain = {n: v for n, v in values.items() if not callable(v)}
        return _Metered(Scope(**plain, aforo=aforo, guard=guard), resolvers)

    def wrap(self, client: Any, *, aforo: Aforo | None = None, guard: bool = False,
             **values: Any) -> Any:
        """The client with its generating calls metered; with `guard=True` each call asks
        the guard first (the downgrade replaces the model; BLOCK raises `Blocked`)."""
        methods = CLIENTS[client_kind(client)]
        return _Wrapped(client, methods, "", Scope(**values, aforo=aforo, guard=guard))

    def record(self, response: Any, *, aforo: Aforo | None = None, model: str | None = None,
               latency_ms: int | None = None, **values: Any) -> dict | None:
        """Meter a provider response by hand (any supported provider, by its shape)."""
        found = u.detect(response, model)
        if found is None:
            raise TypeError(f"not a provider response: {type(response).__qualname__}")
        scope = current_scope().merged(Scope(**values, aforo=aforo))
        chosen = _client(scope)
        if chosen is None:
            return None
        return chosen.record_usage(found, latency_ms=latency_ms, **scope.dimensions())


meter = Meter()
