"""Console page Margin Guard: policies, levels per customer, interventions and impact."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from aforo.console import current_membership, memberships_of
from aforo.eventstore import EventStoreError
from aforo.models import Role
from aforo.permissions import GUARD_ROLES
from margin_guard.impact import impact_report
from margin_guard.models import GuardAction, GuardPolicy, GuardState, Level
from margin_guard.services import guard_override

LEVEL_CLASS = {Level.NONE: "ok", Level.ALERT: "warn", Level.THROTTLE: "throttle",
               Level.BLOCK: "over"}
TIMELINE_SHOWN = 50
IMPACT_DAYS = 30


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
        policies=GuardPolicy.objects.filter(Q(tenant=tenant) | Q(tenant__isnull=True)),
        states=[(s, Level(s.level).label, LEVEL_CLASS[s.level], source_mix(s)) for s in states],
        actions=[(a, Level(a.from_level).label, Level(a.to_level).label,
                  LEVEL_CLASS[a.to_level])
                 for a in GuardAction.objects.filter(tenant=tenant)[:TIMELINE_SHOWN]],
        can_override=Role(membership.role) in GUARD_ROLES,
        now=datetime.now(timezone.utc),
    )
    today = datetime.now(timezone.utc).date()
    try:
        context["impact"] = impact_report(tenant=tenant, start=today - timedelta(
            days=IMPACT_DAYS - 1), end=today)
    except EventStoreError as exc:
        context["errors"].append(f"The impact report is unavailable right now: {exc}")
    context["impact_days"] = IMPACT_DAYS
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
