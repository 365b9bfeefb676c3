"""What an event burns across a customer's wallets, through the real ingestion service on both
backends: each wallet prices the part of the event it pays for at its own rates and credit
value, and an event with no matching rate burns its expected revenue as the dashboard counts it
(docs/entitlements.md, "What an event burns")."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from billing.attribution import attribution_run
from entitlements.ledger import event_debits
from entitlements.services import top_up_create, wallet_create
from tests.conftest import api_client
from tests.factories import ingest, invoice_lines

pytestmark = pytest.mark.django_db(transaction=True)
NOW = datetime.now(timezone.utc).replace(microsecond=0)
AT = NOW - timedelta(minutes=5)


def _wallet(tenant, customer, *, name, priority, credit_value, credits, burn_rates=()):
    wallet, _warnings = wallet_create(tenant=tenant, customer_id=customer, name=name,
                                      credit_value_usd=Decimal(credit_value),
                                      priority=priority, burn_rates=list(burn_rates))
    if Decimal(credits):
        top_up_create(wallet=wallet, paid_credits=Decimal(credits),
                      idempotency_key=f"seed-{wallet.pk}")
    return wallet


def _event(event_id, customer, **fields):
    return {"eventId": event_id, "customerId": customer, "productId": "prod_x",
            "occurredAt": AT, "cogsUsd": "0.001", **fields}


def test_an_event_split_across_wallets_pays_each_part_at_that_wallets_rates(store, tenant):
    """Promo: 1 credit per 1,000 tokens, $0.01 a credit, 1 credit left. Main: no burn rate, so
    its expected revenue ($0.01, carried) / $0.003 a credit. A 3,000-token event would cost the
    promo 3 credits: it pays 1 (a third of the event), and main pays for the other two thirds
    at its own price: 0.01 / 0.003 x 2/3 = 2.222222222 credits (half-even at the nano)."""
    promo = _wallet(tenant, "cust_pre", name="Promo", priority=1, credit_value="0.01",
                    credits="1", burn_rates=[{"feature": "TOKENS", "creditsPerUnit": "0.001"}])
    main = _wallet(tenant, "cust_pre", name="Main", priority=2, credit_value="0.003",
                   credits="100")
    ingest(tenant, [_event("split", "cust_pre", inputTokens=2000, outputTokens=1000,
                           revenueUsd="0.01")])
    assert dict(event_debits(tenant.slug, ["split"])["split"]) == {
        promo.ledger_id: 1_000_000_000, main.ledger_id: 2_222_222_222}
    # the promo is empty now: the next event is main's alone, all of it at main's price
    ingest(tenant, [_event("whole", "cust_pre", inputTokens=2000, outputTokens=1000,
                           revenueUsd="0.01")])
    assert dict(event_debits(tenant.slug, ["whole"])["whole"]) == {
        main.ledger_id: 3_333_333_333}
    client = api_client(tenant)
    body = client.get(f"/api/v1/wallets/{main.pk}").json()
    assert Decimal(str(body["balanceCredits"])) == Decimal("94.444444445")
    assert client.get(f"/api/v1/wallets/{promo.pk}").json()["balanceCredits"] == 0
    debits = [r for r in client.get(f"/api/v1/wallets/{main.pk}/transactions").json()[
        "content"] if r["entryType"] == "DEBIT"]
    assert {r["eventId"]: Decimal(str(r["credits"])) for r in debits} == {
        "split": Decimal("-2.222222222"), "whole": Decimal("-3.333333333")}


def test_three_wallets_of_different_rates_share_one_event_exactly(store, tenant):
    """A: 2 credits per 1,000 tokens, 3 left; B: 0.5 per 1,000 tokens, 1 left; C: 7 per 1,000.
    A 5,000-token event: A would take 10 and pays 3 (3/10 of it); B prices the remaining 7/10
    at 2.5 x 0.7 = 1.75 and pays 1 (leaving 0.75/1.75 = 3/7 of 7/10 = 3/10 of the event);
    C pays 35 x 3/10 = 10.5."""
    rate = [{"feature": "TOKENS", "creditsPerUnit": "0.002"}]
    a = _wallet(tenant, "cust_pre", name="A", priority=1, credit_value="0.01", credits="3",
                burn_rates=rate)
    b = _wallet(tenant, "cust_pre", name="B", priority=2, credit_value="0.02", credits="1",
                burn_rates=[{"feature": "TOKENS", "creditsPerUnit": "0.0005"}])
    c = _wallet(tenant, "cust_pre", name="C", priority=3, credit_value="0.001", credits="50",
                burn_rates=[{"feature": "TOKENS", "creditsPerUnit": "0.007"}])
    ingest(tenant, [_event("e", "cust_pre", inputTokens=5000)])
    assert dict(event_debits(tenant.slug, ["e"])["e"]) == {
        a.ledger_id: 3_000_000_000, b.ledger_id: 1_000_000_000, c.ledger_id: 10_500_000_000}


def test_with_no_matching_rate_an_event_burns_the_expected_revenue_the_dashboard_shows(
        store, tenant):
    """An event without provisional revenue is estimated at the rates attribution learnt (here
    $0.001 a token, from an invoice of $8.00 for 8,000 tokens): the Transactions tab shows
    $0.50 expected for 500 tokens, and a wallet at $0.01 a credit with no burn rate burns
    exactly 0.50 / 0.01 = 50 credits for it."""
    oct1 = datetime(2026, 10, 1, tzinfo=timezone.utc)
    ingest(tenant, [_event(f"oct{i}", "cust_est", occurredAt=oct1 + timedelta(days=i),
                           inputTokens=1000, outputTokens=1000) for i in range(4)])
    invoice_lines(tenant, "in_oct", customer="cust_est", start=oct1,
                  end=datetime(2026, 11, 1, tzinfo=timezone.utc),
                  lines=[("li_tokens", "prod_x", "8.00", "TOKENS")])
    attribution_run(tenant=tenant)
    wallet = _wallet(tenant, "cust_est", name="Prepaid", priority=1, credit_value="0.01",
                     credits="100")
    ingest(tenant, [_event("now", "cust_est", inputTokens=300, outputTokens=200)])
    row = api_client(tenant).get("/api/v1/analytics/cogs/dashboard/transactions", {
        "customerId": "cust_est", "from": f"{AT:%Y-%m-%d}", "to": f"{NOW:%Y-%m-%d}"},
    ).json()["content"][0]
    assert (row["eventId"], row["revenueSource"], row["expectedRevenueUsd"]) == (
        "now", "ESTIMATED", 0.5)
    assert row["creditsDebited"] == 50
    assert event_debits(tenant.slug, ["now"])["now"] == [(wallet.ledger_id, 50 * 10**9)]


def test_with_no_rate_learnt_an_unsourced_event_burns_nothing(store, tenant):
    """Unknown revenue (no provisional revenue, no learnt rate) is zero expected revenue: the
    event burns nothing, as the dashboard counts it as unknown."""
    _wallet(tenant, "cust_new", name="Prepaid", priority=1, credit_value="0.01", credits="10")
    ingest(tenant, [_event("unknown", "cust_new", inputTokens=300)])
    assert event_debits(tenant.slug, ["unknown"]) == {}
