"""Billing API: invoices (import, Stripe import, list, detail, finalize, void) and attribution
runs (trigger, list, detail)."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_date
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.errors import ApiError
from aforo.limits import BoundedDictField
from aforo.money import MoneyField
from aforo.pagination import PAGE_PARAMETERS, page_of, paged, paged_response
from aforo.permissions import BILLING_ROLES, ReadOrWrite
from billing import attribution, services, stripe
from billing.models import AttributionRun, Invoice, Unit

MAX_INVOICE_LINES = 1000
MAX_INVOICE_IDS = 1000
MAX_MAP_ENTRIES = 500


class BillingPermission(ReadOrWrite):
    write_roles = BILLING_ROLES


class MomentField(serializers.DateTimeField):
    """An ISO-8601 datetime, or a date meaning its midnight UTC (periods are [start, end))."""

    def to_internal_value(self, value):
        if isinstance(value, str) and len(value) == 10:
            parsed = parse_date(value)
            if parsed is not None:
                return datetime(parsed.year, parsed.month, parsed.day, tzinfo=timezone.utc)
        return super().to_internal_value(value)


class InvoiceLineOut(serializers.Serializer):
    lineId = serializers.CharField(source="line_id")
    productId = serializers.SerializerMethodField()
    amountUsd = MoneyField(source="amount_usd")
    unit = serializers.CharField()
    description = serializers.CharField()

    def get_productId(self, line) -> str | None:
        return line.product_id or None


class InvoiceOut(serializers.Serializer):
    invoiceId = serializers.CharField(source="invoice_id")
    version = serializers.IntegerField()
    customerId = serializers.CharField(source="customer_id")
    periodStart = serializers.DateTimeField(source="period_start")
    periodEnd = serializers.DateTimeField(source="period_end")
    status = serializers.CharField()
    source = serializers.CharField()
    totalUsd = MoneyField(source="total_usd")
    finalizedAt = serializers.DateTimeField(source="finalized_at", allow_null=True)
    voidedAt = serializers.DateTimeField(source="voided_at", allow_null=True)
    lines = InvoiceLineOut(many=True)


class AttributionRunOut(serializers.Serializer):
    runId = serializers.UUIDField(source="run_id")
    trigger = serializers.CharField()
    status = serializers.CharField()
    startedAt = serializers.DateTimeField(source="started_at")
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)
    durationMs = serializers.IntegerField(source="duration_ms")
    invoices = serializers.IntegerField()
    lines = serializers.IntegerField()
    linesMatched = serializers.IntegerField(source="lines_matched")
    linesUnattributed = serializers.IntegerField(source="lines_unattributed")
    events = serializers.IntegerField()
    attributedUsd = MoneyField(source="attributed_usd")
    unattributedUsd = MoneyField(source="unattributed_usd")
    reversedUsd = MoneyField(source="reversed_usd")
    entriesWritten = serializers.IntegerField(source="entries_written")
    unattributedLines = serializers.JSONField(source="unattributed_lines")
    errors = serializers.JSONField()


def _current(tenant, invoice_id: str) -> Invoice:
    invoice = (Invoice.objects.filter(tenant=tenant, invoice_id=invoice_id)
               .prefetch_related("lines").order_by("-version").first())
    if invoice is None:
        raise ApiError("No such invoice.", code="not_found", status_code=404)
    return invoice


class InvoiceListImport(APIView):
    permission_classes = [BillingPermission]

    @extend_schema_serializer(component_name="InvoiceImport")
    class Input(serializers.Serializer):
        @extend_schema_serializer(component_name="InvoiceImportLine")
        class Line(serializers.Serializer):
            lineId = serializers.CharField(max_length=200)
            productId = serializers.CharField(max_length=200, required=False, allow_null=True,
                                              allow_blank=True, default="")
            amountUsd = MoneyField(max_digits=19)
            unit = serializers.ChoiceField(choices=Unit.choices)

        invoiceId = serializers.CharField(max_length=200)
        customerId = serializers.CharField(max_length=200)
        periodStart = MomentField()
        periodEnd = MomentField()
        lines = serializers.ListField(child=Line(), min_length=1, max_length=MAX_INVOICE_LINES)

    @extend_schema(responses=page_of(InvoiceOut), operation_id="billing_invoices_list",
                   parameters=[*PAGE_PARAMETERS, OpenApiParameter("customerId", str),
                               OpenApiParameter("status", str)])
    def get(self, request):
        invoices = Invoice.objects.filter(tenant=request.tenant).prefetch_related("lines")
        for name, field in (("customerId", "customer_id"), ("status", "status")):
            if request.query_params.get(name):
                invoices = invoices.filter(**{field: request.query_params[name]})
        return paged_response(request, invoices, InvoiceOut)

    @extend_schema(request=Input, responses={201: InvoiceOut})
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        invoice = services.invoice_import(
            tenant=request.tenant, invoice_id=values["invoiceId"],
            customer_id=values["customerId"], period_start=values["periodStart"],
            period_end=values["periodEnd"],
            lines=[services.LineSpec(line_id=ln["lineId"], product_id=ln["productId"] or "",
                                     amount_usd=ln["amountUsd"], unit=ln["unit"])
                   for ln in values["lines"]])
        return Response(InvoiceOut(invoice).data, status=status.HTTP_201_CREATED)


class StripeInvoiceImport(APIView):
    permission_classes = [BillingPermission]

    @extend_schema_serializer(component_name="StripeInvoiceImport")
    class Input(serializers.Serializer):
        invoice = serializers.JSONField(help_text="The Stripe invoice object, either API shape.")
        customerId = serializers.CharField(required=False, allow_blank=True)
        productMap = BoundedDictField(child=serializers.CharField(max_length=200),
                                      max_items=MAX_MAP_ENTRIES, required=False)
        unitMap = BoundedDictField(child=serializers.ChoiceField(choices=Unit.choices),
                                   max_items=MAX_MAP_ENTRIES, required=False)

    @extend_schema(request=Input, responses={201: InvoiceOut})
    def post(self, request):
        body = request.data
        if isinstance(body, dict) and body.get("object") == "invoice":
            body = {"invoice": body}
        data = self.Input(data=body)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if not isinstance(values["invoice"], dict):
            raise ApiError("invoice must be a Stripe invoice object.", field="invoice")
        invoice = stripe.stripe_invoice_import(
            tenant=request.tenant, payload=values["invoice"],
            customer_id=values.get("customerId") or None,
            product_map=values.get("productMap"), unit_map=values.get("unitMap"))
        return Response(InvoiceOut(invoice).data, status=status.HTTP_201_CREATED)


class InvoiceDetail(APIView):
    permission_classes = [BillingPermission]

    @extend_schema(responses=InvoiceOut)
    def get(self, request, invoice_id: str):
        return Response(InvoiceOut(_current(request.tenant, invoice_id)).data)


class _InvoiceTransition(APIView):
    # An invoice's current version moved to another status by `transition`, a service.
    permission_classes = [BillingPermission]
    transition: Callable[..., Invoice]  # each subclass's service

    @extend_schema(request=None, responses=InvoiceOut)
    def post(self, request, invoice_id: str):
        invoice = self.transition(invoice=_current(request.tenant, invoice_id))
        return Response(InvoiceOut(invoice).data)


class InvoiceFinalize(_InvoiceTransition):
    transition = staticmethod(services.invoice_finalize)


class InvoiceVoid(_InvoiceTransition):
    transition = staticmethod(services.invoice_void)


class AttributionRunListCreate(APIView):
    permission_classes = [BillingPermission]

    @extend_schema_serializer(component_name="AttributionRunRequest")
    class Input(serializers.Serializer):
        invoiceIds = serializers.ListField(child=serializers.CharField(max_length=200),
                                           required=False, max_length=MAX_INVOICE_IDS)

    @extend_schema(**paged(AttributionRunOut), operation_id="attribution_runs_list")
    def get(self, request):
        return paged_response(request, AttributionRun.objects.filter(tenant=request.tenant),
                              AttributionRunOut)

    @extend_schema(request=Input, responses={201: AttributionRunOut})
    def post(self, request):
        data = self.Input(data=request.data or {})
        data.is_valid(raise_exception=True)
        run = attribution.attribution_run(tenant=request.tenant, trigger="API",
                                          invoice_ids=data.validated_data.get("invoiceIds"))
        return Response(AttributionRunOut(run).data, status=status.HTTP_201_CREATED)


class AttributionRunDetail(APIView):
    permission_classes = [BillingPermission]

    @extend_schema(responses=AttributionRunOut)
    def get(self, request, run_id: str):
        run = get_object_or_404(AttributionRun, tenant=request.tenant, run_id=run_id)
        return Response(AttributionRunOut(run).data)
