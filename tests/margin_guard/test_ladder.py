"""The evaluation ladder: immediate escalation, recovery only past floor + buffer, min volume."""
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from margin_guard.ladder import Floors, next_level, raw_level
from margin_guard.models import Level

FLOORS = Floors(alert_below=D(20), throttle_below=D(10), block_below=D(0),
                recovery_buffer=D(5), min_events=20)


def test_raw_level_follows_the_three_floors():
    assert raw_level(D("25"), FLOORS, cost=D(1)) == Level.NONE
    assert raw_level(D("19.99"), FLOORS, cost=D(1)) == Level.ALERT
    assert raw_level(D("9.5"), FLOORS, cost=D(1)) == Level.THROTTLE
    assert raw_level(D("-0.01"), FLOORS, cost=D(1)) == Level.BLOCK
    assert raw_level(D("20"), FLOORS, cost=D(1)) == Level.NONE  # "below" is strict


def test_no_revenue_with_cost_is_the_worst_margin_and_nothing_without_cost():
    assert raw_level(None, FLOORS, cost=D("0.01")) == Level.BLOCK
    assert raw_level(None, FLOORS, cost=D(0)) == Level.NONE


def test_escalation_is_immediate_even_past_levels():
    level, reason = next_level(Level.NONE, D("-5"), FLOORS, cost=D(1), events=100)
    assert level == Level.BLOCK and "BLOCK floor" in reason


def test_recovery_needs_the_buffer():
    # THROTTLE holds at 12% (floor 10 + buffer 5 = 15 not cleared)
    assert next_level(Level.THROTTLE, D("12"), FLOORS, cost=D(1), events=100)[0] \
        == Level.THROTTLE
    # at 15% THROTTLE lifts to ALERT (the ALERT floor is 20: 15 is still below it)
    assert next_level(Level.THROTTLE, D("15"), FLOORS, cost=D(1), events=100)[0] == Level.ALERT
    # at 30% every level lifts
    assert next_level(Level.BLOCK, D("30"), FLOORS, cost=D(1), events=100)[0] == Level.NONE
    # at 24.9% ALERT holds (20 + 5 not cleared)
    assert next_level(Level.ALERT, D("24.9"), FLOORS, cost=D(1), events=100)[0] == Level.ALERT


def test_below_the_minimum_volume_nothing_changes():
    assert next_level(Level.NONE, D("-50"), FLOORS, cost=D(1), events=19)[0] == Level.NONE
    assert next_level(Level.BLOCK, D("90"), FLOORS, cost=D(1), events=0)[0] == Level.BLOCK


@given(current=st.sampled_from(list(Level)),
       margin=st.decimals(min_value=-200, max_value=200, places=2))
def test_the_ladder_never_holds_a_level_milder_than_the_margin_calls_for(current, margin):
    level, _ = next_level(current, margin, FLOORS, cost=D(1), events=100)
    assert level >= raw_level(margin, FLOORS, cost=D(1))
    # and it only ever lifts to a level whose floor + buffer the margin has cleared
    if level < current:
        assert margin >= FLOORS.threshold(level + 1) + FLOORS.recovery_buffer
