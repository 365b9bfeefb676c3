"""The ledger: one append-only table of COST and REVENUE entries, partitioned by month."""
from aforo.eventstore.schema import Topology, create_table

LEDGER_COLUMNS = """
    tenant_id String,
    entry_id String,
    entry_type Enum8('COST' = 1, 'REVENUE' = 2),
    entry_kind Enum8('ORIGINAL' = 1, 'CORRECTION' = 2, 'REVERSAL' = 3),
    event_id String,
    occurred_at DateTime('UTC'),
    recorded_at DateTime('UTC'),
    customer_id String,
    product_id String,
    product_type String,
    provider String,
    model String,
    requested_model String,
    tool_name String,
    source_type String,
    session_id String,
    event_count Int32,
    input_tokens Int64,
    output_tokens Int64,
    cached_input_tokens Int64,
    reasoning_tokens Int64,
    reasoning_steps Int64,
    tool_calls Int64,
    quantity Decimal(18, 9),
    ai_cogs_usd Decimal(18, 9),
    infra_cogs_usd Decimal(18, 9),
    fee_cogs_usd Decimal(18, 9),
    unclassified_cogs_usd Decimal(18, 9),
    rated_revenue_usd Decimal(18, 9),
    revenue_usd Decimal(18, 9),
    cost_source Enum8('RATE_CARD' = 1, 'CARRIED' = 2),
    unpriced Int8,
    invoice_id String,
    invoice_line_id String,
    attribution_run_id String
"""


def statements(topology: Topology) -> list[str]:
    # event_count is 1 on an event's original COST entry and 0 on every correction, reversal
    # and REVENUE entry, so sum(event_count) counts events however many entries they have.
    # unpriced is 1 on the original entry of an event that had no cost and no price, and -1 on
    # the correction that later prices it, so sum(unpriced) counts events still unpriced.
    # cost_source says whether the event carried its own cost (never repriced) or was priced
    # from the rate card.
    return create_table(
        topology,
        "ledger",
        LEDGER_COLUMNS,
        partition_by="toYYYYMM(occurred_at)",
        order_by="(tenant_id, occurred_at, event_id)",
    )
