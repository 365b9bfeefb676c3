"""Entitlements & Credits in a real browser: create a quota, a wallet and a top-up from the
console, send usage through the ingestion service, and see the burn-down, the balance and the
debit linked to its event in the ledger."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ingestion.services import events_ingest_dicts
from tests.console.browsing import ARTIFACTS, BROWSER_TESTS, log_in, off_the_loop
from tests.console.conftest import console_user

pytestmark = BROWSER_TESTS


@pytest.fixture
def shop(browser_store, tenant):
    console_user(tenant, "finance")
    return tenant


def test_quota_wallet_and_top_up_from_the_console(shop, page):
    log_in(page)
    page.goto("/console/cogs/entitlements/")
    page.get_by_text("New entitlement").click()
    form = page.get_by_role("form", name="New entitlement")
    form.get_by_label("Customer").fill("cust_acme")
    form.get_by_label("Feature").select_option("TOKENS")
    form.get_by_label("Limit").fill("10000")
    form.get_by_role("button", name="Save entitlement").click()
    page.wait_for_load_state()
    assert page.locator("[data-entitlement]").get_attribute("data-status") == "OK"

    page.get_by_text("New wallet").click()
    wallet = page.get_by_role("form", name="New wallet")
    wallet.get_by_label("Customer").fill("cust_acme")
    wallet.get_by_label("Credits per unit").fill("0.001")
    wallet.get_by_role("button", name="Save wallet").click()
    page.wait_for_load_state()
    page.get_by_text("Top up Prepaid").click()
    top_up = page.get_by_role("form", name="Top up Prepaid")
    top_up.get_by_label("Paid credits").fill("100")
    top_up.get_by_role("button", name="Add top-up").click()
    page.wait_for_load_state()
    assert page.locator("[data-balance]").get_attribute("data-balance") == "100.000000000"

    now = datetime.now(timezone.utc).replace(microsecond=0)
    off_the_loop(events_ingest_dicts, tenant=shop, now=now, events=[
        {"eventId": f"acme-{n}", "occurredAt": (now - timedelta(minutes=n)).isoformat(),
         "customerId": "cust_acme", "productId": "prod_chat", "inputTokens": 2100,
         "cogsUsd": "0.01"} for n in range(4)])
    page.reload()
    assert page.locator("[data-entitlement]").get_attribute("data-status") == "WARNING"
    assert page.locator("[data-balance]").get_attribute("data-balance") == "91.600000000"
    debit = page.locator("[data-event-link]").first
    assert debit.get_attribute("data-event-link").startswith("acme-")
    page.screenshot(path=str(ARTIFACTS / "console-entitlements.png"), full_page=True)
    debit.click()
    page.wait_for_load_state()
    assert "/console/cogs/transactions/" in page.url and "cust_acme" in page.url
    assert page.locator("[data-event-id^='acme-']").count() == 4
    assert page.errors == []
