"""Read models of the ledger for the COGS dashboards, each a table fed by a materialized view.

`ledger_daily` sums per day, product, provider and model (a few hundred rows a day);
`ledger_daily_customers` per day and customer. Both carry the same measures, summed from COST
entries (events, tokens, the four cost buckets) and REVENUE entries (revenue), so a query over
either gives the same totals as the same query over the raw ledger.

`ledger_event_costs` holds each COST entry's total, sorted by product+provider+model group and
cost, so "entries of this group costing at least X" (anomalies) reads a few granules instead of
scanning the period.
"""
from aforo.eventstore.schema import Topology, create_table

# :TRICKY: the measures are renamed (events, cogs_ai, ...) because an alias equal to the column
# it aggregates (`sum(event_count) AS event_count`) makes ClickHouse 18.16 substitute the alias
# inside the aggregate and fail; distinct names keep the view's SELECT unambiguous.
MEASURE_COLUMNS = """
    events Int64,
    tokens_in Int64,
    tokens_out Int64,
    cogs_ai Decimal(38, 9),
    cogs_infra Decimal(38, 9),
    cogs_fee Decimal(38, 9),
    cogs_unclassified Decimal(38, 9),
    revenue Decimal(38, 9)
"""

MEASURE_SELECT = """
    toInt64(sumIf(event_count, entry_type = 'COST')) AS events,
    toInt64(sumIf(input_tokens, entry_type = 'COST')) AS tokens_in,
    toInt64(sumIf(output_tokens, entry_type = 'COST')) AS tokens_out,
    sumIf(ai_cogs_usd, entry_type = 'COST') AS cogs_ai,
    sumIf(infra_cogs_usd, entry_type = 'COST') AS cogs_infra,
    sumIf(fee_cogs_usd, entry_type = 'COST') AS cogs_fee,
    sumIf(unclassified_cogs_usd, entry_type = 'COST') AS cogs_unclassified,
    sumIf(revenue_usd, entry_type = 'REVENUE') AS revenue
"""

ROLLUPS = {
    # table: (its dimension columns, their DDL)
    "ledger_daily": (
        "product_id, product_type, provider, model",
        "product_id String, product_type String, provider String, model String",
    ),
    "ledger_daily_customers": ("customer_id", "customer_id String"),
}


EVENT_COSTS_SELECT = """
    tenant_id, cityHash64(product_id, provider, model) AS group_hash,
    ai_cogs_usd + infra_cogs_usd + fee_cogs_usd + unclassified_cogs_usd AS cogs,
    occurred_at, event_id, entry_kind, product_id, provider, model
"""


def _event_costs(topology: Topology, source: str, target: str) -> list[str]:
    out = create_table(
        topology, "ledger_event_costs",
        "tenant_id String, group_hash UInt64, cogs Decimal(18, 9), occurred_at DateTime('UTC'), "
        "event_id String, entry_kind Enum8('ORIGINAL' = 1, 'CORRECTION' = 2, 'REVERSAL' = 3), "
        "product_id String, provider String, model String",
        partition_by="toYYYYMM(occurred_at)", order_by="(tenant_id, group_hash, cogs)",
    )
    out.append(f"INSERT INTO ledger_event_costs SELECT {EVENT_COSTS_SELECT} FROM ledger "
               "WHERE entry_type = 'COST'")
    out.append(f"CREATE MATERIALIZED VIEW IF NOT EXISTS ledger_event_costs_mv"
               f"{topology.on_cluster} TO {target} AS SELECT {EVENT_COSTS_SELECT} "
               f"FROM {source} WHERE entry_type = 'COST'")
    return out


def statements(topology: Topology) -> list[str]:
    # On a cluster each shard's view reads that shard's ledger_local and writes its own
    # rollup_local; the Distributed rollup table reads them all.
    clustered = bool(topology.cluster)
    source = "ledger_local" if clustered else "ledger"
    out: list[str] = []
    for table, (dimensions, dimension_ddl) in ROLLUPS.items():
        # :TRICKY: SummingMergeTree only sums rows that share the ORDER BY key when parts merge,
        # and merges happen whenever; every read must still sum() and GROUP BY.
        out += create_table(
            topology, table, f"tenant_id String, day Date, {dimension_ddl}, {MEASURE_COLUMNS}",
            engine="SummingMergeTree", partition_by="toYYYYMM(day)",
            order_by=f"(tenant_id, day, {dimensions})",
        )
        target = f"{table}_local" if clustered else table
        # :TRICKY: a materialized view sees only rows inserted after it exists (POPULATE does
        # not combine with TO), so what the ledger already holds is copied first; on a new
        # install that is nothing. Run it while nothing is ingesting.
        # toDate(occurred_at) is the UTC day: the column is DateTime('UTC').
        out.append(
            f"INSERT INTO {table} SELECT tenant_id, toDate(occurred_at) AS day, {dimensions}, "
            f"{MEASURE_SELECT} FROM ledger GROUP BY tenant_id, day, {dimensions}"
        )
        out.append(
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_mv{topology.on_cluster} "
            f"TO {target} AS SELECT tenant_id, toDate(occurred_at) AS day, {dimensions}, "
            f"{MEASURE_SELECT} FROM {source} "
            f"GROUP BY tenant_id, day, {dimensions}"
        )
    out += _event_costs(topology, source,
                        "ledger_event_costs_local" if clustered else "ledger_event_costs")
    return out
