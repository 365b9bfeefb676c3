"""Export test fixtures: real warehouses to deliver into (a PostgreSQL database and a ClickHouse
database of the servers the suite runs, not Aforo's own), and a ledger to export."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from aforo.ledger.query import LedgerQuery
from aforo.periods import Period
from tests.factories import ingest, invoice_lines

WAREHOUSE_DB = "aforo_export_warehouse"
# A DSN's password is stored encrypted (aforo/credentials.py): the warehouses' DSNs may hold one.
CREDENTIALS_KEY = "MfDdY-yqMYV9CG2xqsAMU8fwTMcdvH8HMz9vkOV5RkA="


def _pg_server() -> dict:
    db = settings.DATABASES["default"]
    if "postgresql" not in db["ENGINE"]:
        pytest.skip("DATABASE_URL is not PostgreSQL; `make test` runs it")
    return db


@pytest.fixture
def warehouse_pg(settings):
    """A DSN of a PostgreSQL database beside Aforo's, and a fresh table name."""
    import psycopg

    settings.AFORO_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    settings.AFORO_CREDENTIALS_KEY = CREDENTIALS_KEY
    db = _pg_server()
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    with psycopg.connect(host=host, port=port, user=db["USER"], password=db.get("PASSWORD"),
                         dbname="postgres", autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                             (WAREHOUSE_DB,)).fetchone():
            admin.execute(f'CREATE DATABASE "{WAREHOUSE_DB}"')
    dsn = f"postgres://{auth}@{host}:{port}/{WAREHOUSE_DB}"
    return dsn, f"ledger_{uuid.uuid4().hex[:10]}"


def pg_rows(dsn: str, table: str, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(dsn) as connection:
        return connection.execute(sql.format(table=table)).fetchall()


@pytest.fixture
def warehouse_ch(settings):
    """A DSN of a ClickHouse database on the suite's server (not the event store's)."""
    if not settings.CLICKHOUSE_URL:
        pytest.skip("CLICKHOUSE_URL is not set; `make test` starts a ClickHouse server")
    settings.AFORO_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    settings.AFORO_CREDENTIALS_KEY = CREDENTIALS_KEY
    parts = urlsplit(settings.CLICKHOUSE_URL)
    dsn = f"clickhouse://{parts.netloc}/aforo_export_warehouse"
    return dsn, f"ledger_{uuid.uuid4().hex[:10]}"


def ch_rows(dsn: str, sql: str) -> list[dict]:
    from aforo.eventstore import ServerStore

    store = ServerStore(dsn)
    try:
        return store.query(sql)
    finally:
        store.close()


def ledger_events(prefix: str, n: int, at: datetime | None = None) -> list[dict]:
    at = at or datetime(2026, 6, 10, tzinfo=timezone.utc)
    return [{"eventId": f"{prefix}-{i:04d}", "occurredAt": at + timedelta(minutes=i),
             "customerId": f"cust_{i % 3}", "productId": "p_chat", "provider": "OpenAI",
             "model": "gpt-4o", "aiCogsUsd": f"0.{i:04d}00001", "inputTokens": 10 + i,
             "sessionId": f"s{i % 4}", "agent": "planner" if i % 2 else "coder"}
            for i in range(n)]


# --- a ledger to export: 60 events of one tenant over three days, attributed ------------

DAY = datetime(2026, 6, 10, tzinfo=timezone.utc)
PERIOD = Period(first=date(2026, 6, 10), last=date(2026, 6, 12))


def _events(n: int) -> list[dict]:
    # Several events share each second (the keyset must order by event and entry too), and
    # costs with nine decimals that a float would round.
    return [{"eventId": f"ev-{i:03d}", "occurredAt": DAY + timedelta(hours=(i // 3) * 3),
             "customerId": f"cust_{i % 4}", "productId": ("p_chat", "p_agent")[i % 2],
             "productType": "API_WITH_AI", "provider": "OpenAI", "model": "gpt-4o",
             "aiCogsUsd": f"0.{i:03d}000001", "infraCogsUsd": "0.000000003",
             "inputTokens": 100 + i, "outputTokens": i, "sessionId": f"s{i % 5}",
             "toolName": "search" if i % 3 == 0 else None}
            for i in range(n)]


@pytest.fixture
def ledger_of_60(store, tenant, other_tenant):
    ingest(tenant, _events(60))
    # REVENUE entries share their events' keys: the order must still be total.
    invoice_lines(tenant, "inv-1", customer="cust_0", start=DAY, end=DAY + timedelta(days=3),
                  lines=[("l1", "p_chat", "12.345678912", "EVENTS")])
    from billing.attribution import attribution_run

    attribution_run(tenant=tenant, trigger="API")
    ingest(other_tenant, _events(5))  # another tenant's entries never leak in
    # one event outside the period
    ingest(tenant, [{**_events(1)[0], "eventId": "late", "occurredAt": DAY + timedelta(days=3)}])
    return tenant


def ledger_ids(tenant) -> list[str]:
    rows = LedgerQuery(tenant.slug).period(PERIOD).expressions("entry_id").fetch()
    return sorted(r["entry_id"] for r in rows)
