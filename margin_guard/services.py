"""Margin Guard: policy choice, evaluation with atomic level changes, overrides, the sweep."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, close_old_connections, transaction
from django.db.models import F, Q

from aforo.errors import DomainError
from aforo.models import Customer, Tenant
from aforo.periods import window_bounds
from cogs.expected import ScopeMargin, scope_margin
from margin_guard import decision
from margin_guard.impact import impact_report
from margin_guard.ladder import Floors, next_level
from margin_guard.models import GuardAction, GuardPolicy, GuardSettings, GuardState, Level
from margin_guard.recommendations import customer_history, recommendations_for
from notifications.destinations import check_destination
from notifications.models import Channel

log = logging.getLogger(__name__)
Scope = GuardPolicy.Scope
PRODUCT_GRAIN = (Scope.PRODUCT, Scope.CUSTOMER_PRODUCT)


def policy_for(tenant: Tenant, customer_id: str, product_id: str) -> GuardPolicy | None:
    """The most specific policy for a customer's use of a product."""
    tier = (Customer.objects.filter(tenant=tenant, external_id=customer_id)
            .values_list("tier", flat=True).first()) or ""
    candidates = GuardPolicy.objects.filter(
        Q(tenant=tenant) | Q(tenant__isnull=True, scope=Scope.PLATFORM))
    matches = {
        Scope.CUSTOMER_PRODUCT: Q(customer_id=customer_id, product_id=product_id),
        Scope.CUSTOMER: Q(customer_id=customer_id),
        Scope.PRODUCT: Q(product_id=product_id),
        Scope.TIER: Q(tier=tier),
        Scope.TENANT: Q(),
        Scope.PLATFORM: Q(),
    }
    for scope in GuardPolicy.SPECIFICITY:
        policy = candidates.filter(matches[scope], scope=scope).order_by("-id").first()
        if policy is not None:
            return policy
    return None


def floors_of(policy: GuardPolicy) -> Floors:
    return Floors(policy.alert_below_pct, policy.throttle_below_pct, policy.block_below_pct,
                  policy.recovery_buffer_pct, policy.min_events)


@dataclass(frozen=True)
class Evaluation:
    state: GuardState
    changed: bool
    action: GuardAction | None


def guard_evaluate(*, tenant: Tenant, customer_id: str, product_id: str, now: datetime,
                   actor: str = "system") -> Evaluation | None:
    """Measure the scope's margin and move its level if the ladder says so.

    The level changes with a compare-and-set on the state's version, inside the transaction
    that writes its audit action: of two evaluators at once, exactly one changes it.
    """
    policy = policy_for(tenant, customer_id, product_id)
    if policy is None or policy.mode == GuardPolicy.Mode.OFF:
        return None
    grain_product = product_id if policy.scope in PRODUCT_GRAIN else ""
    start, end = window_bounds(policy.window, now, tenant.time_zone)
    measured = scope_margin(tenant.slug, start=start, end=end + timedelta(seconds=1),
                            customer_id=customer_id, product_id=grain_product or None)
    judged, note = judged_margin(measured, policy)
    state = _state(tenant, customer_id, grain_product)
    level, reason = next_level(state.level, judged.margin_pct, floors_of(policy),
                               cost=judged.cogs_usd, events=judged.events)
    reason = note + reason
    figures = dict(margin_pct=judged.margin_pct, cost_usd=judged.cogs_usd,
                   revenue_usd=judged.expected_revenue_usd)
    measured_fields = dict(events=measured.events, unknown_events=measured.unknown_events,
                           revenue_sources=measured.sources_json(), reason=reason,
                           evaluated_at=now,
                           policy=policy, mode=policy.mode)
    action = None
    advice = []
    if level != state.level and level >= Level.ALERT:
        advice = _recommendations(tenant, customer_id, grain_product, policy, now)
    with transaction.atomic():
        updated = GuardState.objects.filter(pk=state.pk, version=state.version).update(
            level=level, version=F("version") + 1, **figures, **measured_fields)
        if updated and level != state.level:
            action = GuardAction.objects.create(
                tenant=tenant, customer_id=customer_id, product_id=grain_product,
                from_level=state.level, to_level=level, mode=policy.mode,
                events_evaluated=measured.events, unknown_events=measured.unknown_events,
                window_start=start, window_end=end, reason=reason, actor=actor, at=now,
                recommendations=advice, **figures)
    state.refresh_from_db()
    decision.profile_store(state, policy)
    if action is not None:
        transaction.on_commit(lambda: _notify(action, policy))
    return Evaluation(state=state, changed=action is not None, action=action)


def _recommendations(tenant: Tenant, customer_id: str, product_id: str, policy: GuardPolicy,
                     now: datetime) -> list[dict]:
    """What to do about an account that hit a floor (margin_guard/recommendations.py); a
    failure to read the history never stops the level change."""
    try:
        history = customer_history(tenant=tenant, customer_id=customer_id,
                                   product_id=product_id, policy=policy, now=now)
    except Exception:
        log.exception("recommendations failed for %s/%s", customer_id, product_id)
        return []
    return [r.as_json() for r in recommendations_for(history)]


def judged_margin(measured: ScopeMargin, policy: GuardPolicy) -> tuple[ScopeMargin, str]:
    """The figures the ladder judges, and a note on the events with no revenue source.

    HOLD (the default) leaves events with unknown revenue out: they neither count as losing
    money nor as volume, so they never escalate a level by themselves. TREAT_AS_ZERO counts
    them as earning nothing, which is the dashboard's expected margin.
    """
    unknown, total = measured.unknown_events, measured.events
    if not unknown:
        return measured, ""
    if policy.on_unknown_revenue == GuardPolicy.UnknownRevenue.TREAT_AS_ZERO:
        return measured, f"revenue unknown for {unknown} of {total} events (counted as $0); "
    return measured.known, f"revenue unknown for {unknown} of {total} events (left out); "


def _state(tenant: Tenant, customer_id: str, product_id: str) -> GuardState:
    try:
        state, _ = GuardState.objects.get_or_create(tenant=tenant, customer_id=customer_id,
                                                    product_id=product_id)
    except IntegrityError:  # created by a concurrent evaluator
        state = GuardState.objects.get(tenant=tenant, customer_id=customer_id,
                                       product_id=product_id)
    return state


def _notify(action: GuardAction, policy: GuardPolicy) -> None:
    from margin_guard.hooks import level_change_run

    level_change_run(action, policy)  # e.g. intelligence's MARGIN_TRIP signals
    if not policy.notify_targets():
        return
    from margin_guard.notify import action_notify

    action_notify(action=action, policy=policy)


def guard_override(*, tenant: Tenant, customer_id: str, product_id: str, until: datetime,
                   actor: str, now: datetime) -> GuardState:
    """An ADMIN forces ALLOW for a scope until a time; audited like any level change."""
    state = _state(tenant, customer_id, product_id)
    with transaction.atomic():
        GuardState.objects.filter(pk=state.pk).update(override_until=until, override_by=actor,
                                                      version=F("version") + 1)
        GuardAction.objects.create(
            tenant=tenant, customer_id=customer_id, product_id=product_id,
            from_level=state.level, to_level=state.level, mode=state.mode,
            margin_pct=state.margin_pct, cost_usd=state.cost_usd,
            revenue_usd=state.revenue_usd, events_evaluated=state.events,
            reason=f"override: ALLOW until {until.isoformat()}", actor=actor, at=now)
    state.refresh_from_db()
    decision.profile_store(state, state.policy)
    return state


def guard_evaluate_scopes(*, tenant: Tenant, scopes: set[tuple[str, str]],
                          now: datetime | None = None) -> list[Evaluation]:
    """Evaluate the (customer, product) pairs an ingest touched; failures are logged."""
    now = now or datetime.now(timezone.utc)
    results = []
    for customer_id, product_id in sorted(scopes):
        if not customer_id:
            continue
        try:
            result = guard_evaluate(tenant=tenant, customer_id=customer_id,
                                    product_id=product_id, now=now)
        except Exception:
            log.exception("guard evaluation failed for %s/%s", customer_id, product_id)
            continue
        if result is not None:
            results.append(result)
    return results


def guard_after_ingest(tenant: Tenant, rows: list[dict]) -> None:
    """The post-ingest hook: re-evaluate the scopes a batch touched, off the request's path."""
    if not tenant_guarded(tenant):
        return
    scopes = {(r["customer_id"], r["product_id"]) for r in rows}
    _evaluation_pool.submit(_evaluate_in_worker, tenant, scopes)


_evaluation_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aforo-guard")


def guard_evaluations_wait() -> None:
    """Wait for the post-ingest evaluations queued so far (one worker: they run in order)."""
    _evaluation_pool.submit(lambda: None).result()


def _evaluate_in_worker(tenant: Tenant, scopes: set[tuple[str, str]]) -> None:
    close_old_connections()
    try:
        guard_evaluate_scopes(tenant=tenant, scopes=scopes)
    finally:
        close_old_connections()


def guard_sweep(*, now: datetime) -> int:
    """Re-evaluate every held scope, so rolling windows that move on lift or deepen levels."""
    changed = 0
    for state in GuardState.objects.select_related("tenant").exclude(mode=GuardPolicy.Mode.OFF):
        result = guard_evaluate(tenant=state.tenant, customer_id=state.customer_id,
                                product_id=state.product_id or "", now=now, actor="sweep")
        changed += bool(result and result.changed)
    return changed


def tenant_guarded(tenant: Tenant) -> bool:
    """Whether any policy could act for this tenant (ingest skips evaluation otherwise)."""
    return GuardPolicy.objects.filter(
        Q(tenant=tenant) | Q(tenant__isnull=True, scope=Scope.PLATFORM)
    ).exclude(mode=GuardPolicy.Mode.OFF).exists()


LEVEL_NAMES = {level.value: level.label for level in Level}


def _impact_lines(tenant: Tenant, since: datetime, now: datetime) -> list[str]:
    """The impact report's figures for the same 24 hours, as the console shows them."""
    report = impact_report(tenant=tenant, start=since, end=now)
    lines = ["", f"Net profit recovered: ${report.net_recovered_usd:.2f} "
                 f"(${report.per_hour(report.net_recovered_usd):.2f}/hr)"]
    for lever in report.lever_rows:
        lines.append(f"- {lever.title}: ${lever.recovered_usd:.2f} over {lever.calls} call(s)"
                     + (" (estimate)" if lever.estimate else ""))
    if report.roi_multiple is not None:
        lines.append(f"ROI: {report.roi_multiple:.1f}x against ${report.product_cost_usd:.2f} "
                     "of Aforo")
    for account in report.accounts:
        before, after = account.before.margin_pct, account.after.margin_pct
        lines.append(f"- {account.customer_id}: margin "
                     f"{'—' if before is None else f'{before:.1f}%'} before intervention, "
                     f"{'—' if after is None else f'{after:.1f}%'} since")
    return lines


def daily_summary_send(*, now: datetime) -> int:
    """Email each tenant's owners and admins the accounts that hit a floor in the last 24 h."""
    from django.core.mail import send_mail

    from aforo.models import Membership, Role

    since = now - timedelta(hours=24)
    sent = 0
    hits = (GuardAction.objects.filter(at__gte=since, at__lt=now, to_level__gte=Level.ALERT)
            .select_related("tenant").order_by("tenant_id", "customer_id", "-at"))
    by_tenant: dict[int, dict[tuple[str, str], GuardAction]] = {}
    tenants = {}
    for action in hits:
        tenants[action.tenant_id] = action.tenant
        by_tenant.setdefault(action.tenant_id, {}).setdefault(
            (action.customer_id, action.product_id), action)  # the latest per account
    for tenant_id, accounts in by_tenant.items():
        recipients = list(
            Membership.objects.filter(tenant_id=tenant_id, role__in=[Role.OWNER, Role.ADMIN])
            .exclude(user__email="").values_list("user__email", flat=True))
        if not recipients:
            continue
        lines = [f"{len(accounts)} account(s) hit a margin floor in the past 24 hours:", ""]
        tail = _impact_lines(tenants[tenant_id], since, now)
        for (customer_id, product_id), action in sorted(accounts.items()):
            margin = f"{action.margin_pct:.1f}%" if action.margin_pct is not None \
                else "no revenue"
            scope = f"{customer_id}" + (f" / {product_id}" if product_id else "")
            lines.append(f"- {scope}: margin {margin}, now {Level(action.to_level).label}"
                         f" ({action.mode})")
        lines += tail
        send_mail(subject=f"[Aforo] Daily profitability summary: {len(accounts)} account(s) "
                          "hit a margin floor",
                  message="\n".join(lines), from_email=None, recipient_list=recipients)
        sent += 1
    return sent


# --- policies: the one place their rules live (API, console, admin and demo call these) ---

POLICY_FIELDS = ("name", "scope", "tier", "product_id", "customer_id", "mode",
                 "alert_below_pct", "throttle_below_pct", "block_below_pct", "window",
                 "min_events", "recovery_buffer_pct", "on_unknown_revenue", "downgrade_map",
                 "premium_features", "throttle_rate_per_minute", "override_minutes",
                 "notifications")
MAX_POLICY_ITEMS = 200  # models in a downgrade map, features a block suspends
MAX_NOTIFICATIONS = 10
MAX_OVERRIDE_MINUTES = 30 * 24 * 60
MAX_ID = 200
FLOOR_MIN, FLOOR_MAX = Decimal(-1000), Decimal(100)
SCOPE_NEEDS = {Scope.TIER: ("tier",), Scope.PRODUCT: ("product_id",),
               Scope.CUSTOMER: ("customer_id",),
               Scope.CUSTOMER_PRODUCT: ("customer_id", "product_id")}
SCOPE_LABELS = {"tier": "a tier", "product_id": "a product", "customer_id": "a customer"}


def _choice(value: Any, choices: type, field: str, what: str) -> str:
    if value not in choices.values:
        raise DomainError(f"{what} must be one of {', '.join(choices.values)}.", field=field)
    return value


def _pct(value: Any, field: str, label: str, low: Decimal, high: Decimal) -> Decimal:
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise DomainError(f"{label} must be a number.", field=field) from None
    if not number.is_finite() or not low <= number <= high:
        raise DomainError(f"{label} must be between {low}% and {high}%.", field=field)
    if number != number.quantize(Decimal("0.01")):
        raise DomainError(f"{label} takes at most two decimals.", field=field)
    return number


def _text(value: Any, field: str, label: str, *, required: bool = False) -> str:
    text = (value or "").strip() if isinstance(value, str) or value is None else None
    if text is None:
        raise DomainError(f"{label} must be text.", field=field)
    if required and not text:
        raise DomainError(f"{label} is required.", field=field)
    if len(text) > MAX_ID:
        raise DomainError(f"{label} is longer than {MAX_ID} characters.", field=field)
    return text


def _downgrades(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise DomainError("The downgrade map pairs a model with its cheaper model.",
                          field="downgrade_map")
    if len(value) > MAX_POLICY_ITEMS:
        raise DomainError(f"The downgrade map holds at most {MAX_POLICY_ITEMS} models.",
                          field="downgrade_map")
    cleaned = {}
    for source, target in value.items():
        source = _text(source, "downgrade_map", "A model in the downgrade map", required=True)
        target = _text(target, "downgrade_map", f"The downgrade of {source}", required=True)
        if source == target:
            raise DomainError(f"{source} cannot be downgraded to itself.", field="downgrade_map")
        cleaned[source] = target
    return cleaned


def _features(value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)):
        raise DomainError("Premium features are a list of feature or model names.",
                          field="premium_features")
    if len(value) > MAX_POLICY_ITEMS:
        raise DomainError(f"A policy suspends at most {MAX_POLICY_ITEMS} premium features.",
                          field="premium_features")
    features = [_text(f, "premium_features", "A premium feature", required=True) for f in value]
    return list(dict.fromkeys(features))  # each once, in the order given


def _notifications(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, (list, tuple)):
        raise DomainError("Notifications are a list of channels.", field="notifications")
    if len(value) > MAX_NOTIFICATIONS:
        raise DomainError(f"A policy notifies at most {MAX_NOTIFICATIONS} channels.",
                          field="notifications")
    targets, seen = [], set()
    for n, target in enumerate(value):
        channel, destination = (target.get("channel"), target.get("destination")) \
            if isinstance(target, dict) else target
        _choice(channel, Channel, f"notifications.{n}.channel", "A channel")
        destination = (destination or "").strip()
        check_destination(channel, destination, f"notifications.{n}.destination")
        if (channel, destination) in seen:
            raise DomainError("This channel is listed twice.",
                              field=f"notifications.{n}.destination")
        seen.add((channel, destination))
        targets.append({"channel": channel, "destination": destination})
    return targets


def _policy_checked(values: dict[str, Any], *, operator: bool) -> dict[str, Any]:
    """Every policy rule, on the merged values; returns them cleaned. Raises DomainError
    naming the service argument at fault."""
    v = dict(values)
    v["name"] = _text(v.get("name"), "name", "A name", required=True)
    _choice(v.get("scope"), Scope, "scope", "The scope")
    if v["scope"] == Scope.PLATFORM and not operator:
        raise DomainError("PLATFORM policies are set by operators.", field="scope")
    for key in ("tier", "product_id", "customer_id"):
        v[key] = _text(v.get(key), key, SCOPE_LABELS[key].split(" ", 1)[1].capitalize())
        if key not in SCOPE_NEEDS.get(v["scope"], ()):
            v[key] = ""  # a tenant-wide policy names no tier, product or customer
        elif not v[key]:
            raise DomainError(f"A {v['scope']} policy needs {SCOPE_LABELS[key]}.", field=key)
    _choice(v.get("mode"), GuardPolicy.Mode, "mode", "The mode")
    _choice(v.get("window"), GuardPolicy.Window, "window", "The window")
    _choice(v.get("on_unknown_revenue"), GuardPolicy.UnknownRevenue, "on_unknown_revenue",
            "Unknown revenue")
    floors = [_pct(v.get(f), f, label, FLOOR_MIN, FLOOR_MAX) for f, label in (
        ("alert_below_pct", "The alert floor"), ("throttle_below_pct", "The throttle floor"),
        ("block_below_pct", "The block floor"))]
    if not floors[0] >= floors[1]:
        raise DomainError("Floors must descend: alert ≥ throttle ≥ block (the throttle floor "
                          "is above the alert floor).", field="throttle_below_pct")
    if not floors[1] >= floors[2]:
        raise DomainError("Floors must descend: alert ≥ throttle ≥ block (the block floor is "
                          "above the throttle floor).", field="block_below_pct")
    v["alert_below_pct"], v["throttle_below_pct"], v["block_below_pct"] = floors
    v["recovery_buffer_pct"] = _pct(v.get("recovery_buffer_pct"), "recovery_buffer_pct",
                                    "The recovery buffer", Decimal(0), Decimal(100))
    v["min_events"] = _count(v.get("min_events"), "min_events", "The minimum volume",
                             low=0, high=10**9)
    if v.get("throttle_rate_per_minute") not in (None, ""):
        v["throttle_rate_per_minute"] = _count(
            v["throttle_rate_per_minute"], "throttle_rate_per_minute", "The rate limit",
            low=1, high=10**6)
    else:
        v["throttle_rate_per_minute"] = None
    v["override_minutes"] = _count(v.get("override_minutes"), "override_minutes",
                                   "The override duration", low=1, high=MAX_OVERRIDE_MINUTES)
    v["downgrade_map"] = _downgrades(v.get("downgrade_map") or {})
    v["premium_features"] = _features(v.get("premium_features") or [])
    v["notifications"] = _notifications(v.get("notifications") or [])
    return v


def _count(value: Any, field: str, label: str, *, low: int, high: int) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise DomainError(f"{label} must be a whole number.", field=field) from None
    if not low <= number <= high:
        raise DomainError(f"{label} must be between {low} and {high}.", field=field)
    return number


def _apply(policy: GuardPolicy, values: dict[str, Any]) -> GuardPolicy:
    for key in POLICY_FIELDS:
        setattr(policy, key, values[key])  # notifications: saved with the policy (Notifying)
    return policy


def policy_values(policy: GuardPolicy) -> dict[str, Any]:
    """A policy's values as the create service takes them (what an edit form starts from)."""
    values = {key: getattr(policy, key) for key in POLICY_FIELDS}
    values["notifications"] = [{"channel": c, "destination": d}
                               for c, d in policy.notify_targets()]
    return values


def guard_policy_build(*, tenant: Tenant | None, values: dict[str, Any],
                       policy: GuardPolicy | None = None,
                       operator: bool = False) -> GuardPolicy:
    """The policy `values` describe (over `policy`'s own, or the defaults), checked and not
    saved: what create and update save, and what the preview evaluates."""
    unknown = set(values) - set(POLICY_FIELDS)
    if unknown:
        raise DomainError(f"Unknown policy fields: {', '.join(sorted(unknown))}.")
    base = policy_values(policy or GuardPolicy(tenant=tenant))
    merged = _policy_checked({**base, **values}, operator=operator)
    if merged["scope"] == Scope.PLATFORM:
        tenant = None
    elif tenant is None:
        raise DomainError("A tenant policy needs its tenant.", field="scope")
    built = _apply(GuardPolicy(pk=policy.pk if policy else None, tenant=tenant), merged)
    if policy is not None:
        built.signing_secret = policy.signing_secret
    return built


def guard_policy_create(*, tenant: Tenant | None, name: str, scope: str,
                        operator: bool = False, **values: Any) -> GuardPolicy:
    """A new guard policy. `values` are the other POLICY_FIELDS (defaults for those left out);
    PLATFORM policies (no tenant) only for operators."""
    policy = guard_policy_build(tenant=tenant, values={"name": name, "scope": scope, **values},
                                operator=operator)
    policy.save()
    return policy


def guard_policy_update(*, policy: GuardPolicy, operator: bool = False,
                        **changes: Any) -> GuardPolicy:
    """Change some of a policy's POLICY_FIELDS; the rules hold on the result."""
    if policy.tenant_id is None and not operator:
        raise DomainError("PLATFORM policies are set by operators.", field="scope")
    updated = guard_policy_build(tenant=policy.tenant, values=changes, policy=policy,
                                 operator=operator)
    if updated.tenant_id != policy.tenant_id:
        raise DomainError("A policy cannot move between a tenant and the platform.",
                          field="scope")
    updated.save()
    return updated


def guard_policy_delete(*, policy: GuardPolicy) -> None:
    """Remove a policy; the levels it set stay in the audit, and the scopes it held fall to
    the next policy that matches at their next evaluation."""
    policy.delete()


def guard_settings_get(*, tenant: Tenant) -> GuardSettings:
    return GuardSettings.objects.get_or_create(tenant=tenant)[0]


def guard_settings_update(*, tenant: Tenant,
                          product_cost_usd_per_month: Decimal | None) -> GuardSettings:
    """Set what Aforo costs the tenant a month (None: no ROI)."""
    if product_cost_usd_per_month is not None and product_cost_usd_per_month < 0:
        raise DomainError("The product cost cannot be negative.",
                          field="product_cost_usd_per_month")
    found = guard_settings_get(tenant=tenant)
    found.product_cost_usd_per_month = product_cost_usd_per_month
    found.save(update_fields=["product_cost_usd_per_month"])
    return found
