"""Allocations (cost sources, docs/cost-sources.md "Allocation"): cost that events do not carry
spread onto a period's events as COST entries of their own allocation.

- ledger: `allocation_id` (empty on every other entry). An allocation's entries are COST
  CORRECTIONs (its reversal's COST REVERSALs) with the allocation's id, and, on events that are
  settled, the SETTLE entries cancelling them as settling; they count in every cost figure.
- `ledger_daily` and `ledger_daily_customers` gain `cogs_allocated`: the allocated part of the
  COGS (the composition's "allocated", and what anomalies subtract to compare metered cost).
- `ledger_hourly` (the detectors) and `ledger_event_costs` (anomalies' candidates) skip
  allocation entries: an allocation is a book entry, not usage, and must not read as a spike.

No allocation exists before this migration, so nothing is copied: the rollups' new column is 0
on every existing row, which is right, and the two views' filters change nothing already
written. The four views are dropped and recreated: stop ingest while it runs (a few seconds;
rows inserted between a drop and its create would miss that read model).

:TRICKY: it must come after 0009 (docs/eventstore.md, the schema plan): on a fresh install the
views it recreates must already exist, and 0009's `ledger_hourly` view is one of them.
"""
from __future__ import annotations

import importlib

from aforo.eventstore.schema import Topology, alter_table, drop_view, view_source

# 0005's rollup measures (the current ones) plus the allocated COGS.
_0005 = importlib.import_module("aforo.eventstore.migrations.0005_expected_revenue")
_0002 = importlib.import_module("aforo.eventstore.migrations.0002_daily_rollups")
_0009 = importlib.import_module("aforo.eventstore.migrations.0009_hourly_rollups")

ALLOCATED = ("sumIf(ai_cogs_usd + infra_cogs_usd + fee_cogs_usd + unclassified_cogs_usd, "
             "entry_type = 'COST' AND allocation_id != '') AS cogs_allocated")
MEASURE_SELECT = f"{_0005.MEASURE_SELECT.rstrip()},\n    {ALLOCATED}\n"
NOT_ALLOCATED = "entry_type = 'COST' AND allocation_id = ''"


def statements(topology: Topology) -> list[str]:
    clustered = bool(topology.cluster)
    source = view_source(topology, "ledger")
    out = [*alter_table(topology, "ledger", "ADD COLUMN allocation_id String")]
    for table, dimensions in _0005.ROLLUPS.items():
        out += drop_view(topology, f"{table}_mv")
        out += alter_table(topology, table, "ADD COLUMN cogs_allocated Decimal(38, 9)")
        out.append(
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_mv{topology.on_cluster} "
            f"TO {view_source(topology, table)} AS SELECT tenant_id, "
            f"toDate(occurred_at) AS day, {dimensions}, {MEASURE_SELECT} FROM {source} "
            f"GROUP BY tenant_id, day, {dimensions}")
    out += drop_view(topology, "ledger_hourly_mv")
    out.append(
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS ledger_hourly_mv{topology.on_cluster} "
        f"TO {view_source(topology, 'ledger_hourly')} AS {_0009.SELECT} FROM {source} "
        f"WHERE {NOT_ALLOCATED} GROUP BY tenant_id, hour, {_0009.DIMENSIONS}")
    out += drop_view(topology, "ledger_event_costs_mv")
    target = "ledger_event_costs_local" if clustered else "ledger_event_costs"
    out.append(
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS ledger_event_costs_mv{topology.on_cluster} "
        f"TO {target} AS SELECT {_0002.EVENT_COSTS_SELECT} FROM {source} "
        f"WHERE {NOT_ALLOCATED}")
    return out
