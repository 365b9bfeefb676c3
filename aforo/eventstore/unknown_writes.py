"""Settling a cluster insert whose outcome is unknown (InsertOutcomeUnknown).

ClickHouse 18.16 writes a block to a ReplicatedMergeTree, waits for its quorum, and only then
feeds the table's materialized views. A write whose quorum times out (code 319) or whose
replica dies during it leaves the block committed in `ledger_local` on a live replica but
skipped by every view: `ledger_event_ids`, which dedupe reads, never learns of those events,
nor do the rollups; and retrying the identical block does not help, as the replica drops it as
a duplicate and skips the views again (measured on the test cluster; docs/eventstore.md).

`unknown_writes_resolve` asks every replica of every shard directly (no sequential
consistency, so a block awaiting its quorum counts) which of the events are in the ledger.
Those in the ledger whose views were skipped have their read models filled from their own
ledger rows, through each view's own SELECT. If a replica does not answer, nothing is decided
(EventStoreUnavailable): a block may sit on it alone.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from aforo.eventstore.backends import CLUSTER_SETTINGS, UNAVAILABLE_CODES, ServerStore
from aforo.eventstore.errors import EventStoreError, EventStoreUnavailable

# A write that failed may still be finishing on a shard's replica (waiting for its quorum, then
# feeding its views) until its quorum wait runs out: its outcome is settled only after that.
SETTLE_AFTER_S = CLUSTER_SETTINGS["insert_quorum_timeout"] / 1000 + 5
_TARGET = re.compile(r" TO (\S+) \(")
# Fed like the ingest's own insert: acknowledged once both replicas hold it, so reads with
# select_sequential_consistency see it.
_QUORUM = {k: CLUSTER_SETTINGS[k] for k in ("insert_quorum", "insert_quorum_timeout")}


@dataclass
class Resolution:
    written: set[str] = field(default_factory=set)   # in the ledger, read models complete
    absent: set[str] = field(default_factory=set)    # on no replica: never written
    repaired: set[str] = field(default_factory=set)  # of `written`, those whose views we fed


def unknown_writes_resolve(store: ServerStore, *, tenant_id: str,
                           event_ids: list[str]) -> Resolution:
    """Which of `event_ids` (a tenant's original COST entries) a cluster holds, every one of
    them with its read models; raises EventStoreUnavailable if a replica does not answer."""
    params = {"tenant_id": tenant_id, "ids": tuple(event_ids)}
    nodes = store.replica_nodes()
    in_ledger: dict[int, dict[str, ServerStore]] = {}  # shard: event id -> a node holding it
    in_ids: dict[int, set[str]] = {}
    try:
        for shard, _replica, node in nodes:
            for (event_id,) in node.rows(
                    "SELECT DISTINCT event_id FROM ledger_local WHERE tenant_id = %(tenant_id)s "
                    "AND entry_type = 'COST' AND entry_kind = 'ORIGINAL' "
                    "AND event_id IN %(ids)s", params)[1]:
                in_ledger.setdefault(shard, {}).setdefault(event_id, node)
            in_ids.setdefault(shard, set()).update(event_id for (event_id,) in node.rows(
                "SELECT DISTINCT event_id FROM ledger_event_ids_local "
                "WHERE tenant_id = %(tenant_id)s AND event_id IN %(ids)s", params)[1])
        result = Resolution()
        for shard, held in in_ledger.items():
            result.written.update(held)
            skipped = [e for e in held if e not in in_ids.get(shard, set())]
            by_node: dict[int, list[str]] = {}
            for event_id in skipped:
                by_node.setdefault(id(held[event_id]), []).append(event_id)
            for ids in by_node.values():
                _views_feed(held[ids[0]], tenant_id, ids)
                result.repaired.update(ids)
        result.absent = set(event_ids) - result.written
        return result
    finally:
        for _shard, _replica, node in nodes:
            node.close()


def _views_feed(node: ServerStore, tenant_id: str, event_ids: list[str]) -> None:
    """Run each materialized view of `ledger_local` over these events' ledger rows on `node`
    (a replica holding them), into the view's target: what the insert would have done."""
    source = f"FROM {node.database}.ledger_local "
    rows = node.query(
        "SELECT name, create_table_query FROM system.tables WHERE database = currentDatabase() "
        "AND engine = 'MaterializedView' ORDER BY name")
    params = {"tenant_id": tenant_id, "ids": tuple(event_ids)}
    # `ledger_event_ids` last: once dedupe finds an event there, every view has been fed. Each
    # block sorted on all its columns: a repeated feed (a failure during this one) is then
    # the same block, which the replicated target drops as a duplicate.
    rows.sort(key=lambda view: view["name"] == "ledger_event_ids_mv")
    for view in rows:
        create = view["create_table_query"]
        if source not in create:
            continue
        target = _TARGET.search(create).group(1)
        select = create.split(" AS SELECT ", 1)[1].replace("%", "%%").replace(
            source, f"FROM (SELECT * {source}WHERE tenant_id = %(tenant_id)s "
                    "AND event_id IN %(ids)s) ", 1)
        columns = [c["name"] for c in node.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() "
            "AND table = %(view)s", {"view": view["name"]})]
        names = ", ".join(columns)
        try:
            node.command(f"INSERT INTO {target} ({names}) SELECT * FROM (SELECT {select}) "
                         f"ORDER BY {names}", params, settings=_QUORUM)
        except EventStoreError as exc:
            # A replica's own connection is not the cluster's: its refusals (another quorum
            # insert still waiting, 286) come as plain errors. They mean "later", not "never":
            # the retry is answered 503 and feeds the views again (the same sorted blocks).
            if getattr(exc.__cause__, "code", None) in UNAVAILABLE_CODES:
                raise EventStoreUnavailable(f"{node.host}:{node.port}: {exc}") from exc
            raise
