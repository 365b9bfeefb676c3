"""Every ingested event id, ordered for lookup, filled by a materialized view on the ledger.

Dedupe asks "is this event id already in the ledger?"; the ledger is ordered by time, so that
lookup would scan a tenant's history. The view copies each original COST entry's id as part of
the same insert into a table ordered by (tenant_id, event_id).
"""
from aforo.eventstore.schema import Topology, create_table


def statements(topology: Topology) -> list[str]:
    target = "ledger_event_ids_local" if topology.cluster else "ledger_event_ids"
    source = "ledger_local" if topology.cluster else "ledger"
    return [
        *create_table(
            topology, "ledger_event_ids",
            "tenant_id String, event_id String, occurred_at DateTime('UTC')",
            order_by="(tenant_id, event_id)", engine="ReplacingMergeTree",
        ),
        # :TRICKY: a materialized view sees only rows inserted after it exists; the ledger
        # gets its first rows after this migration, so nothing is missed on a new install.
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS ledger_event_ids_mv{topology.on_cluster} "
        f"TO {target} AS SELECT tenant_id, event_id, occurred_at FROM {source} "
        "WHERE entry_type = 'COST' AND entry_kind = 'ORIGINAL'",
    ]
