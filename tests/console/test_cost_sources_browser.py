"""The Cost sources tab in a real browser: a source is added, an OpenAI costs file is uploaded
through the form, the Active cost streams panel shows its sync, and the reconciliation chart
and table show the day the events metered 3% under the bill."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.console.browsing import ARTIFACTS, BROWSER_TESTS, log_in, off_the_loop
from tests.console.conftest import console_user
from tests.factories import ingest, openai_costs_page, write_page

pytestmark = BROWSER_TESTS


def _days():
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=3), today - timedelta(days=2)


def _seed(tenant):
    day1, day2 = _days()
    events = [{"eventId": f"d1-{n}", "occurredAt": day1 + timedelta(minutes=10 + n),
               "customerId": "cust_a", "productId": "prod_chat", "provider": "openai",
               "model": "gpt-4o", "aiCogsUsd": "1.00"} for n in range(97)]
    events += [{"eventId": f"d2-{n}", "occurredAt": day2 + timedelta(hours=1 + n),
                "customerId": "cust_a", "productId": "prod_chat", "provider": "openai",
                "model": "gpt-4o", "aiCogsUsd": "12.50"} for n in range(4)]
    ingest(tenant, events)


@pytest.fixture
def world(browser_store, tenant):
    off_the_loop(_seed, tenant)
    console_user(tenant, "finance")
    return tenant


def test_upload_a_cost_file_and_read_the_reconciliation(world, page, tmp_path):
    day1, day2 = _days()
    path = tmp_path / "openai-costs.json"
    write_page(path, openai_costs_page([
        (day1, [("gpt-4o, input", "60.00"), ("gpt-4o, output", "40.00")]),
        (day2, [("gpt-4o, input", "50.00")])]))
    log_in(page)
    page.get_by_role("navigation", name="COGS & Margins tabs").get_by_role(
        "link", name="Cost sources").click()
    assert page.locator('[data-empty="cost-streams"]').is_visible()
    page.get_by_text("New cost source").click()
    form = page.get_by_role("form", name="New cost source")
    form.get_by_label("Name").fill("OpenAI org")
    form.get_by_label("Kind").select_option("OPENAI_COSTS")
    form.get_by_role("button", name="Add source").click()
    page.wait_for_load_state()
    assert "Cost source “OpenAI org” created." in page.locator(".flash").inner_text()
    row = page.locator("table[data-table=cost-streams] tbody tr")
    assert row.get_attribute("data-status") == "NEVER"
    page.get_by_label("File for OpenAI org").set_input_files(str(path))
    page.get_by_role("form", name="Import into OpenAI org").get_by_role(
        "button", name="Import").click()
    page.wait_for_load_state()
    assert "Imported 3 rows into “OpenAI org”; 3 lines changed." in page.locator(
        ".flash").inner_text()
    row = page.locator("table[data-table=cost-streams] tbody tr")
    assert row.get_attribute("data-status") == "SUCCEEDED"
    assert "$150.00" in row.inner_text()
    page.wait_for_function(
        "document.querySelectorAll('[data-figure][data-rendered=true]').length === 1",
        timeout=15000)
    assert page.locator('[data-figure="fig-reconciliation"] .scatterlayer .trace').count() == 1
    table = page.locator("table[data-table=reconciliation] tbody tr")
    assert table.count() == 2
    assert [table.nth(i).get_attribute("data-status") for i in range(2)] == [
        "UNDER_METERED", "MATCHED"]
    assert "$3.00" in table.nth(0).inner_text() and "3.00%" in table.nth(0).inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-cost-sources.png"), full_page=True)
    assert page.errors == [] and page.dialogs == []
