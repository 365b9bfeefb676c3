"""What the decision path knows of a customer's entitlements and wallets, kept current off it.

After each ingest batch commits (and after every change of an entitlement, a wallet or a
top-up), the customers concerned are recomputed from the ledgers' own sums and published: one
small value per customer in the shared cache (Redis in server mode) and in this process's
decision mirror. The decision (`gate`) then reads only that value: a few comparisons, no
database, no ClickHouse. Other processes see a change within margin_guard's mirror TTL (0.5 s).
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from aforo.models import Tenant
from aforo.shared_cache import shared_cache
from entitlements.balances import Balance, balance_at, boundaries_of
from entitlements.config import CreditConfig, WalletRule, credit_config
from entitlements.ledger import debits_before, wallet_sums
from entitlements.usage import EntitlementUsage, usages

log = logging.getLogger(__name__)
STATE_TTL = 7 * 24 * 3600
ALLOW, THROTTLE, BLOCK = "ALLOW", "THROTTLE", "BLOCK"
_mirrors: list[dict] = []


def state_key(tenant_slug: str, customer_id: str) -> str:
    return f"aforo:credits:{tenant_slug}:{customer_id}"


def mirror_register(mirror: dict) -> None:
    """The decision path's own mirror (margin_guard.decision): publishing writes into it, so
    this process decides on a new state at once."""
    if not any(m is mirror for m in _mirrors):
        _mirrors.append(mirror)


# --- computing ------------------------------------------------------------------------------

def wallet_balances(tenant_slug: str, wallets: list[WalletRule],
                    at: datetime) -> dict[str, Balance]:
    """Each wallet's exact balance at `at` (two reads of the credit ledger for all of them)."""
    ids = [w.ledger_id for w in wallets]
    sums = wallet_sums(tenant_slug, ids)
    points = sorted({p for w in wallets for p in boundaries_of(w.lots, at)})
    before = debits_before(tenant_slug, ids, points)
    out = {}
    for w in wallets:
        mine = boundaries_of(w.lots, at)
        index = {p: i for i, p in enumerate(points)}
        cumulative = before.get(w.ledger_id, [0] * len(points))
        out[w.ledger_id] = balance_at(
            w.lots, [cumulative[index[p]] for p in mine], mine,
            -sums[w.ledger_id].debit if w.ledger_id in sums else 0)
    return out


def _number(value: Decimal) -> int | float:
    """A JSON number for the decision's body (built once, at publishing)."""
    return int(value) if value == value.to_integral_value() else float(round(value, 9))


def _ent_json(u: EntitlementUsage) -> dict[str, Any]:
    return {"entitlementId": u.rule.id, "feature": u.rule.feature,
            "limit": _number(u.rule.limit), "usage": _number(u.usage),
            "remaining": _number(u.remaining)}


def customer_states(tenant: Tenant, config: CreditConfig, customer_ids: set[str],
                    now: datetime) -> dict[str, dict[str, Any]]:
    rules = [r for c in customer_ids for r in config.entitlements.get(c, ())]
    wallets = [w for c in customer_ids for w in config.wallets.get(c, ())]
    used = usages(tenant.slug, tenant.time_zone, rules, now) if rules else []
    balances = wallet_balances(tenant.slug, wallets, now) if wallets else {}
    states: dict[str, dict[str, Any]] = {
        c: {"e": [], "w": {}, "x": [], "lv": [], "at": now.timestamp()} for c in customer_ids}
    for u in used:
        r = u.rule
        states[r.customer_id]["e"].append((
            r.id, r.product_id, r.model, r.overage, u.enforced, r.downgrade_model,
            u.period_end.timestamp(), _ent_json(u)))
        levels = []
        if u.used_pct is not None and u.used_pct >= r.warn_at_pct:
            levels.append("WARNING")
        if u.usage >= r.limit:
            levels.append("EXCEEDED")
        if r.limit and u.projected >= r.limit * Decimal("1.2"):
            levels.append("PROJECTED_120")
        states[r.customer_id]["lv"] += [(r.id, lv, u.period_start.timestamp()) for lv in levels]
    for w in wallets:
        b = balances[w.ledger_id]
        states[w.customer_id]["w"][w.ledger_id] = b.balance
        states[w.customer_id]["x"] += [(end, left, w.ledger_id) for end, left in b.expiring]
    return states


def credits_publish(tenant: Tenant, customer_ids: set[str], *, now: datetime | None = None,
                    config: CreditConfig | None = None) -> dict[str, dict[str, Any]]:
    """Recompute and publish the customers' states; returns them (customers with nothing left
    publish an empty state, so a deleted entitlement stops acting at once)."""
    now = now or datetime.now(timezone.utc)
    config = config or credit_config(tenant)
    states = customer_states(tenant, config, customer_ids, now)
    published = {state_key(tenant.slug, c): s for c, s in states.items()}
    shared_cache().set_many(published, STATE_TTL)
    stamp = time.monotonic()
    for mirror in _mirrors:
        for key, state in published.items():
            mirror[key] = (stamp, state)
    return states


def published_states(tenant_slug: str, customer_ids: list[str]) -> dict[str, dict]:
    found = shared_cache().get_many([state_key(tenant_slug, c) for c in customer_ids])
    return {c: found[state_key(tenant_slug, c)] for c in customer_ids
            if state_key(tenant_slug, c) in found}


# --- deciding (the request path) ---------------------------------------------------------------

def wallet_left(state: dict, now_ts: float) -> int:
    """The customer's credits across wallets, without grants that expired since publishing."""
    total = sum(state["w"].values())
    for end, left, _wallet in state["x"]:
        if end <= now_ts:
            total -= left
    return total


def gate(state: dict, product_id: str, model: str,
         ) -> tuple[str, str | None, str, str | None, list]:
    """(decision, reasonCode, reason, downgrade model, remaining per entitlement)."""
    now_ts = time.time()
    remaining = []
    verdict: tuple[str, str | None, str, str | None] = (ALLOW, None, "", None)
    for (ent_id, product, ent_model, overage, enforced, downgrade, period_end,
         as_json) in state["e"]:
        if (product and product != product_id) or (ent_model and ent_model != model):
            continue
        remaining.append(as_json)
        if not enforced or now_ts >= period_end:  # a new period starts from zero
            continue
        if overage == BLOCK:
            verdict = (BLOCK, "ENTITLEMENT_EXCEEDED",
                       f"entitlement {ent_id} ({as_json['feature']}) is used up", None)
        elif overage == THROTTLE and verdict[0] == ALLOW:
            verdict = (THROTTLE, "ENTITLEMENT_EXCEEDED",
                       f"entitlement {ent_id} is used up: use {downgrade or model}",
                       downgrade or None)
    if verdict[0] != BLOCK and state["w"] and wallet_left(state, now_ts) <= 0:
        verdict = (BLOCK, "WALLET_EMPTY", "the customer's prepaid credits are used up", None)
    return (*verdict, remaining)


# --- after each ingest batch -----------------------------------------------------------------

def credits_after_ingest(tenant: Tenant, rows: list[dict[str, Any]]) -> None:
    """The post-ingest hook: publish the batch's customers, top up wallets under a THRESHOLD,
    fire the alerts newly due."""
    from entitlements import burn, services

    config = credit_config(tenant)
    customers = {r["customer_id"] for r in rows} & (
        config.entitlements.keys() | config.wallets.keys())
    if not customers:
        burn.in_flight_done(tenant, rows)
        return
    now = datetime.now(timezone.utc)
    before = published_states(tenant.slug, sorted(customers))
    try:
        states = credits_publish(tenant, customers, now=now, config=config)
    finally:
        # only now: until the new balances are published, the batch counts as in flight
        burn.in_flight_done(tenant, rows)
    if services.thresholds_top_up(tenant=tenant, config=config, states=states, now=now):
        states = credits_publish(tenant, customers, now=now)
    services.credit_alerts_fire(tenant=tenant, config=config, before=before, states=states,
                                now=now)
