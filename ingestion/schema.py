"""The event schema and its validation: msgspec on the hot path, one verdict per event.

A batch is decoded once into raw per-event slices, then each event is decoded and checked on
its own, so a rejected event never blocks its valid neighbours.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated

import msgspec

MAX_BATCH = 1000
MAX_ID = 200
MAX_COUNT = 10**15
MAX_LATENCY_MS = 2**32 - 1  # the ledger's UInt32
MONEY_LIMIT = Decimal(10) ** 9
MONEY_PLACES = 9
NANO = Decimal(1).scaleb(-MONEY_PLACES)
FUTURE_TOLERANCE = timedelta(minutes=5)

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID)]
Name = Annotated[str, msgspec.Meta(max_length=MAX_ID)]
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]


class Event(msgspec.Struct, rename="camel", omit_defaults=True):
    """One metered event as producers send it (API.md, Ingestion)."""

    event_id: Id
    occurred_at: datetime | None = None
    customer_id: Name | None = None
    product_id: Name | None = None
    product_type: Name | None = None
    provider: Name | None = None
    model: Name | None = None
    requested_model: Name | None = None
    tool_name: Name | None = None
    source_type: Name | None = None
    session_id: Name | None = None
    agent: Name | None = None
    latency_ms: Annotated[int, msgspec.Meta(ge=0, le=MAX_LATENCY_MS)] | None = None
    input_tokens: Count = 0
    output_tokens: Count = 0
    cached_input_tokens: Count = 0
    cache_write_input_tokens: Count = 0
    reasoning_tokens: Count = 0
    reasoning_steps: Count = 0
    tool_calls: Count = 0
    quantity: Decimal | None = None
    cogs_usd: Decimal | None = None
    ai_cogs_usd: Decimal | None = None
    infra_cogs_usd: Decimal | None = None
    fee_cogs_usd: Decimal | None = None
    revenue_usd: Decimal | None = None


MONEY_FIELDS = ("cogs_usd", "ai_cogs_usd", "infra_cogs_usd", "fee_cogs_usd", "revenue_usd")
PART_FIELDS = ("ai_cogs_usd", "infra_cogs_usd", "fee_cogs_usd")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


class EventRejected(Exception):
    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Batch:
    """A request body split into its events' raw JSON, and whether it was a batch at all."""

    raws: list[msgspec.Raw]
    is_batch: bool


class BodyError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


_envelope = msgspec.json.Decoder(dict[str, msgspec.Raw] | list[msgspec.Raw])
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_event_decoder = msgspec.json.Decoder(Event)
_head = msgspec.json.Decoder(dict[str, msgspec.Raw])


def split_body(body: bytes) -> Batch:
    """`{"events": [...]}`, a JSON array, or one event object."""
    try:
        top = _envelope.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise BodyError(415, "unsupported_media_type",
                        "The body is not a JSON object or array.") from None
    if isinstance(top, list):
        raws, is_batch = top, True
    elif "events" in top:
        try:
            raws = _raw_list.decode(top["events"])
        except msgspec.ValidationError:
            raise BodyError(400, "invalid", "events must be an array of events.",
                            "events") from None
        is_batch = True
    else:
        raws, is_batch = [msgspec.Raw(body)], False
    if not raws:
        raise BodyError(400, "invalid", "events is empty.", "events")
    if len(raws) > MAX_BATCH:
        raise BodyError(400, "invalid",
                        f"At most {MAX_BATCH} events per request; got {len(raws)}.", "events")
    return Batch(raws=raws, is_batch=is_batch)


def raw_event_id(raw: msgspec.Raw) -> str | None:
    """The eventId of an event that failed validation, to name it in the reply."""
    try:
        value = _head.decode(raw).get("eventId")
        return msgspec.json.decode(value) if value is not None else None
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _field_of(error: msgspec.ValidationError) -> str | None:
    text = str(error)
    marker = "- at `$."
    if marker in text:
        return text.split(marker, 1)[1].rstrip("`").split("[", 1)[0].split(".", 1)[0]
    if "missing required field `" in text:
        return text.split("missing required field `", 1)[1].split("`", 1)[0]
    return None


def _check_money(name: str, value: Decimal | None) -> None:
    if value is None:
        return
    field = camel(name)
    if not value.is_finite():
        raise EventRejected(field, f"{field} must be a finite number.")
    if value < 0:
        raise EventRejected(field, f"{field} must not be negative.")
    if value >= MONEY_LIMIT:
        raise EventRejected(field, f"{field} must be below 10^9.")
    if value.as_tuple().exponent < -MONEY_PLACES and value != value.quantize(NANO):
        raise EventRejected(field, f"{field} has more than {MONEY_PLACES} decimals.")


def event_decode(raw: msgspec.Raw, *, now: datetime, retention: timedelta) -> Event:
    """Decode and check one event; raises EventRejected naming the field and the reason."""
    try:
        event = _event_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise EventRejected(_field_of(exc), str(exc)) from None
    except msgspec.DecodeError as exc:
        raise EventRejected(None, f"malformed event: {exc}") from None
    for name in MONEY_FIELDS:
        _check_money(name, getattr(event, name))
    if event.quantity is not None:
        _check_money("quantity", event.quantity)
    if event.cached_input_tokens > event.input_tokens:
        raise EventRejected("cachedInputTokens",
                            "cachedInputTokens cannot exceed inputTokens (they are part of it).")
    if event.cached_input_tokens + event.cache_write_input_tokens > event.input_tokens:
        raise EventRejected("cacheWriteInputTokens",
                            "cachedInputTokens + cacheWriteInputTokens cannot exceed inputTokens "
                            "(both are part of it).")
    if event.reasoning_tokens > event.output_tokens:
        raise EventRejected("reasoningTokens",
                            "reasoningTokens cannot exceed outputTokens (they are part of it).")
    if event.cogs_usd is not None:
        parts = sum((getattr(event, n) or Decimal(0) for n in PART_FIELDS), Decimal(0))
        if parts > event.cogs_usd:
            raise EventRejected("cogsUsd",
                                "aiCogsUsd + infraCogsUsd + feeCogsUsd exceed cogsUsd.")
    occurred = event.occurred_at
    if occurred is None:
        event.occurred_at = now
    else:
        if occurred.tzinfo is None:
            occurred = occurred.replace(tzinfo=timezone.utc)
        occurred = occurred.astimezone(timezone.utc).replace(microsecond=0)
        if occurred > now + FUTURE_TOLERANCE:
            raise EventRejected("occurredAt", "occurredAt is more than 5 minutes in the future.")
        if occurred < now - retention:
            raise EventRejected("occurredAt",
                                f"occurredAt is older than the retention of {retention.days} days.")
        event.occurred_at = occurred
    return event
