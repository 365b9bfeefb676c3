"""Agent analytics API (API.md, "Export, usage and agent analytics"): per tool, per session (a
page envelope; a session's trace) and per agent, mounted at /api/v1/analytics/agents/."""
from __future__ import annotations

from datetime import datetime, timezone

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from aforo.errors import ApiError, NotFound
from aforo.money import MoneyField, PctField, pct, usd
from aforo.pagination import PAGE_PARAMETERS, envelope, page_of, page_request
from cogs.api import PERIOD_PARAMETERS, expected_fields
from cogs.queries.agents import (
    AgentFigures,
    SessionFigures,
    agents_breakdown,
    session_trace,
    sessions_page,
    tools_breakdown,
)
from cogs.usage_api import _Read, period_of


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def figures_json(row: AgentFigures) -> dict:
    return {"events": row.events, "inputTokens": row.input_tokens,
            "outputTokens": row.output_tokens,
            "totalTokens": row.input_tokens + row.output_tokens, "toolCalls": row.tool_calls,
            "reasoningSteps": row.reasoning_steps, "cogsUsd": usd(row.cogs_usd),
            "revenueUsd": usd(row.revenue_usd), "marginUsd": usd(row.margin_usd),
            "marginPct": pct(row.margin_pct), **expected_fields(row)}


def session_json(session: SessionFigures) -> dict:
    return {"sessionId": session.session_id, "startedAt": _iso(session.started_at),
            "endedAt": _iso(session.ended_at), "durationSeconds": session.duration_seconds,
            "active": session.active, **figures_json(session.figures)}


class FiguresSchema(serializers.Serializer):
    events = serializers.IntegerField()
    inputTokens = serializers.IntegerField()
    outputTokens = serializers.IntegerField()
    totalTokens = serializers.IntegerField()
    toolCalls = serializers.IntegerField()
    reasoningSteps = serializers.IntegerField()
    cogsUsd = MoneyField()
    revenueUsd = MoneyField(help_text="Attributed revenue")
    marginUsd = MoneyField()
    marginPct = PctField(allow_null=True, help_text="Null where revenue is zero")
    settlingRevenueUsd = MoneyField(help_text="Carried and rated revenue still settling")
    expectedRevenueUsd = MoneyField()
    expectedMarginUsd = MoneyField()
    expectedMarginPct = PctField(allow_null=True)


class ToolRowSchema(FiguresSchema):
    toolName = serializers.CharField()
    invocations = serializers.IntegerField(help_text="Events naming the tool")


class AgentRowSchema(FiguresSchema):
    agent = serializers.CharField(help_text="Empty for events that name no agent")


class SessionRowSchema(FiguresSchema):
    sessionId = serializers.CharField()
    startedAt = serializers.DateTimeField()
    endedAt = serializers.DateTimeField()
    durationSeconds = serializers.IntegerField(help_text="Last minus first occurredAt")
    active = serializers.BooleanField(help_text="An event in the last 15 minutes")


class TraceStepSchema(serializers.Serializer):
    eventId = serializers.CharField()
    occurredAt = serializers.DateTimeField()
    kind = serializers.ChoiceField(choices=["MODEL", "REASONING", "TOOL"])
    agent = serializers.CharField()
    toolName = serializers.CharField(allow_null=True)
    provider = serializers.CharField()
    model = serializers.CharField()
    inputTokens = serializers.IntegerField()
    outputTokens = serializers.IntegerField()
    reasoningTokens = serializers.IntegerField()
    reasoningSteps = serializers.IntegerField()
    toolCalls = serializers.IntegerField()
    latencyMs = serializers.IntegerField()
    cogsUsd = MoneyField()
    revenueUsd = MoneyField()


class SessionTraceSchema(serializers.Serializer):
    sessionId = serializers.CharField()
    startedAt = serializers.DateTimeField()
    endedAt = serializers.DateTimeField()
    durationSeconds = serializers.IntegerField()
    steps = TraceStepSchema(many=True)


class Tools(_Read):
    @extend_schema(parameters=PERIOD_PARAMETERS, responses=ToolRowSchema(many=True),
                   operation_id="agents_tools")
    def get(self, request):
        return Response([{"toolName": row.key, "invocations": row.events, **figures_json(row)}
                         for row in tools_breakdown(request.tenant, period_of(request))])


class ByAgent(_Read):
    @extend_schema(parameters=PERIOD_PARAMETERS, responses=AgentRowSchema(many=True),
                   operation_id="agents_by_agent")
    def get(self, request):
        return Response([{"agent": row.key, **figures_json(row)}
                         for row in agents_breakdown(request.tenant, period_of(request))])


class Sessions(_Read):
    @extend_schema(parameters=[*PERIOD_PARAMETERS, *PAGE_PARAMETERS, OpenApiParameter(
        "active", OpenApiTypes.BOOL, description="Only sessions with an event in the last "
                                                 "15 minutes")],
        responses=page_of(SessionRowSchema), operation_id="agents_sessions")
    def get(self, request):
        period, page = period_of(request), page_request(request.query_params)
        raw = (request.query_params.get("active") or "false").lower()
        if raw not in ("true", "false"):
            raise ApiError("active must be true or false.", field="active")
        rows, total = sessions_page(request.tenant, period, now=datetime.now(timezone.utc),
                                    offset=page.offset, limit=page.size,
                                    active_only=raw == "true")
        return Response(envelope([session_json(s) for s in rows], page, total))


class SessionDetail(_Read):
    @extend_schema(parameters=PERIOD_PARAMETERS, responses=SessionTraceSchema,
                   operation_id="agents_session_trace")
    def get(self, request, session_id: str):
        steps = session_trace(request.tenant, period_of(request), session_id)
        if not steps:
            raise NotFound("No events of this session in the period.", field="sessionId")
        return Response({
            "sessionId": session_id, "startedAt": _iso(steps[0].occurred_at),
            "endedAt": _iso(steps[-1].occurred_at),
            "durationSeconds": int((steps[-1].occurred_at
                                    - steps[0].occurred_at).total_seconds()),
            "steps": [{"eventId": s.event_id, "occurredAt": _iso(s.occurred_at),
                       "kind": s.kind, "agent": s.agent, "toolName": s.tool_name or None,
                       "provider": s.provider, "model": s.model,
                       "inputTokens": s.input_tokens, "outputTokens": s.output_tokens,
                       "reasoningTokens": s.reasoning_tokens,
                       "reasoningSteps": s.reasoning_steps, "toolCalls": s.tool_calls,
                       "latencyMs": s.latency_ms, "cogsUsd": usd(s.cogs_usd),
                       "revenueUsd": usd(s.revenue_usd)} for s in steps]})
