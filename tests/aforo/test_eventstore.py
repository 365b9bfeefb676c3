"""The event store on both backends: round trips, exact decimals, escaping, migrations."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aforo import eventstore
from aforo.eventstore.migrate import available_migrations, migrate_eventstore
from aforo.ledger import LEDGER_COLUMNS, ledger_append, ledger_entry

HOSTILE_IDS = [
    "it's",
    'say "hi"',
    "back\\slash\\",
    "ünïcødé ✓ 日本語 🚀",
    "'; DROP TABLE ledger; --",
    "new\nline\ttab\0nul",
    "%(tenant_id)s and %s",
]


def _tenant() -> str:
    return f"es-{uuid.uuid4().hex[:10]}"


def test_ledger_entry_round_trips_every_column(store):
    tenant = _tenant()
    at = datetime(2026, 6, 14, 18, 33, 0, tzinfo=timezone.utc)
    row = ledger_entry(
        tenant_id=tenant, entry_id="evt_1", entry_type="COST", event_id="evt_1", occurred_at=at,
        recorded_at=at, customer_id="cust_acme", product_id="prod_translation",
        product_type="API_WITH_AI", provider="Anthropic", model="claude-sonnet-4-6",
        requested_model="claude-opus-4-1", tool_name="web_search", source_type="GATEWAY",
        session_id="s1", event_count=1, input_tokens=1200, output_tokens=300,
        cached_input_tokens=200, reasoning_tokens=50, reasoning_steps=2, tool_calls=1,
        quantity=Decimal("1.5"), ai_cogs_usd=Decimal("0.000000001"),
        infra_cogs_usd=Decimal("999999999.999999999"), fee_cogs_usd=Decimal("0.01"),
        unclassified_cogs_usd=Decimal("0"), rated_revenue_usd=Decimal("0.51"),
        revenue_usd=Decimal("-0.25"), cost_source="CARRIED", unpriced=0,
    )
    assert ledger_append([row]) == 1
    got = eventstore.tenant_query(tenant, "SELECT * FROM ledger WHERE tenant_id = %(tenant_id)s")
    assert len(got) == 1
    assert set(got[0]) == set(LEDGER_COLUMNS)
    for column in LEDGER_COLUMNS:
        assert got[0][column] == row[column], column
    assert isinstance(got[0]["ai_cogs_usd"], Decimal)
    assert got[0]["occurred_at"].tzinfo is not None


def test_rows_and_query_come_back_typed(store):
    """Both backends give the same Python values: big integers, exact Decimals, dates, UTC
    datetimes, NULLs, arrays; as tuples from rows() and dicts from query()."""
    tenant = _tenant()
    sql = ("SELECT toInt64(9007199254740993) AS big, "
           "CAST('123456789012345678.123456789' AS Decimal(38, 9)) AS money, "
           "toDate('2026-02-28') AS day, toDateTime('2026-02-28 23:59:59', 'UTC') AS at, "
           "CAST(NULL AS Nullable(String)) AS nothing, [toInt64(1), -2] AS list, "
           "tenant_id AS text FROM (SELECT %(tenant_id)s AS tenant_id) "
           "WHERE tenant_id = %(tenant_id)s")
    expected = (9007199254740993, Decimal("123456789012345678.123456789"), date(2026, 2, 28),
                datetime(2026, 2, 28, 23, 59, 59, tzinfo=timezone.utc), None, [1, -2], tenant)
    names, rows = eventstore.tenant_rows(tenant, sql)
    assert names == ["big", "money", "day", "at", "nothing", "list", "text"]
    assert [tuple(row) for row in rows] == [expected]
    assert rows[0][3].utcoffset().total_seconds() == 0
    assert eventstore.tenant_query(tenant, sql) == [dict(zip(names, expected, strict=True))]


def test_insert_rows_round_trips_tuples_exactly(store):
    """The bulk door (tuples in column order) writes what insert() writes: Decimals at their
    digits (1.81E-8 and 38-digit values), dates, UTC datetimes, hostile strings."""
    tenant = _tenant()
    columns = ("tenant_id", "source_id", "import_id", "recorded_at", "line_key", "day",
               "charge_start", "charge_end", "provider", "service", "model", "line_item",
               "account_id", "project_id", "charge_category", "unit", "quantity", "cost_usd")
    at = datetime(2023, 11, 1, tzinfo=timezone.utc)
    rows = [(tenant, "1", "i", at, f"k{n}", date(2023, 11, 1 + n), at, at, HOSTILE_IDS[n],
             "AmazonS3", "", "", "", "", "Usage", "GB", Decimal("1.5"), cost)
            for n, cost in enumerate([Decimal("1.81E-8"), Decimal("12345678901234.123456789012"),
                                      Decimal("-0.000000000001")])]
    assert eventstore.insert_rows("provider_cost_import_lines", columns, rows) == 3
    got = eventstore.tenant_query(
        tenant, "SELECT line_key, day, charge_start, provider, cost_usd "
        "FROM provider_cost_import_lines WHERE tenant_id = %(tenant_id)s ORDER BY line_key")
    assert [(r["line_key"], r["day"], r["charge_start"], r["provider"], r["cost_usd"])
            for r in got] == [(r[4], r[5], r[6], r[8], r[17]) for r in rows]
    with pytest.raises(TypeError):
        eventstore.insert_rows("provider_cost_import_lines", columns,
                               [(*rows[0][:17], 0.1)])


def test_sums_stay_exact_decimals(store):
    tenant = _tenant()
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = [
        ledger_entry(tenant_id=tenant, entry_id=f"e{i}", entry_type="COST", event_id=f"e{i}",
                     occurred_at=at, event_count=1, ai_cogs_usd=Decimal("0.1"))
        for i in range(10)
    ]
    ledger_append(rows)
    got = eventstore.tenant_query(
        tenant,
        "SELECT sum(ai_cogs_usd) AS ai, sum(event_count) AS events FROM ledger "
        "WHERE tenant_id = %(tenant_id)s",
    )
    # 0.1 ten times is exactly 1 in Decimal, and not in binary floating point.
    assert got[0]["ai"] == Decimal("1")
    assert got[0]["events"] == 10


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
def test_hostile_ids_round_trip_intact(store, hostile):
    tenant = _tenant()
    at = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    ledger_append([ledger_entry(tenant_id=tenant, entry_id=hostile, entry_type="COST",
                                event_id=hostile, occurred_at=at, customer_id=hostile)])
    # The value comes back intact from an insert, and matches when sent back as a parameter.
    got = eventstore.tenant_query(
        tenant,
        "SELECT event_id, customer_id FROM ledger WHERE tenant_id = %(tenant_id)s "
        "AND event_id = %(event_id)s",
        {"event_id": hostile},
    )
    assert got == [{"event_id": hostile, "customer_id": hostile}]
    assert eventstore.query("SELECT count() AS n FROM ledger WHERE 1 = 0") == [{"n": 0}]


def test_parameter_lists_and_dates_are_escaped(store):
    tenant = _tenant()
    at = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    ledger_append([
        ledger_entry(tenant_id=tenant, entry_id=i, entry_type="COST", event_id=i, occurred_at=at)
        for i in ("a'1", "b\\2", "c3")
    ])
    got = eventstore.tenant_query(
        tenant,
        "SELECT event_id FROM ledger WHERE tenant_id = %(tenant_id)s AND event_id IN %(ids)s "
        "AND occurred_at >= %(since)s ORDER BY event_id",
        {"ids": ("a'1", "b\\2"), "since": datetime(2026, 3, 1, tzinfo=timezone.utc)},
    )
    assert [r["event_id"] for r in got] == ["a'1", "b\\2"]


def test_tenant_query_refuses_sql_without_the_tenant_filter(store):
    with pytest.raises(ValueError, match="tenant_id"):
        eventstore.tenant_query("t1", "SELECT count() FROM ledger")
    with pytest.raises(ValueError):
        eventstore.tenant_query("", "SELECT 1 WHERE tenant_id = %(tenant_id)s")


def test_floats_are_refused(store):
    with pytest.raises(TypeError):
        eventstore.query("SELECT %(x)s AS x", {"x": 0.1})


def test_tenants_see_only_their_own_entries(store):
    a, b = _tenant(), _tenant()
    at = datetime(2026, 3, 1, tzinfo=timezone.utc)
    ledger_append([ledger_entry(tenant_id=t, entry_id="same", entry_type="COST",
                                event_id="same", occurred_at=at, event_count=1,
                                ai_cogs_usd=Decimal(n)) for n, t in ((1, a), (2, b))])
    sql = "SELECT sum(ai_cogs_usd) AS ai FROM ledger WHERE tenant_id = %(tenant_id)s"
    assert eventstore.tenant_query(a, sql)[0]["ai"] == Decimal(1)
    assert eventstore.tenant_query(b, sql)[0]["ai"] == Decimal(2)


def test_migrations_apply_once_and_a_second_run_is_a_no_op(store):
    # The session fixture already migrated this store: everything is recorded, nothing re-runs.
    assert migrate_eventstore(store) == []
    recorded = store.query("SELECT name, count() AS n FROM schema_migrations GROUP BY name")
    assert {r["name"]: r["n"] for r in recorded} == {name: 1 for name in available_migrations()}
    columns = {r["name"]: r["type"] for r in store.query("DESCRIBE TABLE ledger")}
    assert columns["occurred_at"] == "DateTime('UTC')"
    assert columns["ai_cogs_usd"] == "Decimal(18, 9)"
    assert columns["entry_type"].startswith("Enum8('COST' = 1, 'REVENUE' = 2")


def test_the_ledger_is_partitioned_by_month(store):
    # On a cluster the data (and its partitions) is in each shard's ledger_local.
    table = "ledger_local" if store.cluster else "ledger"
    rows = store.query(
        "SELECT partition_key FROM system.tables WHERE database = %(db)s AND name = %(t)s",
        {"db": store.database, "t": table},
    )
    assert rows and rows[0]["partition_key"] == "toYYYYMM(occurred_at)"


def test_a_fresh_database_is_migrated_from_scratch(event_stores):
    """A new database on the server gets every migration, then nothing the second time."""
    if "server" not in event_stores:
        pytest.skip("needs the ClickHouse server")
    from django.conf import settings

    from aforo.eventstore import ServerStore

    db = f"fresh_{uuid.uuid4().hex[:8]}"
    base = settings.CLICKHOUSE_URL.rsplit("/", 1)[0]
    fresh = ServerStore(f"{base}/{db}")
    try:
        assert migrate_eventstore(fresh) == available_migrations()
        assert migrate_eventstore(fresh) == []
    finally:
        fresh.command(f"DROP DATABASE IF EXISTS {db}")
        fresh.close()


@given(st.text())
def test_string_fast_path_renders_exactly_as_the_driver_escapes(text):
    from clickhouse_driver.util.escape import escape_param

    from aforo.eventstore.escaping import _CONTEXT, render

    assert render("%(x)s", {"x": text}) == escape_param(text, _CONTEXT)


# What a cluster insert raised when shard 2's quorum wait for `ledger_daily_local` timed out
# (tests/aforo/test_cluster.py::test_a_write_failing_while_pushing_to_a_view_is_settled_once).
_STOPPED_AT_A_VIEW = (
    "ClickHouse cluster aforo_test: Code: 319.\nDB::Exception: Received from 127.0.0.1:56867. "
    "DB::Exception: Unknown status, client must retry. Reason: Code: 159, e.displayText() = "
    "DB::Exception: Timeout while waiting for quorum, e.what() = DB::Exception: while pushing "
    "to view aforo_cluster.ledger_daily_mv.")


def test_a_failed_cluster_insert_says_where_a_shard_stopped_feeding_the_views():
    from aforo.eventstore.backends import feed_stop_parse
    from aforo.eventstore.errors import FeedStop

    stop = feed_stop_parse(_STOPPED_AT_A_VIEW, here="127.0.0.1:9000")
    assert stop == FeedStop("127.0.0.1:56867", "ledger_daily_mv", wrote=True)
    assert [stop.fed(v) for v in ("agent_sessions_mv", "ledger_daily_mv", "ledger_hourly_mv")] \
        == [True, True, False]
    assert FeedStop.decode(stop.encode()) == stop
    # Refused before its own write (too few live replicas): the view itself lacks the block.
    refused = feed_stop_parse("Code: 285. DB::Exception: Number of alive replicas (1) is less "
                              "than requested quorum (2). while pushing to view "
                              "db.`ledger_hourly_mv`", here="127.0.0.1:9000")
    assert refused == FeedStop("127.0.0.1:9000", "ledger_hourly_mv", wrote=False)
    assert not refused.fed("ledger_hourly_mv") and refused.fed("ledger_event_ids_mv")
    assert feed_stop_parse("Code: 32. Attempt to read after eof", here="x:1") is None
    complete = FeedStop("n:1", FeedStop.COMPLETE, wrote=True)
    assert complete.fed("usage_hourly_agents_mv")
