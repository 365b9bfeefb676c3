"""Providers' billed cost lines (cost sources): what OpenAI, Anthropic, AWS or a FOCUS export
charged, per line, beside the ledger.

Append-only and summed like the ledger: an import appends the difference between what its file
says for the days it covers and what the source's lines already sum to there (a re-import
appends nothing; a corrected file appends the corrections, and negations of the lines it no
longer holds). Money is Decimal(38, 12): the CUR carries ten decimals (`1.81E-8`), and values
are parsed in Python (ClickHouse 18.16 cannot read E-notation as a Decimal).

`provider_cost_import_lines` holds each import's own lines as its file said them (the run's
audit, and what the difference is computed from, in one INSERT ... SELECT).

New tables only: safe to apply while ingest runs.
"""
from aforo.eventstore.schema import Topology, create_table

COLUMNS = """
    tenant_id String,
    source_id String,
    import_id String,
    line_key String,
    day Date,
    charge_start DateTime('UTC'),
    charge_end DateTime('UTC'),
    provider String,
    service String,
    model String,
    line_item String,
    account_id String,
    project_id String,
    charge_category String,
    unit String,
    quantity Decimal(38, 12),
    cost_usd Decimal(38, 12),
    recorded_at DateTime('UTC')
"""


def statements(topology: Topology) -> list[str]:
    # `day` is the UTC day a line's charge starts on (reconciliation is per UTC day).
    return [
        *create_table(
            topology, "provider_cost_lines", COLUMNS,
            partition_by="toYYYYMM(day)",
            order_by="(tenant_id, source_id, day, line_key)",
        ),
        *create_table(
            topology, "provider_cost_import_lines", COLUMNS,
            partition_by="toYYYYMM(day)",
            order_by="(tenant_id, import_id, day, line_key)",
        ),
    ]
