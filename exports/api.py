"""Exports API: the ledger and its aggregates as files, and the export schedules."""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.views import APIView

from aforo.errors import ApiError
from aforo.periods import Period, PeriodError, period_parse
from aforo.permissions import BILLING_ROLES, CanRead, _RoleSet
from aforo.renderers import ExactJSONRenderer
from exports import files
from exports.queries import AGGREGATE_DIMENSIONS
from exports.streaming import streamed


class CanExportLedger(_RoleSet):
    """Exports of the raw ledger (API.md): OWNER, ADMIN, BILLING_ADMIN."""

    roles = BILLING_ROLES


def _period(request) -> Period:
    try:
        return period_parse(request.query_params.get("from"), request.query_params.get("to"),
                            time_zone=request.tenant.time_zone)
    except PeriodError as exc:
        raise ApiError(exc.message, field=exc.field) from None


def _gzip(request) -> bool:
    raw = (request.query_params.get("gzip") or "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise ApiError("gzip must be true or false.", field="gzip")
    return raw in ("true", "1")


_FILE_PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATE, description="First day (tenant's time zone)"),
    OpenApiParameter("to", OpenApiTypes.DATE, description="Last day, included"),
    OpenApiParameter("format", str, enum=["csv", "ndjson", "parquet"],
                     description="csv (default), ndjson or parquet"),
    OpenApiParameter("gzip", bool, description="Compress the file with gzip (a .gz download)"),
]
_FILE_RESPONSES = {
    (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="CSV with a header"),
    (200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.BINARY,
                                                   description="One JSON object a line"),
    (200, "application/vnd.apache.parquet"): OpenApiResponse(OpenApiTypes.BINARY),
    (200, "application/gzip"): OpenApiResponse(OpenApiTypes.BINARY, description="gzip=true"),
}


class _FileView(APIView):
    """A download: the body is the file; errors are JSON. `format` names the file's format
    (API.md), so DRF's own `?format=` renderer override is switched off here."""

    def perform_content_negotiation(self, request, force=False):
        renderer = ExactJSONRenderer()
        return renderer, renderer.media_type


class LedgerExport(_FileView):
    """Every ledger entry whose event occurred in the period, streamed in the ledger's order
    (occurred_at, event_id, entry_id); columns are the ledger's, money exact."""

    permission_classes = [CanExportLedger]

    @extend_schema(parameters=_FILE_PARAMETERS, responses=_FILE_RESPONSES,
                   operation_id="exports_ledger")
    def get(self, request):
        export = files.ledger_file(tenant=request.tenant, period=_period(request),
                                   fmt=files.export_format(request.query_params.get("format")),
                                   gzip=_gzip(request))
        return streamed(request, export)


class AggregatesExport(_FileView):
    """Sums per day (or month) and the dimensions in `by`: events, tokens, the four cost
    buckets, COGS, attributed revenue and the provisional (carried, rated) revenue."""

    permission_classes = [CanRead]

    @extend_schema(parameters=[
        *_FILE_PARAMETERS,
        OpenApiParameter("grain", str, enum=["day", "month"], description="day (default)"),
        OpenApiParameter("by", str, description="Comma-separated: "
                         + ", ".join(AGGREGATE_DIMENSIONS)),
    ], responses=_FILE_RESPONSES, operation_id="exports_aggregates")
    def get(self, request):
        export = files.aggregates_file(
            tenant=request.tenant, period=_period(request),
            fmt=files.export_format(request.query_params.get("format")),
            by=request.query_params.get("by", ""), grain=request.query_params.get("grain", ""),
            gzip=_gzip(request))
        return streamed(request, export)
