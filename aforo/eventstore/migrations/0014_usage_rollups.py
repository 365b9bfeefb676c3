"""Rollups the usage and agent readers answer from at 10M events (docs/eventstore.md,
"Usage and agent rollups"), each a table fed by a materialized view from the ledger.

- `usage_daily_customers` (SummingMergeTree by UTC day and customer): the five billable units
  (events, input and output tokens, tool calls, reasoning steps) of COST entries, skipping
  allocation entries as `ledger_hourly` does (0013; they carry no units anyway). Per customer
  over a period it is a row per customer and day, where `ledger_hourly` holds nearly a row per
  event at 10,000 customers.
- `usage_hourly_agents` (SummingMergeTree by UTC hour, product, tool and agent): the units, the
  COGS of every COST entry (allocations included, as every cost figure), the attributed revenue
  of REVENUE entries and the provisional revenue of COST and SETTLE entries (carried and rated,
  what is still settling). It serves the usage trend and product types (any whole-hour time
  zone), and the per-tool and per-agent figures. Every entry of an event carries the event's
  tool and agent (aforo.ledger.EVENT_DIMENSIONS), so each entry's own columns group it with its
  event.
- `agent_sessions` (AggregatingMergeTree by session): the first and last occurred_at of the
  session's ORIGINAL COST entries and the same sums, so a sessions page and the active sessions
  read one row per session instead of the period's ledger.

What the ledger already holds is copied before each view exists (on a new install, nothing):
stop ingest while it runs, or rows inserted between a copy and its view are missed. New tables
and views only; nothing else changes.
"""
from aforo.eventstore.schema import Topology, create_table, view_source

COST = "entry_type = 'COST'"
METERED = "entry_type = 'COST' AND allocation_id = ''"
ORIGINAL_COST = "entry_type = 'COST' AND entry_kind = 'ORIGINAL'"
SETTLING = "entry_type IN ('COST', 'SETTLE')"
# :TRICKY: toDecimal64 keeps the four buckets' sum Decimal(18, 9) on 18.16 and the current
# engine alike, so the aggregate states' declared type matches what the view produces.
COGS = ("toDecimal64(ai_cogs_usd + infra_cogs_usd + fee_cogs_usd + unclassified_cogs_usd, 9)")

UNITS = (("events", "event_count"), ("tokens_in", "input_tokens"),
         ("tokens_out", "output_tokens"), ("tool_calls_n", "tool_calls"),
         ("reasoning_steps_n", "reasoning_steps"))
UNIT_COLUMNS = ", ".join(f"{name} Int64" for name, _ in UNITS)
MONEY = (("cogs", COGS, COST), ("revenue", "revenue_usd", "entry_type = 'REVENUE'"),
         ("revenue_carried", "carried_revenue_usd", SETTLING),
         ("revenue_rated", "rated_revenue_usd", SETTLING))
MONEY_COLUMNS = ", ".join(f"{name} Decimal(38, 9)" for name, _e, _c in MONEY)

# :TRICKY: measure names differ from the columns they sum (see 0002).
CUSTOMER_SELECT = ("SELECT tenant_id, toDate(occurred_at) AS day, customer_id, "
                   + ", ".join(f"toInt64(sum({column})) AS {name}" for name, column in UNITS))
CUSTOMER_WHERE = f"WHERE {METERED}"
CUSTOMER_GROUP = "GROUP BY tenant_id, day, customer_id"

HOURLY_DIMENSIONS = "product_id, tool_name, agent"
HOURLY_SELECT = (
    f"SELECT tenant_id, toStartOfHour(occurred_at) AS hour, {HOURLY_DIMENSIONS}, "
    + ", ".join(f"toInt64(sumIf({column}, {COST})) AS {name}" for name, column in UNITS) + ", "
    + ", ".join(f"sumIf({expr}, {cond}) AS {name}" for name, expr, cond in MONEY))
HOURLY_GROUP = f"GROUP BY tenant_id, hour, {HOURLY_DIMENSIONS}"

# Each measure's aggregate state: (column, its state expression, its declared type).
_UNIT_TYPES = {"event_count": "Int32"}
SESSION_STATES = (
    ("started", f"minIfState(occurred_at, {ORIGINAL_COST})",
     "AggregateFunction(minIf, DateTime('UTC'), UInt8)"),
    ("ended", f"maxIfState(occurred_at, {ORIGINAL_COST})",
     "AggregateFunction(maxIf, DateTime('UTC'), UInt8)"),
    *((name, f"sumIfState({column}, {COST})",
       f"AggregateFunction(sumIf, {_UNIT_TYPES.get(column, 'Int64')}, UInt8)")
      for name, column in UNITS),
    *((name, f"sumIfState({expr}, {cond})", "AggregateFunction(sumIf, Decimal(18, 9), UInt8)")
      for name, expr, cond in MONEY),
)
SESSION_SELECT = ("SELECT tenant_id, session_id, "
                  + ", ".join(f"{state} AS {name}" for name, state, _t in SESSION_STATES))
SESSION_WHERE = "WHERE session_id != ''"
SESSION_GROUP = "GROUP BY tenant_id, session_id"


def _fed(topology: Topology, table: str, select: str, where: str, group: str) -> list[str]:
    """The copy of what the ledger holds, then the view feeding the table from now on."""
    return [f"INSERT INTO {table} {select} FROM ledger {where} {group}",
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_mv{topology.on_cluster} "
            f"TO {view_source(topology, table)} AS {select} "
            f"FROM {view_source(topology, 'ledger')} {where} {group}"]


def statements(topology: Topology) -> list[str]:
    # :TRICKY: Summing and Aggregating MergeTrees fold rows of one key only when parts merge;
    # every read sums (or -Merges) and groups.
    out = create_table(
        topology, "usage_daily_customers",
        f"tenant_id String, day Date, customer_id String, {UNIT_COLUMNS}",
        engine="SummingMergeTree", partition_by="toYYYYMM(day)",
        order_by="(tenant_id, day, customer_id)")
    out += _fed(topology, "usage_daily_customers", CUSTOMER_SELECT, CUSTOMER_WHERE,
                CUSTOMER_GROUP)
    out += create_table(
        topology, "usage_hourly_agents",
        f"tenant_id String, hour DateTime('UTC'), product_id String, tool_name String, "
        f"agent String, {UNIT_COLUMNS}, {MONEY_COLUMNS}",
        engine="SummingMergeTree", partition_by="toYYYYMM(hour)",
        order_by=f"(tenant_id, hour, {HOURLY_DIMENSIONS})")
    out += _fed(topology, "usage_hourly_agents", HOURLY_SELECT, "", HOURLY_GROUP)
    # One row per session however long it lasts: no partition (a session may span months).
    out += create_table(
        topology, "agent_sessions",
        "tenant_id String, session_id String, "
        + ", ".join(f"{name} {kind}" for name, _s, kind in SESSION_STATES),
        engine="AggregatingMergeTree", order_by="(tenant_id, session_id)")
    out += _fed(topology, "agent_sessions", SESSION_SELECT, SESSION_WHERE, SESSION_GROUP)
    return out
