"""The credit ledger (event store table `credit_ledger`, migration 0011): writing TOPUP, GRANT
and EXPIRY entries, and reading sums and lists through the ledger query builder.

Amounts are signed integer nano-credits in the store and `Decimal` credits (nine places)
everywhere else; DEBIT entries are written by the store itself from the events' COST entries.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from aforo import eventstore
from aforo.ledger.query import LedgerQuery, Table

ZERO = Decimal(0)


def credit_entries_append(rows: list[dict[str, Any]]) -> int:
    """Append TOPUP, GRANT or EXPIRY entries (never updates)."""
    return eventstore.insert("credit_ledger", rows)


def credit_entry(*, tenant_id: str, wallet_id: str, entry_id: str, entry_type: str,
                 credits_nano: int, recorded_at: datetime, customer_id: str,
                 lot_id: str = "", event_id: str = "",
                 occurred_at: datetime | None = None) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "wallet_id": wallet_id, "entry_id": entry_id,
            "entry_type": entry_type, "credits_nano": credits_nano, "event_id": event_id,
            "customer_id": customer_id, "occurred_at": occurred_at or recorded_at,
            "recorded_at": recorded_at, "lot_id": lot_id}


@dataclass(frozen=True)
class WalletSums:
    """A wallet's entries summed by kind, in nano-credits (debits and expiries negative)."""

    topup: int = 0
    grant: int = 0
    debit: int = 0
    expiry: int = 0
    last_debit_at: datetime | None = None
    entries: int = 0

    @property
    def net(self) -> int:
        return self.topup + self.grant + self.debit + self.expiry


def wallet_sums(tenant_slug: str, wallet_ids: list[str]) -> dict[str, WalletSums]:
    if not wallet_ids:
        return {}
    return _sums(LedgerQuery(tenant_slug, Table.CREDITS).where_in("wallet_id", wallet_ids),
                 "wallet_id")[0]


def customers_wallet_sums(tenant_slug: str, customer_ids: list[str],
                          ) -> tuple[dict[str, WalletSums], dict[str, int]]:
    """Every wallet's sums of the customers (deleted wallets' too), and how many entries each
    customer's wallets hold: a count that only grows (the ledger is append-only), so of two
    reads the later has the larger or the same entries (`entitlements.state` publishes by it)."""
    if not customer_ids:
        return {}, {}
    return _sums(LedgerQuery(tenant_slug, Table.CREDITS).where_in("customer_id", customer_ids),
                 "customer_id", "wallet_id")


def _sums(query: LedgerQuery, *keys: str) -> tuple[dict[str, WalletSums], dict[str, int]]:
    rows = (query.dimensions(*keys)
            .measures("credits_topup", "credits_grant", "credits_debit", "credits_expiry",
                      "credit_entries")
            .expressions("maxIf(recorded_at, entry_type = 'DEBIT') AS last_debit_at",
                         "toInt64(countIf(entry_type = 'DEBIT')) AS debits")
            .group_by(*keys).fetch())
    counts: dict[str, int] = {}
    for r in rows:
        counts[r[keys[0]]] = counts.get(r[keys[0]], 0) + int(r["credit_entries"])
    return {r["wallet_id"]: WalletSums(
        int(r["credits_topup"]), int(r["credits_grant"]), int(r["credits_debit"]),
        int(r["credits_expiry"]), r["last_debit_at"] if r["debits"] else None,
        int(r["credit_entries"])) for r in rows}, counts


def debits_before(tenant_slug: str, wallet_ids: list[str],
                  boundaries: list[datetime]) -> dict[str, list[int]]:
    """Per wallet, the credits debited (positive nano) by entries recorded before each boundary."""
    if not wallet_ids or not boundaries:
        return {}
    params = {f"b{i}": b for i, b in enumerate(boundaries)}
    query = (LedgerQuery(tenant_slug, Table.CREDITS).where_in("wallet_id", wallet_ids)
             .where_sql("entry_type = 'DEBIT'", **params).dimensions("wallet_id")
             .expressions(*(f"toInt64(-sumIf(credits_nano, recorded_at < %(b{i})s)) AS d{i}"
                            for i in range(len(boundaries))))
             .group_by("wallet_id"))
    return {r["wallet_id"]: [int(r[f"d{i}"]) for i in range(len(boundaries))]
            for r in query.fetch()}


def wallet_entries(tenant_slug: str, wallet_id: str, *, offset: int, limit: int,
                   ) -> tuple[int, list[dict[str, Any]]]:
    """A wallet's entries, newest first, and how many it has."""
    base = LedgerQuery(tenant_slug, Table.CREDITS).where(wallet_id=wallet_id)
    total = int(base.measures("credit_entries").one()["credit_entries"])
    rows = (base.dimensions("entry_id", "entry_type", "credits_nano", "event_id",
                            "occurred_at", "recorded_at", "lot_id")
            .order_by("recorded_at DESC", "entry_id").limit(limit, offset).fetch())
    return total, rows


def event_debits(tenant_slug: str, event_ids: list[str]) -> dict[str, list[tuple[str, int]]]:
    """The DEBIT entries of events: event id → [(wallet id, credits nano, positive)]."""
    if not event_ids:
        return {}
    rows = (LedgerQuery(tenant_slug, Table.CREDITS).where_in("event_id", event_ids)
            .where_sql("entry_type = 'DEBIT'").dimensions("event_id", "wallet_id", "credits_nano")
            .fetch())
    out: dict[str, list[tuple[str, int]]] = {}
    for r in rows:
        out.setdefault(r["event_id"], []).append((r["wallet_id"], -int(r["credits_nano"])))
    return out
