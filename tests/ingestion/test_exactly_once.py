"""An eventId counts once per tenant, however often and concurrently; nothing is lost."""
from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timezone

import pytest
from django.db import connection
from rest_framework.test import APIClient

from aforo import eventstore
from aforo.eventstore import ServerStore
from aforo.eventstore.migrate import migrate_eventstore
from ingestion import dedupe
from ingestion.services import events_ingest_dicts
from tests.conftest import api_client

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def _events(ids):
    return [{"eventId": f"evt_{i}", "occurredAt": NOW.isoformat(), "customerId": "c1",
             "productId": "p1", "cogsUsd": "0.001"} for i in ids]


def _ledger_counts(tenant_slug):
    return eventstore.tenant_query(
        tenant_slug,
        "SELECT count() AS entries, uniqExact(event_id) AS ids, sum(event_count) AS events, "
        "sum(unclassified_cogs_usd) AS cost FROM ledger WHERE tenant_id = %(tenant_id)s")[0]


@pytest.mark.django_db(transaction=True)
def test_eight_concurrent_senders_of_overlapping_batches_count_each_event_once(store, tenant):
    senders = 8
    universe = 600
    rng = random.Random(7)
    batches = [[rng.sample(range(universe), 150) for _ in range(3)] for _ in range(senders)]
    statuses: list[list[str]] = [[] for _ in range(senders)]
    barrier = threading.Barrier(senders)
    errors = []

    def send(n):
        try:
            barrier.wait()
            for batch in batches[n]:
                report = events_ingest_dicts(tenant=tenant, events=_events(batch), now=NOW)
                statuses[n].extend(r.status for r in report.results)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(n,)) for n in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    sent = {i for sender in batches for batch in sender for i in batch}
    accepted = sum(s.count("accepted") for s in statuses)
    assert accepted == len(sent)
    assert sum(s.count("duplicate") for s in statuses) == 8 * 3 * 150 - len(sent)
    counts = _ledger_counts(tenant.slug)
    assert counts["entries"] == counts["ids"] == counts["events"] == len(sent)


@pytest.mark.django_db(transaction=True)
def test_concurrent_http_senders_count_once(store, tenant):
    client_batches = [_events(range(k, k + 200)) for k in (0, 100, 150, 0)]
    results = []

    def send(batch):
        response = api_client(tenant, "DEVELOPER").post("/api/v1/events", {"events": batch},
                                                        format="json")
        results.append(response.json())
        connection.close()

    threads = [threading.Thread(target=send, args=(b,)) for b in client_batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r["accepted"] for r in results) == 350
    assert _ledger_counts(tenant.slug)["events"] == 350


@pytest.mark.django_db(transaction=True)
def test_resending_after_the_claims_expire_still_counts_once(store, tenant):
    assert events_ingest_dicts(tenant=tenant, events=_events(range(5)), now=NOW).count(
        "accepted") == 5
    # Forget every claim (as a Redis restart would): the ledger itself still knows.
    from ingestion import dedupe

    claims = dedupe.claims()
    if hasattr(claims, "redis"):
        claims.redis.flushdb()
    else:
        claims._state.clear()
    report = events_ingest_dicts(tenant=tenant, events=_events(range(7)), now=NOW)
    assert [r.status for r in report.results] == ["duplicate"] * 5 + ["accepted"] * 2
    assert _ledger_counts(tenant.slug)["events"] == 7


@pytest.mark.django_db(transaction=True)
def test_clickhouse_stopped_mid_stream_answers_503_and_the_retry_lands_once(
        tenant, private_clickhouse):
    store = ServerStore(private_clickhouse.url)
    migrate_eventstore(store)
    eventstore.set_default(store)
    client = api_client(tenant, "DEVELOPER")
    try:
        first = client.post("/api/v1/events", {"events": _events(range(0, 100))}, format="json")
        assert first.status_code == 200 and first.json()["accepted"] == 100
        private_clickhouse.stop()
        down = client.post("/api/v1/events", {"events": _events(range(50, 150))}, format="json")
        assert down.status_code == 503
        assert down["Retry-After"] == "5"
        assert down.json()["error"]["code"] == "event_store_unavailable"
        private_clickhouse.start()
        retry = client.post("/api/v1/events", {"events": _events(range(50, 150))},
                            format="json")
        assert retry.status_code == 200
        assert (retry.json()["accepted"], retry.json()["duplicates"]) == (50, 50)
        again = client.post("/api/v1/events", {"events": _events(range(50, 150))},
                            format="json")
        assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 100)
        counts = _ledger_counts(tenant.slug)
        assert counts["entries"] == counts["events"] == 150
    finally:
        eventstore.set_default(None)
        store.close()


def test_unauthenticated_ingest_writes_nothing(store, tenant):
    response = APIClient().post("/api/v1/events", _events([1])[0], format="json",
                                HTTP_X_TENANT_ID=tenant.slug)
    assert response.status_code == 401


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_the_claims_of_a_write_whose_outcome_is_unknown_are_kept_until_a_retry_settles_them(
        kind, settings, monkeypatch):
    """An insert that cannot tell whether it wrote (a cluster's, InsertOutcomeUnknown) keeps
    its claims: a retry soon after finds them unsettled (503 in_flight), not free; a later one
    takes them over, once, and settles them (tests/aforo/test_cluster.py does it end to end)."""
    if kind == "redis" and not settings.REDIS_URL:
        pytest.skip("no Redis")
    claims = dedupe.LocalClaims() if kind == "local" else dedupe.RedisClaims(settings.REDIS_URL)
    tenant = f"t-unknown-{time.time_ns()}"
    token = dedupe.new_claim_token()
    assert claims.try_claim(tenant, ["a", "b"], token).claimed == ["a", "b"]
    dedupe.unknown_keep(claims, tenant, ["a", "b"], ["a"], token)  # "a" was in the insert
    soon = claims.try_claim(tenant, ["a", "b"], dedupe.new_claim_token())
    assert (soon.unsettled, soon.claimed, soon.pending) == (["a"], ["b"], [])
    started = time.monotonic()
    claims.wait(tenant, ["a"], timeout=5)  # not in flight: nothing to wait for
    assert time.monotonic() - started < 5
    monkeypatch.setattr(dedupe, "SETTLE_AFTER_S", 0)
    later_token = dedupe.new_claim_token()
    later = claims.try_claim(tenant, ["a"], later_token)
    assert later.unknown == ["a"]
    assert later.stops == {}  # the error did not say where the write stopped
    assert claims.try_claim(tenant, ["a"], dedupe.new_claim_token()).pending == ["a"]
    claims.finish(tenant, ["a"], later_token, ok=True)
    assert claims.try_claim(tenant, ["a"], dedupe.new_claim_token()).duplicates == ["a"]


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_an_unknown_outcome_keeps_where_the_write_stopped_feeding_the_views(
        kind, settings, monkeypatch):
    """The FeedStop an InsertOutcomeUnknown carried rides with the kept claims, and the retry
    that takes them over gets it back (its repair feeds only the views after the stop)."""
    from aforo.eventstore.errors import FeedStop

    if kind == "redis" and not settings.REDIS_URL:
        pytest.skip("no Redis")
    claims = dedupe.LocalClaims() if kind == "local" else dedupe.RedisClaims(settings.REDIS_URL)
    tenant = f"t-stop-{time.time_ns()}"
    token = dedupe.new_claim_token()
    stop = FeedStop("127.0.0.1:9003", "ledger_daily_mv", wrote=True)
    assert claims.try_claim(tenant, ["a", "b", "c"], token).claimed == ["a", "b", "c"]
    dedupe.unknown_keep(claims, tenant, ["a", "b", "c"], ["a", "b"], token, stop)
    assert claims.try_claim(tenant, ["a"], dedupe.new_claim_token()).unsettled == ["a"]
    monkeypatch.setattr(dedupe, "SETTLE_AFTER_S", 0)
    later = claims.try_claim(tenant, ["a", "b", "c"], dedupe.new_claim_token())
    assert (later.unknown, later.claimed) == (["a", "b"], ["c"])
    assert later.stops == {"a": stop, "b": stop}
