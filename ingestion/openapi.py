"""The OpenAPI description of POST /api/v1/events (an async Django view DRF cannot introspect)."""
from __future__ import annotations

from ingestion.schema import Event, camel

_INT = {"type": "integer", "minimum": 0}
_MONEY = {"oneOf": [{"type": "number"}, {"type": "string"}], "minimum": 0,
          "description": "USD, at most 9 decimals, below 10^9"}
_TYPES = {"occurred_at": {"type": "string", "format": "date-time",
                          "description": "Default now; at most 5 minutes ahead, within retention"},
          "quantity": {"oneOf": [{"type": "number"}, {"type": "string"}]}}


def _event_schema() -> dict:
    properties = {}
    for name in Event.__struct_fields__:
        if name in _TYPES:
            properties[camel(name)] = _TYPES[name]
        elif name.endswith("_usd"):
            properties[camel(name)] = _MONEY
        elif name.endswith(("_tokens", "_calls", "_steps")):
            properties[camel(name)] = _INT
        else:
            properties[camel(name)] = {"type": "string", "maxLength": 200,
                                       "nullable": name != "event_id"}
    return {"type": "object", "required": ["eventId"], "properties": properties}


_RESULT = {"type": "object", "properties": {
    "eventId": {"type": "string", "nullable": True},
    "status": {"type": "string", "enum": ["accepted", "duplicate", "rejected"]},
    "field": {"type": "string", "nullable": True}, "reason": {"type": "string"}}}
_REPLY = {"type": "object", "properties": {
    "accepted": {"type": "integer"}, "duplicates": {"type": "integer"},
    "rejected": {"type": "integer"}, "results": {"type": "array", "items": _RESULT}}}
_ERROR = {"type": "object", "properties": {"error": {"type": "object", "properties": {
    "code": {"type": "string"}, "message": {"type": "string"},
    "field": {"type": "string", "nullable": True}}}}}


# What a 503 from an intake endpoint means and how to retry it (docs/eventstore.md, "Writes
# whose outcome is unknown").
UNAVAILABLE_503 = (
    "The event store, Redis or the database is unavailable (`error.part` names it), or "
    "(`error.code` in_flight) some events belong to an earlier write not settled yet. Nothing "
    "was written unless `error.message` says a cluster could not confirm the write; either "
    "way, retry the batch with the same event ids (Retry-After): each event lands once")
_REJECTED = {"allOf": [_ERROR, _REPLY]}
_PROBLEM = {"type": "object", "required": ["type", "title", "status", "detail", "error"],
            "properties": {
                "type": {"type": "string"}, "title": {"type": "string"},
                "status": {"type": "integer"}, "detail": {"type": "string"},
                "error": {"type": "object", "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"},
                    "field": {"type": "string", "nullable": True},
                    "events": {"type": "array", "items": {"type": "object", "properties": {
                        "eventId": {"type": "string", "nullable": True},
                        "field": {"type": "string", "nullable": True},
                        "reason": {"type": "string"}}}}}}}}



def _errors(*own: tuple[str, str]) -> dict:
    """The responses with the JSON error body: an intake endpoint's own (status, description)
    pairs and the ones every intake endpoint answers, in status order."""
    answers = sorted((*own, ("401", "No or bad token"), ("403", "No tenant or no ingest role"),
                      ("413", "Body over 5 MB"), ("503", UNAVAILABLE_503)))
    return {code: {"description": text, "content": {"application/json": {"schema": _ERROR}}}
            for code, text in answers}

def events_path() -> dict:
    event = _event_schema()
    body = {"oneOf": [event, {"type": "object", "required": ["events"], "properties": {
        "events": {"type": "array", "maxItems": 1000, "items": event}}}]}
    return {"post": {
        "operationId": "events_ingest",
        "summary": "Ingest one event or a batch of up to 1,000, each counted exactly once",
        "tags": ["events"],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": body, "examples": {
                "one": {"summary": "One event carrying its cost", "value": {
                    "eventId": "evt_a7f3k2m9", "occurredAt": "2026-06-14T18:33:00Z",
                    "customerId": "cust_acme", "productId": "prod_translation",
                    "productType": "API_WITH_AI", "provider": "Anthropic",
                    "model": "claude-sonnet-4-6", "inputTokens": 1200, "outputTokens": 300,
                    "aiCogsUsd": 0.14, "infraCogsUsd": 0.03, "feeCogsUsd": 0.01}},
                "batch": {"summary": "A batch priced from the rate card", "value": {
                    "events": [{"eventId": "evt_1", "customerId": "cust_acme",
                                "productId": "prod_chat", "provider": "OpenAI",
                                "model": "gpt-4o", "inputTokens": 800,
                                "outputTokens": 120}]}}}},
            "application/cloudevents+json": {"schema": {"type": "object"}},
            "application/cloudevents-batch+json": {"schema": {"type": "array"}}}},
        "responses": {
            "200": {"description": "Per-event results (application/json bodies)", "content": {
                "application/json": {"schema": _REPLY, "example": {
                    "accepted": 1, "duplicates": 0, "rejected": 1, "results": [
                        {"eventId": "evt_1", "status": "accepted"},
                        {"eventId": "evt_2", "status": "rejected", "field": "inputTokens",
                         "reason": "Expected `int` >= 0 - at `$.inputTokens`"}]}}}},
            "204": {"description": "CloudEvents: every event accepted or a duplicate"},
            "400": {"description": "JSON: every event rejected, or a bad batch. CloudEvents: "
                                   "some event rejected (the valid ones were written)",
                    "content": {"application/json": {"schema": _REJECTED},
                                "application/problem+json": {"schema": _PROBLEM}}},
            **_errors(("415", "Body is not JSON")),
        },
    }}


_OTLP_ANSWER = {"type": "object", "properties": {"partialSuccess": {
    "type": "object", "properties": {"rejectedSpans": {"type": "integer"},
                                     "errorMessage": {"type": "string"}}}}}


def traces_path() -> dict:
    binary = {"type": "string", "format": "binary"}
    return {"post": {
        "operationId": "otlp_traces_export",
        "summary": "OTLP/HTTP traces: spans with OpenTelemetry GenAI attributes become events",
        "description": "An ExportTraceServiceRequest, protobuf or OTLP JSON (gzip allowed). "
                       "Span id is the eventId; gen_ai.response.model (else request.model) the "
                       "model; gen_ai.system the provider; gen_ai.usage.* the tokens; the end "
                       "time occurredAt; aforo.customer_id / aforo.product_id (span or "
                       "resource attributes, unless the tenant's OTLP settings name others) "
                       "the customer and product. Spans without gen_ai.* attributes are "
                       "ignored and counted in partialSuccess.errorMessage.",
        "tags": ["events"],
        "requestBody": {"required": True, "content": {
            "application/x-protobuf": {"schema": binary},
            "application/json": {"schema": {"type": "object", "properties": {
                "resourceSpans": {"type": "array", "maxItems": 1000,
                                  "items": {"type": "object"}}}}}}},
        "responses": {
            "200": {"description": "ExportTraceServiceResponse: partialSuccess names the "
                                   "rejected spans (empty when all were taken)",
                    "content": {"application/json": {"schema": _OTLP_ANSWER},
                                "application/x-protobuf": {"schema": binary}}},
            **_errors(("400", "Not an OTLP ExportTraceServiceRequest"),
                      ("415", "Neither protobuf nor JSON")),
        },
    }}


def add_events_path(result, generator, request, public):
    """drf-spectacular postprocessing hook: the async ingest views DRF cannot introspect."""
    result["paths"]["/api/v1/events"] = events_path()
    result["paths"]["/v1/traces"] = traces_path()
    return result
