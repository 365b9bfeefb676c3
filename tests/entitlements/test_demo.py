"""The demo's credits story: Acme crosses 80% of its monthly quota with the live traffic, and
TechStart's prepaid wallet runs low."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from aforo.demo import (
    PREPAID_CUSTOMER,
    QUOTA_CUSTOMER,
    demo_credits_story,
    demo_traffic_send,
)
from budgets.models import Alert
from entitlements.models import Entitlement, Wallet
from entitlements.queries import entitlements_json, wallets_json

pytestmark = pytest.mark.django_db(transaction=True)


def _state(tenant):
    now = datetime.now(timezone.utc)
    quota = entitlements_json(tenant, [Entitlement.objects.get(
        tenant=tenant, customer_id=QUOTA_CUSTOMER)], now)[0]
    wallet = wallets_json(tenant, [Wallet.objects.get(
        tenant=tenant, customer_id=PREPAID_CUSTOMER)], now)[0]
    return quota, wallet


def test_the_live_traffic_takes_acme_past_80_percent_and_techstart_low(store, tenant):
    demo_credits_story(tenant, now=datetime.now(timezone.utc).replace(microsecond=0))
    quota, wallet = _state(tenant)
    assert (quota["usage"], quota["status"]) == (77_000, "OK")
    assert wallet["balanceCredits"] == 120
    for _tick in range(21):
        demo_traffic_send(tenant, events=1)
    quota, wallet = _state(tenant)
    assert quota["usage"] == 98_000 and quota["status"] == "WARNING"
    assert wallet["balanceCredits"] == 99
    titles = sorted(Alert.objects.filter(tenant=tenant).values_list("title", flat=True))
    assert any("Acme" in t or QUOTA_CUSTOMER in t for t in titles)
    assert any("balance is low" in t for t in titles)
