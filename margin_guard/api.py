"""Margin Guard API under /api/v1/margin-guard/: policies, states, actions, decide, override."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
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
from rest_framework.parsers import FormParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.authentication import authorize_token, token_read_at
from aforo.errors import ApiError, DomainError, api_exception_response, error_body, json_error
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
from aforo.refresher import token_hold
from budgets.api import SigningSecretOut
from cogs.api import PERIOD_PARAMETERS, period_from_request
from cogs.services import cogs_settings_get
from margin_guard import decision
from margin_guard.impact import impact_report
from margin_guard.models import GuardAction, GuardPolicy, GuardState, Level
from margin_guard.queries import guard_policy_preview
from margin_guard.recommendations import recommendation_out
from margin_guard.services import (
    MAX_NOTIFICATIONS,
    MAX_OVERRIDE_MINUTES,
    MAX_POLICY_ITEMS,
    guard_override,
    guard_policy_build,
    guard_policy_create,
    guard_policy_delete,
    guard_policy_update,
    guard_settings_get,
    guard_settings_update,
)
from margin_guard.slack import guard_slack_interaction
from notifications.destinations import destination_masked
from notifications.models import Channel, destinations_load
from notifications.services import signing_secret_rotate
from notifications.slack import slack_request_verify

MAX_IMPACT_HOURS = 90 * 24


class GuardPermission(ReadOrWrite):
    write_roles = GUARD_ROLES


class NotificationSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=Channel.choices)
    destination = serializers.CharField(max_length=500, allow_blank=True)


class PolicySerializer(serializers.ModelSerializer):
    """A policy as the API reads and writes it; the rules live in guard_policy_create/update."""

    productId = serializers.CharField(source="product_id", required=False, allow_blank=True,
                                      max_length=200)
    customerId = serializers.CharField(source="customer_id", required=False, allow_blank=True,
                                       max_length=200)
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
    overrideMinutes = serializers.IntegerField(
        source="override_minutes", required=False, min_value=1,
        max_value=MAX_OVERRIDE_MINUTES,
        help_text="How long “Override throttle” in Slack allows access (default 60).")
    onUnknownRevenue = serializers.ChoiceField(
        source="on_unknown_revenue", required=False,
        choices=GuardPolicy.UnknownRevenue.choices,
        help_text="HOLD (default): events with no revenue source are left out, so they never "
                  "escalate a level by themselves; TREAT_AS_ZERO: they count as earning $0.")
    notifyChannel = serializers.ChoiceField(
        source="notify_channel", required=False, allow_blank=True,
        choices=Channel.choices, help_text="The first of `notifications` (kept for clients "
                                           "that set one channel).")
    notifyDestination = serializers.CharField(source="notify_destination", required=False,
                                              allow_blank=True, max_length=500)
    notifications = NotificationSerializer(
        many=True, required=False, max_length=MAX_NOTIFICATIONS,
        help_text="Every channel a level change notifies (Slack, email, PagerDuty and "
                  "webhooks together).")

    class Meta:
        model = GuardPolicy
        fields = ["id", "name", "scope", "tier", "productId", "customerId", "mode",
                  "alertBelowPct", "throttleBelowPct", "blockBelowPct", "window", "minEvents",
                  "recoveryBufferPct", "onUnknownRevenue", "downgradeMap", "premiumFeatures",
                  "throttleRatePerMinute", "overrideMinutes", "notifyChannel",
                  "notifyDestination", "notifications"]
        extra_kwargs = {"name": {"required": False}, "scope": {"required": False}}

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["notifications"] = [{"channel": c, "destination": d}
                                 for c, d in instance.notify_targets()]
        if instance.tenant_id is None:
            # a PLATFORM policy is the operator's: tenants see none of its destinations
            data["notifyChannel"] = data["notifyDestination"] = None
            data["notifications"] = []
        elif self.context.get("mask"):
            data["notifyDestination"] = destination_masked(data["notifyDestination"])
            for target in data["notifications"]:
                target["destination"] = destination_masked(target["destination"])
        return data


def policy_changes(values: dict) -> dict:
    """The service's arguments from the serializer's validated data: a lone
    notifyChannel/notifyDestination replaces the first channel."""
    changes = dict(values)
    channel = changes.pop("notify_channel", None)
    destination = changes.pop("notify_destination", None)
    if "notifications" in changes:
        changes["notifications"] = [dict(t) for t in changes["notifications"]]
    elif channel is not None or destination is not None:
        changes["_first_channel"] = (channel, destination)
    return changes


def _first_channel(changes: dict, policy: GuardPolicy | None) -> dict:
    pair = changes.pop("_first_channel", None)
    if pair is None:
        return changes
    current = [{"channel": c, "destination": d}
               for c, d in (policy.notify_targets() if policy else [])]
    channel = pair[0] if pair[0] is not None else (current[0]["channel"] if current else "")
    destination = pair[1] if pair[1] is not None else (
        current[0]["destination"] if current else "")
    rest = current[1:]
    if not channel:
        if destination:
            raise DomainError("A destination needs its channel.", field="notifyChannel")
        changes["notifications"] = rest
    else:
        changes["notifications"] = [{"channel": channel, "destination": destination}, *rest]
    return changes


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
        return paged_response(request, rows, PolicySerializer, _mask(request),
                              load=destinations_load)

    @extend_schema(request=PolicySerializer, responses={201: PolicyCreated})
    def post(self, request):
        data = PolicySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes = _first_channel(policy_changes(data.validated_data), None)
        policy = guard_policy_create(tenant=request.tenant, name=changes.pop("name", ""),
                                     scope=changes.pop("scope", ""), **changes)
        return Response(PolicyCreated(policy).data, status=status.HTTP_201_CREATED)


class PreviewRowOut(serializers.Serializer):
    customerId = serializers.CharField(source="customer_id")
    productId = serializers.CharField(source="product_id")
    currentLevel = serializers.CharField(source="current_label")
    level = serializers.CharField(source="level_label")
    marginPct = PctField(source="margin_pct", max_digits=20, allow_null=True)
    costUsd = MoneyField(source="cost_usd", max_digits=38)
    revenueUsd = MoneyField(source="revenue_usd", max_digits=38,
                            help_text="Expected revenue of the window, as the guard judges it.")
    events = serializers.IntegerField()
    reason = serializers.CharField()
    heldBy = serializers.CharField(source="held_by", allow_blank=True,
                                   help_text="A more specific policy that governs this scope "
                                             "instead (empty when this one does).")


class PreviewOut(serializers.Serializer):
    windowStart = serializers.DateTimeField(source="window_start")
    windowEnd = serializers.DateTimeField(source="window_end")
    truncated = serializers.BooleanField(help_text="Only the busiest scopes were evaluated.")
    rows = PreviewRowOut(many=True)


class PolicyPreview(APIView):
    """POST /policies/preview: the levels a policy (new, or `id`'s with changes) would set for
    each customer it covers now. A dry evaluation: nothing is saved or changed."""

    permission_classes = [CanManageGuard]

    @extend_schema(request=PolicySerializer, responses={200: PreviewOut, 404: None},
                   parameters=[OpenApiParameter("id", int, description="Preview changes to "
                                                "this saved policy.")])
    def post(self, request):
        base = None
        if request.query_params.get("id"):
            try:
                policy_id = int(request.query_params["id"])
            except ValueError:
                raise ApiError("id must be a policy id.", field="id") from None
            base = get_object_or_404(GuardPolicy, pk=policy_id, tenant=request.tenant)
        data = PolicySerializer(data=request.data, partial=base is not None)
        data.is_valid(raise_exception=True)
        changes = _first_channel(policy_changes(data.validated_data), base)
        policy = guard_policy_build(tenant=request.tenant, values=changes, policy=base)
        preview = guard_policy_preview(tenant=request.tenant, policy=policy,
                                       now=datetime.now(timezone.utc))
        return Response(PreviewOut(preview).data)


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
        policy = self._get(request, policy_id)
        data = PolicySerializer(policy, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        changes = _first_channel(policy_changes(data.validated_data), policy)
        return Response(PolicySerializer(guard_policy_update(policy=policy, **changes)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, policy_id: int):
        guard_policy_delete(policy=self._get(request, policy_id))
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


class RecommendationOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["DOWNGRADE_MODEL", "ADD_OVERAGE_SURCHARGE",
                                            "MOVE_TO_PLAN", "RENEGOTIATE"])
    text = serializers.CharField()
    figures = serializers.DictField(help_text="The figures that triggered the rule.")


class ActionOut(_GuardFigures):
    recommendations = serializers.SerializerMethodField()
    fromLevel = serializers.SerializerMethodField()
    toLevel = serializers.SerializerMethodField()
    eventsEvaluated = serializers.IntegerField(source="events_evaluated")
    unknownEvents = serializers.IntegerField(source="unknown_events")

    class Meta:
        model = GuardAction
        fields = ["id", "customerId", "productId", "fromLevel", "toLevel", "mode", "marginPct",
                  "costUsd", "revenueUsd", "eventsEvaluated", "unknownEvents", "reason",
                  "recommendations", "actor", "at"]

    @extend_schema_field(RecommendationOut(many=True))
    def get_recommendations(self, obj) -> list:
        """Recommended actions, the first is the one (margin_guard/recommendations.py)."""
        return [recommendation_out(r) for r in obj.recommendations or []]

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
    token = access.token
    if token is not None and access.tenant.pk == token.tenant_id:
        read_at = token_read_at(token.token_hash)
        if read_at is not None:  # the door answers this token's next calls itself
            token_hold(token.token_hash, token, access.tenant.slug, read_at)
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


class _RefusedOut(serializers.Serializer):
    calls = serializers.IntegerField()
    estimatedSavingsUsd = MoneyField()
    estimate = serializers.BooleanField()
    method = serializers.CharField()


class _LeverOut(serializers.Serializer):
    lever = serializers.ChoiceField(choices=["MODEL_SWITCH", "RATE_LIMIT", "BLOCK"])
    recoveredUsd = MoneyField()
    perHourUsd = MoneyField()
    calls = serializers.IntegerField()
    estimate = serializers.BooleanField()


class _RoiOut(serializers.Serializer):
    productCostUsd = MoneyField(allow_null=True, help_text="What Aforo costs the tenant over "
                                                           "the window (its monthly cost, "
                                                           "prorated).")
    roiMultiple = PctField(max_digits=30, allow_null=True,
                           help_text="Recovered ÷ product cost; null without the setting.")


class _WindowMarginOut(serializers.Serializer):
    # `from`, a Python keyword, is added below
    to = serializers.DateTimeField()
    marginPct = PctField(max_digits=20, allow_null=True)
    cogsUsd = MoneyField(max_digits=38)
    revenueUsd = MoneyField(max_digits=38)
    events = serializers.IntegerField()


_WindowMarginOut._declared_fields["from"] = serializers.DateTimeField()


class _AccountOut(serializers.Serializer):
    customerId = serializers.CharField()
    productId = serializers.CharField()
    firstInterventionAt = serializers.DateTimeField()
    level = serializers.CharField()
    before = _WindowMarginOut()
    after = _WindowMarginOut()


class ImpactOut(serializers.Serializer):
    # `from`, a Python keyword, is added below
    to = serializers.DateField(allow_null=True)
    windowStart = serializers.DateTimeField()
    windowEnd = serializers.DateTimeField()
    hours = PctField(max_digits=20)
    netRecoveredUsd = MoneyField()
    netRecoveredPerHourUsd = MoneyField()
    levers = _LeverOut(many=True)
    throttled = _ThrottledOut()
    rateLimited = _RefusedOut()
    blocked = _RefusedOut()
    roi = _RoiOut()
    accounts = _AccountOut(many=True)


ImpactOut._declared_fields["from"] = serializers.DateField(allow_null=True)


class Impact(APIView):
    """Net profit recovered over `from`–`to` (default the last 30 days), or the last
    `lastHours` hours, by lever, with its method, the ROI and the at-risk accounts' margins
    before and after their first intervention."""

    @extend_schema(responses=ImpactOut, parameters=[
        *PERIOD_PARAMETERS,
        OpenApiParameter("lastHours", int, description="The last N hours (1–2160) instead of "
                                                       "from–to.")])
    def get(self, request):
        hours = request.query_params.get("lastHours")
        if hours not in (None, ""):
            try:
                hours = int(hours)
            except ValueError:
                raise ApiError("lastHours must be a whole number of hours.",
                               field="lastHours") from None
            if not 1 <= hours <= MAX_IMPACT_HOURS:
                raise ApiError(f"lastHours must be between 1 and {MAX_IMPACT_HOURS}.",
                               field="lastHours")
            end = datetime.now(timezone.utc)
            report = impact_report(tenant=request.tenant, start=end - timedelta(hours=hours),
                                   end=end)
            return Response({"from": None, "to": None, **report.as_json()})
        # the same from/to rules as every COGS read (defaults, validation, the tenant's days)
        period = period_from_request(request, cogs_settings_get(tenant=request.tenant))
        report = impact_report(tenant=request.tenant, start=period.start_at, end=period.end_at)
        return Response({"from": period.first, "to": period.last, **report.as_json()})


class GuardSettingsIn(serializers.Serializer):
    productCostUsdPerMonth = MoneyField(allow_null=True, min_value=0, max_digits=20,
                                        help_text="What Aforo costs the tenant a month (the "
                                                  "impact report's ROI).")


class GuardSettingsView(APIView):
    """GET/PATCH /api/v1/margin-guard/settings (writes: OWNER, ADMIN)."""

    permission_classes = [GuardPermission]

    @extend_schema(responses=GuardSettingsIn, operation_id="guard_settings_get")
    def get(self, request):
        return Response({"productCostUsdPerMonth": guard_settings_get(
            tenant=request.tenant).product_cost_usd_per_month})

    @extend_schema(request=GuardSettingsIn, responses=GuardSettingsIn)
    def patch(self, request):
        data = GuardSettingsIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        found = guard_settings_update(
            tenant=request.tenant,
            product_cost_usd_per_month=values.get("productCostUsdPerMonth"))
        return Response({"productCostUsdPerMonth": found.product_cost_usd_per_month})


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


class SlackInteractionIn(serializers.Serializer):
    payload = serializers.CharField(help_text="Slack's block_actions payload, as JSON.")


class SlackInteractionOut(serializers.Serializer):
    overridden = serializers.BooleanField()
    message = serializers.CharField(allow_blank=True)


class SlackInteractions(APIView):
    """POST /api/v1/margin-guard/slack/interactions: the Slack app's Interactivity Request URL.
    Slack signs each request (X-Slack-Signature, v0 HMAC with the app's signing secret over
    the timestamp and the raw body); an unsigned, mis-signed or stale request is a 401 and
    does nothing. “Override throttle” by a Slack member linked to an OWNER or ADMIN applies an
    audited override for the policy's override duration and updates the message; anyone else
    gets a reply saying no."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes = [FormParser]

    @extend_schema(request={"application/x-www-form-urlencoded": SlackInteractionIn},
                   responses={200: SlackInteractionOut, 401: None}, auth=[],
                   parameters=[OpenApiParameter("X-Slack-Signature", str,
                                                OpenApiParameter.HEADER, required=True),
                               OpenApiParameter("X-Slack-Request-Timestamp", str,
                                                OpenApiParameter.HEADER, required=True)])
    def post(self, request):
        body = request.body  # the raw bytes Slack signed, before the form is parsed
        slack_request_verify(body=body, now=time.time(),
                             timestamp=request.headers.get("X-Slack-Request-Timestamp", ""),
                             signature=request.headers.get("X-Slack-Signature", ""))
        data = SlackInteractionIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            payload = json.loads(data.validated_data["payload"])
        except ValueError:
            raise ApiError("payload is not JSON.", field="payload") from None
        if not isinstance(payload, dict):
            raise ApiError("payload is not a Slack interaction.", field="payload")
        outcome = guard_slack_interaction(payload=payload, now=datetime.now(timezone.utc))
        return Response({"overridden": outcome.overridden, "message": outcome.message})
