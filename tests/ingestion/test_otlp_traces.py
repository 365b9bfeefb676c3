"""POST /v1/traces: spans sent by the real opentelemetry-sdk and its OTLP/HTTP exporter (and as
OTLP JSON) to the live server become events: span id as eventId, GenAI attributes as the
model, provider and tokens, aforo.* (or the tenant's own) attributes as customer and product;
other spans are ignored and counted; rejected ones are named in partialSuccess."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest
import requests
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ingestion.models import OtlpSettings
from tests.conftest import issue_token

pytestmark = pytest.mark.django_db(transaction=True)


def _spans(resource_attributes: dict, *, bad_customer: bool = False):
    """Three spans as an app instrumented with the GenAI conventions makes them, plus an HTTP
    span that is not GenAI."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(resource_attributes))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("chat gpt-4o") as chat:
        chat.set_attributes({
            "gen_ai.operation.name": "chat", "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.cache_read.input_tokens": 200, "gen_ai.conversation.id": "sess_otel",
            "gen_ai.agent.name": "planner", "aforo.customer_id": "cust_span"})
        with tracer.start_as_current_span("execute_tool get_weather") as tool:
            tool.set_attributes({"gen_ai.operation.name": "execute_tool",
                                 "gen_ai.tool.name": "get_weather"})
    with tracer.start_as_current_span("GET /health") as http:
        http.set_attribute("http.request.method", "GET")
    with tracer.start_as_current_span("chat claude") as other:
        other.set_attributes({
            "gen_ai.system": "anthropic", "gen_ai.request.model": "claude-sonnet-4-6",
            "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5,
            "aforo.customer_id": "x" * 300 if bad_customer else "cust_span"})
    provider.shutdown()
    return memory.get_finished_spans()


def _transactions(url, token, tenant):
    today = datetime.now(timezone.utc).date().isoformat()
    reply = requests.get(f"{url}/api/v1/analytics/cogs/dashboard/transactions",
                         params={"from": today, "to": today, "size": 200},
                         headers={"Authorization": f"Bearer {token}", "X-Tenant-Id": tenant.slug},
                         timeout=30)
    assert reply.status_code == 200, reply.text
    return {row["eventId"]: row for row in reply.json()["content"]}


def test_the_otlp_exporter_sends_genai_spans_as_events(restartable_api, browser_store, tenant):
    token = issue_token(tenant, "DEVELOPER")
    headers = {"Authorization": f"Bearer {token}", "X-Tenant-Id": tenant.slug}
    spans = _spans({"service.name": "chat-api", "aforo.product_id": "prod_otel"})
    exporter = OTLPSpanExporter(endpoint=f"{restartable_api.url}/v1/traces", headers=headers)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()

    by_name = {s.name: s for s in spans}
    ids = {name: format(s.context.span_id, "016x") for name, s in by_name.items()}
    rows = _transactions(restartable_api.url, token, tenant)
    assert set(rows) == {ids["chat gpt-4o"], ids["execute_tool get_weather"], ids["chat claude"]}
    chat = rows[ids["chat gpt-4o"]]
    assert {k: chat[k] for k in ("provider", "model", "customerId", "productId", "toolName")} == {
        "provider": "openai", "model": "gpt-4o-2024-08-06", "customerId": "cust_span",
        "productId": "prod_otel", "toolName": None}
    assert rows[ids["execute_tool get_weather"]]["toolName"] == "get_weather"
    assert datetime.fromisoformat(chat["occurredAt"].replace("Z", "+00:00")) == \
        datetime.fromtimestamp(by_name["chat gpt-4o"].end_time // 10**9, timezone.utc)

    # the same spans again (an exporter's retry): nothing counts twice
    body = encode_spans(spans).SerializeToString()
    reply = requests.post(f"{restartable_api.url}/v1/traces", data=body,
                          headers={**headers, "Content-Type": "application/x-protobuf"},
                          timeout=30)
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(reply.content)
    assert answer.partial_success.rejected_spans == 0
    assert answer.partial_success.error_message == "1 spans without GenAI attributes ignored"
    assert len(_transactions(restartable_api.url, token, tenant)) == 3


def test_otlp_json_with_the_tenants_own_attribute_names(restartable_api, browser_store, tenant):
    OtlpSettings.objects.create(tenant=tenant, customer_attribute="user.id",
                                product_attribute="service.name")
    token = issue_token(tenant, "DEVELOPER")
    end = time.time_ns()
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "name": "chat", "startTimeUnixNano": str(end - 1_500_000_000),
            "endTimeUnixNano": str(end),
            "attributes": [
                {"key": "gen_ai.system", "value": {"stringValue": "anthropic"}},
                {"key": "gen_ai.request.model", "value": {"stringValue": "claude-haiku-4-5"}},
                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "13"}},
                {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 35}}]}
    rejected = {**span, "spanId": "0000000000000bad", "attributes": [
        *span["attributes"], {"key": "user.id", "value": {"stringValue": "u" * 300}}]}
    plain = {"spanId": "00000000000000aa", "name": "db", "attributes": []}
    body = {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "prod_support"}},
        {"key": "user.id", "value": {"stringValue": "cust_json"}}]},
        "scopeSpans": [{"spans": [span, rejected, plain]}]}]}
    reply = requests.post(f"{restartable_api.url}/v1/traces", json=body, timeout=30,
                          headers={"Authorization": f"Bearer {token}",
                                   "X-Tenant-Id": tenant.slug})
    assert reply.status_code == 200, reply.text
    partial = reply.json()["partialSuccess"]
    assert partial["rejectedSpans"] == 1
    assert "0000000000000bad: customerId" in partial["errorMessage"]
    assert "1 spans without GenAI attributes ignored" in partial["errorMessage"]
    [row] = _transactions(restartable_api.url, token, tenant).values()
    assert (row["eventId"], row["customerId"], row["productId"], row["provider"],
            row["model"]) == ("eee19b7ec3c1b174", "cust_json", "prod_support", "anthropic",
                              "claude-haiku-4-5")


def test_otlp_needs_a_token_and_a_known_encoding(restartable_api, tenant):
    url = f"{restartable_api.url}/v1/traces"
    assert requests.post(url, data=b"x", timeout=30).status_code == 401
    headers = {"Authorization": f"Bearer {issue_token(tenant, 'DEVELOPER')}",
               "X-Tenant-Id": tenant.slug}
    assert requests.post(url, data=b"x", headers={**headers, "Content-Type": "text/plain"},
                         timeout=30).status_code == 415
    bad = requests.post(url, data=b"\xff\xff\xff",
                        headers={**headers, "Content-Type": "application/x-protobuf"},
                        timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid"
    viewer = {"Authorization": f"Bearer {issue_token(tenant, 'VIEWER')}",
              "X-Tenant-Id": tenant.slug}
    assert requests.post(url, json={}, headers=viewer, timeout=30).status_code == 403


def test_a_request_is_bounded_in_resource_spans_and_spans():
    from ingestion.otlp import OtlpBodyError, spans_from_json

    many = {"resourceSpans": [{"scopeSpans": []}] * 1001}
    with pytest.raises(OtlpBodyError, match="1000 resourceSpans"):
        spans_from_json(json.dumps(many).encode())
    crowded = {"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "ab"}] * 10_001}]}]}
    with pytest.raises(OtlpBodyError, match="10000 spans"):
        spans_from_json(json.dumps(crowded).encode())


def test_otlp_settings_read_by_all_roles_changed_by_owners_and_admins(tenant):
    from tests.conftest import api_client

    assert api_client(tenant, "VIEWER").get("/api/v1/otlp/settings").json() == {
        "customerAttribute": "aforo.customer_id", "productAttribute": "aforo.product_id"}
    body = {"customerAttribute": "user.id"}
    assert api_client(tenant, "DEVELOPER").patch("/api/v1/otlp/settings", body,
                                                 format="json").status_code == 403
    changed = api_client(tenant, "ADMIN").patch("/api/v1/otlp/settings", body, format="json")
    assert changed.status_code == 200
    assert changed.json() == {"customerAttribute": "user.id",
                              "productAttribute": "aforo.product_id"}
    bad = api_client(tenant).patch("/api/v1/otlp/settings", {"productAttribute": "a b"},
                                   format="json")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "productAttribute"
    assert OtlpSettings.objects.get(tenant=tenant).customer_attribute == "user.id"
