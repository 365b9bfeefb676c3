"""Plans and subscriptions over REST: create, read, update, list, end, change plan; roles,
tenant isolation, field-named errors, and ingest rating by what the API last wrote."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from django.test import Client

from aforo.catalog import customer_create
from billing import queries
from billing.models import PriceComponent, RatePlan, Subscription
from tests.conftest import api_client
from tests.factories import event, ingest

PRO = {
    "code": "pro", "name": "Pro",
    "components": [
        {"kind": "PER_EVENT", "unitPrice": 0.01},
        {"kind": "PER_1K_TOKENS", "unitPrice": "0.004", "productId": "prod_x"},
        {"kind": "PER_TOOL_CALL", "tiers": [{"upTo": 1000, "unitPrice": 0.002},
                                            {"upTo": None, "unitPrice": "0.0015"}]},
        {"kind": "FLAT_FEE", "unitPrice": 49, "ratingEventsPerPeriod": 1000},
    ],
}


@pytest.fixture
def catalog(tenant):
    return {"cust_a": customer_create(tenant=tenant, external_id="cust_a", name="Acme"),
            "cust_b": customer_create(tenant=tenant, external_id="cust_b")}


def test_a_plan_is_created_read_listed_and_renamed(tenant, catalog):
    api = api_client(tenant, "BILLING_ADMIN")
    created = api.post("/api/v1/billing/plans", PRO, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["code"] == "pro" and body["name"] == "Pro"
    assert body["activeSubscriptions"] == 0 and body["subscriptionCount"] == 0
    by_kind = {c["kind"]: c for c in body["components"]}
    assert by_kind["PER_EVENT"] == {"kind": "PER_EVENT", "productId": None, "unitPrice": 0.01,
                                    "unit": "EVENTS", "tiers": [],
                                    "ratingEventsPerPeriod": None}
    assert by_kind["PER_1K_TOKENS"]["productId"] == "prod_x"
    assert by_kind["PER_1K_TOKENS"]["unitPrice"] == 0.004
    assert by_kind["PER_TOOL_CALL"]["tiers"] == [{"upTo": 1000.0, "unitPrice": 0.002},
                                                 {"upTo": None, "unitPrice": 0.0015}]
    assert by_kind["FLAT_FEE"]["ratingEventsPerPeriod"] == 1000
    # a product priced before its first event joins the catalog, as invoice lines do
    assert api.get("/api/v1/products/prod_x").status_code == 200
    # stored exactly, as Decimals
    stored = PriceComponent.objects.get(plan__tenant=tenant, kind="PER_1K_TOKENS")
    assert stored.unit_price == Decimal("0.004")

    assert api.get("/api/v1/billing/plans/pro").json() == body
    listed = api.get("/api/v1/billing/plans").json()
    assert listed["totalElements"] == 1 and listed["content"] == [body]
    assert set(listed) == {"content", "page", "size", "totalElements", "totalPages"}

    renamed = api.patch("/api/v1/billing/plans/pro", {"name": "Pro 2027"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Pro 2027"
    assert renamed.json()["components"] == body["components"]


def test_replacing_components_keeps_those_of_the_same_kind_and_product(tenant, catalog):
    api = api_client(tenant, "ADMIN")
    api.post("/api/v1/billing/plans", PRO, format="json")
    kept = PriceComponent.objects.get(plan__code="pro", kind="PER_EVENT").pk
    response = api.patch("/api/v1/billing/plans/pro", {"components": [
        {"kind": "PER_EVENT", "unitPrice": "0.02"},
        {"kind": "MARKUP_PCT", "unitPrice": 45}]}, format="json")
    assert response.status_code == 200, response.json()
    assert [(c["kind"], c["unitPrice"]) for c in response.json()["components"]] == [
        ("MARKUP_PCT", 45.0), ("PER_EVENT", 0.02)]
    components = PriceComponent.objects.filter(plan__code="pro", plan__tenant=tenant)
    assert components.get(kind="PER_EVENT").pk == kept
    assert components.count() == 2


@pytest.mark.parametrize(("component", "field", "words"), [
    ({"kind": "PER_SECOND"}, "components.0.kind", "valid choice"),
    ({"kind": "PER_EVENT", "unitPrice": -1}, "components.0.unitPrice", "must not be negative"),
    ({"kind": "PER_EVENT", "unitPrice": "abc"}, "components.0.unitPrice", "valid number"),
    ({"kind": "PER_EVENT", "unitPrice": "0.0000000000001"}, "components.0.unitPrice",
     "more than 12 decimals"),
    ({"kind": "PER_EVENT", "productId": "p" * 201}, "components.0.productId",
     "no more than 200 characters"),
    ({"kind": "PER_EVENT", "tiers": [{"upTo": 100, "unitPrice": 1},
                                     {"upTo": 50, "unitPrice": 1}]},
     "components.0.tiers.1.upTo", "above the previous tier's (100)"),
    ({"kind": "PER_EVENT", "tiers": [{"upTo": None, "unitPrice": 1},
                                     {"upTo": 50, "unitPrice": 1}]},
     "components.0.tiers.0.upTo", "only the last tier"),
    ({"kind": "MARKUP_PCT", "unitPrice": 20, "tiers": [{"upTo": 10, "unitPrice": 1}]},
     "components.0.tiers", "usage prices only"),
    ({"kind": "PER_EVENT", "ratingEventsPerPeriod": 10}, "components.0.ratingEventsPerPeriod",
     "flat fee only"),
    ({"kind": "FLAT_FEE", "unitPrice": 5, "ratingEventsPerPeriod": 0},
     "components.0.ratingEventsPerPeriod", "greater than or equal to 1"),
])
def test_bad_components_are_refused_naming_the_field(tenant, catalog, component, field, words):
    api = api_client(tenant, "OWNER")
    response = api.post("/api/v1/billing/plans", {"code": "bad", "components": [component]},
                        format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["field"] == field and words in error["message"], error
    assert not RatePlan.objects.filter(tenant=tenant).exists()


def test_a_duplicate_component_or_code_is_refused(tenant, catalog):
    api = api_client(tenant, "OWNER")
    twice = {"code": "dup", "components": [{"kind": "PER_EVENT", "unitPrice": 1},
                                           {"kind": "PER_EVENT", "unitPrice": 2}]}
    response = api.post("/api/v1/billing/plans", twice, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "components.1.kind"
    assert "Component 2" in response.json()["error"]["message"]
    assert api.post("/api/v1/billing/plans", PRO, format="json").status_code == 201
    again = api.post("/api/v1/billing/plans", PRO, format="json")
    assert again.status_code == 409 and again.json()["error"]["field"] == "code"
    bad_code = api.post("/api/v1/billing/plans", {"code": "has space"}, format="json")
    assert bad_code.status_code == 400 and bad_code.json()["error"]["field"] == "code"
    renamed = api.patch("/api/v1/billing/plans/pro", {"code": "pro2"}, format="json")
    assert renamed.status_code == 400 and renamed.json()["error"]["field"] == "code"


def test_a_bad_update_leaves_the_plan_as_it_was(tenant, catalog):
    api = api_client(tenant, "OWNER")
    before = api.post("/api/v1/billing/plans", PRO, format="json").json()
    response = api.patch("/api/v1/billing/plans/pro", {"name": "X", "components": [
        {"kind": "PER_EVENT", "unitPrice": 1}, {"kind": "PER_TOOL_CALL", "unitPrice": -1}]},
        format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "components.1.unitPrice"
    assert api.get("/api/v1/billing/plans/pro").json() == before
    no_kind = api.patch("/api/v1/billing/plans/pro", {"components": [{"unitPrice": 1}]},
                        format="json")
    assert no_kind.status_code == 400
    assert no_kind.json()["error"]["field"] == "components.0.kind"


def test_subscribe_list_end_and_change_plan(tenant, catalog):
    api = api_client(tenant, "BILLING_ADMIN")
    api.post("/api/v1/billing/plans", PRO, format="json")
    api.post("/api/v1/billing/plans", {"code": "free"}, format="json")
    created = api.post("/api/v1/billing/subscriptions", {
        "customerId": "cust_a", "planCode": "pro", "startsAt": "2026-10-01"}, format="json")
    assert created.status_code == 201, created.json()
    sub = created.json()
    assert sub["customerId"] == "cust_a" and sub["planCode"] == "pro"
    assert sub["startsAt"] == "2026-10-01T00:00:00Z" and sub["endsAt"] is None
    assert sub["status"] == "ACTIVE"
    assert api.get(f"/api/v1/billing/subscriptions/{sub['id']}").json() == sub
    assert api.get("/api/v1/billing/plans/pro").json()["activeSubscriptions"] == 1

    changed = api.post(f"/api/v1/billing/subscriptions/{sub['id']}/change-plan",
                       {"planCode": "free", "at": "2026-11-01T00:00:00Z"}, format="json")
    assert changed.status_code == 201, changed.json()
    successor = changed.json()
    assert successor["planCode"] == "free" and successor["startsAt"] == "2026-11-01T00:00:00Z"
    old = api.get(f"/api/v1/billing/subscriptions/{sub['id']}").json()
    assert old["endsAt"] == "2026-11-01T00:00:00Z" and old["status"] == "ENDED"

    ended = api.post(f"/api/v1/billing/subscriptions/{successor['id']}/end", {}, format="json")
    assert ended.status_code == 200 and ended.json()["status"] == "ENDED"
    again = api.post(f"/api/v1/billing/subscriptions/{successor['id']}/end", {}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_state"

    listed = api.get("/api/v1/billing/subscriptions?customerId=cust_a").json()
    assert [s["planCode"] for s in listed["content"]] == ["free", "pro"]
    assert api.get("/api/v1/billing/subscriptions?status=ACTIVE").json()["totalElements"] == 0
    assert api.get("/api/v1/billing/subscriptions?planCode=pro").json()["totalElements"] == 1
    bad = api.get("/api/v1/billing/subscriptions?status=LIVE")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "status"

    # reopen the last term by PATCH: endsAt null
    reopened = api.patch(f"/api/v1/billing/subscriptions/{successor['id']}", {"endsAt": None},
                         format="json")
    assert reopened.status_code == 200 and reopened.json()["endsAt"] is None
    assert reopened.json()["status"] == "ACTIVE"


def test_a_customer_is_on_one_plan_at_a_time(tenant, catalog):
    api = api_client(tenant, "OWNER")
    api.post("/api/v1/billing/plans", PRO, format="json")
    api.post("/api/v1/billing/plans", {"code": "free"}, format="json")
    first = api.post("/api/v1/billing/subscriptions", {
        "customerId": "cust_a", "planCode": "pro", "startsAt": "2026-10-01",
        "endsAt": "2026-12-01"}, format="json").json()
    for starts, ends in (("2026-11-01", None), ("2026-09-01", "2026-10-02"),
                         ("2026-10-05", "2026-10-06"), ("2026-01-01", None)):
        clash = api.post("/api/v1/billing/subscriptions", {
            "customerId": "cust_a", "planCode": "free", "startsAt": starts, "endsAt": ends},
            format="json")
        assert clash.status_code == 409, (starts, ends)
        error = clash.json()["error"]
        assert error["code"] == "subscription_overlap" and "'pro'" in error["message"]
    # back to back is fine, and another customer is unaffected
    for body in ({"customerId": "cust_a", "planCode": "free", "startsAt": "2026-12-01"},
                 {"customerId": "cust_a", "planCode": "free", "startsAt": "2026-09-01",
                  "endsAt": "2026-10-01"},
                 {"customerId": "cust_b", "planCode": "pro", "startsAt": "2026-10-01"}):
        assert api.post("/api/v1/billing/subscriptions", body, format="json").status_code == 201
    # moving an existing term onto another is refused too
    moved = api.patch(f"/api/v1/billing/subscriptions/{first['id']}", {"endsAt": None},
                      format="json")
    assert moved.status_code == 409 and moved.json()["error"]["code"] == "subscription_overlap"


def test_subscription_input_errors_name_the_field(tenant, catalog):
    api = api_client(tenant, "OWNER")
    api.post("/api/v1/billing/plans", PRO, format="json")
    cases = [
        ({"customerId": "cust_nope", "planCode": "pro"}, "customerId"),
        ({"customerId": "cust_a", "planCode": "nope"}, "planCode"),
        ({"customerId": "cust_a", "planCode": "pro", "startsAt": "yesterday"}, "startsAt"),
        ({"customerId": "cust_a", "planCode": "pro", "startsAt": "2026-10-02",
          "endsAt": "2026-10-01"}, "endsAt"),
        ({"planCode": "pro"}, "customerId"),
    ]
    for body, field in cases:
        response = api.post("/api/v1/billing/subscriptions", body, format="json")
        assert response.status_code == 400, body
        assert response.json()["error"]["field"] == field, response.json()
    sub = api.post("/api/v1/billing/subscriptions", {"customerId": "cust_a", "planCode": "pro"},
                   format="json").json()
    moved = api.patch(f"/api/v1/billing/subscriptions/{sub['id']}", {"customerId": "cust_b"},
                      format="json")
    assert moved.status_code == 400 and moved.json()["error"]["field"] == "customerId"
    same = api.post(f"/api/v1/billing/subscriptions/{sub['id']}/change-plan",
                    {"planCode": "pro"}, format="json")
    assert same.status_code == 400 and same.json()["error"]["field"] == "planCode"


def test_a_plan_with_subscriptions_cannot_be_deleted(tenant, catalog):
    api = api_client(tenant, "OWNER")
    api.post("/api/v1/billing/plans", PRO, format="json")
    sub = api.post("/api/v1/billing/subscriptions", {
        "customerId": "cust_a", "planCode": "pro", "startsAt": "2026-10-01",
        "endsAt": "2026-11-01"}, format="json").json()
    refused = api.delete("/api/v1/billing/plans/pro")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "plan_in_use" and "1 subscription " in error["message"]
    # an ended subscription has started: it is history, not deletable
    gone = api.delete(f"/api/v1/billing/subscriptions/{sub['id']}")
    assert gone.status_code == 409 and gone.json()["error"]["code"] == "invalid_state"

    api.post("/api/v1/billing/plans", {"code": "later"}, format="json")
    future = api.post("/api/v1/billing/subscriptions", {
        "customerId": "cust_b", "planCode": "later", "startsAt": "2030-01-01"},
        format="json").json()
    assert future["status"] == "SCHEDULED"
    assert api.delete(f"/api/v1/billing/subscriptions/{future['id']}").status_code == 204
    assert api.delete("/api/v1/billing/plans/later").status_code == 204
    assert api.get("/api/v1/billing/plans/later").status_code == 404


@pytest.mark.parametrize("role", ["OWNER", "ADMIN", "BILLING_ADMIN", "DEVELOPER", "VIEWER"])
def test_every_role_reads_and_only_billing_roles_write(tenant, catalog, role):
    owner = api_client(tenant, "OWNER")
    owner.post("/api/v1/billing/plans", PRO, format="json")
    sub = owner.post("/api/v1/billing/subscriptions", {
        "customerId": "cust_a", "planCode": "pro", "startsAt": "2026-10-01"},
        format="json").json()
    client = api_client(tenant, role)
    for path in ("/api/v1/billing/plans", "/api/v1/billing/plans/pro",
                 "/api/v1/billing/subscriptions", f"/api/v1/billing/subscriptions/{sub['id']}"):
        assert client.get(path).status_code == 200, path
    writes = [
        ("post", "/api/v1/billing/plans", {"code": f"new-{role.lower()}"}),
        ("patch", "/api/v1/billing/plans/pro", {"name": role}),
        ("post", f"/api/v1/billing/subscriptions/{sub['id']}/end", {}),
    ]
    expected = 403 if role in ("DEVELOPER", "VIEWER") else None
    for method, path, body in writes:
        response = getattr(client, method)(path, body, format="json")
        if expected:
            assert response.status_code == 403, (method, path)
            assert response.json()["error"]["code"] == "forbidden"
        else:
            assert response.status_code in (200, 201), (method, path, response.json())
    if expected:
        assert RatePlan.objects.filter(tenant=tenant).count() == 1
        assert Subscription.objects.get(pk=sub["id"]).ends_at is None


def test_another_tenants_plans_and_subscriptions_are_404(tenant, other_tenant, catalog):
    owner = api_client(tenant, "OWNER")
    owner.post("/api/v1/billing/plans", PRO, format="json")
    sub = owner.post("/api/v1/billing/subscriptions", {"customerId": "cust_a",
                                                       "planCode": "pro"}, format="json").json()
    other = api_client(other_tenant, "OWNER")
    assert other.get("/api/v1/billing/plans").json()["totalElements"] == 0
    assert other.get("/api/v1/billing/subscriptions").json()["totalElements"] == 0
    for method, path in (("get", "/api/v1/billing/plans/pro"),
                         ("patch", "/api/v1/billing/plans/pro"),
                         ("delete", "/api/v1/billing/plans/pro"),
                         ("get", f"/api/v1/billing/subscriptions/{sub['id']}"),
                         ("patch", f"/api/v1/billing/subscriptions/{sub['id']}"),
                         ("delete", f"/api/v1/billing/subscriptions/{sub['id']}"),
                         ("post", f"/api/v1/billing/subscriptions/{sub['id']}/end"),
                         ("post", f"/api/v1/billing/subscriptions/{sub['id']}/change-plan")):
        response = getattr(other, method)(path, {"planCode": "pro"}, format="json")
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["code"] == "not_found"
    # nor can the other tenant subscribe our customer to its own plan of the same code
    other.post("/api/v1/billing/plans", {"code": "pro"}, format="json")
    response = other.post("/api/v1/billing/subscriptions", {"customerId": "cust_a",
                                                            "planCode": "pro"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["field"] == "customerId"
    assert Subscription.objects.get(pk=sub["id"]).ends_at is None


def test_ingest_rates_by_what_the_api_last_wrote(store, tenant, catalog):
    api = api_client(tenant, "OWNER")
    api.post("/api/v1/billing/plans", {"code": "calls", "components": [
        {"kind": "PER_EVENT", "unitPrice": "0.50"}]}, format="json")
    ingest(tenant, [event("before-sub", at="2026-11-30T10:00:00Z")])
    api.post("/api/v1/billing/subscriptions", {"customerId": "cust_a", "planCode": "calls",
                                               "startsAt": "2026-11-30T11:00:00Z"},
             format="json")
    first = ingest(tenant, [event("a1", at="2026-11-30T12:00:00Z")])
    assert first[0]["rated_revenue_usd"] == Decimal("0.5")

    api.patch("/api/v1/billing/plans/calls", {"components": [
        {"kind": "PER_EVENT", "unitPrice": "0.75"}]}, format="json")
    second = ingest(tenant, [event("a2", at="2026-11-30T12:00:00Z")])
    assert second[0]["rated_revenue_usd"] == Decimal("0.75")

    sub = api.get("/api/v1/billing/subscriptions?customerId=cust_a").json()["content"][0]
    api.post(f"/api/v1/billing/subscriptions/{sub['id']}/end",
             {"endsAt": "2026-11-30T13:00:00Z"}, format="json")
    third = ingest(tenant, [event("a3", at="2026-11-30T13:30:00Z")])
    assert third[0]["rated_revenue_usd"] == 0

    # the ledger keeps what each event was rated at ingest: 0 + 0.50 + 0.75 + 0
    usage = queries.rated_usage(tenant.slug, customer_id="cust_a",
                                start=datetime(2026, 11, 1, tzinfo=timezone.utc), end=None)
    assert usage["events"] == 4 and usage["rated_revenue_usd"] == Decimal("1.25")


def test_the_schema_documents_the_endpoints_with_their_statuses():
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    assert set(paths["/api/v1/billing/plans"]) == {"get", "post"}
    assert set(paths["/api/v1/billing/plans/{code}"]) == {"get", "patch", "delete"}
    assert set(paths["/api/v1/billing/subscriptions/{subscription_id}"]) == {
        "get", "patch", "delete"}
    assert "409" in paths["/api/v1/billing/plans/{code}"]["delete"]["responses"]
    assert "409" in paths["/api/v1/billing/subscriptions"]["post"]["responses"]
    created = paths["/api/v1/billing/subscriptions/{subscription_id}/change-plan"]["post"]
    assert "201" in created["responses"]
    listed = paths["/api/v1/billing/plans"]["get"]["responses"]["200"]
    page = listed["content"]["application/json"]["schema"]
    name = page["$ref"].rsplit("/", 1)[-1]
    envelope = schema["components"]["schemas"][name]
    assert set(envelope["required"]) == {"content", "page", "size", "totalElements",
                                         "totalPages"}
    assert envelope["properties"]["content"]["items"]["$ref"].endswith("/RatePlan")
    component = schema["components"]["schemas"]["PriceComponent"]["properties"]
    assert {"kind", "productId", "unitPrice", "tiers", "ratingEventsPerPeriod"} <= set(component)
    assert schema["components"]["schemas"]["Error"]["properties"]["error"]
