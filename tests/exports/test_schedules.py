"""Scheduled exports into a real PostgreSQL table, a real ClickHouse table and a signed
webhook: every ledger entry exactly once across runs, crashes and kills."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.utils import timezone as django_tz

from aforo.ledger.query import LedgerQuery
from exports import services
from exports.models import ExportRun
from tests.exports.conftest import ch_rows, ledger_events, pg_rows
from tests.factories import ingest

pytestmark = pytest.mark.django_db


def _later(seconds: int = 5) -> datetime:
    """A run's clock a little after the ingest (entries of the current second wait)."""
    return django_tz.now() + timedelta(seconds=seconds)


def _ledger(tenant) -> dict[str, Decimal]:
    rows = LedgerQuery(tenant.slug).expressions("entry_id", "ai_cogs_usd").where_sql(
        "occurred_at > toDateTime(0)").fetch()
    return {r["entry_id"]: r["ai_cogs_usd"] for r in rows}


def _schedule(tenant, kind, destination, table="", **options):
    return services.export_schedule_create(
        tenant=tenant, name=f"to {kind.lower()}", kind=kind, destination=destination,
        table_name=table, lag_seconds=0, **options).schedule


class Crash(BaseException):
    """The process dying mid-run: nothing after it runs, no handler sees it."""


def _crash_after_delivering(monkeypatch, chunk_number: int) -> None:
    """The real destination delivers; right after chunk N lands, before the watermark is
    saved, the run dies."""
    real_open = services.destination_open
    delivered = []

    def open_and_crash(**kwargs):
        destination = real_open(**kwargs)
        deliver = destination.deliver

        def deliver_then_crash(chunk_id, columns, rows):
            deliver(chunk_id, columns, rows)
            delivered.append(chunk_id)
            if len(delivered) == chunk_number:
                raise Crash()

        destination.deliver = deliver_then_crash
        return destination

    monkeypatch.setattr(services, "destination_open", open_and_crash)


def test_postgres_table_holds_every_entry_once_across_runs(store, tenant, other_tenant,
                                                           warehouse_pg):
    dsn, table = warehouse_pg
    ingest(tenant, ledger_events("a", 40))
    ingest(other_tenant, ledger_events("x", 3))
    schedule = _schedule(tenant, "POSTGRES", dsn, table, chunk_rows=7)
    run = services.export_run(schedule=schedule, now=_later())
    assert (run.state, run.rows_delivered, run.chunks_delivered) == ("SUCCEEDED", 40, 6)
    held = dict(pg_rows(dsn, table, "SELECT entry_id, ai_cogs_usd FROM {table}"))
    assert held == _ledger(tenant)  # every entry, its money exact (numeric(18, 9))
    # nothing new: nothing sent; new entries: only they
    again = services.export_run(schedule=schedule, now=_later())
    assert again.rows_delivered == 0 and again.state == "SUCCEEDED"
    ingest(tenant, ledger_events("b", 9))
    third = services.export_run(schedule=schedule, now=_later())
    assert third.rows_delivered == 9
    assert pg_rows(dsn, table, "SELECT count(*), count(DISTINCT entry_id) FROM {table}") == [
        (49, 49)]
    columns = {r[0] for r in pg_rows(dsn, table, "SELECT column_name FROM "
                                     "information_schema.columns WHERE table_name = '{table}'")}
    assert {"agent", "session_id", "recorded_at", "revenue_usd"} <= columns
    assert "tenant_id" not in columns


def test_postgres_crash_after_a_chunk_landed_delivers_it_once(store, tenant, warehouse_pg,
                                                              monkeypatch):
    dsn, table = warehouse_pg
    ingest(tenant, ledger_events("a", 30))
    schedule = _schedule(tenant, "POSTGRES", dsn, table, chunk_rows=4)
    _crash_after_delivering(monkeypatch, 3)
    with pytest.raises(Crash):
        services.export_run(schedule=schedule, now=_later())
    dead = ExportRun.objects.get(schedule=schedule)
    assert dead.state == "RUNNING" and dead.rows_delivered == 8  # chunk 3 landed, unrecorded
    assert pg_rows(dsn, table, "SELECT count(*) FROM {table}") == [(12,)]
    monkeypatch.undo()
    # Before the dead run's lease ends, a second run is refused; after it, it takes over.
    with pytest.raises(services.Conflict):
        services.export_run(schedule=schedule, now=_later())
    run = services.export_run(schedule=schedule, now=_later() + services.LEASE)
    assert run.state == "SUCCEEDED" and run.rows_delivered == 22
    dead.refresh_from_db()
    assert dead.state == "INTERRUPTED"
    assert pg_rows(dsn, table, "SELECT count(*), count(DISTINCT entry_id) FROM {table}") == [
        (30, 30)]
    assert {r[0] for r in pg_rows(dsn, table, "SELECT entry_id FROM {table}")} == set(
        _ledger(tenant))


def test_clickhouse_table_exactly_once_after_a_crash(store, tenant, warehouse_ch,
                                                     monkeypatch):
    dsn, table = warehouse_ch
    ingest(tenant, ledger_events("a", 25))
    schedule = _schedule(tenant, "CLICKHOUSE", dsn, table, chunk_rows=6)
    _crash_after_delivering(monkeypatch, 2)
    with pytest.raises(Crash):
        services.export_run(schedule=schedule, now=_later())
    monkeypatch.undo()
    ingest(tenant, ledger_events("b", 5))
    run = services.export_run(schedule=schedule, now=_later() + services.LEASE)
    assert run.state == "SUCCEEDED" and run.rows_delivered == 30 - 6
    # no FINAL: the table itself holds each entry once, not only after a merge
    counts = ch_rows(dsn, f"SELECT count() AS n, uniqExact(entry_id) AS u FROM {table}")
    assert counts == [{"n": 30, "u": 30}]
    held = {r["entry_id"]: r["ai_cogs_usd"] for r in ch_rows(
        dsn, f"SELECT entry_id, ai_cogs_usd FROM {table}")}
    assert held == _ledger(tenant)


def test_a_table_made_before_a_ledger_column_was_added_gains_it(store, tenant, warehouse_pg,
                                                                warehouse_ch):
    """Migrations add ledger columns (0013's allocation_id, say); a warehouse table an earlier
    run created lacks them, and the next run adds them instead of failing its COPY."""
    for kind, (dsn, table) in (("POSTGRES", warehouse_pg), ("CLICKHOUSE", warehouse_ch)):
        ingest(tenant, ledger_events(f"{kind}-old", 3))
        schedule = _schedule(tenant, kind, dsn, table)
        first = services.export_run(schedule=schedule, now=_later())
        assert first.rows_delivered == len(_ledger(tenant))  # a new schedule starts at zero
        # The table as a release before the `agent` column would have left it.
        if kind == "POSTGRES":
            import psycopg

            with psycopg.connect(dsn) as connection:
                connection.execute(f"ALTER TABLE {table} DROP COLUMN agent")
        else:
            ch_rows(dsn, f"ALTER TABLE {table} DROP COLUMN agent")
        time.sleep(1.1)  # the run above closed the second it read up to (the test's lag is 0)
        ingest(tenant, ledger_events(f"{kind}-new", 4))
        run = services.export_run(schedule=schedule, now=_later(10))
        assert (run.state, run.rows_delivered) == ("SUCCEEDED", 4)
        if kind == "POSTGRES":
            agents = dict(pg_rows(dsn, table, "SELECT event_id, agent FROM {table}"))
        else:
            agents = {r["event_id"]: r["agent"] for r in ch_rows(
                dsn, f"SELECT event_id, agent FROM {table}")}
        assert agents[f"{kind}-new-0001"] == "planner" and agents[f"{kind}-new-0000"] == "coder"
        assert agents[f"{kind}-old-0001"] in (None, "")  # delivered before the column was


def test_webhook_chunks_are_signed_retried_and_carry_stable_ids(store, tenant, http_sink,
                                                                monkeypatch):
    from aforo import outbound
    from exports import destinations

    monkeypatch.setattr(destinations, "WEBHOOK_BACKOFF_S", 0.01)
    http_sink.fail_first = 1  # the first POST fails and is sent again
    ingest(tenant, ledger_events("a", 12))
    created = services.export_schedule_create(
        tenant=tenant, name="hook", kind="WEBHOOK", destination=http_sink.url,
        lag_seconds=0, chunk_rows=5)
    schedule = created.schedule
    _crash_after_delivering(monkeypatch, 2)
    with pytest.raises(Crash):
        services.export_run(schedule=schedule, now=_later())
    monkeypatch.undo()
    run = services.export_run(schedule=schedule, now=_later() + services.LEASE)
    assert run.state == "SUCCEEDED"
    accepted = http_sink.accepted
    for request in accepted:
        assert outbound.signature_valid(created.signing_secret,
                                        request["headers"]["X-Aforo-Signature"],
                                        request["body"])
        assert request["headers"]["Content-Type"] == "application/x-ndjson"
    chunk_ids = [r["headers"]["X-Aforo-Delivery"] for r in accepted]
    # chunk 2 was sent twice (the crash came after it landed), with the same id both times
    assert len(chunk_ids) == 4 and chunk_ids[1] == chunk_ids[2]
    assert len(http_sink.requests) == 5  # one failed attempt, retried
    received = {}
    for request in accepted:
        import json

        if request["headers"]["X-Aforo-Delivery"] in received:
            continue  # what a receiver does with a chunk id it has seen
        received[request["headers"]["X-Aforo-Delivery"]] = [
            json.loads(line)["entry_id"] for line in request["body"].splitlines()]
    ids = [i for chunk in received.values() for i in chunk]
    assert sorted(ids) == sorted(_ledger(tenant)) and len(ids) == 12


def test_a_webhook_that_keeps_failing_fails_the_run_and_keeps_the_watermark(
        store, tenant, http_sink, monkeypatch):
    from exports import destinations

    monkeypatch.setattr(destinations, "WEBHOOK_BACKOFF_S", 0.01)
    http_sink.fail_first = 100
    ingest(tenant, ledger_events("a", 3))
    schedule = services.export_schedule_create(
        tenant=tenant, name="down", kind="WEBHOOK", destination=http_sink.url,
        lag_seconds=0).schedule
    run = services.export_run(schedule=schedule, now=_later())
    assert run.state == "FAILED" and "HTTP 5xx" in run.error and run.rows_delivered == 0
    schedule.refresh_from_db()
    assert schedule.watermark_recorded_at is None
    assert len(http_sink.requests) == destinations.WEBHOOK_ATTEMPTS


def test_entries_recorded_within_the_lag_wait_for_the_next_run(store, tenant, warehouse_pg):
    dsn, table = warehouse_pg
    ingest(tenant, ledger_events("a", 4))
    schedule = services.export_schedule_create(
        tenant=tenant, name="lagged", kind="POSTGRES", destination=dsn, table_name=table,
        lag_seconds=60).schedule
    assert services.export_run(schedule=schedule).rows_delivered == 0
    later = services.export_run(schedule=schedule, now=_later(61))
    assert later.rows_delivered == 4


def test_destinations_naming_aforos_own_databases_are_refused(db, tenant, settings):
    from django.conf import settings as live

    settings.AFORO_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    own = live.DATABASES["default"]
    if "postgresql" in own["ENGINE"]:
        dsn = (f"postgres://{own['USER']}@{own.get('HOST') or '127.0.0.1'}:"
               f"{own.get('PORT') or 5432}/{own['NAME']}")
        with pytest.raises(services.DomainError, match="own databases"):
            services.export_schedule_create(tenant=tenant, name="x", kind="POSTGRES",
                                            destination=dsn, table_name="t")
    if live.CLICKHOUSE_URL:
        with pytest.raises(services.DomainError, match="own databases"):
            services.export_schedule_create(tenant=tenant, name="y", kind="CLICKHOUSE",
                                            destination=live.CLICKHOUSE_URL, table_name="t")
    with pytest.raises(services.DomainError) as bad:
        services.export_schedule_create(tenant=tenant, name="z", kind="POSTGRES",
                                        destination="postgres://h/db", table_name="1; drop")
    assert bad.value.field == "table_name"


def test_export_runs_due_runs_enabled_schedules_at_their_interval(store, tenant,
                                                                  warehouse_pg):
    dsn, table = warehouse_pg
    ingest(tenant, ledger_events("a", 3))
    start = _later()
    schedule = services.export_schedule_create(
        tenant=tenant, name="hourly", kind="POSTGRES", destination=dsn, table_name=table,
        lag_seconds=0, interval_minutes=60, now=start).schedule
    assert services.export_runs_due(now=start) == 1
    assert services.export_runs_due(now=start + timedelta(minutes=30)) == 0
    assert services.export_runs_due(now=start + timedelta(minutes=61)) == 1
    assert list(schedule.runs.values_list("trigger", flat=True)) == ["SCHEDULE", "SCHEDULE"]
    assert datetime.now(timezone.utc) < start + timedelta(minutes=1)


@pytest.mark.django_db(transaction=True)
def test_a_run_killed_midway_then_run_again_leaves_every_entry_once(event_stores, tenant,
                                                                    warehouse_pg):
    """A real process (manage.py export_run) killed with SIGKILL in the middle of a run."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from aforo import eventstore

    if "server" not in event_stores:
        pytest.skip("a second process cannot open the embedded store this one holds")
    eventstore.set_default(event_stores["server"])
    try:
        from django.conf import settings

        dsn, table = warehouse_pg
        ingest(tenant, ledger_events("k", 120))
        schedule = services.export_schedule_create(
            tenant=tenant, name="killed", kind="POSTGRES", destination=dsn, table_name=table,
            lag_seconds=0, chunk_rows=10).schedule
        time.sleep(1.1)  # the run's cut-off (its start, to the second) is after the ingest
        db = settings.DATABASES["default"]
        env = {**os.environ, "CLICKHOUSE_URL": settings.CLICKHOUSE_URL,
               "AFORO_OUTBOUND_ALLOWED_HOSTS": "127.0.0.1,localhost",
               "DATABASE_URL": f"postgres://{db['USER']}@{db.get('HOST') or '127.0.0.1'}:"
                               f"{db.get('PORT') or 5432}/{db['NAME']}"}
        root = Path(__file__).resolve().parents[2]
        process = subprocess.Popen(
            [sys.executable, "manage.py", "export_run", str(schedule.pk), "--pause-ms", "150"],
            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        held = 0
        while held < 30 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
            try:
                held = pg_rows(dsn, table, "SELECT count(*) FROM {table}")[0][0]
            except Exception:  # the table is not created yet
                held = 0
        assert process.poll() is None, process.communicate()
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        held = pg_rows(dsn, table, "SELECT count(*) FROM {table}")[0][0]
        assert 30 <= held < 120  # killed midway
        dead = ExportRun.objects.get(schedule=schedule)
        assert dead.state == "RUNNING"
        run = services.export_run(schedule=schedule, now=_later() + services.LEASE)
        assert run.state == "SUCCEEDED"
        assert pg_rows(dsn, table, "SELECT count(*), count(DISTINCT entry_id) FROM {table}"
                       ) == [(120, 120)]
        assert {r[0] for r in pg_rows(dsn, table, "SELECT entry_id FROM {table}")} == set(
            _ledger(tenant))
        dead.refresh_from_db()
        assert dead.state == "INTERRUPTED"
    finally:
        eventstore.set_default(None)
