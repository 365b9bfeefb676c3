"""Hourly rollup for the detectors (intelligence): per UTC hour, customer and product, the
events, billable units and COGS of COST entries.

The detectors compare an hour with the same hour of the trailing 14 days, and a tenant-time-zone
week with the week before; both read this table (a few columns per customer-hour) instead of the
ledger's wide rows. Days in a tenant's zone are sums of its hours: exact for every zone whose
offset is whole hours (:TRICKY: in a half-hour zone such as Asia/Kolkata the hour holding local
midnight counts for the day it starts in).

What the ledger already holds is copied while the view does not exist yet, then the view feeds
the table; stop ingest while it runs, or rows inserted in between are missed (on a new install
there is nothing to copy).
"""
from aforo.eventstore.schema import Topology, create_table, view_source

DIMENSIONS = "customer_id, product_id"
# :TRICKY: measure names differ from the columns they sum (see 0002).
MEASURE_SELECT = """
    toInt64(sum(event_count)) AS events,
    toInt64(sum(input_tokens)) AS tokens_in,
    toInt64(sum(output_tokens)) AS tokens_out,
    toInt64(sum(tool_calls)) AS tool_calls_n,
    toInt64(sum(reasoning_steps)) AS reasoning_steps_n,
    sum(ai_cogs_usd + infra_cogs_usd + fee_cogs_usd + unclassified_cogs_usd) AS cogs
"""
# toStartOfHour, not toStartOfInterval (18.16 has none); the column is DateTime('UTC').
SELECT = (f"SELECT tenant_id, toStartOfHour(occurred_at) AS hour, {DIMENSIONS}, "
          f"{MEASURE_SELECT}")
COST_ONLY = "WHERE entry_type = 'COST'"


def statements(topology: Topology) -> list[str]:
    # :TRICKY: SummingMergeTree sums rows of one key only when parts merge; reads sum() and
    # GROUP BY.
    out = create_table(
        topology, "ledger_hourly",
        "tenant_id String, hour DateTime('UTC'), customer_id String, product_id String, "
        "events Int64, tokens_in Int64, tokens_out Int64, tool_calls_n Int64, "
        "reasoning_steps_n Int64, cogs Decimal(38, 9)",
        engine="SummingMergeTree", partition_by="toYYYYMM(hour)",
        order_by=f"(tenant_id, hour, {DIMENSIONS})",
    )
    out.append(f"INSERT INTO ledger_hourly {SELECT} FROM ledger {COST_ONLY} "
               f"GROUP BY tenant_id, hour, {DIMENSIONS}")
    out.append(
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS ledger_hourly_mv{topology.on_cluster} "
        f"TO {view_source(topology, 'ledger_hourly')} AS {SELECT} "
        f"FROM {view_source(topology, 'ledger')} {COST_ONLY} "
        f"GROUP BY tenant_id, hour, {DIMENSIONS}")
    return out
