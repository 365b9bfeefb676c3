"""Console fixtures: a signed-in member of the test tenant and a small, hand-checkable ledger."""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from aforo.catalog import customer_update
from aforo.models import Customer, Role
from aforo.tenancy import membership_set
from ingestion.services import events_ingest_dicts
from tests.factories import attribute

XSS = "<script>alert(1)</script>"
CHROMIUM = "/usr/bin/chromium"  # Debian's; never a downloaded browser
PASSWORD = "console-pass-1"


def hours_ago(hours: float) -> str:
    at = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=hours)
    return at.isoformat().replace("+00:00", "Z")


def console_user(tenant, username: str = "ana", role: Role = Role.OWNER):
    user = get_user_model().objects.create_user(username, password=PASSWORD)
    membership_set(tenant=tenant, user=user, role=role)
    return user


@pytest.fixture
def member(tenant):
    return console_user(tenant)


@pytest.fixture
def console(member) -> Client:
    client = Client()
    client.force_login(member)
    return client


def seed_events() -> list[dict]:
    """A week of traffic plus older events, with every shape the tabs must show.

    - today, 25 translation calls of $0.01 (AI split) and one of $0.50 (an anomaly),
    - an agent call with the full AI / infra / fee split and tokens,
    - a call that only knows its total (Unclassified), a call costing $0.000004 (tiny),
    - a customer called `<script>alert(1)</script>`,
    - two events 20 days ago, inside 30D but not 7D.
    """
    # The anomaly group happens today (UTC) whatever the hour: seconds after midnight, at most
    # 30 s ahead of the clock, well inside the ingest's 5-minute tolerance.
    midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)

    def today_at(second: int) -> str:
        return (midnight + timedelta(seconds=second)).isoformat().replace("+00:00", "Z")

    events = []
    for n in range(25):
        events.append({"eventId": f"tr-{n}", "occurredAt": today_at(1 + n), "customerId":
                       "cust_acme", "productId": "prod_translation", "productType": "API_WITH_AI",
                       "provider": "Anthropic", "model": "claude-sonnet-4-6",
                       "sourceType": "GATEWAY", "aiCogsUsd": "0.01", "inputTokens": 100,
                       "outputTokens": 20})
    events += [
        {"eventId": "tr-spike", "occurredAt": today_at(30), "customerId": "cust_acme",
         "productId": "prod_translation", "productType": "API_WITH_AI", "provider": "Anthropic",
         "model": "claude-sonnet-4-6", "sourceType": "GATEWAY", "aiCogsUsd": "0.50",
         "inputTokens": 9000, "outputTokens": 3000},
        {"eventId": "ag-1", "occurredAt": hours_ago(30), "customerId": "cust_loss",
         "productId": "prod_agent", "productType": "AI_AGENT", "provider": "OpenAI",
         "model": "gpt-4o", "toolName": "web_search", "sourceType": "AGENT",
         "aiCogsUsd": "0.14", "infraCogsUsd": "0.03", "feeCogsUsd": "0.01",
         "inputTokens": 1000, "outputTokens": 200},
        {"eventId": "total-only", "occurredAt": hours_ago(50), "customerId": "cust_acme",
         "productId": "prod_agent", "productType": "AI_AGENT", "provider": "Google",
         "model": "gemini-2.5-pro", "sourceType": "SDK", "cogsUsd": "0.20"},
        {"eventId": "tiny-1", "occurredAt": hours_ago(3), "customerId": "cust_tiny",
         "productId": "prod_search", "productType": "API_WITH_AI", "provider": "OpenAI",
         "model": "text-embedding-3-small", "sourceType": "SDK", "aiCogsUsd": "0.000004",
         "inputTokens": 200},
        {"eventId": "xss-1", "occurredAt": hours_ago(5), "customerId": XSS,
         "productId": "prod_agent", "productType": "AI_AGENT", "provider": "OpenAI",
         "model": "gpt-4o", "sourceType": "AGENT", "aiCogsUsd": "0.02", "inputTokens": 50},
        {"eventId": "old-1", "occurredAt": hours_ago(24 * 20), "customerId": "cust_acme",
         "productId": "prod_translation", "productType": "API_WITH_AI", "provider": "Anthropic",
         "model": "claude-sonnet-4-6", "sourceType": "GATEWAY", "aiCogsUsd": "1.00"},
        {"eventId": "old-2", "occurredAt": hours_ago(24 * 20 + 1), "customerId": "cust_old",
         "productId": "prod_legacy", "productType": "API", "provider": "AWS Bedrock",
         "model": "amazon.nova-pro-v1", "sourceType": "BATCH", "infraCogsUsd": "0.30"},
    ]
    return events


# Revenue as the attribution run writes it (the billing app's job; test helper until then).
REVENUE = {"tr-0": "0.90", "ag-1": "0.05", "total-only": "0.30", "xss-1": "0.10",
           "old-1": "4.00"}


def seed(tenant) -> list[dict]:
    """The seed events through the ingestion service, their revenue, a name that is markup."""
    events = seed_events()
    report = events_ingest_dicts(tenant=tenant, events=events)
    assert report.count("accepted") == len(events), [r.as_json() for r in report.results]
    by_id = {e["eventId"]: e for e in events}
    for event_id, amount in REVENUE.items():
        attribute(tenant, by_id[event_id], Decimal(amount))
    # The unprofitable customer's display name is markup too.
    customer_update(customer=Customer.objects.get(tenant=tenant, external_id="cust_loss"),
                    name=XSS)
    return events


@pytest.fixture
def seeded(store, tenant):
    return seed(tenant)


# --- browser tests: a live ASGI server and Debian's headless Chromium ---------------------

@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    # :TRICKY: Playwright's sync API keeps an asyncio loop running in this thread, which makes
    # Django refuse ORM calls from the test body ("async context"); they are plain sync calls.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        yield chromium
        chromium.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, live_server_url):
    context = browser.new_context(base_url=live_server_url, viewport={"width": 1360,
                                                                      "height": 900})
    tab = context.new_page()
    tab.dialogs = []
    tab.on("dialog", lambda dialog: (tab.dialogs.append(dialog.message), dialog.dismiss()))
    tab.errors = []
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    yield tab
    context.close()
