"""Guard policies: one set of rules (guard_policy_create/update) behind the API and the console,
several notification channels, and the preview that evaluates without writing."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.test import Client

from aforo.catalog import customer_create
from aforo.errors import DomainError
from aforo.models import Role
from margin_guard.models import GuardAction, GuardPolicy, GuardState, Level
from margin_guard.queries import guard_policy_preview
from margin_guard.services import (
    guard_evaluate,
    guard_policy_build,
    guard_policy_create,
    guard_policy_update,
)
from notifications.models import Delivery
from tests.conftest import api_client
from tests.console.conftest import console_user
from tests.factories import ingest

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.mark.django_db
@pytest.mark.parametrize(("values", "field", "words"), [
    ({"name": ""}, "name", "A name is required"),
    ({"scope": "GALAXY"}, "scope", "The scope must be one of"),
    ({"scope": "PLATFORM"}, "scope", "operators"),
    ({"scope": "TIER"}, "tier", "A TIER policy needs a tier"),
    ({"scope": "PRODUCT"}, "product_id", "needs a product"),
    ({"scope": "CUSTOMER_PRODUCT", "customer_id": "c"}, "product_id", "needs a product"),
    ({"scope": "CUSTOMER"}, "customer_id", "needs a customer"),
    ({"mode": "LOUD"}, "mode", "The mode must be one of OFF, DRY_RUN, ENFORCE"),
    ({"alert_below_pct": "abc"}, "alert_below_pct", "must be a number"),
    ({"alert_below_pct": "101"}, "alert_below_pct", "between"),
    ({"alert_below_pct": "5", "throttle_below_pct": "10"}, "throttle_below_pct", "descend"),
    ({"block_below_pct": "15"}, "block_below_pct", "descend"),
    ({"recovery_buffer_pct": "-1"}, "recovery_buffer_pct", "between 0% and 100%"),
    ({"min_events": "many"}, "min_events", "whole number"),
    ({"throttle_rate_per_minute": "0"}, "throttle_rate_per_minute", "between 1 and"),
    ({"window": "1y"}, "window", "The window must be one of"),
    ({"downgrade_map": {"gpt-4o": "gpt-4o"}}, "downgrade_map", "to itself"),
    ({"premium_features": ["ok", " "]}, "premium_features", "is required"),
    ({"notifications": [{"channel": "FAX", "destination": "x"}]}, "notifications.0.channel",
     "A channel must be one of"),
    ({"notifications": [{"channel": "EMAIL", "destination": "ops@example.com"},
                        {"channel": "EMAIL", "destination": "nope"}]},
     "notifications.1.destination", "email address"),
    ({"notifications": [{"channel": "EMAIL", "destination": "a@example.com"}] * 2},
     "notifications.1.destination", "listed twice"),
])
def test_each_policy_rule_names_its_field(tenant, values, field, words):
    base = {"name": "Floors", "scope": "TENANT"}
    with pytest.raises(DomainError) as refused:
        guard_policy_create(tenant=tenant, **{**base, **values})
    assert refused.value.field == field
    assert words in refused.value.message
    assert not GuardPolicy.objects.filter(tenant=tenant).exists()


@pytest.mark.django_db
def test_update_keeps_the_rules_and_clears_what_a_scope_does_not_name(tenant):
    policy = guard_policy_create(tenant=tenant, name="Free", scope="TIER", tier="FREE",
                                 alert_below_pct="10", throttle_below_pct="5",
                                 block_below_pct="0")
    with pytest.raises(DomainError) as refused:
        guard_policy_update(policy=policy, throttle_below_pct="12")
    assert refused.value.field == "throttle_below_pct"
    policy.refresh_from_db()
    assert policy.throttle_below_pct == Decimal("5")
    moved = guard_policy_update(policy=policy, scope="TENANT", mode="ENFORCE")
    moved.refresh_from_db()
    assert (moved.scope, moved.tier, moved.mode) == ("TENANT", "", "ENFORCE")
    assert moved.signing_secret == policy.signing_secret
    operator = guard_policy_create(tenant=None, name="Platform", scope="PLATFORM",
                                   operator=True)
    assert operator.tenant_id is None
    with pytest.raises(DomainError):
        guard_policy_update(policy=operator, mode="ENFORCE")  # not an operator


@pytest.mark.django_db
def test_api_answers_the_services_rules_in_its_own_field_names(tenant, http_sink):
    owner = api_client(tenant, "OWNER")
    bad = owner.post("/api/v1/margin-guard/policies", {
        "name": "x", "scope": "TENANT", "alertBelowPct": 10, "throttleBelowPct": 5,
        "blockBelowPct": 8}, format="json")
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "blockBelowPct"
    bad = owner.post("/api/v1/margin-guard/policies", {
        "name": "x", "scope": "TENANT", "notifications": [
            {"channel": "SLACK", "destination": http_sink.url},
            {"channel": "PAGERDUTY", "destination": "short"}]}, format="json")
    assert bad.json()["error"]["field"] == "notifications.1.destination"
    created = owner.post("/api/v1/margin-guard/policies", {
        "name": "Everyone", "scope": "TENANT", "notifications": [
            {"channel": "SLACK", "destination": http_sink.url},
            {"channel": "EMAIL", "destination": "ops@example.com"},
            {"channel": "PAGERDUTY", "destination": "R0UT1NGKEY0123456"},
            {"channel": "WEBHOOK", "destination": http_sink.url + "/signed"}]}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert [n["channel"] for n in body["notifications"]] == [
        "SLACK", "EMAIL", "PAGERDUTY", "WEBHOOK"]
    assert (body["notifyChannel"], body["notifyDestination"]) == ("SLACK", http_sink.url)
    # a lone notifyChannel/notifyDestination replaces the first channel, keeping the rest
    patched = owner.patch(f"/api/v1/margin-guard/policies/{body['id']}", {
        "notifyChannel": "EMAIL", "notifyDestination": "cfo@example.com"}, format="json")
    assert [(n["channel"], n["destination"]) for n in patched.json()["notifications"]][:2] == [
        ("EMAIL", "cfo@example.com"), ("EMAIL", "ops@example.com")]
    viewer = api_client(tenant, "VIEWER")
    shown = viewer.get(f"/api/v1/margin-guard/policies/{body['id']}").json()
    assert "cfo@example.com" not in str(shown) and shown["notifications"][0]["channel"] == "EMAIL"
    assert viewer.post("/api/v1/margin-guard/policies", {"name": "v", "scope": "TENANT"},
                       format="json").status_code == 403
    assert viewer.post("/api/v1/margin-guard/policies/preview", {"name": "v", "scope": "TENANT"},
                       format="json").status_code == 403
    assert owner.delete(f"/api/v1/margin-guard/policies/{body['id']}").status_code == 204


@pytest.mark.django_db(transaction=True)  # the notification goes out on commit
def test_every_channel_of_a_policy_gets_the_level_change(store, tenant, http_sink):
    ingest(tenant, [{"eventId": f"ch-{n}", "occurredAt": NOW, "customerId": "cust_ch",
                     "productId": "prod_chat", "cogsUsd": "1.00", "revenueUsd": "1.05"}
                    for n in range(3)])
    guard_policy_create(tenant=tenant, name="Loud", scope="TENANT", mode="DRY_RUN",
                        min_events=1, notifications=[
                            {"channel": "SLACK", "destination": http_sink.url},
                            {"channel": "WEBHOOK", "destination": http_sink.url + "/signed"}])
    result = guard_evaluate(tenant=tenant, customer_id="cust_ch", product_id="prod_chat",
                            now=datetime.now(timezone.utc))
    assert result.action.to_level == Level.THROTTLE  # margin 4.76%
    deliveries = Delivery.objects.filter(tenant=tenant).order_by("channel")
    assert [(d.channel, d.state) for d in deliveries] == [
        ("SLACK", "DELIVERED"), ("WEBHOOK", "DELIVERED")]
    paths = sorted(r["path"] for r in http_sink.accepted)
    assert paths == ["/hook", "/hook/signed"]
    signed = next(r for r in http_sink.accepted if r["path"] == "/hook/signed")
    assert signed["json"]["customerId"] == "cust_ch"


def _tiered_traffic(tenant):
    """Three FREE customers and one PRO, margins by hand (revenue carried on each event):
    free_a 40% (5 events), free_b 12% (5), free_c -20% (5), pro_a 2% (5); free_d 3 events."""
    for external_id, tier in (("free_a", "FREE"), ("free_b", "FREE"), ("free_c", "FREE"),
                              ("free_d", "FREE"), ("pro_a", "PRO")):
        customer_create(tenant=tenant, external_id=external_id, tier=tier)
    shapes = {"free_a": ("0.60", 5), "free_b": ("0.88", 5), "free_c": ("1.20", 5),
              "pro_a": ("0.98", 5), "free_d": ("2.00", 3)}
    ingest(tenant, [{"eventId": f"{cid}-{n}", "occurredAt": NOW - timedelta(hours=1),
                     "customerId": cid, "productId": "prod_chat", "cogsUsd": cost,
                     "revenueUsd": "1.00"}
                    for cid, (cost, count) in shapes.items() for n in range(count)])


def test_preview_says_who_lands_where_and_writes_nothing(store, tenant):
    _tiered_traffic(tenant)
    guard_policy_create(tenant=tenant, name="free_c's own", scope="CUSTOMER",
                        customer_id="free_c", mode="OFF")
    draft = guard_policy_build(tenant=tenant, values={
        "name": "Free floor", "scope": "TIER", "tier": "FREE", "mode": "ENFORCE",
        "alert_below_pct": "15", "throttle_below_pct": "5", "block_below_pct": "-10",
        "min_events": "4"})
    preview = guard_policy_preview(tenant=tenant, policy=draft, now=datetime.now(timezone.utc))
    rows = {r.customer_id: r for r in preview.rows}
    assert set(rows) == {"free_a", "free_b", "free_c", "free_d"}  # pro_a is PRO
    assert rows["free_a"].level == Level.NONE and rows["free_a"].margin_pct == Decimal("40")
    assert rows["free_b"].level == Level.ALERT and rows["free_b"].margin_pct == Decimal("12")
    assert rows["free_c"].held_by == "free_c's own"  # a more specific policy governs it
    assert rows["free_c"].level == Level.BLOCK  # what this one would say, shown apart
    assert rows["free_d"].level == Level.NONE and "below the minimum of 4" in rows[
        "free_d"].reason
    assert dict(preview.counts) == {"NONE": 2, "ALERT": 1, "THROTTLE": 0, "BLOCK": 0}
    assert rows["free_b"].cost_usd == Decimal("4.40")
    assert rows["free_b"].revenue_usd == Decimal("5.00")
    assert not GuardState.objects.filter(tenant=tenant).exists()
    assert not GuardAction.objects.filter(tenant=tenant).exists()
    assert GuardPolicy.objects.filter(tenant=tenant).count() == 1  # the draft is not saved


def test_console_form_creates_previews_edits_switches_and_deletes(store, tenant):
    _tiered_traffic(tenant)
    admin = Client()
    admin.force_login(console_user(tenant, "ops", Role.ADMIN))
    form = {"name": "Free floor", "scope": "TIER", "tier": "FREE", "mode": "DRY_RUN",
            "alert_below_pct": "15", "throttle_below_pct": "20", "block_below_pct": "0",
            "window": "24h", "min_events": "4", "recovery_buffer_pct": "5",
            "on_unknown_revenue": "HOLD", "downgrade_map": "gpt-4o → gpt-4o-mini",
            "premium_features": "batch, vision", "throttle_rate_per_minute": "30",
            "override_minutes": "90",
            "notification_rows": "2", "n-0-channel": "EMAIL",
            "n-0-destination": "ops@example.com", "n-1-channel": "", "n-1-destination": ""}
    refused = admin.post("/console/margin-guard/policies/new", {**form, "action": "save"})
    assert refused.status_code == 400
    assert "Throttle below: Floors must descend" in refused.content.decode()
    assert 'id="p-throttle" name="throttle_below_pct" value="20" inputmode="decimal" size="8"' \
        ' aria-invalid="true"' in refused.content.decode()
    form["throttle_below_pct"] = "5"
    shown = admin.post("/console/margin-guard/policies/new", {**form, "action": "preview"})
    assert shown.status_code == 200
    assert 'data-preview-customer="free_b" data-level="ALERT"' in shown.content.decode()
    assert not GuardPolicy.objects.filter(tenant=tenant).exists()
    saved = admin.post("/console/margin-guard/policies/new", {**form, "action": "save"})
    assert saved.status_code == 302
    policy = GuardPolicy.objects.get(tenant=tenant)
    assert (policy.tier, policy.mode, policy.downgrade_map, policy.premium_features,
            policy.throttle_rate_per_minute, policy.notify_targets()) == (
        "FREE", "DRY_RUN", {"gpt-4o": "gpt-4o-mini"}, ["batch", "vision"], 30,
        [("EMAIL", "ops@example.com")])
    bad_map = admin.post(f"/console/margin-guard/policies/{policy.pk}",
                         {**form, "downgrade_map": "gpt-4o", "action": "save"})
    assert "Line 1 of the downgrade map" in bad_map.content.decode()
    assert admin.post(f"/console/margin-guard/policies/{policy.pk}/mode",
                      {"mode": "ENFORCE"}).status_code == 302
    policy.refresh_from_db()
    assert policy.mode == "ENFORCE"

    viewer = Client()
    viewer.force_login(console_user(tenant, "vera", Role.VIEWER))
    page = viewer.get("/console/margin-guard/").content.decode()
    assert "New policy" not in page and "Set mode" not in page
    assert 'data-policy-name="Free floor"' in page
    for url, body in ((f"/console/margin-guard/policies/{policy.pk}/mode", {"mode": "OFF"}),
                      (f"/console/margin-guard/policies/{policy.pk}/delete", {}),
                      ("/console/margin-guard/policies/new", {**form, "action": "save"})):
        assert viewer.post(url, body).status_code == 403
    policy.refresh_from_db()
    assert policy.mode == "ENFORCE" and GuardPolicy.objects.filter(tenant=tenant).count() == 1
    assert admin.post(f"/console/margin-guard/policies/{policy.pk}/delete").status_code == 302
    assert not GuardPolicy.objects.filter(tenant=tenant).exists()


@pytest.mark.django_db
def test_the_admin_uses_the_same_rules(tenant):
    from django.contrib.auth import get_user_model

    operator = Client()
    operator.force_login(get_user_model().objects.create_superuser("root", password="x"))
    form = {"tenant": "", "name": "Platform floor", "scope": "PLATFORM", "tier": "",
            "product_id": "", "customer_id": "", "mode": "DRY_RUN", "alert_below_pct": "10",
            "throttle_below_pct": "20", "block_below_pct": "0", "window": "24h",
            "min_events": "20", "recovery_buffer_pct": "5", "on_unknown_revenue": "HOLD",
            "override_minutes": "60",
            "downgrade_map": "{}", "premium_features": "[]", "notifications": "[]"}
    refused = operator.post("/admin/margin_guard/guardpolicy/add/", form)
    assert refused.status_code == 200
    assert "Floors must descend" in refused.content.decode()
    assert not GuardPolicy.objects.exists()
    form["throttle_below_pct"] = "5"
    assert operator.post("/admin/margin_guard/guardpolicy/add/", form).status_code == 302
    saved = GuardPolicy.objects.get()
    assert (saved.tenant_id, saved.scope, saved.throttle_below_pct) == (
        None, "PLATFORM", Decimal("5"))
    assert len(saved.signing_secret) >= 32
