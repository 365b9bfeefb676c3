"""DDL for event-store tables: one helper decides single node or cluster."""
from __future__ import annotations

from dataclasses import dataclass

_REPLICATED = {
    "MergeTree": "ReplicatedMergeTree",
    "SummingMergeTree": "ReplicatedSummingMergeTree",
    "ReplacingMergeTree": "ReplicatedReplacingMergeTree",
    "AggregatingMergeTree": "ReplicatedAggregatingMergeTree",
}


# Rows of one event share its shard; one tenant's events spread over every shard (0012).
EVENT_SHARDING_KEY = "sipHash64(tenant_id, event_id)"
EVENT_SHARDED = frozenset({"ledger", "ledger_event_ids"})


# A statement for a replicated table, run (by migrate) on one replica of each shard rather
# than ON CLUSTER; the table's replication carries it to the other replicas.
PER_SHARD = "/* aforo: per shard */ "


@dataclass(frozen=True)
class Topology:
    """Where tables live: one node (cluster empty) or a named cluster."""

    database: str
    cluster: str = ""

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER {self.cluster}" if self.cluster else ""


def create_table(
    topology: Topology,
    name: str,
    columns: str,
    *,
    order_by: str,
    partition_by: str | None = None,
    engine: str = "MergeTree",
    engine_args: str = "",
    sharding_key: str = "sipHash64(tenant_id)",
    settings: str = "",
) -> list[str]:
    """CREATE statements for a table: MergeTree on one node, Replicated* + Distributed on a cluster.

    On a cluster, `name` is the Distributed table every query uses and `name_local` holds the data
    on each shard, so queries never need to know which topology they run on. `settings` are the
    MergeTree table's own (`index_granularity = 1024`).
    """
    if engine not in _REPLICATED:
        raise ValueError(f"unsupported engine {engine!r}")
    partition = f" PARTITION BY {partition_by}" if partition_by else ""
    tail = f"{partition} ORDER BY {order_by}" + (f" SETTINGS {settings}" if settings else "")
    if not topology.cluster:
        return [
            f"CREATE TABLE IF NOT EXISTS {name} ({columns}) "
            f"ENGINE = {engine}({engine_args}){tail}"
        ]
    local = f"{name}_local"
    zk_path = f"'/clickhouse/tables/{{shard}}/{topology.database}/{local}', '{{replica}}'"
    args = f"{zk_path}, {engine_args}" if engine_args else zk_path
    return [
        f"CREATE TABLE IF NOT EXISTS {local}{topology.on_cluster} ({columns}) "
        f"ENGINE = {_REPLICATED[engine]}({args}){tail}",
        distributed_table(topology, name, sharding_key),
    ]


def distributed_table(topology: Topology, name: str, sharding_key: str) -> str:
    """The Distributed table `name` in front of `name_local` on every shard of the cluster."""
    local = f"{name}_local"
    # :TRICKY: 18.16 runs ON CLUSTER statements in each node's default database: qualify names.
    return (f"CREATE TABLE IF NOT EXISTS {name}{topology.on_cluster} "
            f"AS {topology.database}.{local} "
            f"ENGINE = Distributed({topology.cluster}, {topology.database}, {local}, "
            f"{sharding_key})")


def alter_table(topology: Topology, name: str, clauses: str) -> list[str]:
    """ALTER statements for a table: itself on one node; on a cluster, the `name_local` table
    holding the data and the Distributed table `name` in front of it, so both keep one shape.

    :TRICKY: ClickHouse 18.16 has no `ADD COLUMN IF NOT EXISTS`; a migration runs once (it is
    recorded as applied), so plain ADD COLUMN is safe.
    """
    if not topology.cluster:
        return [f"ALTER TABLE {name} {clauses}"]
    # :TRICKY: 18.16 refuses ALTER ... ON CLUSTER on a table that is not replicated when the
    # cluster's shards are; the Distributed table holds no data, so it is recreated in the
    # local table's new shape instead. The replicated table is altered on one replica of each
    # shard (PER_SHARD), which replicates the change: 18.16's ON CLUSTER ALTER of a replicated
    # table can run on both replicas of a shard and then hang.
    return [f"{PER_SHARD}ALTER TABLE {name}_local {clauses}",
            f"DROP TABLE IF EXISTS {name}{topology.on_cluster}",
            distributed_table(topology, name, sharding_key_for(name))]


def sharding_key_for(name: str) -> str:
    """The Distributed table's sharding key: by tenant and event for the ledger and its
    event-id table (0012), by tenant for the others."""
    return EVENT_SHARDING_KEY if name in EVENT_SHARDED else "sipHash64(tenant_id)"


def truncate_table(topology: Topology, name: str) -> list[str]:
    """Empty a table (on a cluster: its local tables on every shard)."""
    if not topology.cluster:
        return [f"TRUNCATE TABLE IF EXISTS {name}"]
    return [f"{PER_SHARD}TRUNCATE TABLE IF EXISTS {name}_local"]


def drop_view(topology: Topology, name: str) -> list[str]:
    return [f"DROP TABLE IF EXISTS {name}{topology.on_cluster}"]


def view_source(topology: Topology, table: str) -> str:
    """The table a materialized view reads on each node (the shard's own, on a cluster)."""
    return f"{table}_local" if topology.cluster else table
