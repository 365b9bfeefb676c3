"""The billing admin pages render, and editing a plan there reloads the rating cache."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from billing.models import PriceComponent, Subscription
from billing.rating import rated_revenue
from billing.services import ComponentSpec
from tests.factories import subscribe
from tests.factories import usage_row as entry


@pytest.fixture
def admin_client(client, db):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-12345678")
    client.force_login(user)
    return client


@pytest.mark.parametrize("model", ["rateplan", "pricecomponent", "subscription", "invoice",
                                   "attributionrun"])
def test_changelists_render(admin_client, model):
    assert admin_client.get(f"/admin/billing/{model}/").status_code == 200


def test_editing_a_component_in_the_admin_reprices_ingest(admin_client, tenant):
    sub = subscribe(tenant, ComponentSpec("PER_EVENT", Decimal("1")))
    assert rated_revenue(tenant=tenant, entries=[entry()]) == [Decimal(1)]
    component = PriceComponent.objects.get(plan=sub.plan)
    response = admin_client.post(f"/admin/billing/pricecomponent/{component.pk}/change/", {
        "plan": sub.plan.pk, "kind": "PER_EVENT", "product_id": "", "unit_price": "2",
        "rating_events_per_period": "",
        "tiers-TOTAL_FORMS": "0", "tiers-INITIAL_FORMS": "0",
        "tiers-MIN_NUM_FORMS": "0", "tiers-MAX_NUM_FORMS": "1000",
    })
    assert response.status_code == 302, response.content[:500]
    assert rated_revenue(tenant=tenant, entries=[entry()]) == [Decimal(2)]


def test_the_admin_refuses_a_second_plan_at_once(admin_client, tenant):
    sub = subscribe(tenant, ComponentSpec("PER_EVENT", Decimal("1")))
    response = admin_client.post("/admin/billing/subscription/add/", {
        "tenant": tenant.pk, "customer": sub.customer.pk, "plan": sub.plan.pk,
        "starts_at_0": "2026-06-01", "starts_at_1": "00:00:00"})
    assert response.status_code == 200
    assert "is already on plan" in response.content.decode()
    assert Subscription.objects.filter(tenant=tenant).count() == 1
