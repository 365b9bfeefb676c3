"""Anomalies: events at least N× their product+model average, in groups of 20 or more."""
from __future__ import annotations

from decimal import Decimal

import pytest

from aforo.ledger import ledger_append
from aforo.models import Role
from tests.conftest import api_client
from tests.factories import cost_correction_entry, ingest

pytestmark = pytest.mark.django_db
URL = "/api/v1/analytics/cogs/dashboard/anomalies"
PERIOD = {"from": "2026-03-01", "to": "2026-03-31"}


def _event(n: str, product: str, model: str, cost: str, day: int = 10) -> dict:
    return {"eventId": n, "occurredAt": f"2026-03-{day:02d}T{int(n[-2:]) % 24:02d}:00:00Z",
            "customerId": "cust", "productId": product, "productType": "API",
            "provider": "OpenAI", "model": model, "aiCogsUsd": cost}


@pytest.fixture
def spiky(store, tenant):
    events = []
    # Group A (prod_a, m1): 19 events at 0.01, one at 0.01 corrected to 0.50, one at 0.50:
    # 21 events, 1.19 in all, average 0.056667; both big ones are 0.50 × 21 / 1.19 = 8.82×.
    events += [_event(f"a{i:02d}", "prod_a", "m1", "0.01") for i in range(19)]
    corrected = _event("acorr01", "prod_a", "m1", "0.01", day=11)
    events += [corrected, _event("aspike02", "prod_a", "m1", "0.50", day=12)]
    # Group B (prod_b, m1): 20 at 0.02, one 0.15, one 0.07: 22 events, 0.62, average
    # 0.028182; 0.15 is 5.32×, 0.07 only 2.48×.
    events += [_event(f"b{i:02d}", "prod_b", "m1", "0.02") for i in range(20)]
    events += [_event("bspike03", "prod_b", "m1", "0.15"), _event("bmid04", "prod_b", "m1",
                                                                   "0.07")]
    # Group C (prod_a, m2): 19 events with a 1.00 spike: too small a group to judge.
    events += [_event(f"c{i:02d}", "prod_a", "m2", "0.01") for i in range(18)]
    events += [_event("cspike05", "prod_a", "m2", "1.00")]
    ingest(tenant, events)
    ledger_append([cost_correction_entry(tenant, corrected, ai_cogs_usd=Decimal("0.49"))])
    return tenant


def test_anomalies_rank_by_ratio_with_the_group_average(spiky):
    body = api_client(spiky, Role.DEVELOPER).get(URL, PERIOD).json()
    assert body["totalElements"] == 3
    rows = [(r["eventId"], r["cogsUsd"], r["averageCogsUsd"], r["ratio"], r["groupEventCount"])
            for r in body["content"]]
    assert rows == [
        ("aspike02", 0.50, 0.056667, 8.82, 21),
        ("acorr01", 0.50, 0.056667, 8.82, 21),
        ("bspike03", 0.15, 0.028182, 5.32, 22),
    ]


def test_anomaly_multiplier_is_a_tenant_setting(spiky):
    owner = api_client(spiky)
    assert owner.patch("/api/v1/analytics/cogs/settings", {"anomalyMultiplier": "6"},
                       format="json").status_code == 200
    body = owner.get(URL, PERIOD).json()
    assert [r["eventId"] for r in body["content"]] == ["aspike02", "acorr01"]
    owner.patch("/api/v1/analytics/cogs/settings", {"anomalyMultiplier": "2"}, format="json")
    assert api_client(spiky).get(URL, PERIOD).json()["totalElements"] == 4  # bmid04 at 2.48×


def test_anomalies_page(spiky):
    body = api_client(spiky).get(URL, {**PERIOD, "size": 2, "page": 1}).json()
    assert [r["eventId"] for r in body["content"]] == ["bspike03"]
    assert (body["totalElements"], body["totalPages"]) == (3, 2)


def test_no_anomalies_without_a_big_enough_group(store, tenant):
    ingest(tenant, [_event(f"x{i:02d}", "p", "m", "0.01") for i in range(5)]
           + [_event("xbig99", "p", "m", "9")])
    body = api_client(tenant).get(URL, PERIOD).json()
    assert body["content"] == [] and body["totalElements"] == 0


def test_an_entry_under_another_groups_hash_is_not_shown(spiky):
    """The engine finds candidates by group hash alone; a row shown is checked against its own
    product and model. Forge what a 64-bit collision would look like: cspike05 (group C, too
    small to judge) filed under group A's hash, where 1.00 is far over A's line."""
    from datetime import datetime, timezone

    from aforo import eventstore

    group_a = eventstore.tenant_query(
        spiky.slug, "SELECT cityHash64('prod_a', 'OpenAI', 'm1') AS h FROM ledger "
        "WHERE tenant_id = %(tenant_id)s LIMIT 1")[0]["h"]
    eventstore.insert("ledger_event_costs", [{
        "tenant_id": spiky.slug, "group_hash": group_a, "cogs": Decimal("1.00"),
        "occurred_at": datetime(2026, 3, 10, 5, tzinfo=timezone.utc), "event_id": "cspike05",
        "entry_kind": "ORIGINAL", "product_id": "prod_a", "provider": "OpenAI", "model": "m1"}])
    body = api_client(spiky, Role.DEVELOPER).get(URL, PERIOD).json()
    assert [r["eventId"] for r in body["content"]] == ["aspike02", "acorr01", "bspike03"]


def test_anomalies_in_chunks_of_one_group(spiky, monkeypatch):
    """Many groups are read a chunk at a time (the SQL stays under the servers' 256 KiB);
    chunks of one give the same page as one query."""
    from cogs.queries import cost_anomalies

    client = api_client(spiky, Role.DEVELOPER)
    whole = client.get(URL, PERIOD).json()
    monkeypatch.setattr(cost_anomalies, "ANOMALY_CHUNK", 1)
    assert client.get(URL, PERIOD).json() == whole
    assert whole["totalElements"] == 3
