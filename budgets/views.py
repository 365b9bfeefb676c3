"""Console tab Budgets & Alerts: budget cards, alert rules with their forms, the alert history.

Reads go through budgets.services (the same as the API); the forms post to small views that
call the same services and come back to the tab, keeping the period in the URL.
"""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from aforo.console import console_form, current_membership, posted_decimal, tab_page
from aforo.errors import ApiError, DomainError
from aforo.models import Customer, Product, Role, Tenant
from aforo.permissions import MANAGE_BUDGET_ROLES
from budgets import services
from budgets.models import Alert, AlertRule, Channel, CostBudget
from notifications.destinations import destination_masked

STATUS_CLASS = {"ON_TRACK": "ok", "WARNING": "warn", "OVER_BUDGET": "over"}
STATUS_LABEL = {"ON_TRACK": "On track", "WARNING": "Warning", "OVER_BUDGET": "Over budget"}
SYMBOL = {"GT": ">", "GTE": "≥", "LT": "<", "LTE": "≤"}
HISTORY_SHOWN = 50


def budgets_tab_context(request: HttpRequest, tenant: Tenant, can_manage: bool) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    cards = []
    budgets = CostBudget.objects.filter(tenant=tenant).prefetch_related("destinations")
    for state in services.budget_statuses(budgets, now=now):  # one ledger read for all
        budget = state.budget
        cards.append({"budget": budget, "state": state,
                      "bar_pct": float(min(state.utilization_pct, Decimal(100))),
                      "status_class": STATUS_CLASS[state.status],
                      "status_label": STATUS_LABEL[state.status]})
    editing = None
    if request.GET.get("edit_rule", "").isdigit():
        editing = AlertRule.objects.filter(tenant=tenant, pk=request.GET["edit_rule"]).first()
    alerts = (Alert.objects.filter(tenant=tenant).select_related("acknowledged_by")
              .prefetch_related("deliveries")[:HISTORY_SHOWN])
    return {
        "cards": cards,
        "rules": [(rule, SYMBOL.get(rule.comparison, ""),
                   rule.destination if can_manage else destination_masked(
                       rule.destination))
                  for rule in AlertRule.objects.filter(tenant=tenant)
                  .prefetch_related("destinations")],
        "alerts": alerts,
        "editing": editing,
        "can_manage": can_manage,
        "metrics": AlertRule.Metric.choices, "comparisons": AlertRule.Comparison.choices,
        "windows": AlertRule.Window.choices,
        "channels": [c for c in Channel.choices if c[0] != Channel.PAGERDUTY],
        "periods": CostBudget.Period.choices,
        "product_choices": list(Product.objects.filter(tenant=tenant)
                                .values_list("external_id", flat=True)),
        "customer_choices": list(Customer.objects.filter(tenant=tenant)
                                 .values_list("external_id", "name")),
    }


def _manager(request: HttpRequest):
    """The tenant this user may manage budgets and rules of, or None (with a message)."""
    membership = current_membership(request)
    if membership is None or Role(membership.role) not in MANAGE_BUDGET_ROLES:
        messages.error(request, "Your role may view budgets and alerts but not change them.")
        return None
    return membership.tenant


def _back(request: HttpRequest) -> HttpResponse:
    query = request.POST.get("return_query", "")
    return redirect(reverse("console-cogs-budgets") + (f"?{query}" if query else ""))


def _saving(what: str):
    """A console form post that creates or changes a budget or a rule (aforo.console's
    console_form): only managers; a refusal shows as “<what> not saved: …”."""
    return console_form(f"{what} not saved", tenant_of=_manager, back=_back)


@_saving("Budget")
def budget_save(request: HttpRequest, tenant: Tenant) -> str:
    budget = services.budget_create(
        tenant=tenant, name=request.POST.get("name", "").strip() or "Budget",
        period=request.POST.get("period", "MONTHLY"),
        cap_usd=posted_decimal(request, "cap_usd", "Cap"),
        warning_threshold_pct=posted_decimal(request, "warning_threshold_pct",
                                       "Warning threshold"),
        product_id=request.POST.get("product_id", ""),
        customer_id=request.POST.get("customer_id", ""))
    return f"Budget “{budget.name}” created."


def _delete(request: HttpRequest, model, pk: int, what: str) -> HttpResponse:
    tenant = _manager(request)
    if tenant is not None:
        get_object_or_404(model, tenant=tenant, pk=pk).delete()
        messages.success(request, f"{what} deleted.")
    return _back(request)


@login_required
@require_POST
def budget_delete(request: HttpRequest, budget_id: int) -> HttpResponse:
    return _delete(request, CostBudget, budget_id, "Budget")


@_saving("Rule")
def rule_save(request: HttpRequest, tenant: Tenant) -> str:
    values = {
        "name": request.POST.get("name", "").strip() or "Alert rule",
        "metric": request.POST.get("metric", ""),
        "comparison": request.POST.get("comparison", ""),
        "window": request.POST.get("window", "24h"),
        "channel": request.POST.get("channel", ""),
        "destination": request.POST.get("destination", "").strip(),
        "product_id": request.POST.get("product_id", ""),
        "customer_id": request.POST.get("customer_id", ""),
        "enabled": request.POST.get("enabled") == "on",
        "auto_resolve": request.POST.get("auto_resolve") == "on",
    }
    values["threshold"] = posted_decimal(request, "threshold", "Threshold")
    for field, choices in (("metric", AlertRule.Metric), ("comparison", AlertRule.Comparison),
                           ("window", AlertRule.Window), ("channel", Channel)):
        if values[field] not in choices.values:
            raise ApiError(f"Choose a {field}.", field=field)
    rule_id = request.POST.get("rule_id", "")
    if rule_id and not rule_id.isdigit():
        raise ApiError("That rule does not exist.", field="rule_id")
    if rule_id:
        rule = get_object_or_404(AlertRule, tenant=tenant, pk=rule_id)
        services.alert_rule_update(rule=rule, **values)
        return f"Rule “{rule.name}” saved."
    rule = services.alert_rule_create(tenant=tenant, **values)
    return f"Rule “{rule.name}” created."


@login_required
@require_POST
def rule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    return _delete(request, AlertRule, rule_id, "Rule")


@login_required
@require_POST
def alert_transition(request: HttpRequest, alert_id: int, action: str) -> HttpResponse:
    if action not in ("acknowledge", "resolve"):
        return HttpResponse(status=404)
    tenant = _manager(request)
    if tenant is None:
        return _back(request)
    alert = get_object_or_404(Alert, tenant=tenant, pk=alert_id)
    change = services.alert_acknowledge if action == "acknowledge" else services.alert_resolve
    try:
        change(alert=alert, user=request.user, now=datetime.now(timezone.utc))
        messages.success(request, f"Alert “{alert.title}” {alert.state.lower()}.")
    except DomainError as exc:
        messages.error(request, str(exc.message))
    return _back(request)


def _budgets_tab(request: HttpRequest, tenant: Tenant, chosen) -> dict[str, Any]:
    membership = current_membership(request)
    return budgets_tab_context(request, tenant, Role(membership.role) in MANAGE_BUDGET_ROLES)


budgets_tab = tab_page("budgets", _budgets_tab)
