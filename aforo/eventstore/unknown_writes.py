"""Settling a cluster insert whose outcome is unknown (InsertOutcomeUnknown).

ClickHouse 18.16 writes a block to a ReplicatedMergeTree, waits for its quorum, and only then
feeds the table's materialized views, one at a time in name order, each with a quorum write of
its own; the first failure stops the rest. A write whose quorum times out (code 319) or whose
replica dies during it leaves the block committed in `ledger_local` on a live replica and fed
to none, some or all of the views: `ledger_event_ids`, which dedupe reads, may never learn of
those events, nor the rollups; and retrying the identical block does not help, as the replica
drops it as a duplicate and skips the views again (measured on the test cluster;
docs/eventstore.md).

`unknown_writes_resolve` asks every replica of every shard directly (no sequential
consistency, so a block awaiting its quorum counts) which of the events are in the ledger, and
feeds each view only those it lacks, from their own ledger rows through the view's own SELECT:
views that hold event ids are asked, summing views are judged by where the failed write
stopped (FeedStop) or by the id-holding views around them. If a replica does not answer,
nothing is decided (EventStoreUnavailable): a block may sit on it alone.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from aforo.eventstore.backends import (
    CLUSTER_SETTINGS,
    UNAVAILABLE_CODES,
    ServerStore,
    write_refused,
)
from aforo.eventstore.errors import EventStoreError, EventStoreUnavailable, FeedStop

log = logging.getLogger(__name__)

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
    fed: dict[str, int] = field(default_factory=dict)  # view: how many events it was fed


@dataclass
class _View:
    """A materialized view of `ledger_local`, as the repair runs it."""

    name: str
    target: str      # its target table, qualified
    select: str      # its SELECT over the repaired events' ledger rows (%(ids)s)
    columns: str     # the target's columns, in the view's order
    holds_ids: bool  # its target has an event_id column: what it holds can be looked up


def unknown_writes_resolve(store: ServerStore, *, tenant_id: str, event_ids: list[str],
                           stops: dict[str, FeedStop] | None = None) -> Resolution:
    """Which of `event_ids` (a tenant's original COST entries) a cluster holds, every one of
    them with its read models; raises EventStoreUnavailable if a replica does not answer.

    `stops`: where the failed write stopped feeding the views, by event id (FeedStop; its
    node names the shard it applies to). The repair updates it as it feeds, so a repair that
    fails midway leaves in it how far it got."""
    stops = {} if stops is None else stops
    params = {"tenant_id": tenant_id, "ids": tuple(event_ids)}
    nodes = store.replica_nodes()
    shard_of = {f"{node.host}:{node.port}": shard for shard, _replica, node in nodes}
    in_ledger: dict[int, dict[str, ServerStore]] = {}  # shard: event id -> a node holding it
    try:
        for shard, _replica, node in nodes:
            for (event_id,) in node.rows(
                    f"SELECT DISTINCT event_id {_ORIGINAL_COST}", params)[1]:
                in_ledger.setdefault(shard, {}).setdefault(event_id, node)
        result = Resolution()
        if in_ledger:
            views = _views(nodes[0][2])
            for shard, held in in_ledger.items():
                result.written.update(held)
                replicas = [node for s, _r, node in nodes if s == shard]
                _shard_repair(shard, held, replicas, views, tenant_id, stops, shard_of, result)
        result.absent = set(event_ids) - result.written
        return result
    finally:
        for _shard, _replica, node in nodes:
            node.close()


# The rows an ingest writes for an event, which the views were fed: its original COST entry.
_ORIGINAL_COST = ("FROM ledger_local WHERE tenant_id = %(tenant_id)s AND entry_type = 'COST' "
                  "AND entry_kind = 'ORIGINAL' AND event_id IN %(ids)s")


def _views(node: ServerStore) -> list[_View]:
    """The ledger's materialized views, in the order 18.16 feeds them (by name)."""
    source = f"FROM {node.database}.ledger_local "
    views = []
    for view in node.query(
            "SELECT name, create_table_query FROM system.tables WHERE database = currentDatabase() "
            "AND engine = 'MaterializedView' ORDER BY name"):
        create = view["create_table_query"]
        if source not in create:
            continue
        target = _TARGET.search(create).group(1)
        select = create.split(" AS SELECT ", 1)[1].replace("%", "%%").replace(
            source, f"FROM (SELECT * {_ORIGINAL_COST}) ", 1)
        columns = [c["name"] for c in node.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() "
            "AND table = %(view)s", {"view": view["name"]})]
        target_columns = {c["name"] for c in node.query(
            "SELECT name FROM system.columns WHERE database = %(db)s AND table = %(table)s",
            {"db": target.split(".")[0], "table": target.split(".")[-1]})}
        views.append(_View(view["name"], target, select, ", ".join(columns),
                           "event_id" in target_columns))
    return views


def _shard_repair(shard: int, held: dict[str, ServerStore], replicas: list[ServerStore],
                  views: list[_View], tenant_id: str, stops: dict[str, FeedStop],
                  shard_of: dict[str, int], result: Resolution) -> None:
    """Feed each view of one shard the events of `held` it lacks, in feed order.

    A view whose target holds event ids is asked, on every replica of the shard, which of the
    events it holds. A summing view cannot be asked: it holds the events' block when the
    write's FeedStop for this shard says so, or else when the nearest view after it that would
    hold the events' ids does (18.16 feeds views in order and stops at the first failure), or,
    with none after it, the nearest before it. docs/eventstore.md has the cases this leaves."""
    ids = tuple(held)
    params = {"tenant_id": tenant_id, "ids": ids}
    would: dict[str, set[str]] = {}  # id view: the events its SELECT makes rows of
    has: dict[str, set[str]] = {}    # id view: the events its target holds on some replica
    for view in views:
        if view.holds_ids:
            would[view.name], has[view.name] = set(), set()
            for node in replicas:
                would[view.name].update(e for (e,) in node.rows(
                    f"SELECT DISTINCT event_id FROM (SELECT {view.select})", params)[1])
                has[view.name].update(e for (e,) in node.rows(
                    f"SELECT DISTINCT event_id FROM {view.target.split('.')[-1]} "
                    "WHERE tenant_id = %(tenant_id)s AND event_id IN %(ids)s", params)[1])

    def witness(position: int, event_id: str) -> str | None:
        """The id view that tells whether the summing view at `position` holds the event."""
        after = [v.name for v in views[position + 1:] if v.holds_ids and event_id in would[v.name]]
        before = [v.name for v in views[:position] if v.holds_ids and event_id in would[v.name]]
        return after[0] if after else (before[-1] if before else None)

    own = {e: stop for e in ids
           if (stop := stops.get(e)) is not None and shard_of.get(stop.node) == shard}

    def lacks(position: int, view: _View, event_id: str) -> bool:
        if view.holds_ids:
            return event_id in would[view.name] and event_id not in has[view.name]
        if event_id in own:
            return not own[event_id].fed(view.name)
        judge = witness(position, event_id)
        return judge is not None and event_id not in has[judge]

    todo = [(view, [e for e in ids if lacks(i, view, e)]) for i, view in enumerate(views)]
    judged = {e for view, lacking in todo if not view.holds_ids for e in lacking
              if e not in own}
    if judged:
        # Said before feeding: a repair failing midway turns this judgement into the FeedStop
        # the next one goes by.
        log.warning("shard %d: the summing views of %d events judged by the id-holding views "
                    "around them (no FeedStop names the shard)", shard, len(judged))
    for view, lacking in todo:
        by_node: dict[int, list[str]] = {}
        for event_id in lacking:
            by_node.setdefault(id(held[event_id]), []).append(event_id)
        fed_here: list[str] = []  # of this view's feeds, those done
        for some in by_node.values():
            node = held[some[0]]
            try:
                _view_feed(node, view, tenant_id, some)
            except EventStoreError as exc:
                # How far this repair got, for the next one: every view before this one holds
                # the shard's events now; this one too unless its write was refused (but for
                # the events an earlier feed of it, through another replica, wrote).
                here = FeedStop(f"{node.host}:{node.port}", view.name,
                                wrote=not write_refused(str(exc)))
                for event_id in ids:
                    stops[event_id] = here
                for event_id in fed_here:
                    stops[event_id] = FeedStop(here.node, view.name, wrote=True)
                raise
            fed_here.extend(some)
            result.repaired.update(some)
            result.fed[view.name] = result.fed.get(view.name, 0) + len(some)
    some_node = replicas[0]
    done = FeedStop(f"{some_node.host}:{some_node.port}", FeedStop.COMPLETE, wrote=True)
    for event_id in ids:
        stops[event_id] = done


def _view_feed(node: ServerStore, view: _View, tenant_id: str, event_ids: list[str]) -> None:
    """Run `view` over these events' ledger rows on `node` (a replica holding them), into its
    target: what the insert would have done. The block is sorted on all its columns, so a
    repeated feed (after a failure during this one) is the same block, which the replicated
    target drops as a duplicate."""
    try:
        node.command(f"INSERT INTO {view.target} ({view.columns}) SELECT * FROM "
                     f"(SELECT {view.select}) ORDER BY {view.columns}",
                     {"tenant_id": tenant_id, "ids": tuple(event_ids)}, settings=_QUORUM)
    except EventStoreError as exc:
        # A replica's own connection is not the cluster's: its refusals (another quorum
        # insert still waiting, 286) come as plain errors. They mean "later", not "never":
        # the retry is answered 503 and feeds the views again.
        if getattr(exc.__cause__, "code", None) in UNAVAILABLE_CODES:
            raise EventStoreUnavailable(f"{node.host}:{node.port}: {exc}") from exc
        raise
