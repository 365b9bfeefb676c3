"""The impact report against hand-computed figures on a seeded history: decisions counted per
hour and kept in the database, each lever valued by its method (they sum to the total), the ROI
against the tenant's cost of Aforo, and an at-risk account's margin before and after its first
intervention; the API, the console and the daily email carry the same figures."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.test import Client

from aforo.models import Role
from aforo.tenancy import membership_set
from cogs.expected import scope_margin
from ingestion.prices import model_price_create
from margin_guard import counters
from margin_guard.counters import decision_count, decision_counts_flush
from margin_guard.impact import impact_report
from margin_guard.models import GuardDecisionCount, GuardSettings, Level
from margin_guard.services import daily_summary_send, guard_evaluate, guard_policy_create
from tests.conftest import api_client
from tests.console.conftest import console_user
from tests.factories import ingest

D = Decimal


@pytest.mark.django_db
def test_decisions_are_counted_per_hour_and_outlive_the_process(tenant):
    ten = datetime(2026, 3, 1, 10, 15, tzinfo=timezone.utc)
    for minute in (0, 20, 44):
        decision_count(tenant.slug, "c1", "", "batch", "BLOCKED", at=ten + timedelta(
            minutes=minute))
    decision_count(tenant.slug, "c1", "", "batch", "BLOCKED", at=ten + timedelta(hours=1))
    assert decision_counts_flush() == 4
    decision_count(tenant.slug, "c1", "", "batch", "BLOCKED", at=ten)
    counters._pending.clear()  # a restart: what was not flushed is lost, what was stays
    decision_count(tenant.slug, "c1", "", "batch", "BLOCKED", at=ten)
    decision_counts_flush()
    rows = {(r.hour.hour, r.count) for r in GuardDecisionCount.objects.filter(tenant=tenant)}
    assert rows == {(10, 4), (11, 1)}


@pytest.mark.django_db(transaction=True)
def test_the_background_thread_writes_the_counts_within_seconds(tenant, settings):
    import time

    settings.AFORO_GUARD_COUNTS_FLUSH_THREAD = True  # off for the rest of the suite
    decision_count(tenant.slug, "c9", "", "batch", "BLOCKED")
    deadline = time.monotonic() + 5
    while not GuardDecisionCount.objects.filter(tenant=tenant).exists() \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert GuardDecisionCount.objects.get(tenant=tenant).count == 1


def _seed(tenant, T: datetime) -> None:
    for model, price_in, price_out in (("gpt-4o", "2.5", "10"), ("gpt-4o-mini", "0.15", "0.6")):
        model_price_create(tenant=tenant, provider="OpenAI", model=model,
                           effective_from=T - timedelta(days=5),
                           input_per_1m=D(price_in), output_per_1m=D(price_out))
    ingest(tenant, [
        # cust_a: 8% margin before its throttle at T, 30% after
        *[{"eventId": f"a-before-{n}", "occurredAt": T - timedelta(minutes=50),
           "customerId": "cust_a", "productId": "prod_chat", "model": "gpt-4o",
           "cogsUsd": "0.92", "revenueUsd": "1.00"} for n in range(5)],
        *[{"eventId": f"a-after-{n}", "occurredAt": T + timedelta(hours=1),
           "customerId": "cust_a", "productId": "prod_chat", "model": "gpt-4o",
           "cogsUsd": "0.70", "revenueUsd": "1.00"} for n in range(5)],
        # cust_sw: two calls that asked for gpt-4o and ran on mini
        *[{"eventId": f"sw-{n}", "occurredAt": T + timedelta(hours=1), "customerId": "cust_sw",
           "productId": "prod_chat", "provider": "OpenAI", "model": "gpt-4o-mini",
           "requestedModel": "gpt-4o", "inputTokens": 1_000_000, "outputTokens": 100_000}
          for n in range(2)],
        # cust_b: batch calls at $2 each
        *[{"eventId": f"b-{n}", "occurredAt": T + timedelta(hours=1), "customerId": "cust_b",
           "productId": "prod_chat", "toolName": "batch", "cogsUsd": "2.00"} for n in range(2)],
    ])
    policy = guard_policy_create(tenant=tenant, name="Floor", scope="TENANT", mode="ENFORCE",
                                 min_events=1, alert_below_pct="15", throttle_below_pct="10",
                                 block_below_pct="0")
    result = guard_evaluate(tenant=tenant, customer_id="cust_a", product_id="prod_chat", now=T)
    assert result.action.to_level == Level.THROTTLE and policy.pk
    for _ in range(4):
        decision_count(tenant.slug, "cust_a", "prod_chat", "gpt-4o", "RATE_LIMITED",
                       at=T + timedelta(minutes=30))
    for _ in range(3):
        decision_count(tenant.slug, "cust_b", "prod_chat", "batch", "BLOCKED",
                       at=T + timedelta(minutes=90))
    GuardSettings.objects.create(tenant=tenant, product_cost_usd_per_month=D("730"))


def test_impact_figures_by_hand(store, tenant, smtp_sink):
    end = datetime.now(timezone.utc).replace(microsecond=0)
    T = end - timedelta(hours=2)
    _seed(tenant, T)
    report = impact_report(tenant=tenant, start=T - timedelta(hours=1), end=end)
    # model switch: requested 1M x $2.50 + 0.1M x $10 = $3.50 a call, ran at $0.21: 2 calls
    assert (report.throttled_calls, report.throttle_savings_usd) == (2, D("6.58"))
    # rate limit: 4 x cust_a's average gpt-4o call in the window, (5 x 0.92 + 5 x 0.70) / 10
    assert (report.rate_limited_calls, report.rate_limited_estimate_usd) == (4, D("3.24"))
    # block: 3 x cust_b's average batch call, $2
    assert (report.blocked_calls, report.blocked_estimate_usd) == (3, D("6.00"))
    assert report.net_recovered_usd == D("15.82")
    assert sum(lever.recovered_usd for lever in report.lever_rows) == report.net_recovered_usd
    assert report.per_hour(report.net_recovered_usd).quantize(D("0.0001")) == D("5.2733")
    # ROI: $730 a month is $1 an hour; 3 hours cost $3
    assert report.product_cost_usd == D("3") and report.roi_multiple.quantize(
        D("0.01")) == D("5.27")
    (account,) = report.accounts
    assert (account.customer_id, account.first_intervention_at) == ("cust_a", T)
    assert account.before_start == T - timedelta(hours=2) and account.after_end == end
    assert (account.before.margin_pct, account.before.events) == (D("8"), 5)
    assert (account.after.margin_pct, account.after.events) == (D("30"), 5)
    # the grouped read gives exactly what the ledger's one margin function gives
    assert account.before == scope_margin(tenant.slug, start=T - timedelta(hours=2), end=T,
                                          customer_id="cust_a")
    assert account.after == scope_margin(tenant.slug, start=T, end=end, customer_id="cust_a")

    body = api_client(tenant, "VIEWER").get("/api/v1/margin-guard/impact",
                                            {"lastHours": 3}).json()
    assert D(str(body["netRecoveredUsd"])) == D("15.82")
    assert [lever["lever"] for lever in body["levers"]] == ["MODEL_SWITCH", "RATE_LIMIT",
                                                            "BLOCK"]
    assert sum(D(str(lever["recoveredUsd"])) for lever in body["levers"]) == D("15.82")
    assert body["accounts"][0]["before"]["marginPct"] == 8.0
    assert body["accounts"][0]["after"]["marginPct"] == 30.0
    assert api_client(tenant).get("/api/v1/margin-guard/impact",
                                  {"lastHours": "0"}).json()["error"]["field"] == "lastHours"

    owner = console_user(tenant, "cfo", Role.OWNER)
    owner.email = "cfo@example.com"
    owner.save()
    membership_set(tenant=tenant, user=owner, role=Role.OWNER)
    console = Client()
    console.force_login(owner)
    page = console.get("/console/margin-guard/?impact=24h").content.decode()
    assert 'data-lever="RATE_LIMIT"' in page and 'data-recovered="3.24' in page
    assert 'data-account="cust_a"' in page and "8.00%" in page and "30.00%" in page
    assert 'data-figure="fig-before-after"' in page

    assert daily_summary_send(now=end) == 1
    (mail,) = smtp_sink
    text = mail.get_payload()
    assert "Net profit recovered: $15.82" in text
    assert "- Block: $6.00 over 3 call(s) (estimate)" in text
    assert "cust_a: margin 8.0% before intervention, 30.0% since" in text


def test_each_accounts_windows_are_its_own(store, tenant):
    end = datetime.now(timezone.utc).replace(microsecond=0)
    times = {"cust_x": end - timedelta(hours=5), "cust_y": end - timedelta(hours=1)}
    ingest(tenant, [
        {"eventId": f"{c}-{h}", "occurredAt": end - timedelta(hours=h, minutes=30),
         "customerId": c, "productId": "prod_chat", "cogsUsd": str(D("0.1") * (h + 1)),
         "revenueUsd": "1.00"} for c in times for h in range(8)])
    guard_policy_create(tenant=tenant, name="Floor", scope="TENANT", mode="ENFORCE",
                        min_events=1, alert_below_pct="99", throttle_below_pct="98",
                        block_below_pct="-100")
    for customer, at in times.items():
        assert guard_evaluate(tenant=tenant, customer_id=customer, product_id="prod_chat",
                              now=at).action.to_level == Level.THROTTLE
    report = impact_report(tenant=tenant, start=end - timedelta(hours=6), end=end)
    assert [a.customer_id for a in report.accounts] == ["cust_x", "cust_y"]
    for account in report.accounts:
        at = times[account.customer_id]
        assert account.before == scope_margin(tenant.slug, start=at - (end - at), end=at,
                                              customer_id=account.customer_id)
        assert account.after == scope_margin(tenant.slug, start=at, end=end,
                                             customer_id=account.customer_id)
    x, y = report.accounts
    assert (x.before.events, x.after.events, y.before.events, y.after.events) == (3, 5, 1, 1)


def test_a_refused_call_with_none_in_the_window_is_valued_at_the_30_days_before(store, tenant):
    end = datetime.now(timezone.utc).replace(microsecond=0)
    ingest(tenant, [
        # cust_c's batch calls: $3 each three days ago, none in the last hour; 40 days ago
        # (outside the 30 days) one at $100 that must not count
        *[{"eventId": f"c-{n}", "occurredAt": end - timedelta(days=3), "customerId": "cust_c",
           "productId": "prod_chat", "toolName": "batch", "cogsUsd": "3.00"} for n in range(2)],
        {"eventId": "c-old", "occurredAt": end - timedelta(days=40), "customerId": "cust_c",
         "productId": "prod_chat", "toolName": "batch", "cogsUsd": "100.00"},
        # in the window: cust_c's chat calls ($1) do not make a batch average
        {"eventId": "c-now", "occurredAt": end - timedelta(minutes=20), "customerId": "cust_c",
         "productId": "prod_chat", "model": "gpt-4o", "cogsUsd": "1.00"},
    ], now=end)
    for _ in range(5):
        decision_count(tenant.slug, "cust_c", "prod_chat", "batch", "BLOCKED",
                       at=end - timedelta(minutes=10))
    decision_count(tenant.slug, "cust_c", "prod_chat", "gpt-4o", "RATE_LIMITED",
                   at=end - timedelta(minutes=10))
    report = impact_report(tenant=tenant, start=end - timedelta(hours=1), end=end,
                           accounts=False)
    assert (report.blocked_calls, report.blocked_estimate_usd) == (5, D("15.00"))
    assert (report.rate_limited_calls, report.rate_limited_estimate_usd) == (1, D("1.00"))
    # a window holding the 30 days reads both in one: the same figures
    month = impact_report(tenant=tenant, start=end - timedelta(days=31), end=end,
                          accounts=False)
    assert (month.blocked_calls, month.blocked_estimate_usd) == (5, D("15.00"))
    assert (month.rate_limited_calls, month.rate_limited_estimate_usd) == (1, D("1.00"))
