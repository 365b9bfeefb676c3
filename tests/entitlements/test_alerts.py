"""Entitlements and wallets alert through the alert rules, once per level and period."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from budgets.models import Alert
from budgets.services import alert_rule_create
from entitlements.services import entitlement_create
from notifications.models import Delivery
from tests.factories import ingest, prepaid_wallet
from tests.factories import token_events as _tokens

pytestmark = pytest.mark.django_db(transaction=True)
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def _alerts(tenant, source):
    return list(Alert.objects.filter(tenant=tenant, metric=source).order_by("id"))


def test_an_entitlement_fires_at_warning_and_at_100_once_per_period(store, tenant):
    alert_rule_create(tenant=tenant, name="Quotas", channel="EMAIL",
                      destination="ops@example.com", source="ENTITLEMENT")
    entitlement_create(tenant=tenant, customer_id="cust_acme", feature="TOKENS",
                       period="NONE", limit=Decimal(10_000), warn_at_pct=Decimal(80))
    ingest(tenant, _tokens("a", 1, 5000))
    assert _alerts(tenant, "ENTITLEMENT") == []
    ingest(tenant, _tokens("b", 1, 3700))  # 87%
    warned = _alerts(tenant, "ENTITLEMENT")
    assert len(warned) == 1 and "at its warning level" in warned[0].title
    assert "cust_acme" in warned[0].title and "8700" in warned[0].title
    ingest(tenant, _tokens("c", 1, 100))  # still at warning: nothing new
    assert len(_alerts(tenant, "ENTITLEMENT")) == 1
    ingest(tenant, _tokens("d", 1, 2000))  # 108%
    titles = [a.title for a in _alerts(tenant, "ENTITLEMENT")]
    assert len(titles) == 2 and "at 100% of its limit" in titles[1]
    assert Delivery.objects.filter(alert__tenant=tenant).count() == 2


def test_projected_use_past_120_percent_fires(store, tenant):
    alert_rule_create(tenant=tenant, name="Pacing", channel="EMAIL",
                      destination="ops@example.com", source="ENTITLEMENT")
    entitlement_create(tenant=tenant, customer_id="cust_acme", feature="TOKENS",
                       period="MONTHLY", limit=Decimal(1_000_000), warn_at_pct=Decimal(99))
    # a fast start: what the month has used so far, projected to its end, is past 120%
    from entitlements.usage import entitlement_period

    start, end = entitlement_period("MONTHLY", NOW, tenant.time_zone)
    elapsed = (NOW - start) / (end - start)
    tokens = int(1_000_000 * 1.3 * elapsed) + 1
    if tokens >= 990_000 or NOW - start < timedelta(minutes=10):
        pytest.skip("too near the month's end or start for a pacing example")
    ingest(tenant, _tokens("a", 1, tokens))
    titles = [a.title for a in _alerts(tenant, "ENTITLEMENT")]
    assert any("projected at 120%" in t for t in titles)


def test_a_wallet_fires_under_its_low_mark_and_at_zero(store, tenant):
    alert_rule_create(tenant=tenant, name="Wallets", channel="EMAIL",
                      destination="ops@example.com", source="WALLET")
    prepaid_wallet(tenant, "cust_pre", credits="30", low_balance_credits=Decimal(20))
    ingest(tenant, _tokens("a", 1, 5000, customer="cust_pre"))  # 25 left
    assert _alerts(tenant, "WALLET") == []
    ingest(tenant, _tokens("b", 1, 10_000, customer="cust_pre"))  # 15 left
    low = _alerts(tenant, "WALLET")
    assert len(low) == 1 and "balance is low" in low[0].title
    ingest(tenant, _tokens("c", 1, 1000, customer="cust_pre"))  # 14: still low, no new alert
    assert len(_alerts(tenant, "WALLET")) == 1
    ingest(tenant, _tokens("d", 1, 20_000, customer="cust_pre"))  # -6
    titles = [a.title for a in _alerts(tenant, "WALLET")]
    assert len(titles) == 2 and "no credits left" in titles[1]
