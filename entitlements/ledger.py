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
    return _sums(_summed(LedgerQuery(tenant_slug, Table.CREDITS)
                         .where_in("wallet_id", wallet_ids), "wallet_id"))


def customers_wallet_sums(tenant_slug: str, wallets: dict[str, list[str]],
                          ) -> tuple[dict[str, WalletSums], dict[str, int]]:
    """The sums of each customer's wallets (`wallets`: customer → wallet ids), and how many
    entries each customer has: those written for it (its deleted wallets' and its moved
    wallets' included) and its wallets' own. The ledger is append-only, so of two reads the
    later counts as many or more (`entitlements.state` publishes by it)."""
    ids = sorted({w for ws in wallets.values() for w in ws})
    if not wallets:
        return {}, {}
    rows = _summed(LedgerQuery(tenant_slug, Table.CREDITS).where_sql(
        "(customer_id IN %(cws_customers)s OR wallet_id IN %(cws_wallets)s)",
        cws_customers=tuple(wallets), cws_wallets=tuple(ids)),
        "customer_id", "wallet_id")
    counts = {c: sum(int(r["credit_entries"]) for r in rows
                     if r["customer_id"] == c or r["wallet_id"] in ws)
              for c, ws in wallets.items()}
    return _sums(rows), counts


def _summed(query: LedgerQuery, *keys: str) -> list[dict[str, Any]]:
    return (query.dimensions(*keys)
            .measures("credits_topup", "credits_grant", "credits_debit", "credits_expiry",
                      "credit_entries")
            .expressions("maxIf(recorded_at, entry_type = 'DEBIT') AS last_debit_at",
                         "toInt64(countIf(entry_type = 'DEBIT')) AS debits")
            .group_by(*keys).fetch())


def _sums(rows: list[dict[str, Any]]) -> dict[str, WalletSums]:
    """Per wallet, its rows summed (a wallet moved to another customer has a row for each)."""
    out: dict[str, WalletSums] = {}
    for r in rows:
        held = out.get(r["wallet_id"], WalletSums())
        last = r["last_debit_at"] if r["debits"] else None
        out[r["wallet_id"]] = WalletSums(
            held.topup + int(r["credits_topup"]), held.grant + int(r["credits_grant"]),
            held.debit + int(r["credits_debit"]), held.expiry + int(r["credits_expiry"]),
            max((t for t in (held.last_debit_at, last) if t is not None), default=None),
            held.entries + int(r["credit_entries"]))
    return out


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
