"""The usage and agent rollups (event-store migration 0014) are caches of the ledger: after any
mix of ingests, cost corrections, carried revenue and attributions (REVENUE and SETTLE
entries), each holds what the raw ledger says, every usage and agent reader gives from them
what it gives from the raw ledger (and `ledger_hourly`), in UTC, in a whole-hour zone and in a
half-hour one, and the figures equal sums computed by hand from the events sent, on both
event-store backends."""
from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aforo import eventstore
from aforo.periods import Period
from aforo.tenancy import tenant_create
from cogs.queries import agents, usage
from tests.factories import cost_correction_entry, ingest, ledger_amounts, send_batch

pytestmark = pytest.mark.django_db
FIRST, LAST = date(2026, 4, 1), date(2026, 4, 3)
SESSIONS = [None, "s-1", "s-2", "s-3"]
money = ledger_amounts

batches = st.lists(st.lists(st.fixed_dictionaries({
    # Days just outside the period check its edges (sessions straddle them); a few shared
    # seconds make ties.
    "day": st.integers(min_value=-1, max_value=3),
    "second": st.one_of(st.sampled_from([0, 3_600, 43_200, 86_399]), st.integers(0, 86_399)),
    "customer": st.sampled_from(["cust_1", "cust_2", ""]),
    "product": st.sampled_from(["prod_a", "prod_b"]),
    "tool": st.sampled_from([None, "search", "code_exec"]),
    "agent": st.sampled_from([None, "planner", "coder"]),
    "session": st.sampled_from(SESSIONS),
    "tokens": st.integers(0, 5_000),
    "steps": st.integers(0, 3),
    "cost": money,
    "carried": st.one_of(st.none(), money),
    "correction": st.one_of(st.none(), money),
    "attributed": st.one_of(st.none(), money),
}), max_size=10), min_size=1, max_size=3)


def _send(tenant, generated) -> list[dict]:
    """Each batch its own ingest, then its corrections and attributions; the events sent,
    with what the ledger should then hold for each."""
    sent, n = [], 0
    for batch in generated:
        events, corrections, attributed = [], [], []
        for spec in batch:
            at = datetime.combine(FIRST + timedelta(days=spec["day"]), datetime.min.time(),
                                  tzinfo=timezone.utc) + timedelta(seconds=spec["second"])
            event = {"eventId": f"evt_{n}", "occurredAt": at, "customerId": spec["customer"],
                     "productId": spec["product"], "provider": "Anthropic", "model": "m",
                     "inputTokens": spec["tokens"], "outputTokens": spec["tokens"] // 3,
                     "toolCalls": 1 if spec["tool"] else 0, "reasoningSteps": spec["steps"],
                     "cogsUsd": spec["cost"]}
            for field, key in (("toolName", "tool"), ("agent", "agent"),
                               ("sessionId", "session"), ("revenueUsd", "carried")):
                if spec[key] is not None:
                    event[field] = spec[key]
            n += 1
            events.append(event)
            cogs = spec["cost"]
            if spec["correction"] is not None:
                corrections.append(cost_correction_entry(
                    tenant, event, unclassified_cogs_usd=spec["correction"]))
                cogs += spec["correction"]
            if spec["attributed"] is not None:
                attributed.append((event, spec["attributed"]))
            sent.append({**event, "at": at, "cogs": cogs,
                         "revenue": spec["attributed"] or Decimal(0)})
        send_batch(tenant, events, corrections, attributed)
    return sent


def _rows(tenant, sql: str) -> list[tuple]:
    return sorted(tuple(row.values()) for row in eventstore.tenant_query(tenant.slug, sql, {}))


UNITS = ("events", "tokens_in", "tokens_out", "tool_calls_n", "reasoning_steps_n")
RAW_UNITS = ("event_count", "input_tokens", "output_tokens", "tool_calls", "reasoning_steps")
COGS = "ai_cogs_usd + infra_cogs_usd + fee_cogs_usd + unclassified_cogs_usd"


def _assert_rollups_equal_the_ledger(tenant) -> None:
    units = ", ".join(f"toInt64(sum({u}))" for u in UNITS)
    raw = ", ".join(f"toInt64(sumIf({c}, entry_type = 'COST'))" for c in RAW_UNITS)
    assert _rows(tenant, (
        f"SELECT day, customer_id, {units} FROM usage_daily_customers "
        "WHERE tenant_id = %(tenant_id)s GROUP BY day, customer_id")) == _rows(tenant, (
            f"SELECT toDate(occurred_at) AS d, customer_id, {raw} FROM ledger "
            "WHERE tenant_id = %(tenant_id)s AND entry_type = 'COST' GROUP BY d, customer_id"))
    money = ("sum(cogs), sum(revenue), sum(revenue_carried), sum(revenue_rated)")
    raw_money = (f"sumIf({COGS}, entry_type = 'COST'), "
                 "sumIf(revenue_usd, entry_type = 'REVENUE'), "
                 "sumIf(carried_revenue_usd, entry_type IN ('COST', 'SETTLE')), "
                 "sumIf(rated_revenue_usd, entry_type IN ('COST', 'SETTLE'))")
    # SummingMergeTree drops a row whose sums are all zero when it merges: compare the rest.
    served = [row for row in _rows(tenant, (
        f"SELECT hour, product_id, tool_name, agent, {units}, {money} "
        "FROM usage_hourly_agents WHERE tenant_id = %(tenant_id)s "
        "GROUP BY hour, product_id, tool_name, agent")) if any(row[4:])]
    assert served == [row for row in _rows(tenant, (
        f"SELECT toStartOfHour(occurred_at) AS h, product_id, tool_name, agent, {raw}, "
        f"{raw_money} FROM ledger WHERE tenant_id = %(tenant_id)s "
        "GROUP BY h, product_id, tool_name, agent")) if any(row[4:])]
    original = "entry_type = 'COST' AND entry_kind = 'ORIGINAL'"
    assert _rows(tenant, (
        "SELECT session_id, minIfMerge(started), maxIfMerge(ended), "
        + ", ".join(f"toInt64(sumIfMerge({u}))" for u in UNITS)
        + ", sumIfMerge(cogs), sumIfMerge(revenue), sumIfMerge(revenue_carried), "
        "sumIfMerge(revenue_rated) FROM agent_sessions WHERE tenant_id = %(tenant_id)s "
        "GROUP BY session_id")) == _rows(tenant, (
            f"SELECT session_id, minIf(occurred_at, {original}), "
            f"maxIf(occurred_at, {original}), {raw}, {raw_money} FROM ledger "
            "WHERE tenant_id = %(tenant_id)s AND session_id != '' GROUP BY session_id"))


PERIODS = [Period(first=FIRST, last=LAST),
           Period(first=FIRST, last=LAST, time_zone="America/New_York"),
           Period(first=FIRST, last=LAST, time_zone="Asia/Kolkata")]


def _all_pages(tenant, period, *, active_only: bool, use_rollups: bool, now: datetime):
    rows, offset = [], 0
    while True:
        page, total = agents.sessions_page(tenant, period, now=now, offset=offset, limit=2,
                                           active_only=active_only, use_rollups=use_rollups)
        rows += page
        offset += 2
        if offset >= total:
            return rows, total


def _assert_readers_equal_the_raw_ones(tenant) -> None:
    for period in PERIODS:
        for reader in (usage.usage_by_billable_unit, usage.usage_by_customer,
                       usage.usage_by_product_type, agents.tools_breakdown,
                       agents.agents_breakdown):
            assert reader(tenant, period) == reader(tenant, period, use_rollups=False), (
                reader.__name__, period)
        for now in (period.end_at - timedelta(minutes=5), period.start_at + timedelta(hours=5)):
            for active_only in (False, True):
                served = _all_pages(tenant, period, active_only=active_only, use_rollups=True,
                                    now=now)
                assert served == _all_pages(tenant, period, active_only=active_only,
                                            use_rollups=False, now=now), (period, now)
                assert served[1] == len(served[0])
                page, total = agents.sessions_page(tenant, period, now=now, offset=1, limit=1,
                                                   active_only=active_only)
                assert (page, total) == agents.sessions_page(
                    tenant, period, now=now, offset=1, limit=1, active_only=active_only,
                    use_rollups=False)
        for session in SESSIONS[1:] + ["s-none"]:
            assert agents.session_trace(tenant, period, session) == agents.session_trace(
                tenant, period, session, use_rollups=False)


def _assert_hand_sums(tenant, sent: list[dict]) -> None:
    """The UTC period's figures against the events sent (the period is FIRST..LAST; the
    events of the days either side are outside)."""
    period = PERIODS[0]
    inside = [e for e in sent if period.start_at <= e["at"] < period.end_at]
    by_unit = {u.unit: u for u in usage.usage_by_billable_unit(tenant, period, top=100)}
    assert by_unit[usage.Unit.EVENTS].total == len(inside)
    assert by_unit[usage.Unit.INPUT_TOKENS].total == sum(e["inputTokens"] for e in inside)
    assert by_unit[usage.Unit.REASONING_STEPS].total == sum(e["reasoningSteps"] for e in inside)
    per_customer = defaultdict(int)
    for e in inside:
        per_customer[e["customerId"]] += e["toolCalls"]
    assert dict(by_unit[usage.Unit.TOOL_CALLS].top_customers) == {
        c: n for c, n in per_customer.items() if n}
    tools = {row.key: row for row in agents.tools_breakdown(tenant, period)}
    for tool in ("search", "code_exec"):
        named = [e for e in inside if e.get("toolName") == tool]
        if not named:
            assert tool not in tools
            continue
        assert tools[tool].events == len(named)
        assert tools[tool].cogs_usd == sum(e["cogs"] for e in named)
        assert tools[tool].revenue_usd == sum(e["revenue"] for e in named)
    by_agent = {row.key: row for row in agents.agents_breakdown(tenant, period)}
    for agent in ("planner", "coder", ""):
        named = [e for e in inside if (e.get("agent") or "") == agent]
        assert (by_agent[agent].events if agent in by_agent else 0) == len(named)
        if named:
            assert by_agent[agent].cogs_usd == sum(e["cogs"] for e in named)
    sessions, total = agents.sessions_page(tenant, period, now=period.end_at, offset=0,
                                           limit=10)
    expected = {s for s in SESSIONS[1:] if any(e.get("sessionId") == s for e in inside)}
    assert total == len(expected) == len(sessions)
    for session in sessions:
        own = [e for e in inside if e.get("sessionId") == session.session_id]
        first, last = min(e["at"] for e in own), max(e["at"] for e in own)
        assert (session.started_at, session.ended_at) == (first, last)
        assert session.duration_seconds == int((last - first).total_seconds())
        assert session.figures.events == len(own)
        assert session.figures.cogs_usd == sum(e["cogs"] for e in own)
        assert session.figures.revenue_usd == sum(e["revenue"] for e in own)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(generated=batches)
def test_the_usage_and_agent_rollups_equal_the_ledger_and_serve_the_same_figures(store,
                                                                                 generated):
    tenant = tenant_create(slug=f"ur-{uuid.uuid4().hex[:12]}", name="Usage rollups")
    sent = _send(tenant, generated)
    _assert_rollups_equal_the_ledger(tenant)
    _assert_readers_equal_the_raw_ones(tenant)
    _assert_hand_sums(tenant, sent)


def test_a_long_session_straddling_both_bounds_is_the_period_s_part(store):
    """A session with events before, in and after the period: its page row is what the
    period holds of it, from the ledger; one wholly inside comes from the rollup."""
    tenant = tenant_create(slug=f"ur-{uuid.uuid4().hex[:12]}", name="Usage rollups")
    start = datetime(2026, 4, 1, tzinfo=timezone.utc)
    ingest(tenant, [{"eventId": f"e{i}", "occurredAt": start + timedelta(hours=h),
                     "customerId": "c", "productId": "p", "sessionId": session,
                     "cogsUsd": "0.01"}
                    for i, (h, session) in enumerate([(-5, "long"), (3, "long"), (80, "long"),
                                                      (4, "short"), (6, "short")])])
    period = PERIODS[0]
    rows, total = agents.sessions_page(tenant, period, now=start, offset=0, limit=10)
    assert total == 2
    assert [(s.session_id, s.figures.events, s.duration_seconds) for s in rows] == [
        ("short", 2, 7200), ("long", 1, 0)]
    assert (rows, total) == agents.sessions_page(tenant, period, now=start, offset=0,
                                                 limit=10, use_rollups=False)


def _contents(tenant, table: str) -> list[tuple]:
    """A 0014 table's rows of the tenant, merged by key (sums, or the sessions' states)."""
    money = ("cogs", "revenue", "revenue_carried", "revenue_rated")
    if table.startswith("agent_sessions"):
        return _rows(tenant, (
            "SELECT session_id, minIfMerge(started), maxIfMerge(ended), "
            + ", ".join(f"sumIfMerge({m})" for m in (*UNITS, *money))
            + f" FROM {table} WHERE tenant_id = %(tenant_id)s GROUP BY session_id"))
    keys = ("day, customer_id" if table.startswith("usage_daily_customers")
            else "hour, product_id, tool_name, agent")
    measures = (*UNITS, *(money if "hourly" in table else ()))
    return _rows(tenant, (
        f"SELECT {keys}, " + ", ".join(f"sum({m})" for m in measures)
        + f" FROM {table} WHERE tenant_id = %(tenant_id)s GROUP BY {keys}"))


def test_the_migration_s_copy_holds_what_the_views_fed(store):
    """0014 copies what the ledger holds with the SELECT its views run: the copy of a ledger
    the views fed equals what they wrote."""
    from importlib import import_module

    from aforo.eventstore.migrate import topology_for

    tenant = tenant_create(slug=f"ur-{uuid.uuid4().hex[:12]}", name="Usage rollups")
    at = datetime(2026, 4, 2, 12, tzinfo=timezone.utc)
    events = [{"eventId": f"c{n}", "occurredAt": at + timedelta(minutes=17 * n),
               "customerId": f"cust_{n % 3}", "productId": "p", "sessionId": f"s{n % 4}",
               "agent": ("planner", "")[n % 2], "toolName": "search" if n % 3 else None,
               "toolCalls": n % 2, "reasoningSteps": n % 3, "inputTokens": 10 * n,
               "cogsUsd": "0.01", **({"revenueUsd": "0.02"} if n % 5 == 0 else {})}
              for n in range(20)]
    send_batch(tenant, events, [cost_correction_entry(tenant, events[1],
                                                      unclassified_cogs_usd=Decimal("0.5"))],
               [(events[2], Decimal("0.3"))])
    statements = import_module("aforo.eventstore.migrations.0014_usage_rollups").statements(
        topology_for(eventstore.get_store()))
    for table in ("usage_daily_customers", "usage_hourly_agents", "agent_sessions"):
        copy = next(s for s in statements if s.startswith(f"INSERT INTO {table} "))
        eventstore.command(f"DROP TABLE IF EXISTS {table}_copy")
        eventstore.command(f"CREATE TABLE {table}_copy AS {table}")
        try:
            eventstore.command(copy.replace(f"INSERT INTO {table} ",
                                            f"INSERT INTO {table}_copy ", 1))
            assert _contents(tenant, f"{table}_copy") == _contents(tenant, table)
            assert _contents(tenant, table)
        finally:
            eventstore.command(f"DROP TABLE IF EXISTS {table}_copy")
