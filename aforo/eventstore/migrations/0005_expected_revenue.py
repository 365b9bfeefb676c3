"""Expected revenue for every event: provisional revenue on COST entries, SETTLE entries, the
estimation basis and the per-unit estimate rates (docs/eventstore.md, "Expected revenue").

- ledger: `entry_type` gains SETTLE; `carried_revenue_usd` (the producer's `revenueUsd`) and
  `revenue_source` (NONE, CARRIED, RATED) say which provisional revenue an event has; the
  producer fields `agent`, `latency_ms` and `cache_write_input_tokens`.
- `ledger_daily` and `ledger_daily_customers` gain `revenue_carried` and `revenue_rated`: the
  provisional revenue still settling (COST entries plus the SETTLE entries that cancel it), and
  `events_unsourced`: the events still settling with no provisional revenue (what the estimate
  prices, or what stays unknown when no rate exists).
- `ledger_daily_unsourced`: the usage and cost of events with no provisional revenue that are
  not settled, by day, customer, product, provider and model (the estimation basis).
- `revenue_rates`: the per-unit revenue estimates attribution derives from invoice lines.

Events attributed before this migration get their SETTLE entries here, and the two rollups are
rebuilt from the ledger. Stop ingest and attribution while it runs: the rollups' views are
dropped and recreated, and rows inserted in between would miss them.
"""
import importlib

from aforo.eventstore.schema import (
    Topology,
    alter_table,
    create_table,
    drop_view,
    truncate_table,
    view_source,
)

# Rows written before this migration carry no source: a rated revenue means the customer was
# on a plan (rated 0 on a plan is indistinguishable from no plan, and then estimated).
LEDGER_CHANGES = (
    "MODIFY COLUMN entry_type Enum8('COST' = 1, 'REVENUE' = 2, 'SETTLE' = 3), "
    "ADD COLUMN carried_revenue_usd Decimal(18, 9) DEFAULT 0 AFTER rated_revenue_usd, "
    "ADD COLUMN revenue_source Enum8('NONE' = 0, 'CARRIED' = 1, 'RATED' = 2) "
    "DEFAULT if(rated_revenue_usd != 0, 'RATED', 'NONE') AFTER carried_revenue_usd, "
    "ADD COLUMN agent String AFTER session_id, "
    "ADD COLUMN latency_ms UInt32 AFTER agent, "
    "ADD COLUMN cache_write_input_tokens Int64 AFTER cached_input_tokens"
)

# The rollups' measures after this migration (0002's plus the provisional revenue).
# :TRICKY: measure names differ from the columns they sum (see 0002).
_0002 = importlib.import_module("aforo.eventstore.migrations.0002_daily_rollups")
MEASURE_SELECT = f"""{_0002.MEASURE_SELECT.rstrip()},
    sumIf(carried_revenue_usd, entry_type IN ('COST', 'SETTLE')) AS revenue_carried,
    sumIf(rated_revenue_usd, entry_type IN ('COST', 'SETTLE')) AS revenue_rated,
    toInt64(sumIf(event_count, revenue_source = 'NONE' AND entry_type IN ('COST', 'SETTLE')))
        AS events_unsourced
"""
ROLLUPS = {
    "ledger_daily": "product_id, product_type, provider, model",
    "ledger_daily_customers": "customer_id",
}

UNSOURCED_DIMENSIONS = "customer_id, product_id, provider, model"
UNSOURCED_SELECT = """
    toInt64(sum(event_count)) AS events,
    toInt64(sum(input_tokens)) AS tokens_in,
    toInt64(sum(output_tokens)) AS tokens_out,
    toInt64(sum(tool_calls)) AS tool_calls_n,
    toInt64(sum(reasoning_steps)) AS reasoning_steps_n,
    sum(ai_cogs_usd + infra_cogs_usd + fee_cogs_usd + unclassified_cogs_usd) AS cogs
"""
UNSOURCED_WHERE = "revenue_source = 'NONE' AND entry_type IN ('COST', 'SETTLE')"

_DIMENSIONS = ("occurred_at", "customer_id", "product_id", "product_type", "provider", "model",
               "requested_model", "tool_name", "source_type", "session_id")
_MEASURES = ("event_count", "input_tokens", "output_tokens", "reasoning_steps", "tool_calls",
             "ai_cogs_usd", "infra_cogs_usd", "fee_cogs_usd", "unclassified_cogs_usd",
             "rated_revenue_usd")
_ORIGINAL = "entry_type = 'COST' AND entry_kind = 'ORIGINAL'"

# Every event attributed so far (an un-reversed ORIGINAL REVENUE entry) gets the SETTLE entry
# that cancels what it counted as settling; nothing carried revenue before this migration.
SETTLE_ATTRIBUTED = f"""
INSERT INTO ledger (tenant_id, entry_id, entry_type, entry_kind, event_id, recorded_at,
                    {", ".join(_DIMENSIONS)}, {", ".join(_MEASURES)}, revenue_source,
                    cost_source)
SELECT tenant_id, concat('settle-', hex(cityHash64('0005', tenant_id, event_id))), 'SETTLE',
       'ORIGINAL', event_id, now(), {", ".join(f"e_{d}" for d in _DIMENSIONS)},
       {", ".join(f"-c_{m}" for m in _MEASURES)}, e_source, e_cost_source
FROM (
    SELECT tenant_id, event_id,
           {", ".join(f"anyIf({d}, {_ORIGINAL}) AS e_{d}" for d in _DIMENSIONS)},
           anyIf(revenue_source, {_ORIGINAL}) AS e_source,
           anyIf(cost_source, {_ORIGINAL}) AS e_cost_source,
           {", ".join(f"sumIf({m}, entry_type = 'COST') AS c_{m}" for m in _MEASURES)}
    FROM ledger
    WHERE entry_type IN ('COST', 'REVENUE')
    GROUP BY tenant_id, event_id
    HAVING countIf(entry_type = 'REVENUE' AND entry_kind = 'ORIGINAL')
               > countIf(entry_type = 'REVENUE' AND entry_kind = 'REVERSAL')
       AND countIf({_ORIGINAL}) = 1
)
"""


def _rollup(topology: Topology, table: str, dimensions: str) -> list[str]:
    source = view_source(topology, "ledger")
    return [
        *drop_view(topology, f"{table}_mv"),
        *alter_table(topology, table, "ADD COLUMN revenue_carried Decimal(38, 9), "
                                      "ADD COLUMN revenue_rated Decimal(38, 9), "
                                      "ADD COLUMN events_unsourced Int64"),
        *truncate_table(topology, table),
        f"INSERT INTO {table} SELECT tenant_id, toDate(occurred_at) AS day, {dimensions}, "
        f"{MEASURE_SELECT} FROM ledger GROUP BY tenant_id, day, {dimensions}",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_mv{topology.on_cluster} "
        f"TO {view_source(topology, table)} AS SELECT tenant_id, toDate(occurred_at) AS day, "
        f"{dimensions}, {MEASURE_SELECT} FROM {source} GROUP BY tenant_id, day, {dimensions}",
    ]


def statements(topology: Topology) -> list[str]:
    out = [*alter_table(topology, "ledger", LEDGER_CHANGES)]
    # The SETTLE entries go in while the rollups' views are gone; the rebuild reads them.
    for table in ROLLUPS:
        out += drop_view(topology, f"{table}_mv")
    out.append(SETTLE_ATTRIBUTED)
    for table, dimensions in ROLLUPS.items():
        out += _rollup(topology, table, dimensions)
    # :TRICKY: SummingMergeTree drops a row whose measures all sum to zero when parts merge,
    # so a settled event's basis disappears from this table; reads still sum() and GROUP BY.
    out += create_table(
        topology, "ledger_daily_unsourced",
        "tenant_id String, day Date, customer_id String, product_id String, provider String, "
        "model String, events Int64, tokens_in Int64, tokens_out Int64, tool_calls_n Int64, "
        "reasoning_steps_n Int64, cogs Decimal(38, 9)",
        engine="SummingMergeTree", partition_by="toYYYYMM(day)",
        order_by=f"(tenant_id, day, {UNSOURCED_DIMENSIONS})",
    )
    out.append(
        f"INSERT INTO ledger_daily_unsourced SELECT tenant_id, toDate(occurred_at) AS day, "
        f"{UNSOURCED_DIMENSIONS}, {UNSOURCED_SELECT} FROM ledger WHERE {UNSOURCED_WHERE} "
        f"GROUP BY tenant_id, day, {UNSOURCED_DIMENSIONS}")
    out.append(
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS ledger_daily_unsourced_mv{topology.on_cluster} "
        f"TO {view_source(topology, 'ledger_daily_unsourced')} AS SELECT tenant_id, "
        f"toDate(occurred_at) AS day, {UNSOURCED_DIMENSIONS}, {UNSOURCED_SELECT} "
        f"FROM {view_source(topology, 'ledger')} WHERE {UNSOURCED_WHERE} "
        f"GROUP BY tenant_id, day, {UNSOURCED_DIMENSIONS}")
    # One row per (customer, product) a version of the estimate prices, plus a product-wide
    # row (customer_id ''); readers take the tenant's highest version.
    out += create_table(
        topology, "revenue_rates",
        "tenant_id String, version UInt64, customer_id String, product_id String, "
        "per_event Decimal(38, 18), per_input_token Decimal(38, 18), "
        "per_output_token Decimal(38, 18), per_tool_call Decimal(38, 18), "
        "per_reasoning_step Decimal(38, 18), per_cogs_nano Decimal(38, 18)",
        order_by="(tenant_id, version, customer_id, product_id)",
    )
    return out
