"""Cost sources API: sources (CRUD), their imports (a file uploaded in `file`), the
reconciliation of billed with metered cost, and the tenant's tolerance."""
from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.errors import ApiError
from aforo.money import MoneyField, PctField, pct, usd
from aforo.pagination import page_of, page_rendered
from aforo.periods import api_period_parse
from aforo.permissions import BILLING_ROLES, CanRead, ReadOrWrite
from aforo.renderers import ExactJSONRenderer
from cost_sources import allocations, queries, services
from cost_sources.models import Allocation, CostImport, CostSource, Kind, Mode, Schedule
from cost_sources.polling import cost_source_poll


class _SourcesWrite(ReadOrWrite):
    write_roles = BILLING_ROLES


def _iso(moment) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def import_json(run: CostImport) -> dict:
    return {
        "id": run.pk, "sourceId": run.source_id, "status": run.status,
        "fileName": run.file_name or None, "rowsRead": run.rows_read,
        "rowsImported": run.rows_imported, "rowsSkipped": run.skipped,
        "rowsSkippedTotal": run.rows_skipped, "linesChanged": run.lines_changed,
        "totalUsd": usd(run.total_usd), "periodStart": run.period_start,
        "periodEnd": run.period_end, "error": run.error or None,
        "startedAt": _iso(run.started_at), "finishedAt": _iso(run.finished_at),
    }


def source_json(source: CostSource, last: CostImport | None) -> dict:
    return {
        "id": source.pk, "name": source.name, "kind": source.kind, "mode": source.mode,
        "baseUrl": source.base_url or None, "schedule": source.schedule or None,
        # Credentials are write-only: a response says whether there are some, never what.
        "hasCredentials": bool(source.credentials_sealed),
        "createdAt": _iso(source.created_at),
        "lastImport": import_json(last) if last else None,
    }


def _last_import(source: CostSource) -> CostImport | None:
    return source.imports.order_by("-id").first()


class SkippedRowSchema(serializers.Serializer):
    row = serializers.IntegerField(help_text="CSV: the file's line; JSON: the result's "
                                   "ordinal across the file, from 1")
    reason = serializers.CharField()


class ImportSchema(serializers.Serializer):
    id = serializers.IntegerField()
    sourceId = serializers.IntegerField()
    status = serializers.ChoiceField(choices=CostImport.Status.choices)
    fileName = serializers.CharField(allow_null=True)
    rowsRead = serializers.IntegerField(help_text="moves while the import runs")
    rowsImported = serializers.IntegerField()
    rowsSkipped = SkippedRowSchema(many=True, help_text="the first 1,000 skipped rows")
    rowsSkippedTotal = serializers.IntegerField()
    linesChanged = serializers.IntegerField(
        help_text="lines appended to the billed ledger: 0 when re-importing the same rows")
    totalUsd = MoneyField(help_text="the file's billed total")
    periodStart = serializers.DateField(allow_null=True)
    periodEnd = serializers.DateField(allow_null=True, help_text="exclusive: the days "
                                      "[periodStart, periodEnd) this file replaced")
    error = serializers.CharField(allow_null=True)
    startedAt = serializers.DateTimeField()
    finishedAt = serializers.DateTimeField(allow_null=True)


class SourceSchema(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=Kind.choices)
    mode = serializers.ChoiceField(choices=Mode.choices)
    baseUrl = serializers.CharField(allow_null=True)
    schedule = serializers.ChoiceField(choices=Schedule.choices, allow_null=True)
    hasCredentials = serializers.BooleanField()
    createdAt = serializers.DateTimeField()
    lastImport = ImportSchema(allow_null=True)


SourcePageSchema = page_of(SourceSchema)
ImportPageSchema = page_of(ImportSchema)


class CostSourceListCreate(APIView):
    permission_classes = [_SourcesWrite]
    renderer_classes = [ExactJSONRenderer]

    class CostSourceIn(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        kind = serializers.ChoiceField(choices=Kind.choices)
        mode = serializers.ChoiceField(choices=Mode.choices, default=Mode.UPLOAD)
        baseUrl = serializers.URLField(max_length=500, required=False, allow_blank=True)
        schedule = serializers.ChoiceField(choices=Schedule.choices, required=False,
                                           allow_blank=True)
        credentials = serializers.CharField(max_length=4000, required=False, allow_blank=True,
                                            write_only=True, trim_whitespace=True,
                                            help_text="a POLL source's API key; stored "
                                                      "encrypted, never returned")

    @extend_schema(responses={200: SourcePageSchema, 400: None},
                   operation_id="cost_sources_list", parameters=[
        OpenApiParameter("page", int), OpenApiParameter("size", int)])
    def get(self, request):
        return page_rendered(
            request, CostSource.objects.filter(tenant=request.tenant).order_by("id"),
            lambda rows: [source_json(s, _last_import(s)) for s in rows])

    @extend_schema(request=CostSourceIn, responses={201: SourceSchema, 400: None, 409: None},
                   operation_id="cost_sources_create")
    def post(self, request):
        data = self.CostSourceIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        source = services.cost_source_create(
            tenant=request.tenant, name=values["name"], kind=values["kind"],
            mode=values["mode"], base_url=values.get("baseUrl", ""),
            schedule=values.get("schedule", ""), credentials=values.get("credentials", ""))
        return Response(source_json(source, None), status=201)


class CostSourceDetail(APIView):
    permission_classes = [_SourcesWrite]
    renderer_classes = [ExactJSONRenderer]

    class CostSourceUpdateIn(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False)
        mode = serializers.ChoiceField(choices=Mode.choices, required=False)
        baseUrl = serializers.URLField(max_length=500, required=False, allow_blank=True)
        schedule = serializers.ChoiceField(choices=Schedule.choices, required=False,
                                           allow_blank=True)
        credentials = serializers.CharField(max_length=4000, required=False, allow_blank=True,
                                            write_only=True, trim_whitespace=True,
                                            help_text="replaces the stored credentials; an "
                                                      "empty string removes them")

    @extend_schema(responses={200: SourceSchema, 404: None}, operation_id="cost_sources_get")
    def get(self, request, source_id: int):
        source = services.cost_source_get(tenant=request.tenant, source_id=source_id)
        return Response(source_json(source, _last_import(source)))

    @extend_schema(request=CostSourceUpdateIn,
                   responses={200: SourceSchema, 400: None, 404: None, 409: None},
                   operation_id="cost_sources_update")
    def patch(self, request, source_id: int):
        source = services.cost_source_get(tenant=request.tenant, source_id=source_id)
        data = self.CostSourceUpdateIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        source = services.cost_source_update(
            source=source, name=values.get("name"), mode=values.get("mode"),
            base_url=values.get("baseUrl"), schedule=values.get("schedule"),
            credentials=values.get("credentials"))
        return Response(source_json(source, _last_import(source)))

    @extend_schema(responses={204: None, 404: None, 409: None},
                   operation_id="cost_sources_delete")
    def delete(self, request, source_id: int):
        source = services.cost_source_get(tenant=request.tenant, source_id=source_id)
        services.cost_source_delete(source=source)
        return Response(status=204)


class CostImportListCreate(APIView):
    """POST a file (multipart, field `file`) to import it, or, for a POLL source, nothing to
    poll it now; the run answers when it is done."""

    permission_classes = [_SourcesWrite]
    renderer_classes = [ExactJSONRenderer]
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    max_body_bytes = settings.AFORO_MAX_COST_FILE_BYTES

    @extend_schema(responses={200: ImportPageSchema, 400: None, 404: None},
                   operation_id="cost_source_imports_list",
                   parameters=[OpenApiParameter("page", int), OpenApiParameter("size", int)])
    def get(self, request, source_id: int):
        source = services.cost_source_get(tenant=request.tenant, source_id=source_id)
        return page_rendered(request, source.imports.order_by("-id"),
                             lambda rows: [import_json(r) for r in rows])

    @extend_schema(
        request={"multipart/form-data": {"type": "object", "properties": {
            "file": {"type": "string", "format": "binary"}}}},
        responses={201: ImportSchema, 202: ImportSchema, 400: None, 404: None, 409: None,
                   502: None},
        description="201: imported in the request. 202: a file larger than "
                    "AFORO_COST_BACKGROUND_BYTES, imported by a background task; follow the "
                    "run (GET .../imports/{importId}): rowsRead moves, status ends SUCCEEDED "
                    "or FAILED (a malformed file's row and column in error).",
        operation_id="cost_source_imports_create")
    def post(self, request, source_id: int):
        source = services.cost_source_get(tenant=request.tenant, source_id=source_id)
        uploaded = request.FILES.get("file")
        if uploaded is None and source.mode == Mode.POLL:
            run = cost_source_poll(source=source)
            return Response(import_json(run), status=201)
        if uploaded is None:
            raise ApiError("Send the file as multipart/form-data in the field `file`.",
                           field="file")
        uploaded.seek(0)
        if uploaded.size > settings.AFORO_COST_BACKGROUND_BYTES:
            # A large file is imported by a background task; the run's rowsRead shows how far.
            run = services.cost_import_queue(source=source, stream=uploaded.file,
                                             file_name=uploaded.name or "")
            run.refresh_from_db()
            return Response(import_json(run), status=202)
        run = services.cost_import_file(source=source, stream=uploaded.file,
                                        file_name=uploaded.name or "")
        return Response(import_json(run), status=201)


class CostImportDetail(APIView):
    permission_classes = [CanRead]
    renderer_classes = [ExactJSONRenderer]

    @extend_schema(responses={200: ImportSchema, 404: None}, operation_id="cost_import_get")
    def get(self, request, source_id: int, import_id: int):
        source = services.cost_source_get(tenant=request.tenant, source_id=source_id)
        run = source.imports.filter(pk=import_id).first()
        if run is None:
            raise ApiError(f"No import {import_id} of this source.", field="importId",
                           code="not_found", status_code=404)
        return Response(import_json(run))


# --- allocations -------------------------------------------------------------------------

def allocation_json(allocation: Allocation) -> dict:
    return {
        "id": allocation.pk, "sourceId": allocation.source_id,
        "description": allocation.description or None,
        "from": allocation.first_day, "to": allocation.last_day,
        "amountUsd": allocation.amount_usd, "by": allocation.by, "bucket": allocation.bucket,
        "productIds": allocation.product_ids, "status": allocation.status,
        "events": allocation.events, "error": allocation.error or None,
        "createdAt": _iso(allocation.created_at), "reversedAt": _iso(allocation.reversed_at),
    }


class AllocationSchema(serializers.Serializer):
    id = serializers.IntegerField()
    sourceId = serializers.IntegerField(help_text="the cost source whose cost is spread")
    description = serializers.CharField(allow_null=True)
    vars()["from"] = serializers.DateField(help_text="the first UTC day of the period")
    to = serializers.DateField(help_text="the last UTC day, included")
    amountUsd = MoneyField(places_out=9, help_text="what the entries sum to, exactly (nine "
                           "decimals)")
    by = serializers.ChoiceField(choices=Allocation.By.choices)
    bucket = serializers.ChoiceField(choices=Allocation.Bucket.choices)
    productIds = serializers.ListField(child=serializers.CharField(),
                                       help_text="empty: every product")
    status = serializers.ChoiceField(choices=Allocation.Status.choices)
    events = serializers.IntegerField(help_text="events that received a share")
    error = serializers.CharField(allow_null=True)
    createdAt = serializers.DateTimeField()
    reversedAt = serializers.DateTimeField(allow_null=True)


AllocationPageSchema = page_of(AllocationSchema)


class AllocationListCreate(APIView):
    """Spread a source's cost that events do not carry onto the period's events, as CORRECTION
    entries summing exactly to the amount; and the list of them."""

    permission_classes = [_SourcesWrite]
    renderer_classes = [ExactJSONRenderer]

    class AllocationIn(serializers.Serializer):
        sourceId = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
        vars()["from"] = serializers.CharField(max_length=10,
                                               help_text="YYYY-MM-DD, the first UTC day")
        to = serializers.CharField(max_length=10, help_text="YYYY-MM-DD, included")
        by = serializers.ChoiceField(choices=Allocation.By.choices,
                                     help_text="each event's weight: 1, its tokens (input + "
                                               "output) or its metered COGS")
        bucket = serializers.ChoiceField(choices=Allocation.Bucket.choices,
                                         default=Allocation.Bucket.INFRA,
                                         help_text="the cost bucket the shares land in")
        amountUsd = MoneyField(required=False, allow_null=True, min_value=0,
                               help_text="default: what the source billed over the period")
        productIds = serializers.ListField(
            child=serializers.CharField(max_length=200), required=False, max_length=1000,
            help_text="only these products' events; empty or absent: every product")
        description = serializers.CharField(max_length=300, required=False, allow_blank=True)

    @extend_schema(responses={200: AllocationPageSchema, 400: None},
                   operation_id="cost_allocations_list",
                   parameters=[OpenApiParameter("page", int), OpenApiParameter("size", int)])
    def get(self, request):
        return page_rendered(request,
                             Allocation.objects.filter(tenant=request.tenant).order_by("-id"),
                             lambda rows: [allocation_json(a) for a in rows])

    @extend_schema(request=AllocationIn,
                   responses={201: AllocationSchema, 400: None, 404: None},
                   operation_id="cost_allocations_create")
    def post(self, request):
        data = self.AllocationIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        period = api_period_parse(values["from"], values["to"], time_zone="UTC")
        source = services.cost_source_get(tenant=request.tenant, source_id=values["sourceId"])
        allocation = allocations.allocation_create(
            tenant=request.tenant, source=source, first=period.first, last=period.last,
            by=values["by"], bucket=values["bucket"], amount=values.get("amountUsd"),
            product_ids=values.get("productIds") or (),
            description=values.get("description", ""))
        return Response(allocation_json(allocation), status=201)


class AllocationReverse(APIView):
    """Append the REVERSAL entries cancelling an allocation exactly; a second time is a 409."""

    permission_classes = [_SourcesWrite]
    renderer_classes = [ExactJSONRenderer]

    @extend_schema(request=None, responses={200: AllocationSchema, 404: None, 409: None},
                   operation_id="cost_allocations_reverse")
    def post(self, request, allocation_id: int):
        allocation = allocations.allocation_get(tenant=request.tenant,
                                                allocation_id=allocation_id)
        return Response(allocation_json(allocations.allocation_reverse(allocation=allocation)))


# --- reconciliation ----------------------------------------------------------------------

class ReconciliationRowSchema(serializers.Serializer):
    date = serializers.DateField(help_text="a UTC day")
    group = serializers.CharField(help_text="the provider, model or service")
    billedUsd = MoneyField(help_text="the cost sources' lines")
    meteredUsd = MoneyField(help_text="the events' AI inference and unclassified cost")
    gapUsd = MoneyField(help_text="billed minus metered")
    gapPct = PctField(allow_null=True, help_text="of billed; null when nothing was billed")
    status = serializers.ChoiceField(choices=[queries.MATCHED, queries.UNDER_METERED,
                                              queries.OVER_METERED])


class ReconciliationSchema(serializers.Serializer):
    by = serializers.ChoiceField(choices=list(queries.GROUPS))
    tolerancePct = PctField()
    billedUsd = MoneyField()
    meteredUsd = MoneyField()
    gapUsd = MoneyField()
    rows = ReconciliationRowSchema(many=True)


class Reconciliation(APIView):
    permission_classes = [CanRead]
    renderer_classes = [ExactJSONRenderer]

    @extend_schema(responses={200: ReconciliationSchema, 400: None},
                   operation_id="cogs_reconciliation",
                   parameters=[OpenApiParameter("from", str, description="YYYY-MM-DD (UTC)"),
                               OpenApiParameter("to", str, description="YYYY-MM-DD, included"),
                               OpenApiParameter("by", str, enum=list(queries.GROUPS))])
    def get(self, request):
        by = request.query_params.get("by", "provider")
        if by not in queries.GROUPS:
            raise ApiError("by must be provider, model or service.", field="by")
        period = api_period_parse(request.query_params.get("from"),
                                  request.query_params.get("to"), time_zone="UTC")
        tolerance = services.reconciliation_settings_get(tenant=request.tenant).tolerance_pct
        rows = queries.reconciliation(request.tenant.slug, first=period.first,
                                      last=period.last, by=by, tolerance_pct=tolerance)
        billed = sum((r.billed_usd for r in rows), queries.ZERO)
        metered = sum((r.metered_usd for r in rows), queries.ZERO)
        return Response({
            "by": by, "tolerancePct": pct(tolerance), "billedUsd": usd(billed),
            "meteredUsd": usd(metered), "gapUsd": usd(billed - metered),
            "rows": [{"date": r.day, "group": r.group, "billedUsd": usd(r.billed_usd),
                      "meteredUsd": usd(r.metered_usd), "gapUsd": usd(r.gap_usd),
                      "gapPct": pct(r.gap_pct), "status": r.status} for r in rows],
        })


class ReconciliationSettingsDetail(APIView):
    permission_classes = [_SourcesWrite]
    renderer_classes = [ExactJSONRenderer]

    class ReconciliationSettingsIn(serializers.Serializer):
        tolerancePct = PctField(min_value=0, max_value=100)

    @extend_schema(responses=ReconciliationSettingsIn, operation_id="cost_sources_settings_get")
    def get(self, request):
        current = services.reconciliation_settings_get(tenant=request.tenant)
        return Response({"tolerancePct": pct(current.tolerance_pct)})

    @extend_schema(request=ReconciliationSettingsIn,
                   responses={200: ReconciliationSettingsIn, 400: None},
                   operation_id="cost_sources_settings_update")
    def patch(self, request):
        data = self.ReconciliationSettingsIn(data=request.data)
        data.is_valid(raise_exception=True)
        current = services.reconciliation_settings_update(
            tenant=request.tenant, tolerance_pct=data.validated_data["tolerancePct"])
        return Response({"tolerancePct": pct(current.tolerance_pct)})
