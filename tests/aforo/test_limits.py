"""Bounded input: body caps (413), list caps, destination length caps, per-event ledger caps."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.conf import settings

from aforo.money import LEDGER_MAX
from ingestion.prices import model_price_create
from ingestion.services import events_ingest_dicts
from notifications.destinations import MAX_EMAIL, check_destination
from tests.conftest import api_client

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.mark.django_db
def test_a_json_body_over_the_cap_is_413_before_parsing(api):
    body = json.dumps({"name": "x" * settings.AFORO_MAX_JSON_BODY_BYTES, "period": "MONTHLY",
                       "capUsd": 1})
    response = api.generic("POST", "/api/v1/cogs/budgets", body,
                           content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.django_db(transaction=True)
def test_ingest_and_imports_keep_their_larger_cap(api, store):
    long = {name: name[0] * 200 for name in ("customerId", "productId", "sessionId", "toolName",
                                             "agent", "sourceType")}
    events = [{"eventId": f"e{i}", "cogsUsd": "0.01", **long} for i in range(1000)]
    body = json.dumps({"events": events})
    assert settings.AFORO_MAX_JSON_BODY_BYTES < len(body) < settings.AFORO_MAX_BODY_BYTES
    response = api.generic("POST", "/api/v1/events", body, content_type="application/json")
    assert response.status_code == 200, response.content[:200]
    assert response.json()["accepted"] == 1000


@pytest.mark.django_db
def test_lists_and_maps_have_caps(api):
    policy = {"name": "p", "scope": "TENANT", "premiumFeatures": ["f"] * 201}
    response = api.post("/api/v1/margin-guard/policies", policy, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "premiumFeatures"
    policy = {"name": "p", "scope": "TENANT",
              "downgradeMap": {f"m{i}": "small" for i in range(201)}}
    response = api.post("/api/v1/margin-guard/policies", policy, format="json")
    assert response.json()["error"]["field"] == "downgradeMap"
    lines = [{"lineId": f"l{i}", "amountUsd": "1", "unit": "FLAT"} for i in range(1001)]
    response = api.post("/api/v1/billing/invoices", {
        "invoiceId": "i", "customerId": "c", "periodStart": "2026-01-01",
        "periodEnd": "2026-02-01", "lines": lines}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "lines"


def _request_arrays(schema: dict, where: str):
    """Every array or map in a request schema, with where it is, resolving $refs."""
    components = _SCHEMA["components"]["schemas"]
    seen = set()

    def walk(node, path):
        if not isinstance(node, dict):
            return
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[1]
            if name not in seen:
                seen.add(name)
                yield from walk(components[name], f"{path}->{name}")
            return
        if node.get("type") == "array":
            yield path, "maxItems" in node
        if isinstance(node.get("additionalProperties"), dict):
            yield path, "maxProperties" in node
        for key in ("properties",):
            for name, child in (node.get(key) or {}).items():
                yield from walk(child, f"{path}.{name}")
        for key in ("items", "additionalProperties"):
            yield from walk(node.get(key), f"{path}[]")
        for key in ("oneOf", "anyOf", "allOf"):
            for child in node.get(key) or []:
                yield from walk(child, path)

    yield from walk(schema, where)


_SCHEMA: dict = {}


@pytest.mark.django_db
def test_every_list_and_map_in_every_request_body_has_a_cap(client):
    _SCHEMA.update(client.get("/api/schema/?format=json").json())
    found = []
    for path, item in _SCHEMA["paths"].items():
        for method, operation in item.items():
            for media, content in (operation.get("requestBody", {}).get("content") or {}).items():
                if media == "application/cloudevents-batch+json":
                    continue  # the body is the batch: capped at 1,000 events like /events
                found += list(_request_arrays(content["schema"], f"{method} {path} {media}"))
    assert found, "no request lists found at all"
    uncapped = sorted({where for where, capped in found if not capped})
    assert not uncapped


@pytest.mark.django_db
def test_a_megabyte_email_is_refused_by_its_length_before_any_pattern():
    with pytest.raises(Exception) as refused:
        check_destination("EMAIL", "a" * 1_000_000 + "@example.com")
    assert "longer than" in str(refused.value)
    with pytest.raises(Exception) as refused:
        check_destination("EMAIL", "a" * (MAX_EMAIL - 11) + "@example.com")
    assert "longer than" in str(refused.value)
    check_destination("EMAIL", "ops@example.com")


@pytest.mark.django_db
def test_an_event_costing_more_than_the_ledger_holds_is_rejected_alone(store, tenant,
                                                                       other_tenant):
    model_price_create(tenant=tenant, provider="P", model="huge", effective_from=NOW -
                       timedelta(days=1), input_per_1m=Decimal(1000), output_per_1m=Decimal(1))
    at = (NOW - timedelta(minutes=1)).isoformat()
    big = {"eventId": "big", "occurredAt": at, "customerId": "c", "productId": "p",
           "provider": "P", "model": "huge", "inputTokens": 10**15}
    fine = {"eventId": "fine", "occurredAt": at, "customerId": "c", "productId": "p",
            "provider": "P", "model": "huge", "inputTokens": 1000}
    report = events_ingest_dicts(tenant=tenant, events=[big, fine], now=NOW)
    results = {r.event_id: r for r in report.results}
    assert results["fine"].status == "accepted"
    assert (results["big"].status, results["big"].field) == ("rejected", "aiCogsUsd")
    assert f"{LEDGER_MAX:f}" in results["big"].reason
    assert [r["event_id"] for r in report.rows] == ["fine"]
    # the rejected event's claim was released: fixed and sent again, it lands once
    again = events_ingest_dicts(tenant=tenant, events=[{**big, "inputTokens": 10}], now=NOW)
    assert again.results[0].status == "accepted"
    # and another tenant's ingest right after is untouched
    other = events_ingest_dicts(tenant=other_tenant, events=[{**fine, "eventId": "o"}],
                                now=NOW)
    assert other.results[0].status == "accepted"


@pytest.mark.django_db(transaction=True)
def test_the_api_answers_400_naming_the_field_when_every_event_is_over_the_cap(store, tenant):
    at = (NOW - timedelta(minutes=1)).isoformat()
    carried = {"eventId": "sum", "occurredAt": at, "aiCogsUsd": "999999999",
               "infraCogsUsd": "999999999"}
    response = api_client(tenant).post("/api/v1/events", carried, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "cogsUsd"


@pytest.mark.django_db
def test_string_fields_still_refuse_surrogates_and_overlong_values_with_a_400(api):
    for name in ('"ok\\ud800"', json.dumps("x" * 1_000_000)):  # a JSON-escaped lone surrogate
        body = '{"name": ' + name + ', "period": "MONTHLY", "capUsd": 1}'
        response = api.generic("POST", "/api/v1/cogs/budgets", body,
                               content_type="application/json")
        assert response.status_code == 400
        assert response.json()["error"]["field"] == "name"


def _answer_to(url: str, head: str, chunks=()) -> tuple[bytes, int]:
    """Send a request's head, then `chunks` (of a chunked body) until the server answers;
    (its answer, the body bytes sent before it)."""
    import select
    import socket
    from urllib.parse import urlparse

    where = urlparse(url)
    sent = 0
    with socket.create_connection((where.hostname, where.port), timeout=15) as sock:
        sock.sendall(head.encode())
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        select.select([sock], [], [], 15)
        return sock.recv(65536), sent


def test_a_body_over_every_cap_is_refused_before_the_server_reads_it(live_api_url):
    """Under ASGI, Django reads a whole body before any middleware: the ceiling in front of it
    answers 413 on the declared length, without waiting for a byte of the body."""
    declared = 20 * settings.AFORO_MAX_BODY_BYTES
    answer, _sent = _answer_to(
        live_api_url, f"POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"payload_too_large" in answer


def test_a_chunked_body_is_refused_once_it_passes_every_cap(live_api_url):
    chunk = b"x" * (256 * 1024)
    answer, sent = _answer_to(
        live_api_url, "POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        chunks=[chunk] * (8 * settings.AFORO_MAX_BODY_BYTES // len(chunk)))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"payload_too_large" in answer
    # Answered once the body passed the cap, not after all 8 times the cap was sent.
    assert sent < 2 * settings.AFORO_MAX_BODY_BYTES
