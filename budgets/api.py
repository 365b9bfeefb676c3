"""Budgets, alert rules and alert history under /api/v1/cogs/."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.shortcuts import get_object_or_404
from django.utils.timezone import now as _now  # aware, UTC
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.errors import ApiError
from aforo.money import MoneyField, PctField, pct, usd
from aforo.openapi import ERROR
from aforo.pagination import (
    PAGE_PARAMETERS,
    PageEnvelopePagination,
    page_of,
    paged,
    paged_response,
)
from aforo.permissions import (
    MANAGE_BUDGET_ROLES,
    CanManageBudgets,
    ReadOrWrite,
    sees_destinations,
)
from budgets import services
from budgets.models import Alert, AlertRule, Channel, CostBudget
from notifications.destinations import destination_masked
from notifications.models import destinations_load


class BudgetPermission(ReadOrWrite):
    write_roles = MANAGE_BUDGET_ROLES


class BudgetIn(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    period = serializers.ChoiceField(choices=CostBudget.Period.choices)
    productId = serializers.CharField(source="product_id", max_length=200, required=False,
                                      allow_blank=True, allow_null=True)
    customerId = serializers.CharField(source="customer_id", max_length=200, required=False,
                                       allow_blank=True, allow_null=True)
    capUsd = MoneyField(source="cap_usd", max_digits=20)
    warningThresholdPct = PctField(source="warning_threshold_pct", max_digits=5, required=False)
    notifyChannel = serializers.ChoiceField(source="notify_channel", choices=Channel.choices,
                                            required=False, allow_blank=True)
    notifyDestination = serializers.CharField(source="notify_destination", max_length=500,
                                              required=False, allow_blank=True)

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        for key in ("product_id", "customer_id"):
            if key in values and values[key] is None:
                values[key] = ""
        return values


class BudgetOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    period = serializers.CharField()
    productId = serializers.CharField(allow_null=True)
    customerId = serializers.CharField(allow_null=True)
    capUsd = MoneyField()
    warningThresholdPct = PctField()
    notifyChannel = serializers.CharField(allow_null=True)
    notifyDestination = serializers.CharField(allow_null=True)
    spentUsd = MoneyField()
    utilizationPct = PctField()
    projectedSpendUsd = MoneyField()
    status = serializers.ChoiceField(choices=["ON_TRACK", "WARNING", "OVER_BUDGET"])
    periodStart = serializers.DateTimeField()
    periodEnd = serializers.DateTimeField()


class BudgetCreated(BudgetOut):
    signingSecret = serializers.CharField(
        help_text="Signs this budget's WEBHOOK deliveries; shown only now and on rotation.")


class SigningSecretOut(serializers.Serializer):
    signingSecret = serializers.CharField(
        help_text="The new secret; the old one stops signing at once. Shown only now.")


def budget_json(budget: CostBudget, now: datetime, *, reveal: bool = True,
                state: services.BudgetStatus | None = None) -> dict:
    """A budget as the API shows it; `state` when a list measured it with its page."""
    state = state or services.budget_status(budget, now=now)
    destination = budget.notify_destination if reveal else destination_masked(
        budget.notify_destination)
    return {
        "id": budget.pk, "name": budget.name, "period": budget.period,
        "productId": budget.product_id or None, "customerId": budget.customer_id or None,
        "capUsd": usd(budget.cap_usd),
        "warningThresholdPct": pct(budget.warning_threshold_pct),
        "notifyChannel": budget.notify_channel or None,
        "notifyDestination": destination or None,
        "spentUsd": usd(state.spent_usd),
        "utilizationPct": pct(state.utilization_pct),
        "projectedSpendUsd": usd(state.projected_spend_usd), "status": state.status,
        "periodStart": state.period_start.isoformat().replace("+00:00", "Z"),
        "periodEnd": state.period_end.isoformat().replace("+00:00", "Z"),
    }


class BudgetList(APIView):
    permission_classes = [BudgetPermission]

    @extend_schema(**paged(BudgetOut), operation_id="budgets_list")
    def get(self, request):
        now = _now()
        paginator = PageEnvelopePagination()
        page = destinations_load(paginator.paginate_queryset(
            CostBudget.objects.filter(tenant=request.tenant), request))
        reveal = sees_destinations(request)
        states = services.budget_statuses(page, now=now)  # one ledger read for the page
        return paginator.get_paginated_response([budget_json(s.budget, now, reveal=reveal,
                                                             state=s) for s in states])

    @extend_schema(request=BudgetIn, responses={201: BudgetCreated}, examples=[OpenApiExample(
        "Monthly AI spend", request_only=True, value={
            "name": "Monthly AI spend", "period": "MONTHLY", "capUsd": 500,
            "warningThresholdPct": 80, "productId": None})])
    def post(self, request):
        data = BudgetIn(data=request.data)
        data.is_valid(raise_exception=True)
        budget = services.budget_create(tenant=request.tenant, **data.validated_data)
        return Response({**budget_json(budget, _now()), "signingSecret": budget.signing_secret},
                        status=status.HTTP_201_CREATED)


class BudgetDetail(APIView):
    permission_classes = [BudgetPermission]

    def _get(self, request, budget_id):
        return get_object_or_404(CostBudget, pk=budget_id, tenant=request.tenant)

    @extend_schema(responses=BudgetOut)
    def get(self, request, budget_id: int):
        return Response(budget_json(self._get(request, budget_id), _now(),
                                    reveal=sees_destinations(request)))

    @extend_schema(request=BudgetIn, responses=BudgetOut)
    def patch(self, request, budget_id: int):
        budget = self._get(request, budget_id)
        data = BudgetIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        budget = services.budget_update(budget=budget, **data.validated_data)
        return Response(budget_json(budget, _now()))

    @extend_schema(responses={204: None})
    def delete(self, request, budget_id: int):
        self._get(request, budget_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class _SecretRotate(APIView):
    # A new signing secret for a budget or a rule (`owner_model`).
    permission_classes = [CanManageBudgets]
    owner_model: type[CostBudget] | type[AlertRule]  # each subclass's

    def rotated(self, request, owner_id: int) -> Response:
        owner = get_object_or_404(self.owner_model, pk=owner_id, tenant=request.tenant)
        secret = services.signing_secret_rotate(owner=owner)
        return Response({"signingSecret": secret}, status=status.HTTP_201_CREATED)


class BudgetSecretRotate(_SecretRotate):
    owner_model = CostBudget

    @extend_schema(request=None, responses={201: SigningSecretOut})
    def post(self, request, budget_id: int):
        return self.rotated(request, budget_id)


class AlertRuleSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=200)
    source = serializers.ChoiceField(choices=AlertRule.Source.choices, default="METRIC",
                                     help_text="METRIC (the default) measures `metric`; "
                                               "SIGNAL fires on intelligence signals; "
                                               "ENTITLEMENT and WALLET on entitlements "
                                               "and wallets.")
    metric = serializers.ChoiceField(choices=AlertRule.Metric.choices, required=False,
                                     allow_blank=True, help_text="METRIC rules only.")
    comparison = serializers.ChoiceField(choices=AlertRule.Comparison.choices, required=False,
                                         allow_blank=True, help_text="METRIC rules only.")
    threshold = MoneyField(max_digits=20, required=False, allow_null=True,
                           help_text="METRIC rules only.")
    signalKind = serializers.ChoiceField(
        source="signal_kind", required=False, allow_blank=True,
        choices=[(k, k) for k in services.SIGNAL_KINDS],
        help_text="SIGNAL rules: the kind to alert on (blank: every kind).")
    minSeverity = serializers.ChoiceField(
        source="min_severity", required=False, allow_blank=True,
        choices=[(s, s) for s in services.SEVERITIES],
        help_text="SIGNAL rules: the lowest severity that alerts (blank: every one).")
    window = serializers.ChoiceField(choices=AlertRule.Window.choices, default="24h")
    productId = serializers.CharField(source="product_id", max_length=200, required=False,
                                      allow_blank=True, default="")
    customerId = serializers.CharField(source="customer_id", max_length=200, required=False,
                                       allow_blank=True, default="")
    channel = serializers.ChoiceField(choices=Channel.choices)
    destination = serializers.CharField(max_length=500)
    enabled = serializers.BooleanField(default=True)
    autoResolve = serializers.BooleanField(source="auto_resolve", default=False)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if self.context.get("mask"):
            data["destination"] = destination_masked(data["destination"])
        return data


class AlertRuleCreated(AlertRuleSerializer):
    signingSecret = serializers.CharField(
        source="signing_secret", read_only=True,
        help_text="Signs this rule's WEBHOOK deliveries; shown only now and on rotation.")


class AlertRuleList(APIView):
    permission_classes = [BudgetPermission]

    @extend_schema(**paged(AlertRuleSerializer), operation_id="alert_rules_list")
    def get(self, request):
        return paged_response(request, AlertRule.objects.filter(tenant=request.tenant),
                              AlertRuleSerializer, _mask(request), load=destinations_load)

    @extend_schema(request=AlertRuleSerializer, responses={201: AlertRuleCreated})
    def post(self, request):
        data = AlertRuleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rule = services.alert_rule_create(tenant=request.tenant, **data.validated_data)
        return Response(AlertRuleCreated(rule).data, status=status.HTTP_201_CREATED)


class AlertRuleDetail(APIView):
    permission_classes = [BudgetPermission]

    def _get(self, request, rule_id):
        return get_object_or_404(AlertRule, pk=rule_id, tenant=request.tenant)

    @extend_schema(responses=AlertRuleSerializer)
    def get(self, request, rule_id: int):
        return Response(AlertRuleSerializer(self._get(request, rule_id),
                                            context=_mask(request)).data)

    @extend_schema(request=AlertRuleSerializer, responses=AlertRuleSerializer)
    def patch(self, request, rule_id: int):
        rule = self._get(request, rule_id)
        data = AlertRuleSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        rule = services.alert_rule_update(rule=rule, **data.validated_data)
        return Response(AlertRuleSerializer(rule).data)

    @extend_schema(responses={204: None})
    def delete(self, request, rule_id: int):
        self._get(request, rule_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class AlertRuleSecretRotate(_SecretRotate):
    owner_model = AlertRule

    @extend_schema(request=None, responses={201: SigningSecretOut})
    def post(self, request, rule_id: int):
        return self.rotated(request, rule_id)


def _mask(request) -> dict:
    """Serializer context: VIEWER and DEVELOPER see destinations masked."""
    return {"mask": not sees_destinations(request)}


class DeliveryLogOut(serializers.Serializer):
    at = serializers.DateTimeField()
    ok = serializers.BooleanField()
    detail = serializers.CharField(help_text="A status class: HTTP 2xx, no response, ...")


class DeliveryOut(serializers.Serializer):
    channel = serializers.CharField()
    destination = serializers.CharField()
    state = serializers.CharField()
    attempts = serializers.IntegerField()
    lastError = serializers.CharField(source="last_error")
    nextAttemptAt = serializers.DateTimeField(source="next_attempt_at")
    deliveredAt = serializers.DateTimeField(source="delivered_at", allow_null=True)
    log = serializers.SerializerMethodField()

    @extend_schema_field(DeliveryLogOut(many=True))
    def get_log(self, obj) -> list[dict]:
        return [{"at": a.attempted_at, "ok": a.ok, "detail": a.detail} for a in obj.log.all()]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if self.context.get("mask"):
            data["destination"] = destination_masked(data["destination"])
        return data


class AlertOut(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    ruleId = serializers.IntegerField(source="rule_id", allow_null=True)
    budgetId = serializers.IntegerField(source="budget_id", allow_null=True)
    metric = serializers.CharField()
    value = MoneyField(max_digits=38, allow_null=True)
    threshold = MoneyField(max_digits=38)
    windowStart = serializers.DateTimeField(source="window_start")
    windowEnd = serializers.DateTimeField(source="window_end")
    productId = serializers.CharField(source="product_id")
    customerId = serializers.CharField(source="customer_id")
    sourceEventIds = serializers.ListField(
        child=serializers.CharField(), source="source_event_ids",
        help_text="ENTITLEMENT and WALLET alerts: the events of the batch that crossed the "
                  "level, the crossing event first (at most 20); empty for other alerts.")
    state = serializers.CharField()
    firedAt = serializers.DateTimeField(source="fired_at")
    acknowledgedBy = serializers.CharField(source="acknowledged_by.username", allow_null=True,
                                           default=None)
    acknowledgedAt = serializers.DateTimeField(source="acknowledged_at", allow_null=True)
    resolvedBy = serializers.CharField(source="resolved_by")
    resolvedAt = serializers.DateTimeField(source="resolved_at", allow_null=True)
    deliveries = DeliveryOut(many=True)


def _alerts(request):
    return (Alert.objects.filter(tenant=request.tenant)
            .select_related("acknowledged_by").prefetch_related("deliveries__log"))


class AlertHistory(APIView):
    @extend_schema(responses=page_of(AlertOut), operation_id="alert_history_list",
                   parameters=[OpenApiParameter("state", str, enum=Alert.State.values),
                               *PAGE_PARAMETERS])
    def get(self, request):
        alerts = _alerts(request)
        state = request.query_params.get("state")
        if state:
            if state not in Alert.State.values:
                raise ApiError("state must be FIRED, ACKNOWLEDGED or RESOLVED.", field="state")
            alerts = alerts.filter(state=state)
        return paged_response(request, alerts, AlertOut, _mask(request))


class AlertDetail(APIView):
    @extend_schema(responses=AlertOut)
    def get(self, request, alert_id: int):
        return Response(AlertOut(get_object_or_404(_alerts(request), pk=alert_id),
                                 context=_mask(request)).data)


class _AlertTransition(APIView):
    # An alert's move to another state: `transition` is the service that makes it.
    permission_classes = [CanManageBudgets]
    transition: Callable[..., Alert]  # each subclass's service

    @extend_schema(request=None, responses={200: AlertOut, 409: ERROR})
    def post(self, request, alert_id: int):
        alert = get_object_or_404(_alerts(request), pk=alert_id)
        self.transition(alert=alert, user=request.user, now=_now())
        return Response(AlertOut(alert, context=_mask(request)).data)


class AlertAcknowledge(_AlertTransition):
    transition = staticmethod(services.alert_acknowledge)


class AlertResolve(_AlertTransition):
    transition = staticmethod(services.alert_resolve)
