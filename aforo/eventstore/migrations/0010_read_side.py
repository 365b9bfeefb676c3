"""The read side at 100M events: `ledger_customer_events`, each customer's events in time order.

One narrow row per event (its ORIGINAL COST entry): tenant, customer, occurred_at, event id, and
the product and provider a ledger page may also filter by; ordered by (tenant_id, customer_id,
occurred_at, event_id), so `/transactions?customerId=` finds its page and its daily counts in a
few granules instead of scanning the period's ledger for one customer's rows. The page's rows
are then read from the ledger itself (by occurred_at and event id, the ledger's own key): this
table only says which events to read. It is a cache of the ledger, never a second truth; a test
compares it with the raw ledger after random ingests, corrections and attributions.

Can run while ingest runs: the view is created first, then the ledger's events are copied. An
event written between the two lands in the table twice; the table is a ReplacingMergeTree on
its whole key, so merges fold the copy, and every read counts and lists DISTINCT event ids, so
a copy not yet merged changes nothing.
"""
from aforo.eventstore.schema import Topology, create_table, view_source

COLUMNS = ("tenant_id String, customer_id String, occurred_at DateTime('UTC'), event_id String, "
           "product_id String, provider String")
SELECT = ("SELECT tenant_id, customer_id, occurred_at, event_id, product_id, provider")
ORIGINAL_COST = "WHERE entry_type = 'COST' AND entry_kind = 'ORIGINAL'"


def statements(topology: Topology) -> list[str]:
    out = create_table(
        topology, "ledger_customer_events", COLUMNS, engine="ReplacingMergeTree",
        partition_by="toYYYYMM(occurred_at)",
        order_by="(tenant_id, customer_id, occurred_at, event_id)",
    )
    out.append(
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS ledger_customer_events_mv{topology.on_cluster} "
        f"TO {view_source(topology, 'ledger_customer_events')} AS {SELECT} "
        f"FROM {view_source(topology, 'ledger')} {ORIGINAL_COST}")
    out.append(f"INSERT INTO ledger_customer_events {SELECT} FROM ledger {ORIGINAL_COST}")
    return out
