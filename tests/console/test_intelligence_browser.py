"""The intelligence tabs in a real browser: a real detection (a churn drop sent through the
ingestion service) shows on the Overview's Customer Health Signals tile, is acknowledged and
resolved on the Signals tab and opens its events in Transactions; the Forecast tab draws the
actuals, the band and the loss date, and the what-if form draws before and after."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from ingestion.prices import model_price_create
from intelligence.detectors import detectors_run, last_complete_week
from intelligence.models import Kind, Signal
from tests.console.browsing import ARTIFACTS, BROWSER_TESTS, log_in, off_the_loop
from tests.console.conftest import console_user
from tests.factories import ingest

pytestmark = BROWSER_TESTS


def _seed(tenant):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start = now - timedelta(days=45)
    for model in ("gpt-4o", "gpt-4o-mini"):
        model_price_create(tenant=tenant, provider="openai", model=model,
                           effective_from=start - timedelta(days=1),
                           input_per_1m=Decimal("2.5") if model == "gpt-4o" else Decimal("0.15"),
                           output_per_1m=Decimal("10") if model == "gpt-4o" else Decimal("0.6"))
    week_start, _end = last_complete_week(now, "UTC")
    events = []
    for n in range(45 * 4):  # every 6 hours for 45 days; cust_leaving stops last week
        at = start + timedelta(hours=6 * n)
        for customer in ("cust_steady", "cust_leaving"):
            if customer == "cust_leaving" and week_start <= at:
                continue
            events.append({"eventId": f"{customer}-{n}", "occurredAt": at,
                           "customerId": customer, "productId": "prod_chat",
                           "provider": "openai", "model": "gpt-4o",
                           "inputTokens": 20000 + 400 * (n // 4), "outputTokens": 2000,
                           "revenueUsd": "0.20"})
    for batch in range(0, len(events), 500):
        ingest(tenant, events[batch:batch + 500], now=now)
    from intelligence.services import intelligence_settings_update

    intelligence_settings_update(tenant=tenant, churn_min_weekly_events=20)
    detectors_run(tenant=tenant, now=now, kinds=(Kind.CHURN_RISK,))


@pytest.fixture
def world(browser_store, tenant):
    off_the_loop(_seed, tenant)
    console_user(tenant, "finance")
    return tenant


def test_signals_tile_list_transitions_and_the_forecast(world, page):
    signal = Signal.objects.get(tenant=world, kind=Kind.CHURN_RISK)
    log_in(page)
    tile = page.locator('[data-tile="health-signals"]')
    assert tile.locator(f'[data-signal="{signal.pk}"]').is_visible()
    page.screenshot(path=str(ARTIFACTS / "console-overview-signals.png"), full_page=True)

    page.get_by_role("navigation", name="COGS & Margins tabs").get_by_role(
        "link", name="Signals").click()
    row = page.locator(f'tr[data-signal="{signal.pk}"]')
    assert row.get_attribute("data-state") == "OPEN"
    row.get_by_role("button", name=f"Acknowledge signal {signal.pk}").click()
    page.wait_for_load_state()
    row = page.locator(f'tr[data-signal="{signal.pk}"]')
    assert row.get_attribute("data-state") == "ACKNOWLEDGED"
    row.get_by_role("button", name=f"Resolve signal {signal.pk}").click()
    page.wait_for_load_state()
    assert page.locator(f'tr[data-signal="{signal.pk}"]').get_attribute(
        "data-state") == "RESOLVED"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-signals.png"), full_page=True)
    page.locator(f'[data-transactions="{signal.pk}"]').click()
    page.wait_for_url("**/console/cogs/transactions/**customerId=cust_leaving**")
    assert page.locator("#ledger-rows tr.tx").count() > 0

    page.goto("/console/cogs/forecast/?period=30d&horizon=90d")
    page.wait_for_function(
        "document.querySelectorAll('[data-figure][data-rendered=true]').length === 1",
        timeout=15000)
    assert page.locator('[data-figure="fig-forecast"] .scatterlayer .trace').count() == 6
    form = page.get_by_role("form", name="What-if")
    form.get_by_label("Switch model").fill("gpt-4o")
    form.get_by_label("to").fill("gpt-4o-mini")
    form.get_by_role("button", name="Compare").click()
    page.wait_for_function(
        "document.querySelectorAll('[data-figure][data-rendered=true]').length === 2",
        timeout=15000)
    assert int(page.locator("[data-what-if-repriced]").get_attribute(
        "data-what-if-repriced")) > 0
    page.screenshot(path=str(ARTIFACTS / "console-forecast.png"), full_page=True)
    assert page.errors == [] and page.dialogs == []
