"""Signals over REST: the list and its filters, acknowledge and resolve by role, another
tenant's signal is a 404; alert rules with source SIGNAL deliver new signals; Margin Guard's
level changes are signals too."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from aforo.models import Role
from budgets.models import Alert
from budgets.services import alert_rule_create, alerts_evaluate
from intelligence.models import Kind, Signal
from intelligence.services import Finding, signal_record
from tests.conftest import api_client
from tests.factories import ingest, usage_events

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def _finding(**changes) -> Finding:
    values = dict(kind=Kind.CHURN_RISK, title="Customer c1: 60% fewer events",
                  threshold=Decimal(50), window_start=NOW - timedelta(days=7), window_end=NOW,
                  value=Decimal(80), baseline=Decimal(200), deviation=Decimal(-60),
                  magnitude=Decimal("1.2"), severity="WARNING", customer_id="c1", unit="EVENTS",
                  sample_event_ids=["e1", "e2"], last_event_at=NOW - timedelta(minutes=5))
    values.update(changes)
    return Finding(**values)


@pytest.mark.django_db
def test_the_list_shows_the_contract_fields_and_filters(tenant, api):
    signal_record(tenant=tenant, finding=_finding(), now=NOW)
    signal_record(tenant=tenant, finding=_finding(kind=Kind.USAGE_ANOMALY, customer_id="c2",
                                                  severity="CRITICAL", magnitude=Decimal(3),
                                                  threshold=Decimal(2)), now=NOW)
    body = api.get("/api/v1/intelligence/signals").json()
    assert body["totalElements"] == 2
    row = next(r for r in body["content"] if r["kind"] == "CHURN_RISK")
    for name in ("id", "kind", "customerId", "productId", "unit", "windowStart", "windowEnd",
                 "value", "baseline", "deviation", "severity", "state", "sampleEventIds"):
        assert name in row
    assert (row["customerId"], row["productId"], row["value"], row["baseline"]) == (
        "c1", None, 80, 200)
    assert row["detectionLatencySeconds"] == 300 and row["state"] == "OPEN"
    ordered = api.get("/api/v1/intelligence/signals?order=magnitude").json()["content"]
    assert [r["kind"] for r in ordered] == ["USAGE_ANOMALY", "CHURN_RISK"]
    only = api.get("/api/v1/intelligence/signals?kind=CHURN_RISK").json()
    assert only["totalElements"] == 1
    bad = api.get("/api/v1/intelligence/signals?kind=NOPE")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "kind"


@pytest.mark.django_db
def test_acknowledge_and_resolve_by_role_and_tenant(tenant, other_tenant):
    signal = signal_record(tenant=tenant, finding=_finding(), now=NOW)
    url = f"/api/v1/intelligence/signals/{signal.pk}"
    viewer = api_client(tenant, Role.VIEWER)
    assert viewer.get(url).status_code == 200
    assert viewer.post(f"{url}/acknowledge").status_code == 403
    developer = api_client(tenant, Role.DEVELOPER)
    acked = developer.post(f"{url}/acknowledge").json()
    assert acked["state"] == "ACKNOWLEDGED"
    again = developer.post(f"{url}/acknowledge")
    assert again.status_code == 409 and again.json()["error"]["field"] == "state"
    assert developer.post(f"{url}/resolve").json()["state"] == "RESOLVED"
    assert api_client(other_tenant).get(url).status_code == 404
    assert api_client(other_tenant).post(f"{url}/resolve").status_code == 404


@pytest.mark.django_db
def test_the_same_finding_is_stored_once(tenant):
    assert signal_record(tenant=tenant, finding=_finding(), now=NOW) is not None
    assert signal_record(tenant=tenant, finding=_finding(value=Decimal(70)), now=NOW) is None
    assert signal_record(tenant=tenant, finding=_finding(threshold=Decimal(40)),
                         now=NOW) is not None  # another threshold is another signal
    assert Signal.objects.filter(tenant=tenant).count() == 2


@pytest.mark.django_db
def test_settings_read_and_change(tenant, api):
    assert api.get("/api/v1/intelligence/settings").json()["pacingThresholds"] == [80, 100, 120]
    changed = api.patch("/api/v1/intelligence/settings",
                        {"anomalySigma": 3, "pacingThresholds": [90, 110]}, format="json")
    assert changed.status_code == 200, changed.json()
    assert changed.json()["anomalySigma"] == 3 and changed.json()["pacingThresholds"] == [90, 110]
    bad = api.patch("/api/v1/intelligence/settings", {"minHistoryDays": 30}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "minHistoryDays"
    assert api_client(tenant, Role.DEVELOPER).patch(
        "/api/v1/intelligence/settings", {"anomalySigma": 4}, format="json").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_a_signal_rule_delivers_new_signals_of_its_kind(tenant, api, http_sink):
    created = api.post("/api/v1/cogs/alert-rules", {
        "name": "Churn to CS", "source": "SIGNAL", "signalKind": "CHURN_RISK",
        "minSeverity": "WARNING", "channel": "WEBHOOK", "destination": http_sink.url},
        format="json")
    assert created.status_code == 201, created.json()
    alert_rule_create(tenant=tenant, name="Criticals only", source="SIGNAL",
                      min_severity="CRITICAL", channel="WEBHOOK", destination=http_sink.url)
    missing = api.post("/api/v1/cogs/alert-rules", {
        "name": "No metric", "channel": "WEBHOOK", "destination": http_sink.url}, format="json")
    assert missing.status_code == 400 and missing.json()["error"]["field"] == "metric"

    signal_record(tenant=tenant, finding=_finding(), now=NOW)
    signal_record(tenant=tenant, finding=_finding(), now=NOW)  # the same: nothing new
    signal_record(tenant=tenant, finding=_finding(kind=Kind.COST_SPIKE, severity="INFO",
                                                  unit="COGS_USD"), now=NOW)
    alerts_evaluate(now=NOW, tenant=tenant)  # sends what is due, evaluates no SIGNAL rule
    alerts = list(Alert.objects.filter(tenant=tenant))
    assert [(a.metric, a.rule.name) for a in alerts] == [("CHURN_RISK", "Churn to CS")]
    assert len(http_sink.accepted) == 1
    assert http_sink.accepted[0]["json"]["metric"] == "CHURN_RISK"
    assert http_sink.accepted[0]["json"]["customerId"] == "c1"


@pytest.mark.django_db(transaction=True)
def test_a_margin_guard_level_change_is_a_margin_trip_signal(store, tenant):
    from margin_guard.models import GuardPolicy
    from margin_guard.services import guard_evaluate
    from tests.factories import on_plan

    on_plan(tenant, "cust_g", starts_at=NOW - timedelta(days=30),
            components=[("PER_EVENT", "1.00")])
    ingest(tenant, usage_events("g", customer="cust_g", product="prod_chat",
                                at=NOW - timedelta(minutes=30), count=10, cogsUsd="0.95"),
           now=NOW)
    # The policy after the ingest, so the post-ingest evaluation (a thread of its own) does
    # not move the level before this test does.
    GuardPolicy.objects.create(tenant=tenant, name="Floor", scope="TENANT", mode="DRY_RUN",
                               min_events=5)
    result = guard_evaluate(tenant=tenant, customer_id="cust_g", product_id="prod_chat",
                            now=NOW)
    assert result.changed
    trips = list(Signal.objects.filter(tenant=tenant, kind=Kind.MARGIN_TRIP))
    assert len(trips) == 1
    trip = trips[0]
    assert trip.customer_id == "cust_g" and trip.unit == "MARGIN_PCT"
    assert trip.subject == f"guard-action:{result.action.pk}"
    assert trip.value == Decimal(5) and trip.threshold == Decimal(10)  # THROTTLE below 10%
    assert trip.severity == "WARNING" and len(trip.sample_event_ids) == 5
    guard_evaluate(tenant=tenant, customer_id="cust_g", product_id="prod_chat", now=NOW)
    assert Signal.objects.filter(tenant=tenant, kind=Kind.MARGIN_TRIP).count() == 1
