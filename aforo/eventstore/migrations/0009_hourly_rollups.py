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
import importlib

from aforo.eventstore.schema import Topology, create_table, view_source

DIMENSIONS = "customer_id, product_id"
# 0005's measures of the estimation basis: the same sums, by hour.
# :TRICKY: measure names differ from the columns they sum (see 0002).
MEASURE_SELECT = importlib.import_module(
    "aforo.eventstore.migrations.0005_expected_revenue").UNSOURCED_SELECT
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
