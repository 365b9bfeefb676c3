"""Budgets and alert rules: writes, the evaluation that fires and resolves alerts, and states."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction

from aforo.errors import Conflict, DomainError
from aforo.models import Customer, Product, Tenant
from aforo.periods import period_bounds, window_bounds
from budgets.models import Alert, AlertRule, CostBudget
from cogs.expected import CostScope, scope_margin, scopes_cogs
from cogs.margins import HUNDRED
from notifications import services as notifications
from notifications.destinations import check_destination

log = logging.getLogger(__name__)


# --- validation shared by budgets and rules ------------------------------------------------

def _check_scope(tenant: Tenant, product_id: str, customer_id: str) -> None:
    if product_id and not Product.objects.filter(tenant=tenant, external_id=product_id).exists():
        raise DomainError(f"No product {product_id!r} in this tenant.", field="productId")
    if customer_id and not Customer.objects.filter(tenant=tenant,
                                                   external_id=customer_id).exists():
        raise DomainError(f"No customer {customer_id!r} in this tenant.", field="customerId")


def signing_secret_rotate(*, owner: CostBudget | AlertRule) -> str:
    """A new signing secret for a budget or a rule (notifications.signing_secret_rotate)."""
    alerts = Alert.objects.filter(**({"budget": owner} if isinstance(owner, CostBudget)
                                     else {"rule": owner}))
    return notifications.signing_secret_rotate(owner=owner, subjects=alerts)


# --- budgets --------------------------------------------------------------------------------

def _check_budget(tenant: Tenant, values: dict) -> None:
    if values.get("cap_usd") is not None and values["cap_usd"] <= 0:
        raise DomainError("capUsd must be greater than 0.", field="capUsd")
    pct = values.get("warning_threshold_pct")
    if pct is not None and not (1 <= pct <= 100):
        raise DomainError("warningThresholdPct must be between 1 and 100.",
                       field="warningThresholdPct")
    _check_scope(tenant, values.get("product_id", ""), values.get("customer_id", ""))
    if values.get("notify_channel"):
        check_destination(values["notify_channel"], values.get("notify_destination", ""),
                          "notifyDestination")


def budget_create(*, tenant: Tenant, name: str, period: str, cap_usd: Decimal,
                  warning_threshold_pct: Decimal = Decimal(80), product_id: str = "",
                  customer_id: str = "", notify_channel: str = "",
                  notify_destination: str = "") -> CostBudget:
    values = dict(name=name, period=period, cap_usd=cap_usd,
                  warning_threshold_pct=warning_threshold_pct, product_id=product_id,
                  customer_id=customer_id, notify_channel=notify_channel,
                  notify_destination=notify_destination)
    _check_budget(tenant, values)
    return CostBudget.objects.create(tenant=tenant, **values)


def _updated(obj, check, checked_fields: tuple[str, ...], changes: dict):
    """Apply `changes` to a budget or rule once `check` accepts them merged with the fields it
    reads; then save."""
    check(obj.tenant, {**{f: getattr(obj, f) for f in checked_fields}, **changes})
    for name, value in changes.items():
        setattr(obj, name, value)  # a destination field too: saved with obj (Notifying)
    obj.save()
    return obj


def budget_update(*, budget: CostBudget, **changes) -> CostBudget:
    return _updated(budget, _check_budget, ("cap_usd", "warning_threshold_pct", "product_id",
                                            "customer_id", "notify_channel",
                                            "notify_destination"), changes)


@dataclass(frozen=True)
class BudgetStatus:
    budget: CostBudget
    period_start: datetime
    period_end: datetime
    spent_usd: Decimal
    utilization_pct: Decimal
    projected_spend_usd: Decimal
    status: str


def budget_statuses(budgets: Iterable[CostBudget], *, now: datetime) -> list[BudgetStatus]:
    """Each budget's spend so far this period, utilization, projection at the pace so far, and
    status, in the budgets' order: one ledger read per tenant for all of its budgets."""
    budgets = list(budgets)
    by_tenant: dict[int, list[CostBudget]] = {}
    for budget in budgets:
        by_tenant.setdefault(budget.tenant_id, []).append(budget)
    states: dict[int, BudgetStatus] = {}
    for group in by_tenant.values():
        tenant = group[0].tenant
        scopes = {}
        for budget in group:
            start, end = period_bounds(budget.period, now, tenant.time_zone)
            scopes[id(budget)] = CostScope(start, min(now, end), product_id=budget.product_id,
                                           customer_id=budget.customer_id), end
        spent = scopes_cogs(tenant.slug, [scope for scope, _end in scopes.values()])
        for budget in group:
            scope, end = scopes[id(budget)]
            states[id(budget)] = _budget_state(budget, scope.start, end, spent[scope], now)
    return [states[id(budget)] for budget in budgets]


def budget_status(budget: CostBudget, *, now: datetime) -> BudgetStatus:
    """One budget's budget_statuses."""
    return budget_statuses([budget], now=now)[0]


def _budget_state(budget: CostBudget, start: datetime, end: datetime, spent: Decimal,
                  now: datetime) -> BudgetStatus:
    utilization = spent / budget.cap_usd * HUNDRED
    elapsed = (min(now, end) - start).total_seconds()
    projected = spent * Decimal((end - start).total_seconds()) / Decimal(elapsed) \
        if elapsed > 0 else spent
    if utilization >= 100:
        status = "OVER_BUDGET"
    elif utilization >= budget.warning_threshold_pct:
        status = "WARNING"
    else:
        status = "ON_TRACK"
    return BudgetStatus(budget, start, end, spent, utilization, projected, status)


# --- alert rules ----------------------------------------------------------------------------

SIGNAL_KINDS = ("USAGE_ANOMALY", "COST_SPIKE", "CHURN_RISK", "QUOTA_PACING", "MARGIN_TRIP")
SEVERITIES = ("INFO", "WARNING", "CRITICAL")


def _check_rule(tenant: Tenant, values: dict) -> None:
    _check_scope(tenant, values.get("product_id", ""), values.get("customer_id", ""))
    check_destination(values["channel"], values["destination"])
    if values.get("source", AlertRule.Source.METRIC) == AlertRule.Source.SIGNAL:
        if values.get("signal_kind") and values["signal_kind"] not in SIGNAL_KINDS:
            raise DomainError(f"signalKind must be one of {', '.join(SIGNAL_KINDS)}.",
                           field="signalKind")
        if values.get("min_severity") and values["min_severity"] not in SEVERITIES:
            raise DomainError("minSeverity must be INFO, WARNING or CRITICAL.",
                           field="minSeverity")
        return
    if values.get("source") in (AlertRule.Source.ENTITLEMENT, AlertRule.Source.WALLET):
        return  # entitlements and wallets say when they fire
    for name, api_name in (("metric", "metric"), ("comparison", "comparison"),
                           ("threshold", "threshold")):
        if values.get(name) in (None, ""):
            raise DomainError(f"A METRIC rule needs a {api_name}.", field=api_name)


def alert_rule_create(*, tenant: Tenant, name: str, channel: str, destination: str,
                      metric: str = "", comparison: str = "", threshold: Decimal | None = None,
                      window: str = "24h", product_id: str = "", customer_id: str = "",
                      enabled: bool = True, auto_resolve: bool = False,
                      source: str = AlertRule.Source.METRIC, signal_kind: str = "",
                      min_severity: str = "") -> AlertRule:
    values = dict(name=name, metric=metric, comparison=comparison, threshold=threshold,
                  window=window, product_id=product_id, customer_id=customer_id,
                  channel=channel, destination=destination, enabled=enabled,
                  auto_resolve=auto_resolve, source=source, signal_kind=signal_kind,
                  min_severity=min_severity)
    _check_rule(tenant, values)
    return AlertRule.objects.create(tenant=tenant, **values)


def alert_rule_update(*, rule: AlertRule, **changes) -> AlertRule:
    return _updated(rule, _check_rule, ("product_id", "customer_id", "channel", "destination",
                                        "source", "metric", "comparison", "threshold",
                                        "signal_kind", "min_severity"), changes)


COMPARE = {"GT": lambda v, t: v > t, "GTE": lambda v, t: v >= t,
           "LT": lambda v, t: v < t, "LTE": lambda v, t: v <= t}


def rule_value(rule: AlertRule, *, now: datetime) -> tuple[Decimal | None, datetime, datetime]:
    """The rule's metric over its window: USD for COST, % for MARGIN, a ratio for RATIO; margin
    and ratio from expected revenue (cogs.expected: the dashboard's, the guard's)."""
    start, end = window_bounds(rule.window, now, rule.tenant.time_zone)
    totals = scope_margin(rule.tenant.slug, start=start, end=end,
                           product_id=rule.product_id or None,
                           customer_id=rule.customer_id or None)
    if rule.metric == AlertRule.Metric.COST:
        return totals.cogs_usd, start, end
    if rule.metric == AlertRule.Metric.MARGIN:
        return totals.margin_pct, start, end
    return totals.cost_to_revenue, start, end


# --- alerts ---------------------------------------------------------------------------------

def _fire(*, tenant: Tenant, open_key: str, title: str, metric: str, value: Decimal | None,
          threshold: Decimal, start: datetime, end: datetime, now: datetime,
          owner: CostBudget | AlertRule, rule: AlertRule | None = None,
          budget: CostBudget | None = None, product_id: str = "",
          customer_id: str = "", source_event_ids: list[str] | None = None) -> Alert | None:
    """Create the alert and its deliveries (one per destination of `owner`), unless one is open
    for the key already.

    The partial unique index on (tenant, open_key) for open states makes this safe with two
    evaluators at once: the second insert fails and fires nothing.
    """
    if Alert.objects.filter(tenant=tenant, open_key=open_key,
                            state__in=Alert.OPEN_STATES).exists():
        return None
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                tenant=tenant, rule=rule, budget=budget, open_key=open_key, title=title,
                metric=metric, value=value, threshold=threshold, window_start=start,
                window_end=end, product_id=product_id, customer_id=customer_id,
                source_event_ids=list(source_event_ids or []), fired_at=now)
            notifications.notify(tenant=tenant, owner=owner, subject=alert, now=now)
    except IntegrityError:
        return None
    return alert


def _auto_resolve(tenant: Tenant, open_key: str, now: datetime) -> int:
    return Alert.objects.filter(tenant=tenant, open_key=open_key,
                                state__in=Alert.OPEN_STATES).update(
        state=Alert.State.RESOLVED, resolved_by="auto", resolved_at=now)


def rule_evaluate(rule: AlertRule, *, now: datetime) -> Alert | None:
    value, start, end = rule_value(rule, now=now)
    key = f"rule:{rule.pk}"
    breached = value is not None and COMPARE[rule.comparison](value, rule.threshold)
    if breached:
        return _fire(tenant=rule.tenant, open_key=key, title=rule.name, metric=rule.metric,
                     value=value, threshold=rule.threshold, start=start, end=end, now=now,
                     owner=rule, rule=rule, product_id=rule.product_id,
                     customer_id=rule.customer_id)
    if rule.auto_resolve:
        _auto_resolve(rule.tenant, key, now)
    return None


def budget_evaluate(budget: CostBudget, *, now: datetime) -> list[Alert]:
    """Fire at the warning threshold and again at 100%, once per level and period."""
    return _budget_alerts_fire(budget_status(budget, now=now), now=now)


def _budget_alerts_fire(state: BudgetStatus, *, now: datetime) -> list[Alert]:
    budget = state.budget
    fired = []
    levels = [("WARNING", budget.warning_threshold_pct), ("OVER_BUDGET", HUNDRED)]
    for level, pct in levels:
        if state.utilization_pct < pct:
            continue
        key = f"budget:{budget.pk}:{level}:{state.period_start:%Y%m%d}"
        title = f"Budget {budget.name}: {level.replace('_', ' ').lower()}"
        alert = _fire(tenant=budget.tenant, open_key=key, title=title, metric="BUDGET",
                      value=state.spent_usd, threshold=budget.cap_usd * pct / HUNDRED,
                      start=state.period_start, end=now, now=now, owner=budget,
                      budget=budget, product_id=budget.product_id,
                      customer_id=budget.customer_id)
        if alert:
            fired.append(alert)
    return fired


def alerts_evaluate(*, now: datetime, tenant: Tenant | None = None) -> list[Alert]:
    """Evaluate every enabled rule and every budget (of one tenant, or all); send what is due."""
    rules = AlertRule.objects.select_related("tenant").prefetch_related("destinations").filter(
        enabled=True, source=AlertRule.Source.METRIC)
    budgets = CostBudget.objects.select_related("tenant").prefetch_related("destinations")
    if tenant is not None:
        rules, budgets = rules.filter(tenant=tenant), budgets.filter(tenant=tenant)
    fired: list[Alert] = []
    for rule in rules:
        try:
            alert = rule_evaluate(rule, now=now)
        except Exception:  # one broken rule must not stop the others
            log.exception("evaluating rule %s failed", rule.pk)
            continue
        if alert:
            fired.append(alert)
    by_tenant: dict[int, list[CostBudget]] = {}
    for budget in budgets:
        by_tenant.setdefault(budget.tenant_id, []).append(budget)
    for group in by_tenant.values():  # one ledger read for each tenant's budgets
        try:
            states = budget_statuses(group, now=now)
        except Exception:  # one tenant's failing read must not stop the others
            log.exception("measuring the budgets of tenant %s failed", group[0].tenant_id)
            continue
        for state in states:
            try:
                fired.extend(_budget_alerts_fire(state, now=now))
            except Exception:
                log.exception("evaluating budget %s failed", state.budget.pk)
    notifications.deliveries_send_due(now=now)
    return fired


def signal_alerts_fire(*, tenant: Tenant, signal_id: int, kind: str, severity: str,
                       title: str, value: Decimal, threshold: Decimal, start: datetime,
                       end: datetime, customer_id: str, product_id: str,
                       now: datetime) -> list[Alert]:
    """An alert for every enabled SIGNAL rule that asks for this signal: its kind (or every
    kind), a severity at least the rule's minimum, and a scope the rule covers. Delivered with
    every other alert by the evaluation job, through the rule's channel."""
    rank = SEVERITIES.index(severity) if severity in SEVERITIES else 0

    def asks(rule: AlertRule) -> bool:
        return not ((rule.signal_kind and rule.signal_kind != kind)
                    or (rule.min_severity and SEVERITIES.index(rule.min_severity) > rank)
                    or (rule.customer_id and rule.customer_id != customer_id)
                    or (rule.product_id and rule.product_id != product_id))

    return _rules_fire(tenant=tenant, source=AlertRule.Source.SIGNAL, asks=asks,
                       key=f"signal:{signal_id}", metric=kind, title=title, value=value,
                       threshold=threshold, start=start, end=end, customer_id=customer_id,
                       product_id=product_id, now=now)


def source_alerts_fire(*, tenant: Tenant, source: str, key: str, title: str, value: Decimal,
                       threshold: Decimal, start: datetime, end: datetime, customer_id: str,
                       product_id: str, now: datetime,
                       source_event_ids: list[str] | None = None) -> list[Alert]:
    """An alert for every enabled rule of `source` (ENTITLEMENT or WALLET) whose scope covers
    the customer and product; `key` makes it once per firing (entitlements: per level and
    period); `source_event_ids` names the events that crossed (the crossing one first).
    Delivered with every other alert by the evaluation job."""

    def asks(rule: AlertRule) -> bool:
        return not ((rule.customer_id and rule.customer_id != customer_id)
                    or (rule.product_id and product_id and rule.product_id != product_id))

    return _rules_fire(tenant=tenant, source=source, asks=asks, key=key, metric=source,
                       title=title, value=value, threshold=threshold, start=start, end=end,
                       customer_id=customer_id, product_id=product_id, now=now,
                       source_event_ids=source_event_ids)


def _rules_fire(*, tenant: Tenant, source: str, asks, key: str, metric: str, title: str,
                value: Decimal, threshold: Decimal, start: datetime, end: datetime,
                customer_id: str, product_id: str, now: datetime,
                source_event_ids: list[str] | None = None) -> list[Alert]:
    """An alert (once per `key` and rule) for every enabled rule of `source` that `asks`."""
    fired = []
    for rule in AlertRule.objects.prefetch_related("destinations").filter(
            tenant=tenant, enabled=True, source=source):
        if not asks(rule):
            continue
        alert = _fire(tenant=tenant, open_key=f"{key}:rule:{rule.pk}"[:100],
                      title=f"{rule.name}: {title}"[:300], metric=metric, value=value,
                      threshold=threshold, start=start, end=end, now=now,
                      owner=rule, rule=rule, product_id=product_id, customer_id=customer_id,
                      source_event_ids=source_event_ids)
        if alert:
            fired.append(alert)
    return fired


def alert_acknowledge(*, alert: Alert, user, now: datetime) -> Alert:
    if alert.state != Alert.State.FIRED:
        raise Conflict(f"Only a FIRED alert can be acknowledged; this one is {alert.state}.",
                       field="state")
    alert.state, alert.acknowledged_by, alert.acknowledged_at = (
        Alert.State.ACKNOWLEDGED, user, now)
    alert.save(update_fields=["state", "acknowledged_by", "acknowledged_at"])
    return alert


def alert_resolve(*, alert: Alert, user, now: datetime) -> Alert:
    if alert.state == Alert.State.RESOLVED:
        raise Conflict("This alert is already resolved.", field="state")
    alert.state, alert.resolved_at = Alert.State.RESOLVED, now
    alert.resolved_by = getattr(user, "username", "") or "api-token"
    alert.save(update_fields=["state", "resolved_by", "resolved_at"])
    return alert
