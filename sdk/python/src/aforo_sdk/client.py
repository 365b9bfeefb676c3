"""The Aforo client: events go through the background batcher, the guard asks the decision
endpoint. `Aforo` for threads, `AsyncAforo` for asyncio (the same batcher; awaitable guard,
flush and close)."""
from __future__ import annotations

import asyncio
import atexit
import hashlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from aforo_sdk.batcher import Batcher, BatcherStats
from aforo_sdk.transport import Transport
from aforo_sdk.usage import Usage

log = logging.getLogger("aforo_sdk")

DECIDE_PATH = "/api/v1/margin-guard/decide"
MAX_ID = 200

_default: Aforo | None = None


class AforoError(Exception):
    pass


class Blocked(AforoError):
    """The guard answered BLOCK: do not make the call."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.reason = decision.reason
        self.reason_code = decision.reason_code
        code = f" [{decision.reason_code}]" if decision.reason_code else ""
        super().__init__(f"Aforo blocked the call for customer {decision.customer!r}"
                         f"{code}: {decision.reason or 'blocked'}")


class RateLimited(Blocked):
    """The guard's throttle rate limit is exceeded: retry after `retry_after` seconds."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision)
        self.retry_after = decision.retry_after


class GuardUnavailable(AforoError):
    """The decision endpoint did not answer (raised only with guard_fail_open=False)."""


@dataclass(frozen=True)
class Decision:
    decision: str            # ALLOW | THROTTLE | BLOCK
    model: str | None        # the model to call
    requested_model: str | None
    customer: str
    level: str | None = None
    reason: str = ""
    reason_code: str | None = None
    retry_after: int | None = None
    answered: bool = True    # False: the endpoint failed and the guard failed open

    @property
    def downgraded(self) -> bool:
        return bool(self.model and self.requested_model and self.model != self.requested_model)


def event_id(provider: str, response_id: str | None) -> str:
    """Deterministic from the provider's response id, so the same response reported twice
    counts once; a call without one (or a retried call, with its new id) is a new event."""
    if not response_id:
        return f"{provider}:sdk-{uuid.uuid4().hex}"
    candidate = f"{provider}:{response_id}"
    if len(candidate) <= MAX_ID:
        return candidate
    return f"{provider}:sha256-{hashlib.sha256(response_id.encode()).hexdigest()}"


_clock: list = [0, ""]  # the second last formatted and its text


def _now_iso() -> str:
    """Now, to the second (the ledger keeps seconds), formatted once per second."""
    second = int(time.time())
    if second != _clock[0]:
        _clock[1] = datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        _clock[0] = second
    return _clock[1]


SCOPE_FIELDS = {"customer": "customerId", "product": "productId", "session": "sessionId",
                "agent": "agent", "product_type": "productType", "source_type": "sourceType",
                "tool": "toolName"}


def build_event(usage: Usage, *, latency_ms: int | None = None,
                requested_model: str | None = None, occurred_at: str | None = None,
                **scope: Any) -> dict[str, Any]:
    """The ingest API's event for one provider call: usage, latency, the scope's fields."""
    event: dict[str, Any] = {"eventId": event_id(usage.provider, usage.response_id),
                             "occurredAt": occurred_at or _now_iso()}
    event.update(usage.fields())
    if latency_ms is None:
        latency_ms = usage.provider_latency_ms
    if latency_ms is not None:
        event["latencyMs"] = int(latency_ms)
    if requested_model:  # the guard downgraded the call from this model
        event["requestedModel"] = requested_model
    for name, value in scope.items():
        if value is None:
            continue
        key = SCOPE_FIELDS.get(name)
        if key is None:
            raise TypeError(f"unknown event field {name!r}")
        event[key] = str(value)
    return event


class Aforo:
    """`Aforo(base_url, token, tenant)`; the first one made is the default that `meter` uses."""

    def __init__(self, base_url: str, token: str, tenant: str, *, batch_size: int = 500,
                 flush_interval: float = 0.5, max_queue: int = 100_000,
                 timeout: float = 10.0, guard_timeout: float = 1.0,
                 guard_fail_open: bool = True, shutdown_timeout: float = 10.0,
                 backoff_base: float = 0.25, backoff_max: float = 30.0,
                 default: bool | None = None) -> None:
        self.transport = Transport(base_url, token, tenant, timeout=timeout)
        self.guard_transport = Transport(base_url, token, tenant, timeout=guard_timeout)
        self.guard_timeout = guard_timeout
        self.guard_fail_open = guard_fail_open
        self.batcher = Batcher(self.transport, batch_size=batch_size,
                               flush_interval=flush_interval, max_queue=max_queue,
                               backoff_base=backoff_base, backoff_max=backoff_max,
                               shutdown_timeout=shutdown_timeout)
        atexit.register(self._close_at_exit)
        global _default
        if default or (default is None and _default is None):
            _default = self

    @classmethod
    def from_env(cls, **options: Any) -> Aforo:
        """From AFORO_BASE_URL, AFORO_TOKEN and AFORO_TENANT."""
        try:
            return cls(os.environ["AFORO_BASE_URL"], os.environ["AFORO_TOKEN"],
                       os.environ["AFORO_TENANT"], **options)
        except KeyError as exc:
            raise AforoError(f"{exc.args[0]} is not set") from None

    # --- events ---------------------------------------------------------------------------

    def record(self, event: dict[str, Any]) -> bool:
        """Queue one event in the ingest API's shape; it must carry an `eventId`."""
        return self.batcher.put(event)

    def record_usage(self, usage: Usage, *, latency_ms: int | None = None,
                     requested_model: str | None = None, occurred_at: str | None = None,
                     **scope: Any) -> dict[str, Any]:
        """Build the event for one provider call and queue it; returns the event."""
        event = build_event(usage, latency_ms=latency_ms, requested_model=requested_model,
                            occurred_at=occurred_at, **scope)
        self.record(event)
        return event

    @property
    def stats(self) -> BatcherStats:
        return self.batcher.stats

    def flush(self, timeout: float | None = None) -> bool:
        """Block until what was recorded before this call was sent; False on timeout."""
        return self.batcher.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued (retrying up to the shutdown timeout), then stop."""
        self.batcher.close(timeout)
        self.transport.close()
        global _default
        if _default is self:
            _default = None

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 (never fail the interpreter's exit)
            log.exception("aforo: closing at exit failed")

    def __enter__(self) -> Aforo:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- the guard ------------------------------------------------------------------------

    def decide(self, customer: str, product: str | None = None, model: str | None = None,
               feature: str | None = None) -> Decision:
        """The decision endpoint's full answer; raises nothing for BLOCK (see `guard`)."""
        body = {"customerId": customer, "productId": product or "", "model": model or "",
                "feature": feature or ""}
        try:
            reply = self.guard_transport.post(DECIDE_PATH, json.dumps(body).encode())
            answer = reply.json() if reply.body else None
        except (OSError, ValueError) as exc:
            return self._guard_failed(customer, model, f"no answer: {exc}")
        except Exception as exc:  # noqa: BLE001 (http.client's protocol errors)
            return self._guard_failed(customer, model, f"no answer: {exc}")
        if reply.status == 400:
            message = (answer or {}).get("error", {}).get("message", "bad request")
            raise ValueError(f"the guard refused the request: {message}")
        if reply.status not in (200, 429) or not isinstance(answer, dict) \
                or "decision" not in answer:
            return self._guard_failed(customer, model, f"HTTP {reply.status}")
        retry = answer.get("retryAfter")
        if retry is None and reply.status == 429:
            retry = int(float(reply.headers.get("retry-after", "1") or 1))
        return Decision(decision=answer["decision"],
                        model=answer.get("model") or model,
                        requested_model=model, customer=customer, level=answer.get("level"),
                        reason=answer.get("reason") or "", reason_code=answer.get("reasonCode"),
                        retry_after=retry)

    def _guard_failed(self, customer: str, model: str | None, why: str) -> Decision:
        if not self.guard_fail_open:
            raise GuardUnavailable(f"the Aforo guard did not decide ({why})")
        log.warning("aforo: the guard did not decide (%s); allowing %s", why, model)
        return Decision("ALLOW", model, model, customer, reason=why, answered=False)

    def guard(self, customer: str, product: str | None = None, model: str | None = None,
              feature: str | None = None) -> str | None:
        """The model to call: `model`, or its downgrade under THROTTLE. Raises `Blocked` on
        BLOCK and `RateLimited` when the throttle's rate limit is exceeded."""
        return _verdict(self.decide(customer, product, model, feature))

    async def guard_async(self, customer: str, product: str | None = None,
                          model: str | None = None, feature: str | None = None) -> str | None:
        decision = await asyncio.to_thread(self.decide, customer, product, model, feature)
        return _verdict(decision)


def _verdict(decision: Decision) -> str | None:
    if decision.decision == "BLOCK":
        raise Blocked(decision)
    if decision.retry_after:
        raise RateLimited(decision)
    return decision.model


class AsyncAforo(Aforo):
    """The same client for asyncio code: recording never blocks (the batcher is a thread);
    `guard`, `flush` and `close` are awaitable."""

    async def guard(self, customer: str, product: str | None = None,  # type: ignore[override]
                    model: str | None = None, feature: str | None = None) -> str | None:
        return await self.guard_async(customer, product, model, feature)

    async def flush(self, timeout: float | None = None) -> bool:  # type: ignore[override]
        return await asyncio.to_thread(self.batcher.flush, timeout)

    async def aclose(self, timeout: float | None = None) -> None:
        await asyncio.to_thread(Aforo.close, self, timeout)

    async def __aenter__(self) -> AsyncAforo:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


def default_client() -> Aforo | None:
    """The default client: the first made, else one from the environment, else None."""
    global _default
    if _default is None and os.environ.get("AFORO_BASE_URL"):
        Aforo.from_env()
    return _default
