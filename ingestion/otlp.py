"""OTLP/HTTP traces in: spans that follow OpenTelemetry's GenAI semantic conventions become
events (API.md, OpenTelemetry); other spans are ignored and counted.

Both OTLP encodings arrive as the same `Span` list: protobuf through opentelemetry-proto's
generated classes, JSON by hand (OTLP's JSON differs from proto3's mapping: ids are hex, and
64-bit integers may be strings).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from aforo.models import Tenant
from ingestion.models import OtlpSettings
from ingestion.services import ACCEPTED, DUPLICATE, REJECTED, events_ingest_dicts

MAX_RESOURCE_SPANS = 1000
MAX_SPANS = 10_000  # per request; an exporter's batch is 512 by default


class OtlpBodyError(Exception):
    pass


def _check_bounds(resource_spans: int, spans: int) -> None:
    if resource_spans > MAX_RESOURCE_SPANS:
        raise OtlpBodyError(f"At most {MAX_RESOURCE_SPANS} resourceSpans per request.")
    if spans > MAX_SPANS:
        raise OtlpBodyError(f"At most {MAX_SPANS} spans per request; send smaller batches.")


@dataclass(frozen=True)
class Span:
    span_id: str  # hex
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    resource: dict[str, Any]


# --- decoding -------------------------------------------------------------------------------

def _proto_value(value) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_proto_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _proto_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def spans_from_protobuf(body: bytes) -> list[Span]:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise OtlpBodyError(f"The body is not an OTLP ExportTraceServiceRequest: {exc}") from None
    _check_bounds(len(request.resource_spans),
                  sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans))
    spans = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _proto_value(kv.value)
                    for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(Span(span.span_id.hex(), span.name, span.start_time_unix_nano,
                                  span.end_time_unix_nano,
                                  {kv.key: _proto_value(kv.value) for kv in span.attributes},
                                  resource))
    return spans


def _json_value(value: Any) -> Any:
    if not isinstance(value, dict) or not value:
        return None
    kind, inner = next(iter(value.items()))
    if kind == "intValue":
        return int(inner)
    if kind == "doubleValue":
        return float(inner)
    if kind == "arrayValue":
        return [_json_value(v) for v in (inner or {}).get("values", [])]
    if kind == "kvlistValue":
        return _json_attributes((inner or {}).get("values", []))
    return inner


def _json_attributes(items: Any) -> dict[str, Any]:
    if not isinstance(items, list):
        raise OtlpBodyError("attributes must be a list of {key, value}.")
    return {item.get("key"): _json_value(item.get("value")) for item in items
            if isinstance(item, dict) and isinstance(item.get("key"), str)}


def spans_from_json(body: bytes) -> list[Span]:
    try:
        request = json.loads(body)
    except ValueError:
        raise OtlpBodyError("The body is not JSON.") from None
    if not isinstance(request, dict):
        raise OtlpBodyError("The body must be an ExportTraceServiceRequest object.")
    spans = []
    try:
        listed = request.get("resourceSpans") or []
        if not isinstance(listed, list):
            raise OtlpBodyError("resourceSpans must be an array.")
        _check_bounds(len(listed), sum(len(ss.get("spans") or []) for rs in listed
                                       for ss in rs.get("scopeSpans") or []))
        for resource_spans in listed:
            resource = _json_attributes((resource_spans.get("resource") or {})
                                        .get("attributes") or [])
            for scope_spans in resource_spans.get("scopeSpans") or []:
                for span in scope_spans.get("spans") or []:
                    spans.append(Span(str(span.get("spanId") or "").lower(),
                                      str(span.get("name") or ""),
                                      int(span.get("startTimeUnixNano") or 0),
                                      int(span.get("endTimeUnixNano") or 0),
                                      _json_attributes(span.get("attributes") or []), resource))
    except (AttributeError, TypeError, ValueError) as exc:
        raise OtlpBodyError(f"The body is not an OTLP ExportTraceServiceRequest: {exc}") from None
    return spans


# --- spans to events ------------------------------------------------------------------------

def _first(attributes: dict[str, Any], *names: str) -> Any:
    for name in names:
        value = attributes.get(name)
        if value not in (None, ""):
            return value
    return None


def _count(attributes: dict[str, Any], *names: str) -> int:
    value = _first(attributes, *names)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def is_genai(span: Span) -> bool:
    return any(key.startswith("gen_ai.") for key in span.attributes)


@dataclass(frozen=True)
class Naming:
    """The attributes that name the customer and product (the tenant's OTLP settings)."""

    customer: str = OtlpSettings.DEFAULT_CUSTOMER
    product: str = OtlpSettings.DEFAULT_PRODUCT


def otlp_settings_get(*, tenant: Tenant) -> OtlpSettings:
    """The tenant's OTLP settings, or the defaults (unsaved) when it has none."""
    return OtlpSettings.objects.filter(tenant=tenant).first() or OtlpSettings(tenant=tenant)


def otlp_settings_update(*, tenant: Tenant, customer_attribute: str | None = None,
                         product_attribute: str | None = None) -> OtlpSettings:
    row, _created = OtlpSettings.objects.get_or_create(tenant=tenant)
    if customer_attribute is not None:
        row.customer_attribute = customer_attribute
    if product_attribute is not None:
        row.product_attribute = product_attribute
    row.save()
    return row


def naming_for(tenant: Tenant) -> Naming:
    row = otlp_settings_get(tenant=tenant)
    return Naming(row.customer_attribute, row.product_attribute)


def span_event(span: Span, naming: Naming) -> dict[str, Any]:
    """The event for one GenAI span, in the ingest API's shape (validated by the ingest)."""
    a = span.attributes
    both = {**span.resource, **a}  # a span's own attribute wins over its resource's
    input_tokens = _count(a, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
    output_tokens = _count(a, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
    cached = _count(a, "gen_ai.usage.cache_read.input_tokens",
                    "gen_ai.usage.cache_read_input_tokens")
    written = _count(a, "gen_ai.usage.cache_creation.input_tokens",
                     "gen_ai.usage.cache_creation_input_tokens")
    if cached + written > input_tokens:
        # The conventions count cache reads and writes inside input_tokens; an instrumentation
        # that reports them beside it (as Anthropic does) gets them added.
        input_tokens += cached + written
    reasoning = min(_count(a, "gen_ai.usage.reasoning.output_tokens",
                           "gen_ai.usage.reasoning_tokens"), output_tokens)
    event: dict[str, Any] = {
        "eventId": span.span_id,
        "occurredAt": datetime.fromtimestamp(span.end_ns / 1e9, timezone.utc).isoformat(),
        "provider": _first(a, "gen_ai.provider.name", "gen_ai.system"),
        "model": _first(a, "gen_ai.response.model", "gen_ai.request.model"),
        "customerId": _first(both, naming.customer),
        "productId": _first(both, naming.product),
        "sessionId": _first(both, "gen_ai.conversation.id", "session.id"),
        "agent": _first(a, "gen_ai.agent.name"),
        "inputTokens": input_tokens, "outputTokens": output_tokens,
        "cachedInputTokens": cached, "cacheWriteInputTokens": written,
        "reasoningTokens": reasoning,
    }
    if span.end_ns >= span.start_ns > 0:
        event["latencyMs"] = min((span.end_ns - span.start_ns) // 1_000_000, 2**32 - 1)
    if _first(a, "gen_ai.operation.name") == "execute_tool":
        event["toolName"] = _first(a, "gen_ai.tool.name") or span.name
        event["toolCalls"] = 1
    for key in ("customerId", "productId", "sessionId", "agent", "provider", "model"):
        if event[key] is not None:
            event[key] = str(event[key])
    return {k: v for k, v in event.items() if v is not None}


@dataclass
class TracesReport:
    received: int = 0
    ignored: int = 0      # spans without GenAI attributes
    accepted: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = None  # (span id, reason)

    def error_message(self) -> str:
        parts = []
        if self.rejected:
            named = "; ".join(f"{sid or 'a span'}: {why}" for sid, why in self.rejected[:20])
            parts.append(f"{len(self.rejected)} spans rejected ({named})")
        if self.ignored:
            parts.append(f"{self.ignored} spans without GenAI attributes ignored")
        return ". ".join(parts)


def traces_ingest(*, tenant: Tenant, spans: list[Span]) -> TracesReport:
    """Turn GenAI spans into events and ingest them; the rest are counted as ignored."""
    report = TracesReport(received=len(spans), rejected=[])
    genai = [s for s in spans if is_genai(s)]
    report.ignored = len(spans) - len(genai)
    if not genai:
        return report
    naming = naming_for(tenant)
    events = [span_event(span, naming) for span in genai]
    result = events_ingest_dicts(tenant=tenant, events=events)
    for row in result.results:
        if row.status == ACCEPTED:
            report.accepted += 1
        elif row.status == DUPLICATE:
            report.duplicates += 1
        elif row.status == REJECTED:
            report.rejected.append((row.event_id, f"{row.field}: {row.reason}"
                                    if row.field else row.reason))
    return report
