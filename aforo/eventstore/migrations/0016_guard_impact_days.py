"""The impact report's daily read models (docs/eventstore.md, "The guard's impact read models"),
so a 30-day window reads one row per key and day instead of one per call, and only the partial
days at a window's ends from a time-ordered table:

- `guard_downgraded_days`: 0015's `guard_downgraded` by tenant, UTC day, provider, requested
  model and model (the DOWNGRADED calls' metered COST entries: events, tokens, AI cost); the
  partial days come from `guard_downgraded`, ordered by time.
- `guard_customer_days`: the COST entries' calls and cost by tenant, customer, UTC day, tool
  and model (the refused calls' average cost per call of a feature; corrections and
  allocations folded in, as in 0015's `guard_customer_calls`), ordered by customer first with
  256-row granules; the partial days come from the ledger, ordered by time. Two measures only:
  a read of a few hundred customers pays per column it reads.

Each a SummingMergeTree fed by a view on the ledger, a cache of the ledger compared with it by
tests/margin_guard/test_impact_read_models.py.

What the ledger already holds is copied while the views do not exist yet, then the views feed
the tables: stop ingest while it runs, or rows inserted in between are missed (a copy after the
views would count them twice in a summing table). 15 s at 10M events embedded.
"""
import importlib

from aforo.eventstore.schema import Topology

_0015 = importlib.import_module("aforo.eventstore.migrations.0015_guard_impact")

# :TRICKY: toDate(occurred_at) is the UTC day (the column is DateTime('UTC')); `day` is no
# ledger column, so the alias shadows nothing on 18.16. INSERT ... SELECT fills columns by
# position: each SELECT is in its table's column order.
_DAY = "toDate(occurred_at) AS day"
_COGS = "ai_cogs_usd + infra_cogs_usd + fee_cogs_usd + unclassified_cogs_usd"
_CUSTOMER_DIMENSIONS = "customer_id, tool_name, model"

TABLES = {
    # name: (columns, order key, SELECT, WHERE, GROUP BY dimensions, table settings)
    "guard_downgraded_days": (
        "tenant_id String, day Date, provider String, requested_model String, model String, "
        "events Int64, tokens_in Int64, tokens_out Int64, tokens_cached Int64, "
        "tokens_reasoning Int64, cogs_ai Decimal(38, 9)",
        f"(tenant_id, day, {_0015.DOWNGRADED_DIMENSIONS})",
        _0015.DOWNGRADED_SELECT.replace("occurred_at,", f"{_DAY},", 1), _0015.DOWNGRADED_WHERE,
        _0015.DOWNGRADED_DIMENSIONS, ""),
    "guard_customer_days": (
        "tenant_id String, customer_id String, day Date, tool_name String, model String, "
        "events Int64, cogs Decimal(38, 9)",
        "(tenant_id, customer_id, day, tool_name, model)",
        f"SELECT tenant_id, customer_id, {_DAY}, tool_name, model, "
        f"toInt64(sum(event_count)) AS events, sum({_COGS}) AS cogs",
        "WHERE entry_type = 'COST'", _CUSTOMER_DIMENSIONS, "index_granularity = 256"),
}


def statements(topology: Topology) -> list[str]:
    return _0015.summing_statements(topology, TABLES, "day")
