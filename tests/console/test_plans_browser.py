"""Issue 12's promise in a real browser: a new user goes from nothing to a rated customer
without the admin. Create a plan (and fix what the form refuses), add a customer, subscribe
it, send events to the ingestion endpoint, see each event's rated revenue; edit the plan and
see only later events take the new price; end the subscription. A viewer sees no forms."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from aforo.tenancy import api_token_create
from billing import queries
from billing.services import ComponentSpec, rate_plan_create
from tests.console.browsing import ARTIFACTS, BROWSER_TESTS, log_in
from tests.console.conftest import console_user

pytestmark = BROWSER_TESTS


@pytest.fixture
def newcomer(browser_store, tenant):
    console_user(tenant, "finance")  # an OWNER with nothing else in the tenant
    return tenant


def send_events(page, tenant, events: list[dict]) -> None:
    """POST the events to the live server's ingestion endpoint with a service token."""
    token = api_token_create(tenant=tenant, role="DEVELOPER").raw
    response = page.request.post("/api/v1/events", data={"events": events}, headers={
        "Authorization": f"Bearer {token}", "X-Tenant-Id": tenant.slug})
    assert response.ok, response.text()
    assert all(r["status"] == "accepted" for r in response.json()["results"]), response.json()


def call(event_id: str, at: datetime) -> dict:
    return {"eventId": event_id, "occurredAt": at.isoformat().replace("+00:00", "Z"),
            "customerId": "cust_new", "productId": "prod_chat", "cogsUsd": "0.05",
            "inputTokens": 1000, "outputTokens": 500}


def rated_on_page(page) -> dict[str, Decimal]:
    rows = page.locator("[data-event]")
    return {rows.nth(i).get_attribute("data-event"): Decimal(
        rows.nth(i).locator("[data-rated-revenue]").get_attribute("data-rated-revenue"))
        for i in range(rows.count())}


def test_from_nothing_to_a_rated_customer_in_the_console(newcomer, page):
    log_in(page)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Plans").click()
    assert page.locator('[data-empty="plans"]').is_visible()
    page.get_by_role("link", name="New plan").click()

    form = page.get_by_role("form", name="New plan")
    form.get_by_label("Code").fill("per-call")
    form.get_by_label("Name").fill("Per call")
    first, second = page.locator('[data-component-row="0"]'), page.locator(
        '[data-component-row="1"]')
    first.get_by_label("Charges").select_option(label="Per event")
    first.get_by_label("Price", exact=True).fill("0.25")
    second.get_by_label("Charges").select_option(label="Per 1K tokens")
    second.get_by_label("Price", exact=True).fill("four tenths of a cent")
    form.get_by_role("button", name="Create plan").click()

    # refused in words, on the row at fault, with everything typed still there
    alert = page.get_by_role("alert")
    assert "Component 2 (Per 1K tokens): the price: “four tenths of a cent” is not a number." \
        in alert.inner_text()
    second = page.locator('[data-component-row="1"]')
    assert second.get_by_label("Price", exact=True).get_attribute("aria-invalid") == "true"
    assert page.locator('[data-component-row="0"]').get_by_label(
        "Price", exact=True).input_value() == "0.25"
    second.get_by_label("Price", exact=True).fill("0.004")
    page.get_by_role("button", name="Create plan").click()
    page.wait_for_url("**/console/billing/plans/per-call/")
    assert "Plan “Per call” created." in page.get_by_role("status").inner_text()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").click()
    assert page.locator('[data-empty="customers"]').is_visible()
    adding = page.get_by_role("form", name="Add a customer")
    adding.get_by_label("Customer id").fill("cust_new")
    adding.get_by_label("Name").fill("New Co")
    adding.get_by_role("button", name="Add customer").click()
    page.wait_for_url("**/console/billing/customers/cust_new/")
    assert page.locator('[data-empty="plan"]').is_visible()
    subscribe = page.get_by_role("form", name="Subscribe")
    subscribe.get_by_label("Plan").select_option(label="Per call")
    subscribe.get_by_role("button", name="Subscribe").click()
    page.wait_for_load_state()
    assert page.locator("[data-current-plan]").get_attribute("data-current-plan") == "per-call"

    # three calls through the ingestion endpoint: 0.25 + 1.5K tokens × 0.004 = 0.256 each
    now = datetime.now(timezone.utc).replace(microsecond=0)
    send_events(page, newcomer, [call(f"call-{n}", now) for n in range(3)])
    page.reload()
    assert rated_on_page(page) == {f"call-{n}": Decimal("0.256") for n in range(3)}
    term = page.locator('[data-subscription][data-status="ACTIVE"]')
    assert Decimal(term.locator("[data-rated-revenue]").get_attribute(
        "data-rated-revenue")) == Decimal("0.768")
    page.screenshot(path=str(ARTIFACTS / "console-billing-customer.png"), full_page=True)
    # the Transactions tab shows the same rated revenue as each event's expected revenue
    page.get_by_role("link", name="Its transactions").click()
    page.wait_for_url("**/console/cogs/transactions/**")
    revenue = page.locator('tr[data-event-id="call-0"] [data-revenue-source]')
    assert revenue.get_attribute("data-revenue-source") == "RATED"
    assert "$0.256" in revenue.inner_text() and "rated" in revenue.inner_text()
    page.go_back()

    # a price change rates later events only; earlier ones keep what ingest gave them
    page.get_by_role("link", name="Per call").first.click()
    page.wait_for_url("**/console/billing/plans/per-call/")
    editing = page.get_by_role("form", name="Edit plan")
    assert editing.get_by_label("Code").get_attribute("readonly") is not None
    per_event = page.locator("[data-component-row]").filter(
        has=page.locator('option[value="PER_EVENT"][selected]'))
    assert per_event.get_by_label("Price", exact=True).input_value() == "0.25"
    per_event.get_by_label("Price", exact=True).fill("0.50")
    editing.get_by_role("button", name="Save plan").click()
    page.wait_for_load_state()
    assert "events already ingested keep theirs" in page.get_by_role("status").inner_text()
    page.screenshot(path=str(ARTIFACTS / "console-billing-plan.png"), full_page=True)
    send_events(page, newcomer, [call("call-3", now + timedelta(seconds=1))])
    page.get_by_role("link", name="New Co").click()
    page.wait_for_url("**/console/billing/customers/cust_new/")
    assert rated_on_page(page) == {**{f"call-{n}": Decimal("0.256") for n in range(3)},
                                   "call-3": Decimal("0.506")}
    usage = queries.rated_usage(newcomer.slug, customer_id="cust_new",
                                start=now - timedelta(days=1), end=None)
    assert usage == {"events": 4, "cogs_usd": Decimal("0.2"),
                     "rated_revenue_usd": Decimal("1.274")}

    # ending the subscription: events from then on get no rated revenue
    page.get_by_role("form", name="End subscription").get_by_role(
        "button", name="End subscription").click()
    page.wait_for_load_state()
    assert page.locator('[data-empty="plan"]').is_visible()
    assert page.locator('[data-subscription][data-status="ENDED"]').count() == 1
    send_events(page, newcomer, [call("call-late", datetime.now(timezone.utc) +
                                      timedelta(seconds=2))])
    late = queries.rated_usage(newcomer.slug, customer_id="cust_new",
                               start=now - timedelta(days=1), end=None)
    assert late["events"] == 5 and late["rated_revenue_usd"] == Decimal("1.274")
    assert page.errors == []


def test_a_viewer_reads_plans_but_gets_no_forms(browser_store, tenant, page):
    rate_plan_create(tenant=tenant, code="pro", name="Pro", components=[
        ComponentSpec("PER_EVENT", Decimal("0.01"))])
    console_user(tenant, "vera", role="VIEWER")
    log_in(page, "vera")
    page.goto("/console/billing/plans/")
    assert page.get_by_role("link", name="New plan").count() == 0
    page.get_by_role("link", name="Pro").click()
    assert page.get_by_text("$0.01 per event").is_visible()
    assert page.get_by_role("form").count() == 0  # the logout button's form has no name
    assert page.get_by_role("button", name="Save plan").count() == 0
    page.goto("/console/billing/new-plan/")
    assert "may view plans and subscriptions but not change them" in page.get_by_role(
        "alert").inner_text()
