"""Bad input is refused naming the field; a rejected event never blocks its neighbours."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ingestion.services import events_ingest_dicts
from tests.conftest import api_client

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def _event(**fields):
    return {"eventId": "evt_1", "occurredAt": NOW.isoformat(), "customerId": "c1",
            "productId": "p1", "cogsUsd": "0.01", **fields}


BAD = [
    ({"inputTokens": "12"}, "inputTokens"),
    ({"inputTokens": -1}, "inputTokens"),
    ({"toolCalls": 1.5}, "toolCalls"),
    ({"cogsUsd": "NaN"}, "cogsUsd"),
    ({"cogsUsd": "Infinity"}, "cogsUsd"),
    ({"aiCogsUsd": "-0.01", "cogsUsd": None}, "aiCogsUsd"),
    ({"cogsUsd": "0.0000000001"}, "cogsUsd"),
    ({"cogsUsd": "1000000000"}, "cogsUsd"),
    ({"eventId": "x" * 201}, "eventId"),
    ({"eventId": ""}, "eventId"),
    ({"customerId": "c" * 201}, "customerId"),
    ({"inputTokens": 10, "cachedInputTokens": 11}, "cachedInputTokens"),
    ({"outputTokens": 10, "reasoningTokens": 11}, "reasoningTokens"),
    ({"cogsUsd": "0.01", "aiCogsUsd": "0.008", "infraCogsUsd": "0.003"}, "cogsUsd"),
    ({"occurredAt": (NOW + timedelta(minutes=6)).isoformat()}, "occurredAt"),
    ({"occurredAt": (NOW - timedelta(days=401)).isoformat()}, "occurredAt"),
    ({"occurredAt": "yesterday"}, "occurredAt"),
    ({"provider": 7}, "provider"),
]


@pytest.mark.parametrize("fields,field", BAD)
def test_bad_event_is_rejected_naming_the_field(store, tenant, fields, field):
    report = events_ingest_dicts(tenant=tenant, events=[_event(**fields)], now=NOW)
    (result,) = report.results
    assert result.status == "rejected"
    assert result.field == field, result.reason
    assert result.reason
    assert report.rows == []


def test_missing_event_id_is_rejected(store, tenant):
    event = _event()
    del event["eventId"]
    (result,) = events_ingest_dicts(tenant=tenant, events=[event], now=NOW).results
    assert (result.status, result.field) == ("rejected", "eventId")


def test_trailing_zeros_beyond_nine_decimals_are_fine(store, tenant):
    report = events_ingest_dicts(tenant=tenant, events=[_event(cogsUsd="0.1000000000000")],
                                 now=NOW)
    assert report.results[0].status == "accepted"


def test_rejected_event_does_not_block_its_neighbours(store, tenant):
    events = [_event(eventId="ok_1"), _event(eventId="bad", inputTokens=-5),
              _event(eventId="ok_2")]
    report = events_ingest_dicts(tenant=tenant, events=events, now=NOW)
    assert [(r.event_id, r.status) for r in report.results] == [
        ("ok_1", "accepted"), ("bad", "rejected"), ("ok_2", "accepted")]
    assert [row["event_id"] for row in report.rows] == ["ok_1", "ok_2"]


# --- over HTTP: status codes and the body-level errors ------------------------------------

http = pytest.mark.django_db(transaction=True)


@http
def test_single_bad_event_is_a_400_naming_the_field(store, tenant):
    response = api_client(tenant, "DEVELOPER").post(
        "/api/v1/events", _event(inputTokens=-1), format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["field"] == "inputTokens"
    assert body["results"][0]["status"] == "rejected"


@http
def test_batch_answers_per_event(store, tenant):
    events = [_event(eventId="a"), _event(eventId="b", cachedInputTokens=3), _event(eventId="a")]
    response = api_client(tenant, "DEVELOPER").post("/api/v1/events", {"events": events},
                                                    format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 1, 1)
    assert body["results"][1] == {"eventId": "b", "status": "rejected",
                                  "field": "cachedInputTokens",
                                  "reason": body["results"][1]["reason"]}


@http
def test_body_over_5mb_is_413(store, tenant):
    big = b'{"events": [' + b" " * (5 * 1024 * 1024 + 10) + b"]}"
    response = api_client(tenant).post("/api/v1/events", big, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


@http
@pytest.mark.parametrize("body,content_type", [
    (b"eventId=1", "application/x-www-form-urlencoded"),
    (b"<event/>", "application/xml"),
    (b"{not json", "application/json"),
    (b'"just a string"', "application/json"),
])
def test_a_body_that_is_not_json_is_415(store, tenant, body, content_type):
    response = api_client(tenant).post("/api/v1/events", body, content_type=content_type)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


@http
def test_more_than_1000_events_is_400(store, tenant):
    events = [_event(eventId=f"e{i}") for i in range(1001)]
    response = api_client(tenant).post("/api/v1/events", {"events": events}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "events"


@http
def test_ingest_needs_an_ingest_role(store, tenant):
    for role, status in (("VIEWER", 403), ("BILLING_ADMIN", 403), ("DEVELOPER", 200)):
        response = api_client(tenant, role).post("/api/v1/events", _event(eventId=role),
                                                 format="json")
        assert response.status_code == status, role
    from rest_framework.test import APIClient

    assert APIClient().post("/api/v1/events", _event(), format="json").status_code == 401
