"""Margin Guard API under /api/v1/margin-guard/: policies, states, actions, decide, override."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated

import msgspec
from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.db.models import Q
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.authentication import authorize_token
from aforo.errors import ApiError, api_exception_response, error_body, json_error
from aforo.limits import BoundedDictField
from aforo.money import MoneyField, PctField
from aforo.pagination import PAGE_PARAMETERS, page_of, paged, paged_response
from aforo.permissions import (
    GUARD_ROLES,
    CanManageGuard,
    CanRead,
    ReadOrWrite,
    sees_destinations,
)
from budgets.api import SigningSecretOut
from cogs.api import PERIOD_PARAMETERS, period_from_request
from cogs.services import cogs_settings_get
from margin_guard import decision
from margin_guard.models import GuardAction, GuardPolicy, GuardState, Level
from margin_guard.services import guard_override
from notifications.destinations import check_destination, destination_masked
from notifications.models import Channel
from notifications.services import signing_secret_rotate

MAX_POLICY_ITEMS = 200  # models in a downgrade map, features a block suspends


class GuardPermission(ReadOrWrite):
    write_roles = GUARD_ROLES


class PolicySerializer(serializers.ModelSerializer):
    productId = serializers.CharField(source="product_id", required=False, allow_blank=True)
    customerId = serializers.CharField(source="customer_id", required=False, allow_blank=True)
    alertBelowPct = PctField(source="alert_below_pct", required=False)
    throttleBelowPct = PctField(source="throttle_below_pct", required=False)
    blockBelowPct = PctField(source="block_below_pct", required=False)
    minEvents = serializers.IntegerField(source="min_events", required=False, min_value=0)
    recoveryBufferPct = PctField(source="recovery_buffer_pct", required=False,
                                 min_value=0)
    downgradeMap = BoundedDictField(source="downgrade_map", max_items=MAX_POLICY_ITEMS,
                                    child=serializers.CharField(max_length=200), required=False)
    premiumFeatures = serializers.ListField(source="premium_features", required=False,
                                            max_length=MAX_POLICY_ITEMS,
                                            child=serializers.CharField(max_length=200))
    throttleRatePerMinute = serializers.IntegerField(source="throttle_rate_per_minute",
                                                     required=False, allow_null=True,
                                                     min_value=1)
    onUnknownRevenue = serializers.ChoiceField(
        source="on_unknown_revenue", required=False,
        choices=GuardPolicy.UnknownRevenue.choices,
        help_text="HOLD (default): events with no revenue source are left out, so they never "
                  "escalate a level by themselves; TREAT_AS_ZERO: they count as earning $0.")
    notifyChannel = serializers.ChoiceField(
        source="notify_channel", required=False, allow_blank=True,
        choices=Channel.choices)
    notifyDestination = serializers.CharField(source="notify_destination", required=False,
                                              allow_blank=True)

    class Meta:
        model = GuardPolicy
        fields = ["id", "name", "scope", "tier", "productId", "customerId", "mode",
                  "alertBelowPct", "throttleBelowPct", "blockBelowPct", "window", "minEvents",
                  "recoveryBufferPct", "onUnknownRevenue", "downgradeMap", "premiumFeatures",
                  "throttleRatePerMinute", "notifyChannel", "notifyDestination"]

    def validate(self, attrs):
        fields = ("scope", "tier", "product_id", "customer_id", "alert_below_pct",
                  "throttle_below_pct", "block_below_pct")
        source = self.instance or GuardPolicy()  # a new policy starts from the defaults
        merged = {f: getattr(source, f) for f in fields}
        merged.update(attrs)
        needs = {"TIER": "tier", "PRODUCT": "product_id", "CUSTOMER": "customer_id",
                 "CUSTOMER_PRODUCT": "customer_id"}
        scope = merged.get("scope")
        if scope == "PLATFORM":
            raise serializers.ValidationError({"scope": "PLATFORM policies are set by "
                                                        "operators in the admin."})
        if scope in needs and not merged.get(needs[scope]):
            raise serializers.ValidationError({scope.lower(): f"{scope} needs its id."})
        if scope == "CUSTOMER_PRODUCT" and not merged.get("product_id"):
            raise serializers.ValidationError({"productId": "CUSTOMER_PRODUCT needs a product."})
        channel = attrs.get("notify_channel", getattr(self.instance, "notify_channel", ""))
        if channel:
            check_destination(channel, attrs.get("notify_destination",
                                                 getattr(self.instance, "notify_destination",
                                                         "")), "notifyDestination")
        floors = [merged.get(k) for k in ("alert_below_pct", "throttle_below_pct",
                                          "block_below_pct")]
        if not floors[0] >= floors[1] >= floors[2]:
            raise serializers.ValidationError(
                {"throttleBelowPct": "Floors must descend: alert ≥ throttle ≥ block."})
        return attrs

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if instance.tenant_id is None:
            # a PLATFORM policy is the operator's: tenants see none of its destinations
            data["notifyChannel"] = data["notifyDestination"] = None
        elif self.context.get("mask"):
            data["notifyDestination"] = destination_masked(data["notifyDestination"])
        return data


class PolicyCreated(PolicySerializer):
    signingSecret = serializers.CharField(
        source="signing_secret", read_only=True,
        help_text="Signs this policy's WEBHOOK notifications; shown only now and on rotation.")

    class Meta(PolicySerializer.Meta):
        fields = [*PolicySerializer.Meta.fields, "signingSecret"]


def _mask(request) -> dict:
    return {"mask": not sees_destinations(request)}


class PolicyList(APIView):
    permission_classes = [GuardPermission]

    @extend_schema(**paged(PolicySerializer), operation_id="guard_policies_list")
    def get(self, request):
        rows = GuardPolicy.objects.filter(Q(tenant=request.tenant) | Q(tenant__isnull=True))
        return paged_response(request, rows, PolicySerializer, _mask(request))

    @extend_schema(request=PolicySerializer, responses={201: PolicyCreated})
    def post(self, request):
        data = PolicySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        policy = data.save(tenant=request.tenant)
        return Response(PolicyCreated(policy).data, status=status.HTTP_201_CREATED)


class PolicyDetail(APIView):
    permission_classes = [GuardPermission]

    def _get(self, request, policy_id):
        return get_object_or_404(GuardPolicy, pk=policy_id, tenant=request.tenant)

    @extend_schema(responses=PolicySerializer)
    def get(self, request, policy_id: int):
        return Response(PolicySerializer(self._get(request, policy_id),
                                         context=_mask(request)).data)

    @extend_schema(request=PolicySerializer, responses=PolicySerializer)
    def patch(self, request, policy_id: int):
        data = PolicySerializer(self._get(request, policy_id), data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        return Response(PolicySerializer(data.save()).data)

    @extend_schema(responses={204: None})
    def delete(self, request, policy_id: int):
        self._get(request, policy_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class PolicySecretRotate(APIView):
    permission_classes = [CanManageGuard]

    @extend_schema(request=None, responses={201: SigningSecretOut})
    def post(self, request, policy_id: int):
        policy = get_object_or_404(GuardPolicy, pk=policy_id, tenant=request.tenant)
        # Guard actions name no policy: the tenant's pending webhook deliveries take it.
        secret = signing_secret_rotate(owner=policy, subjects=GuardAction.objects.filter(
            tenant=request.tenant))
        return Response({"signingSecret": secret},
                        status=status.HTTP_201_CREATED)


class _GuardFigures(serializers.ModelSerializer):
    """The customer, product and margin figures a guard state and a guard action both carry."""

    customerId = serializers.CharField(source="customer_id")
    productId = serializers.CharField(source="product_id")
    marginPct = PctField(source="margin_pct", max_digits=20, allow_null=True)
    costUsd = MoneyField(source="cost_usd", max_digits=38)
    revenueUsd = MoneyField(source="revenue_usd", max_digits=38)


class RevenueSourcesOut(serializers.Serializer):
    attributedUsd = MoneyField(max_digits=38)
    carriedUsd = MoneyField(max_digits=38)
    ratedUsd = MoneyField(max_digits=38)
    estimatedUsd = MoneyField(max_digits=38)
    unknownEvents = serializers.IntegerField()


class StateOut(_GuardFigures):
    level = serializers.SerializerMethodField()
    unknownEvents = serializers.IntegerField(source="unknown_events")
    revenueSources = serializers.SerializerMethodField()
    evaluatedAt = serializers.DateTimeField(source="evaluated_at", allow_null=True)
    overrideUntil = serializers.DateTimeField(source="override_until", allow_null=True)

    class Meta:
        model = GuardState
        fields = ["customerId", "productId", "level", "mode", "marginPct", "costUsd",
                  "revenueUsd", "events", "unknownEvents", "revenueSources", "reason",
                  "evaluatedAt", "overrideUntil"]

    def get_level(self, obj) -> str:
        return Level(obj.level).label

    @extend_schema_field(RevenueSourcesOut(allow_null=True))
    def get_revenueSources(self, obj) -> dict | None:  # noqa: N802
        """Where the window's expected revenue came from (null before the first evaluation)."""
        return RevenueSourcesOut(obj.revenue_sources).data if obj.revenue_sources else None


class StateList(APIView):
    @extend_schema(**paged(StateOut), operation_id="guard_states_list")
    def get(self, request):
        return paged_response(request, GuardState.objects.filter(tenant=request.tenant),
                              StateOut)


class ActionOut(_GuardFigures):
    fromLevel = serializers.SerializerMethodField()
    toLevel = serializers.SerializerMethodField()
    eventsEvaluated = serializers.IntegerField(source="events_evaluated")
    unknownEvents = serializers.IntegerField(source="unknown_events")

    class Meta:
        model = GuardAction
        fields = ["id", "customerId", "productId", "fromLevel", "toLevel", "mode", "marginPct",
                  "costUsd", "revenueUsd", "eventsEvaluated", "unknownEvents", "reason",
                  "actor", "at"]

    def get_fromLevel(self, obj) -> str:  # noqa: N802 (DRF names it after the field)
        return Level(obj.from_level).label

    def get_toLevel(self, obj) -> str:  # noqa: N802
        return Level(obj.to_level).label


class ActionList(APIView):
    @extend_schema(responses=page_of(ActionOut), operation_id="guard_actions_list",
                   parameters=[*PAGE_PARAMETERS, OpenApiParameter("customerId", str)])
    def get(self, request):
        rows = GuardAction.objects.filter(tenant=request.tenant)
        if request.query_params.get("customerId"):
            rows = rows.filter(customer_id=request.query_params["customerId"])
        return paged_response(request, rows, ActionOut)


Id = Annotated[str, msgspec.Meta(max_length=200)]


class DecideIn(msgspec.Struct, rename="camel"):
    customer_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    product_id: Id = ""
    model: Id = ""
    feature: Id = ""


_decide_in = msgspec.json.Decoder(DecideIn)


def decide_request(request, body: bytes) -> tuple[int, dict[str, str], dict]:
    """Authenticate, decode and decide: (status, extra headers, JSON body).

    `request` needs only META (a Django request, or the ASGI fast path's stand-in).
    """
    try:
        access = authorize_token(request, CanRead)
    except exceptions.APIException as exc:
        response = api_exception_response(exc)
        return response.status_code, dict(response.headers), json.loads(response.content)
    finally:
        close_old_connections()  # a remembered token touches no database; a miss may have
    try:
        values = _decide_in.decode(body)
    except msgspec.ValidationError as exc:
        field = str(exc).split("`$.", 1)[1].rstrip("`") if "`$." in str(exc) else None
        if "missing required field" in str(exc):
            field = "customerId"
        return 400, {}, error_body("invalid", str(exc), field)
    except msgspec.DecodeError:
        return 415, {}, error_body("unsupported_media_type", "The body is not JSON.")
    verdict = decision.decide(access.tenant.slug, customer_id=values.customer_id,
                              product_id=values.product_id, model=values.model,
                              feature=values.feature)
    headers = {}
    if verdict.downgrade_to:
        headers["X-Aforo-Model-Downgrade"] = verdict.downgrade_to
    if verdict.retry_after:
        headers["Retry-After"] = str(verdict.retry_after)
    return 429 if verdict.retry_after else 200, headers, verdict.as_json()


def _decide_sync(request, body: bytes) -> JsonResponse:
    status, headers, payload = decide_request(request, body)
    response = JsonResponse(payload, status=status)
    for name, value in headers.items():
        if name.lower() != "content-type":
            response[name] = value
    return response


@csrf_exempt
async def decide_endpoint(request: HttpRequest) -> JsonResponse:
    """POST /api/v1/margin-guard/decide: ALLOW, THROTTLE (X-Aforo-Model-Downgrade; 429 with
    Retry-After past the rate limit) or BLOCK.

    A plain async view: on the request path every hop counts, so no DRF dispatch and one hop to
    a worker thread for the (usually remembered) token check and the dictionary lookup.
    """
    if request.method != "POST":
        return json_error(405, "method_not_allowed", "Use POST.")
    return await sync_to_async(_decide_sync, thread_sensitive=False)(request, request.body)


class _ThrottledOut(serializers.Serializer):
    calls = serializers.IntegerField()
    requestedModelCostUsd = MoneyField()
    actualCostUsd = MoneyField()
    savingsUsd = MoneyField()
    unpricedRequestedModels = serializers.ListField(child=serializers.CharField())
    method = serializers.CharField()


class _BlockedOut(serializers.Serializer):
    calls = serializers.IntegerField()
    estimatedSavingsUsd = MoneyField()
    estimate = serializers.BooleanField()
    method = serializers.CharField()


class ImpactOut(serializers.Serializer):
    # `from`, a Python keyword, is added below
    to = serializers.DateField()
    netRecoveredUsd = MoneyField()
    throttled = _ThrottledOut()
    blocked = _BlockedOut()


ImpactOut._declared_fields["from"] = serializers.DateField()


class Impact(APIView):
    """Net profit recovered over `from`–`to` (default the last 30 days), with its method."""

    @extend_schema(responses=ImpactOut, parameters=PERIOD_PARAMETERS)
    def get(self, request):
        from margin_guard.impact import impact_report

        # the same from/to rules as every COGS read (defaults, validation, the tenant's days)
        period = period_from_request(request, cogs_settings_get(tenant=request.tenant))
        report = impact_report(tenant=request.tenant, start=period.first, end=period.last)
        return Response({"from": period.first, "to": period.last, **report.as_json()})


class Override(APIView):
    permission_classes = [CanManageGuard]

    class OverrideIn(serializers.Serializer):
        customerId = serializers.CharField(max_length=200)
        productId = serializers.CharField(max_length=200, required=False, allow_blank=True,
                                          default="")
        until = serializers.DateTimeField()

    @extend_schema(request=OverrideIn, responses=StateOut)
    def post(self, request):
        data = self.OverrideIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        now = datetime.now(timezone.utc)
        if values["until"] <= now:
            raise ApiError("until must be in the future.", field="until")
        actor = getattr(request.user, "username", "") or f"token:{request.auth.token.prefix}"
        state = guard_override(tenant=request.tenant, customer_id=values["customerId"],
                               product_id=values["productId"], until=values["until"],
                               actor=actor, now=now)
        return Response(StateOut(state).data)
