"""What the decision path knows of a customer's entitlements and wallets, kept current off it.

After each ingest batch commits (and after every change of an entitlement, a wallet or a
top-up), the customers concerned are recomputed from the ledgers' own sums and published: one
small value per customer in the shared cache (Redis in server mode) and in this process's
decision mirror. The decision (`gate`) then reads only that value: a few comparisons, no
database, no ClickHouse. Other processes see a change within margin_guard's mirror TTL (0.5 s).
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from django.core.cache.backends.redis import RedisCache

from aforo.models import Tenant
from aforo.shared_cache import shared_cache
from entitlements.balances import Balance, balance_at, boundaries_of
from entitlements.config import CreditConfig, WalletRule, credit_config
from entitlements.ledger import WalletSums, customers_wallet_sums, debits_before, wallet_sums
from entitlements.usage import HUNDRED, EntitlementUsage, usages

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

def wallet_balances(tenant_slug: str, wallets: list[WalletRule], at: datetime,
                    sums: dict[str, WalletSums] | None = None) -> dict[str, Balance]:
    """Each wallet's exact balance at `at` (two reads of the credit ledger for all of them, one
    when `sums` are given)."""
    ids = [w.ledger_id for w in wallets]
    sums = wallet_sums(tenant_slug, ids) if sums is None else sums
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
    balances, entries = {}, {}
    if wallets:
        by_customer: dict[str, list[str]] = {}
        for w in wallets:
            by_customer.setdefault(w.customer_id, []).append(w.ledger_id)
        sums, entries = customers_wallet_sums(tenant.slug, by_customer)
        balances = wallet_balances(tenant.slug, wallets, now, sums)
    # "n": the credit ledger entries the state was computed from (publishing keeps the newest;
    # -1 for a customer without wallets, whose state holds no balance to keep current)
    holders = {w.customer_id for w in wallets}
    states: dict[str, dict[str, Any]] = {
        c: {"e": [], "w": {}, "x": [], "lv": [], "at": now.timestamp(),
            "n": entries.get(c, 0) if c in holders else -1} for c in customer_ids}
    for u in used:
        r = u.rule
        states[r.customer_id]["e"].append((
            r.id, r.product_id, r.model, r.overage, u.enforced, r.downgrade_model,
            u.period_end.timestamp(), _ent_json(u)))
        # each level reached, with the usage at which it was reached (what names the batch's
        # crossing event, services.credit_alerts_fire)
        levels = []
        if u.used_pct is not None and u.used_pct >= r.warn_at_pct:
            levels.append(("WARNING", r.limit * r.warn_at_pct / HUNDRED))
        if u.usage >= r.limit:
            levels.append(("EXCEEDED", r.limit))
        if r.limit and u.projected >= r.limit * Decimal("1.2"):
            # projected = usage x period / elapsed: reached at usage 1.2 x limit x elapsed/period
            levels.append(("PROJECTED_120", u.usage * r.limit * Decimal("1.2") / u.projected))
        states[r.customer_id]["lv"] += [
            (r.id, lv, u.period_start.timestamp(), at_usage, u.period_end.timestamp())
            for lv, at_usage in levels]
    for w in wallets:
        b = balances[w.ledger_id]
        states[w.customer_id]["w"][w.ledger_id] = b.balance
        states[w.customer_id]["x"] += [(end, left, w.ledger_id) for end, left in b.expiring]
    return states


def credits_publish(tenant: Tenant, customer_ids: set[str], *, now: datetime | None = None,
                    config: CreditConfig | None = None) -> dict[str, dict[str, Any]]:
    """Recompute and publish the customers' states; returns them (customers with nothing left
    publish an empty state, so a deleted entitlement stops acting at once).

    A state never replaces one computed from more of the credit ledger (`n`, its entries): two
    publishers that read the ledger one after the other may write in the other order, and the
    older snapshot would hide a committed batch's debits from the next split (entitlements.burn)
    once that batch no longer counts as in flight."""
    now = now or datetime.now(timezone.utc)
    config = config or credit_config(tenant)
    states = customer_states(tenant, config, customer_ids, now)
    published = {state_key(tenant.slug, c): s for c, s in states.items()}
    kept = states_set_newest(published)
    stamp = time.monotonic()
    for mirror in _mirrors:
        for key in kept:
            mirror[key] = (stamp, published[key])
    return states


_set_lock = threading.Lock()
# KEYS: the state, its entry count; ARGV: the count (-1: a customer without wallets, written
# whatever is held), the serialized state, the TTL.
_SET_NEWEST = """
local n = tonumber(ARGV[1])
if n < 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  redis.call('DEL', KEYS[2])
  return 1
end
local held = tonumber(redis.call('GET', KEYS[2]) or '-1')
if n < held then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
return 1
"""


def states_set_newest(states: dict[str, dict[str, Any]]) -> list[str]:
    """Write each state unless the cache holds one of more entries; the keys written."""
    cache = shared_cache()
    kept = []
    if isinstance(cache, RedisCache):
        # one script per key, atomic in Redis (the serializer is the cache's own, so get_many
        # reads these values as any other)
        client = cache._cache.get_client(write=True)
        script = client.register_script(_SET_NEWEST)
        dumps = cache._cache._serializer.dumps
        pipe = client.pipeline(transaction=False)
        for key, state in states.items():
            script(keys=[cache.make_and_validate_key(key),
                         cache.make_and_validate_key(key + ":n")],
                   args=[state["n"], dumps(state), STATE_TTL], client=pipe)
        for key, done in zip(states, pipe.execute(), strict=True):
            if done:
                kept.append(key)
        return kept
    with _set_lock:  # one process (the embedded cache): a lock makes compare-and-set atomic
        held = cache.get_many(list(states))
        fresh = {k: s for k, s in states.items()
                 if s["n"] < 0 or s["n"] >= held.get(k, {}).get("n", -1)}
        cache.set_many(fresh, STATE_TTL)
        return list(fresh)


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
                                now=now, rows=rows)
