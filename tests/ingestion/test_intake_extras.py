"""CloudEvents intake, first-sight catalog registration and the live-ledger broadcast."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from aforo import eventstore
from aforo.models import Customer, Product
from ingestion.broadcast import ledger_group
from ingestion.services import events_ingest_dicts
from tests.conftest import api_client

EXAMPLES = (Path(__file__).resolve().parents[3] / "shared" / "reference" / "events"
            / "cloudevents_openmeter" / "openmeter_examples.json")
NOW = datetime.now(timezone.utc).replace(microsecond=0)
http = pytest.mark.django_db(transaction=True)


@http
def test_openmeter_cloudevents_batch_is_accepted_as_is(store, tenant, settings):
    if not EXAMPLES.exists():
        pytest.skip("../shared/reference/events is absent")
    settings.AFORO_RETENTION_DAYS = 10_000  # the examples are from 2023
    events = json.loads(EXAMPLES.read_text())["events"]
    response = api_client(tenant, "DEVELOPER").post(
        "/api/v1/events", json.dumps(events),
        content_type="application/cloudevents-batch+json")
    assert response.status_code == 204, response.content  # OpenMeter's answer: No Content
    assert response.content == b""
    rows = eventstore.tenant_query(
        tenant.slug, "SELECT event_id, customer_id, occurred_at, model, unpriced FROM ledger "
        "WHERE tenant_id = %(tenant_id)s ORDER BY event_id")
    assert [(r["event_id"], r["customer_id"]) for r in rows] == [
        ("00001", "customer-1"), ("5c10fade-1c9e-4d6c-8275-c52c36731d3c", "customer-1")]
    assert rows[0]["occurred_at"] == datetime(2023, 1, 1, tzinfo=timezone.utc)
    assert rows[1]["model"] == "gpt-4o" and rows[1]["unpriced"] == 1  # no price imported


@http
def test_single_cloudevent_maps_id_subject_time_and_data(store, tenant):
    event = {"specversion": "1.0", "type": "llm", "id": "ce-1", "source": "app",
             "subject": "cust_ce", "time": NOW.isoformat(),
             "data": {"productId": "p1", "cogsUsd": "0.25", "inputTokens": 12}}
    response = api_client(tenant, "DEVELOPER").post(
        "/api/v1/events", json.dumps(event), content_type="application/cloudevents+json")
    assert response.status_code == 204
    assert eventstore.tenant_query(tenant.slug, "SELECT customer_id FROM ledger WHERE "
                                   "tenant_id = %(tenant_id)s AND event_id = 'ce-1'")[0][
        "customer_id"] == "cust_ce"
    again = api_client(tenant, "DEVELOPER").post(
        "/api/v1/events", json.dumps(event), content_type="application/cloudevents+json")
    assert again.status_code == 204  # a duplicate is answered as accepted, counted once
    bad = dict(event, id="ce-2", data={"inputTokens": -3})
    response = api_client(tenant, "DEVELOPER").post(
        "/api/v1/events", json.dumps(bad), content_type="application/cloudevents+json")
    assert response.status_code == 400 and response.json()["error"]["field"] == "inputTokens"
    assert response["Content-Type"] == "application/problem+json"


@http
def test_a_partly_invalid_cloudevents_batch_writes_the_valid_ones_and_names_the_others(
        store, tenant):
    def cloudevent(event_id, **data):
        return {"specversion": "1.0", "type": "llm", "id": event_id, "source": "app",
                "subject": "cust_ce", "time": NOW.isoformat(), "data": data}

    batch = [cloudevent("ok-1", cogsUsd="0.1"), cloudevent("bad-1", inputTokens=-1),
             cloudevent("ok-2", cogsUsd="0.2"), cloudevent("bad-2", cogsUsd="abc")]
    client = api_client(tenant, "DEVELOPER")
    response = client.post("/api/v1/events", json.dumps(batch),
                           content_type="application/cloudevents-batch+json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["title"]) == (400, "Bad Request")
    assert "2 of 4" in problem["detail"]
    assert [(e["eventId"], e["field"]) for e in problem["error"]["events"]] == [
        ("bad-1", "inputTokens"), ("bad-2", "cogsUsd")]
    # the client fixes the two and sends the whole batch again: each event lands once
    batch[1]["data"], batch[3]["data"] = {"cogsUsd": "0.3"}, {"cogsUsd": "0.4"}
    assert client.post("/api/v1/events", json.dumps(batch),
                       content_type="application/cloudevents-batch+json").status_code == 204
    rows = eventstore.tenant_query(tenant.slug, "SELECT event_id, sum(event_count) AS n FROM "
                                   "ledger WHERE tenant_id = %(tenant_id)s GROUP BY event_id "
                                   "ORDER BY event_id")
    assert [(r["event_id"], r["n"]) for r in rows] == [("bad-1", 1), ("bad-2", 1), ("ok-1", 1),
                                                      ("ok-2", 1)]


def test_customers_and_products_are_registered_on_first_sight(store, tenant):
    events_ingest_dicts(tenant=tenant, now=NOW, events=[
        {"eventId": "e1", "customerId": "cust_new", "productId": "prod_new",
         "productType": "AI_AGENT", "cogsUsd": "0.1"},
        {"eventId": "e2", "customerId": "cust_new", "productId": "prod_odd",
         "productType": "SOMETHING", "cogsUsd": "0.1"},
    ])
    assert list(Customer.objects.filter(tenant=tenant).values_list("external_id", flat=True)) \
        == ["cust_new"]
    types = dict(Product.objects.filter(tenant=tenant).values_list("external_id", "product_type"))
    assert types == {"prod_new": "AI_AGENT", "prod_odd": "OTHER"}


def test_accepted_events_are_sent_to_the_tenants_group(store, tenant):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(ledger_group(tenant.slug), channel)
    try:
        events_ingest_dicts(tenant=tenant, now=NOW, events=[
            {"eventId": "live-1", "customerId": "c", "productId": "p", "aiCogsUsd": "0.5",
             "feeCogsUsd": "0.25"},
            {"eventId": "bad", "inputTokens": -1},
        ])
        message = async_to_sync(layer.receive)(channel)
    finally:
        async_to_sync(layer.group_discard)(ledger_group(tenant.slug), channel)
    assert message["type"] == "ledger.events"
    (event,) = message["events"]
    assert event["eventId"] == "live-1"
    assert (event["cogsUsd"], event["aiCogsUsd"], event["feeCogsUsd"]) == (
        "0.750000000", "0.500000000", "0.250000000")
    assert event["revenueStatus"] == "SETTLING"
