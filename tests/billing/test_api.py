"""The billing API: import, list, detail, void, attribution runs; roles and tenant isolation."""
from __future__ import annotations

from decimal import Decimal

from tests.conftest import api_client
from tests.factories import event, ingest, revenue_by_event

INVOICE = {
    "invoiceId": "inv_api_1", "customerId": "cust_a",
    "periodStart": "2026-10-01T00:00:00Z", "periodEnd": "2026-11-01T00:00:00Z",
    "lines": [{"lineId": "l1", "productId": "prod_x", "amountUsd": 12.34, "unit": "EVENTS"},
              {"lineId": "l2", "productId": "prod_y", "amountUsd": "0.66", "unit": "TOKENS"}],
}


def test_import_attribute_and_read_back(store, tenant):
    ingest(tenant, [event("a"), event("b"), event("c", product="prod_y", inputTokens=10)])
    client = api_client(tenant, "BILLING_ADMIN")
    created = client.post("/api/v1/billing/invoices", INVOICE, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["status"] == "FINALIZED" and created.json()["totalUsd"] == 13.0

    run = client.post("/api/v1/billing/attribution-runs", {}, format="json")
    assert run.status_code == 201, run.json()
    body = run.json()
    assert body["status"] == "SUCCEEDED" and body["linesMatched"] == 2
    assert body["attributedUsd"] == 13.0 and body["unattributedUsd"] == 0
    assert body["events"] == 3 and body["entriesWritten"] == 3
    assert revenue_by_event(tenant) == {"a": Decimal("6.17"), "b": Decimal("6.17"),
                                        "c": Decimal("0.66")}

    listed = client.get("/api/v1/billing/invoices").json()
    assert listed["totalElements"] == 1 and listed["content"][0]["invoiceId"] == "inv_api_1"
    detail = client.get("/api/v1/billing/invoices/inv_api_1").json()
    assert [ln["lineId"] for ln in detail["lines"]] == ["l1", "l2"]
    runs = client.get("/api/v1/billing/attribution-runs").json()
    assert runs["totalElements"] == 1
    one = client.get(f"/api/v1/billing/attribution-runs/{body['runId']}")
    assert one.status_code == 200 and one.json()["linesMatched"] == 2

    voided = client.post("/api/v1/billing/invoices/inv_api_1/void")
    assert voided.status_code == 200 and voided.json()["status"] == "VOID"
    assert revenue_by_event(tenant) == {}


def test_periods_may_be_plain_dates(tenant):
    client = api_client(tenant, "OWNER")
    body = {**INVOICE, "periodStart": "2026-10-01", "periodEnd": "2026-11-01"}
    response = client.post("/api/v1/billing/invoices", body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["periodStart"] == "2026-10-01T00:00:00Z"


def test_bad_invoices_are_refused_with_the_field(tenant):
    client = api_client(tenant, "OWNER")
    bad_unit = {**INVOICE, "lines": [{**INVOICE["lines"][0], "unit": "SECONDS"}]}
    response = client.post("/api/v1/billing/invoices", bad_unit, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "lines.0.unit"
    backwards = {**INVOICE, "periodEnd": "2026-09-01T00:00:00Z"}
    response = client.post("/api/v1/billing/invoices", backwards, format="json")
    assert response.status_code == 400 and response.json()["error"]["field"] == "periodEnd"
    twice = {**INVOICE, "lines": [INVOICE["lines"][0], INVOICE["lines"][0]]}
    assert client.post("/api/v1/billing/invoices", twice, format="json").status_code == 400


def test_roles_and_tenants(tenant, other_tenant):
    assert api_client(tenant, "DEVELOPER").post(
        "/api/v1/billing/invoices", INVOICE, format="json").status_code == 403
    assert api_client(tenant, "VIEWER").get("/api/v1/billing/invoices").status_code == 200
    api_client(other_tenant, "OWNER").post("/api/v1/billing/invoices", INVOICE, format="json")
    mine = api_client(tenant, "VIEWER")
    assert mine.get("/api/v1/billing/invoices").json()["totalElements"] == 0
    assert mine.get("/api/v1/billing/invoices/inv_api_1").status_code == 404
    assert api_client(tenant, "OWNER").post(
        "/api/v1/billing/invoices/inv_api_1/void").status_code == 404


def test_drafts_are_finalized_once(store, tenant):
    from datetime import datetime, timezone

    from billing.services import LineSpec, invoice_import

    invoice_import(tenant=tenant, invoice_id="draft_1", customer_id="cust_a",
                   period_start=datetime(2026, 10, 1, tzinfo=timezone.utc),
                   period_end=datetime(2026, 11, 1, tzinfo=timezone.utc),
                   lines=[LineSpec(line_id="l1", product_id="prod_x",
                                   amount_usd=Decimal("1"), unit="FLAT")],
                   status="DRAFT")
    client = api_client(tenant, "ADMIN")
    assert client.get("/api/v1/billing/invoices?status=DRAFT").json()["totalElements"] == 1
    response = client.post("/api/v1/billing/invoices/draft_1/finalize")
    assert response.status_code == 200 and response.json()["status"] == "FINALIZED"
    again = client.post("/api/v1/billing/invoices/draft_1/finalize")
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_state"
