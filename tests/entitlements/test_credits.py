"""Entitlements and prepaid credits through the real ingestion service, on both backends."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aforo import eventstore
from aforo.eventstore import ServerStore
from aforo.eventstore.migrate import migrate_eventstore
from aforo.money import from_nanos
from entitlements import services
from entitlements.ledger import wallet_sums
from entitlements.models import TopUp
from entitlements.services import entitlement_create, top_up_create
from margin_guard.decision import decide
from tests.conftest import api_client
from tests.entitlements.processes import threads_at_once
from tests.factories import ingest, prepaid_wallet, token_events, usage_events

NOW = datetime.now(timezone.utc).replace(microsecond=0)


_tokens = token_events


def _balance(tenant, wallet) -> Decimal:
    return services.wallet_balance(wallet)


@pytest.mark.django_db(transaction=True)
def test_token_quota_blocks_on_the_next_decision_after_the_crossing_batch(store, tenant):
    entitlement_create(tenant=tenant, customer_id="cust_acme", feature="TOKENS",
                       limit=Decimal(10_000), overage="BLOCK")
    ingest(tenant, _tokens("a", 9, 1000))  # 9,000 of 10,000
    allowed = decide(tenant.slug, customer_id="cust_acme", model="gpt-4o")
    assert allowed.decision == "ALLOW" and allowed.reason_code is None
    assert allowed.remaining[0]["remaining"] == 1000
    assert allowed.remaining[0]["usage"] == 9000
    ingest(tenant, _tokens("b", 1, 1500))  # crosses: 10,500
    blocked = decide(tenant.slug, customer_id="cust_acme", model="gpt-4o")
    assert blocked.decision == "BLOCK"
    assert blocked.reason_code == "ENTITLEMENT_EXCEEDED"
    assert blocked.remaining[0]["remaining"] == 0
    # another customer is untouched
    assert decide(tenant.slug, customer_id="cust_other").decision == "ALLOW"


@pytest.mark.django_db(transaction=True)
def test_throttle_returns_the_downgrade_model_and_grace_delays_it(store, tenant):
    entitlement_create(tenant=tenant, customer_id="cust_acme", feature="TOKENS",
                       limit=Decimal(1000), overage="THROTTLE", grace_pct=Decimal(50),
                       downgrade_model="gpt-4o-mini")
    ingest(tenant, _tokens("a", 1, 1200))  # past the limit, inside the 50% grace
    assert decide(tenant.slug, customer_id="cust_acme", model="gpt-4o").decision == "ALLOW"
    ingest(tenant, _tokens("b", 1, 400))  # 1,600: past the grace
    verdict = decide(tenant.slug, customer_id="cust_acme", model="gpt-4o")
    assert (verdict.decision, verdict.downgrade_to, verdict.model) == (
        "THROTTLE", "gpt-4o-mini", "gpt-4o-mini")
    assert verdict.reason_code == "ENTITLEMENT_EXCEEDED"


@pytest.mark.django_db(transaction=True)
def test_allow_overage_counts_the_overage(store, tenant):
    e = entitlement_create(tenant=tenant, customer_id="cust_acme", feature="EVENTS",
                           limit=Decimal(3), overage="ALLOW")
    ingest(tenant, _tokens("a", 5, 10))
    assert decide(tenant.slug, customer_id="cust_acme").decision == "ALLOW"
    body = api_client(tenant).get(f"/api/v1/entitlements/{e.pk}").json()
    assert (body["usage"], body["overageUsage"], body["status"]) == (5, 2, "EXCEEDED")
    # projected to the period's end at the ledger's quantum, not 28 digits of a division
    raw = api_client(tenant).get(f"/api/v1/entitlements/{e.pk}").content.decode()
    projected = raw.split('"projectedUsage":', 1)[1].split(",", 1)[0]
    assert len(projected.partition(".")[2]) <= 9 and Decimal(projected) >= 5


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(batches=st.lists(st.lists(st.integers(0, 40_000), min_size=1, max_size=6),
                        min_size=1, max_size=4))
def test_a_wallet_is_at_exactly_100_minus_tokens_per_1000_after_any_batch(
        batches, event_stores, django_db_blocker):
    from aforo.tenancy import tenant_create

    eventstore.set_default(event_stores.get("server") or event_stores["chdb"])
    with django_db_blocker.unblock():
        import uuid
        tenant = tenant_create(slug=f"h-{uuid.uuid4().hex[:12]}", name="h")
        wallet = prepaid_wallet(tenant, "cust_pre")
        used = 0
        for b, batch in enumerate(batches):
            ingest(tenant, [{"eventId": f"e{b}-{i}", "customerId": "cust_pre",
                             "productId": "p1", "occurredAt": NOW - timedelta(minutes=1),
                             "inputTokens": t, "outputTokens": 0, "cogsUsd": "0.001"}
                            for i, t in enumerate(batch)])
            used += sum(batch)
            expected = Decimal(100) - Decimal(used) / 1000
            assert _balance(tenant, wallet) == expected
            sums = wallet_sums(tenant.slug, [wallet.ledger_id])[wallet.ledger_id]
            assert from_nanos(sums.net) == expected  # the sum of its entries, exactly
    eventstore.set_default(None)


@pytest.mark.django_db(transaction=True)
def test_debits_split_in_priority_order_and_every_debit_names_its_event(store, tenant):
    first = prepaid_wallet(tenant, "cust_pre", credits="5", priority=1, name="Promo")
    second = prepaid_wallet(tenant, "cust_pre", credits="100", priority=2)
    ingest(tenant, [{"eventId": "big", "customerId": "cust_pre", "productId": "p1",
                     "occurredAt": NOW, "inputTokens": 8000, "cogsUsd": "0.01"}])
    assert _balance(tenant, first) == 0
    assert _balance(tenant, second) == 97
    client = api_client(tenant)
    rows = client.get(f"/api/v1/wallets/{second.pk}/transactions").json()["content"]
    debit = next(r for r in rows if r["entryType"] == "DEBIT")
    assert debit["eventId"] == "big" and debit["credits"] == -3
    assert "customerId=cust_pre" in debit["eventUrl"]
    # the Transactions row of the event shows what it burnt, across both wallets
    row = client.get("/api/v1/analytics/cogs/dashboard/transactions",
                     {"customerId": "cust_pre"}).json()["content"][0]
    assert (row["eventId"], row["creditsDebited"]) == ("big", 8)


@pytest.mark.django_db(transaction=True)
def test_a_wallet_run_dry_blocks_with_wallet_empty(store, tenant):
    prepaid_wallet(tenant, "cust_pre", credits="2")
    assert decide(tenant.slug, customer_id="cust_pre").decision == "ALLOW"
    ingest(tenant, _tokens("a", 1, 2500, customer="cust_pre"))
    verdict = decide(tenant.slug, customer_id="cust_pre")
    assert (verdict.decision, verdict.reason_code) == ("BLOCK", "WALLET_EMPTY")


@pytest.mark.django_db(transaction=True)
def test_an_expired_grant_stops_counting_at_its_second(store, tenant):
    t0 = NOW - timedelta(hours=1)
    wallet = prepaid_wallet(tenant, "cust_pre", credits="100", now=t0)
    top_up_create(wallet=wallet, granted_credits=Decimal(50), expires_at=t0 + timedelta(
        seconds=60), idempotency_key="promo", now=t0)
    # 20 credits burnt at t0+10s come out of the expiring grant first
    ingest(tenant, usage_events("a", customer="cust_pre", at=t0, count=1, inputTokens=20_000,
                                cogsUsd="0.001"), now=t0 + timedelta(seconds=10))
    end = t0 + timedelta(seconds=60)
    assert services.wallet_balance(wallet, now=end - timedelta(seconds=1)) == 130
    assert services.wallet_balance(wallet, now=end) == 100
    assert services.expiries_write(now=NOW, tenant=tenant) == 1
    assert services.expiries_write(now=NOW, tenant=tenant) == 0
    sums = wallet_sums(tenant.slug, [wallet.ledger_id])[wallet.ledger_id]
    assert from_nanos(sums.expiry) == -30 and from_nanos(sums.net) == 100
    assert _balance(tenant, wallet) == 100


@pytest.mark.django_db(transaction=True)
def test_a_resent_event_never_burns_twice(store, tenant):
    wallet = prepaid_wallet(tenant, "cust_pre")
    events = _tokens("a", 5, 2000, customer="cust_pre")
    ingest(tenant, events)
    ingest(tenant, events)
    ingest(tenant, events[:2] + _tokens("b", 1, 1000, customer="cust_pre"))
    assert _balance(tenant, wallet) == 89
    rows = api_client(tenant).get(f"/api/v1/wallets/{wallet.pk}/transactions").json()
    assert sum(1 for r in rows["content"] if r["entryType"] == "DEBIT") == 6


@pytest.mark.django_db(transaction=True)
def test_a_top_up_with_the_same_idempotency_key_counts_once(store, tenant):
    wallet = prepaid_wallet(tenant, "cust_pre", credits="0")
    client = api_client(tenant)
    url = f"/api/v1/wallets/{wallet.pk}/transactions"
    first = client.post(url, {"paidCredits": 40, "grantedCredits": 10,
                              "idempotencyKey": "k1"}, format="json")
    again = client.post(url, {"paidCredits": 40, "grantedCredits": 10,
                              "idempotencyKey": "k1"}, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["created"] is False
    body = client.get(f"/api/v1/wallets/{wallet.pk}").json()
    assert (body["balanceCredits"], body["paidCredits"], body["grantedCredits"]) == (50, 40, 10)


@pytest.mark.django_db(transaction=True)
def test_a_threshold_top_up_fires_once_however_many_evaluators_race(store, tenant):
    wallet = prepaid_wallet(tenant, "cust_pre", credits="20", recurring_top_ups=[
        {"trigger": "THRESHOLD", "thresholdCredits": "10", "method": "TARGET",
         "credits": "100"}])
    ingest(tenant, _tokens("a", 1, 15_000, customer="cust_pre"))  # 5 left: under 10
    # the ingest's own evaluation topped it up to 100 once
    assert TopUp.objects.filter(wallet=wallet, source="THRESHOLD").count() == 1
    assert _balance(tenant, wallet) == 100
    ingest(tenant, _tokens("b", 1, 95_000, customer="cust_pre"))  # 5 left again
    from entitlements.config import credit_config, credit_config_changed
    from entitlements.state import customer_states

    second = TopUp.objects.filter(wallet=wallet, source="THRESHOLD").order_by("id").last()
    second.delete()  # as if the ingest's own evaluation had not run: eight evaluators race
    credit_config_changed(tenant)
    config = credit_config(tenant)
    states = customer_states(tenant, config, {"cust_pre"}, datetime.now(timezone.utc))
    assert states["cust_pre"]["w"][wallet.ledger_id] == 5 * 10**9
    made = threads_at_once(8, lambda: services.thresholds_top_up(
        tenant=tenant, config=config, states=states, now=datetime.now(timezone.utc)))
    assert sum(made) == 1
    assert TopUp.objects.filter(wallet=wallet, source="THRESHOLD").count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_failed_and_retried_batch_burns_exactly_once(tenant, private_clickhouse):
    store = ServerStore(private_clickhouse.url)
    migrate_eventstore(store)
    eventstore.set_default(store)
    try:
        wallet = prepaid_wallet(tenant, "cust_pre")
        client = api_client(tenant, "DEVELOPER")
        batch = {"events": _tokens("a", 10, 1000, customer="cust_pre")}
        private_clickhouse.stop()
        assert client.post("/api/v1/events", batch, format="json").status_code == 503
        private_clickhouse.start()
        assert client.post("/api/v1/events", batch, format="json").json()["accepted"] == 10
        assert client.post("/api/v1/events", batch, format="json").json()["accepted"] == 0
        assert _balance(tenant, wallet) == 90
    finally:
        eventstore.set_default(None)
        store.close()


@pytest.mark.django_db(transaction=True)
def test_two_processes_burning_the_last_credits_overdraw_a_wallet_by_at_most_one_batch(
        event_stores, tenant):
    """Two OS processes (spawned, sharing only PostgreSQL, Redis and the ClickHouse server: the
    embedded engine is one process's) burn a 10-credit first wallet, 8 credits a batch, five
    batches each. The first wallet may go below zero only by what the other process had in
    flight when a batch was split: one batch, 8 credits (docs/entitlements.md, "The race
    bound"); every event still burns exactly what it used, the rest from the second wallet."""
    from tests.entitlements.processes import ingest_from_processes

    if "server" not in event_stores:
        pytest.skip("two processes share the ClickHouse server only; `make test` starts one")
    eventstore.set_default(event_stores["server"])
    try:
        first = prepaid_wallet(tenant, "cust_pre", credits="10", priority=1, name="Promo")
        second = prepaid_wallet(tenant, "cust_pre", credits="1000", priority=2)
        at = NOW - timedelta(minutes=5)
        per_process = [[_tokens(f"{p}{b}", 4, 2000, customer="cust_pre", at=at)
                        for b in range(5)] for p in ("x", "y")]
        results = ingest_from_processes(tenant.slug, per_process)
        assert results == [("ok", 5), ("ok", 5)]
        sums = wallet_sums(tenant.slug, [first.ledger_id, second.ledger_id])
        debited = -(sums[first.ledger_id].debit + sums[second.ledger_id].debit)
        assert debited == 80 * 10**9  # 40 events of 2,000 tokens: every one burnt, exactly
        assert _balance(tenant, first) + _balance(tenant, second) == 1010 - 80
        assert _balance(tenant, first) >= -8  # past zero by at most one batch
        assert sums[first.ledger_id].debit < 0 and sums[second.ledger_id].debit < 0
        # each DEBIT entry names its event: 40 events, each in one or two wallets
        rows = eventstore.tenant_query(
            tenant.slug, "SELECT uniqExact(event_id) AS n FROM credit_ledger "
            "WHERE tenant_id = %(tenant_id)s AND entry_type = 'DEBIT'")
        assert int(rows[0]["n"]) == 40
    finally:
        eventstore.set_default(None)


@pytest.mark.django_db(transaction=True)
def test_two_processes_emptying_the_last_wallet_block_the_next_decision(event_stores, tenant):
    """The customer's last wallet takes every burn (the usage happened): two processes leave it
    at exactly 10 - 16, and the next decision after their batches commit is WALLET_EMPTY."""
    from tests.entitlements.processes import ingest_from_processes

    if "server" not in event_stores:
        pytest.skip("two processes share the ClickHouse server only; `make test` starts one")
    eventstore.set_default(event_stores["server"])
    try:
        wallet = prepaid_wallet(tenant, "cust_pre", credits="10")
        assert decide(tenant.slug, customer_id="cust_pre").decision == "ALLOW"
        results = ingest_from_processes(tenant.slug, [
            [_tokens(p, 4, 2000, customer="cust_pre")] for p in ("x", "y")])
        assert results == [("ok", 1), ("ok", 1)]
        assert _balance(tenant, wallet) == 10 - 16
        import time

        from margin_guard.decision import LOCAL_TTL

        time.sleep(LOCAL_TTL + 0.1)  # past this mirror's TTL: the children published to Redis
        assert decide(tenant.slug, customer_id="cust_pre").reason_code == "WALLET_EMPTY"
    finally:
        eventstore.set_default(None)


# --- the API: bad input, other tenants --------------------------------------------------------

def test_bad_entitlements_get_a_400_naming_the_field(store, tenant):
    client = api_client(tenant)
    negative = client.post("/api/v1/entitlements", {"customerId": "c", "feature": "TOKENS",
                                                    "limit": -1}, format="json")
    assert negative.status_code == 400 and negative.json()["error"]["field"] == "limit"
    unknown = client.post("/api/v1/entitlements", {"customerId": "c", "feature": "SMILES",
                                                   "limit": 1}, format="json")
    assert unknown.status_code == 400 and unknown.json()["error"]["field"] == "feature"


def test_a_burn_rate_for_an_unpriced_model_is_accepted_but_flagged(store, tenant):
    client = api_client(tenant)
    response = client.post("/api/v1/wallets", {
        "customerId": "c", "name": "W", "creditValueUsd": 0.01,
        "burnRates": [{"feature": "TOKENS", "model": "no-such-model", "creditsPerUnit": 1}]},
        format="json")
    assert response.status_code == 201
    assert response.json()["warnings"][0]["field"] == "burnRates.0.model"
    bad = client.post("/api/v1/wallets", {
        "customerId": "c", "name": "W", "creditValueUsd": 0.01,
        "burnRates": [{"feature": "SMILES", "creditsPerUnit": 1}]}, format="json")
    assert bad.status_code == 400 and "burnRates" in bad.json()["error"]["field"]


def test_another_tenants_wallet_and_entitlement_are_404(store, tenant, other_tenant):
    wallet = prepaid_wallet(other_tenant, "c", credits="0")
    e = entitlement_create(tenant=other_tenant, customer_id="c", feature="EVENTS",
                           limit=Decimal(1))
    client = api_client(tenant)
    assert client.get(f"/api/v1/wallets/{wallet.pk}").status_code == 404
    assert client.get(f"/api/v1/wallets/{wallet.pk}/transactions").status_code == 404
    assert client.post(f"/api/v1/wallets/{wallet.pk}/transactions",
                       {"paidCredits": 1, "idempotencyKey": "x"},
                       format="json").status_code == 404
    assert client.get(f"/api/v1/entitlements/{e.pk}").status_code == 404
    assert client.get("/api/v1/wallets").json()["totalElements"] == 0
