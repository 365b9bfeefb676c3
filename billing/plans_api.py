"""Billing API: rate plans with their components and tiers, and subscriptions (create, read,
update, list, end, change plan) under /api/v1/billing/."""
from __future__ import annotations

from decimal import Decimal

from django.utils.timezone import now as _now  # aware, UTC
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.errors import ApiError
from aforo.models import Customer
from aforo.openapi import ErrorOut
from aforo.pagination import page_of, paged_response
from billing import queries, services
from billing.api import BillingPermission, MomentField
from billing.models import COMPONENT_UNIT, ComponentKind, RatePlan, Subscription
from billing.queries import SubscriptionStatus

# Prices are rates with up to 12 decimals, not money amounts: rendered in full (unquantized;
# the exact renderer writes a Decimal's digits), so what a client wrote reads back the same.
_RATE_IN = {"max_digits": None, "decimal_places": None, "coerce_to_string": False}


# --- shapes -----------------------------------------------------------------------------------

_ERROR_TEXT = {
    400: "Bad input; `error.field` names the field.",
    401: "No token, or a bad one.",
    403: "No tenant header, or the token's role may not do this.",
    404: "No such object in this tenant.",
    409: "The write conflicts with the current state; `error.code` says how.",
}


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: OpenApiResponse(ErrorOut, description=_ERROR_TEXT[code])
            for code in (401, 403, *codes)}


@extend_schema_serializer(component_name="PriceTier")
class TierOut(serializers.Serializer):
    upTo = serializers.DecimalField(source="up_to", **_RATE_IN, allow_null=True,
                                    help_text="Null: no upper limit (the last tier).")
    unitPrice = serializers.DecimalField(source="unit_price", **_RATE_IN)


@extend_schema_serializer(component_name="PriceComponent")
class ComponentOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ComponentKind.choices)
    productId = serializers.SerializerMethodField(help_text="Null: every product.")
    unitPrice = serializers.DecimalField(
        source="unit_price", **_RATE_IN,
        help_text="USD per event / per 1K tokens / per tool call / per reasoning step; the fee "
                  "per period for FLAT_FEE; the percentage for MARKUP_PCT.")
    unit = serializers.SerializerMethodField(
        help_text="The invoice-line unit this component's charge is attributed by.")
    tiers = TierOut(many=True, source="tiers.all")
    ratingEventsPerPeriod = serializers.IntegerField(source="rating_events_per_period",
                                                     allow_null=True)

    def get_productId(self, component) -> str | None:
        return component.product_id or None

    def get_unit(self, component) -> str:
        return str(COMPONENT_UNIT[component.kind])


@extend_schema_serializer(component_name="RatePlan")
class PlanOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    components = ComponentOut(many=True, source="components.all")
    activeSubscriptions = serializers.IntegerField(source="active_subscriptions",
                                                   help_text="Customers on the plan now.")
    subscriptionCount = serializers.IntegerField(source="subscription_count",
                                                 help_text="Subscriptions ever, ended included.")
    createdAt = serializers.DateTimeField(source="created_at")


@extend_schema_field(serializers.ChoiceField(choices=SubscriptionStatus.ALL))
class _StatusField(serializers.Field):
    """SCHEDULED, ACTIVE or ENDED at the time of the request."""

    def __init__(self, **kwargs) -> None:
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, subscription) -> str:
        return queries.subscription_status(subscription, self.context.get("now") or _now())


@extend_schema_serializer(component_name="Subscription")
class SubscriptionOut(serializers.Serializer):
    id = serializers.IntegerField()
    customerId = serializers.CharField(source="customer.external_id")
    planCode = serializers.CharField(source="plan.code")
    startsAt = serializers.DateTimeField(source="starts_at")
    endsAt = serializers.DateTimeField(source="ends_at", allow_null=True,
                                       help_text="Exclusive; null: open-ended.")
    status = _StatusField()
    createdAt = serializers.DateTimeField(source="created_at")


@extend_schema_serializer(component_name="PriceTierInput")
class TierIn(serializers.Serializer):
    upTo = serializers.DecimalField(**_RATE_IN, allow_null=True, required=False, default=None,
                                    help_text="Up to this many units; null on the last tier.")
    unitPrice = serializers.DecimalField(**_RATE_IN)


@extend_schema_serializer(component_name="PriceComponentInput")
class ComponentIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ComponentKind.choices)
    productId = serializers.CharField(max_length=200, required=False, allow_null=True,
                                      allow_blank=True, default="",
                                      help_text="A product's id; null or absent: every product.")
    unitPrice = serializers.DecimalField(**_RATE_IN, required=False, default=Decimal(0))
    tiers = TierIn(many=True, required=False, default=list, max_length=100,
                   help_text="Volume tiers, ascending; they replace unitPrice: the period's "
                             "whole quantity is priced at the tier its total reaches.")
    ratingEventsPerPeriod = serializers.IntegerField(
        min_value=1, required=False, allow_null=True, default=None,
        help_text="FLAT_FEE only: events per period assumed at ingest to spread the fee over "
                  "rated revenue; null leaves the fee out of rated revenue.")


def _specs(components: list[dict]) -> list[services.ComponentSpec]:
    return [services.ComponentSpec(
        kind=c["kind"], unit_price=c["unitPrice"], product_id=c.get("productId") or "",
        tiers=[(t.get("upTo"), t["unitPrice"]) for t in c["tiers"]],
        rating_events_per_period=c.get("ratingEventsPerPeriod")) for c in components]


def _plan(request, code: str) -> RatePlan:
    plan = queries.plans_listed(request.tenant, now=_now()).filter(code=code).first()
    if plan is None:
        raise ApiError("No such plan.", code="not_found", status_code=404)
    return plan


def _plan_out(plan: RatePlan) -> dict:
    """The plan as stored now, with fresh counts and components (after a write)."""
    fresh = queries.plans_listed(plan.tenant, now=_now()).get(pk=plan.pk)
    return PlanOut(fresh).data


def _valid(serializer: type[serializers.Serializer], request, *,
           fixed: tuple[str, str] | None = None) -> dict:
    """The request body's values as `serializer` validates them (400 otherwise); `fixed`, a
    field that cannot change and why, is refused first."""
    if fixed:
        _refuse(request, *fixed)
    data = serializer(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


def _refuse(request, name: str, message: str) -> None:
    if isinstance(request.data, dict) and name in request.data:
        raise ApiError(message, field=name)


class PlanListCreate(APIView):
    permission_classes = [BillingPermission]

    @extend_schema_serializer(component_name="RatePlanCreate")
    class Input(serializers.Serializer):
        code = serializers.CharField(max_length=100,
                                     help_text="The plan's id in this tenant (letters, digits, "
                                               ". _ -); it cannot change later.")
        name = serializers.CharField(max_length=200, required=False, allow_blank=True,
                                     default="")
        components = ComponentIn(many=True, required=False, default=list, max_length=100)

    @extend_schema(responses={200: page_of(PlanOut), **_errors(400)},
                   operation_id="billing_plans_list")
    def get(self, request):
        return paged_response(request, queries.plans_listed(request.tenant, now=_now()), PlanOut)

    @extend_schema(request=Input, responses={201: PlanOut, **_errors(400, 409)},
                   operation_id="billing_plans_create")
    def post(self, request):
        values = _valid(self.Input, request)
        plan = services.rate_plan_create(tenant=request.tenant, code=values["code"],
                                         name=values["name"],
                                         components=_specs(values["components"]))
        return Response(_plan_out(plan), status=status.HTTP_201_CREATED)


class PlanDetail(APIView):
    permission_classes = [BillingPermission]

    @extend_schema_serializer(component_name="RatePlanUpdate")
    class Input(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False, allow_blank=True)
        components = ComponentIn(many=True, required=False, max_length=100,
                                 help_text="When given, the plan's whole new component list.")

    @extend_schema(responses={200: PlanOut, **_errors(404)},
                   operation_id="billing_plans_retrieve")
    def get(self, request, code: str):
        return Response(PlanOut(_plan(request, code)).data)

    @extend_schema(request=Input, responses={200: PlanOut, **_errors(400, 404)},
                   operation_id="billing_plans_update",
                   description="Rename the plan and/or replace its components. Events ingested "
                               "from now on are rated by the new prices; events already "
                               "ingested keep their rated revenue until the period's invoice "
                               "settles them (docs/billing.md).")
    def patch(self, request, code: str):
        plan = _plan(request, code)
        values = _valid(self.Input, request, fixed=(
            "code", "A plan's code cannot change; create a new plan and move its customers to "
                    "it."))
        components = values.get("components")
        plan = services.rate_plan_update(
            plan=plan, name=values.get("name"),
            components=None if components is None else _specs(components))
        return Response(_plan_out(plan))

    @extend_schema(responses={204: None, **_errors(404, 409)},
                   operation_id="billing_plans_destroy",
                   description="Only a plan no customer has been on; otherwise 409 plan_in_use.")
    def delete(self, request, code: str):
        services.rate_plan_delete(plan=_plan(request, code))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- subscriptions ----------------------------------------------------------------------------

def _subscription(request, subscription_id: int) -> Subscription:
    found = (Subscription.objects.filter(tenant=request.tenant, pk=subscription_id)
             .select_related("customer", "plan", "tenant").first())
    if found is None:
        raise ApiError("No such subscription.", code="not_found", status_code=404)
    return found


def _plan_named(request, code: str, field: str = "planCode") -> RatePlan:
    plan = RatePlan.objects.filter(tenant=request.tenant, code=code).first()
    if plan is None:
        raise ApiError(f"No plan {code!r} in this tenant.", field=field)
    return plan


def _out(subscription: Subscription, status_code: int = 200) -> Response:
    return Response(SubscriptionOut(subscription).data, status=status_code)


class SubscriptionListCreate(APIView):
    permission_classes = [BillingPermission]

    @extend_schema_serializer(component_name="SubscriptionCreate")
    class Input(serializers.Serializer):
        customerId = serializers.CharField(max_length=200)
        planCode = serializers.CharField(max_length=100)
        startsAt = MomentField(required=False, help_text="Default: now. A date is its midnight "
                                                         "UTC.")
        endsAt = MomentField(required=False, allow_null=True, default=None,
                             help_text="Exclusive; null or absent: open-ended.")

    @extend_schema(
        parameters=[
            OpenApiParameter("customerId", str, description="Only this customer's."),
            OpenApiParameter("planCode", str, description="Only this plan's."),
            OpenApiParameter("status", str, enum=list(SubscriptionStatus.ALL)),
        ],
        responses={200: page_of(SubscriptionOut), **_errors(400)},
        operation_id="billing_subscriptions_list")
    def get(self, request):
        chosen = request.query_params.get("status") or None
        if chosen is not None and chosen not in SubscriptionStatus.ALL:
            raise ApiError(f"status must be one of {', '.join(SubscriptionStatus.ALL)}.",
                           field="status")
        found = queries.subscriptions_listed(
            request.tenant, now=_now(), customer_id=request.query_params.get("customerId"),
            plan_code=request.query_params.get("planCode"), status=chosen)
        return paged_response(request, found, SubscriptionOut)

    @extend_schema(request=Input, responses={201: SubscriptionOut, **_errors(400, 409)},
                   operation_id="billing_subscriptions_create",
                   description="A customer is on one plan at a time: a term overlapping "
                               "another of the customer's is refused with 409 "
                               "subscription_overlap.")
    def post(self, request):
        values = _valid(self.Input, request)
        customer = Customer.objects.filter(tenant=request.tenant,
                                           external_id=values["customerId"]).first()
        if customer is None:
            raise ApiError(f"No customer {values['customerId']!r} in this tenant; create it "
                           "(POST /api/v1/customers) or send its events first.",
                           field="customerId")
        subscription = services.subscription_create(
            tenant=request.tenant, customer=customer, plan=_plan_named(request,
                                                                       values["planCode"]),
            starts_at=values.get("startsAt") or _now(), ends_at=values.get("endsAt"))
        return _out(subscription, status.HTTP_201_CREATED)


class SubscriptionDetail(APIView):
    permission_classes = [BillingPermission]

    @extend_schema_serializer(component_name="SubscriptionUpdate")
    class Input(serializers.Serializer):
        planCode = serializers.CharField(max_length=100, required=False)
        startsAt = MomentField(required=False)
        endsAt = MomentField(required=False, allow_null=True,
                             help_text="Null makes the subscription open-ended again.")

    @extend_schema(responses={200: SubscriptionOut, **_errors(404)},
                   operation_id="billing_subscriptions_retrieve")
    def get(self, request, subscription_id: int):
        return _out(_subscription(request, subscription_id))

    @extend_schema(request=Input, responses={200: SubscriptionOut, **_errors(400, 404, 409)},
                   operation_id="billing_subscriptions_update",
                   description="Correct a subscription's plan or term. To move a customer to "
                               "another plan from a moment on, use change-plan instead.")
    def patch(self, request, subscription_id: int):
        subscription = _subscription(request, subscription_id)
        values = _valid(self.Input, request, fixed=(
            "customerId", "A subscription's customer cannot change; end it and subscribe the "
                          "other customer."))
        changes = {}
        if "planCode" in values:
            changes["plan"] = _plan_named(request, values["planCode"])
        if "startsAt" in values:
            changes["starts_at"] = values["startsAt"]
        if "endsAt" in values:
            changes["ends_at"] = values["endsAt"]
        return _out(services.subscription_update(subscription=subscription, **changes))

    @extend_schema(responses={204: None, **_errors(404, 409)},
                   operation_id="billing_subscriptions_destroy",
                   description="Only a subscription that has not started (409 otherwise: end "
                               "it instead).")
    def delete(self, request, subscription_id: int):
        services.subscription_delete(subscription=_subscription(request, subscription_id),
                                     now=_now())
        return Response(status=status.HTTP_204_NO_CONTENT)


class SubscriptionEnd(APIView):
    permission_classes = [BillingPermission]

    @extend_schema_serializer(component_name="SubscriptionEnd")
    class Input(serializers.Serializer):
        endsAt = MomentField(required=False, help_text="Default: now.")

    @extend_schema(request=Input, responses={200: SubscriptionOut, **_errors(400, 404, 409)},
                   operation_id="billing_subscriptions_end")
    def post(self, request, subscription_id: int):
        subscription = _subscription(request, subscription_id)
        data = self.Input(data=request.data or {})
        data.is_valid(raise_exception=True)
        return _out(services.subscription_end(
            subscription=subscription, at=data.validated_data.get("endsAt") or _now()))


class SubscriptionChangePlan(APIView):
    permission_classes = [BillingPermission]

    @extend_schema_serializer(component_name="SubscriptionChangePlan")
    class Input(serializers.Serializer):
        planCode = serializers.CharField(max_length=100)
        at = MomentField(required=False, help_text="Default: now.")

    @extend_schema(request=Input, responses={201: SubscriptionOut, **_errors(400, 404, 409)},
                   operation_id="billing_subscriptions_change_plan",
                   description="End this subscription at `at` and start one on `planCode` "
                               "there (keeping this one's end), in one step; answers the new "
                               "subscription.")
    def post(self, request, subscription_id: int):
        subscription = _subscription(request, subscription_id)
        values = _valid(self.Input, request)
        successor = services.subscription_change_plan(
            subscription=subscription, plan=_plan_named(request, values["planCode"]),
            at=values.get("at") or _now())
        return _out(successor, status.HTTP_201_CREATED)
