"""Intelligence API: signals (list, acknowledge, resolve), the detector settings, and the COGS
forecast and what-if under /api/v1/analytics/cogs/."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from django.db.models import Case, IntegerField, Value, When
from django.shortcuts import get_object_or_404
from django.utils.timezone import now as _now  # aware, UTC
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.errors import ApiError
from aforo.models import Role
from aforo.money import MoneyField, PctField
from aforo.pagination import page_of, page_rendered
from aforo.periods import api_period_parse
from aforo.permissions import BILLING_ROLES, CanRead, ReadOrWrite, _RoleSet
from aforo.renderers import ExactJSONRenderer
from cogs.api import money, pct
from intelligence import forecast as forecasting
from intelligence import services
from intelligence.models import Kind, Severity, Signal
from intelligence.whatif import ModelChange, what_if

ACK_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.BILLING_ADMIN, Role.DEVELOPER})


class CanAnswerSignals(_RoleSet):
    roles = ACK_ROLES


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _plain(value: Decimal | None) -> Decimal | None:
    """At most six decimals, written without an exponent (100, not 1E+2)."""
    if value is None:
        return None
    return Decimal(format(money(value).normalize(), "f"))


def signal_json(signal: Signal) -> dict:
    return {
        "id": signal.pk, "kind": signal.kind, "title": signal.title,
        "customerId": signal.customer_id or None, "productId": signal.product_id or None,
        "unit": signal.unit or None, "subject": signal.subject or None,
        "threshold": _plain(signal.threshold),
        "windowStart": _iso(signal.window_start), "windowEnd": _iso(signal.window_end),
        "value": _plain(signal.value), "baseline": _plain(signal.baseline),
        "deviation": signal.deviation, "magnitude": signal.magnitude,
        "severity": signal.severity, "state": signal.state,
        "sampleEventIds": signal.sample_event_ids,
        "detectedAt": _iso(signal.detected_at), "lastEventAt": _iso(signal.last_event_at),
        "detectionLatencySeconds": signal.detection_latency_seconds,
        "acknowledgedBy": signal.acknowledged_by.username if signal.acknowledged_by else None,
        "acknowledgedAt": _iso(signal.acknowledged_at),
        "resolvedBy": signal.resolved_by or None, "resolvedAt": _iso(signal.resolved_at),
    }


def _measure(places: int, **kwargs) -> serializers.DecimalField:
    """A signal's figure in a response: an exact number of at most `places` decimals."""
    return serializers.DecimalField(max_digits=24, decimal_places=places,
                                    coerce_to_string=False, **kwargs)


class SignalSchema(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Kind.choices)
    title = serializers.CharField()
    customerId = serializers.CharField(allow_null=True)
    productId = serializers.CharField(allow_null=True)
    unit = serializers.CharField(allow_null=True, help_text="EVENTS, INPUT_TOKENS, "
                                 "OUTPUT_TOKENS, TOOL_CALLS, REASONING_STEPS, COGS_USD, "
                                 "MARGIN_PCT")
    subject = serializers.CharField(allow_null=True, help_text="budget:ID, guard-action:ID")
    threshold = _measure(6, help_text="σ for anomalies and spikes, % otherwise")
    windowStart = serializers.DateTimeField()
    windowEnd = serializers.DateTimeField()
    value = _measure(6)
    baseline = _measure(6, allow_null=True)
    deviation = _measure(4, allow_null=True, help_text="σ from the baseline, % change or % pace")
    magnitude = _measure(4, help_text="times its threshold (the tile's order)")
    severity = serializers.ChoiceField(choices=Severity.choices)
    state = serializers.ChoiceField(choices=Signal.State.choices)
    sampleEventIds = serializers.ListField(child=serializers.CharField())
    detectedAt = serializers.DateTimeField()
    lastEventAt = serializers.DateTimeField(allow_null=True)
    detectionLatencySeconds = serializers.IntegerField(allow_null=True)
    acknowledgedBy = serializers.CharField(allow_null=True)
    acknowledgedAt = serializers.DateTimeField(allow_null=True)
    resolvedBy = serializers.CharField(allow_null=True)
    resolvedAt = serializers.DateTimeField(allow_null=True)


SignalPageSchema = page_of(SignalSchema)


SEVERITY_ORDER = Case(*(When(severity=s, then=Value(rank)) for rank, s in enumerate(
    (Severity.INFO, Severity.WARNING, Severity.CRITICAL))), output_field=IntegerField())


def signals_filtered(tenant, params) -> tuple:
    """The tenant's signals filtered by kind, state, severity, customerId and productId, in
    the order asked (recent first, or by magnitude: the health tile's)."""
    found = Signal.objects.filter(tenant=tenant).select_related("acknowledged_by")
    for name, column, choices in (("kind", "kind", Kind.values),
                                  ("state", "state", Signal.State.values),
                                  ("severity", "severity", Severity.values)):
        value = params.get(name)
        if value:
            if value not in choices:
                raise ApiError(f"{name} must be one of {', '.join(choices)}.", field=name)
            found = found.filter(**{column: value})
    for name, column in (("customerId", "customer_id"), ("productId", "product_id")):
        if params.get(name):
            found = found.filter(**{column: params[name]})
    order = params.get("order", "recent")
    if order == "magnitude":
        found = found.annotate(rank=SEVERITY_ORDER).order_by("-rank", "-magnitude", "-id")
    elif order != "recent":
        raise ApiError("order must be recent or magnitude.", field="order")
    return found


class SignalList(APIView):
    permission_classes = [CanRead]
    renderer_classes = [ExactJSONRenderer]

    @extend_schema(responses=SignalPageSchema, operation_id="intelligence_signals_list",
                   parameters=[
                       OpenApiParameter("kind", str, enum=Kind.values),
                       OpenApiParameter("state", str, enum=Signal.State.values),
                       OpenApiParameter("severity", str, enum=Severity.values),
                       OpenApiParameter("customerId", str), OpenApiParameter("productId", str),
                       OpenApiParameter("order", str, enum=["recent", "magnitude"]),
                       OpenApiParameter("page", OpenApiTypes.INT),
                       OpenApiParameter("size", OpenApiTypes.INT)])
    def get(self, request):
        return page_rendered(request, signals_filtered(request.tenant, request.query_params),
                             lambda rows: [signal_json(s) for s in rows])


def _signal(request, signal_id: int) -> Signal:
    return get_object_or_404(Signal.objects.select_related("acknowledged_by"),
                             pk=signal_id, tenant=request.tenant)


class SignalDetail(APIView):
    permission_classes = [CanRead]
    renderer_classes = [ExactJSONRenderer]

    @extend_schema(responses={200: SignalSchema, 404: None})
    def get(self, request, signal_id: int):
        return Response(signal_json(_signal(request, signal_id)))


class _SignalTransition(APIView):
    # A signal's move to another state: `transition` is the service that makes it.
    permission_classes = [CanAnswerSignals]
    renderer_classes = [ExactJSONRenderer]
    transition: Callable[..., Signal]  # each subclass's service

    @extend_schema(request=None, responses={200: SignalSchema, 404: None, 409: None})
    def post(self, request, signal_id: int):
        signal = self.transition(signal=_signal(request, signal_id), user=request.user,
                                 now=_now())
        return Response(signal_json(signal))


class SignalAcknowledge(_SignalTransition):
    transition = staticmethod(services.signal_acknowledge)


class SignalResolve(_SignalTransition):
    transition = staticmethod(services.signal_resolve)


# --- settings --------------------------------------------------------------------------------

class _SettingsWrite(ReadOrWrite):
    write_roles = BILLING_ROLES


_SETTINGS = {  # API name → (model field, serializer field)
    "anomalySigma": "anomaly_sigma", "baselineDays": "baseline_days",
    "minHistoryDays": "min_history_days", "minHourlyEvents": "min_hourly_events",
    "costSpikeSigma": "cost_spike_sigma", "costSpikeMinUsd": "cost_spike_min_usd",
    "churnDropPct": "churn_drop_pct", "churnMinWeeklyEvents": "churn_min_weekly_events",
    "pacingThresholds": "pacing_thresholds", "pacingMinElapsedPct": "pacing_min_elapsed_pct",
}


def _decimal(max_digits: int, decimal_places: int, **kwargs) -> serializers.DecimalField:
    """A setting's field, bounded as its column is (a value it cannot hold is a 400)."""
    return serializers.DecimalField(max_digits=max_digits, decimal_places=decimal_places,
                                    coerce_to_string=False, required=False, min_value=0,
                                    **kwargs)


class IntelligenceSettingsIn(serializers.Serializer):
    anomalySigma = _decimal(6, 2)
    baselineDays = serializers.IntegerField(required=False, min_value=2, max_value=60)
    minHistoryDays = serializers.IntegerField(required=False, min_value=1, max_value=60)
    minHourlyEvents = _decimal(12, 2)
    costSpikeSigma = _decimal(6, 2)
    costSpikeMinUsd = _decimal(18, 6)
    churnDropPct = _decimal(6, 2, max_value=100)
    churnMinWeeklyEvents = serializers.IntegerField(required=False, min_value=0,
                                                    max_value=2**31 - 1)
    pacingThresholds = serializers.ListField(child=serializers.DecimalField(
        max_digits=7, decimal_places=2, min_value=1, coerce_to_string=False),
        required=False, max_length=10)
    pacingMinElapsedPct = _decimal(6, 2, max_value=100)


def settings_json(current) -> dict:
    out = {api: getattr(current, field) for api, field in _SETTINGS.items()}
    out["pacingThresholds"] = [_plain(t) for t in current.thresholds()]
    return out


class IntelligenceSettingsDetail(APIView):
    permission_classes = [_SettingsWrite]
    renderer_classes = [ExactJSONRenderer]

    @extend_schema(responses=IntelligenceSettingsIn, operation_id="intelligence_settings_get")
    def get(self, request):
        return Response(settings_json(services.intelligence_settings_get(tenant=request.tenant)))

    @extend_schema(request=IntelligenceSettingsIn, responses=IntelligenceSettingsIn,
                   operation_id="intelligence_settings_update")
    def patch(self, request):
        data = IntelligenceSettingsIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        changes = {_SETTINGS[k]: v for k, v in data.validated_data.items()}
        if "pacing_thresholds" in changes:
            changes["pacing_thresholds"] = [str(t) for t in changes["pacing_thresholds"]]
        current = services.intelligence_settings_update(tenant=request.tenant, **changes)
        return Response(settings_json(current))


# --- forecast --------------------------------------------------------------------------------

class ForecastPointSchema(serializers.Serializer):
    date = serializers.DateField(help_text="the day, or the month's first day for 12m")
    cogsUsd = MoneyField()
    revenueUsd = MoneyField(help_text="expected revenue")
    marginPct = PctField(allow_null=True)
    lower = MoneyField(help_text="COGS: the interval's lower end")
    upper = MoneyField(help_text="COGS: the interval's upper end")
    revenueLower = MoneyField()
    revenueUpper = MoneyField()


class ActualSchema(serializers.Serializer):
    date = serializers.DateField()
    cogsUsd = MoneyField()
    revenueUsd = MoneyField()
    marginPct = PctField(allow_null=True)


class ForecastSchema(serializers.Serializer):
    horizon = serializers.ChoiceField(choices=list(forecasting.HORIZONS))
    method = serializers.CharField()
    intervalPct = PctField(help_text="the prediction interval's level")
    firstLossDate = serializers.DateField(allow_null=True)
    forecast = ForecastPointSchema(many=True)
    history = ActualSchema(many=True, help_text="the daily actuals the model was fitted on")


def forecast_json(result: forecasting.Forecast) -> dict:
    from cogs.margins import margin_pct

    return {
        "horizon": result.horizon, "method": result.method, "intervalPct": result.level,
        "firstLossDate": result.first_loss_date,
        "forecast": [{"date": p.day, "cogsUsd": p.cogs_usd, "revenueUsd": p.revenue_usd,
                      "marginPct": pct(p.margin_pct), "lower": p.cogs_lower,
                      "upper": p.cogs_upper, "revenueLower": p.revenue_lower,
                      "revenueUpper": p.revenue_upper} for p in result.points],
        "history": [{"date": d.day, "cogsUsd": money(d.cogs_usd),
                     "revenueUsd": money(d.revenue_usd),
                     "marginPct": pct(margin_pct(d.revenue_usd, d.cogs_usd))}
                    for d in result.history],
    }


class Forecast(APIView):
    permission_classes = [CanRead]
    renderer_classes = [ExactJSONRenderer]

    @extend_schema(responses=ForecastSchema, operation_id="cogs_forecast", parameters=[
        OpenApiParameter("horizon", str, enum=list(forecasting.HORIZONS),
                         description="30d or 90d per day, 12m per month (default 30d)"),
        OpenApiParameter("productId", str), OpenApiParameter("customerId", str)])
    def get(self, request):
        horizon = request.query_params.get("horizon", "30d")
        if horizon not in forecasting.HORIZONS:
            raise ApiError("horizon must be 30d, 90d or 12m.", field="horizon")
        result = forecasting.forecast_serve(
            request.tenant, horizon=horizon,
            product_id=request.query_params.get("productId") or None,
            customer_id=request.query_params.get("customerId") or None)
        return Response(forecast_json(result))


# --- what-if ---------------------------------------------------------------------------------

class FiguresSchema(serializers.Serializer):
    cogsUsd = MoneyField()
    revenueUsd = MoneyField(help_text="expected revenue")
    marginUsd = MoneyField()
    marginPct = PctField(allow_null=True)


class ComparisonSchema(serializers.Serializer):
    before = FiguresSchema()
    after = FiguresSchema()


class ProductComparisonSchema(ComparisonSchema):
    productId = serializers.CharField()


class CustomerComparisonSchema(ComparisonSchema):
    customerId = serializers.CharField()


class ChangeOutSchema(serializers.Serializer):
    fromModel = serializers.CharField()
    toModel = serializers.CharField()
    toProvider = serializers.CharField(allow_null=True)
    eventsRepriced = serializers.IntegerField()


class WhatIfSchema(ComparisonSchema):
    changes = ChangeOutSchema(many=True)
    eventsRepriced = serializers.IntegerField()
    eventsUnpricedAfter = serializers.IntegerField()
    products = ProductComparisonSchema(many=True)
    customers = CustomerComparisonSchema(many=True)


def _figures(figures) -> dict:
    return {"cogsUsd": money(figures.cogs_usd), "revenueUsd": money(figures.revenue_usd),
            "marginUsd": money(figures.margin_usd), "marginPct": pct(figures.margin_pct)}


def what_if_json(result) -> dict:
    def pair(comparison) -> dict:
        return {"before": _figures(comparison.before), "after": _figures(comparison.after)}

    return {
        **pair(result.total),
        "changes": [{"fromModel": c.from_model, "toModel": c.to_model,
                     "toProvider": c.to_provider or None, "eventsRepriced": n}
                    for c, n in result.changes],
        "eventsRepriced": result.events_repriced,
        "eventsUnpricedAfter": result.events_unpriced_after,
        "products": [{"productId": key, **pair(c)} for key, c in sorted(result.products.items())],
        "customers": [{"customerId": key, **pair(c)}
                      for key, c in sorted(result.customers.items())],
    }


class WhatIf(APIView):
    permission_classes = [CanRead]  # a read: nothing is written
    renderer_classes = [ExactJSONRenderer]

    class ChangeIn(serializers.Serializer):
        fromModel = serializers.CharField(max_length=200)
        toModel = serializers.CharField(max_length=200)
        toProvider = serializers.CharField(max_length=200, required=False, allow_blank=True)

    class WhatIfIn(serializers.Serializer):
        locals()["from"] = serializers.DateField(required=False)  # `from` is a keyword
        to = serializers.DateField(required=False)
        changes = serializers.ListField(min_length=1, max_length=20)
        productId = serializers.CharField(max_length=200, required=False, allow_blank=True)
        customerId = serializers.CharField(max_length=200, required=False, allow_blank=True)

    @extend_schema(request=WhatIfIn, responses=WhatIfSchema, operation_id="cogs_what_if")
    def post(self, request):
        data = self.WhatIfIn(data=request.data)
        data.is_valid(raise_exception=True)
        changes = []
        for index, raw in enumerate(data.validated_data["changes"]):
            change = self.ChangeIn(data=raw if isinstance(raw, dict) else {})
            if not change.is_valid():
                name = next(iter(change.errors))
                raise ApiError(str(change.errors[name][0]), field=f"changes.{index}.{name}")
            changes.append(ModelChange(
                from_model=change.validated_data["fromModel"].strip(),
                to_model=change.validated_data["toModel"].strip(),
                to_provider=change.validated_data.get("toProvider", "").strip()))
        time_zone = request.tenant.time_zone
        first, last = data.validated_data.get("from"), data.validated_data.get("to")
        period = api_period_parse(first.isoformat() if first else None,
                                  last.isoformat() if last else None, time_zone=time_zone)
        result = what_if(tenant=request.tenant, start=period.start_at, end=period.end_at,
                         changes=changes,
                         product_id=data.validated_data.get("productId") or None,
                         customer_id=data.validated_data.get("customerId") or None)
        return Response(what_if_json(result))
