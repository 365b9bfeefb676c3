"""The decision in the request path: ALLOW, THROTTLE (with a cheaper model) or BLOCK.

Every level change stores a small profile per scope in the cache (Redis in server mode). Each
process mirrors the profiles it reads for at most LOCAL_TTL, so a decision is a dict lookup plus
a few comparisons (no database, no ClickHouse, and a Redis read only when the mirror is stale);
a level change is seen everywhere within LOCAL_TTL, inside the guard's one-second promise.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from aforo.shared_cache import cache_count, shared_cache
from entitlements.state import gate, mirror_register, state_key
from margin_guard.counters import decision_count

ALLOW, THROTTLE, BLOCK = "ALLOW", "THROTTLE", "BLOCK"
NONE, ALERT, THROTTLE_LEVEL, BLOCK_LEVEL = 0, 1, 2, 3
PROFILE_TTL = 7 * 24 * 3600
LOCAL_TTL = 0.5  # seconds a process trusts its mirror of a profile
MIRROR_MAX = 200_000
_MISSING: dict = {}
_mirror: dict[str, tuple[float, dict]] = {}
# entitlements publishes each customer's quota and wallet state into this mirror too, so this
# process decides on a new state at once and the state travels in the profiles' one read
mirror_register(_mirror)


def _key(tenant_slug: str, customer_id: str, product_id: str) -> str:
    return f"aforo:guard:{tenant_slug}:{customer_id}:{product_id}"


def profile_store(state, policy) -> None:
    """Publish a scope's level and the policy's levers for the decision path."""
    profile = {
        "level": state.level,
        "mode": state.mode,
        "downgrade": dict(policy.downgrade_map or {}) if policy else {},
        "premium": list(policy.premium_features or []) if policy else [],
        "rate": policy.throttle_rate_per_minute if policy else None,
        "override_until": state.override_until.timestamp() if state.override_until else None,
        "margin_pct": str(state.margin_pct) if state.margin_pct is not None else None,
    }
    key = _key(state.tenant.slug, state.customer_id, state.product_id or "")
    shared_cache().set(key, profile, PROFILE_TTL)
    _mirror[key] = (time.monotonic(), profile)


def _profiles(keys: list[str]) -> list[dict]:
    """The profiles for `keys` from this process's mirror, refreshed together when stale."""
    now = time.monotonic()
    held = [_mirror.get(k) for k in keys]
    if all(h is not None and now - h[0] < LOCAL_TTL for h in held):
        return [h[1] for h in held]
    found = shared_cache().get_many(keys)
    if len(_mirror) > MIRROR_MAX:
        _mirror.clear()  # a crude bound; the next reads refill what is hot
    out = []
    for key in keys:
        profile = found.get(key, _MISSING)
        _mirror[key] = (now, profile)
        out.append(profile)
    return out


@dataclass(frozen=True)
class Decision:
    decision: str
    level: int
    model: str | None = None
    downgrade_to: str | None = None
    retry_after: int | None = None  # set when the throttle's rate limit is exceeded
    would: str | None = None        # DRY_RUN: what ENFORCE would have answered
    reason: str = ""
    # MARGIN_FLOOR | ENTITLEMENT_EXCEEDED | WALLET_EMPTY | RATE_LIMITED | OVERRIDE; None: ALLOW
    reason_code: str | None = None
    remaining: tuple = ()           # per entitlement in scope: {entitlementId, feature, ...}

    def as_json(self) -> dict:
        return {"decision": self.decision, "level": ["NONE", "ALERT", "THROTTLE", "BLOCK"][
            self.level], "model": self.model, "downgradeTo": self.downgrade_to,
            "retryAfter": self.retry_after, "wouldDecide": self.would, "reason": self.reason,
            "reasonCode": self.reason_code, "remaining": list(self.remaining)}


def _enforced(profile: dict, model: str, feature: str, rate_key: str) -> Decision:
    level = profile["level"]
    premium = profile["premium"]
    if level >= BLOCK_LEVEL and ((feature and feature in premium) or model in premium):
        return Decision(BLOCK, level, model=model, reason_code="MARGIN_FLOOR",
                        reason="margin below the BLOCK floor: premium feature suspended")
    if level >= THROTTLE_LEVEL:
        cheaper = profile["downgrade"].get(model)
        rate = profile["rate"]
        if rate:
            minute = int(time.time() // 60)
            key = f"{rate_key}:{minute}"
            if cache_count(key, timeout=120) > rate:
                return Decision(THROTTLE, level, model=cheaper or model, downgrade_to=cheaper,
                                retry_after=60 - int(time.time()) % 60,
                                reason_code="RATE_LIMITED",
                                reason=f"over the throttle limit of {rate} calls a minute")
        if cheaper:
            return Decision(THROTTLE, level, model=cheaper, downgrade_to=cheaper,
                            reason_code="MARGIN_FLOOR",
                            reason=f"margin below the THROTTLE floor: use {cheaper}")
    return Decision(ALLOW, level, model=model)


def decide(tenant_slug: str, *, customer_id: str, product_id: str = "", model: str = "",
           feature: str = "") -> Decision:
    """The in-process call for apps that embed Aforo (the HTTP endpoint wraps it).

    Entitlements and wallets first (a used-up quota or an empty wallet blocks whatever the
    margin says), then the margin guard; a quota's THROTTLE applies when the guard allows.
    """
    keys = [_key(tenant_slug, customer_id, product_id), _key(tenant_slug, customer_id, ""),
            state_key(tenant_slug, customer_id)]
    specific, general, credits = _profiles(keys)
    profile = specific or general
    level = profile["level"] if profile else NONE
    remaining: tuple = ()
    quota_throttle = None
    if credits:
        verdict_kind, code, why, cheaper, left = gate(credits, product_id, model)
        remaining = tuple(left)
        if verdict_kind == BLOCK:
            decision_count(tenant_slug, customer_id, product_id, feature or model, "BLOCKED")
            return Decision(BLOCK, level, model=model, reason=why, reason_code=code,
                            remaining=remaining)
        if verdict_kind == THROTTLE:
            quota_throttle = Decision(THROTTLE, level, model=cheaper or model,
                                      downgrade_to=cheaper, reason=why, reason_code=code,
                                      remaining=remaining)
    if not profile or level == NONE:
        if quota_throttle:
            if quota_throttle.downgrade_to:
                decision_count(tenant_slug, customer_id, product_id, model, "DOWNGRADED")
            return quota_throttle
        return Decision(ALLOW, NONE, model=model, remaining=remaining)
    override = profile["override_until"]
    if override and override > datetime.now(timezone.utc).timestamp():
        return quota_throttle or Decision(ALLOW, level, model=model, reason_code="OVERRIDE",
                                          reason="overridden by an admin", remaining=remaining)
    verdict = _enforced(profile, model, feature, f"aforo:guard-rate:{keys[0]}")
    if profile["mode"] == "DRY_RUN":
        return quota_throttle or Decision(
            ALLOW, level, model=model, would=verdict.decision,
            reason=f"dry run: would {verdict.decision}", reason_code=verdict.reason_code,
            remaining=remaining)
    if verdict.decision == ALLOW and quota_throttle:
        verdict = quota_throttle
    elif remaining:
        verdict = replace(verdict, remaining=remaining)
    if verdict.decision == BLOCK:
        decision_count(tenant_slug, customer_id, product_id, feature or model, "BLOCKED")
    elif verdict.retry_after:
        decision_count(tenant_slug, customer_id, product_id, feature or model, "RATE_LIMITED")
    elif verdict.downgrade_to:
        decision_count(tenant_slug, customer_id, product_id, model, "DOWNGRADED")
    return verdict
