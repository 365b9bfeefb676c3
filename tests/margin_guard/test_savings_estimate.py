"""Estimated savings per hour divide the loss by the hours of the window actually measured."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from aforo.periods import window_bounds
from margin_guard.models import GuardAction, Level
from margin_guard.notify import estimated_savings_per_hour

AT = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def action(window: str, cost: str, revenue: str) -> GuardAction:
    start, end = window_bounds(window, AT)
    return GuardAction(customer_id="c", from_level=Level.ALERT, to_level=Level.BLOCK,
                       mode="ENFORCE", cost_usd=Decimal(cost), revenue_usd=Decimal(revenue),
                       events_evaluated=10, reason="", actor="system", at=AT,
                       window_start=start, window_end=end)


@pytest.mark.parametrize("window, cost, revenue, per_hour", [
    ("24h", "34", "10", "1.00"),     # 24 $ lost over 24 hours
    ("7d", "200", "32", "1.00"),     # 168 $ over 168 hours, not 7.00
    ("PTD", "488", "20", "1.00"),    # Nov 1 to Nov 20 12:00 is 468 hours
])
def test_savings_per_hour_follow_the_policy_window(window, cost, revenue, per_hour):
    assert estimated_savings_per_hour(action(window, cost, revenue)) == Decimal(per_hour)


def test_no_estimate_without_a_loss_or_a_window():
    assert estimated_savings_per_hour(action("24h", "5", "10")) is None
    unknown = action("24h", "34", "10")
    unknown.window_start = None
    assert estimated_savings_per_hour(unknown) is None
    assert window_bounds("7d", AT)[1] - window_bounds("7d", AT)[0] == timedelta(days=7)
