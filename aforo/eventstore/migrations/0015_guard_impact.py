"""The Margin Guard impact report's read models (docs/margin-guard.md, "Impact"): two
SummingMergeTree tables by tenant and occurred_at second, each fed by a materialized view on
the ledger, so a window or an intervention at any second is answered exactly without the raw
ledger:

- `guard_downgraded`: the calls the guard answered with a cheaper model than the one asked for
  (COST entries with `requested_model` set and different from `model`), per second, provider,
  requested model and model: events, the four token counts and the AI cost; one row in 50 of
  the ledger's in the benchmark. Like `ledger_hourly` (0009, 0013) it skips allocation entries:
  an allocation is a book entry, not the call's cost, and the model switch compares the call's
  cost with the requested model's price for its tokens. Corrections and reversals of a call
  (they carry its occurred_at) fold into its row.
- `guard_customer_calls`: per customer, second, tool and model, the cost and calls of COST
  entries (the refused calls' average cost per call of a feature) and `scope_margin`'s measures
  (REVENUE entries' revenue, the provisional revenue of COST and SETTLE entries, the events and
  COGS still settling without any), allocation entries included as in every margin. Ordered by
  (tenant, customer, occurred_at) with 1,024-row granules, so the report's few hundred
  customers are a few granules each; the ledger, ordered by time, is scanned whole for them.

Both are caches of the ledger, compared with it by tests/margin_guard/test_impact_read_models.py.

What the ledger already holds is copied while the views do not exist yet, then the views feed
the tables: stop ingest while it runs, or rows inserted in between are missed (a copy after the
views would count them twice in a summing table). On a new install there is nothing to copy;
at 10M events the copy took 202 s on a loaded machine (load 12, 2 cores).
"""
from aforo.eventstore.schema import Topology, create_table, view_source

COGS = "ai_cogs_usd + infra_cogs_usd + fee_cogs_usd + unclassified_cogs_usd"
SETTLING = "entry_type IN ('COST', 'SETTLE')"
UNSOURCED = f"revenue_source = 'NONE' AND {SETTLING}"

# :TRICKY: measure names differ from the ledger columns they sum (see 0002).
DOWNGRADED_DIMENSIONS = "provider, requested_model, model"
DOWNGRADED_SELECT = f"""
    SELECT tenant_id, occurred_at, {DOWNGRADED_DIMENSIONS},
        toInt64(sum(event_count)) AS events,
        toInt64(sum(input_tokens)) AS tokens_in,
        toInt64(sum(output_tokens)) AS tokens_out,
        toInt64(sum(cached_input_tokens)) AS tokens_cached,
        toInt64(sum(reasoning_tokens)) AS tokens_reasoning,
        sum(ai_cogs_usd) AS cogs_ai
"""
DOWNGRADED_WHERE = ("WHERE entry_type = 'COST' AND allocation_id = '' "
                    "AND requested_model != '' AND requested_model != model")

CUSTOMER_DIMENSIONS = "customer_id, tool_name, model"
CUSTOMER_SELECT = f"""
    SELECT tenant_id, customer_id, occurred_at, tool_name, model,
        toInt64(sumIf(event_count, entry_type = 'COST')) AS events,
        sumIf({COGS}, entry_type = 'COST') AS cogs,
        sumIf(revenue_usd, entry_type = 'REVENUE') AS revenue,
        sumIf(carried_revenue_usd, {SETTLING}) AS revenue_carried,
        sumIf(rated_revenue_usd, {SETTLING}) AS revenue_rated,
        toInt64(sumIf(event_count, {UNSOURCED})) AS events_unsourced,
        sumIf({COGS}, {UNSOURCED}) AS b_cogs
"""

TABLES = {
    # name: (columns, order key, SELECT, WHERE, GROUP BY dimensions, table settings)
    "guard_downgraded": (
        "tenant_id String, occurred_at DateTime('UTC'), provider String, requested_model String, "
        "model String, events Int64, tokens_in Int64, tokens_out Int64, tokens_cached Int64, "
        "tokens_reasoning Int64, cogs_ai Decimal(38, 9)",
        f"(tenant_id, occurred_at, {DOWNGRADED_DIMENSIONS})", DOWNGRADED_SELECT, DOWNGRADED_WHERE,
        DOWNGRADED_DIMENSIONS, ""),
    "guard_customer_calls": (
        "tenant_id String, customer_id String, occurred_at DateTime('UTC'), tool_name String, "
        "model String, events Int64, cogs Decimal(38, 9), revenue Decimal(38, 9), "
        "revenue_carried Decimal(38, 9), revenue_rated Decimal(38, 9), events_unsourced Int64, "
        "b_cogs Decimal(38, 9)",
        "(tenant_id, customer_id, occurred_at, tool_name, model)", CUSTOMER_SELECT, "",
        CUSTOMER_DIMENSIONS, "index_granularity = 1024"),
}


# :TRICKY: INSERT ... SELECT fills columns by position (a view's by name): each table's columns
# are in its SELECT's order.


def statements(topology: Topology) -> list[str]:
    return summing_statements(topology, TABLES, "occurred_at")


def summing_statements(topology: Topology, tables: dict, time_key: str) -> list[str]:
    """Each SummingMergeTree read model of `tables` (partitioned by month of `time_key`, the
    SELECT's time column), its copy of the ledger, then its view (0015, 0016)."""
    out: list[str] = []
    for table, (columns, order_by, select, where, dimensions, settings) in tables.items():
        # :TRICKY: SummingMergeTree sums rows of one key only when parts merge (and drops a
        # row whose measures all sum to zero); reads sum() and GROUP BY.
        out += create_table(topology, table, columns, engine="SummingMergeTree",
                            partition_by=f"toYYYYMM({time_key})", order_by=order_by,
                            settings=settings)
        group = f"GROUP BY tenant_id, {time_key}, {dimensions}"
        out.append(f"INSERT INTO {table} {select} FROM ledger {where} {group}")
        out.append(
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_mv{topology.on_cluster} "
            f"TO {view_source(topology, table)} AS {select} "
            f"FROM {view_source(topology, 'ledger')} {where} {group}")
    return out
