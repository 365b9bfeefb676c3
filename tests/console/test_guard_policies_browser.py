"""Guard policies made in the console, in a real browser: an admin drafts a FREE-tier policy,
previews who it would hit, saves it in DRY_RUN, switches it to ENFORCE, sees a customer
throttled once traffic arrives and overrides it; a VIEWER sees no controls and is refused."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from aforo.catalog import customer_create
from aforo.models import Role
from ingestion.services import events_ingest_dicts
from margin_guard import decision
from margin_guard.models import GuardPolicy
from tests.console.browsing import ARTIFACTS, BROWSER_TESTS, log_in, off_the_loop
from tests.console.conftest import console_user

pytestmark = BROWSER_TESTS


def traffic(tenant, prefix: str, n: int, cost: str, *, at: datetime) -> None:
    """n chat calls of cust_free on gpt-4o, each charged $1.00 (carried) and costing `cost`."""
    report = events_ingest_dicts(tenant=tenant, now=datetime.now(timezone.utc), events=[
        {"eventId": f"{prefix}-{k}", "occurredAt": at.isoformat(), "customerId": "cust_free",
         "productId": "prod_chat", "model": "gpt-4o", "cogsUsd": cost, "revenueUsd": "1.00"}
        for k in range(n)])
    assert report.count("accepted") == n


@pytest.fixture
def free_tier(browser_store, tenant):
    customer_create(tenant=tenant, external_id="cust_free", name="Free Rider", tier="FREE")
    customer_create(tenant=tenant, external_id="cust_pro", name="Pro Co", tier="PRO")
    console_user(tenant, "finance", Role.ADMIN)
    console_user(tenant, "vera", Role.VIEWER)
    at = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)
    off_the_loop(traffic, tenant, "early", 6, "0.92", at=at)  # margin 8%
    return tenant


def test_admin_makes_a_tier_policy_and_enforces_it(free_tier, page, browser):
    log_in(page)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Margin Guard").click()
    assert page.locator('[data-empty="policies"]').is_visible()
    page.get_by_role("link", name="New policy").click()
    form = page.get_by_role("form", name="New policy")
    form.get_by_label("Name").fill("Free tier floor")
    form.get_by_label("Scope").select_option("TIER")
    form.get_by_label("Tier").fill("FREE")
    form.get_by_label("Mode").select_option("DRY_RUN")
    form.get_by_label("Alert below (margin %)").fill("15")
    form.get_by_label("Throttle below (margin %)").fill("20")  # above alert: refused
    form.get_by_label("Block below (margin %)").fill("0")
    form.get_by_label("Minimum events").fill("5")
    form.get_by_label("Downgrade map (THROTTLE)").fill("gpt-4o → gpt-4o-mini")
    form.get_by_label("Premium features (BLOCK suspends)").fill("batch")
    form.get_by_label("Channel 1").select_option("EMAIL")
    form.get_by_label("Destination 1").fill("ops@example.com")
    form.get_by_role("button", name="Create policy").click()
    page.wait_for_load_state()
    assert "Throttle below: Floors must descend" in page.get_by_role("alert").inner_text()
    throttle = page.get_by_label("Throttle below (margin %)")
    assert throttle.get_attribute("aria-invalid") == "true"
    throttle.fill("10")

    page.get_by_role("button", name="Preview").click()
    page.wait_for_load_state()
    preview = page.locator("[data-preview]")
    assert preview.locator('[data-preview-customer="cust_free"]').get_attribute(
        "data-level") == "THROTTLE"
    assert preview.locator('[data-preview-customer="cust_pro"]').count() == 0
    assert "8.00%" in preview.locator('[data-preview-customer="cust_free"]').inner_text()
    assert "Nothing was saved" in preview.inner_text()
    assert not GuardPolicy.objects.filter(tenant=free_tier).exists()
    page.screenshot(path=str(ARTIFACTS / "console-guard-policy-preview.png"), full_page=True)

    page.get_by_role("button", name="Create policy").click()
    page.wait_for_url("**/console/margin-guard/")
    row = page.locator('[data-policy-name="Free tier floor"]')
    assert row.get_attribute("data-mode") == "DRY_RUN"
    assert "EMAIL" in row.inner_text()
    row.get_by_label("Mode of Free tier floor").select_option("ENFORCE")
    row.get_by_role("button", name="Set mode").click()
    page.wait_for_load_state()
    assert page.locator('[data-policy-name="Free tier floor"]').get_attribute(
        "data-mode") == "ENFORCE"

    # Traffic arrives: the post-ingest evaluation throttles the customer.
    off_the_loop(traffic, free_tier, "late", 2, "0.92",
                 at=datetime.now(timezone.utc).replace(microsecond=0))
    deadline = time.monotonic() + 3
    while decision.decide(free_tier.slug, customer_id="cust_free", product_id="prod_chat",
                          model="gpt-4o").decision != "THROTTLE" \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    verdict = decision.decide(free_tier.slug, customer_id="cust_free", model="gpt-4o")
    assert (verdict.decision, verdict.downgrade_to) == ("THROTTLE", "gpt-4o-mini")
    page.reload()
    state = page.locator('[data-guard-customer="cust_free"]')
    assert state.get_attribute("data-level") == "THROTTLE"
    state.get_by_role("button", name="Allow").click()
    page.wait_for_load_state()
    assert "until" in page.locator('[data-guard-customer="cust_free"]').inner_text()
    verdict = off_the_loop(decision.decide, free_tier.slug, customer_id="cust_free",
                           model="gpt-4o")
    assert verdict.decision == "ALLOW"

    # The impact card: the throttled account's margin before vs since, drawn by Plotly.
    page.get_by_role("navigation", name="Impact window").get_by_role(
        "link", name="last 24 hours").click()
    page.wait_for_load_state()
    assert page.locator('[data-account="cust_free"]').is_visible()
    page.locator('[data-figure="fig-before-after"] .main-svg').first.wait_for()
    assert page.locator('[data-lever]').count() == 3
    assert page.errors == []

    # A VIEWER sees the policy, no control, and the server refuses its POSTs.
    policy = GuardPolicy.objects.get(tenant=free_tier)
    viewer = browser.new_context(base_url=page.context.pages[0].url.split("/console")[0])
    tab = viewer.new_page()
    log_in(tab, "vera")
    tab.goto("/console/margin-guard/")
    assert tab.locator('[data-policy-name="Free tier floor"]').is_visible()
    assert tab.get_by_role("link", name="New policy").count() == 0
    assert tab.get_by_role("button", name="Set mode").count() == 0
    assert tab.get_by_role("link", name="Edit", exact=True).count() == 0
    token = next(c["value"] for c in viewer.cookies() if c["name"] == "csrftoken")
    for url in (f"/console/margin-guard/policies/{policy.pk}/mode",
                f"/console/margin-guard/policies/{policy.pk}/delete",
                "/console/margin-guard/policies/new"):
        answer = tab.request.post(url, form={"mode": "OFF", "name": "x", "scope": "TENANT",
                                             "csrfmiddlewaretoken": token},
                                  headers={"X-CSRFToken": token,
                                           "Referer": tab.url})
        assert answer.status == 403, url
        assert "may view Margin Guard but not change it" in answer.text()
    policy.refresh_from_db()
    assert policy.mode == "ENFORCE"
    viewer.close()
