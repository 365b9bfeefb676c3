"""The evaluation ladder: which level a margin calls for, with a recovery buffer on the way up.

Pure functions of numbers, so every rule of the ladder is tested directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from margin_guard.models import Level


@dataclass(frozen=True)
class Floors:
    alert_below: Decimal
    throttle_below: Decimal
    block_below: Decimal
    recovery_buffer: Decimal
    min_events: int

    def threshold(self, level: int) -> Decimal:
        return {Level.ALERT: self.alert_below, Level.THROTTLE: self.throttle_below,
                Level.BLOCK: self.block_below}[level]


def raw_level(margin_pct: Decimal | None, floors: Floors, *, cost: Decimal) -> int:
    """The deepest level whose floor the margin is below.

    No revenue with cost is the worst margin there is (null, never infinite, but below every
    floor); no revenue and no cost calls for nothing.
    """
    if margin_pct is None:
        return Level.BLOCK if cost > 0 else Level.NONE
    for level in (Level.BLOCK, Level.THROTTLE, Level.ALERT):
        if margin_pct < floors.threshold(level):
            return level
    return Level.NONE


def next_level(current: int, margin_pct: Decimal | None, floors: Floors, *, cost: Decimal,
               events: int) -> tuple[int, str]:
    """The level to hold and why. Escalation is immediate; a level lifts only once margin
    clears its floor by the recovery buffer; below the minimum volume nothing changes."""
    if events < floors.min_events:
        return current, f"{events} events, below the minimum of {floors.min_events}"
    target = raw_level(margin_pct, floors, cost=cost)
    shown = "none (no revenue)" if margin_pct is None else f"{margin_pct:.2f}%"
    if target >= current:
        if target == current:
            return current, f"margin {shown} holds {Level(current).label}"
        return target, (f"margin {shown} is below the {Level(target).label} floor of "
                        f"{floors.threshold(target)}%")
    # Recovering: step down only past levels whose floor + buffer the margin clears.
    level = current
    while level > target and margin_pct is not None \
            and margin_pct >= floors.threshold(level) + floors.recovery_buffer:
        level -= 1
    if level == current:
        return current, (f"margin {shown} has not cleared the {Level(current).label} floor of "
                         f"{floors.threshold(current)}% by the {floors.recovery_buffer}-point "
                         "recovery buffer")
    return level, (f"margin {shown} recovered past the {Level(current).label} floor + "
                   f"{floors.recovery_buffer}-point buffer")
