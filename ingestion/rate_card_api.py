"""Rate-card API: model prices (CRUD and LiteLLM upload), infra and fee rules, unpriced, reprice."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from django.conf import settings
from django.db.models import Q
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.errors import ApiError
from aforo.models import Role
from aforo.money import MoneyField
from aforo.pagination import PAGE_PARAMETERS, page_of, paged, paged_response
from aforo.permissions import CanManageBilling, ReadOrWrite
from ingestion import prices, queries
from ingestion.models import GatewayFeeRule, InfraCostRule, ModelPrice
from ingestion.services import events_reprice

MONEY = {"max_digits": 24, "decimal_places": 12, "min_value": 0, "coerce_to_string": False}


class RateCardPermission(ReadOrWrite):
    write_roles = frozenset({Role.OWNER, Role.ADMIN, Role.BILLING_ADMIN})


class ModelPriceSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    scope = serializers.SerializerMethodField()
    provider = serializers.CharField(max_length=100)
    model = serializers.CharField(max_length=200)
    effectiveFrom = serializers.DateTimeField(source="effective_from")
    inputPer1M = serializers.DecimalField(source="input_per_1m", **MONEY)
    cachedInputPer1M = serializers.DecimalField(source="cached_input_per_1m", required=False,
                                                allow_null=True, **MONEY)
    outputPer1M = serializers.DecimalField(source="output_per_1m", **MONEY)
    reasoningPer1M = serializers.DecimalField(source="reasoning_per_1m", required=False,
                                              allow_null=True, **MONEY)
    cacheWriteInputPer1M = serializers.DecimalField(source="cache_write_input_per_1m",
                                                    required=False, allow_null=True, **MONEY)
    perCall = serializers.DecimalField(source="per_call", required=False, **MONEY)
    source = serializers.CharField(read_only=True)

    def get_scope(self, obj) -> str:
        return "PLATFORM" if obj.tenant_id is None else "TENANT"


class ModelPriceList(APIView):
    permission_classes = [RateCardPermission]

    @extend_schema(responses=page_of(ModelPriceSerializer), operation_id="model_prices_list",
                   parameters=[*PAGE_PARAMETERS, OpenApiParameter("provider", str),
                               OpenApiParameter("model", str)])
    def get(self, request):
        rows = ModelPrice.objects.filter(Q(tenant=request.tenant) | Q(tenant__isnull=True))
        if request.query_params.get("provider"):
            rows = rows.filter(provider__iexact=request.query_params["provider"])
        if request.query_params.get("model"):
            rows = rows.filter(model=request.query_params["model"])
        return paged_response(request, rows.order_by("provider", "model", "-effective_from"),
                              ModelPriceSerializer)

    @extend_schema(request=ModelPriceSerializer, responses={201: ModelPriceSerializer})
    def post(self, request):
        data = ModelPriceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if ModelPrice.objects.filter(tenant=request.tenant, provider=values["provider"],
                                     model=values["model"],
                                     effective_from=values["effective_from"]).exists():
            raise ApiError("A price for this model from this moment exists; update it instead.",
                           field="effectiveFrom", code="conflict", status_code=409)
        price = prices.model_price_create(tenant=request.tenant, **values)
        return Response(ModelPriceSerializer(price).data, status=status.HTTP_201_CREATED)


class ModelPriceDetail(APIView):
    permission_classes = [RateCardPermission]

    def _own(self, request, price_id: int) -> ModelPrice:
        return get_object_or_404(ModelPrice, pk=price_id, tenant=request.tenant)

    @extend_schema(responses=ModelPriceSerializer)
    def get(self, request, price_id: int):
        price = get_object_or_404(ModelPrice.objects.filter(
            Q(tenant=request.tenant) | Q(tenant__isnull=True)), pk=price_id)
        return Response(ModelPriceSerializer(price).data)

    @extend_schema(request=ModelPriceSerializer, responses=ModelPriceSerializer)
    def patch(self, request, price_id: int):
        price = self._own(request, price_id)
        data = ModelPriceSerializer(price, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        price = prices.model_price_update(price=price, **data.validated_data)
        return Response(ModelPriceSerializer(price).data)

    @extend_schema(responses={204: None})
    def delete(self, request, price_id: int):
        prices.model_price_delete(price=self._own(request, price_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class UnpricedModelOut(serializers.Serializer):
    provider = serializers.CharField()
    model = serializers.CharField()
    events = serializers.IntegerField()
    firstSeen = serializers.DateTimeField()
    lastSeen = serializers.DateTimeField()


class UnpricedOut(serializers.Serializer):
    totalEvents = serializers.IntegerField()
    models = UnpricedModelOut(many=True)


class RepriceOut(serializers.Serializer):
    eventsExamined = serializers.IntegerField()
    eventsCorrected = serializers.IntegerField()
    aiDeltaUsd = MoneyField()
    infraDeltaUsd = MoneyField()
    feeDeltaUsd = MoneyField()
    nowPriced = serializers.IntegerField()


class LiteLLMImportOut(serializers.Serializer):
    imported = serializers.IntegerField()
    skipped = serializers.IntegerField()
    skippedModels = serializers.ListField(child=serializers.CharField())


class LiteLLMImport(APIView):
    """Upload LiteLLM's model_prices_and_context_window.json (JSON body or a file field)."""

    permission_classes = [CanManageBilling]
    parser_classes = [JSONParser, MultiPartParser]
    max_body_bytes = settings.AFORO_MAX_BODY_BYTES  # LiteLLM's file is 1.5 MB

    @extend_schema(
        parameters=[OpenApiParameter("effectiveFrom", str, required=True,
                                     description="ISO date or date-time the prices start")],
        request={"application/json": {"type": "object"},
                 "multipart/form-data": {"type": "object",
                                         "properties": {"file": {"type": "string",
                                                                 "format": "binary"}}}},
        responses={201: LiteLLMImportOut})
    def post(self, request):
        body = request.data if hasattr(request.data, "get") else {}
        raw = request.query_params.get("effectiveFrom") or body.get("effectiveFrom")
        effective_from = parse_moment(raw, "effectiveFrom")
        upload = request.FILES.get("file")
        if upload is None and request.content_type.startswith("multipart/"):
            raise ApiError("Send LiteLLM's JSON in the form field `file`.", field="file")
        if upload is not None:
            try:
                document = prices.litellm_parse(upload.read())
            except ValueError:
                raise ApiError("The file is not JSON.", field="file") from None
        else:
            document = prices.litellm_parse(request.body)
        if not isinstance(document, dict):
            raise ApiError("Expected LiteLLM's JSON object keyed by model.", field="file")
        report = prices.litellm_import(tenant=request.tenant, document=document,
                                       effective_from=effective_from)
        return Response(report.as_json(), status=status.HTTP_201_CREATED)


FIRST_MOMENT = datetime(1970, 1, 2, tzinfo=timezone.utc)
LAST_MOMENT = datetime(2100, 12, 31, tzinfo=timezone.utc)


def parse_moment(raw: str | None, field: str) -> datetime:
    if not raw:
        raise ApiError(f"{field} is required.", field=field)
    try:
        moment = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(f"{field} must be an ISO-8601 date or date-time.", field=field) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if not FIRST_MOMENT <= moment <= LAST_MOMENT:
        # the ledger's DateTime holds 1970..2105: outside it a query fails instead of matching
        raise ApiError(f"{field} must be between 1970 and 2100.", field=field)
    return moment


class InfraRuleSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    productId = serializers.CharField(source="product_id", max_length=200, allow_blank=True,
                                      default="")
    effectiveFrom = serializers.DateTimeField(source="effective_from")
    perEventUsd = serializers.DecimalField(source="per_event_usd", default=0, **MONEY)
    per1kTokensUsd = serializers.DecimalField(source="per_1k_tokens_usd", default=0, **MONEY)


class FeeRuleSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    sourceType = serializers.CharField(source="source_type", max_length=100, allow_blank=True,
                                       default="")
    effectiveFrom = serializers.DateTimeField(source="effective_from")
    perCallUsd = serializers.DecimalField(source="per_call_usd", default=0, **MONEY)
    pctOfAiCost = serializers.DecimalField(source="pct_of_ai_cost", max_digits=9,
                                           decimal_places=4, min_value=0, max_value=100,
                                           default=0, coerce_to_string=False)


def _rule_views(model, serializer):
    class RuleList(APIView):
        permission_classes = [RateCardPermission]

        @extend_schema(**paged(serializer), operation_id=f"{model.__name__}_list")
        def get(self, request):
            return paged_response(request, model.objects.filter(tenant=request.tenant),
                                  serializer)

        @extend_schema(request=serializer, responses={201: serializer})
        def post(self, request):
            data = serializer(data=request.data)
            data.is_valid(raise_exception=True)
            rule = prices.rule_create(kind=model, tenant=request.tenant, **data.validated_data)
            return Response(serializer(rule).data, status=status.HTTP_201_CREATED)

    class RuleDetail(APIView):
        permission_classes = [RateCardPermission]

        @extend_schema(responses={204: None}, operation_id=f"{model.__name__}_destroy")
        def delete(self, request, rule_id: int):
            prices.rule_delete(rule=get_object_or_404(model, pk=rule_id, tenant=request.tenant))
            return Response(status=status.HTTP_204_NO_CONTENT)

    RuleList.__name__ = f"{model.__name__}List"
    RuleDetail.__name__ = f"{model.__name__}Detail"
    return RuleList, RuleDetail


InfraRuleList, InfraRuleDetail = _rule_views(InfraCostRule, InfraRuleSerializer)
FeeRuleList, FeeRuleDetail = _rule_views(GatewayFeeRule, FeeRuleSerializer)


class UnpricedModels(APIView):
    """The models whose events arrived with no cost and no price, with how many are waiting."""

    @extend_schema(responses=UnpricedOut)
    def get(self, request):
        rows = queries.unpriced_models(request.tenant.slug)
        return Response({"totalEvents": sum(r["events"] for r in rows), "models": [
            {"provider": r["provider"], "model": r["model"], "events": r["events"],
             "firstSeen": r["first_seen"], "lastSeen": r["last_seen"]} for r in rows]})


def parse_date(raw, field: str) -> date:
    try:
        day = date.fromisoformat(str(raw))
    except (TypeError, ValueError):
        raise ApiError(f"{field} must be an ISO-8601 date.", field=field) from None
    if not FIRST_MOMENT.date() <= day <= LAST_MOMENT.date():
        raise ApiError(f"{field} must be between 1970 and 2100.", field=field)
    return day




class Reprice(APIView):
    """Append corrections for events whose cost the current rate card changes (idempotent)."""

    permission_classes = [CanManageBilling]

    @extend_schema(request={"application/json": {"type": "object", "properties": {
        "from": {"type": "string", "format": "date"}, "to": {"type": "string", "format": "date"},
        "provider": {"type": "string"}, "model": {"type": "string"}},
        "required": ["from", "to"]}}, responses=RepriceOut)
    def post(self, request):
        body = request.data if isinstance(request.data, dict) else {}
        first = parse_date(body.get("from"), "from")
        last = parse_date(body.get("to"), "to")
        if last < first:
            raise ApiError("to is before from.", field="to")
        start = datetime.combine(first, time.min, tzinfo=timezone.utc)
        end = datetime.combine(last, time.min, tzinfo=timezone.utc) + timedelta(days=1)
        report = events_reprice(tenant=request.tenant, start=start, end=end,
                                provider=str(body.get("provider") or "")[:200] or None,
                                model=str(body.get("model") or "")[:200] or None)
        return Response(RepriceOut(report.as_json()).data)
