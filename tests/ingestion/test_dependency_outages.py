"""Each part of the ingest path (ClickHouse, Redis, PostgreSQL) killed in the middle of a stream
of batches: every request answers 200 or 503 with Retry-After and the part's name (never 500),
and after the sender's retries every event is in the ledger exactly once.

Each test starts a private server of its own (the shared ones the rest of the suite uses stay
up): tests/clickhouse_server.py, tests/private_services.py.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone

import pytest
from django.core.cache import caches
from django.db import connection
from django.test import override_settings

from aforo import eventstore
from aforo.authentication import AUTH_MEMORY_S
from aforo.eventstore import ServerStore
from aforo.eventstore.migrate import migrate_eventstore
from aforo.shared_cache import reset_shared_cache
from aforo.tenancy import tenant_create
from ingestion import dedupe
from tests.conftest import api_client

NOW = datetime.now(timezone.utc).replace(microsecond=0)
BATCHES, SIZE, STEP = 14, 100, 50  # each batch re-sends half of the previous one
DISTINCT = (BATCHES - 1) * STEP + SIZE


def _batch(n: int) -> list[dict]:
    # A new customer per batch, so every batch needs the database (the catalog).
    return [{"eventId": f"evt_{i}", "occurredAt": NOW.isoformat(), "customerId": f"c{n}",
             "productId": "p1", "cogsUsd": "0.001"} for i in range(n * STEP, n * STEP + SIZE)]


def _ledger_counts(tenant_slug):
    return eventstore.tenant_query(
        tenant_slug,
        "SELECT count() AS entries, uniqExact(event_id) AS ids, sum(event_count) AS events, "
        "sum(unclassified_cogs_usd) AS cost FROM ledger WHERE tenant_id = %(tenant_id)s")[0]


class Stream:
    """One sender posting the batches in order, retrying each on 503 as a client should."""

    def __init__(self, client) -> None:
        self.client = client
        self.sent = 0  # batches acknowledged
        self.outages: list[dict] = []
        self.accepted = self.duplicates = 0
        self.progress = threading.Condition()

    def run(self, deadline_s: float = 600.0) -> None:
        # A guard against hanging, not a speed test: the machine may be loaded.
        give_up = time.monotonic() + deadline_s
        for n in range(BATCHES):
            while True:
                assert time.monotonic() < give_up, ("the stream did not finish", self.sent,
                                                    self.outages[-3:])
                response = self.client.post("/api/v1/events", {"events": _batch(n)},
                                            format="json")
                if response.status_code == 200:
                    body = response.json()
                    self.accepted += body["accepted"]
                    self.duplicates += body["duplicates"]
                    break
                assert response.status_code == 503, (response.status_code, response.content)
                assert int(response["Retry-After"]) > 0
                with self.progress:
                    self.outages.append(response.json()["error"])
                    self.progress.notify_all()
                time.sleep(0.05)
            with self.progress:
                self.sent += 1
                self.progress.notify_all()

    def wait_for(self, test, timeout: float = 60.0) -> None:
        with self.progress:
            assert self.progress.wait_for(lambda: test(self), timeout=timeout)


def _run_with_outage(stream: Stream, server, *, down_at_least: float = 0.0) -> None:
    """Kill `server` once three batches are in, bring it back after the sender has seen it
    down twice (and `down_at_least` seconds have passed), while the stream runs."""
    errors: list[BaseException] = []

    def outage():
        try:
            stream.wait_for(lambda s: s.sent >= 3)
            server.stop()
            stopped = time.monotonic()
            stream.wait_for(lambda s: len(s.outages) >= 2)
            time.sleep(max(0.0, down_at_least - (time.monotonic() - stopped)))
            server.start()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=outage, daemon=True)
    thread.start()
    stream.run()
    thread.join(timeout=60)
    assert not errors, errors


@pytest.fixture
def server_store(event_stores):
    if "server" not in event_stores:
        pytest.skip("CLICKHOUSE_URL is not set; `make test` starts a ClickHouse server")
    eventstore.set_default(event_stores["server"])
    yield event_stores["server"]
    eventstore.set_default(None)


@pytest.mark.django_db(transaction=True)
def test_clickhouse_killed_mid_stream_every_event_lands_once(tenant, private_clickhouse):
    store = ServerStore(private_clickhouse.url)
    migrate_eventstore(store)
    eventstore.set_default(store)
    try:
        stream = Stream(api_client(tenant, "DEVELOPER"))
        _run_with_outage(stream, private_clickhouse)
        assert stream.outages
        assert {o["part"] for o in stream.outages} == {"eventStore"}
        assert {o["code"] for o in stream.outages} == {"event_store_unavailable"}
        counts = _ledger_counts(tenant.slug)
        assert counts["entries"] == counts["ids"] == counts["events"] == DISTINCT
        # An insert cut off by the kill may have landed without its answer: its retry then
        # finds it as a duplicate, so an event is acknowledged at most once.
        assert stream.accepted <= DISTINCT
        assert stream.accepted + stream.duplicates >= BATCHES * SIZE - (BATCHES - 1) * STEP
    finally:
        eventstore.set_default(None)
        store.close()


@contextmanager
def _redis_at(url: str):
    """Claims and the shared cache (rate-card and plan versions) on the private Redis."""
    cache = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                         "LOCATION": url}}
    with override_settings(REDIS_URL=url, CACHES=cache):
        reset_shared_cache()
        dedupe._claims = dedupe.RedisClaims(url)
        try:
            yield
        finally:
            dedupe._claims = None
            reset_shared_cache()
            caches["default"].close()


@pytest.mark.django_db(transaction=True)
def test_redis_killed_mid_stream_answers_503_and_every_event_lands_once(
        server_store, tenant, private_redis):
    with _redis_at(private_redis.url):
        stream = Stream(api_client(tenant, "DEVELOPER"))
        _run_with_outage(stream, private_redis)
    assert stream.outages
    assert {o["part"] for o in stream.outages} == {"redis"}
    assert {o["code"] for o in stream.outages} == {"redis_unavailable"}
    counts = _ledger_counts(tenant.slug)
    assert counts["entries"] == counts["ids"] == counts["events"] == DISTINCT
    # The restarted Redis remembers no claim: the ledger tells the re-sent halves apart.
    assert stream.accepted == DISTINCT


@contextmanager
def _database_at(server):
    """Every new connection of this process goes to the private cluster (a copy of the test
    database), until the block ends."""
    settings_dict = connection.settings_dict
    saved = {k: settings_dict[k] for k in ("HOST", "PORT")}
    server.copy_database(host=saved["HOST"] or "127.0.0.1", port=int(saved["PORT"] or 5432),
                         user=settings_dict["USER"] or "postgres", name=settings_dict["NAME"])
    connection.close()
    settings_dict.update(HOST="127.0.0.1", PORT=str(server.port))
    try:
        yield
    finally:
        connection.close()
        settings_dict.update(saved)


def test_private_postgres_keeps_a_commit_acknowledged_just_before_its_crash(private_postgres):
    # The outage test below creates its tenant and token moments before the kill; a private
    # server that lost them (as with synchronous_commit=off) would answer 401, not 503.
    import psycopg

    dsn = f"host=127.0.0.1 port={private_postgres.port} user=postgres dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("CREATE TABLE acknowledged (n int)")
        db.execute("INSERT INTO acknowledged VALUES (1)")
    private_postgres.stop()
    private_postgres.start()
    with psycopg.connect(dsn, autocommit=True) as db:
        assert db.execute("SELECT count(*) FROM acknowledged").fetchone()[0] == 1


@pytest.mark.django_db(transaction=True)
def test_postgres_killed_mid_stream_answers_503_and_every_event_lands_once(
        server_store, private_postgres):
    if connection.vendor != "postgresql":
        pytest.skip("needs DATABASE_URL on PostgreSQL")
    with _database_at(private_postgres):
        tenant = tenant_create(slug=f"pg-{NOW:%H%M%S%f}", name="Outage tenant")
        stream = Stream(api_client(tenant, "DEVELOPER"))
        # Down for longer than the token check remembers a token, so it too meets the dead
        # connection (and must recover from it once the database is back).
        _run_with_outage(stream, private_postgres, down_at_least=AUTH_MEMORY_S + 1)
    assert stream.outages
    assert {o["part"] for o in stream.outages} == {"database"}
    assert {o["code"] for o in stream.outages} == {"database_unavailable"}
    counts = _ledger_counts(tenant.slug)
    assert counts["entries"] == counts["ids"] == counts["events"] == DISTINCT
    assert stream.accepted == DISTINCT
