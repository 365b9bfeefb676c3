"""The decision in the request path: ALLOW, THROTTLE (with a cheaper model) or BLOCK.

Every level change stores a small profile per scope in the cache (Redis in server mode). Each
process mirrors the profiles it reads for at most LOCAL_TTL, so a decision is a dict lookup plus
a few comparisons (no database, no ClickHouse, and a Redis read only when the mirror is stale);
a level change is seen everywhere within LOCAL_TTL, inside the guard's one-second promise. The
refresher keeps the keys read in the last MIRROR_KEEP_S current and drops the others.
"""
from __future__ import annotations

import time

from aforo import refresher
from aforo.shared_cache import cache_count, shared_cache
from entitlements.state import gate, mirror_register, state_key
from margin_guard.counters import decision_count

ALLOW, THROTTLE, BLOCK = "ALLOW", "THROTTLE", "BLOCK"
NONE, ALERT, THROTTLE_LEVEL, BLOCK_LEVEL = 0, 1, 2, 3
PROFILE_TTL = 7 * 24 * 3600
LOCAL_TTL = 0.5  # seconds a process trusts its mirror of a profile
MIRROR_MAX = 200_000
MIRROR_KEEP_S = 300.0  # a key no decision read for this long is dropped by the next refresh
_MISSING: dict = {}
_mirror: dict[str, tuple[float, dict]] = {}
# key -> monotonic time a decision last read it (a plain dict write on the request path); a
# key held without one (published here, not read yet) is kept MIRROR_KEEP_S from the first
# refresh that sees it
_mirror_used: dict[str, float] = {}
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
        for key in keys:
            _mirror_used[key] = now
        return [h[1] for h in held]
    refresher.refresher_start()  # from now on the mirror is kept fresh off the request path
    found = shared_cache().get_many(keys)
    if len(_mirror) > MIRROR_MAX:
        _mirror.clear()  # a crude bound; the next reads refill what is hot
        _mirror_used.clear()
    out = []
    for key in keys:
        profile = found.get(key, _MISSING)
        _mirror[key] = (now, profile)
        _mirror_used[key] = now  # after the entry: a refresh never sees a use without one
        out.append(profile)
    return out


# keys a refresh read takes at once: its decoding holds the GIL, so a request waiting for it
# waits for one chunk's (~0.5 ms at most), not for the whole mirror's
REFRESH_CHUNK = 100


def mirror_refresh() -> int:
    """Re-read from the shared cache every profile this process holds that a decision read in
    the last MIRROR_KEEP_S (the refresher thread's round, aforo.refresher), and drop the others:
    their next decision reads them from Redis again, as for a key never held. Returns how many
    keys were read.

    A key written into the mirror after the read began (this process published it) keeps its
    newer value."""
    keys = list(_mirror)
    if len(_mirror_used) > len(_mirror):  # uses noted as their key was dropped: forget them
        for key in list(_mirror_used):
            if key not in _mirror:
                _mirror_used.pop(key, None)
    cache = shared_cache()
    read = 0
    for start in range(0, len(keys), REFRESH_CHUNK):
        began = time.monotonic()
        chunk = []
        for key in keys[start:start + REFRESH_CHUNK]:
            used = _mirror_used.get(key)
            if used is None:
                _mirror_used[key] = began
            elif began - used > MIRROR_KEEP_S:
                _mirror.pop(key, None)
                _mirror_used.pop(key, None)
                continue
            chunk.append(key)
        if not chunk:
            continue
        found = cache.get_many(chunk)
        stamp = time.monotonic()
        for key in chunk:
            held = _mirror.get(key)
            if held is None or held[0] <= began:
                _mirror[key] = (stamp, found.get(key, _MISSING))
        read += len(chunk)
    return read


def mirror_forget() -> None:
    """Drop every mirrored key and its noted use (tests)."""
    _mirror.clear()
    _mirror_used.clear()


refresher.mirror_register(mirror_refresh)


class Decision:
    """A verdict. A plain slotted class, not a dataclass: building one is on the request path
    (a frozen dataclass's __init__ costs ~4 µs a call here, this one well under one)."""

    __slots__ = ("decision", "level", "model", "downgrade_to", "retry_after", "would", "reason",
                 "reason_code", "remaining")

    def __init__(self, decision: str, level: int, model: str | None = None,
                 downgrade_to: str | None = None, retry_after: int | None = None,
                 would: str | None = None, reason: str = "", reason_code: str | None = None,
                 remaining: tuple = ()) -> None:
        self.decision = decision
        self.level = level
        self.model = model
        self.downgrade_to = downgrade_to
        self.retry_after = retry_after  # set when the throttle's rate limit is exceeded
        self.would = would              # DRY_RUN: what ENFORCE would have answered
        self.reason = reason
        # MARGIN_FLOOR | ENTITLEMENT_EXCEEDED | WALLET_EMPTY | RATE_LIMITED | OVERRIDE; None: ALLOW
        self.reason_code = reason_code
        self.remaining = remaining      # per entitlement in scope: {entitlementId, feature, ...}

    def _fields(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other) -> bool:
        return isinstance(other, Decision) and self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  (mutable: not hashable)

    def __repr__(self) -> str:
        return "Decision(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__) + ")"

    def as_json(self) -> dict:
        return {"decision": self.decision, "level": _LEVELS[self.level], "model": self.model,
                "downgradeTo": self.downgrade_to, "retryAfter": self.retry_after,
                "wouldDecide": self.would, "reason": self.reason,
                "reasonCode": self.reason_code, "remaining": list(self.remaining)}


_LEVELS = ("NONE", "ALERT", "THROTTLE", "BLOCK")


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
    return _decided(tenant_slug, customer_id, product_id, model, feature, keys[0],
                    specific or general, credits)


def decide_held(tenant_slug: str, customer_id: str, product_id: str, model: str,
                feature: str) -> Decision | None:
    """decide() when this process's mirror answers it alone (every profile it needs held and
    fresher than LOCAL_TTL, no rate limit to count in Redis); None otherwise, and the caller
    goes the way that may read Redis. For the event loop: no I/O of any kind."""
    prefix = f"aforo:guard:{tenant_slug}:{customer_id}:"
    specific = _mirror.get(prefix + product_id)
    general = _mirror.get(prefix)
    credits_key = state_key(tenant_slug, customer_id)
    credits = _mirror.get(credits_key)
    if specific is None or general is None or credits is None:
        return None
    now = time.monotonic()
    oldest = now - LOCAL_TTL
    if specific[0] <= oldest or general[0] <= oldest or credits[0] <= oldest:
        return None
    _mirror_used[prefix + product_id] = _mirror_used[prefix] = now
    _mirror_used[credits_key] = now
    profile = specific[1] or general[1]
    if profile and profile["level"] >= THROTTLE_LEVEL and profile["rate"]:
        return None  # the throttle's rate counter lives in Redis
    return _decided(tenant_slug, customer_id, product_id, model, feature,
                    prefix + product_id, profile, credits[1])


def _decided(tenant_slug: str, customer_id: str, product_id: str, model: str, feature: str,
             scope_key: str, profile: dict, credits: dict) -> Decision:
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
    if override and override > time.time():
        return quota_throttle or Decision(ALLOW, level, model=model, reason_code="OVERRIDE",
                                          reason="overridden by an admin", remaining=remaining)
    verdict = _enforced(profile, model, feature, f"aforo:guard-rate:{scope_key}")
    if profile["mode"] == "DRY_RUN":
        return quota_throttle or Decision(
            ALLOW, level, model=model, would=verdict.decision,
            reason=f"dry run: would {verdict.decision}", reason_code=verdict.reason_code,
            remaining=remaining)
    if verdict.decision == ALLOW and quota_throttle:
        verdict = quota_throttle
    elif remaining:
        verdict.remaining = remaining  # a verdict of this call's own
    if verdict.decision == BLOCK:
        decision_count(tenant_slug, customer_id, product_id, feature or model, "BLOCKED")
    elif verdict.retry_after:
        decision_count(tenant_slug, customer_id, product_id, feature or model, "RATE_LIMITED")
    elif verdict.downgrade_to:
        decision_count(tenant_slug, customer_id, product_id, model, "DOWNGRADED")
    return verdict
