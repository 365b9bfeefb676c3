"""What an event burns, and from which wallets: set on its COST entry before the insert, so the
debits go in the same insert as the event (the credit ledger's view writes the DEBIT entries).

An event burns, for each feature its wallet has rates for, the most specific matching rate
(model over product over any) times the units it used, summed; with no matching rate, its
expected revenue at ingest (carried, else rated) / the wallet's `creditValueUsd`. The rates and
credit value are those of the customer's first wallet in priority order. The credits are taken
from the wallets in priority order, each up to its balance, the last taking what is left (it
may go below zero: the usage happened, and WALLET_EMPTY blocks the next calls).

Balances here are the last published ones (any process, `entitlements.state`) minus what this
process has debited in batches not yet published; the race bound this leaves is in
docs/entitlements.md.
"""
from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

from aforo.models import Tenant
from aforo.money import to_nanos
from entitlements.config import WalletRule, credit_config
from entitlements.state import credits_publish, published_states
from entitlements.usage import FEATURE_COLUMNS

ZERO = Decimal(0)
IN_FLIGHT_TTL = 30.0  # seconds: a batch whose insert failed stops counting as in flight
_lock = threading.Lock()
# (tenant slug, entry id) → (monotonic time, [(wallet, nano)])
_in_flight: dict[tuple[str, str], tuple[float, list[tuple[str, int]]]] = {}


def feature_units(row: dict[str, Any], feature: str) -> Decimal:
    return Decimal(sum(row[column] for column in FEATURE_COLUMNS.get(feature, ())))


def event_burn(wallet: WalletRule, row: dict[str, Any]) -> Decimal:
    """The credits one event burns at `wallet`'s rates."""
    best: dict[str, tuple[int, Decimal]] = {}
    for rate in wallet.burn_rates:
        if (rate.product_id and rate.product_id != row["product_id"]) or (
                rate.model and rate.model != row["model"]):
            continue
        held = best.get(rate.feature)
        if held is None or rate.specificity > held[0]:
            best[rate.feature] = (rate.specificity, rate.credits_per_unit)
    if best:
        return sum((feature_units(row, f) * r for f, (_s, r) in best.items()), ZERO)
    revenue = row["carried_revenue_usd"] + row["rated_revenue_usd"]
    return revenue / wallet.credit_value_usd if wallet.credit_value_usd else ZERO


def _in_flight_by_wallet(tenant_slug: str) -> dict[str, int]:
    now = time.monotonic()
    out: dict[str, int] = {}
    for key, (at, debits) in list(_in_flight.items()):
        if now - at > IN_FLIGHT_TTL:
            del _in_flight[key]
            continue
        if key[0] == tenant_slug:
            for wallet, nano in debits:
                out[wallet] = out.get(wallet, 0) + nano
    return out


def debits_attach(tenant: Tenant, rows: list[dict[str, Any]]) -> None:
    """The pre-insert hook: each burning event's wallets and debits on its COST entry."""
    config = credit_config(tenant)
    if not config.wallets:
        return
    burning = [r for r in rows if r["customer_id"] in config.wallets]
    if not burning:
        return
    customers = sorted({r["customer_id"] for r in burning})
    states = published_states(tenant.slug, customers)
    missing = {c for c in customers if c not in states}
    if missing:  # never published (a cold cache): the ledgers' sums, once
        states.update(credits_publish(tenant, missing, config=config))
    with _lock:
        pending = _in_flight_by_wallet(tenant.slug)
        left: dict[str, int] = {}
        for customer in customers:
            published = states.get(customer, {}).get("w", {})
            for wallet in config.wallets[customer]:
                left[wallet.ledger_id] = (published.get(wallet.ledger_id, 0)
                                          - pending.get(wallet.ledger_id, 0))
        stamp = time.monotonic()
        for row in burning:
            wallets = config.wallets[row["customer_id"]]
            owed = to_nanos(event_burn(wallets[0], row))
            if owed <= 0:
                continue
            ids, debits = [], []
            for i, wallet in enumerate(wallets):
                last = i == len(wallets) - 1
                take = owed if last else min(owed, max(0, left[wallet.ledger_id]))
                if take <= 0:
                    continue
                ids.append(wallet.ledger_id)
                debits.append(take)
                left[wallet.ledger_id] -= take
                owed -= take
                if owed <= 0:
                    break
            row["credit_wallet_ids"] = ids
            row["credit_debits_nano"] = debits
            _in_flight[(tenant.slug, row["entry_id"])] = (
                stamp, list(zip(ids, debits, strict=True)))


def in_flight_done(tenant: Tenant, rows: list[dict[str, Any]]) -> None:
    """A committed batch's debits are in the credit ledger now: no longer in flight."""
    if not _in_flight:
        return
    with _lock:
        for row in rows:
            _in_flight.pop((tenant.slug, row["entry_id"]), None)
