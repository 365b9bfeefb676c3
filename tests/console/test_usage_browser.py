"""The Usage tab in a real browser: the unit totals of ingested events, the daily trend drawn
with one line per unit used, the top customers of a chosen unit."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.console.browsing import ARTIFACTS, BROWSER_TESTS, log_in, off_the_loop
from tests.console.conftest import console_user
from tests.factories import ingest

pytestmark = BROWSER_TESTS


@pytest.fixture
def world(browser_store, tenant):
    at = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=3)
    events = [{"eventId": f"u-{i}", "occurredAt": at + timedelta(hours=i * 3),
               "customerId": ("acme", "<b>bold</b>")[i % 2], "productId": "p_agent",
               "productType": "AI_AGENT", "inputTokens": 1000 + i, "outputTokens": 100,
               "toolCalls": 2, "aiCogsUsd": "0.01"} for i in range(20)]
    off_the_loop(ingest, tenant, events)
    console_user(tenant, "finance")
    return tenant


def test_usage_tab_totals_trend_and_top_customers(world, page):
    log_in(page)
    page.get_by_role("navigation", name="COGS & Margins tabs").get_by_role(
        "link", name="Usage").click()
    assert page.locator('[data-unit="EVENTS"] [data-total]').get_attribute("data-total") == "20"
    assert page.locator('[data-unit="TOOL_CALLS"] [data-total]').get_attribute(
        "data-total") == "40"
    assert page.locator('[data-unit="INPUT_TOKENS"] [data-total]').get_attribute(
        "data-total") == str(sum(1000 + i for i in range(20)))
    page.wait_for_function(
        "document.querySelectorAll('[data-figure][data-rendered=true]').length === 2",
        timeout=15000)
    # events, input and output tokens and tool calls were used; reasoning steps were not
    assert page.locator('[data-figure="fig-usage-trend"] .scatterlayer .trace').count() == 4
    page.get_by_label("Top customers by").select_option("TOOL_CALLS")
    page.get_by_role("button", name="Show").click()
    page.wait_for_function(
        "document.querySelectorAll('[data-figure][data-rendered=true]').length === 2",
        timeout=15000)
    assert page.locator('[data-figure="fig-usage-top"] .bars .point').count() == 2
    # a customer named with markup is text, never markup
    assert page.locator('tr[data-customer="<b>bold</b>"]').inner_text().startswith(
        "<b>bold</b>")
    assert page.locator('tr[data-product-type="AI_AGENT"]').count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-usage.png"), full_page=True)
    assert page.errors == [] and page.dialogs == []
