"""Budgets, alert rules and alert history under /api/v1/cogs/."""
from __future__ import annotations

from datetime import datetime, timezone

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.errors import ApiError
from aforo.pagination import PageEnvelopePagination, paged_response
from aforo.permissions import MANAGE_BUDGET_ROLES, CanManageBudgets, ReadOrWrite
from budgets import services
from budgets.models import Alert, AlertRule, Channel, CostBudget

MONEY = {"max_digits": 20, "decimal_places": 9, "coerce_to_string": False}


def _now() -> datetime:
    return datetime.now(timezone.utc)


class BudgetPermission(ReadOrWrite):
    write_roles = MANAGE_BUDGET_ROLES


def _money(value) -> float:
    return float(round(value, 6))


class BudgetIn(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    period = serializers.ChoiceField(choices=CostBudget.Period.choices)
    productId = serializers.CharField(source="product_id", max_length=200, required=False,
                                      allow_blank=True, allow_null=True)
    customerId = serializers.CharField(source="customer_id", max_length=200, required=False,
                                       allow_blank=True, allow_null=True)
    capUsd = serializers.DecimalField(source="cap_usd", **MONEY)
    warningThresholdPct = serializers.DecimalField(source="warning_threshold_pct", max_digits=5,
                                                   decimal_places=2, required=False,
                                                   coerce_to_string=False)
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
    capUsd = serializers.FloatField()
    warningThresholdPct = serializers.FloatField()
    notifyChannel = serializers.CharField(allow_null=True)
    notifyDestination = serializers.CharField(allow_null=True)
    spentUsd = serializers.FloatField()
    utilizationPct = serializers.FloatField()
    projectedSpendUsd = serializers.FloatField()
    status = serializers.ChoiceField(choices=["ON_TRACK", "WARNING", "OVER_BUDGET"])
    periodStart = serializers.DateTimeField()
    periodEnd = serializers.DateTimeField()


def budget_json(budget: CostBudget, now: datetime) -> dict:
    state = services.budget_status(budget, now=now)
    return {
        "id": budget.pk, "name": budget.name, "period": budget.period,
        "productId": budget.product_id or None, "customerId": budget.customer_id or None,
        "capUsd": _money(budget.cap_usd),
        "warningThresholdPct": float(budget.warning_threshold_pct),
        "notifyChannel": budget.notify_channel or None,
        "notifyDestination": budget.notify_destination or None,
        "spentUsd": _money(state.spent_usd),
        "utilizationPct": float(round(state.utilization_pct, 2)),
        "projectedSpendUsd": _money(state.projected_spend_usd), "status": state.status,
        "periodStart": state.period_start.isoformat().replace("+00:00", "Z"),
        "periodEnd": state.period_end.isoformat().replace("+00:00", "Z"),
    }


class BudgetList(APIView):
    permission_classes = [BudgetPermission]

    @extend_schema(responses=BudgetOut(many=True), operation_id="budgets_list")
    def get(self, request):
        now = _now()
        paginator = PageEnvelopePagination()
        page = paginator.paginate_queryset(CostBudget.objects.filter(tenant=request.tenant),
                                           request)
        return paginator.get_paginated_response([budget_json(b, now) for b in page])

    @extend_schema(request=BudgetIn, responses={201: BudgetOut})
    def post(self, request):
        data = BudgetIn(data=request.data)
        data.is_valid(raise_exception=True)
        budget = services.budget_create(tenant=request.tenant, **data.validated_data)
        return Response(budget_json(budget, _now()), status=status.HTTP_201_CREATED)


class BudgetDetail(APIView):
    permission_classes = [BudgetPermission]

    def _get(self, request, budget_id):
        return get_object_or_404(CostBudget, pk=budget_id, tenant=request.tenant)

    @extend_schema(responses=BudgetOut)
    def get(self, request, budget_id: int):
        return Response(budget_json(self._get(request, budget_id), _now()))

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


class AlertRuleSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=200)
    source = serializers.ChoiceField(choices=AlertRule.Source.choices, default="METRIC",
                                     help_text="METRIC (the default) measures `metric`; "
                                               "SIGNAL fires on intelligence signals.")
    metric = serializers.ChoiceField(choices=AlertRule.Metric.choices, required=False,
                                     allow_blank=True, help_text="METRIC rules only.")
    comparison = serializers.ChoiceField(choices=AlertRule.Comparison.choices, required=False,
                                         allow_blank=True, help_text="METRIC rules only.")
    threshold = serializers.DecimalField(**MONEY, required=False, allow_null=True,
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
    signingSecret = serializers.CharField(source="signing_secret", read_only=True)


class AlertRuleList(APIView):
    permission_classes = [BudgetPermission]

    @extend_schema(responses=AlertRuleSerializer(many=True), operation_id="alert_rules_list")
    def get(self, request):
        return paged_response(request, AlertRule.objects.filter(tenant=request.tenant),
                              AlertRuleSerializer)

    @extend_schema(request=AlertRuleSerializer, responses={201: AlertRuleSerializer})
    def post(self, request):
        data = AlertRuleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rule = services.alert_rule_create(tenant=request.tenant, **data.validated_data)
        return Response(AlertRuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class AlertRuleDetail(APIView):
    permission_classes = [BudgetPermission]

    def _get(self, request, rule_id):
        return get_object_or_404(AlertRule, pk=rule_id, tenant=request.tenant)

    @extend_schema(responses=AlertRuleSerializer)
    def get(self, request, rule_id: int):
        return Response(AlertRuleSerializer(self._get(request, rule_id)).data)

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


class DeliveryOut(serializers.Serializer):
    channel = serializers.CharField()
    destination = serializers.CharField()
    state = serializers.CharField()
    attempts = serializers.IntegerField()
    lastError = serializers.CharField(source="last_error")
    nextAttemptAt = serializers.DateTimeField(source="next_attempt_at")
    deliveredAt = serializers.DateTimeField(source="delivered_at")
    log = serializers.SerializerMethodField()

    def get_log(self, obj) -> list[dict]:
        return [{"at": a.attempted_at, "ok": a.ok, "detail": a.detail} for a in obj.log.all()]


class AlertOut(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    ruleId = serializers.IntegerField(source="rule_id", allow_null=True)
    budgetId = serializers.IntegerField(source="budget_id", allow_null=True)
    metric = serializers.CharField()
    value = serializers.DecimalField(max_digits=38, decimal_places=6, coerce_to_string=False,
                                     allow_null=True)
    threshold = serializers.DecimalField(max_digits=38, decimal_places=6,
                                         coerce_to_string=False)
    windowStart = serializers.DateTimeField(source="window_start")
    windowEnd = serializers.DateTimeField(source="window_end")
    productId = serializers.CharField(source="product_id")
    customerId = serializers.CharField(source="customer_id")
    state = serializers.CharField()
    firedAt = serializers.DateTimeField(source="fired_at")
    acknowledgedBy = serializers.CharField(source="acknowledged_by.username", allow_null=True,
                                           default=None)
    acknowledgedAt = serializers.DateTimeField(source="acknowledged_at")
    resolvedBy = serializers.CharField(source="resolved_by")
    resolvedAt = serializers.DateTimeField(source="resolved_at")
    deliveries = DeliveryOut(many=True)


def _alerts(request):
    return (Alert.objects.filter(tenant=request.tenant)
            .select_related("acknowledged_by").prefetch_related("deliveries__log"))


class AlertHistory(APIView):
    @extend_schema(responses=AlertOut(many=True), operation_id="alert_history_list",
                   parameters=[OpenApiParameter("state", str, enum=Alert.State.values)])
    def get(self, request):
        alerts = _alerts(request)
        state = request.query_params.get("state")
        if state:
            if state not in Alert.State.values:
                raise ApiError("state must be FIRED, ACKNOWLEDGED or RESOLVED.", field="state")
            alerts = alerts.filter(state=state)
        return paged_response(request, alerts, AlertOut)


class AlertDetail(APIView):
    @extend_schema(responses=AlertOut)
    def get(self, request, alert_id: int):
        return Response(AlertOut(get_object_or_404(_alerts(request), pk=alert_id)).data)


class AlertAcknowledge(APIView):
    permission_classes = [CanManageBudgets]

    @extend_schema(request=None, responses=AlertOut)
    def post(self, request, alert_id: int):
        alert = get_object_or_404(_alerts(request), pk=alert_id)
        services.alert_acknowledge(alert=alert, user=request.user, now=_now())
        return Response(AlertOut(alert).data)


class AlertResolve(APIView):
    permission_classes = [CanManageBudgets]

    @extend_schema(request=None, responses=AlertOut)
    def post(self, request, alert_id: int):
        alert = get_object_or_404(_alerts(request), pk=alert_id)
        services.alert_resolve(alert=alert, user=request.user, now=_now())
        return Response(AlertOut(alert).data)
