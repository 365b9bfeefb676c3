"""Usage analytics API (API.md, "Export, usage and agent analytics"): usage by billable unit,
by customer and by product type, mounted at /api/v1/analytics/usage/."""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.money import pct
from aforo.pagination import int_param
from aforo.periods import Period, api_period_parse
from aforo.permissions import CanRead
from aforo.renderers import ExactJSONRenderer
from cogs.api import PERIOD_PARAMETERS, limit_param
from cogs.margins import HUNDRED
from cogs.queries.usage import (
    GroupUsage,
    Unit,
    usage_by_billable_unit,
    usage_by_customer,
    usage_by_product_type,
)

MAX_TOP = 100


def period_of(request) -> Period:
    return api_period_parse(request.query_params.get("from"), request.query_params.get("to"),
                            time_zone=request.tenant.time_zone)


def _top(request) -> int:
    return int_param(request.query_params, "top", default=5, low=1, high=MAX_TOP)


_UNITS = tuple((unit, unit.value) for unit in Unit)


def _units(row: GroupUsage) -> dict:
    return {name: row.quantities[unit] for unit, name in _UNITS}


class _Read(APIView):
    permission_classes = [CanRead]
    renderer_classes = [ExactJSONRenderer]


class TopCustomerSchema(serializers.Serializer):
    customerId = serializers.CharField()
    quantity = serializers.IntegerField()
    sharePct = serializers.DecimalField(max_digits=7, decimal_places=2, coerce_to_string=False,
                                        help_text="Of the unit's total")


class DailyQuantitySchema(serializers.Serializer):
    date = serializers.DateField()
    quantity = serializers.IntegerField()


class UnitUsageSchema(serializers.Serializer):
    unit = serializers.ChoiceField(choices=[u.value for u in Unit])
    total = serializers.IntegerField()
    topCustomers = TopCustomerSchema(many=True)
    daily = DailyQuantitySchema(many=True, help_text="Every day of the period, in order")


class UnitsSchema(serializers.Serializer):
    EVENTS = serializers.IntegerField()
    INPUT_TOKENS = serializers.IntegerField()
    OUTPUT_TOKENS = serializers.IntegerField()
    TOOL_CALLS = serializers.IntegerField()
    REASONING_STEPS = serializers.IntegerField()


class CustomerUsageSchema(serializers.Serializer):
    customerId = serializers.CharField()
    units = UnitsSchema()


class ProductTypeUsageSchema(serializers.Serializer):
    productType = serializers.CharField()
    units = UnitsSchema()


class ByBillableUnit(_Read):
    @extend_schema(parameters=[*PERIOD_PARAMETERS, OpenApiParameter(
        "top", OpenApiTypes.INT, description="Top customers per unit (default 5, at most 100)")],
        responses=UnitUsageSchema(many=True), operation_id="usage_by_billable_unit")
    def get(self, request):
        period, top = period_of(request), _top(request)
        return Response([{
            "unit": usage.unit.value, "total": usage.total,
            "topCustomers": [{"customerId": customer, "quantity": quantity,
                              "sharePct": pct(HUNDRED * quantity / usage.total)}
                             for customer, quantity in usage.top_customers],
            "daily": [{"date": day.isoformat(), "quantity": quantity}
                      for day, quantity in usage.daily],
        } for usage in usage_by_billable_unit(request.tenant, period, top=top)])


class ByCustomer(_Read):
    @extend_schema(parameters=[*PERIOD_PARAMETERS, OpenApiParameter(
        "limit", OpenApiTypes.INT, description="Only the first N customers (most events)")],
        responses=CustomerUsageSchema(many=True), operation_id="usage_by_customer")
    def get(self, request):
        period, limit = period_of(request), limit_param(request)
        return Response([{"customerId": row.key, "units": _units(row)}
                         for row in usage_by_customer(request.tenant, period, limit=limit)])


class ByProductType(_Read):
    @extend_schema(parameters=PERIOD_PARAMETERS, responses=ProductTypeUsageSchema(many=True),
                   operation_id="usage_by_product_type")
    def get(self, request):
        period = period_of(request)
        return Response([{"productType": row.key, "units": _units(row)}
                         for row in usage_by_product_type(request.tenant, period)])
