"""The demo's Margin Guard story: a FREE-tier policy in ENFORCE and a customer throttled at 8%
that recovered and was restored, so the timeline and the impact report show real figures."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from aforo.demo import STORY_CUSTOMER, demo_guard_story, demo_rate_card
from margin_guard.impact import impact_report
from margin_guard.models import GuardAction, GuardPolicy, GuardState, Level

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_story_throttles_recovers_and_shows_in_the_impact(store, tenant):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    demo_rate_card(tenant, start=now - timedelta(days=2))
    GuardPolicy.objects.create(tenant=tenant, name="Demo margin floors", scope="TENANT",
                               mode="DRY_RUN")  # as demo_guard leaves it
    told = demo_guard_story(tenant, now=now)
    assert (told["throttled"], told["lifted"]) == (1, 1)
    policy = GuardPolicy.objects.get(pk=told["policy"])
    assert (policy.scope, policy.tier, policy.mode) == ("TIER", "FREE", "ENFORCE")
    throttle, lift = GuardAction.objects.filter(
        tenant=tenant, customer_id=STORY_CUSTOMER).order_by("at")
    assert (throttle.from_level, throttle.to_level) == (Level.NONE, Level.THROTTLE)
    assert throttle.margin_pct == Decimal("8") and throttle.mode == "ENFORCE"
    assert throttle.recommendations[0]["kind"] == "DOWNGRADE_MODEL"
    assert (lift.from_level, lift.to_level) == (Level.THROTTLE, Level.NONE)
    assert lift.margin_pct == Decimal("14")  # the product page's "recovered to 14%"
    assert "recovered" in lift.reason
    assert GuardState.objects.get(tenant=tenant, customer_id=STORY_CUSTOMER).level == Level.NONE

    report = impact_report(tenant=tenant, start=now - timedelta(hours=24),
                           end=now + timedelta(seconds=1))
    levers = {lever.lever: lever for lever in report.lever_rows}
    assert levers["MODEL_SWITCH"].calls == 4 and levers["MODEL_SWITCH"].recovered_usd > 0
    # five rate-limited calls at the customer's average gpt-4o call in the window, $0.92
    assert levers["RATE_LIMIT"].calls == 5
    assert levers["RATE_LIMIT"].recovered_usd == Decimal("4.60")
    assert report.roi_multiple is not None and report.product_cost_usd > 0
    (account,) = [a for a in report.accounts if a.customer_id == STORY_CUSTOMER]
    assert account.before.margin_pct == Decimal("8")
    assert account.after.margin_pct > account.before.margin_pct
    assert demo_guard_story(tenant, now=now) == {}  # once
