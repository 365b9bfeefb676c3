"""The one door to ClickHouse: `query`, `insert` and `command` over chdb or a ClickHouse server.

Only this package imports chdb or clickhouse_driver. Callers pass SQL with `%(name)s`
placeholders; values are escaped by clickhouse-driver's escaping for both backends.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from aforo.eventstore.backends import ChdbStore, EventStore, Row, ServerStore
from aforo.eventstore.errors import (
    EmbeddedStoreLocked,
    EventStoreError,
    EventStoreUnavailable,
    InsertNotConfirmed,
    InsertOutcomeUnknown,
)

__all__ = [
    "ChdbStore", "EmbeddedStoreLocked", "EventStore", "EventStoreError",
    "EventStoreUnavailable", "InsertNotConfirmed", "InsertOutcomeUnknown", "ServerStore",
    "command", "get_store", "insert", "query", "insert_rows", "native_formats",
    "tenant_formatted", "tenant_query", "tenant_rows", "use",
]

_default: EventStore | None = None
_override = threading.local()
_lock = threading.Lock()


def build_store() -> EventStore:
    """The store the settings describe: a ClickHouse server when CLICKHOUSE_URL is set."""
    from django.conf import settings

    if settings.CLICKHOUSE_URL:
        return ServerStore(settings.CLICKHOUSE_URL, cluster=settings.CLICKHOUSE_CLUSTER,
                           alt_hosts=settings.CLICKHOUSE_ALT_HOSTS)
    return ChdbStore(settings.CHDB_PATH)


def get_store() -> EventStore:
    store = getattr(_override, "store", None)
    if store is not None:
        return store
    global _default
    if _default is None:
        with _lock:
            if _default is None:
                _default = build_store()
    return _default


def set_default(store: EventStore | None) -> None:
    """Replace the process-wide store (tests and benchmarks choose their backend)."""
    global _default
    _default = store


@contextmanager
def use(store: EventStore) -> Iterator[EventStore]:
    """Route this thread's calls to `store` for the duration of the block."""
    previous = getattr(_override, "store", None)
    _override.store = store
    try:
        yield store
    finally:
        _override.store = previous


def query(sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
    return get_store().query(sql, params)


_TENANT_FILTER = re.compile(r"tenant_id\s*=\s*%\(tenant_id\)s")


def _scoped(tenant_id: str, sql: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """This is the one place that checks tenant scoping; every query function goes through it."""
    if not tenant_id:
        raise ValueError("tenant_query needs a tenant id")
    if not _TENANT_FILTER.search(sql):
        raise ValueError("tenant-scoped SQL must filter on tenant_id = %(tenant_id)s")
    return {**(params or {}), "tenant_id": tenant_id}


def tenant_query(tenant_id: str, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
    """A read scoped to one tenant: the SQL must filter on `tenant_id = %(tenant_id)s`."""
    return get_store().query(sql, _scoped(tenant_id, sql, params))


def tenant_rows(tenant_id: str, sql: str, params: Mapping[str, Any] | None = None,
                ) -> tuple[list[str], list[tuple]]:
    """tenant_query's rows as tuples, with the column names: for results of many rows."""
    return get_store().rows(sql, _scoped(tenant_id, sql, params))


def tenant_formatted(tenant_id: str, sql: str, params: Mapping[str, Any] | None,
                     fmt: str) -> bytes:
    """A tenant-scoped read in an output format the store writes itself (`native_formats`)."""
    return get_store().formatted(sql, _scoped(tenant_id, sql, params), fmt)


def native_formats() -> frozenset[str]:
    return get_store().native_formats


def insert(table: str, rows: Sequence[Mapping[str, Any]]) -> int:
    return get_store().insert(table, rows)


def insert_rows(table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    """Rows as tuples in `columns` order (bulk loads); a column's cells share one type."""
    return get_store().insert_rows(table, columns, rows)


def command(sql: str, params: Mapping[str, Any] | None = None) -> None:
    get_store().command(sql, params)
