"""The live ledger consumer: session users only, and only their current tenant's events."""
from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from aforo.console import TENANT_SESSION_KEY
from aforo.tenancy import membership_set
from cogs.consumers import NO_MEMBERSHIP, UNAUTHENTICATED, LiveLedgerConsumer
from ingestion.services import events_ingest_dicts
from tests.console.conftest import hours_ago

# Consumers reach the database from other threads (database_sync_to_async): real commits.
pytestmark = pytest.mark.django_db(transaction=True)
PATH = "/ws/console/ledger/"


def event(event_id: str, **extra) -> dict:
    return {"eventId": event_id, "occurredAt": hours_ago(0), "customerId": "cust_live",
            "productId": "prod_live", "provider": "OpenAI", "model": "gpt-4o",
            "aiCogsUsd": "0.000123", "infraCogsUsd": "0.01", **extra}


def communicator(user, session: dict | None = None) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(LiveLedgerConsumer.as_asgi(), PATH)
    comm.scope["user"] = user
    comm.scope["session"] = session or {}
    return comm


def test_signed_out_and_memberless_users_are_refused(db):
    async def scenario():
        connected, code = await communicator(AnonymousUser()).connect()
        assert (connected, code) == (False, UNAUTHENTICATED)
        loner = await database_sync_to_async(get_user_model().objects.create_user)("loner")
        connected, code = await communicator(loner).connect()
        assert (connected, code) == (False, NO_MEMBERSHIP)

    async_to_sync(scenario)()


def test_new_events_of_the_current_tenant_stream_and_no_others(store, tenant, other_tenant,
                                                               member):
    membership_set(tenant=other_tenant, user=member, role="VIEWER")

    async def scenario():
        # The member acts as `tenant` (chosen in the session), though also in other_tenant.
        comm = communicator(member, {TENANT_SESSION_KEY: tenant.slug})
        connected, _ = await comm.connect()
        assert connected
        assert await comm.receive_json_from() == {"type": "hello", "tenant": tenant.slug}
        ingest = database_sync_to_async(events_ingest_dicts)
        await ingest(tenant=other_tenant, events=[event("theirs")])
        await ingest(tenant=tenant, events=[event("mine", feeCogsUsd="0.001")])
        message = await comm.receive_json_from(timeout=5)
        assert message["type"] == "events"
        [row] = message["events"]
        assert row["eventId"] == "mine" and row["customerId"] == "cust_live"
        assert (row["aiCogsUsd"], row["infraCogsUsd"], row["feeCogsUsd"]) == (
            "0.000123000", "0.010000000", "0.001000000")
        assert row["revenueStatus"] == "SETTLING"
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()

    async_to_sync(scenario)()


def test_make_demo_traffic_feeds_the_live_ledger(store, tenant, settings):
    from datetime import datetime, timedelta, timezone

    from aforo.demo import demo_rate_card, demo_traffic_send
    from aforo.tasks import demo_traffic
    from cogs import queries

    settings.AFORO_DEMO_TRAFFIC = False
    assert demo_traffic() == 0  # off unless `make demo` turns it on
    demo_rate_card(tenant, start=datetime.now(timezone.utc) - timedelta(days=1))
    assert demo_traffic_send(tenant, events=3) == 3
    rows, total = queries.transactions_page(
        tenant, queries.period_default(), queries.TransactionFilters(), offset=0, limit=10)
    assert total == 3 and all(r.event_id.startswith("evt_live_") for r in rows)
    assert all(r.cogs_usd > 0 for r in rows)  # carried or priced from the demo rate card
