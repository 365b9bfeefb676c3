"""Agent analytics: per tool, per session and per agent (invocations, usage, cost, revenue and
margin), and one session's trace, its events in time order.

Tools and agents read `usage_hourly_agents` (0014: per UTC hour, product, tool and agent, the
units, COGS and revenue of every entry), sessions `agent_sessions` (0014: one row per session,
its first and last occurredAt and its sums as aggregate states). Every entry of an event (COST,
corrections, REVENUE, SETTLE) carries the event's occurred_at, tool, session and agent, so each
entry's own columns group it with its event, and a session whose first and last event lie in the
period has all its entries there.

With `use_rollups=False` (and for a period whose bounds are not whole UTC hours: a half-hour time
zone) the same figures are read from the raw ledger: the per-agent ones sum each event's entries
and take its agent from its original COST entry (REVENUE entries written before attribution
copied `agent` carry none; the rollup, fed entry by entry, puts those on agent ''). Tests
compare the two.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from aforo.ledger.query import ORIGINAL_COST, LedgerQuery, Table, tenant_sql
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


def _whole_hours(period: Period) -> bool:
    """Whether the period's instants are UTC hours, which the hourly rollup can answer."""
    return all(moment.minute == 0 and moment.second == 0 and moment.microsecond == 0
               for moment in (period.start_at, period.end_at))


def _hourly(tenant: Tenant, period: Period, use_rollups: bool) -> LedgerQuery | None:
    if use_rollups and _whole_hours(period):
        return LedgerQuery(tenant.slug, Table.USAGE_HOURLY).period(period)
    return None


def tools_breakdown(tenant: Tenant, period: Period, *,
                    use_rollups: bool = True) -> list[AgentFigures]:
    """Per tool (events naming a tool), highest COGS first; `events` is its invocations."""
    query = _hourly(tenant, period, use_rollups) or LedgerQuery(tenant.slug).period(period)
    rows = (query.where_sql("tool_name != ''").dimensions("tool_name")
            .measures(*GROUP_MEASURES).group_by("tool_name").fetch())
    return _ranked([_figures(row, "tool_name") for row in rows if int(row["events"])])


def agents_breakdown(tenant: Tenant, period: Period, *,
                     use_rollups: bool = True) -> list[AgentFigures]:
    """Per agent (the event's `agent`; '' for events that name none), highest COGS first."""
    hourly = _hourly(tenant, period, use_rollups)
    if hourly is not None:
        rows = (hourly.dimensions("agent").measures(*GROUP_MEASURES).group_by("agent")
                .fetch())
        return _ranked([_figures(row, "agent") for row in rows if int(row["events"])])
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


def _session(row: dict, since: datetime, started: str = "started",
             ended: str = "ended") -> SessionFigures:
    return SessionFigures(figures=_figures(row, "session_id"), started_at=row[started],
                          ended_at=row[ended], active=row[ended] >= since)


# A session's first and last ORIGINAL COST occurred_at, merged from agent_sessions' states.
_ROLLUP_BOUNDS = ("minIfMerge(started) AS first_at", "maxIfMerge(ended) AS last_at")
_INSIDE = "first_at >= %(s_start)s AND last_at < %(s_end)s"


def _session_rollup(tenant: Tenant) -> LedgerQuery:
    return (LedgerQuery(tenant.slug, Table.SESSIONS).dimensions("session_id")
            .expressions(*_ROLLUP_BOUNDS).group_by("session_id"))


def sessions_page(tenant: Tenant, period: Period, *, now: datetime, offset: int, limit: int,
                  active_only: bool = False,
                  use_rollups: bool = True) -> tuple[list[SessionFigures], int]:
    """Sessions (events with a sessionId), the most recent last event first, one page; and
    how many there are. `active_only`: those with an event in the last 15 minutes.

    From agent_sessions: the sessions whose first and last events lie in the period are read
    there; those that straddle a bound (their figures are only the period's part) are summed
    from the ledger, over the period's stretch their events can be in, and merged in."""
    since = now - ACTIVE_WITHIN
    if not use_rollups:
        query = _sessions(tenant, period, since if active_only else None)
        inner, params = query.sql()
        total = int(tenant_sql(tenant.slug, f"SELECT count() AS n FROM ({inner})",
                               params)[0]["n"])
        rows = query.order_by("ended DESC", "session_id").limit(limit, offset).fetch()
        return [_session(row, since) for row in rows], total
    bounds = _session_rollup(tenant).having(
        "last_at >= %(s_start)s AND first_at < %(s_end)s",
        s_start=period.start_at, s_end=period.end_at)
    if active_only:  # an in-period last event is never later than the session's last
        bounds = bounds.having("last_at >= %(active_since)s", active_since=since)
    inner, params = bounds.sql()
    # One read: the inside sessions counted under '' (no session has that id), each
    # straddling one with its bounds.
    classes = tenant_sql(tenant.slug, (
        f"SELECT if({_INSIDE}, '', session_id) AS straddling, min(first_at) AS lo, "
        f"max(last_at) AS hi, count() AS n FROM ({inner}) GROUP BY straddling"), params)
    inside = sum(int(row["n"]) for row in classes if not row["straddling"])
    straddling = [row for row in classes if row["straddling"]]
    # The page is among the first offset + limit inside sessions and the straddling ones:
    # their bounds decide it, then only its inside sessions' figures are merged.
    edges = _straddling(tenant, period, straddling, since, active_only) if straddling else []
    firsts = (bounds.having(_INSIDE).order_by("last_at DESC", "session_id")
              .limit(offset + limit).fetch()) if inside else []
    ranked = sorted([*((s.ended_at, s.session_id, s) for s in edges),
                     *((row["last_at"], row["session_id"], None) for row in firsts)],
                    key=lambda r: (-r[0].timestamp(), r[1]))[offset:offset + limit]
    wanted = [session_id for _at, session_id, edge in ranked if edge is None]
    figures = {row["session_id"]: _session(row, since, "first_at", "last_at") for row in (
        _session_rollup(tenant).where_in("session_id", wanted).measures(*GROUP_MEASURES)
        .fetch())} if wanted else {}
    return ([edge or figures[session_id] for _at, session_id, edge in ranked],
            inside + len(edges))


def _straddling(tenant: Tenant, period: Period, straddling: list[dict], since: datetime,
                active_only: bool) -> list[SessionFigures]:
    """The period's part of sessions that straddle its start or end, from the ledger: a
    session starting before the period has its events there up to its last, one ending after
    from its first on."""
    start, end = period.start_at, period.end_at
    left_to = max((row["hi"] for row in straddling if row["lo"] < start),
                  default=start - timedelta(seconds=1))
    right_from = min((row["lo"] for row in straddling if row["hi"] >= end), default=end)
    rows = (_sessions(tenant, period, since if active_only else None)
            .where_in("session_id", [row["straddling"] for row in straddling])
            .where_sql("(occurred_at <= %(left_to)s OR occurred_at >= %(right_from)s)",
                       left_to=left_to, right_from=right_from).fetch())
    return [_session(row, since) for row in rows]


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


def session_trace(tenant: Tenant, period: Period, session_id: str, *,
                  use_rollups: bool = True) -> list[TraceStep]:
    """The session's events in time order (ties by event id), each its entries summed; at
    most MAX_TRACE. agent_sessions gives the session's first and last occurredAt, so the
    ledger is read over that stretch only (its order key starts with occurred_at)."""
    query = LedgerQuery(tenant.slug).period(period).where(session_id=session_id)
    if use_rollups:
        bounds = _session_rollup(tenant).where(session_id=session_id).fetch()
        if not bounds:
            return []
        query = query.between(bounds[0]["first_at"],
                              bounds[0]["last_at"] + timedelta(seconds=1))
    rows = (query.dimensions("event_id")
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
