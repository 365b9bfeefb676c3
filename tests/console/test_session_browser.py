"""A session's trace in a real browser, reached from its event's Transactions row: the steps
in time order with their kind, the trace figure, the session's totals."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tests.console.browsing import ARTIFACTS, BROWSER_TESTS, log_in, off_the_loop
from tests.console.conftest import console_user
from tests.factories import ingest

pytestmark = BROWSER_TESTS
STEPS = [("plan", {"reasoningSteps": 2, "outputTokens": 40, "reasoningTokens": 30}),
         ("search", {"toolName": "web_search", "toolCalls": 1}),
         ("answer", {"outputTokens": 300})]


@pytest.fixture
def world(browser_store, tenant):
    at = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)
    events = [{"eventId": f"task-{name}", "occurredAt": at + timedelta(seconds=20 * n),
               "customerId": "acme", "productId": "p_agent", "sessionId": "task/42",
               "agent": "support-bot", "provider": "Anthropic", "model": "claude-sonnet-4-6",
               "inputTokens": 500, "aiCogsUsd": f"0.0{n + 1}", **fields}
              for n, (name, fields) in enumerate(STEPS)]
    off_the_loop(ingest, tenant, events)
    console_user(tenant, "finance")
    return tenant


def test_a_transactions_row_opens_its_sessions_trace(world, page):
    log_in(page)
    page.goto("/console/cogs/transactions/?period=7d")
    row = page.locator('tr.tx[data-event-id="task-search"]')
    row.get_by_role("button").click()
    # the detail row just opened, below the row, links the event's session
    page.locator('tr.tx-detail:not([hidden]) [data-session-link="task/42"]').click()
    page.wait_for_url("**/console/cogs/sessions/task/42/**")
    steps = page.locator("table[data-table=session-trace] tbody tr")
    assert [steps.nth(i).get_attribute("data-step") for i in range(3)] == [
        "task-plan", "task-search", "task-answer"]
    assert [steps.nth(i).get_attribute("data-kind") for i in range(3)] == [
        "REASONING", "TOOL", "MODEL"]
    assert page.locator('[data-kpi="duration"] .kpi-value').get_attribute("data-value") == "40"
    assert Decimal(page.locator('[data-kpi="cogs"] .kpi-value').get_attribute(
        "data-value")) == Decimal("0.06")
    page.wait_for_function(
        "document.querySelectorAll('[data-figure][data-rendered=true]').length === 1",
        timeout=15000)
    assert page.locator('[data-figure="fig-session-trace"] .scatterlayer .trace').count() == 3
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-session-trace.png"), full_page=True)
    assert page.errors == [] and page.dialogs == []
