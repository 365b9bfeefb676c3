"""Applies the numbered event-store migrations once each, recording them in a table."""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from datetime import datetime, timezone

from aforo.eventstore import get_store
from aforo.eventstore.backends import EventStore, ServerStore
from aforo.eventstore.schema import PER_SHARD, Topology, create_table

MIGRATIONS_PACKAGE = "aforo.eventstore.migrations"


def topology_for(store: EventStore) -> Topology:
    """The store's own topology: a ServerStore built with a cluster name is on that cluster."""
    return Topology(database=store.database, cluster=store.cluster)


def run_statement(store: EventStore, sql: str) -> None:
    """One migration statement; a PER_SHARD one on the first replica of each shard."""
    if not sql.startswith(PER_SHARD):
        store.command(sql)
        return
    if not store.cluster:
        store.command(sql[len(PER_SHARD):])
        return
    for node in store.shard_nodes():
        try:
            node.command(sql[len(PER_SHARD):])
        finally:
            node.close()


def available_migrations() -> list[str]:
    package = importlib.import_module(MIGRATIONS_PACKAGE)
    names = [m.name for m in pkgutil.iter_modules(package.__path__) if m.name[:4].isdigit()]
    return sorted(names)


def applied_migrations(store: EventStore) -> set[str]:
    return {row["name"] for row in store.query("SELECT name FROM schema_migrations")}


def migrate_eventstore(
    store: EventStore | None = None, log: Callable[[str], None] = lambda _m: None
) -> list[str]:
    """Apply every migration not yet recorded; return the names applied (empty the second time)."""
    store = store or get_store()
    if isinstance(store, ServerStore):
        store.ensure_database()
    topology = topology_for(store)
    for sql in create_table(
        topology, "schema_migrations", "name String, applied_at DateTime('UTC')",
        order_by="name", sharding_key="sipHash64(name)",
    ):
        store.command(sql)
    done = applied_migrations(store)
    applied = []
    for name in available_migrations():
        if name in done:
            continue
        module = importlib.import_module(f"{MIGRATIONS_PACKAGE}.{name}")
        for sql in module.statements(topology):
            run_statement(store, sql)
        # :TRICKY: clickhouse-driver waits for a data block after any "INSERT ... VALUES"
        # sent as a plain query, so every insert goes through store.insert.
        store.insert("schema_migrations",
                     [{"name": name, "applied_at": datetime.now(timezone.utc)}])
        applied.append(name)
        log(f"  Applying event store migration {name}... OK")
    return applied
