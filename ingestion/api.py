"""POST /api/v1/events: an async view, so concurrent requests in a process share one insert."""
from __future__ import annotations

import functools
import zlib

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.authentication import authorize_token
from aforo.errors import (
    DATABASE,
    api_exception_response,
    error_body,
    json_error,
    unavailable_part,
    unavailable_response,
)
from aforo.permissions import GUARD_ROLES, CanIngest, ReadOrWrite
from ingestion import otlp
from ingestion.cloudevents import cloudevents_split
from ingestion.dedupe import ClaimsHeldElsewhere
from ingestion.schema import BodyError, split_body
from ingestion.services import ACCEPTED, DUPLICATE, REJECTED, IngestReport, events_ingest

JSON_TYPES = {"application/json", "text/json"}
CLOUDEVENT = "application/cloudevents+json"
CLOUDEVENT_BATCH = "application/cloudevents-batch+json"


def _ingest_in_worker(tenant, raws) -> IngestReport:
    # Runs outside the request thread: open and close its own database connection.
    close_old_connections()
    try:
        return events_ingest(tenant=tenant, raws=raws)
    finally:
        close_old_connections()


PROBLEM_JSON = "application/problem+json"


def _cloudevents_reply(report: IngestReport) -> HttpResponse:
    """As OpenMeter answers: 204 No Content when every event was accepted or a duplicate;
    otherwise 400 naming each rejected event (the valid ones are written all the same, so a
    client that fixes and re-sends the batch lands each event once)."""
    rejected = [r for r in report.results if r.status == REJECTED]
    if not rejected:
        return HttpResponse(status=204)
    first = rejected[0]
    detail = (f"{len(rejected)} of {len(report.results)} events were rejected; the others were "
              f"written. First: {first.event_id or 'an event'}: {first.reason}")
    body = {
        "type": "about:blank", "title": "Bad Request", "status": 400, "detail": detail,
        **error_body("invalid", detail, first.field),
    }
    body["error"]["events"] = [{"eventId": r.event_id, "field": r.field, "reason": r.reason}
                               for r in rejected]
    return JsonResponse(body, status=400, content_type=PROBLEM_JSON)


def _reply(report: IngestReport, *, is_batch: bool) -> JsonResponse:
    results = [r.as_json() for r in report.results]
    body = {"accepted": report.count(ACCEPTED), "duplicates": report.count(DUPLICATE),
            "rejected": report.count(REJECTED), "results": results}
    if report.count(REJECTED) == len(report.results):
        first = report.results[0]
        body.update(error_body("invalid", first.reason or "invalid event", first.field))
        return JsonResponse(body, status=400)
    if not is_batch:
        body.update(results[0])
    return JsonResponse(body, status=200)


def _dependencies_as_503(view):
    """Any part found down while serving (the event store, Redis, the database: in the token
    check, the claims, the rate card, the insert) answers 503 with Retry-After and the part's
    name, never 500; nothing of the batch is counted, so its retry lands exactly once."""

    @functools.wraps(view)
    async def guarded(request: HttpRequest) -> HttpResponse:
        try:
            return await view(request)
        except ClaimsHeldElsewhere as exc:
            response = json_error(503, "in_flight", str(exc))
            response["Retry-After"] = str(exc.retry_after)
            return response
        except Exception as exc:
            part = unavailable_part(exc)
            if part is None:
                raise
            if part == DATABASE:
                # Drop the broken connection of the thread the token check runs in now, so
                # the first request after the database is back finds it (Django's own
                # request-start cleanup does not run under every server or test client).
                await sync_to_async(close_old_connections)()
            return unavailable_response(part, exc)

    return guarded


def _ingest_door(view):
    """The ingest doors' shared start: POST only, an ingest token, the body within its cap
    (checked on the declared length before reading it); the view then gets the token's access
    and the body. Each door still carries its own csrf_exempt (outermost): a token, not a
    session, authorizes it, and without the mark a real server's CSRF middleware refuses
    every POST."""

    @functools.wraps(view)
    async def door(request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return json_error(405, "method_not_allowed", "Use POST.")
        try:
            access = await sync_to_async(authorize_token)(request, CanIngest)
        except exceptions.APIException as exc:
            return api_exception_response(exc)
        limit = settings.AFORO_MAX_BODY_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            return json_error(413, "payload_too_large", f"The body exceeds {limit} bytes.")
        body = request.body
        if len(body) > limit:
            return json_error(413, "payload_too_large", f"The body exceeds {limit} bytes.")
        return await view(request, access, body)

    return door


@csrf_exempt
@_dependencies_as_503
@_ingest_door
async def events_endpoint(request: HttpRequest, access, body: bytes) -> HttpResponse:
    content_type = request.content_type or ""
    try:
        if content_type in JSON_TYPES:
            batch = split_body(body)
            raws, is_batch = batch.raws, batch.is_batch
        elif content_type in (CLOUDEVENT, CLOUDEVENT_BATCH):
            is_batch = content_type == CLOUDEVENT_BATCH
            raws = cloudevents_split(body, batch=is_batch)
        else:
            return json_error(415, "unsupported_media_type",
                              "Send application/json or CloudEvents JSON.")
    except BodyError as exc:
        return json_error(exc.status, exc.code, exc.message, exc.field)
    report = await sync_to_async(_ingest_in_worker, thread_sensitive=False)(
        access.tenant, raws)
    if content_type in (CLOUDEVENT, CLOUDEVENT_BATCH):
        return _cloudevents_reply(report)
    return _reply(report, is_batch=is_batch)


events_endpoint.max_body_bytes = settings.AFORO_MAX_BODY_BYTES  # aforo.limits reads it


OTLP_PROTOBUF = "application/x-protobuf"


def _traces_reply(report, *, protobuf: bool) -> HttpResponse:
    """OTLP's answer: 200, with partial_success when spans were rejected (or ignored)."""
    message = report.error_message()
    if protobuf:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceResponse,
        )

        answer = ExportTraceServiceResponse()
        if message:
            answer.partial_success.rejected_spans = len(report.rejected)
            answer.partial_success.error_message = message
        return HttpResponse(answer.SerializeToString(), status=200, content_type=OTLP_PROTOBUF)
    body = {"partialSuccess": {"rejectedSpans": len(report.rejected),
                               "errorMessage": message}} if message else {}
    return JsonResponse(body, status=200)


def _traces_in_worker(tenant, spans):
    close_old_connections()
    try:
        return otlp.traces_ingest(tenant=tenant, spans=spans)
    finally:
        close_old_connections()


@csrf_exempt
@_dependencies_as_503
@_ingest_door
async def traces_endpoint(request: HttpRequest, access, body: bytes) -> HttpResponse:
    """POST /v1/traces: OTLP/HTTP (protobuf or JSON) spans with GenAI attributes as events."""
    limit = settings.AFORO_MAX_BODY_BYTES
    content_type = request.content_type or ""
    if request.headers.get("Content-Encoding", "").lower() == "gzip":
        # Decompressed at most to the cap plus one byte: a small bomb never grows past it.
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, limit + 1)
        except zlib.error:
            return json_error(400, "invalid", "The gzip body does not decompress.")
        if len(body) > limit:
            return json_error(413, "payload_too_large",
                              f"The decompressed body exceeds {limit} bytes.")
    try:
        if content_type == OTLP_PROTOBUF:
            spans = otlp.spans_from_protobuf(body)
        elif content_type in JSON_TYPES:
            spans = otlp.spans_from_json(body)
        else:
            return json_error(415, "unsupported_media_type",
                              "Send application/x-protobuf or application/json (OTLP/HTTP).")
    except otlp.OtlpBodyError as exc:
        return json_error(400, "invalid", str(exc))
    report = await sync_to_async(_traces_in_worker, thread_sensitive=False)(
        access.tenant, spans)
    return _traces_reply(report, protobuf=content_type == OTLP_PROTOBUF)


traces_endpoint.max_body_bytes = settings.AFORO_MAX_BODY_BYTES


class OtlpSettingsPermission(ReadOrWrite):
    write_roles = GUARD_ROLES  # OWNER, ADMIN: it decides whom ingested spans are billed to


class OtlpSettingsOut(serializers.Serializer):
    customerAttribute = serializers.CharField(source="customer_attribute")
    productAttribute = serializers.CharField(source="product_attribute")


class OtlpSettingsDetail(APIView):
    """GET/PATCH /api/v1/otlp/settings: the span or resource attributes that name the customer
    and the product of a span sent to POST /v1/traces."""

    permission_classes = [OtlpSettingsPermission]

    class OtlpSettingsIn(serializers.Serializer):
        customerAttribute = serializers.RegexField(r"^[A-Za-z0-9_.\-]+$", max_length=200,
                                                   required=False)
        productAttribute = serializers.RegexField(r"^[A-Za-z0-9_.\-]+$", max_length=200,
                                                  required=False)

    @extend_schema(responses=OtlpSettingsOut, operation_id="otlp_settings_retrieve")
    def get(self, request):
        return Response(OtlpSettingsOut(otlp.otlp_settings_get(tenant=request.tenant)).data)

    @extend_schema(request=OtlpSettingsIn, responses=OtlpSettingsOut)
    def patch(self, request):
        data = self.OtlpSettingsIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        updated = otlp.otlp_settings_update(
            tenant=request.tenant, customer_attribute=values.get("customerAttribute"),
            product_attribute=values.get("productAttribute"))
        return Response(OtlpSettingsOut(updated).data)
