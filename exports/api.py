"""Exports API: the ledger and its aggregates as files, and the export schedules."""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.errors import ApiError
from aforo.pagination import page_rendered, paged
from aforo.periods import Period, api_period_parse
from aforo.permissions import BILLING_ROLES, CanRead, ReadOrWrite, _RoleSet, sees_destinations
from aforo.renderers import ExactJSONRenderer
from exports import files, services
from exports.models import DestinationKind, ExportRun, ExportSchedule
from exports.queries import AGGREGATE_DIMENSIONS
from exports.streaming import streamed
from notifications.destinations import destination_masked


class CanExportLedger(_RoleSet):
    """Exports of the raw ledger (API.md): OWNER, ADMIN, BILLING_ADMIN."""

    roles = BILLING_ROLES


def _period(request) -> Period:
    return api_period_parse(request.query_params.get("from"), request.query_params.get("to"),
                            time_zone=request.tenant.time_zone)


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


# --- schedules ----------------------------------------------------------------------------

def _iso(moment) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def run_json(run: ExportRun) -> dict:
    return {"id": run.pk, "scheduleId": run.schedule_id, "state": run.state,
            "trigger": run.trigger, "startedAt": _iso(run.started_at),
            "finishedAt": _iso(run.finished_at), "recordedBefore": _iso(run.recorded_before),
            "rowsDelivered": run.rows_delivered, "chunksDelivered": run.chunks_delivered,
            "watermarkFrom": run.watermark_from or None,
            "watermarkTo": run.watermark_to or None, "error": run.error or None}


def schedule_json(schedule: ExportSchedule, request) -> dict:
    destination = schedule.destination  # stored with a DSN's password masked (models.dsn_split)
    if not sees_destinations(request):
        destination = destination_masked(destination)
    last = schedule.runs.first()
    return {"id": schedule.pk, "name": schedule.name, "kind": schedule.kind,
            "destination": destination, "tableName": schedule.table_name or None,
            "intervalMinutes": schedule.interval_minutes, "lagSeconds": schedule.lag_seconds,
            "chunkRows": schedule.chunk_rows, "enabled": schedule.enabled,
            "watermark": {"recordedAt": _iso(schedule.watermark_recorded_at),
                          "entryId": schedule.watermark_entry_id or None},
            "nextRunAt": _iso(schedule.next_run_at), "createdAt": _iso(schedule.created_at),
            "lastRun": run_json(last) if last else None}


class RunSchema(serializers.Serializer):
    id = serializers.IntegerField()
    scheduleId = serializers.IntegerField()
    state = serializers.ChoiceField(choices=ExportRun.State.values)
    trigger = serializers.ChoiceField(choices=ExportRun.Trigger.values)
    startedAt = serializers.DateTimeField()
    finishedAt = serializers.DateTimeField(allow_null=True)
    recordedBefore = serializers.DateTimeField(
        help_text="The run delivers entries recorded before this (its start minus the lag)")
    rowsDelivered = serializers.IntegerField()
    chunksDelivered = serializers.IntegerField()
    watermarkFrom = serializers.CharField(allow_null=True)
    watermarkTo = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_null=True)


class WatermarkSchema(serializers.Serializer):
    recordedAt = serializers.DateTimeField(allow_null=True)
    entryId = serializers.CharField(allow_null=True)


class ScheduleSchema(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=DestinationKind.values)
    destination = serializers.CharField(
        help_text="A DSN's password is never shown: it reads postgres://user:***@host/db "
                  "(the password is stored encrypted); sent back unchanged in a PATCH, it "
                  "keeps the stored password")
    tableName = serializers.CharField(allow_null=True)
    intervalMinutes = serializers.IntegerField()
    lagSeconds = serializers.IntegerField()
    chunkRows = serializers.IntegerField()
    enabled = serializers.BooleanField()
    watermark = WatermarkSchema(help_text="The last entry delivered")
    nextRunAt = serializers.DateTimeField()
    createdAt = serializers.DateTimeField()
    lastRun = RunSchema(allow_null=True)


class ScheduleCreatedSchema(ScheduleSchema):
    signingSecret = serializers.CharField(
        allow_null=True, help_text="WEBHOOK only: shown once, in this answer")


class SecretSchema(serializers.Serializer):
    signingSecret = serializers.CharField()


class CanManageExports(ReadOrWrite):
    write_roles = BILLING_ROLES


_NAMES = {"name": "name", "kind": "kind", "destination": "destination",
          "tableName": "table_name", "intervalMinutes": "interval_minutes",
          "lagSeconds": "lag_seconds", "chunkRows": "chunk_rows", "enabled": "enabled"}


class _ScheduleIn(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=DestinationKind.values)
    destination = serializers.CharField(max_length=1000,
                                        help_text="A webhook URL, or a postgres:// or "
                                                  "clickhouse:// DSN; a DSN's password is "
                                                  "stored encrypted and needs "
                                                  "AFORO_CREDENTIALS_KEY")
    tableName = serializers.CharField(max_length=63, required=False, allow_blank=True)
    intervalMinutes = serializers.IntegerField(required=False, min_value=1, max_value=10080)
    lagSeconds = serializers.IntegerField(required=False, min_value=0, max_value=86400)
    chunkRows = serializers.IntegerField(required=False, min_value=1,
                                         max_value=services.MAX_CHUNK_ROWS)
    enabled = serializers.BooleanField(required=False)


def _values(validated: dict) -> dict:
    return {_NAMES[key]: value for key, value in validated.items()}


class ScheduleListCreate(APIView):
    permission_classes = [CanManageExports]
    renderer_classes = [ExactJSONRenderer]

    class ScheduleIn(_ScheduleIn):
        pass

    @extend_schema(responses=ScheduleSchema(many=True), operation_id="exports_schedules_list")
    def get(self, request):
        return Response([schedule_json(s, request) for s in ExportSchedule.objects.filter(
            tenant=request.tenant).prefetch_related("runs")])

    @extend_schema(request=ScheduleIn, responses={201: ScheduleCreatedSchema})
    def post(self, request):
        data = self.ScheduleIn(data=request.data)
        data.is_valid(raise_exception=True)
        created = services.export_schedule_create(tenant=request.tenant,
                                                  **_values(data.validated_data))
        return Response({**schedule_json(created.schedule, request),
                         "signingSecret": created.signing_secret or None}, status=201)


class ScheduleDetail(APIView):
    permission_classes = [CanManageExports]
    renderer_classes = [ExactJSONRenderer]

    class SchedulePatch(_ScheduleIn):
        kind = None  # a schedule's kind is fixed; make another for another kind

    def _schedule(self, request, schedule_id: int) -> ExportSchedule:
        return services.export_schedule_get(tenant=request.tenant, schedule_id=schedule_id)

    @extend_schema(responses=ScheduleSchema, operation_id="exports_schedule_retrieve")
    def get(self, request, schedule_id: int):
        return Response(schedule_json(self._schedule(request, schedule_id), request))

    @extend_schema(request=SchedulePatch, responses=ScheduleSchema)
    def patch(self, request, schedule_id: int):
        schedule = self._schedule(request, schedule_id)
        data = self.SchedulePatch(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = _values(data.validated_data)
        if values.get("destination") == schedule.destination:
            del values["destination"]  # the masked DSN sent back as read: unchanged
        updated = services.export_schedule_update(schedule=schedule, **values)
        return Response(schedule_json(updated, request))

    @extend_schema(responses={204: None})
    def delete(self, request, schedule_id: int):
        services.export_schedule_delete(schedule=self._schedule(request, schedule_id))
        return Response(status=204)


class ScheduleRuns(APIView):
    """The schedule's runs, newest first (a page envelope); POST runs it now."""

    permission_classes = [CanManageExports]
    renderer_classes = [ExactJSONRenderer]

    @extend_schema(**paged(RunSchema), operation_id="exports_schedule_runs_list")
    def get(self, request, schedule_id: int):
        schedule = services.export_schedule_get(tenant=request.tenant, schedule_id=schedule_id)
        return page_rendered(request, schedule.runs.all(),
                             lambda rows: [run_json(r) for r in rows])

    @extend_schema(request=None, responses={202: RunSchema})
    def post(self, request, schedule_id: int):
        schedule = services.export_schedule_get(tenant=request.tenant, schedule_id=schedule_id)
        # Queued on the workers (in the embedded mode it runs here, before the answer).
        from exports.tasks import run

        run.delay(schedule.pk, ExportRun.Trigger.API)
        latest = schedule.runs.first()
        return Response(run_json(latest) if latest else None, status=202)


class ScheduleSecret(APIView):
    permission_classes = [CanManageExports]
    renderer_classes = [ExactJSONRenderer]

    @extend_schema(request=None, responses=SecretSchema)
    def post(self, request, schedule_id: int):
        schedule = services.export_schedule_get(tenant=request.tenant, schedule_id=schedule_id)
        return Response({"signingSecret": services.export_schedule_rotate_secret(
            schedule=schedule)})
