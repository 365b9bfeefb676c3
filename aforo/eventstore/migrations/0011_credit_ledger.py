"""The credit ledger: wallets' TOPUP, GRANT, DEBIT and EXPIRY entries, summed for balances.

Amounts are signed integer nano-credits (`credits_nano`, 1 credit = 10^9): TOPUP and GRANT add,
DEBIT and EXPIRY subtract, so a wallet's balance is `sum(credits_nano)` over its entries, exact
(:TRICKY: Int64 sums are exact and identical on chdb and 18.16; Decimal arrays would need a
Decimal-in-array encoder on the embedded insert path).

DEBITs are written with their events: an event's COST entry carries the wallets it burns and
the nano-credits taken from each (`credit_wallet_ids`, `credit_debits_nano`, parallel arrays,
empty for an event that burns nothing), and a materialized view turns them into DEBIT entries
as part of the same insert. A batch that fails is retried as a whole (its dedupe claims are
released), so it burns exactly once; a re-sent event is a duplicate and burns nothing.

Can run while ingest runs: ADD COLUMN is a metadata change, the view only sees inserts after it
exists, and no event burns before a wallet exists (wallets are new with this migration).
"""
from aforo.eventstore.schema import Topology, alter_table, create_table, view_source


def statements(topology: Topology) -> list[str]:
    out = alter_table(topology, "ledger",
                      "ADD COLUMN credit_wallet_ids Array(String), "
                      "ADD COLUMN credit_debits_nano Array(Int64)")
    out += create_table(
        topology, "credit_ledger",
        "tenant_id String, wallet_id String, entry_id String, entry_type String, "
        "credits_nano Int64, event_id String, customer_id String, "
        "occurred_at DateTime('UTC'), recorded_at DateTime('UTC'), lot_id String",
        partition_by="toYYYYMM(recorded_at)",
        order_by="(tenant_id, wallet_id, recorded_at, entry_id)",
    )
    # :TRICKY: an alias that equals a source column ('DEBIT' AS entry_type) is substituted
    # into the WHERE, so the view must not filter on entry_type ('DEBIT' = 'COST': no rows),
    # and 18.16 cannot push to a view that reads a subquery. Only COST entries carry debits
    # (entitlements.burn sets them), so the filter is on the arrays; a DEBIT keeps its event's
    # entry id, and the wallet id tells the parts of a split apart.
    out.append(
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS credit_ledger_debits_mv{topology.on_cluster} "
        f"TO {view_source(topology, 'credit_ledger')} AS SELECT tenant_id, "
        "debit_wallet AS wallet_id, entry_id, 'DEBIT' AS entry_type, "
        "-debit_nano AS credits_nano, event_id, customer_id, occurred_at, recorded_at, "
        "'' AS lot_id "
        f"FROM {view_source(topology, 'ledger')} "
        "ARRAY JOIN credit_wallet_ids AS debit_wallet, credit_debits_nano AS debit_nano "
        "WHERE notEmpty(credit_wallet_ids)")
    return out
