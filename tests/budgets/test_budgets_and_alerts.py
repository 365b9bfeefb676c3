"""Budgets burn down, rules fire once per scope, deliveries land (retried) in local sinks."""
from __future__ import annotations

import hashlib
import hmac
import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import connection

from aforo.periods import period_bounds
from budgets import services
from budgets.models import Alert
from ingestion.services import events_ingest_dicts
from notifications.models import Delivery
from notifications.services import deliveries_send_due
from tests.conftest import api_client

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def spend(tenant, usd: str, n: int = 1, *, customer="cust_a", product="prod_a", prefix="e"):
    events = [{"eventId": f"{prefix}{i}-{usd}", "occurredAt": (NOW - timedelta(minutes=5))
               .isoformat(), "customerId": customer, "productId": product, "cogsUsd": usd}
              for i in range(n)]
    events_ingest_dicts(tenant=tenant, events=events, now=NOW)


# --- periods -------------------------------------------------------------------------------

def test_periods_are_calendar_aligned_in_the_tenant_time_zone():
    at = datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc)
    assert period_bounds("MONTHLY", at) == (datetime(2026, 11, 1, tzinfo=timezone.utc),
                                            datetime(2026, 12, 1, tzinfo=timezone.utc))
    assert period_bounds("QUARTERLY", at)[0] == datetime(2026, 10, 1, tzinfo=timezone.utc)
    assert period_bounds("ANNUAL", at) == (datetime(2026, 1, 1, tzinfo=timezone.utc),
                                           datetime(2027, 1, 1, tzinfo=timezone.utc))
    # 03:00 UTC on Dec 1 is still November in New York (UTC-5)
    start, end = period_bounds("MONTHLY", datetime(2026, 12, 1, 3, tzinfo=timezone.utc),
                               "America/New_York")
    assert start == datetime(2026, 11, 1, 4, tzinfo=timezone.utc)  # EDT until Nov 1 02:00
    assert end == datetime(2026, 12, 1, 5, tzinfo=timezone.utc)


# --- budgets API ---------------------------------------------------------------------------

@pytest.mark.django_db
def test_budget_validation_names_the_field(store, tenant):
    client = api_client(tenant, "BILLING_ADMIN")
    base = {"name": "AI spend", "period": "MONTHLY", "capUsd": 100}
    cases = [({"capUsd": 0}, "capUsd"), ({"warningThresholdPct": 0}, "warningThresholdPct"),
             ({"warningThresholdPct": 101}, "warningThresholdPct"),
             ({"period": "WEEKLY"}, "period"), ({"productId": "nope"}, "productId"),
             ({"customerId": "nope"}, "customerId")]
    for change, field in cases:
        response = client.post("/api/v1/cogs/budgets", {**base, **change}, format="json")
        assert response.status_code == 400, change
        assert response.json()["error"]["field"] == field
    assert api_client(tenant, "DEVELOPER").post("/api/v1/cogs/budgets", base,
                                                format="json").status_code == 403
    assert api_client(tenant, "VIEWER").get("/api/v1/cogs/budgets").status_code == 200


@pytest.mark.django_db
def test_budget_reads_carry_spend_utilization_projection_and_status(store, tenant):
    spend(tenant, "30", 2, customer="cust_a")
    spend(tenant, "5", 1, customer="cust_b", prefix="b")
    client = api_client(tenant, "OWNER")
    created = client.post("/api/v1/cogs/budgets", {
        "name": "Acme", "period": "MONTHLY", "customerId": "cust_a", "capUsd": "100",
        "warningThresholdPct": 50}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["spentUsd"], body["utilizationPct"], body["status"]) == (60.0, 60.0, "WARNING")
    start, end = period_bounds("MONTHLY", datetime.now(timezone.utc))
    assert body["periodStart"] == start.isoformat().replace("+00:00", "Z")
    elapsed = (datetime.now(timezone.utc) - start) / (end - start)
    assert body["projectedSpendUsd"] == pytest.approx(60 / elapsed, rel=0.01)
    whole = client.post("/api/v1/cogs/budgets", {"name": "All", "period": "ANNUAL",
                                                 "capUsd": "64"}, format="json").json()
    assert (whole["spentUsd"], whole["status"]) == (65.0, "OVER_BUDGET")
    listed = client.get("/api/v1/cogs/budgets").json()
    assert listed["totalElements"] == 2
    patched = client.patch(f"/api/v1/cogs/budgets/{body['id']}", {"capUsd": "1000"},
                           format="json").json()
    assert patched["status"] == "ON_TRACK"


# --- rules, alerts, deliveries -------------------------------------------------------------

@pytest.mark.django_db
def test_rule_validation(store, tenant):
    client = api_client(tenant, "ADMIN")
    rule = {"name": "r", "metric": "COST", "comparison": "GT", "threshold": 1, "window": "1h",
            "channel": "EMAIL", "destination": "ops@example.com"}
    assert client.post("/api/v1/cogs/alert-rules", rule, format="json").status_code == 201
    for change, field in [({"destination": "not-an-email"}, "destination"),
                          ({"channel": "SLACK", "destination": "http://hooks.example.com/x"},
                           "destination"),
                          ({"metric": "VIBES"}, "metric"), ({"window": "2h"}, "window"),
                          ({"comparison": "EQ"}, "comparison"),
                          ({"customerId": "ghost"}, "customerId")]:
        response = client.post("/api/v1/cogs/alert-rules", {**rule, **change}, format="json")
        assert response.status_code == 400, change
        assert response.json()["error"]["field"] == field


@pytest.mark.django_db
def test_cost_rule_fires_once_to_slack_email_and_a_signed_webhook(store, tenant, http_sink,
                                                                  smtp_sink):
    spend(tenant, "12.5", 2)
    common = {"metric": "COST", "comparison": "GTE", "threshold": Decimal("20"), "window": "1h"}
    slack = services.alert_rule_create(tenant=tenant, name="Spend spike", channel="SLACK",
                                       destination=http_sink.url, **common)
    services.alert_rule_create(tenant=tenant, name="Spend mail", channel="EMAIL",
                               destination="ops@example.com", **common)
    hook = services.alert_rule_create(tenant=tenant, name="Spend hook", channel="WEBHOOK",
                                      destination=http_sink.url + "/signed", **common)
    fired = services.alerts_evaluate(now=NOW, tenant=tenant)
    assert sorted(a.title for a in fired) == ["Spend hook", "Spend mail", "Spend spike"]
    assert services.alerts_evaluate(now=NOW + timedelta(minutes=1), tenant=tenant) == []
    assert Alert.objects.filter(tenant=tenant).count() == 3

    slack_post = next(r for r in http_sink.requests if r["path"] == "/hook")
    blocks = slack_post["json"]["blocks"]
    text = str(blocks)
    assert blocks[0]["type"] == "header" and "Spend spike" in blocks[0]["text"]["text"]
    for expected in ("cust_a" if slack.customer_id else "all customers", "COST", "25", "20",
                     "/console/"):
        assert expected in text
    (mail,) = smtp_sink
    assert mail["To"] == "ops@example.com" and "Spend mail" in mail["Subject"]
    assert "value: 25" in mail.get_payload()

    signed = next(r for r in http_sink.requests if r["path"] == "/hook/signed")
    header = signed["headers"]["X-Aforo-Signature"]
    parts = dict(p.split("=", 1) for p in header.split(","))
    expected = hmac.new(hook.signing_secret.encode(), f"{parts['t']}.".encode() + signed["body"],
                        hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert signed["json"]["value"] == 25  # money in webhooks: a JSON number, as in the API


@pytest.mark.django_db
def test_a_failing_sink_is_retried_with_backoff_until_it_accepts(store, tenant, http_sink):
    http_sink.fail_first = 2
    spend(tenant, "3")
    services.alert_rule_create(tenant=tenant, name="Any spend", metric="COST", comparison="GT",
                               threshold=Decimal("1"), window="1h", channel="SLACK",
                               destination=http_sink.url)
    (alert,) = services.alerts_evaluate(now=NOW, tenant=tenant)
    delivery = Delivery.objects.get(alert=alert)
    assert (delivery.state, delivery.attempts) == ("PENDING", 1)
    assert delivery.last_error == "HTTP 5xx"  # only the status class is recorded
    assert deliveries_send_due(now=NOW + timedelta(seconds=10)) == 0  # not due yet
    delivery.refresh_from_db()
    assert delivery.attempts == 1
    assert deliveries_send_due(now=NOW + timedelta(seconds=31)) == 0  # second failure
    delivery.refresh_from_db()
    assert delivery.next_attempt_at == NOW + timedelta(seconds=31) + timedelta(seconds=60)
    assert deliveries_send_due(now=NOW + timedelta(seconds=92)) == 1
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("DELIVERED", 3)
    assert [a.ok for a in delivery.log.all()] == [False, False, True]
    history = api_client(tenant).get("/api/v1/cogs/alert-history").json()["content"][0]
    assert history["deliveries"][0]["state"] == "DELIVERED"
    assert len(history["deliveries"][0]["log"]) == 3


@pytest.mark.django_db
def test_a_delivery_that_never_lands_ends_failed_and_shows_in_history(store, tenant, settings):
    settings.AFORO_ALLOW_HTTP_WEBHOOKS = True
    settings.AFORO_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    spend(tenant, "3")
    services.alert_rule_create(tenant=tenant, name="Dead hook", metric="COST", comparison="GT",
                               threshold=Decimal("1"), window="1h", channel="WEBHOOK",
                               destination="http://127.0.0.1:1/nothing-listens")
    (alert,) = services.alerts_evaluate(now=NOW, tenant=tenant)
    at = NOW
    for _ in range(10):
        at += timedelta(hours=2)
        deliveries_send_due(now=at)
    delivery = Delivery.objects.get(alert=alert)
    assert (delivery.state, delivery.attempts) == ("FAILED", 8)
    assert delivery.last_error == "no response"  # a status class, not the socket's words


@pytest.mark.django_db(transaction=True)
def test_two_evaluators_at_once_open_one_alert(store, tenant, http_sink):
    spend(tenant, "50")
    services.alert_rule_create(tenant=tenant, name="Race", metric="COST", comparison="GT",
                               threshold=Decimal("1"), window="1h", channel="SLACK",
                               destination=http_sink.url)
    barrier = threading.Barrier(4)

    def evaluate():
        barrier.wait()
        try:
            services.alerts_evaluate(now=NOW, tenant=tenant)
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Alert.objects.filter(tenant=tenant).count() == 1
    assert len(http_sink.requests) == 1


@pytest.mark.django_db
def test_acknowledge_resolve_and_auto_resolve(store, tenant, http_sink):
    spend(tenant, "8")
    rule = services.alert_rule_create(tenant=tenant, name="Auto", metric="COST",
                                      comparison="GT", threshold=Decimal("5"), window="1h",
                                      channel="SLACK", destination=http_sink.url,
                                      auto_resolve=True)
    (alert,) = services.alerts_evaluate(now=NOW, tenant=tenant)
    client = api_client(tenant, "BILLING_ADMIN")
    assert api_client(tenant, "VIEWER").post(
        f"/api/v1/cogs/alert-history/{alert.pk}/acknowledge").status_code == 403
    acked = client.post(f"/api/v1/cogs/alert-history/{alert.pk}/acknowledge").json()
    assert acked["state"] == "ACKNOWLEDGED" and acked["acknowledgedAt"]
    assert client.post(f"/api/v1/cogs/alert-history/{alert.pk}/acknowledge").status_code == 409
    # two hours on, the 1h window is empty: the condition cleared and the rule resolves itself
    services.alerts_evaluate(now=NOW + timedelta(hours=2), tenant=tenant)
    alert.refresh_from_db()
    assert (alert.state, alert.resolved_by) == ("RESOLVED", "auto")
    # a new breach fires a new alert, which a person resolves
    rule.threshold = Decimal("0")
    rule.window = "24h"
    rule.save()
    (again,) = services.alerts_evaluate(now=NOW + timedelta(hours=2), tenant=tenant)
    resolved = client.post(f"/api/v1/cogs/alert-history/{again.pk}/resolve").json()
    assert resolved["state"] == "RESOLVED"
    states = [a["state"] for a in client.get("/api/v1/cogs/alert-history").json()["content"]]
    assert states == ["RESOLVED", "RESOLVED"]


@pytest.mark.django_db
def test_budget_crossings_fire_warning_then_over_budget_once_each(store, tenant, http_sink):
    services.budget_create(tenant=tenant, name="Monthly AI", period="MONTHLY",
                           cap_usd=Decimal("100"), warning_threshold_pct=Decimal("75"),
                           notify_channel="SLACK", notify_destination=http_sink.url)
    spend(tenant, "50")
    assert services.alerts_evaluate(now=NOW, tenant=tenant) == []
    spend(tenant, "30", prefix="w")
    (warning,) = services.alerts_evaluate(now=NOW, tenant=tenant)
    assert "warning" in warning.title and warning.value == Decimal("80")
    assert services.alerts_evaluate(now=NOW, tenant=tenant) == []
    spend(tenant, "25", prefix="o")
    (over,) = services.alerts_evaluate(now=NOW, tenant=tenant)
    assert "over budget" in over.title
    assert len(http_sink.accepted) == 2


@pytest.mark.django_db
def test_another_tenants_alerts_are_invisible(store, tenant, other_tenant, http_sink):
    spend(other_tenant, "9")
    services.alert_rule_create(tenant=other_tenant, name="Theirs", metric="COST",
                               comparison="GT", threshold=Decimal("1"), window="1h",
                               channel="SLACK", destination=http_sink.url)
    (theirs,) = services.alerts_evaluate(now=NOW, tenant=other_tenant)
    client = api_client(tenant)
    assert client.get("/api/v1/cogs/alert-history").json()["totalElements"] == 0
    assert client.get(f"/api/v1/cogs/alert-history/{theirs.pk}").status_code == 404
    assert api_client(tenant, "OWNER").post(
        f"/api/v1/cogs/alert-history/{theirs.pk}/resolve").status_code == 404


@pytest.mark.django_db
def test_budget_periods_follow_the_tenants_time_zone(store, tenant):
    from cogs.services import cogs_settings_update

    cogs_settings_update(tenant=tenant, time_zone="Asia/Tokyo")
    budget = services.budget_create(tenant=tenant, name="Tokyo", period="MONTHLY",
                                    cap_usd=Decimal("10"))
    at = datetime(2026, 11, 30, 16, 0, tzinfo=timezone.utc)  # already December 1st in Tokyo
    state = services.budget_status(budget, now=at)
    assert state.period_start == datetime(2026, 11, 30, 15, 0, tzinfo=timezone.utc)
    assert state.period_end == datetime(2026, 12, 31, 15, 0, tzinfo=timezone.utc)


@pytest.mark.django_db
def test_margin_rules_read_expected_revenue(store, tenant, http_sink):
    """A tenant with no plans: a MARGIN rule fires on the revenue its events carry, and stays
    quiet where no revenue is known (margin % is null then, never -100 %)."""
    from tests.factories import ingest

    at = (NOW - timedelta(minutes=5)).isoformat()
    ingest(tenant, [{"eventId": f"c{i}", "occurredAt": at, "customerId": "cust_c",
                     "productId": "prod_a", "cogsUsd": "0.90", "revenueUsd": "1.00"}
                    for i in range(4)], now=NOW)
    ingest(tenant, [{"eventId": "u1", "occurredAt": at, "customerId": "cust_u",
                     "productId": "prod_a", "cogsUsd": "0.90"}], now=NOW)
    for customer in ("cust_c", "cust_u"):
        services.alert_rule_create(tenant=tenant, name=f"Thin {customer}", metric="MARGIN",
                                   comparison="LT", threshold=Decimal(20), channel="SLACK",
                                   destination=http_sink.url, customer_id=customer)
    fired = services.alerts_evaluate(now=NOW, tenant=tenant)
    assert [(a.customer_id, a.value) for a in fired] == [("cust_c", Decimal(10))]
