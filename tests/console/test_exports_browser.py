"""The Exports tab in a real browser: a schedule created with the form, run now into a real
PostgreSQL table, its run in the history, and the period's ledger downloaded as a file."""
from __future__ import annotations

import csv
import io

import pytest

from tests.console.browsing import ARTIFACTS, BROWSER_TESTS, log_in, off_the_loop
from tests.console.conftest import console_user
from tests.exports.conftest import ledger_events, pg_rows, warehouse_pg  # noqa: F401
from tests.factories import ingest

pytestmark = BROWSER_TESTS


@pytest.fixture
def world(browser_store, tenant):
    from datetime import datetime, timedelta, timezone

    at = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=3)
    off_the_loop(ingest, tenant, ledger_events("b", 20, at=at))
    console_user(tenant, "finance")
    return tenant


def test_schedule_run_history_and_download(world, warehouse_pg, page):  # noqa: F811
    dsn, table = warehouse_pg
    log_in(page)
    page.get_by_role("navigation", name="COGS & Margins tabs").get_by_role(
        "link", name="Exports").click()
    assert page.locator('[data-empty="export-schedules"]').is_visible()
    form = page.get_by_role("form", name="New export schedule")
    form.get_by_label("Name").fill("Warehouse")
    form.get_by_label("Destination kind").select_option("POSTGRES")
    form.get_by_label("URL or DSN").fill(dsn)
    form.get_by_label("Table (PostgreSQL, ClickHouse)").fill(table)
    form.get_by_label("Lag (seconds)").fill("0")
    form.get_by_role("button", name="Create schedule").click()
    page.wait_for_load_state()
    assert "created" in page.locator(".flash").inner_text()
    page.get_by_role("button", name="Run Warehouse now").click()
    page.wait_for_load_state()
    assert page.locator("[data-last-state]").inner_text() == "SUCCEEDED"
    assert page.locator("table[data-table=export-runs] tbody tr").count() == 1
    assert off_the_loop(pg_rows, dsn, table, "SELECT count(*) FROM {table}") == [(20,)]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-exports.png"), full_page=True)
    with page.expect_download() as download:
        page.locator('[data-download="ledger-csv"]').click()
    with open(download.value.path(), encoding="utf-8") as handle:
        rows = list(csv.DictReader(io.StringIO(handle.read())))
    assert len(rows) == 20 and {r["entry_type"] for r in rows} == {"COST"}
    assert page.errors == [] and page.dialogs == []
