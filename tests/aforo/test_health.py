"""/healthz reports each part and answers 503 naming the part that is down."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from aforo import eventstore
from aforo.eventstore import ServerStore
from aforo.eventstore.migrate import migrate_eventstore

pytestmark = pytest.mark.django_db


def test_healthz_is_ok_when_every_part_answers(store):
    response = APIClient().get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["down"] == []
    assert body["parts"]["database"] == "ok" and body["parts"]["eventStore"] == "ok"


def test_healthz_names_clickhouse_when_it_is_stopped_and_recovers(private_clickhouse):
    store = ServerStore(private_clickhouse.url)
    migrate_eventstore(store)
    eventstore.set_default(store)
    try:
        assert APIClient().get("/healthz").status_code == 200
        private_clickhouse.stop()
        response = APIClient().get("/healthz")
        assert response.status_code == 503
        body = response.json()
        assert body["down"] == ["eventStore"]
        assert "ClickHouse" in body["parts"]["eventStore"]
        assert body["parts"]["database"] == "ok"
        private_clickhouse.start()
        assert APIClient().get("/healthz").status_code == 200
    finally:
        eventstore.set_default(None)
        store.close()


def test_healthz_names_redis_when_it_is_unreachable(store, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = APIClient().get("/healthz")
    assert response.status_code == 503
    assert response.json()["down"] == ["redis"]
