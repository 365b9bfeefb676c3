"""Migration 0013 on an event store written before it (the ClickHouse server, as an existing
install): every read model keeps what it held, the rollups' allocated COGS is 0 on old rows, and
after it an allocation entry reaches the daily rollups (as allocated) but neither the hourly
rollup nor the event-cost table."""
from __future__ import annotations

import importlib
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from django.conf import settings

from aforo.eventstore import ServerStore
from aforo.eventstore.schema import Topology

AT = datetime(2026, 10, 5, 12, tzinfo=timezone.utc)
BEFORE = ("0001_ledger", "0002_daily_rollups", "0003_attribution_lines",
          "0004_ledger_event_ids", "0005_expected_revenue", "0007_provider_cost_lines",
          "0009_hourly_rollups")


def _statements(name: str, topology: Topology) -> list[str]:
    return importlib.import_module(f"aforo.eventstore.migrations.{name}").statements(topology)


def _cost(entry_id: str, kind: str, ai: str, **values) -> dict:
    return {"tenant_id": "t", "entry_id": entry_id, "entry_type": "COST", "entry_kind": kind,
            "event_id": "e1", "occurred_at": AT, "recorded_at": AT, "customer_id": "c",
            "product_id": "p", "provider": "openai", "model": "m",
            "event_count": 1 if kind == "ORIGINAL" else 0, "ai_cogs_usd": Decimal(ai),
            **values}


@pytest.fixture
def old_store():
    if not settings.CLICKHOUSE_URL:
        pytest.skip("CLICKHOUSE_URL is not set; `make test` starts a ClickHouse server")
    url = settings.CLICKHOUSE_URL.rsplit("/", 1)[0] + f"/upgrade_{uuid.uuid4().hex[:8]}"
    store = ServerStore(url)
    store.ensure_database()
    topology = Topology(database=store.database)
    for name in BEFORE:
        for sql in _statements(name, topology):
            store.command(sql)
    yield store, topology
    store.command(f"DROP DATABASE IF EXISTS {store.database}")
    store.close()


def _read(store) -> dict:
    one = lambda sql: store.query(sql)[0]  # noqa: E731
    return {
        "daily": one("SELECT sum(cogs_ai) AS ai, sum(cogs_allocated) AS allocated, "
                     "sum(events) AS n FROM ledger_daily"),
        "customers": one("SELECT sum(cogs_ai) AS ai, sum(cogs_allocated) AS allocated "
                         "FROM ledger_daily_customers"),
        "hourly": one("SELECT sum(cogs) AS cogs, sum(events) AS n FROM ledger_hourly"),
        "event_costs": one("SELECT sum(cogs) AS cogs, count() AS n FROM ledger_event_costs"),
    }


def test_old_rows_keep_their_figures_and_new_allocations_skip_the_detectors(old_store):
    store, topology = old_store
    store.insert("ledger", [_cost("o1", "ORIGINAL", "0.10"),
                            _cost("c1", "CORRECTION", "0.05")])
    for sql in _statements("0013_allocations", topology):
        store.command(sql)
    after = _read(store)
    assert after["daily"] == {"ai": Decimal("0.15"), "allocated": 0, "n": 1}
    assert after["customers"] == {"ai": Decimal("0.15"), "allocated": 0}
    assert after["hourly"] == {"cogs": Decimal("0.15"), "n": 1}
    assert after["event_costs"] == {"cogs": Decimal("0.15"), "n": 2}
    assert store.query("SELECT allocation_id FROM ledger") == [{"allocation_id": ""}] * 2

    # after it: a plain correction reaches every read model; an allocation only the daily ones
    store.insert("ledger", [_cost("c2", "CORRECTION", "0.01", allocation_id=""),
                            _cost("a1", "CORRECTION", "2.00", allocation_id="7")])
    now = _read(store)
    assert now["daily"] == {"ai": Decimal("2.16"), "allocated": Decimal("2"), "n": 1}
    assert now["customers"] == {"ai": Decimal("2.16"), "allocated": Decimal("2")}
    assert now["hourly"] == {"cogs": Decimal("0.16"), "n": 1}
    assert now["event_costs"] == {"cogs": Decimal("0.16"), "n": 3}
