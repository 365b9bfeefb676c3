"""COGS & Margins API: the ten dashboard reads and the tenant's COGS settings."""
from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.money import CENT, MICRO, MoneyField, PctField, pct, rate, usd
from aforo.pagination import PAGE_PARAMETERS, envelope, int_param, page_of, page_request
from aforo.periods import Period, api_period_parse
from aforo.permissions import BILLING_ROLES, CanRead, ReadOrWrite
from aforo.renderers import ExactJSONRenderer
from cogs import queries, services
from cogs.margins import ZERO
from cogs.models import CogsSettings
from cogs.queries import Totals, Transaction

MAX_LIMIT = 100_000
PCT = CENT
MONEY = MICRO


# --- rendering: exact Decimals inside and out ---------------------------------------------
# The API renders with ExactJSONRenderer (aforo.money.json_bytes), which writes a Decimal's
# digits as a JSON number: figures are rounded here (half-even) and never pass through float.
money = usd


def _margin_fields(totals: Totals, margin_pct: Decimal | None = None) -> dict:
    cogs = totals.cogs_usd
    margin = totals.revenue_usd - cogs
    if margin_pct is None:
        margin_pct = queries.margin_pct(totals.revenue_usd, cogs)
    return {"cogsUsd": money(cogs), "revenueUsd": money(totals.revenue_usd),
            "marginUsd": money(margin), "marginPct": pct(margin_pct),
            "eventCount": totals.event_count, **expected_fields(totals)}


def expected_fields(totals) -> dict:
    """API.md's expected-revenue fields of a row (Totals, a customer row, an agent's figures)."""
    return {"settlingRevenueUsd": money(totals.settling_revenue_usd),
            "expectedRevenueUsd": money(totals.expected_revenue_usd),
            "expectedMarginUsd": money(totals.expected_margin_usd),
            "expectedMarginPct": pct(totals.expected_margin_pct)}


def revenue_sources(totals: Totals) -> dict:
    return {"attributedUsd": money(totals.revenue_usd), "carriedUsd": money(totals.carried_usd),
            "ratedUsd": money(totals.rated_usd), "estimatedUsd": money(totals.estimated_usd),
            "unknownEvents": totals.unknown_events}


def product_row(totals: Totals) -> dict:
    return {"productId": totals.key[0],
            "productType": (totals.attributes or {}).get("product_type", ""),
            "aiCogsUsd": money(totals.ai_cogs_usd), **_margin_fields(totals)}


def customer_rows(rows: list[queries.CustomerRow]) -> list[dict]:
    # One loop with its constants local: /by-customer renders 10k of these per request.
    out = []
    append, half_even = out.append, ROUND_HALF_EVEN
    money_, pct_, hundred = MONEY, PCT, queries.HUNDRED
    zero = ZERO.quantize(money_)
    for customer_id, event_count, cogs, revenue, tag, settling, _unknown in rows:
        margin = revenue - cogs
        revenue_out = revenue.quantize(money_, half_even)
        margin_out = margin.quantize(money_, half_even)
        margin_pct = (margin / revenue * hundred).quantize(pct_, half_even) if revenue else None
        if settling:
            expected = revenue + settling
            expected_margin = expected - cogs
            settling_out = settling.quantize(money_, half_even)
            expected_out = expected.quantize(money_, half_even)
            expected_margin_out = expected_margin.quantize(money_, half_even)
            expected_pct = (expected_margin / expected * hundred).quantize(
                pct_, half_even) if expected else None
        else:  # nothing settling (a closed period): the expectation is what was attributed
            settling_out, expected_out = zero, revenue_out
            expected_margin_out, expected_pct = margin_out, margin_pct
        append({
            "customerId": customer_id,
            "cogsUsd": cogs.quantize(money_, half_even),
            "revenueUsd": revenue_out,
            "marginUsd": margin_out,
            "marginPct": margin_pct,
            "eventCount": event_count,
            "tag": tag,  # a CustomerTag (a str enum: written as its value) or None
            "settlingRevenueUsd": settling_out,
            "expectedRevenueUsd": expected_out,
            "expectedMarginUsd": expected_margin_out,
            "expectedMarginPct": expected_pct,
        })
    return out


def limit_param(request) -> int | None:
    """Optional `limit`: only the first N rows of a ranked list (all when absent)."""
    return int_param(request.query_params, "limit", default=None, low=1, high=MAX_LIMIT)


def transaction_row(event: Transaction) -> dict:
    return {
        "eventId": event.event_id,
        "occurredAt": event.occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "customerId": event.customer_id,
        "productId": event.product_id,
        "productType": event.product_type,
        "provider": event.provider,
        "model": event.model,
        "toolName": event.tool_name or None,
        "sourceType": event.source_type,
        "cogsUsd": money(event.cogs_usd),
        "revenueUsd": money(event.revenue_usd),
        "marginUsd": money(event.margin_usd),
        "marginPct": pct(event.margin_pct),
        "aiCogsUsd": money(event.ai_cogs_usd),
        "infraCogsUsd": money(event.infra_cogs_usd),
        "feeCogsUsd": money(event.fee_cogs_usd),
        "unclassifiedCogsUsd": money(event.unclassified_cogs_usd),
        "inputTokens": event.input_tokens,
        "outputTokens": event.output_tokens,
        "totalTokens": event.input_tokens + event.output_tokens,
        "revenueStatus": "SETTLED" if event.settled else "SETTLING",
        "revenueSource": event.revenue_source,
        "expectedRevenueUsd": money(event.expected_revenue_usd),
        # only on an event that burnt prepaid credits (entitlements)
        **({"creditsDebited": event.credits_debited}
           if event.credits_debited is not None else {}),
    }


# --- response shapes, for the OpenAPI schema (rendering builds dicts directly, for speed) --

class TransactionRowSchema(serializers.Serializer):
    eventId = serializers.CharField()
    occurredAt = serializers.DateTimeField()
    customerId = serializers.CharField()
    productId = serializers.CharField()
    productType = serializers.CharField()
    provider = serializers.CharField()
    model = serializers.CharField()
    toolName = serializers.CharField(allow_null=True)
    sourceType = serializers.CharField()
    cogsUsd = MoneyField()
    revenueUsd = MoneyField()
    marginUsd = MoneyField()
    marginPct = PctField(allow_null=True)
    aiCogsUsd = MoneyField()
    infraCogsUsd = MoneyField()
    feeCogsUsd = MoneyField()
    unclassifiedCogsUsd = MoneyField(required=False)
    inputTokens = serializers.IntegerField(required=False)
    outputTokens = serializers.IntegerField(required=False)
    totalTokens = serializers.IntegerField(required=False)
    revenueStatus = serializers.ChoiceField(choices=["SETTLED", "SETTLING"], required=False)
    revenueSource = serializers.ChoiceField(choices=[s.value for s in queries.RevenueSource],
                                            required=False)
    expectedRevenueUsd = MoneyField(required=False)
    creditsDebited = serializers.DecimalField(
        max_digits=38, decimal_places=9, coerce_to_string=False, required=False,
        help_text="Prepaid credits the event burnt; absent when it burnt none.")


TransactionPageSchema = page_of(TransactionRowSchema)


class AnomalyRowSchema(TransactionRowSchema):
    averageCogsUsd = MoneyField()
    ratio = PctField(allow_null=True)
    groupEventCount = serializers.IntegerField()


AnomalyPageSchema = page_of(AnomalyRowSchema)


class CostCompositionSchema(serializers.Serializer):
    aiCogsUsd = MoneyField()
    infraCogsUsd = MoneyField()
    feeCogsUsd = MoneyField()
    unclassifiedUsd = MoneyField()
    totalCogsUsd = MoneyField()


class _ExpectedSchema(serializers.Serializer):
    settlingRevenueUsd = MoneyField(help_text="Expected revenue of events not yet attributed")
    expectedRevenueUsd = MoneyField(help_text="Attributed + settling")
    expectedMarginUsd = MoneyField()
    expectedMarginPct = PctField(allow_null=True)


class RevenueSourcesSchema(serializers.Serializer):
    attributedUsd = MoneyField()
    carriedUsd = MoneyField()
    ratedUsd = MoneyField()
    estimatedUsd = MoneyField()
    unknownEvents = serializers.IntegerField(help_text="Events with no revenue source at all")


class _MarginRowSchema(_ExpectedSchema):
    cogsUsd = MoneyField()
    revenueUsd = MoneyField(help_text="Attributed revenue")
    marginUsd = MoneyField()
    marginPct = PctField(allow_null=True, help_text="Null where revenue is zero")
    eventCount = serializers.IntegerField()


class ProductRowSchema(_MarginRowSchema):
    productId = serializers.CharField()
    productType = serializers.CharField()
    aiCogsUsd = MoneyField(help_text="The AI-inference slice of cogsUsd")


class CustomerRowSchema(_MarginRowSchema):
    customerId = serializers.CharField()
    tag = serializers.ChoiceField(choices=["HIGH_VALUE", "STANDARD", "AT_RISK", "UNPROFITABLE"],
                                  allow_null=True)


class ModelRowSchema(_ExpectedSchema):
    provider = serializers.CharField()
    model = serializers.CharField()
    inputTokens = serializers.IntegerField()
    outputTokens = serializers.IntegerField()
    totalTokens = serializers.IntegerField()
    cogsUsd = MoneyField()
    aiCogsUsd = MoneyField()
    revenueUsd = MoneyField(help_text="Attributed revenue of the model's events")
    marginUsd = MoneyField()
    marginPct = PctField(allow_null=True, help_text="Null where revenue is zero")
    avgCostPer1kUsd = MoneyField(allow_null=True)
    inputRatePer1k = MoneyField(allow_null=True, places_out=9,
                                help_text="From the rate card at the period's end")
    outputRatePer1k = MoneyField(allow_null=True, places_out=9)
    eventCount = serializers.IntegerField()


class TrendRowSchema(_ExpectedSchema):
    date = serializers.DateField()
    cogsUsd = MoneyField()
    revenueUsd = MoneyField()
    marginPct = PctField(allow_null=True)


class TokenAnalysisSchema(serializers.Serializer):
    totalTokens = serializers.IntegerField()
    inputTokens = serializers.IntegerField()
    outputTokens = serializers.IntegerField()
    avgCostPer1kTokensUsd = MoneyField(allow_null=True)


class UnitEconomicsSchema(serializers.Serializer):
    avgCostPerEventUsd = MoneyField(allow_null=True)
    avgRevenuePerEventUsd = MoneyField(allow_null=True)
    avgMarginPerEventUsd = MoneyField(allow_null=True)
    breakEvenEvents = serializers.IntegerField(allow_null=True)


class PnlSchema(serializers.Serializer):
    unitEconomics = UnitEconomicsSchema()
    products = ProductRowSchema(many=True)
    customers = CustomerRowSchema(many=True)


class DashboardSchema(_ExpectedSchema):
    totalCogsUsd = MoneyField()
    revenueUsd = MoneyField()
    grossMarginPct = PctField(allow_null=True)
    costPerEventUsd = MoneyField(allow_null=True)
    aiModelSpendUsd = MoneyField()
    activeProducts = serializers.IntegerField()
    eventCount = serializers.IntegerField()
    revenueSources = RevenueSourcesSchema()


# --- request parsing ----------------------------------------------------------------------

def period_from_request(request, settings: CogsSettings) -> Period:
    """from/to (inclusive calendar days in the tenant's time zone); default the last 30 days."""
    return api_period_parse(request.query_params.get("from"), request.query_params.get("to"),
                            time_zone=settings.time_zone)


def _optional(request, name: str) -> str | None:
    value = request.query_params.get(name)
    return value if value not in (None, "") else None


PERIOD_PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATE, description="First day (default: 29 days ago)"),
    OpenApiParameter("to", OpenApiTypes.DATE, description="Last day, included (default: today)"),
]
class _DashboardView(APIView):
    permission_classes = [CanRead]
    renderer_classes = [ExactJSONRenderer]

    def settings_and_period(self, request) -> tuple[CogsSettings, Period]:
        settings = services.cogs_settings_get(tenant=request.tenant)
        return settings, period_from_request(request, settings)

    def period_totals(self, request) -> queries.Totals:
        """The overview's totals over the requested period."""
        _settings, period = self.settings_and_period(request)
        return queries.overview(request.tenant, period).totals


def _floors(settings: CogsSettings) -> queries.TagFloors:
    return queries.TagFloors(at_risk_pct=settings.at_risk_floor_pct,
                             high_value_pct=settings.high_value_floor_pct)


# --- the ten reads ------------------------------------------------------------------------

class Dashboard(_DashboardView):
    @extend_schema(parameters=PERIOD_PARAMETERS, responses=DashboardSchema,
                   operation_id="cogs_dashboard", examples=[OpenApiExample(
                       "A month", response_only=True, value={
                           "totalCogsUsd": 1843.27, "revenueUsd": 5120.0,
                           "grossMarginPct": 64.0, "costPerEventUsd": 0.0184,
                           "aiModelSpendUsd": 1502.11, "activeProducts": 7,
                           "eventCount": 100183, "settlingRevenueUsd": 410.5,
                           "expectedRevenueUsd": 5530.5, "expectedMarginUsd": 3687.23,
                           "expectedMarginPct": 66.67, "revenueSources": {
                               "attributedUsd": 5120.0, "carriedUsd": 120.5,
                               "ratedUsd": 250.0, "estimatedUsd": 40.0,
                               "unknownEvents": 12}})])
    def get(self, request):
        _settings, period = self.settings_and_period(request)
        headline = queries.overview(request.tenant, period, estimate=True)
        totals = headline.totals
        return Response({
            "totalCogsUsd": money(totals.cogs_usd),
            "revenueUsd": money(totals.revenue_usd),
            "grossMarginPct": pct(totals.margin_pct),
            "costPerEventUsd": money(headline.cost_per_event_usd),
            "aiModelSpendUsd": money(totals.ai_cogs_usd),
            "activeProducts": headline.active_products,
            "eventCount": totals.event_count,
            **expected_fields(totals),
            "revenueSources": revenue_sources(totals),
        })


class Trends(_DashboardView):
    @extend_schema(parameters=PERIOD_PARAMETERS, responses=TrendRowSchema(many=True))
    def get(self, request):
        _settings, period = self.settings_and_period(request)
        return Response([
            {"date": day.key[0].isoformat(), "cogsUsd": money(day.cogs_usd),
             "revenueUsd": money(day.revenue_usd), "marginPct": pct(day.margin_pct),
             **expected_fields(day)}
            for day in queries.daily_series(request.tenant, period, estimate=True)
        ])


class CostComposition(_DashboardView):
    @extend_schema(parameters=PERIOD_PARAMETERS, responses=CostCompositionSchema)
    def get(self, request):
        totals = self.period_totals(request)
        return Response({
            "aiCogsUsd": money(totals.ai_cogs_usd),
            "infraCogsUsd": money(totals.infra_cogs_usd),
            "feeCogsUsd": money(totals.fee_cogs_usd),
            "unclassifiedUsd": money(totals.unclassified_cogs_usd),
            "totalCogsUsd": money(totals.cogs_usd),
        })


class ByProduct(_DashboardView):
    @extend_schema(parameters=PERIOD_PARAMETERS, responses=ProductRowSchema(many=True))
    def get(self, request):
        _settings, period = self.settings_and_period(request)
        return Response([product_row(row) for row in queries.products_breakdown(
            request.tenant, period, estimate=True)])


LIMIT_PARAMETER = OpenApiParameter(
    "limit", OpenApiTypes.INT, description="Only the first N customers of the ranking")


class ByCustomer(_DashboardView):
    @extend_schema(parameters=[*PERIOD_PARAMETERS, LIMIT_PARAMETER],
                   responses=CustomerRowSchema(many=True))
    def get(self, request):
        settings, period = self.settings_and_period(request)
        limit = limit_param(request)
        return Response(customer_rows(queries.customer_ledger(
            request.tenant, period, _floors(settings), limit=limit)))


class ByModel(_DashboardView):
    @extend_schema(parameters=PERIOD_PARAMETERS, responses=ModelRowSchema(many=True))
    def get(self, request):
        _settings, period = self.settings_and_period(request)
        return Response([
            {
                "provider": row.provider, "model": row.model,
                "inputTokens": row.totals.input_tokens, "outputTokens": row.totals.output_tokens,
                "totalTokens": row.totals.total_tokens, "cogsUsd": money(row.totals.cogs_usd),
                "aiCogsUsd": money(row.totals.ai_cogs_usd),
                "revenueUsd": money(row.totals.revenue_usd),
                "marginUsd": money(row.totals.margin_usd),
                "marginPct": pct(row.totals.margin_pct),
                "avgCostPer1kUsd": money(row.avg_cost_per_1k_usd),
                "inputRatePer1k": rate(row.input_rate_per_1k),
                "outputRatePer1k": rate(row.output_rate_per_1k),
                "eventCount": row.totals.event_count,
                **expected_fields(row.totals),
            }
            for row in queries.models_breakdown(request.tenant, period, estimate=True)
        ])


class TokenAnalysis(_DashboardView):
    @extend_schema(parameters=PERIOD_PARAMETERS, responses=TokenAnalysisSchema)
    def get(self, request):
        totals = self.period_totals(request)
        return Response({
            "totalTokens": totals.total_tokens,
            "inputTokens": totals.input_tokens,
            "outputTokens": totals.output_tokens,
            "avgCostPer1kTokensUsd": money(queries.cost_per_1k_tokens(totals)),
        })


class Pnl(_DashboardView):
    @extend_schema(parameters=[*PERIOD_PARAMETERS, LIMIT_PARAMETER], responses=PnlSchema)
    def get(self, request):
        settings, period = self.settings_and_period(request)
        limit = limit_param(request)
        products = queries.products_breakdown(request.tenant, period, estimate=True)
        # Ranked by their own margin: who carries the book first, who erodes it last.
        customers = queries.customer_ledger(request.tenant, period, _floors(settings),
                                            order=queries.CustomerOrder.MARGIN, limit=limit)
        unit = queries.unit_economics(queries.totals_sum(products),
                                      settings.fixed_costs_per_month_usd)
        return Response({
            "unitEconomics": {
                "avgCostPerEventUsd": money(unit.avg_cost_per_event_usd),
                "avgRevenuePerEventUsd": money(unit.avg_revenue_per_event_usd),
                "avgMarginPerEventUsd": money(unit.avg_margin_per_event_usd),
                "breakEvenEvents": unit.break_even_events,
            },
            "products": [product_row(r) for r in queries.ranked(products, queries.Rank.MARGIN)],
            "customers": customer_rows(customers),
        })


class Transactions(_DashboardView):
    @extend_schema(parameters=[
        *PERIOD_PARAMETERS, *PAGE_PARAMETERS,
        OpenApiParameter("productId", OpenApiTypes.STR),
        OpenApiParameter("customerId", OpenApiTypes.STR),
        OpenApiParameter("provider", OpenApiTypes.STR),
    ], responses=TransactionPageSchema, examples=[OpenApiExample(
        "One row, as the product page shows it", response_only=True, value={
            "content": [{
                "eventId": "evt_a7f3k2m9", "occurredAt": "2026-06-14T18:33:00Z",
                "customerId": "cust_acme", "productId": "prod_translation",
                "productType": "API_WITH_AI", "provider": "Anthropic",
                "model": "claude-sonnet-4-6", "toolName": None, "sourceType": "GATEWAY",
                "cogsUsd": 0.18, "revenueUsd": 0.51, "marginUsd": 0.33, "marginPct": 64.71,
                "aiCogsUsd": 0.14, "infraCogsUsd": 0.03, "feeCogsUsd": 0.01,
                "unclassifiedCogsUsd": 0.0, "inputTokens": 1200, "outputTokens": 300,
                "totalTokens": 1500, "revenueStatus": "SETTLED"}],
            "page": 0, "size": 25, "totalElements": 1, "totalPages": 1})])
    def get(self, request):
        _settings, period = self.settings_and_period(request)
        page = page_request(request.query_params)
        filters = queries.TransactionFilters(
            product_id=_optional(request, "productId"),
            customer_id=_optional(request, "customerId"),
            provider=_optional(request, "provider"),
        )
        rows, total = queries.transactions_page(request.tenant, period, filters,
                                                offset=page.offset, limit=page.size)
        return Response(envelope([transaction_row(r) for r in rows], page, total))


class Anomalies(_DashboardView):
    @extend_schema(parameters=[*PERIOD_PARAMETERS, *PAGE_PARAMETERS],
                   responses=AnomalyPageSchema)
    def get(self, request):
        settings, period = self.settings_and_period(request)
        page = page_request(request.query_params)
        found, total = queries.anomalies(request.tenant, period,
                                         multiplier=settings.anomaly_multiplier,
                                         offset=page.offset, limit=page.size)
        return Response(envelope([
            {**transaction_row(a.transaction), "averageCogsUsd": money(a.average_cogs_usd),
             "ratio": pct(a.ratio), "groupEventCount": a.group_event_count}
            for a in found
        ], page, total))


# --- settings -----------------------------------------------------------------------------

class CanEditCogsSettings(ReadOrWrite):
    write_roles = BILLING_ROLES


class SettingsOut(serializers.Serializer):
    atRiskFloorPct = serializers.DecimalField(source="at_risk_floor_pct", max_digits=7,
                                              decimal_places=2, coerce_to_string=False)
    highValueFloorPct = serializers.DecimalField(source="high_value_floor_pct", max_digits=7,
                                                 decimal_places=2, coerce_to_string=False)
    anomalyMultiplier = serializers.DecimalField(source="anomaly_multiplier", max_digits=7,
                                                 decimal_places=2, coerce_to_string=False)
    fixedCostsPerMonthUsd = serializers.DecimalField(
        source="fixed_costs_per_month_usd", max_digits=18, decimal_places=2,
        coerce_to_string=False, allow_null=True)
    timeZone = serializers.CharField(source="time_zone")


class CogsSettingsDetail(APIView):
    permission_classes = [CanEditCogsSettings]

    class SettingsIn(serializers.Serializer):
        atRiskFloorPct = serializers.DecimalField(max_digits=7, decimal_places=2,
                                                  min_value=Decimal(0), max_value=Decimal(100),
                                                  required=False)
        highValueFloorPct = serializers.DecimalField(max_digits=7, decimal_places=2,
                                                     min_value=Decimal(0),
                                                     max_value=Decimal(100), required=False)
        anomalyMultiplier = serializers.DecimalField(max_digits=7, decimal_places=2,
                                                     required=False)
        fixedCostsPerMonthUsd = serializers.DecimalField(max_digits=18, decimal_places=2,
                                                         required=False, allow_null=True)
        timeZone = serializers.CharField(max_length=64, required=False)

    @extend_schema(responses=SettingsOut, operation_id="cogs_settings_retrieve")
    def get(self, request):
        return Response(SettingsOut(services.cogs_settings_get(tenant=request.tenant)).data)

    @extend_schema(request=SettingsIn, responses=SettingsOut)
    def patch(self, request):
        data = self.SettingsIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        names = {"atRiskFloorPct": "at_risk_floor_pct",
                 "highValueFloorPct": "high_value_floor_pct",
                 "anomalyMultiplier": "anomaly_multiplier",
                 "fixedCostsPerMonthUsd": "fixed_costs_per_month_usd", "timeZone": "time_zone"}
        updated = services.cogs_settings_update(
            tenant=request.tenant, **{names[key]: value for key, value in values.items()})
        return Response(SettingsOut(updated).data)
