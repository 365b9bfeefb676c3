"""Agent analytics: per tool, per session and per agent (invocations, usage, cost, revenue and
margin), and one session's trace, its events in time order.

Tools, sessions and agents are only on the raw ledger (no rollup holds them), so these readers
scan the period's entries of the tenant. REVENUE entries carry their event's tool and session,
so those group directly. The per-agent figures first sum each event's entries and take its
agent from its original COST entry: REVENUE entries written before attribution copied `agent`
carry none, and their revenue still lands on the event's agent.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from aforo.ledger.query import ORIGINAL_COST, LedgerQuery, tenant_sql
from aforo.models import Tenant
from aforo.periods import Period
from cogs.margins import ZERO, ExpectedMargin, Margin

ACTIVE_WITHIN = timedelta(minutes=15)  # a session whose last event is this recent is active
GROUP_MEASURES = ("events", "tokens_in", "tokens_out", "tool_calls_n", "reasoning_steps_n",
                  "cogs", "revenue", "revenue_carried", "revenue_rated")


@dataclass(frozen=True)
class AgentFigures(Margin, ExpectedMargin):
    """Usage, cost and revenue of one tool, session or agent."""

    key: str
    events: int
    input_tokens: int
    output_tokens: int
    tool_calls: int
    reasoning_steps: int
    cogs_usd: Decimal
    revenue_usd: Decimal  # attributed
    settling_revenue_usd: Decimal  # provisional (carried + rated) of events not attributed yet


def _figures(row: dict, key: str) -> AgentFigures:
    return AgentFigures(
        key=row[key], events=int(row["events"]), input_tokens=int(row["tokens_in"]),
        output_tokens=int(row["tokens_out"]), tool_calls=int(row["tool_calls_n"]),
        reasoning_steps=int(row["reasoning_steps_n"]), cogs_usd=row["cogs"],
        revenue_usd=row["revenue"],
        settling_revenue_usd=row["revenue_carried"] + row["revenue_rated"])


def _ranked(rows: list[AgentFigures]) -> list[AgentFigures]:
    return sorted(rows, key=lambda r: (-r.cogs_usd, -r.events, r.key))


def tools_breakdown(tenant: Tenant, period: Period) -> list[AgentFigures]:
    """Per tool (events naming a tool), highest COGS first; `events` is its invocations."""
    rows = (LedgerQuery(tenant.slug).period(period).where_sql("tool_name != ''")
            .dimensions("tool_name").measures(*GROUP_MEASURES).group_by("tool_name").fetch())
    return _ranked([_figures(row, "tool_name") for row in rows if int(row["events"])])


def agents_breakdown(tenant: Tenant, period: Period) -> list[AgentFigures]:
    """Per agent (the event's `agent`; '' for events that name none), highest COGS first."""
    per_event = (LedgerQuery(tenant.slug).period(period).dimensions("event_id")
                 .expressions(f"anyIf(agent, {ORIGINAL_COST}) AS agent_of")
                 .measures(*GROUP_MEASURES).group_by("event_id"))
    inner, params = per_event.sql()
    sums = ", ".join(f"sum({m}) AS {m}" for m in GROUP_MEASURES)
    rows = tenant_sql(tenant.slug, f"SELECT agent_of, {sums} FROM ({inner}) "
                                   "GROUP BY agent_of", params)
    return _ranked([_figures(row, "agent_of") for row in rows if int(row["events"])])


@dataclass(frozen=True)
class SessionFigures:
    figures: AgentFigures
    started_at: datetime
    ended_at: datetime
    active: bool

    @property
    def session_id(self) -> str:
        return self.figures.key

    @property
    def duration_seconds(self) -> int:
        """The last event's occurredAt minus the first's."""
        return int((self.ended_at - self.started_at).total_seconds())


_SESSION_BOUNDS = (f"minIf(occurred_at, {ORIGINAL_COST}) AS started",
                   f"maxIf(occurred_at, {ORIGINAL_COST}) AS ended")


def _sessions(tenant: Tenant, period: Period, active_since: datetime | None) -> LedgerQuery:
    query = (LedgerQuery(tenant.slug).period(period).where_sql("session_id != ''")
             .dimensions("session_id").expressions(*_SESSION_BOUNDS)
             .measures(*GROUP_MEASURES).group_by("session_id").having("events > 0"))
    if active_since is not None:
        query = query.having(f"maxIf(occurred_at, {ORIGINAL_COST}) >= %(active_since)s",
                             active_since=active_since)
    return query


def sessions_page(tenant: Tenant, period: Period, *, now: datetime, offset: int, limit: int,
                  active_only: bool = False) -> tuple[list[SessionFigures], int]:
    """Sessions (events with a sessionId), the most recent last event first, one page; and
    how many there are. `active_only`: those with an event in the last 15 minutes."""
    since = now - ACTIVE_WITHIN
    query = _sessions(tenant, period, since if active_only else None)
    inner, params = query.sql()
    total = int(tenant_sql(tenant.slug, f"SELECT count() AS n FROM ({inner})", params)[0]["n"])
    rows = query.order_by("ended DESC", "session_id").limit(limit, offset).fetch()
    return [SessionFigures(figures=_figures(row, "session_id"), started_at=row["started"],
                           ended_at=row["ended"], active=row["ended"] >= since)
            for row in rows], total


@dataclass(frozen=True)
class TraceStep:
    """One event of a session, with what it consumed and cost."""

    event_id: str
    occurred_at: datetime
    agent: str
    tool_name: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    reasoning_steps: int
    tool_calls: int
    latency_ms: int
    cogs_usd: Decimal
    revenue_usd: Decimal

    @property
    def kind(self) -> str:
        """The trace's step kind: a tool call, reasoning, or a model call."""
        if self.tool_name or self.tool_calls:
            return "TOOL"
        if self.reasoning_steps or self.reasoning_tokens:
            return "REASONING"
        return "MODEL"


_TRACE_DIMENSIONS = ("agent", "tool_name", "provider", "model")
MAX_TRACE = 1000


def session_trace(tenant: Tenant, period: Period, session_id: str) -> list[TraceStep]:
    """The session's events in time order (ties by event id), each its entries summed; at
    most MAX_TRACE."""
    rows = (LedgerQuery(tenant.slug).period(period).where(session_id=session_id)
            .dimensions("event_id")
            .expressions(f"minIf(occurred_at, {ORIGINAL_COST}) AS at",
                         *(f"anyIf({d}, {ORIGINAL_COST}) AS {d}_of" for d in _TRACE_DIMENSIONS),
                         f"toInt64(maxIf(latency_ms, {ORIGINAL_COST})) AS latency",
                         f"countIf({ORIGINAL_COST}) AS originals")
            .measures("tokens_in", "tokens_out", "tokens_reasoning", "reasoning_steps_n",
                      "tool_calls_n", "cogs", "revenue")
            .group_by("event_id").having(f"countIf({ORIGINAL_COST}) > 0")
            .order_by("at", "event_id").limit(MAX_TRACE).fetch())
    return [TraceStep(
        event_id=row["event_id"], occurred_at=row["at"], agent=row["agent_of"],
        tool_name=row["tool_name_of"], provider=row["provider_of"], model=row["model_of"],
        input_tokens=int(row["tokens_in"]), output_tokens=int(row["tokens_out"]),
        reasoning_tokens=int(row["tokens_reasoning"]),
        reasoning_steps=int(row["reasoning_steps_n"]), tool_calls=int(row["tool_calls_n"]),
        latency_ms=int(row["latency"]), cogs_usd=row["cogs"] or ZERO,
        revenue_usd=row["revenue"] or ZERO) for row in rows]
