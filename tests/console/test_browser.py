"""The console in headless Chromium (Debian's, never a downloaded one) against a live Daphne.

Log in, every tab draws its charts, the period selector moves the KPIs to the API's figures,
an event posted to the API shows up in the live ledger within 2 s, rows expand (mouse and
keyboard), and a customer called `<script>alert(1)</script>` is only ever text.
Screenshots of every tab land in tests/artifacts/ (git-ignored).
"""
from __future__ import annotations

import json
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from aforo.tenancy import api_token_create
from tests.console.browsing import (
    ARTIFACTS,
    BROWSER_TESTS,
    LIVE_WITHIN_MS,
    log_in,
    off_the_loop,
)
from tests.console.conftest import XSS, console_user, hours_ago, seed

pytestmark = BROWSER_TESTS

@pytest.fixture
def world(browser_store, tenant):
    off_the_loop(seed, tenant)
    user = console_user(tenant, "finance")
    token = api_token_create(tenant=tenant, role="OWNER").raw
    return {"tenant": tenant, "user": user, "token": token}


def api_get(base: str, world: dict, path: str, **params) -> dict:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    request = urllib.request.Request(f"{base}{path}?{query}", headers={
        "Authorization": f"Bearer {world['token']}", "X-Tenant-Id": world["tenant"].slug})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def api_post_events(base: str, world: dict, events: list[dict]) -> dict:
    request = urllib.request.Request(
        f"{base}/api/v1/events", data=json.dumps({"events": events}).encode(), method="POST",
        headers={"Authorization": f"Bearer {world['token']}",
                 "X-Tenant-Id": world["tenant"].slug, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def charts_drawn(page) -> int:
    """Wait until every figure on the page is drawn; return how many there are."""
    expected = page.locator("[data-figure]").count()
    if expected:
        page.wait_for_function(
            "n => document.querySelectorAll('[data-figure][data-rendered=true]').length === n",
            arg=expected, timeout=15000)
    return expected


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"console-{name}.png"), full_page=True)


def test_log_in_and_every_tab_draws_its_charts(world, page):
    log_in(page)
    assert page.get_by_role("heading", name="COGS & Margins").is_visible()
    # tab: (charts on it, screenshot name)
    tabs = {"Overview": (2, "overview"), "P&L Analysis": (1, "pnl"),
            "Cost Breakdown": (4, "cost-breakdown"), "Transactions": (0, "transactions"),
            "Budgets & Alerts": (0, "budgets")}
    page.get_by_role("link", name="7D").click()
    page.wait_for_url("**period=7d")
    for title, (figures, slug) in tabs.items():
        page.get_by_role("navigation", name="COGS & Margins tabs").get_by_role(
            "link", name=title).click()
        page.wait_for_load_state()
        assert "period=7d" in page.url  # the period follows every tab
        assert charts_drawn(page) == figures, title
        shot(page, slug)
        if title == "Overview":
            assert page.locator("#content .scatterlayer .trace").count() == 3
            assert page.locator("#content .pielayer .slice").count() == 3
            assert page.locator('[data-table="anomalies"]').get_by_text("tr-spike").is_visible()
        if title == "Cost Breakdown":
            # Four segments in one bar, Unclassified among them.
            composition = page.locator('[data-figure="fig-composition"]')
            assert composition.locator(".barlayer .trace").count() == 4
            assert composition.locator(".legendtext", has_text="Unclassified").count() == 1
            assert page.locator('[data-card="tokens"]').get_by_text("16,450").is_visible()
        if title == "P&L Analysis":
            assert page.locator(".badge.tag-UNPROFITABLE").first.is_visible()
            assert page.locator(".badge.tag-HIGH_VALUE").first.is_visible()
        if title == "Transactions":
            assert page.locator("#ledger-rows tr.tx").count() == 25
    assert page.errors == [] and page.dialogs == []


def kpis_on(page) -> dict[str, Decimal | None]:
    values = {}
    for kpi in page.locator("[data-kpi]").all():
        raw = kpi.locator(".kpi-value").get_attribute("data-value")
        values[kpi.get_attribute("data-kpi")] = Decimal(raw) if raw else None
    return values


def assert_kpis_match_api(page, live_server_url, world, first: str, last: str) -> None:
    expected = api_get(live_server_url, world, "/api/v1/analytics/cogs/dashboard",
                       **{"from": first, "to": last})
    shown = kpis_on(page)
    six = Decimal("0.000001")
    assert shown["total-cogs"].quantize(six) == Decimal(str(expected["totalCogsUsd"]))
    assert shown["revenue"].quantize(six) == Decimal(str(expected["revenueUsd"]))
    assert shown["gross-margin"].quantize(Decimal("0.01")) == \
        Decimal(str(expected["grossMarginPct"]))
    assert shown["cost-per-event"].quantize(six) == Decimal(str(expected["costPerEventUsd"]))
    assert shown["ai-spend"].quantize(six) == Decimal(str(expected["aiModelSpendUsd"]))
    assert shown["active-products"] == expected["activeProducts"]


def test_switching_the_period_moves_the_kpis_to_the_apis_figures(world, page, live_server_url):
    log_in(page)
    today = datetime.now(timezone.utc).date()
    seen = {}
    for label, days in (("7D", 7), ("30D", 30), ("90D", 90)):
        page.get_by_role("link", name=label, exact=True).click()
        page.wait_for_url(f"**period={label.lower()}")
        assert page.locator(f'[data-period="{label.lower()}"]').get_attribute(
            "aria-current") == "true"
        assert_kpis_match_api(page, live_server_url, world,
                              (today - timedelta(days=days - 1)).isoformat(), today.isoformat())
        seen[label] = page.locator('[data-kpi="total-cogs"] .kpi-value').inner_text()
    assert seen["7D"] == "$1.15" and seen["30D"] == "$2.45"
    # A custom from–to through the labelled date fields; the URL can be shared as is.
    first, last = (today - timedelta(days=25)).isoformat(), (today - timedelta(days=4)).isoformat()
    page.get_by_label("From").fill(first)
    page.get_by_label("To", exact=True).fill(last)
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(f"**from={first}&to={last}")
    assert_kpis_match_api(page, live_server_url, world, first, last)
    shared = page.url
    page.get_by_role("link", name="Cost Breakdown").click()
    assert f"from={first}&to={last}" in page.url
    page.goto(shared)
    assert page.locator('[data-kpi="total-cogs"] .kpi-value').inner_text() == "$1.30"


def test_an_event_posted_to_the_api_appears_live_and_expands(world, page, live_server_url):
    log_in(page)
    page.goto("/console/cogs/transactions/?period=7d")
    switch = page.get_by_role("switch", name="Live")
    switch.check()
    page.wait_for_function(
        "() => document.getElementById('live-switch').dataset.state === 'open'", timeout=5000)
    event = {"eventId": "live-evt-1", "occurredAt": hours_ago(0), "customerId": XSS,
             "productId": "prod_translation", "productType": "API_WITH_AI",
             "provider": "Anthropic", "model": "claude-sonnet-4-6", "sourceType": "GATEWAY",
             "aiCogsUsd": "0.000021", "infraCogsUsd": "0.0004", "feeCogsUsd": "0.0001"}
    sent = time.monotonic()
    reply = api_post_events(live_server_url, world, [event])
    assert reply["accepted"] == 1, reply
    row = page.locator('#ledger-rows tr.tx[data-event-id="live-evt-1"]')
    row.wait_for(timeout=LIVE_WITHIN_MS)
    assert time.monotonic() - sent < LIVE_WITHIN_MS / 1000 + 0.5
    assert page.locator("#ledger-rows tr.tx").first.get_attribute("data-event-id") == "live-evt-1"
    assert row.get_by_text(XSS, exact=True).is_visible()  # the markup is text
    assert "$0.000521" in row.inner_text()  # a tiny cost keeps its digits
    row.get_by_role("button").click()
    detail = page.locator(f"#{row.get_by_role('button').get_attribute('aria-controls')}")
    assert detail.is_visible()
    assert detail.locator('[data-split="ai"]').inner_text() == "$0.000021"
    assert detail.locator('[data-split="infra"]').inner_text() == "$0.0004"
    assert detail.locator('[data-split="fee"]').inner_text() == "$0.0001"
    shot(page, "transactions-live")
    # A server-rendered row opens from the keyboard too.
    button = page.locator('#ledger-rows tr.tx[data-event-id="tr-spike"] button.expand')
    button.focus()
    page.keyboard.press("Enter")
    assert button.get_attribute("aria-expanded") == "true"
    split = page.locator(f"#{button.get_attribute('aria-controls')}")
    assert split.locator('[data-split="ai"]').inner_text() == "$0.50"
    assert split.locator('[data-split="infra"]').inner_text() == "$0.00"
    assert page.errors == [] and page.dialogs == []


def test_a_customer_named_script_shows_as_text(world, page):
    log_in(page)
    for path in ("/console/cogs/pnl/?period=7d", "/console/cogs/costs/?period=7d",
                 f"/console/cogs/transactions/?period=7d&customerId={XSS}"):
        page.goto(path)
        charts_drawn(page)
        assert page.get_by_text(XSS).first.is_visible(), path
    # In a chart's labels too: plotly prints it rather than reading it as markup.
    page.goto("/console/cogs/costs/?period=7d")
    charts_drawn(page)
    labels = page.locator('[data-figure="fig-customers"] .ytick text').all_text_contents()
    assert XSS in labels
    assert page.dialogs == [] and page.errors == []
