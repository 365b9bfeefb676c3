"""Invoice lines an attribution run allocates, copied in so the allocation is one SQL join.

A run inserts its lines (and the invoices whose earlier attribution it reconciles) under its
run_id, then joins them with the ledger's events in ClickHouse; the rows stay as the run's audit.
"""
from aforo.eventstore.schema import Topology, create_table


def statements(topology: Topology) -> list[str]:
    return [
        *create_table(
            topology, "attribution_lines",
            """
            tenant_id String,
            run_id String,
            line_no UInt32,
            invoice_id String,
            line_id String,
            customer_id String,
            product_id String,
            all_products UInt8,
            period_start DateTime('UTC'),
            period_end DateTime('UTC'),
            unit String,
            amount_nanos Int64
            """,
            order_by="(tenant_id, run_id, line_no)",
        ),
        *create_table(
            topology, "attribution_invoices",
            "tenant_id String, run_id String, invoice_id String",
            order_by="(tenant_id, run_id, invoice_id)",
        ),
    ]
