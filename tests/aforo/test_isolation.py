"""Tenant A's token reads and writes nothing of tenant B's, by id or by header."""
from __future__ import annotations

import pytest

from aforo import catalog
from aforo.models import Customer, Product
from tests.conftest import api_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def b_rows(other_tenant):
    catalog.customer_create(tenant=other_tenant, external_id="cust_b", name="B's customer")
    catalog.product_create(tenant=other_tenant, external_id="prod_b", name="B's product")


def test_lists_show_only_the_callers_rows(tenant, b_rows):
    catalog.customer_create(tenant=tenant, external_id="cust_a", name="A's customer")
    body = api_client(tenant).get("/api/v1/customers").json()
    assert [c["customerId"] for c in body["content"]] == ["cust_a"]
    assert body["totalElements"] == 1
    assert api_client(tenant).get("/api/v1/products").json()["content"] == []


def test_another_tenants_object_by_id_is_404(tenant, b_rows):
    client = api_client(tenant)
    for path in ("/api/v1/customers/cust_b", "/api/v1/products/prod_b"):
        response = client.get(path)
        assert response.status_code == 404
        assert "B's" not in response.content.decode()
    assert client.patch("/api/v1/customers/cust_b", {"name": "hijacked"},
                        format="json").status_code == 404
    assert Customer.objects.get(external_id="cust_b").name == "B's customer"


def test_another_tenants_header_writes_nothing(tenant, other_tenant, b_rows):
    client = api_client(tenant, send_tenant=False)
    response = client.post("/api/v1/customers", {"customerId": "cust_x"}, format="json",
                           HTTP_X_TENANT_ID=other_tenant.slug)
    assert response.status_code == 403
    response = client.patch("/api/v1/products/prod_b", {"name": "x"}, format="json",
                            HTTP_X_TENANT_ID=other_tenant.slug)
    assert response.status_code == 403
    assert not Customer.objects.filter(external_id="cust_x").exists()
    assert Product.objects.get(external_id="prod_b").name == "B's product"


def test_same_external_id_lives_separately_per_tenant(tenant, other_tenant, b_rows):
    client = api_client(tenant)
    assert client.post("/api/v1/customers", {"customerId": "cust_b", "name": "mine"},
                       format="json").status_code == 201
    assert client.post("/api/v1/customers", {"customerId": "cust_b"},
                       format="json").status_code == 409
    assert client.get("/api/v1/customers/cust_b").json()["name"] == "mine"
    assert Customer.objects.get(tenant=other_tenant, external_id="cust_b").name == "B's customer"
