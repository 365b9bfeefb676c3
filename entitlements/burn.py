"""What an event burns, and from which wallets: set on its COST entry before the insert, so the
debits go in the same insert as the event (the credit ledger's view writes the DEBIT entries).

Each wallet prices the event at its own rates: for each feature its rates name, the most
specific matching rate (model over product over any) times the units the event used, summed;
with no matching rate, the event's expected revenue at ingest (carried, else rated, else
estimated at the rates attribution learnt: the figure the Transactions tab shows) / the wallet's
`creditValueUsd`. The customer's wallets pay in priority order: the first pays for as much of
the event as its balance covers, and the part of the event it could not pay for is priced by the
next wallet at that wallet's rates (a wallet that covers 5 of the 8 credits it would charge
leaves 3/8 of the event to the next). The last wallet pays what is left and may go below zero
(the usage happened, and WALLET_EMPTY blocks the next calls).

Balances here are the last published ones (any process, `entitlements.state`) minus what this
process has debited in batches not yet published; the race bound this leaves is in
docs/entitlements.md.
"""
from __future__ import annotations

import threading
import time
from decimal import Decimal
from fractions import Fraction
from typing import Any

from aforo.models import Tenant
from cogs.expected import EventRates, event_rates, event_units
from entitlements.config import BurnRate, CreditConfig, WalletRule, credit_config
from entitlements.state import credits_publish, published_states
from entitlements.usage import FEATURE_COLUMNS

ZERO = Decimal(0)
NANOS = 10**9
IN_FLIGHT_TTL = 30.0  # seconds: a batch whose insert failed stops counting as in flight
_lock = threading.Lock()
# (tenant slug, entry id) → (monotonic time, [(wallet, nano)])
_in_flight: dict[tuple[str, str], tuple[float, list[tuple[str, int]]]] = {}
COGS_COLUMNS = FEATURE_COLUMNS["COGS_USD"]


def expected_at_ingest(row: dict[str, Any], rates: dict[tuple[str, str], EventRates]) -> Decimal:
    """The event's expected revenue as the dashboard counts it (cogs.expected): carried, else
    rated, else estimated at the learnt per-unit rates (customer's own, else the product's),
    else zero (unknown)."""
    if row["revenue_source"] == "CARRIED":
        return row["carried_revenue_usd"]
    if row["revenue_source"] == "RATED":
        return row["rated_revenue_usd"]
    found = rates.get((row["customer_id"], row["product_id"]))
    if found is None:
        return ZERO
    return found.estimate(event_units(
        row["event_count"], row["input_tokens"], row["output_tokens"], row["tool_calls"],
        row["reasoning_steps"], sum((row[c] for c in COGS_COLUMNS), ZERO)))


def feature_units(row: dict[str, Any], feature: str, expected: Decimal = ZERO) -> Decimal:
    if feature == "REVENUE_USD":
        return expected
    return Decimal(sum(row[column] for column in FEATURE_COLUMNS.get(feature, ())))


def matching_rates(wallet: WalletRule, row: dict[str, Any]) -> dict[str, BurnRate]:
    """Per feature, the most specific of the wallet's rates that matches the event."""
    best: dict[str, BurnRate] = {}
    for rate in wallet.burn_rates:
        if (rate.product_id and rate.product_id != row["product_id"]) or (
                rate.model and rate.model != row["model"]):
            continue
        held = best.get(rate.feature)
        if held is None or rate.specificity > held.specificity:
            best[rate.feature] = rate
    return best


def event_burn(wallet: WalletRule, row: dict[str, Any], expected: Decimal = ZERO) -> Decimal:
    """The credits one whole event burns at `wallet`'s rates; `expected` is its expected
    revenue at ingest (`expected_at_ingest`)."""
    best = matching_rates(wallet, row)
    if best:
        return sum((feature_units(row, f, expected) * r.credits_per_unit
                    for f, r in best.items()), ZERO)
    return expected / wallet.credit_value_usd if wallet.credit_value_usd else ZERO


def split_debits(wallets: tuple[WalletRule, ...], row: dict[str, Any], expected: Decimal,
                 left: dict[str, int]) -> list[tuple[str, int]]:
    """[(wallet, nano-credits)] the event takes, in priority order; `left` (nano-credits each
    wallet has) is reduced by them. Each wallet charges, at its own rates, the part of the
    event the wallets before it did not pay for (exact: the fraction is kept as a ratio of
    integers, each debit rounded half-even to a nano-credit once)."""
    unpaid = Fraction(1)  # the part of the event no wallet has paid for yet
    out = []
    for i, wallet in enumerate(wallets):
        last = i == len(wallets) - 1
        if not last and left[wallet.ledger_id] <= 0:
            continue
        owed = round(Fraction(event_burn(wallet, row, expected)) * NANOS * unpaid)
        if owed <= 0:
            break  # this wallet charges nothing for the rest: it is paid for
        take = owed if last else min(owed, left[wallet.ledger_id])
        out.append((wallet.ledger_id, take))
        left[wallet.ledger_id] -= take
        if take == owed:
            break
        unpaid = unpaid * (owed - take) / owed
    return out


def _needs_expected(wallets: tuple[WalletRule, ...], row: dict[str, Any]) -> bool:
    return any(not (m := matching_rates(w, row)) or "REVENUE_USD" in m for w in wallets)


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


def _expected_revenues(tenant: Tenant, config: CreditConfig,
                       rows: list[dict[str, Any]]) -> dict[str, Decimal]:
    """Expected revenue at ingest of the rows some wallet prices by it (one read of the learnt
    rates, only when an event without provisional revenue needs them)."""
    needing = [r for r in rows if _needs_expected(config.wallets[r["customer_id"]], r)]
    unsourced = {(r["customer_id"], r["product_id"]) for r in needing
                 if r["revenue_source"] not in ("CARRIED", "RATED")}
    rates = event_rates(tenant.slug, unsourced) if unsourced else {}
    return {r["entry_id"]: expected_at_ingest(r, rates) for r in needing}


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
    expected = _expected_revenues(tenant, config, burning)
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
            debits = split_debits(config.wallets[row["customer_id"]], row,
                                  expected.get(row["entry_id"], ZERO), left)
            if not debits:
                continue
            row["credit_wallet_ids"] = [w for w, _n in debits]
            row["credit_debits_nano"] = [n for _w, n in debits]
            _in_flight[(tenant.slug, row["entry_id"])] = (stamp, debits)


def in_flight_done(tenant: Tenant, rows: list[dict[str, Any]]) -> None:
    """A committed batch's debits are in the credit ledger now: no longer in flight."""
    if not _in_flight:
        return
    with _lock:
        for row in rows:
            _in_flight.pop((tenant.slug, row["entry_id"]), None)
