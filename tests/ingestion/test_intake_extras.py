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
    assert response.status_code == 200, response.json()
    assert response.json()["accepted"] == 2
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
    assert response.status_code == 200
    assert response.json()["eventId"] == "ce-1" and response.json()["status"] == "accepted"
    bad = dict(event, id="ce-2", data={"inputTokens": -3})
    response = api_client(tenant, "DEVELOPER").post(
        "/api/v1/events", json.dumps(bad), content_type="application/cloudevents+json")
    assert response.status_code == 400 and response.json()["error"]["field"] == "inputTokens"


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
