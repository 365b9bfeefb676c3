"""Shard the ledger by tenant and event id, so one tenant's events spread over every shard.

Until now a cluster placed rows by `sipHash64(tenant_id)`: a tenant lived on one shard, and the
tenant that outgrows a node could never use a second. From here the ledger and its event-id
table place rows by `sipHash64(tenant_id, event_id)`. Every entry of one event (its COST entry,
corrections, reversals, REVENUE and SETTLE entries) carries the same tenant and event id, so an
event still lives on one shard; dedupe reads ask the Distributed `ledger_event_ids`, which
reads every shard, so it stays exact whichever shard an older event was written to.

On one node this changes nothing (no statements). On a cluster only the Distributed tables in
front of the data are recreated (`ledger_local` and `ledger_event_ids_local` keep their rows and
their materialized views); rows already written stay where they are, and reads never depended
on where a row lives. Between the DROP and the CREATE the tables are missing for a moment:
stop ingest while it runs (it takes well under a second).
"""
from aforo.eventstore.schema import EVENT_SHARDING_KEY, Topology, distributed_table


def statements(topology: Topology) -> list[str]:
    if not topology.cluster:
        return []
    out: list[str] = []
    for table in ("ledger", "ledger_event_ids"):
        out.append(f"DROP TABLE IF EXISTS {table}{topology.on_cluster}")
        out.append(distributed_table(topology, table, EVENT_SHARDING_KEY))
    return out
