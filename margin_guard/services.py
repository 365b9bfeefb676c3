"""Margin Guard: policy choice, evaluation with atomic level changes, overrides, the sweep."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from django.db import IntegrityError, close_old_connections, transaction
from django.db.models import F, Q

from aforo.models import Customer, Tenant
from aforo.periods import window_bounds
from cogs.expected import ScopeMargin, scope_margin
from margin_guard import decision
from margin_guard.ladder import Floors, next_level
from margin_guard.models import GuardAction, GuardPolicy, GuardState, Level

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
    with transaction.atomic():
        updated = GuardState.objects.filter(pk=state.pk, version=state.version).update(
            level=level, version=F("version") + 1, **figures, **measured_fields)
        if updated and level != state.level:
            action = GuardAction.objects.create(
                tenant=tenant, customer_id=customer_id, product_id=grain_product,
                from_level=state.level, to_level=level, mode=policy.mode,
                events_evaluated=measured.events, unknown_events=measured.unknown_events,
                window_start=start, window_end=end, reason=reason, actor=actor, at=now,
                **figures)
    state.refresh_from_db()
    decision.profile_store(state, policy)
    if action is not None:
        transaction.on_commit(lambda: _notify(action, policy))
    return Evaluation(state=state, changed=action is not None, action=action)


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
    if not policy.notify_channel:
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
        for (customer_id, product_id), action in sorted(accounts.items()):
            margin = f"{action.margin_pct:.1f}%" if action.margin_pct is not None \
                else "no revenue"
            scope = f"{customer_id}" + (f" / {product_id}" if product_id else "")
            lines.append(f"- {scope}: margin {margin}, now {Level(action.to_level).label}"
                         f" ({action.mode})")
        send_mail(subject=f"[Aforo] Daily profitability summary: {len(accounts)} account(s) "
                          "hit a margin floor",
                  message="\n".join(lines), from_email=None, recipient_list=recipients)
        sent += 1
    return sent
