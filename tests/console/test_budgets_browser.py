"""Issue 7's promise in a real browser: set a budget and a margin-floor rule in the console,
ingest events that break both, see the budget turn OVER_BUDGET and the alert fire to Slack and
email (local sinks), then acknowledge and resolve it from the console."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from aforo.catalog import customer_create, product_create
from billing.services import ComponentSpec, rate_plan_create, subscription_create
from budgets.models import Alert
from budgets.tasks import evaluate_alerts
from ingestion.services import events_ingest_dicts
from tests.console.browsing import ARTIFACTS, BROWSER_TESTS, log_in, off_the_loop
from tests.console.conftest import console_user

pytestmark = BROWSER_TESTS


@pytest.fixture
def shop(browser_store, tenant):
    customer = customer_create(tenant=tenant, external_id="cust_thin", name="Thin Margins Ltd")
    product_create(tenant=tenant, external_id="prod_chat", name="Chat")
    plan = rate_plan_create(tenant=tenant, code="per-call", components=[
        ComponentSpec(kind="PER_EVENT", unit_price=Decimal("1.00"))])
    subscription_create(tenant=tenant, customer=customer, plan=plan,
                        starts_at=datetime.now(timezone.utc) - timedelta(days=40))
    console_user(tenant, "finance")
    return tenant


def test_budget_and_margin_floor_from_the_console_to_slack_and_email(
        shop, page, http_sink, smtp_sink):
    log_in(page)
    page.goto("/console/cogs/budgets/?period=7d")
    page.get_by_text("New budget").click()
    form = page.get_by_role("form", name="New budget")
    form.get_by_label("Name").fill("Chat spend")
    form.get_by_label("Cap (USD)").fill("10")
    form.get_by_label("Warning at (%)").fill("50")
    form.get_by_label("Product").select_option("prod_chat")
    form.get_by_role("button", name="Create budget").click()
    page.wait_for_url("**period=7d")
    assert page.locator("[data-budget]").get_attribute("data-status") == "ON_TRACK"

    page.get_by_text("New alert rule").click()
    rule = page.get_by_role("form", name="New alert rule")
    rule.get_by_label("Name").fill("Margin floor")
    rule.get_by_label("Metric").select_option("MARGIN")
    rule.get_by_label("Comparison").select_option("LT")
    rule.get_by_label("Threshold").fill("60")
    rule.get_by_label("Window").select_option("24h")
    rule.get_by_label("Channel").select_option("SLACK")
    rule.get_by_label("Destination").fill(http_sink.url)
    rule.get_by_role("button", name="Create rule").click()
    page.wait_for_url("**period=7d")
    # a second, email rule on the same floor, made through the edit form of the first
    page.get_by_role("link", name="Edit", exact=True).click()
    edit = page.get_by_role("form", name="Edit alert rule")
    assert edit.get_by_label("Threshold").input_value() == "60"
    page.goto("/console/cogs/budgets/?period=7d")
    page.get_by_text("New alert rule").click()
    rule = page.get_by_role("form", name="New alert rule")
    rule.get_by_label("Name").fill("Margin floor (mail)")
    rule.get_by_label("Metric").select_option("MARGIN")
    rule.get_by_label("Comparison").select_option("LT")
    rule.get_by_label("Threshold").fill("60")
    rule.get_by_label("Channel").select_option("EMAIL")
    rule.get_by_label("Destination").fill("finance@example.com")
    rule.get_by_role("button", name="Create rule").click()
    page.wait_for_url("**period=7d")
    assert page.locator("[data-rule]").count() == 2
    assert page.locator(".badge.channel-slack").first.is_visible()

    # $0.60 of cost on $1.00 of revenue, twenty times: $12 spent, margin 40%
    now = datetime.now(timezone.utc).replace(microsecond=0)
    off_the_loop(events_ingest_dicts, tenant=shop, now=now, events=[
        {"eventId": f"thin-{n}", "occurredAt": (now - timedelta(minutes=n)).isoformat(),
         "customerId": "cust_thin", "productId": "prod_chat", "cogsUsd": "0.60"}
        for n in range(20)])
    off_the_loop(evaluate_alerts)  # the job celery-beat / the in-process schedule runs each minute

    page.reload()
    assert page.locator("[data-budget]").get_attribute("data-status") == "OVER_BUDGET"
    fired = page.locator('[data-alert][data-state="FIRED"]')
    assert fired.count() == 4  # two rules, and the budget's warning and 100% crossings
    slack = [r for r in http_sink.requests if r["path"] == "/hook"]
    assert len(slack) == 1 and "Margin floor" in str(slack[0]["json"]["blocks"])
    assert [m["To"] for m in smtp_sink] == ["finance@example.com"]
    page.screenshot(path=str(ARTIFACTS / "console-budgets-alerts.png"), full_page=True)

    floor = page.locator("[data-alert]", has_text="Margin floor (mail)")
    floor.get_by_role("button", name="Acknowledge").click()
    page.wait_for_load_state()
    floor = page.locator("[data-alert]", has_text="Margin floor (mail)")
    assert floor.get_attribute("data-state") == "ACKNOWLEDGED"
    assert "acknowledged by finance" in floor.inner_text()
    floor.get_by_role("button", name="Resolve").click()
    page.wait_for_load_state()
    floor = page.locator("[data-alert]", has_text="Margin floor (mail)")
    assert floor.get_attribute("data-state") == "RESOLVED"
    states = off_the_loop(lambda: sorted(Alert.objects.filter(tenant=shop)
                                         .values_list("state", flat=True)))
    assert states == ["FIRED", "FIRED", "FIRED", "RESOLVED"]
    assert page.errors == []


def test_a_viewer_sees_budgets_but_no_forms(shop, page):
    console_user(shop, "vera", role="VIEWER")
    log_in(page, "vera")
    page.goto("/console/cogs/budgets/")
    assert page.get_by_role("heading", name="Budgets & Alerts").is_visible()
    assert page.get_by_text("New budget").count() == 0
