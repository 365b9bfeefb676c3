"""End to end: events push a customer's margin through each floor; the decision follows within
a second, notifications fire, levels lift on recovery, and the audit trail tells it all."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import connection

from aforo.catalog import customer_create
from billing.services import ComponentSpec, rate_plan_create, subscription_create
from ingestion.services import events_ingest_dicts
from margin_guard import decision
from margin_guard.models import GuardAction, GuardPolicy
from margin_guard.services import guard_evaluate
from notifications.services import destinations_set
from tests.conftest import api_client

pytestmark = pytest.mark.django_db(transaction=True)
NOW = datetime.now(timezone.utc).replace(microsecond=0)
_seq = iter(range(10**6))


@pytest.fixture
def priced_customer(tenant):
    """cust_g pays $1.00 per event, so an event costing $c leaves a margin of 1 - c."""
    customer = customer_create(tenant=tenant, external_id="cust_g", name="Guarded Co")
    plan = rate_plan_create(tenant=tenant, code="per-call", components=[
        ComponentSpec(kind="PER_EVENT", unit_price=Decimal("1.00"))])
    subscription_create(tenant=tenant, customer=customer, plan=plan,
                        starts_at=NOW - timedelta(days=30))
    return customer


def send(tenant, cost: str, n: int):
    events = [{"eventId": f"g{next(_seq)}", "occurredAt": NOW.isoformat(),
               "customerId": "cust_g", "productId": "prod_chat", "model": "gpt-4o",
               "cogsUsd": cost} for _ in range(n)]
    report = events_ingest_dicts(tenant=tenant, events=events,
                                 now=datetime.now(timezone.utc))
    assert report.count("accepted") == n


def decide_until(tenant, expected: str, *, feature="", model="gpt-4o", within=1.0):
    """Poll the decision until it says `expected`; the guard promises a second."""
    deadline = time.monotonic() + within
    while True:
        verdict = decision.decide(tenant.slug, customer_id="cust_g", product_id="prod_chat",
                                  model=model, feature=feature)
        if verdict.decision == expected or time.monotonic() > deadline:
            return verdict
        time.sleep(0.02)


def policy(tenant, http_sink, **extra):
    values = dict(tenant=tenant, name="Floor", scope="TENANT", mode="ENFORCE", min_events=5,
                  downgrade_map={"gpt-4o": "gpt-4o-mini"}, premium_features=["batch"],
                  notify_channel="SLACK", notify_destination=http_sink.url)
    values.update(extra)
    return GuardPolicy.objects.create(**values)


def test_the_ladder_in_the_request_path(store, tenant, priced_customer, http_sink):
    policy(tenant, http_sink)
    send(tenant, "0.70", 10)  # margin 30%
    assert decide_until(tenant, "ALLOW").level == 0
    send(tenant, "1.00", 10)  # cost 17 / revenue 20: margin 15% -> ALERT
    time.sleep(0.3)
    assert decide_until(tenant, "ALLOW").level == 1
    send(tenant, "1.30", 10)  # cost 30 / revenue 30: margin 0% -> THROTTLE
    throttled = decide_until(tenant, "THROTTLE")
    assert (throttled.decision, throttled.downgrade_to) == ("THROTTLE", "gpt-4o-mini")
    send(tenant, "2.00", 10)  # cost 50 / revenue 40: margin -25% -> BLOCK
    blocked = decide_until(tenant, "BLOCK", feature="batch")
    assert blocked.decision == "BLOCK"
    # core access continues: a call without a premium feature is throttled, not blocked
    assert decision.decide(tenant.slug, customer_id="cust_g", product_id="prod_chat",
                           model="gpt-4o").decision == "THROTTLE"
    # over HTTP: the downgrade header and body
    response = api_client(tenant, "DEVELOPER").post(
        "/api/v1/margin-guard/decide", {"customerId": "cust_g", "productId": "prod_chat",
                                        "model": "gpt-4o"}, format="json")
    assert response.status_code == 200
    assert response["X-Aforo-Model-Downgrade"] == "gpt-4o-mini"
    assert response.json()["decision"] == "THROTTLE"

    # recovery: cheap traffic lifts the levels once margin clears each floor + 5 points
    send(tenant, "0.01", 60)  # cost 50.6 / revenue 100: margin 49.4%
    assert decide_until(tenant, "ALLOW", feature="batch").level == 0

    actions = list(GuardAction.objects.filter(tenant=tenant).order_by("id"))
    assert [(a.from_level, a.to_level) for a in actions] == [(0, 1), (1, 2), (2, 3), (3, 0)]
    assert all(a.actor == "system" and a.mode == "ENFORCE" for a in actions)
    assert actions[2].margin_pct == Decimal("-25") and actions[2].events_evaluated == 40
    listed = api_client(tenant).get("/api/v1/margin-guard/actions").json()
    assert [a["toLevel"] for a in listed["content"]] == ["NONE", "BLOCK", "THROTTLE", "ALERT"]
    deadline = time.monotonic() + 2
    while len(http_sink.requests) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    texts = [str(r["json"]["blocks"]) for r in http_sink.requests]
    assert len(texts) == 4 and "cust_g" in texts[2] and "BLOCK" in texts[2]


def test_dry_run_records_but_allows(store, tenant, priced_customer, http_sink):
    policy(tenant, http_sink, mode="DRY_RUN")
    send(tenant, "1.50", 10)
    time.sleep(0.5)
    verdict = decide_until(tenant, "never", within=0.5)
    assert (verdict.decision, verdict.would) == ("ALLOW", "THROTTLE")
    (action,) = GuardAction.objects.filter(tenant=tenant)
    assert (action.to_level, action.mode) == (3, "DRY_RUN")


def test_throttle_rate_limit_answers_429(store, tenant, priced_customer, http_sink):
    policy(tenant, http_sink, throttle_rate_per_minute=2)
    send(tenant, "0.95", 10)  # margin 5% -> THROTTLE
    decide_until(tenant, "THROTTLE")
    client = api_client(tenant, "DEVELOPER")
    body = {"customerId": "cust_g", "productId": "prod_chat", "model": "gpt-4o"}
    statuses = [client.post("/api/v1/margin-guard/decide", body, format="json")
                for _ in range(3)]
    assert statuses[-1].status_code == 429
    assert 0 < int(statuses[-1]["Retry-After"]) <= 60


def test_concurrent_evaluators_change_the_level_once(store, tenant, priced_customer,
                                                     http_sink):
    policy(tenant, http_sink, mode="DRY_RUN", notify_channel="")
    GuardPolicy.objects.filter(tenant=tenant).update(mode="OFF")
    send(tenant, "2.00", 10)  # evaluated by nobody: the policy is OFF
    GuardPolicy.objects.filter(tenant=tenant).update(mode="ENFORCE")
    barrier = threading.Barrier(4)

    def evaluate():
        barrier.wait()
        try:
            guard_evaluate(tenant=tenant, customer_id="cust_g", product_id="prod_chat",
                           now=datetime.now(timezone.utc))
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert GuardAction.objects.filter(tenant=tenant).count() == 1


def test_admin_override_allows_until_a_time_and_is_audited(store, tenant, priced_customer,
                                                           http_sink):
    policy(tenant, http_sink)
    send(tenant, "2.00", 10)
    decide_until(tenant, "BLOCK", feature="batch")
    until = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    body = {"customerId": "cust_g", "until": until}
    assert api_client(tenant, "BILLING_ADMIN").post("/api/v1/margin-guard/overrides", body,
                                                    format="json").status_code == 403
    response = api_client(tenant, "ADMIN").post("/api/v1/margin-guard/overrides", body,
                                                format="json")
    assert response.status_code == 200, response.json()
    verdict = decision.decide(tenant.slug, customer_id="cust_g", product_id="prod_chat",
                              model="gpt-4o", feature="batch")
    assert verdict.decision == "ALLOW" and "overridden" in verdict.reason
    latest = GuardAction.objects.filter(tenant=tenant).first()
    assert latest.reason.startswith("override") and latest.actor.startswith("token:")


def test_policy_validation_and_most_specific_wins(store, tenant, priced_customer, http_sink):
    client = api_client(tenant, "OWNER")
    bad = client.post("/api/v1/margin-guard/policies", {
        "name": "x", "scope": "CUSTOMER", "mode": "ENFORCE"}, format="json")
    assert bad.status_code == 400
    bad = client.post("/api/v1/margin-guard/policies", {
        "name": "x", "scope": "TENANT", "alertBelowPct": 5, "throttleBelowPct": 10},
        format="json")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "throttleBelowPct"
    assert api_client(tenant, "BILLING_ADMIN").post(
        "/api/v1/margin-guard/policies", {"name": "x", "scope": "TENANT"},
        format="json").status_code == 403
    assert client.post("/api/v1/margin-guard/policies", {
        "name": "tenant", "scope": "TENANT", "mode": "OFF"}, format="json").status_code == 201
    assert client.post("/api/v1/margin-guard/policies", {
        "name": "tier", "scope": "TIER", "tier": "FREE", "mode": "ENFORCE",
        "alertBelowPct": 50, "throttleBelowPct": 40, "blockBelowPct": 30,
        "minEvents": 1, "downgradeMap": {"gpt-4o": "gpt-4o-mini"}},
        format="json").status_code == 201
    from margin_guard.services import policy_for

    assert policy_for(tenant, "cust_g", "prod_chat").name == "tier"  # cust_g is FREE
    send(tenant, "0.65", 5)  # margin 35%: below the FREE tier's 40% throttle floor
    assert decide_until(tenant, "THROTTLE").decision == "THROTTLE"



def test_notifications_are_signed_retried_and_logged(store, tenant, priced_customer,
                                                     http_sink, settings):
    from aforo.outbound import signature
    from notifications.models import Delivery
    from notifications.services import deliveries_send_due

    settings.AFORO_PAGERDUTY_URL = http_sink.url + "/pagerduty"
    http_sink.fail_first = 1
    hook = policy(tenant, http_sink, notify_channel="WEBHOOK",
                  notify_destination=http_sink.url + "/signed")
    send(tenant, "2.00", 10)
    decide_until(tenant, "BLOCK", feature="batch")
    deadline = time.monotonic() + 2
    while not Delivery.objects.filter(guard_action__tenant=tenant, attempts__gte=1).exists() \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    delivery = Delivery.objects.get(guard_action__tenant=tenant)
    assert (delivery.state, delivery.attempts) == ("PENDING", 1)  # the sink failed once
    deliveries_send_due(now=datetime.now(timezone.utc) + timedelta(minutes=1))
    delivery.refresh_from_db()
    assert (delivery.state, [a.ok for a in delivery.log.all()]) == ("DELIVERED", [False, True])
    signed = http_sink.accepted[0]
    t, v1 = (part.split("=", 1)[1] for part in signed["headers"]["X-Aforo-Signature"].split(","))
    assert signature(hook.signing_secret, int(t), signed["body"]) == f"t={t},v1={v1}"
    assert signed["json"]["toLevel"] == "BLOCK"
    assert signed["json"]["estimatedSavingsUsdPerHour"] == 0.42  # (20 - 10) / 24 h

    # PagerDuty: an Events API v2 trigger with the routing key
    for found in GuardPolicy.objects.filter(tenant=tenant):
        destinations_set(found, [("PAGERDUTY", "R0UT1NGKEY0123456")])
    send(tenant, "0.01", 200)  # recovery -> a NONE action, notified to PagerDuty
    deadline = time.monotonic() + 2
    while not any(r["path"] == "/hook/pagerduty" for r in http_sink.requests) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    page = next(r for r in http_sink.requests if r["path"] == "/hook/pagerduty")
    assert page["json"]["routing_key"] == "R0UT1NGKEY0123456"
    assert page["json"]["event_action"] == "trigger"
    assert page["json"]["payload"]["custom_details"]["customerId"] == "cust_g"


def test_impact_report_prices_throttled_calls_and_estimates_blocked_ones(
        store, tenant, priced_customer, http_sink):
    from ingestion.prices import model_price_create

    for model, price_in, price_out in (("gpt-4o", "2.5", "10"), ("gpt-4o-mini", "0.15", "0.6")):
        model_price_create(tenant=tenant, provider="OpenAI", model=model,
                           effective_from=NOW - timedelta(days=5), input_per_1m=Decimal(price_in),
                           output_per_1m=Decimal(price_out))
    policy(tenant, http_sink, notify_channel="")
    # two downgraded calls, priced from the rate card: they asked for gpt-4o, ran on mini
    events_ingest_dicts(tenant=tenant, now=datetime.now(timezone.utc), events=[
        {"eventId": f"d{i}", "occurredAt": NOW.isoformat(), "customerId": "cust_g",
         "productId": "prod_chat", "provider": "OpenAI", "model": "gpt-4o-mini",
         "requestedModel": "gpt-4o", "inputTokens": 1_000_000, "outputTokens": 100_000}
        for i in range(2)])
    # the same customer's batch calls cost $2 each, and push margin below zero
    events_ingest_dicts(tenant=tenant, now=datetime.now(timezone.utc), events=[
        {"eventId": f"b{i}", "occurredAt": NOW.isoformat(), "customerId": "cust_g",
         "productId": "prod_chat", "toolName": "batch", "cogsUsd": "2"} for i in range(8)])
    decide_until(tenant, "BLOCK", feature="batch")
    for _ in range(2):
        decision.decide(tenant.slug, customer_id="cust_g", product_id="prod_chat",
                        feature="batch")
    body = api_client(tenant).get("/api/v1/margin-guard/impact").json()
    # requested: 1M x 2.5 + 0.1M x 10 = $3.50 per call; actual 1M x 0.15 + 0.1M x 0.6 = $0.21
    assert body["throttled"]["calls"] == 2
    assert Decimal(str(body["throttled"]["savingsUsd"])) == Decimal("6.58")
    # three blocked decisions x $2 average batch call = $6 (an estimate)
    assert body["blocked"]["calls"] == 3 and body["blocked"]["estimate"] is True
    assert Decimal(str(body["blocked"]["estimatedSavingsUsd"])) == Decimal("6")
    assert Decimal(str(body["netRecoveredUsd"])) == Decimal("12.58")


def test_daily_summary_lists_the_accounts_that_hit_a_floor(store, tenant, priced_customer,
                                                           http_sink, smtp_sink):
    from django.contrib.auth import get_user_model

    from aforo.tenancy import membership_set
    from margin_guard.services import daily_summary_send

    owner = get_user_model().objects.create_user("owner", email="owner@example.com")
    membership_set(tenant=tenant, user=owner, role="OWNER")
    policy(tenant, http_sink, notify_channel="")
    send(tenant, "2.00", 10)
    decide_until(tenant, "BLOCK", feature="batch")
    assert daily_summary_send(now=datetime.now(timezone.utc) + timedelta(minutes=1)) == 1
    (mail,) = smtp_sink
    assert mail["To"] == "owner@example.com"
    assert "1 account(s)" in mail["Subject"]
    assert "cust_g" in mail.get_payload() and "BLOCK" in mail.get_payload()
