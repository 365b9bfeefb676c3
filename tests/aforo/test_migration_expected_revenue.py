"""Migration 0005 on a ledger written before it: attributed events get their SETTLE entries, the
rollups are rebuilt with the provisional revenue, and the estimation basis holds what is left."""
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


def _migration(name: str):
    return importlib.import_module(f"aforo.eventstore.migrations.{name}")


def _row(entry_type: str, event_id: str, customer: str, **values) -> dict:
    base = {"tenant_id": "t", "entry_id": f"{entry_type}-{event_id}", "entry_type": entry_type,
            "entry_kind": "ORIGINAL", "event_id": event_id, "occurred_at": AT,
            "recorded_at": AT, "customer_id": customer, "product_id": "p", "event_count": 0,
            "input_tokens": 0, "ai_cogs_usd": Decimal(0), "rated_revenue_usd": Decimal(0),
            "revenue_usd": Decimal(0), "invoice_id": ""}
    return {**base, **values}


@pytest.fixture
def old_store():
    if not settings.CLICKHOUSE_URL:
        pytest.skip("CLICKHOUSE_URL is not set; `make test` starts a ClickHouse server")
    url = settings.CLICKHOUSE_URL.rsplit("/", 1)[0] + f"/upgrade_{uuid.uuid4().hex[:8]}"
    store = ServerStore(url)
    store.ensure_database()
    topology = Topology(database=store.database)
    for name in ("0001_ledger", "0002_daily_rollups", "0003_attribution_lines",
                 "0004_ledger_event_ids"):
        for sql in _migration(name).statements(topology):
            store.command(sql)
    yield store, topology
    store.command(f"DROP DATABASE IF EXISTS {store.database}")
    store.close()


def test_attributed_events_are_settled_and_the_rollups_rebuilt(old_store):
    store, topology = old_store
    cost = {"event_count": 1, "input_tokens": 10, "ai_cogs_usd": Decimal("0.10")}
    store.insert("ledger", [
        # attributed: its rated revenue must stop counting once settled
        _row("COST", "settled", "c1", rated_revenue_usd=Decimal("0.50"), **cost),
        _row("REVENUE", "settled", "c1", revenue_usd=Decimal("0.70"), invoice_id="i1"),
        # rated, not attributed yet: still settling
        _row("COST", "rated", "c1", rated_revenue_usd=Decimal("0.40"), **cost),
        # no plan, not attributed: the estimation basis
        _row("COST", "bare", "c2", **cost),
        # attributed, then reversed: settling again
        _row("COST", "reversed", "c2", **cost),
        _row("REVENUE", "reversed", "c2", revenue_usd=Decimal("0.30"), invoice_id="i2"),
        {**_row("REVENUE", "reversed", "c2", revenue_usd=Decimal("-0.30"), invoice_id="i2"),
         "entry_kind": "REVERSAL", "entry_id": "rev-reversed"},
    ])
    for sql in _migration("0005_expected_revenue").statements(topology):
        store.command(sql)
    settles = store.query("SELECT event_id, event_count, rated_revenue_usd, ai_cogs_usd, "
                          "revenue_source FROM ledger WHERE entry_type = 'SETTLE'")
    assert settles == [{"event_id": "settled", "event_count": -1,
                        "rated_revenue_usd": Decimal("-0.5"), "ai_cogs_usd": Decimal("-0.1"),
                        "revenue_source": "RATED"}]
    (daily,) = store.query("SELECT sum(events) AS events, sum(revenue) AS revenue, "
                           "sum(revenue_rated) AS rated, sum(cogs_ai) AS ai FROM ledger_daily")
    assert daily == {"events": 4, "revenue": Decimal("0.7"), "rated": Decimal("0.4"),
                     "ai": Decimal("0.4")}
    by_customer = store.query("SELECT customer_id, sum(revenue_rated) AS rated "
                              "FROM ledger_daily_customers GROUP BY customer_id "
                              "ORDER BY customer_id")
    assert by_customer == [{"customer_id": "c1", "rated": Decimal("0.4")},
                           {"customer_id": "c2", "rated": Decimal(0)}]
    (basis,) = store.query("SELECT sum(events) AS events, sum(tokens_in) AS tokens, "
                           "sum(cogs) AS cogs FROM ledger_daily_unsourced")
    assert basis == {"events": 2, "tokens": 20, "cogs": Decimal("0.2")}
    # and the views feed every table from here on
    store.insert("ledger", [{**_row("COST", "new", "c3", **cost), "revenue_source": "NONE"}])
    (after,) = store.query("SELECT sum(events) AS events FROM ledger_daily_unsourced")
    assert after == {"events": 3}
