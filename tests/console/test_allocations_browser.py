"""Allocations on the Cost sources tab in a real browser: a billing admin spreads $1,000.00 of
an AWS source onto one product's events by COGS into the infrastructure bucket, the dashboard's
figures include it, then reverses it and every figure is back; a viewer sees no controls."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from aforo.models import Role
from aforo.periods import Period
from cogs.queries import overview
from cost_sources.models import Allocation
from tests.console.browsing import ARTIFACTS, BROWSER_TESTS, log_in, off_the_loop
from tests.console.conftest import console_user
from tests.factories import cost_source, ingest

pytestmark = BROWSER_TESTS


def _day():
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=3)


def _seed(tenant):
    day = _day()
    ingest(tenant, [{"eventId": f"e{p}-{n}", "occurredAt": day + timedelta(minutes=n + p),
                     "customerId": "cust_a", "productId": f"prod_{p}", "provider": "openai",
                     "model": "gpt-4o", "aiCogsUsd": f"0.0{p + 1}"}
                    for p in range(3) for n in range(5)])
    cost_source(tenant, "AWS_CUR", "AWS account")


def _totals(tenant):
    day = _day().date()
    return overview(tenant, Period(first=day, last=day)).totals


@pytest.fixture
def world(browser_store, tenant):
    off_the_loop(_seed, tenant)
    console_user(tenant, "finance", Role.BILLING_ADMIN)
    console_user(tenant, "viewer", Role.VIEWER)
    return tenant


def test_allocate_then_reverse_from_the_cost_sources_tab(world, page, browser):
    before = off_the_loop(_totals, world)
    day = _day().date().isoformat()
    log_in(page)
    page.get_by_role("navigation", name="COGS & Margins tabs").get_by_role(
        "link", name="Cost sources").click()
    assert page.locator('[data-empty="allocations"]').is_visible()
    page.get_by_text("New allocation").click()
    form = page.get_by_role("form", name="New allocation")
    form.get_by_label("Cost source").select_option(label="AWS account")
    form.get_by_label("From (UTC day)").fill(day)
    form.get_by_label("To (included)").fill(day)
    form.get_by_label("Amount (USD)").fill("0")
    form.get_by_role("button", name="Allocate").click()
    page.wait_for_load_state()
    assert "Allocation not made: amount_usd must be more than zero." in page.locator(
        ".flash").inner_text()

    page.get_by_text("New allocation").click()
    form.get_by_label("From (UTC day)").fill(day)
    form.get_by_label("To (included)").fill(day)
    form.get_by_label("Amount (USD)").fill("1,000.00")
    form.get_by_label("Spread by").select_option("COGS")
    form.get_by_label("Into bucket").select_option("INFRA")
    form.get_by_label("Products (optional)").fill("prod_1, prod_2")
    form.get_by_label("Description").fill("AWS, three days ago")
    form.get_by_role("button", name="Allocate").click()
    page.wait_for_load_state()
    assert "Allocated $1,000.00 of “AWS account” onto 10 events." in page.locator(
        ".flash").inner_text()
    row = page.locator("table[data-table=allocations] tbody tr")
    assert row.count() == 1 and row.get_attribute("data-status") == "APPLIED"
    assert "$1,000.00" in row.inner_text() and "prod_1, prod_2" in row.inner_text()
    after = off_the_loop(_totals, world)
    assert after.cogs_usd == before.cogs_usd + Decimal("1000")
    assert after.infra_cogs_usd == before.infra_cogs_usd + Decimal("1000")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-allocations.png"), full_page=True)
    # the composition says how much of the cost is allocated
    page.goto(f"/console/cogs/costs/?from={day}&to={day}")
    assert page.locator("[data-allocated]").inner_text() == "$1,000.00 of it allocated"
    page.go_back()

    # A VIEWER sees the allocation, no control, and its POST reverses nothing.
    allocation = off_the_loop(lambda: Allocation.objects.get(tenant=world))
    viewer = browser.new_context(base_url=page.context.pages[0].url.split("/console")[0])
    tab = viewer.new_page()
    log_in(tab, "viewer")
    tab.goto("/console/cogs/cost-sources/")
    assert tab.locator("table[data-table=allocations] tbody tr").count() == 1
    assert tab.get_by_text("New allocation").count() == 0
    assert tab.get_by_role("button", name="Reverse").count() == 0
    token = next(c["value"] for c in viewer.cookies() if c["name"] == "csrftoken")
    answer = tab.request.post(f"/console/cogs/cost-sources/allocations/{allocation.pk}/reverse/",
                              form={"csrfmiddlewaretoken": token},
                              headers={"X-CSRFToken": token, "Referer": tab.url})
    assert "may view cost sources but not change them" in answer.text()
    viewer.close()
    assert off_the_loop(lambda: Allocation.objects.get(pk=allocation.pk).status) == "APPLIED"

    row.get_by_role("button", name="Reverse").click()
    page.wait_for_load_state()
    assert "reversed: $1,000.00 taken back off 10 events." in page.locator(
        ".flash").inner_text()
    row = page.locator("table[data-table=allocations] tbody tr")
    assert row.get_attribute("data-status") == "REVERSED"
    assert row.get_by_role("button", name="Reverse").count() == 0
    assert off_the_loop(_totals, world) == before
    assert page.errors == [] and page.dialogs == []

