"""The Billing pages of the console (Plans, Customers) through the Django test client: forms
that save through the services, messages a person reads, roles as the API, CSRF."""
from __future__ import annotations

import html
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.test import Client

from aforo.catalog import customer_create, product_create
from aforo.models import Customer
from billing.models import PriceComponent, RatePlan, Subscription
from billing.services import ComponentSpec, rate_plan_create, subscription_create
from tests.console.conftest import XSS, console_user
from tests.factories import ingest

pytestmark = pytest.mark.django_db


def body(response) -> str:
    return html.unescape(response.content.decode())


def plan_form(code: str = "pro", name: str = "Pro", rows: list[dict] | None = None,
              **extra) -> dict:
    """The plan form's POST body: one dict of field -> value per component row."""
    rows = rows if rows is not None else [{"kind": "PER_EVENT", "unit_price": "0.01"}]
    posted = {"code": code, "name": name, "rows": str(len(rows) + 2), "action": "save", **extra}
    for i, row in enumerate(rows):
        for key, value in row.items():
            posted[f"c-{i}-{key}"] = value
    return posted


@pytest.fixture
def viewer(tenant) -> Client:
    client = Client()
    client.force_login(console_user(tenant, "vera", role="VIEWER"))
    return client


def test_billing_pages_require_login(db):
    for path in ("/console/billing/plans/", "/console/billing/customers/",
                 "/console/billing/new-plan/"):
        response = Client().get(path)
        assert response.status_code == 302 and "/console/login/" in response["Location"]


def test_create_a_plan_with_components_and_tiers(tenant, console):
    product_create(tenant=tenant, external_id="prod_chat")
    empty = console.get("/console/billing/plans/")
    assert empty.status_code == 200 and 'data-empty="plans"' in empty.content.decode()
    form = console.get("/console/billing/new-plan/").content.decode()
    assert "csrfmiddlewaretoken" in form and 'aria-label="New plan"' in form
    assert "<option>prod_chat</option>" in form

    response = console.post("/console/billing/new-plan/", plan_form(rows=[
        {"kind": "PER_EVENT", "unit_price": "$0.01"},
        {},  # a blank row is skipped
        {"kind": "PER_1K_TOKENS", "product": "prod_chat", "tier-0-up_to": "1,000",
         "tier-0-price": "0.004", "tier-1-up_to": "", "tier-1-price": "0.003"},
        {"kind": "FLAT_FEE", "unit_price": "49", "events_per_period": "1000"},
    ]))
    assert response.status_code == 302 and response["Location"].endswith(
        "/console/billing/plans/pro/")
    plan = RatePlan.objects.get(tenant=tenant, code="pro")
    kinds = {c.kind: c for c in plan.components.all()}
    assert set(kinds) == {"PER_EVENT", "PER_1K_TOKENS", "FLAT_FEE"}
    assert kinds["PER_EVENT"].unit_price == Decimal("0.01")
    assert [(t.up_to, t.unit_price) for t in kinds["PER_1K_TOKENS"].tiers.all()] == [
        (Decimal(1000), Decimal("0.004")), (None, Decimal("0.003"))]
    assert kinds["FLAT_FEE"].rating_events_per_period == 1000

    page = body(console.get("/console/billing/plans/pro/"))
    assert "Plan “Pro” created." in page and 'value="0.01"' in page
    listed = body(console.get("/console/billing/plans/"))
    assert "$0.01 per event" in listed
    assert "Per 1K tokens: $0.004 up to 1000, $0.003 beyond (prod_chat)" in listed
    assert "$49 per period, rated over 1,000 events" in listed


@pytest.mark.parametrize(("row", "message", "marked"), [
    ({"kind": "PER_TOOL_CALL", "unit_price": "-1"},
     "Component 2 (Per tool call): the unit price must not be negative.", "c-1-unit_price"),
    ({"kind": "PER_TOOL_CALL", "unit_price": "two cents"},
     "Component 2 (Per tool call): the price: “two cents” is not a number.", "c-1-unit_price"),
    ({"kind": "PER_TOOL_CALL"}, "Component 2 (Per tool call): enter a price, or volume tiers.",
     "c-1-unit_price"),
    ({"unit_price": "3"}, "Component 2: choose what it charges for (a kind).", "c-1-kind"),
    ({"kind": "PER_EVENT", "unit_price": "1"},
     "Component 2 (Per event): component 1 already prices per event for every product; "
     "change that one instead.", "c-1-kind"),
    ({"kind": "PER_TOOL_CALL", "tier-0-up_to": "100", "tier-0-price": "1",
      "tier-1-up_to": "50", "tier-1-price": "1"},
     "Component 2 (Per tool call), tier 2: “up to” must be above the previous tier's (100).",
     "c-1-tier-1-up_to"),
    ({"kind": "MARKUP_PCT", "unit_price": "20", "events_per_period": "10"},
     "Component 2 (Markup on COGS (%)): events per period applies to a flat fee only.",
     "c-1-events_per_period"),
])
def test_a_bad_component_is_shown_on_its_row_with_the_values_kept(tenant, console, row,
                                                                   message, marked):
    response = console.post("/console/billing/new-plan/", plan_form(rows=[
        {"kind": "PER_EVENT", "unit_price": "0.01"}, row]))
    assert response.status_code == 400
    page = body(response)
    assert message in page, re.findall(r'role="alert">([^<]*)', page)
    assert re.search(rf'name="{marked}"[^>]*aria-invalid="true"', page), marked
    assert 'data-component-row="1"' in page and 'value="0.01"' in page  # kept as typed
    assert not RatePlan.objects.filter(tenant=tenant).exists()


def test_add_a_row_then_edit_and_remove_components(tenant, console):
    grown = console.post("/console/billing/new-plan/", plan_form(action="add_row"))
    assert grown.status_code == 200 and not RatePlan.objects.filter(tenant=tenant).exists()
    assert grown.content.decode().count("data-component-row=") == 4  # 1 filled + 1 + 2 blank
    console.post("/console/billing/new-plan/", plan_form(rows=[
        {"kind": "PER_EVENT", "unit_price": "0.01"},
        {"kind": "PER_TOOL_CALL", "unit_price": "0.002"}]))
    kept = PriceComponent.objects.get(plan__code="pro", kind="PER_EVENT").pk

    saved = console.post("/console/billing/plans/pro/", plan_form(name="Pro 2027", rows=[
        {"kind": "PER_EVENT", "unit_price": "0.02"}, {"kind": "", "unit_price": ""}]))
    assert saved.status_code == 302
    plan = RatePlan.objects.get(tenant=tenant, code="pro")
    assert plan.name == "Pro 2027"
    assert [(c.pk, c.kind, c.unit_price) for c in plan.components.all()] == [
        (kept, "PER_EVENT", Decimal("0.02"))]
    page = body(console.get("/console/billing/plans/pro/"))
    assert "events already ingested keep theirs until the period's invoice settles them" in page
    # the code is the plan's id: a posted change is ignored, the form shows it read-only
    console.post("/console/billing/plans/pro/", plan_form(code="other"))
    assert RatePlan.objects.filter(tenant=tenant, code="pro").exists()
    assert re.search(r'id="plan-code"[^>]*readonly', page)


def test_a_duplicate_code_is_refused_in_words(tenant, console):
    rate_plan_create(tenant=tenant, code="pro")
    response = console.post("/console/billing/new-plan/", plan_form())
    assert response.status_code == 409
    assert "A plan with the code 'pro' exists." in body(response)


def test_deleting_a_plan_in_use_says_why_and_keeps_it(tenant, console):
    customer = customer_create(tenant=tenant, external_id="cust_a")
    plan = rate_plan_create(tenant=tenant, code="pro", name="Pro")
    rate_plan_create(tenant=tenant, code="spare")
    subscription_create(tenant=tenant, customer=customer, plan=plan,
                        starts_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    response = console.post("/console/billing/plans/pro/delete/", follow=True)
    page = body(response)
    assert "Plan “Pro” not deleted: Plan 'pro' has 1 subscription" in page
    assert RatePlan.objects.filter(tenant=tenant, code="pro").exists()
    gone = console.post("/console/billing/plans/spare/delete/", follow=True)
    assert "Plan “spare” deleted." in body(gone)
    assert not RatePlan.objects.filter(tenant=tenant, code="spare").exists()


def test_subscribe_change_plan_and_end_from_the_customer_page(store, tenant, console):
    rate_plan_create(tenant=tenant, code="calls", name="Calls", components=[
        ComponentSpec("PER_EVENT", Decimal("0.50"))])
    rate_plan_create(tenant=tenant, code="pricier", name="Pricier", components=[
        ComponentSpec("PER_EVENT", Decimal("0.75"))])
    added = console.post("/console/billing/new-customer/",
                         {"customer_id": "cust/acme", "name": "Acme"})
    assert added.status_code == 302
    path = added["Location"]
    assert path == "/console/billing/customers/cust/acme/"
    page = body(console.get(path))
    assert 'data-empty="plan"' in page and 'aria-label="Subscribe"' in page

    # times as the form's datetime-local inputs send them, in the tenant's zone (UTC here)
    now = datetime.now(timezone.utc).replace(microsecond=0)

    def local(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M")

    done = console.post(path, {"action": "subscribe", "plan": "calls",
                               "starts_at": local(now - timedelta(hours=3))}, follow=True)
    page = body(done)
    assert "Acme is on plan “Calls”." in page and 'data-current-plan="calls"' in page
    rows = ingest(tenant, [{"eventId": "e1", "customerId": "cust/acme", "productId": "p",
                            "occurredAt": now - timedelta(hours=2), "cogsUsd": "0.10"}])
    assert rows[0]["rated_revenue_usd"] == Decimal("0.5")
    page = body(console.get(path))
    assert re.search(r'data-event="e1">.*?data-rated-revenue="0.5"', page, re.S)
    assert re.search(r'data-status="ACTIVE">.*?data-rated-revenue="0.5"', page, re.S)

    clash = console.post(path, {"action": "subscribe", "plan": "pricier"}, follow=True)
    assert "Not saved: Customer 'cust/acme' is already on plan 'calls'" in body(clash)
    bad = console.post(path, {"action": "change", "plan": "pricier", "at": "soon"},
                       follow=True)
    assert "Not saved: Change from: “soon” is not a date and time" in body(bad)
    moved = console.post(path, {"action": "change", "plan": "pricier",
                                "at": local(now - timedelta(hours=1))}, follow=True)
    assert "Acme moves from “Calls” to “Pricier”." in body(moved)
    rows = ingest(tenant, [{"eventId": "e2", "customerId": "cust/acme", "productId": "p",
                            "cogsUsd": "0.10"}])
    assert rows[0]["rated_revenue_usd"] == Decimal("0.75")

    ended = console.post(path, {"action": "end", "at": ""}, follow=True)
    page = body(ended)
    assert "subscription to “Pricier” ends" in page and 'data-empty="plan"' in page
    assert [s.plan.code for s in Subscription.objects.filter(tenant=tenant)
            .order_by("starts_at")] == ["calls", "pricier"]

    future = console.post(path, {"action": "subscribe", "plan": "calls",
                                 "starts_at": "2099-01-01T09:30"}, follow=True)
    page = body(future)
    scheduled = Subscription.objects.get(tenant=tenant, plan__code="calls",
                                         starts_at__year=2099)
    assert f'data-subscription="{scheduled.pk}" data-status="SCHEDULED"' in page
    cancelled = console.post(path, {"action": "cancel", "subscription": scheduled.pk},
                             follow=True)
    assert "The scheduled subscription to “Calls” is cancelled." in body(cancelled)


def test_the_customer_list_shows_each_plan_and_escapes_ids(tenant, console):
    plan = rate_plan_create(tenant=tenant, code="pro", name="Pro")
    for cid in ("cust_a", XSS):
        customer = customer_create(tenant=tenant, external_id=cid)
    subscription_create(tenant=tenant, customer=customer, plan=plan,
                        starts_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    raw = console.get("/console/billing/customers/").content.decode()
    assert XSS not in raw and "&lt;script&gt;" in raw
    assert re.search(r'data-customer="cust_a">.*?No plan', body(console.get(
        "/console/billing/customers/")), re.S)
    found = body(console.get("/console/billing/customers/", {"q": "script"}))
    assert "Pro" in found and "cust_a" not in found
    again = console.post("/console/billing/new-customer/", {"customer_id": "cust_a"},
                         follow=True)
    assert "Customer not added: “cust_a” exists already." in body(again)


def test_a_viewer_sees_no_forms_and_its_posts_are_refused(store, tenant, viewer):
    plan = rate_plan_create(tenant=tenant, code="pro", name="Pro", components=[
        ComponentSpec("PER_EVENT", Decimal("1"))])
    customer = customer_create(tenant=tenant, external_id="cust_a")
    for path in ("/console/billing/plans/", "/console/billing/plans/pro/",
                 "/console/billing/customers/", "/console/billing/customers/cust_a/"):
        page = viewer.get(path).content.decode()
        forms = re.findall(r'<form method="post" action="([^"]*)"', page)
        assert forms == ["/console/logout/"] and 'method="post">' not in page, (path, forms)
    assert "$1 per event" in body(viewer.get("/console/billing/plans/pro/"))
    assert viewer.get("/console/billing/new-plan/").status_code == 403
    refused = [
        ("/console/billing/new-plan/", plan_form(code="mine")),
        ("/console/billing/plans/pro/", plan_form(rows=[{"kind": "PER_EVENT",
                                                         "unit_price": "0"}])),
        ("/console/billing/plans/pro/delete/", {}),
        ("/console/billing/new-customer/", {"customer_id": "cust_new"}),
        ("/console/billing/customers/cust_a/", {"action": "subscribe", "plan": "pro"}),
    ]
    for path, posted in refused:
        response = viewer.post(path, posted)
        assert response.status_code == 403, path
        assert "Your role (VIEWER) may view plans and subscriptions" in body(response)
    assert list(RatePlan.objects.filter(tenant=tenant).values_list("code", flat=True)) == ["pro"]
    assert plan.components.get().unit_price == Decimal(1)
    assert not Subscription.objects.filter(customer=customer).exists()
    assert not Customer.objects.filter(tenant=tenant, external_id="cust_new").exists()


def test_every_billing_form_needs_its_csrf_token(tenant, member):
    client = Client(enforce_csrf_checks=True)
    client.force_login(member)
    customer_create(tenant=tenant, external_id="cust_a")
    for path, posted in (("/console/billing/new-plan/", plan_form()),
                         ("/console/billing/new-customer/", {"customer_id": "cust_b"}),
                         ("/console/billing/customers/cust_a/", {"action": "end"})):
        assert client.post(path, posted).status_code == 403, path
    assert not RatePlan.objects.filter(tenant=tenant).exists()


def test_another_tenants_plan_and_customer_are_404(tenant, other_tenant, console):
    rate_plan_create(tenant=other_tenant, code="theirs")
    customer_create(tenant=other_tenant, external_id="cust_theirs")
    assert console.get("/console/billing/plans/theirs/").status_code == 404
    assert console.post("/console/billing/plans/theirs/", plan_form()).status_code == 404
    assert console.post("/console/billing/plans/theirs/delete/").status_code == 404
    assert console.get("/console/billing/customers/cust_theirs/").status_code == 404
    assert RatePlan.objects.filter(tenant=other_tenant, code="theirs").exists()
