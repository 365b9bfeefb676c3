"""Console page Margin Guard: policies, levels per customer, interventions and impact."""
from __future__ import annotations

import functools
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from aforo.console import current_membership, memberships_of
from aforo.errors import DomainError
from aforo.eventstore import EventStoreError
from aforo.models import Customer, Product, Role
from aforo.permissions import GUARD_ROLES
from margin_guard.figures import before_after_figure
from margin_guard.impact import impact_report
from margin_guard.models import GuardAction, GuardPolicy, GuardState, Level
from margin_guard.queries import guard_policy_preview
from margin_guard.services import (
    MAX_NOTIFICATIONS,
    guard_override,
    guard_policy_build,
    guard_policy_create,
    guard_policy_delete,
    guard_policy_update,
    guard_settings_get,
    guard_settings_update,
    policy_values,
)
from notifications.models import Channel

LEVEL_CLASS = {Level.NONE: "ok", Level.ALERT: "warn", Level.THROTTLE: "throttle",
               Level.BLOCK: "over"}
TIMELINE_SHOWN = 50
IMPACT_WINDOWS = {"1h": ("last hour", timedelta(hours=1)), "24h": ("last 24 hours",
                  timedelta(hours=24)), "7d": ("last 7 days", timedelta(days=7)),
                  "30d": ("last 30 days", timedelta(days=30))}


SOURCE_LABELS = (("attributedUsd", "attributed"), ("carriedUsd", "carried"),
                 ("ratedUsd", "rated"), ("estimatedUsd", "estimated"))


def source_mix(state: GuardState) -> list[tuple[str, Decimal]]:
    """The window's expected revenue by source, the sources that hold any."""
    sources = state.revenue_sources or {}
    return [(label, Decimal(sources[key])) for key, label in SOURCE_LABELS
            if sources.get(key) and Decimal(sources[key])]


@login_required
def guard_page(request: HttpRequest) -> HttpResponse:
    membership = current_membership(request)
    context = {"membership": membership, "memberships": memberships_of(request.user),
               "guard": True, "errors": []}
    if membership is None:
        return render(request, "console/cogs/no_tenant.html", context)
    tenant = membership.tenant
    states = GuardState.objects.filter(tenant=tenant).order_by("-level", "customer_id")
    context.update(
        policies=GuardPolicy.objects.filter(Q(tenant=tenant) | Q(tenant__isnull=True))
        .prefetch_related("destinations"),
        states=[(s, Level(s.level).label, LEVEL_CLASS[s.level], source_mix(s)) for s in states],
        actions=[(a, Level(a.from_level).label, Level(a.to_level).label,
                  LEVEL_CLASS[a.to_level])
                 for a in GuardAction.objects.filter(tenant=tenant)[:TIMELINE_SHOWN]],
        can_override=Role(membership.role) in GUARD_ROLES,
        can_manage=Role(membership.role) in GUARD_ROLES, operator=_operator(request),
        modes=GuardPolicy.Mode.values,
        now=datetime.now(timezone.utc),
    )
    window = request.GET.get("impact", "30d")
    if window not in IMPACT_WINDOWS:
        window = "30d"
    end = datetime.now(timezone.utc)
    try:
        impact = impact_report(tenant=tenant, start=end - IMPACT_WINDOWS[window][1], end=end)
        context["impact"] = impact
        context["impact_figure"] = before_after_figure(impact.accounts)
        if window != "1h":
            context["last_hour"] = impact_report(tenant=tenant, start=end - timedelta(hours=1),
                                                 end=end, accounts=False)
        else:
            context["last_hour"] = impact
    except EventStoreError as exc:
        context["errors"].append(f"The impact report is unavailable right now: {exc}")
    context["impact_window"] = window
    context["impact_windows"] = [(key, title) for key, (title, _) in IMPACT_WINDOWS.items()]
    context["impact_label"] = IMPACT_WINDOWS[window][0]
    context["product_cost"] = guard_settings_get(tenant=tenant).product_cost_usd_per_month
    return render(request, "console/margin_guard.html", context)


@login_required
@require_POST
def override(request: HttpRequest) -> HttpResponse:
    membership = current_membership(request)
    if membership is None or Role(membership.role) not in GUARD_ROLES:
        messages.error(request, "Only an owner or admin may override the guard.")
        return redirect("console-margin-guard")
    try:
        hours = max(1, min(int(request.POST.get("hours", "1")), 24 * 30))
    except ValueError:
        hours = 1
    now = datetime.now(timezone.utc)
    guard_override(tenant=membership.tenant, customer_id=request.POST.get("customer_id", ""),
                   product_id=request.POST.get("product_id", ""),
                   until=now + timedelta(hours=hours), actor=request.user.username, now=now)
    messages.success(request, f"Access allowed for {hours} h; the override is in the timeline.")
    return redirect("console-margin-guard")


# --- policies: create, edit, preview, mode, delete ------------------------------------------

NOTIFICATION_ROWS_MIN = 2
FIELD_LABELS = {
    "name": "Name", "scope": "Scope", "tier": "Tier", "product_id": "Product",
    "customer_id": "Customer", "mode": "Mode", "alert_below_pct": "Alert below",
    "throttle_below_pct": "Throttle below", "block_below_pct": "Block below",
    "window": "Window", "min_events": "Minimum events", "recovery_buffer_pct":
    "Recovery buffer", "on_unknown_revenue": "Unknown revenue", "downgrade_map":
    "Downgrade map", "premium_features": "Premium features", "throttle_rate_per_minute":
    "Rate limit", "override_minutes": "Override duration", "notifications": "Notifications"}


def _guard_membership(request: HttpRequest):
    """(membership, refusal): the refusal is a 403 page for a role that may not manage."""
    membership = current_membership(request)
    if membership is None:
        return None, render(request, "console/cogs/no_tenant.html", {
            "membership": None, "memberships": memberships_of(request.user), "errors": []})
    if Role(membership.role) not in GUARD_ROLES:
        return membership, render(request, "console/margin_guard_refused.html", {
            "membership": membership, "memberships": memberships_of(request.user),
            "guard": True, "errors": [
                f"Your role ({membership.role}) may view Margin Guard but not change it; "
                "an owner or admin can."]}, status=403)
    return membership, None


def _operator(request: HttpRequest) -> bool:
    return bool(request.user.is_staff)


def _policy_of(request: HttpRequest, tenant, policy_id: int) -> GuardPolicy:
    scope = Q(tenant=tenant)
    if _operator(request):
        scope |= Q(tenant__isnull=True)
    return get_object_or_404(GuardPolicy, scope, pk=policy_id)


def _policy_post(act):
    """A form post about one policy, `act(request, policy)`, for a role that may manage it."""

    @login_required
    @require_POST
    @functools.wraps(act)
    def view(request: HttpRequest, policy_id: int) -> HttpResponse:
        membership, refusal = _guard_membership(request)
        if refusal:
            return refusal
        return act(request, _policy_of(request, membership.tenant, policy_id))

    return view


def downgrades_parse(text: str) -> dict[str, str]:
    """`from → to` per line (`->` or `=` also do) as the downgrade map."""
    pairs = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        for arrow in ("→", "->", "="):
            if arrow in line:
                source, _, target = line.partition(arrow)
                break
        else:
            raise DomainError(f"Line {number} of the downgrade map needs “model → cheaper "
                              "model”.", field="downgrade_map")
        pairs[source.strip()] = target.strip()
    return pairs


def downgrades_text(downgrades: dict[str, str]) -> str:
    return "\n".join(f"{a} → {b}" for a, b in downgrades.items())


def _posted(post) -> dict:
    """The policy form's fields as the service's values (text as typed; the service checks)."""
    values = {key: post.get(key, "") for key in (
        "name", "scope", "tier", "product_id", "customer_id", "mode", "alert_below_pct",
        "throttle_below_pct", "block_below_pct", "window", "min_events",
        "recovery_buffer_pct", "on_unknown_revenue", "throttle_rate_per_minute",
        "override_minutes")}
    features = post.get("premium_features", "").replace("\n", ",").split(",")
    values["premium_features"] = [f.strip() for f in features if f.strip()]
    values["notifications"] = [
        {"channel": post.get(f"n-{i}-channel", ""),
         "destination": post.get(f"n-{i}-destination", "").strip()}
        for i in range(_rows_posted(post))
        if post.get(f"n-{i}-channel", "") or post.get(f"n-{i}-destination", "").strip()]
    return values


def _rows_posted(post) -> int:
    try:
        return max(0, min(int(post.get("notification_rows", "0")), MAX_NOTIFICATIONS))
    except ValueError:
        return 0


def _form_context(request, membership, *, policy: GuardPolicy | None, values: dict,
                  downgrade_text: str, extra_rows: int = 1) -> dict:
    tenant = membership.tenant
    rows = list(values.get("notifications") or [])
    blanks = max(NOTIFICATION_ROWS_MIN - len(rows), extra_rows)
    rows += [{"channel": "", "destination": ""}] * blanks
    rows = rows[:MAX_NOTIFICATIONS]
    scopes = [s for s in GuardPolicy.Scope.values
              if s != GuardPolicy.Scope.PLATFORM or _operator(request)]
    return {
        "membership": membership, "memberships": memberships_of(request.user), "guard": True,
        "errors": [], "policy": policy, "values": values, "downgrade_text": downgrade_text,
        "features_text": ", ".join(values.get("premium_features") or []),
        "notification_rows": list(enumerate(rows)), "row_count": len(rows),
        "scopes": scopes, "modes": GuardPolicy.Mode.values,
        "windows": GuardPolicy.Window.choices, "unknown_choices":
            GuardPolicy.UnknownRevenue.values, "channels": Channel.values,
        "tiers": sorted(set(Customer.objects.filter(tenant=tenant).exclude(tier="")
                            .values_list("tier", flat=True))),
        "customer_choices": list(Customer.objects.filter(tenant=tenant)
                                 .values_list("external_id", flat=True)[:500]),
        "product_choices": list(Product.objects.filter(tenant=tenant)
                                .values_list("external_id", flat=True)[:500]),
    }


def _error_into(context: dict, exc: DomainError) -> None:
    field = exc.field or ""
    context["error_field"] = field
    head = field.split(".", 1)[0]
    label = FIELD_LABELS.get(head, "")
    context["error_message"] = f"{label}: {exc.message}" if label else exc.message
    if head == "notifications" and field.count(".") == 2:
        context["error_row"] = int(field.split(".")[1])


@login_required
def policy_form(request: HttpRequest, policy_id: int | None = None) -> HttpResponse:
    """New policy / edit policy: `action=preview` shows the dry evaluation, `save` saves."""
    membership, refusal = _guard_membership(request)
    if refusal:
        return refusal
    tenant = membership.tenant
    policy = _policy_of(request, tenant, policy_id) if policy_id else None
    if request.method != "POST":
        values = policy_values(policy) if policy else policy_values(GuardPolicy(
            tenant=tenant, scope=GuardPolicy.Scope.TIER))
        context = _form_context(request, membership, policy=policy, values=values,
                                downgrade_text=downgrades_text(values["downgrade_map"]))
        return render(request, "console/margin_guard_policy.html", context)

    values = _posted(request.POST)
    downgrade_text = request.POST.get("downgrade_map", "")
    action = request.POST.get("action", "save")
    context = _form_context(request, membership, policy=policy, values=values,
                            downgrade_text=downgrade_text,
                            extra_rows=2 if action == "add_channel" else 1)
    if action == "add_channel":
        return render(request, "console/margin_guard_policy.html", context)
    try:
        values["downgrade_map"] = downgrades_parse(downgrade_text)
        if action == "preview":
            built = guard_policy_build(tenant=tenant, values=values, policy=policy,
                                       operator=_operator(request))
            context["preview"] = guard_policy_preview(tenant=tenant, policy=built,
                                                      now=datetime.now(timezone.utc))
            return render(request, "console/margin_guard_policy.html", context)
        if policy is None:
            saved = guard_policy_create(tenant=tenant, operator=_operator(request), **values)
        else:
            saved = guard_policy_update(policy=policy, operator=_operator(request), **values)
    except DomainError as exc:
        _error_into(context, exc)
        return render(request, "console/margin_guard_policy.html", context, status=400)
    except EventStoreError as exc:
        context["errors"].append(f"The preview is unavailable right now: {exc}")
        return render(request, "console/margin_guard_policy.html", context, status=503)
    messages.success(request, f"Policy “{saved.name}” {'updated' if policy else 'created'} "
                              f"({saved.mode}).")
    return redirect("console-margin-guard")


@_policy_post
def policy_mode(request: HttpRequest, policy: GuardPolicy) -> HttpResponse:
    try:
        policy = guard_policy_update(policy=policy, operator=_operator(request),
                                     mode=request.POST.get("mode", ""))
    except DomainError as exc:
        messages.error(request, f"{policy.name}: {exc.message}")
        return redirect("console-margin-guard")
    messages.success(request, f"Policy “{policy.name}” is now {policy.mode}.")
    return redirect("console-margin-guard")


@_policy_post
def policy_delete(request: HttpRequest, policy: GuardPolicy) -> HttpResponse:
    if policy.tenant_id is None and not _operator(request):
        raise Http404
    name = policy.name
    guard_policy_delete(policy=policy)
    messages.success(request, f"Policy “{name}” deleted.")
    return redirect("console-margin-guard")


@login_required
@require_POST
def settings_save(request: HttpRequest) -> HttpResponse:
    """The tenant's Aforo cost a month, for the impact's ROI."""
    membership, refusal = _guard_membership(request)
    if refusal:
        return refusal
    text = request.POST.get("product_cost_usd_per_month", "").strip().lstrip("$")
    try:
        cost = Decimal(text) if text else None
        if cost is not None and (not cost.is_finite() or cost >= Decimal("1e17")):
            raise InvalidOperation
        guard_settings_update(tenant=membership.tenant, product_cost_usd_per_month=(
            cost.quantize(Decimal("0.01")) if cost is not None else None))
    except InvalidOperation:
        messages.error(request, "The product cost must be an amount in USD, like 499.")
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Product cost saved; the ROI uses it.")
    return redirect("console-margin-guard")
