"""Recommended actions: each rule at its boundary on hand-made histories, then read from a real
ledger and plans into the action, its payload and the API."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from aforo.catalog import customer_create
from aforo.periods import period_bounds
from billing.services import ComponentSpec, rate_plan_create, subscription_create
from margin_guard.models import Level
from margin_guard.notify import action_payload
from margin_guard.recommendations import (
    CustomerHistory,
    Month,
    customer_history,
    recommendations_for,
)
from margin_guard.services import guard_evaluate, guard_policy_create
from tests.conftest import api_client
from tests.factories import ingest

D = Decimal
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def months(*figures: tuple[int, str, str | None]) -> list[Month]:
    """(events, cogs, margin %) per month, oldest first; the last is the month to date."""
    return [Month(START + timedelta(days=31 * i), events, D(cogs),
                  None if margin is None else D(margin))
            for i, (events, cogs, margin) in enumerate(figures)]


def history(**changes) -> CustomerHistory:
    values = dict(customer_id="c", alert_below_pct=D(20), downgrade_map={}, ai_cogs_by_model={},
                  months=months((10, "1", "50"), (10, "1", "50"), (10, "1", "50"),
                                (10, "1", "50"), (1, "0.1", "50")),
                  month_to_date_events=1)
    values.update(changes)
    return CustomerHistory(**values)


def kinds(h: CustomerHistory) -> list[str]:
    return [r.kind for r in recommendations_for(h)]


def test_nothing_to_recommend_for_a_healthy_history():
    assert kinds(history()) == []


def test_downgrade_model_from_half_the_ai_cost():
    at_half = history(downgrade_map={"gpt-4o": "gpt-4o-mini"},
                      ai_cogs_by_model={"gpt-4o": D("5"), "claude": D("5")})
    (rec,) = recommendations_for(at_half)  # ties go to the name that sorts last: gpt-4o
    assert rec.kind == "DOWNGRADE_MODEL"
    assert rec.figures == {"model": "gpt-4o", "toModel": "gpt-4o-mini", "sharePct": D("50.00"),
                           "aiCogsUsd": D("5.000000")}
    below = history(downgrade_map={"gpt-4o": "gpt-4o-mini"},
                    ai_cogs_by_model={"gpt-4o": D("4.99"), "claude": D("5.01")})
    assert kinds(below) == []  # claude leads, and has no downgrade
    unmapped = history(ai_cogs_by_model={"gpt-4o": D("9")})
    assert kinds(unmapped) == []


def test_overage_surcharge_from_twice_the_included_events():
    at_two = history(plan_name="Starter", flat_only_included_events=100,
                     month_to_date_events=200)
    (rec,) = recommendations_for(at_two)
    assert rec.kind == "ADD_OVERAGE_SURCHARGE"
    assert rec.figures["multiple"] == D("2.00") and rec.figures["includedEvents"] == 100
    assert kinds(history(plan_name="Starter", flat_only_included_events=100,
                         month_to_date_events=199)) == []


def test_move_to_plan_after_three_months_under_the_alert_floor():
    losing = months((10, "9", "50"), (10, "9", "19.99"), (10, "9", "10"), (10, "9", "-5"),
                    (1, "1", "0"))
    (rec,) = recommendations_for(history(months=losing, higher_plan="Enterprise annual",
                                         higher_tier="ENTERPRISE"))
    assert rec.kind == "MOVE_TO_PLAN"
    assert rec.figures["marginPcts"] == [D("19.99"), D("10.00"), D("-5.00")]
    assert "Move to Enterprise annual" in rec.text
    at_floor = months((10, "9", "50"), (10, "9", "20"), (10, "9", "10"), (10, "9", "-5"),
                      (1, "1", "0"))
    assert kinds(history(months=at_floor, higher_plan="E", higher_tier="PRO")) == []
    assert kinds(history(months=losing)) == []  # no higher plan to name


def test_renegotiate_when_cost_per_event_rose_more_than_half_in_three_months():
    rose = months((10, "1.00", "50"), (10, "1", "50"), (10, "1", "50"), (10, "1.51", "50"),
                  (1, "0.1", "50"))
    (rec,) = recommendations_for(history(months=rose))
    assert rec.kind == "RENEGOTIATE"
    assert rec.figures["increasePct"] == D("51.00")
    assert rec.figures["costPerEventBeforeUsd"] == D("0.100000")
    exactly_half = months((10, "1.00", "50"), (10, "1", "50"), (10, "1", "50"),
                          (10, "1.50", "50"), (1, "0.1", "50"))
    assert kinds(history(months=exactly_half)) == []


def test_every_rule_that_matches_is_listed_in_order():
    everything = history(
        downgrade_map={"gpt-4o": "gpt-4o-mini"}, ai_cogs_by_model={"gpt-4o": D("9")},
        plan_name="Starter", flat_only_included_events=10, month_to_date_events=40,
        months=months((10, "1", "5"), (10, "1", "5"), (10, "1", "5"), (10, "3", "5"),
                      (40, "1", "5")), higher_plan="Pro", higher_tier="PRO")
    assert kinds(everything) == ["DOWNGRADE_MODEL", "ADD_OVERAGE_SURCHARGE", "MOVE_TO_PLAN",
                                 "RENEGOTIATE"]


@pytest.mark.django_db(transaction=True)
def test_the_action_carries_what_the_history_says(store, tenant):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    this_month, _ = period_bounds("MONTHLY", now)
    last_month, _ = period_bounds("MONTHLY", this_month - timedelta(days=1))
    four_ago = last_month
    for _ in range(3):
        four_ago, _ = period_bounds("MONTHLY", four_ago - timedelta(days=1))
    customer = customer_create(tenant=tenant, external_id="cust_r", tier="FREE")
    starter = rate_plan_create(tenant=tenant, code="starter", name="Starter", components=[
        ComponentSpec(kind="FLAT_FEE", unit_price=D("10"), rating_events_per_period=2)])
    subscription_create(tenant=tenant, customer=customer, plan=starter,
                        starts_at=four_ago - timedelta(days=1))
    pro = rate_plan_create(tenant=tenant, code="pro", name="Pro monthly", components=[
        ComponentSpec(kind="PER_EVENT", unit_price=D("0.50"))])
    for n in range(2):  # the PRO tier's plan is the one to name
        subscription_create(tenant=tenant, plan=pro, starts_at=four_ago,
                            customer=customer_create(tenant=tenant, external_id=f"pro-{n}",
                                                     tier="PRO"))
    ingest(tenant, [
        *[{"eventId": f"old-{n}", "occurredAt": four_ago + timedelta(hours=1 + n),
           "customerId": "cust_r", "productId": "prod_chat", "model": "gpt-4o",
           "aiCogsUsd": "0.10"} for n in range(2)],
        *[{"eventId": f"last-{n}", "occurredAt": last_month + timedelta(hours=1 + n),
           "customerId": "cust_r", "productId": "prod_chat", "model": "gpt-4o",
           "aiCogsUsd": "0.30"} for n in range(2)],
        *[{"eventId": f"now-{n}", "occurredAt": now - timedelta(minutes=5),
           "customerId": "cust_r", "productId": "prod_chat", "model": "gpt-4o",
           "aiCogsUsd": "1.00", "revenueUsd": "1.02"} for n in range(4)]])
    policy = guard_policy_create(tenant=tenant, name="Free", scope="TIER", tier="FREE",
                                 mode="ENFORCE", min_events=1,
                                 downgrade_map={"gpt-4o": "gpt-4o-mini"})
    h = customer_history(tenant=tenant, customer_id="cust_r", product_id="", policy=policy,
                         now=now)
    assert h.ai_cogs_by_model == {"gpt-4o": D("4.00")}
    assert h.month_to_date_events == 4 and h.flat_only_included_events == 2
    assert (h.plan_name, h.higher_plan, h.higher_tier) == ("Starter", "Pro monthly", "PRO")
    assert h.months[0].cost_per_event == D("0.10") and h.months[-2].cost_per_event == D("0.30")
    result = guard_evaluate(tenant=tenant, customer_id="cust_r", product_id="prod_chat",
                            now=now)
    assert result.action.to_level == Level.THROTTLE  # margin 1.96%
    assert [r["kind"] for r in result.action.recommendations] == [
        "DOWNGRADE_MODEL", "ADD_OVERAGE_SURCHARGE", "RENEGOTIATE"]
    payload = action_payload(result.action)
    assert payload["recommendedAction"]["kind"] == "DOWNGRADE_MODEL"
    assert payload["recommendedAction"]["figures"]["sharePct"] == D("100.00")
    assert payload["recommendations"][2]["figures"]["increasePct"] == D("200.00")
    listed = api_client(tenant, "VIEWER").get("/api/v1/margin-guard/actions").json()
    assert listed["content"][0]["recommendations"][1]["figures"]["multiple"] == 2.0
