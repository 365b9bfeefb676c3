"""A LiteLLM callback: every completion LiteLLM makes becomes an Aforo event.

    litellm.callbacks = [AforoLogger(product="prod_chat")]

It reads LiteLLM's standard logging payload (the model, the provider, the usage in OpenAI's
shape, the cost LiteLLM computed, the end user) and `metadata["aforo"]` for the scope's other
fields (customer, product, session, agent, ...).
"""
from __future__ import annotations

import logging
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from aforo_sdk import usage as u
from aforo_sdk.client import SCOPE_FIELDS, Aforo, build_event, default_client
from aforo_sdk.usage import Usage, field

log = logging.getLogger("aforo_sdk")
NANO = Decimal("0.000000001")


def _cost(value: Any) -> float | None:
    """LiteLLM's float cost at Aforo's nine decimals (a float of at most nine decimals
    prints back exactly, so the ingest reads the decimal intended)."""
    if not isinstance(value, (int, float)) or value <= 0:
        return None
    return float(Decimal(repr(value)).quantize(NANO, rounding=ROUND_HALF_EVEN))


class AforoLogger(CustomLogger):
    """Meters LiteLLM's successful calls. `send_cost=False` leaves the pricing to Aforo's
    rate card instead of carrying LiteLLM's cost as the event's `aiCogsUsd`."""

    def __init__(self, aforo: Aforo | None = None, *, send_cost: bool = True,
                 **scope: Any) -> None:
        super().__init__()
        unknown = set(scope) - set(SCOPE_FIELDS)
        if unknown:
            raise TypeError(f"unknown fields {sorted(unknown)}")
        self.aforo = aforo
        self.send_cost = send_cost
        self.scope = scope

    def event_for(self, kwargs: dict) -> dict | None:
        """The Aforo event for one LiteLLM call, from its standard logging payload."""
        payload = kwargs.get("standard_logging_object") or {}
        if payload.get("status", "success") != "success":
            return None
        response = payload.get("response") or {}
        provider = payload.get("custom_llm_provider") or kwargs.get("custom_llm_provider") \
            or "litellm"
        usage = Usage(provider, model=field(response, "model") or payload.get("model"),
                      response_id=payload.get("id") or field(response, "id"))
        raw_usage = field(response, "usage")
        if raw_usage is not None:
            u.openai_chat_usage(raw_usage, usage)
            # LiteLLM keeps Anthropic's cache writes beside the OpenAI-shaped counts
            usage.cache_write_input_tokens = int(field(raw_usage,
                                                       "cache_creation_input_tokens", 0))
        else:
            usage.input_tokens = int(payload.get("prompt_tokens") or 0)
            usage.output_tokens = int(payload.get("completion_tokens") or 0)
        usage.tool_calls = sum(len(field(field(choice, "message"), "tool_calls", ()))
                               for choice in field(response, "choices", ()))
        params = kwargs.get("litellm_params") or {}
        metadata = params.get("metadata") or {}
        given = dict(self.scope)
        given.update({k: v for k, v in (metadata.get("aforo") or {}).items()
                      if k in SCOPE_FIELDS})
        end_user = payload.get("end_user") or kwargs.get("user") or \
            (kwargs.get("optional_params") or {}).get("user")
        if end_user and "customer" not in (metadata.get("aforo") or {}):
            given["customer"] = end_user
        if payload.get("session_id") and "session" not in given:
            given["session"] = payload["session_id"]
        latency = payload.get("response_time")
        event = build_event(usage, latency_ms=int(latency * 1000) if latency else None,
                            **given)
        cost = _cost(payload.get("response_cost")) if self.send_cost else None
        if cost is not None:
            event["aiCogsUsd"] = cost
        return event

    def _meter(self, kwargs: dict) -> None:
        try:
            event = self.event_for(kwargs)
            client = self.aforo or default_client()
            if event is not None and client is not None:
                client.record(event)
        except Exception:  # noqa: BLE001 (metering never breaks the caller's call)
            log.exception("aforo: could not meter a LiteLLM call")

    def log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._meter(kwargs)

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._meter(kwargs)
