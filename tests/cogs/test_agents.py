"""Agent analytics per tool, session and agent, and a session's trace: the figures equal
hand-computed sums of events sent through the ingestion service, on both backends."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from aforo.models import Role
from tests.conftest import api_client
from tests.factories import attribute, ingest

pytestmark = pytest.mark.django_db
BASE = "/api/v1/analytics/agents"
PERIOD = {"from": "2026-06-10", "to": "2026-06-12"}
AT = datetime(2026, 6, 11, 9, 0, tzinfo=timezone.utc)


def _events() -> list[dict]:
    out = []
    for i in range(24):
        out.append({
            "eventId": f"a-{i:02d}", "occurredAt": AT + timedelta(seconds=37 * i + (i % 5)),
            "customerId": "acme", "productId": "p_agent", "sessionId": f"sess-{i % 3}",
            "agent": ("planner", "coder", "")[i % 3 if i % 4 else 1],
            "toolName": ("search", "code_exec", None)[i % 3] if i % 2 else None,
            "toolCalls": 1 if i % 2 else 0, "reasoningSteps": i % 4,
            "reasoningTokens": i if i % 4 == 3 else 0,
            "inputTokens": 100 + i, "outputTokens": 30 + i, "latencyMs": 50 + i,
            "provider": "Anthropic", "model": "claude-sonnet-4-6",
            "aiCogsUsd": f"0.0{i:02d}000007", "infraCogsUsd": "0.000000001"})
    return out


EVENTS = _events()
REVENUE = {e["eventId"]: Decimal(f"0.05{n}") for n, e in enumerate(EVENTS[:9])}
COGS = {e["eventId"]: Decimal(e["aiCogsUsd"]) + Decimal("0.000000001") for e in EVENTS}


@pytest.fixture
def agents_tenant(store, tenant, other_tenant):
    ingest(tenant, EVENTS)
    for event in EVENTS[:9]:
        attribute(tenant, event, REVENUE[event["eventId"]])
    ingest(other_tenant, EVENTS[:4])
    return tenant


def _expected(group: list[dict]) -> dict:
    cogs = sum(COGS[e["eventId"]] for e in group)
    revenue = sum((REVENUE.get(e["eventId"], Decimal(0)) for e in group), Decimal(0))
    return {"events": len(group), "inputTokens": sum(e["inputTokens"] for e in group),
            "outputTokens": sum(e["outputTokens"] for e in group),
            "toolCalls": sum(e["toolCalls"] for e in group),
            "reasoningSteps": sum(e["reasoningSteps"] for e in group),
            "cogsUsd": float(round(cogs, 6)), "revenueUsd": float(round(revenue, 6)),
            "marginUsd": float(round(revenue - cogs, 6)),
            "marginPct": float(round((revenue - cogs) / revenue * 100, 2)) if revenue else None}


def _check(row: dict, group: list[dict]) -> None:
    for name, value in _expected(group).items():
        assert row[name] == value, (name, row[name], value)


def test_per_tool_invocations_cost_revenue_and_margin(agents_tenant):
    rows = api_client(agents_tenant, Role.VIEWER).get(f"{BASE}/tools", PERIOD).json()
    tools = {e["toolName"] for e in EVENTS if e.get("toolName")}
    assert {r["toolName"] for r in rows} == tools
    for row in rows:
        group = [e for e in EVENTS if e.get("toolName") == row["toolName"]]
        assert row["invocations"] == len(group)
        _check(row, group)
    assert [r["cogsUsd"] for r in rows] == sorted((r["cogsUsd"] for r in rows), reverse=True)


def test_per_agent_takes_revenue_to_the_events_agent(agents_tenant):
    rows = {r["agent"]: r for r in api_client(agents_tenant).get(f"{BASE}/by-agent",
                                                                 PERIOD).json()}
    assert set(rows) == {e["agent"] for e in EVENTS}
    for agent, row in rows.items():
        _check(row, [e for e in EVENTS if e["agent"] == agent])
    assert sum(Decimal(str(r["revenueUsd"])) for r in rows.values()) == sum(REVENUE.values())


def test_per_session_duration_is_last_minus_first_occurred_at(agents_tenant):
    page = api_client(agents_tenant).get(f"{BASE}/sessions", {**PERIOD, "size": 2}).json()
    assert page["totalElements"] == 3 and page["totalPages"] == 2 and len(page["content"]) == 2
    everything = api_client(agents_tenant).get(f"{BASE}/sessions", PERIOD).json()["content"]
    for row in everything:
        group = [e for e in EVENTS if e["sessionId"] == row["sessionId"]]
        first = min(e["occurredAt"] for e in group)
        last = max(e["occurredAt"] for e in group)
        assert row["startedAt"] == first.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert row["endedAt"] == last.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert row["durationSeconds"] == (last - first).total_seconds()
        assert row["active"] is False
        _check(row, group)
    # most recent last event first
    assert [r["endedAt"] for r in everything] == sorted((r["endedAt"] for r in everything),
                                                        reverse=True)
    active = api_client(agents_tenant).get(f"{BASE}/sessions", {**PERIOD, "active": "true"})
    assert active.json()["totalElements"] == 0


def test_active_sessions_now(store, tenant):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    ingest(tenant, [{"eventId": "live-1", "occurredAt": now - timedelta(minutes=3),
                     "customerId": "c", "productId": "p", "sessionId": "live", "cogsUsd": "0.1"},
                    {"eventId": "old-1", "occurredAt": now - timedelta(hours=2),
                     "customerId": "c", "productId": "p", "sessionId": "old", "cogsUsd": "0.1"}])
    page = api_client(tenant).get(f"{BASE}/sessions", {"active": "true"}).json()
    assert [(r["sessionId"], r["active"]) for r in page["content"]] == [("live", True)]


def test_a_sessions_trace_in_time_order(agents_tenant):
    answer = api_client(agents_tenant).get(f"{BASE}/sessions/sess-1", PERIOD)
    assert answer.status_code == 200
    body = answer.json()
    group = sorted((e for e in EVENTS if e["sessionId"] == "sess-1"),
                   key=lambda e: (e["occurredAt"], e["eventId"]))
    assert [s["eventId"] for s in body["steps"]] == [e["eventId"] for e in group]
    assert body["durationSeconds"] == (group[-1]["occurredAt"]
                                       - group[0]["occurredAt"]).total_seconds()
    for step, event in zip(body["steps"], group, strict=True):
        assert step["agent"] == event["agent"] and step["latencyMs"] == event["latencyMs"]
        assert step["toolName"] == event.get("toolName")
        assert step["kind"] == ("TOOL" if event.get("toolName") or event["toolCalls"] else
                                "REASONING" if event["reasoningSteps"]
                                or event["reasoningTokens"] else "MODEL")
        assert step["cogsUsd"] == float(round(COGS[event["eventId"]], 6))
        assert step["revenueUsd"] == float(REVENUE.get(event["eventId"], 0))
    missing = api_client(agents_tenant).get(f"{BASE}/sessions/nope", PERIOD)
    assert missing.status_code == 404
    bad = api_client(agents_tenant).get(f"{BASE}/sessions", {"active": "maybe"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "active"
