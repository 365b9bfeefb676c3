"""Stripe invoices in the current and the pre-2025-03 shape import to the same invoice."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from aforo.errors import DomainError
from billing.models import InvoiceSource, InvoiceStatus, Unit
from billing.stripe import stripe_invoice_import
from tests.conftest import api_client

STRIPE = Path("/work/shared/reference/stripe")
SHAPES = ["constructed_ai_saas_invoice_current_shape.json",
          "constructed_ai_saas_invoice_legacy_shape.json"]


def _load(name: str) -> dict:
    path = STRIPE / name
    if not path.exists():
        pytest.skip(f"reference Stripe invoices not available ({path})")
    return json.loads(path.read_text())


@pytest.mark.parametrize("shape", SHAPES)
def test_both_stripe_shapes_import_with_exact_dollars(tenant, shape):
    invoice = stripe_invoice_import(tenant=tenant, payload=_load(shape))
    assert invoice.invoice_id == "in_example_0001"
    assert invoice.customer_id == "cus_example_acme"
    assert invoice.status == InvoiceStatus.FINALIZED and invoice.source == InvoiceSource.STRIPE
    assert invoice.period_start.isoformat() == "2025-07-01T00:00:00+00:00"
    assert invoice.period_end.isoformat() == "2025-08-01T00:00:00+00:00"
    assert invoice.total_usd == Decimal("99.00")
    lines = {ln.line_id: ln for ln in invoice.lines.all()}
    assert lines["il_example_1"].amount_usd == Decimal("49.00")
    assert lines["il_example_1"].product_id == "prod_platform"
    assert lines["il_example_1"].unit == Unit.FLAT
    assert lines["il_example_2"].amount_usd == Decimal("50.00")
    assert lines["il_example_2"].product_id == "prod_llm_tokens"
    assert lines["il_example_2"].unit == Unit.TOKENS
    assert lines["il_example_2"].quantity == 12_500_000


def test_the_two_shapes_give_the_same_lines(tenant, other_tenant):
    current = stripe_invoice_import(tenant=tenant, payload=_load(SHAPES[0]))
    legacy = stripe_invoice_import(tenant=other_tenant, payload=_load(SHAPES[1]))

    def shape(inv):
        return [(ln.line_id, ln.product_id, ln.amount_usd, ln.unit) for ln in inv.lines.all()]

    assert shape(current) == shape(legacy)


def test_maps_and_metadata_choose_product_and_unit(tenant):
    payload = _load(SHAPES[0])
    payload["lines"]["data"][1]["metadata"]["aforo_unit"] = "OUTPUT_TOKENS"
    invoice = stripe_invoice_import(
        tenant=tenant, payload=payload, customer_id="cust_acme",
        product_map={"prod_llm_tokens": "prod_chat", "prod_platform": ""})
    lines = {ln.line_id: ln for ln in invoice.lines.all()}
    assert invoice.customer_id == "cust_acme"
    assert lines["il_example_2"].product_id == "prod_chat"
    assert lines["il_example_2"].unit == Unit.OUTPUT_TOKENS


def test_paginated_lines_drafts_and_other_currencies_are_refused(tenant):
    for change, field in ((("lines", "has_more"), "lines.has_more"),):
        payload = _load(SHAPES[0])
        payload[change[0]][change[1]] = True
        with pytest.raises(DomainError) as err:
            stripe_invoice_import(tenant=tenant, payload=payload)
        assert err.value.field == field
    draft = {**_load(SHAPES[0]), "status": "draft"}
    with pytest.raises(DomainError):
        stripe_invoice_import(tenant=tenant, payload=draft)
    eur = {**_load(SHAPES[1]), "currency": "eur"}
    with pytest.raises(DomainError):
        stripe_invoice_import(tenant=tenant, payload=eur)


def test_stripe_import_endpoint_takes_the_raw_object(tenant):
    client = api_client(tenant, "BILLING_ADMIN")
    response = client.post("/api/v1/billing/invoices/stripe", _load(SHAPES[1]), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["totalUsd"] == 99.0 and len(body["lines"]) == 2
    viewer = api_client(tenant, "VIEWER")
    assert viewer.post("/api/v1/billing/invoices/stripe", _load(SHAPES[1]),
                       format="json").status_code == 403
