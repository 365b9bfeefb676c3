"""The Margin Guard page in a real browser: a customer pushed below the floors shows its level
badge, the intervention timeline tells the story, an admin's override allows access again."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from aforo.catalog import customer_create
from billing.services import ComponentSpec, rate_plan_create, subscription_create
from ingestion.services import events_ingest_dicts
from margin_guard import decision
from margin_guard.models import GuardPolicy
from tests.console.browsing import ARTIFACTS, BROWSER_TESTS, log_in, off_the_loop
from tests.console.conftest import console_user

pytestmark = BROWSER_TESTS


@pytest.fixture
def guarded(browser_store, tenant):
    customer = customer_create(tenant=tenant, external_id="cust_loss", name="Loss Leader Inc")
    plan = rate_plan_create(tenant=tenant, code="per-call", components=[
        ComponentSpec(kind="PER_EVENT", unit_price=Decimal("1.00"))])
    subscription_create(tenant=tenant, customer=customer, plan=plan,
                        starts_at=datetime.now(timezone.utc) - timedelta(days=10))
    GuardPolicy.objects.create(tenant=tenant, name="Tenant floor", scope="TENANT",
                               mode="ENFORCE", min_events=5,
                               downgrade_map={"gpt-4o": "gpt-4o-mini"},
                               premium_features=["batch"])
    console_user(tenant, "finance")
    return tenant


def test_levels_timeline_and_override(guarded, page):
    log_in(page)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Margin Guard").click()
    assert page.get_by_role("heading", name="Margin Guard", exact=True).is_visible()
    assert page.locator('[data-empty="levels"]').is_visible()

    now = datetime.now(timezone.utc).replace(microsecond=0)
    off_the_loop(events_ingest_dicts, tenant=guarded, now=now, events=[
        {"eventId": f"loss-{n}", "occurredAt": now.isoformat(), "customerId": "cust_loss",
         "productId": "prod_chat", "cogsUsd": "1.50"} for n in range(10)])
    deadline = time.monotonic() + 2
    while decision.decide(guarded.slug, customer_id="cust_loss", feature="batch").decision \
            != "BLOCK" and time.monotonic() < deadline:
        time.sleep(0.05)

    page.reload()
    row = page.locator('[data-guard-customer="cust_loss"]')
    assert row.get_attribute("data-level") == "BLOCK"
    assert row.locator(".badge.level-over").inner_text() == "BLOCK"
    assert page.locator('[data-to="BLOCK"]').count() == 1
    assert "margin -50.00%" in page.locator('[data-to="BLOCK"]').inner_text()
    assert page.locator('[data-policy]').count() == 1
    page.screenshot(path=str(ARTIFACTS / "console-margin-guard.png"), full_page=True)

    row.get_by_role("button", name="Allow").click()
    page.wait_for_load_state()
    assert "until" in page.locator('[data-guard-customer="cust_loss"]').inner_text()
    assert "override" in page.locator(".timeline li").first.inner_text()
    verdict = off_the_loop(decision.decide, guarded.slug, customer_id="cust_loss",
                           feature="batch")
    assert verdict.decision == "ALLOW"
    assert page.errors == []
