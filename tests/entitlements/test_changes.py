"""Changing entitlements and wallets (PATCH through the API) and recurring INTERVAL top-ups,
with data through the real ingestion service on both backends."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from entitlements import services
from entitlements.models import TopUp
from entitlements.services import entitlement_create
from margin_guard.decision import decide
from tests.conftest import api_client
from tests.entitlements.processes import DecidingProcess, threads_at_once
from tests.factories import ingest, prepaid_wallet
from tests.factories import token_events as _tokens

pytestmark = pytest.mark.django_db(transaction=True)
NOW = datetime.now(timezone.utc).replace(microsecond=0)
# three moments in the past: two on one day (in one week), the third the next day
T0 = NOW.replace(hour=1, minute=0, second=0) - timedelta(days=2)
T1, T2 = T0 + timedelta(hours=2), T0 + timedelta(days=1)


# --- recurring INTERVAL top-ups ---------------------------------------------------------------

def _interval(interval, method, credits):
    return [{"trigger": "INTERVAL", "interval": interval, "method": method,
             "credits": credits}]


def test_an_interval_top_up_fires_once_per_interval_fixed_and_target(store, tenant):
    fixed = prepaid_wallet(tenant, "cust_a", credits="20", now=T0 - timedelta(hours=1),
                           recurring_top_ups=_interval("DAILY", "FIXED", "10"))
    target = prepaid_wallet(tenant, "cust_b", credits="20", now=T0 - timedelta(hours=1),
                            recurring_top_ups=_interval("WEEKLY", "TARGET", "50"))
    ingest(tenant, _tokens("a", 1, 5000, customer="cust_a"))  # 15 left
    ingest(tenant, _tokens("b", 1, 5000, customer="cust_b"))  # 15 left
    assert services.intervals_top_up(now=T0) == 2
    assert services.wallet_balance(fixed) == 25    # FIXED: 10 more
    assert services.wallet_balance(target) == 50   # TARGET: up to 50, 35 more
    assert TopUp.objects.get(wallet=target, source="INTERVAL").paid_credits == 35
    assert services.intervals_top_up(now=T1) == 0  # the same day, the same week: nothing
    ingest(tenant, _tokens("c", 1, 10_000, customer="cust_b"))  # 40 left
    # the next day: the daily rule again (the weekly one waits for its next week); eight
    # evaluators at once make it once
    made = threads_at_once(8, lambda: services.intervals_top_up(now=T2))
    assert sum(made) == 1
    assert TopUp.objects.filter(wallet=fixed, source="INTERVAL").count() == 2
    assert TopUp.objects.filter(wallet=target, source="INTERVAL").count() == 1
    assert services.wallet_balance(fixed) == 35
    assert services.wallet_balance(target) == 40
    keys = sorted(TopUp.objects.filter(wallet=fixed, source="INTERVAL")
                  .values_list("idempotency_key", flat=True))
    assert len(set(keys)) == 2 and all(k.startswith("interval:0:") for k in keys)


# --- PATCH ------------------------------------------------------------------------------------

def test_patching_an_entitlement_changes_it_and_every_process_decides_on_it(
        store, tenant, other_tenant):
    client = api_client(tenant)
    e = entitlement_create(tenant=tenant, customer_id="cust_acme", feature="TOKENS",
                           limit=Decimal(10_000), overage="BLOCK")
    ingest(tenant, _tokens("a", 3, 5000))  # 15,000 of 10,000
    url = f"/api/v1/entitlements/{e.pk}"
    other = process = None
    try:
        if store.__class__.__name__ == "ServerStore":  # another process shares the server
            process = DecidingProcess(tenant.slug)
            assert process.decide("cust_acme")[:2] == ("BLOCK", "ENTITLEMENT_EXCEEDED")
        body = client.patch(url, {"limit": 20_000, "warnAtPct": 50}, format="json").json()
        assert (body["limit"], body["warnAtPct"], body["usage"], body["remaining"],
                body["status"]) == (20_000, 50, 15_000, 5_000, "WARNING")
        assert decide(tenant.slug, customer_id="cust_acme").decision == "ALLOW"  # at once here
        if process:  # and in another process within a second
            assert process.decide("cust_acme", after_s=1.0)[0] == "ALLOW"
        body = client.patch(url, {"limit": 12_000, "overage": "THROTTLE",
                                  "downgradeModel": "gpt-4o-mini"}, format="json").json()
        assert (body["overage"], body["downgradeModel"], body["status"]) == (
            "THROTTLE", "gpt-4o-mini", "EXCEEDED")
        verdict = decide(tenant.slug, customer_id="cust_acme", model="gpt-4o")
        assert (verdict.decision, verdict.downgrade_to) == ("THROTTLE", "gpt-4o-mini")
        if process:
            assert process.decide("cust_acme", model="gpt-4o", after_s=1.0) == (
                "THROTTLE", "ENTITLEMENT_EXCEEDED", "gpt-4o-mini")
    finally:
        if process:
            process.close()
    for change, field in (({"limit": -1}, "limit"), ({"feature": "SMILES"}, "feature"),
                          ({"warnAtPct": 150}, "warnAtPct"), ({"gracePct": -5}, "gracePct")):
        bad = client.patch(url, change, format="json")
        assert bad.status_code == 400 and bad.json()["error"]["field"] == field, change
    assert client.get(url).json()["limit"] == 12_000  # a refused change changes nothing
    other = entitlement_create(tenant=other_tenant, customer_id="cust_acme", feature="EVENTS",
                               limit=Decimal(1))
    assert client.patch(f"/api/v1/entitlements/{other.pk}", {"limit": 5},
                        format="json").status_code == 404


def test_patching_a_wallet_changes_its_burn_and_the_decision(store, tenant, other_tenant):
    client = api_client(tenant)
    wallet = prepaid_wallet(tenant, "cust_pre", credits="10")
    url = f"/api/v1/wallets/{wallet.pk}"
    body = client.patch(url, {"name": "Team credits", "lowBalanceCredits": 3,
                              "burnRates": [{"feature": "TOKENS", "creditsPerUnit": 0.002}]},
                        format="json").json()
    assert (body["name"], body["lowBalanceCredits"], body["burnRates"][0]["creditsPerUnit"]) == (
        "Team credits", 3, 0.002)
    ingest(tenant, _tokens("a", 1, 5000, customer="cust_pre"))  # at the new rate: 10 credits
    assert client.get(url).json()["balanceCredits"] == 0
    assert decide(tenant.slug, customer_id="cust_pre").reason_code == "WALLET_EMPTY"
    process = None
    try:
        if store.__class__.__name__ == "ServerStore":
            process = DecidingProcess(tenant.slug)
            assert process.decide("cust_pre")[1] == "WALLET_EMPTY"
        # the wallet moves to another customer: cust_pre has none left, cust_new an empty one
        assert client.patch(url, {"customerId": "cust_new"}, format="json").status_code == 200
        assert decide(tenant.slug, customer_id="cust_pre").decision == "ALLOW"
        assert decide(tenant.slug, customer_id="cust_new").reason_code == "WALLET_EMPTY"
        if process:
            assert process.decide("cust_pre", after_s=1.0)[0] == "ALLOW"
            assert process.decide("cust_new")[1] == "WALLET_EMPTY"
    finally:
        if process:
            process.close()
    for change, field in (({"creditValueUsd": 0}, "creditValueUsd"),
                          ({"priority": 0}, "priority"),
                          ({"burnRates": [{"feature": "SMILES", "creditsPerUnit": 1}]},
                           "burnRates"),
                          ({"recurringTopUps": [{"trigger": "INTERVAL", "interval": "HOURLY",
                                                 "credits": 1}]}, "recurringTopUps")):
        bad = client.patch(url, change, format="json")
        assert bad.status_code == 400 and bad.json()["error"]["field"].startswith(field), (
            change, bad.json())
    assert client.get(url).json()["name"] == "Team credits"
    theirs = prepaid_wallet(other_tenant, "cust_pre", credits="0")
    assert client.patch(f"/api/v1/wallets/{theirs.pk}", {"name": "x"},
                        format="json").status_code == 404
