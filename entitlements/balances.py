"""A wallet's balance at an instant, exactly: its lots minus its debits minus what expired.

Debits consume, at the moment they are recorded, the live expiring grants soonest-expiring
first, then the wallet's other credits (which may go below zero: usage that arrived after the
wallet ran out is still recorded). A grant counts from the second its top-up was recorded until
the second it expires; what is left of it then expires. Between two consecutive lot starts or
ends the set of live lots does not change, so the debits of that interval can be consumed as one
sum: the reads need only the debit total before each boundary, not each debit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from entitlements.config import Lot


@dataclass(frozen=True)
class Balance:
    balance: int                                 # nano-credits, expired grants excluded
    expired: dict[str, int] = field(default_factory=dict)   # lot id → what expired of it
    expiring: tuple[tuple[float, int], ...] = ()  # live grants: (expires at, what is left)
    granted: int = 0
    paid: int = 0
    consumed: int = 0


def boundaries_of(lots: tuple[Lot, ...], at: datetime) -> list[datetime]:
    points = {lot.start for lot in lots if lot.start <= at}
    points |= {lot.end for lot in lots if lot.end is not None and lot.end <= at}
    return sorted(points)


def balance_at(lots: tuple[Lot, ...], debited_before: list[int], boundaries: list[datetime],
               debited_total: int) -> Balance:
    """The balance after every debit (`debited_total`), where `debited_before[i]` is what was
    debited before `boundaries[i]` (both positive nano-credits)."""
    pool = 0
    live: list[list] = []  # [end, remaining, lot id]
    expired: dict[str, int] = {}

    def consume(amount: int) -> None:
        nonlocal pool
        for lot in sorted(live, key=lambda x: x[0]):
            if amount <= 0:
                break
            take = min(lot[1], amount)
            lot[1] -= take
            amount -= take
        pool -= amount

    previous = 0
    for i, point in enumerate(boundaries):
        consume(debited_before[i] - previous)
        previous = debited_before[i]
        for lot in [x for x in live if x[0] == point]:
            expired[lot[2]] = lot[1]
            live.remove(lot)
        for lot in (x for x in lots if x.start == point):
            if lot.end is None:
                pool += lot.amount
            elif lot.end > point:
                live.append([lot.end, lot.amount, lot.lot_id])
    consume(debited_total - previous)
    granted = sum(lot.amount for lot in lots if lot.lot_id.endswith("g"))  # config.lots_of
    paid = sum(lot.amount for lot in lots) - granted
    return Balance(pool + sum(x[1] for x in live), expired,
                   tuple((x[0].timestamp(), x[1]) for x in live), granted, paid, debited_total)
