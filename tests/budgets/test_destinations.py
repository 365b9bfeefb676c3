"""One destination model: budgets, alert rules and guard policies keep their destinations in
notifications.Destination (the migration copies every existing one, in order, and back), the
APIs show and take the same fields as before, and deleting an owner deletes its destinations."""
from __future__ import annotations

from decimal import Decimal

import pytest

from budgets import services
from margin_guard.models import GuardPolicy
from margin_guard.services import guard_policy_create
from notifications.models import Destination
from tests.factories import latest_migrations, migrate_to

BEFORE = [("budgets", "0006_alter_alertrule_source"), ("margin_guard", "0007_decision_counts"),
          ("notifications", "0003_slack_user_links")]
AFTER = [("budgets", "0007_destinations"), ("margin_guard", "0008_destinations"),
         ("notifications", "0004_destinations")]
SLACK = "https://hooks.slack.com/services/T000/B000/XXXX"


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_every_destination_in_order_and_back(tenant):
    old = migrate_to(BEFORE)
    Budget, Rule = old.get_model("budgets", "CostBudget"), old.get_model("budgets", "AlertRule")
    Policy = old.get_model("margin_guard", "GuardPolicy")
    t = tenant.pk
    mailed = Budget.objects.create(tenant_id=t, name="b", period="MONTHLY", cap_usd=5,
                                   notify_channel="EMAIL", notify_destination="ops@example.com")
    silent = Budget.objects.create(tenant_id=t, name="quiet", period="MONTHLY", cap_usd=5)
    rule = Rule.objects.create(tenant_id=t, name="r", metric="COST", comparison="GT",
                               threshold=1, channel="SLACK", destination=SLACK)
    listed = Policy.objects.create(
        tenant_id=t, name="p", scope="TENANT", notify_channel="SLACK", notify_destination=SLACK,
        notifications=[{"channel": "SLACK", "destination": SLACK},
                       {"channel": "EMAIL", "destination": "a@example.com"}])
    lone = Policy.objects.create(tenant_id=t, name="q", scope="CUSTOMER", customer_id="c",
                                 notify_channel="PAGERDUTY",
                                 notify_destination="R0UT1NGKEY0123456")
    try:
        migrate_to(AFTER)
        from budgets.models import AlertRule, CostBudget

        assert CostBudget.objects.get(pk=mailed.pk).destination_pairs() == [
            ("EMAIL", "ops@example.com")]
        assert CostBudget.objects.get(pk=silent.pk).destination_pairs() == []
        found = AlertRule.objects.get(pk=rule.pk)
        assert (found.channel, found.destination) == ("SLACK", SLACK)
        assert GuardPolicy.objects.get(pk=listed.pk).notify_targets() == [
            ("SLACK", SLACK), ("EMAIL", "a@example.com")]
        assert GuardPolicy.objects.get(pk=lone.pk).notify_targets() == [
            ("PAGERDUTY", "R0UT1NGKEY0123456")]

        old = migrate_to(BEFORE)  # and back: the fields hold them again
        Budget, Rule = old.get_model("budgets", "CostBudget"), old.get_model("budgets",
                                                                              "AlertRule")
        Policy = old.get_model("margin_guard", "GuardPolicy")
        assert Budget.objects.filter(pk=mailed.pk).values_list(
            "notify_channel", "notify_destination").get() == ("EMAIL", "ops@example.com")
        assert Rule.objects.filter(pk=rule.pk).values_list("channel", "destination").get() == (
            "SLACK", SLACK)
        assert Policy.objects.get(pk=listed.pk).notifications == [
            {"channel": "SLACK", "destination": SLACK},
            {"channel": "EMAIL", "destination": "a@example.com"}]
        assert Policy.objects.filter(pk=lone.pk).values_list(
            "notify_channel", "notify_destination").get() == ("PAGERDUTY", "R0UT1NGKEY0123456")
    finally:
        migrate_to(latest_migrations())


@pytest.mark.django_db
def test_the_apis_take_and_show_the_same_fields(api):
    budget = api.post("/api/v1/cogs/budgets", {
        "name": "b", "period": "MONTHLY", "capUsd": 5, "notifyChannel": "EMAIL",
        "notifyDestination": "ops@example.com"}, format="json").json()
    assert (budget["notifyChannel"], budget["notifyDestination"]) == ("EMAIL", "ops@example.com")
    changed = api.patch(f"/api/v1/cogs/budgets/{budget['id']}",
                        {"notifyDestination": "fin@example.com"}, format="json").json()
    assert (changed["notifyChannel"], changed["notifyDestination"]) == ("EMAIL",
                                                                        "fin@example.com")
    rule = api.post("/api/v1/cogs/alert-rules", {
        "name": "r", "metric": "COST", "comparison": "GT", "threshold": 1, "window": "1h",
        "channel": "SLACK", "destination": SLACK}, format="json").json()
    assert (rule["channel"], rule["destination"]) == ("SLACK", SLACK)
    moved = api.patch(f"/api/v1/cogs/alert-rules/{rule['id']}",
                      {"channel": "EMAIL", "destination": "ops@example.com"},
                      format="json").json()
    assert (moved["channel"], moved["destination"]) == ("EMAIL", "ops@example.com")
    listed = api.get("/api/v1/cogs/alert-rules").json()["content"]
    assert [(r["channel"], r["destination"]) for r in listed] == [("EMAIL", "ops@example.com")]
    assert Destination.objects.count() == 2  # one each, replaced in place


@pytest.mark.django_db
def test_an_owner_takes_its_destinations_with_it(tenant):
    budget = services.budget_create(tenant=tenant, name="b", period="MONTHLY",
                                    cap_usd=Decimal(5), notify_channel="EMAIL",
                                    notify_destination="ops@example.com")
    policy = guard_policy_create(tenant=tenant, name="p", scope="TENANT", notifications=[
        {"channel": "SLACK", "destination": SLACK},
        {"channel": "EMAIL", "destination": "a@example.com"}])
    assert Destination.objects.count() == 3
    assert [d.position for d in policy.destinations.all()] == [0, 1]
    budget.delete()
    assert Destination.objects.count() == 2
    GuardPolicy.objects.filter(pk=policy.pk).delete()
    assert not Destination.objects.exists()
