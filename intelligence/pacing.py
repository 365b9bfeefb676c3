"""What QUOTA_PACING projects: subjects with a limit, usage so far and a period, from sources
registered here. Budgets are a source today; entitlements register theirs when they exist
(`pacing_source_register("entitlements", their_subjects)`), and the detector needs no change.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from aforo.models import Tenant


@dataclass(frozen=True)
class PacingSubject:
    """A limit over a period and what is used of it so far."""

    subject: str        # stable and unique in the tenant: "budget:12", "entitlement:7"
    name: str           # what a person calls it
    unit: str           # COGS_USD for budgets; an entitlement's feature (EVENTS, TOKENS...)
    limit: Decimal
    used: Decimal
    period_start: datetime
    period_end: datetime
    customer_id: str = ""
    product_id: str = ""

    def projected(self, now: datetime) -> Decimal | None:
        """Usage at the period's end at the pace so far (None before the period starts)."""
        elapsed = (min(now, self.period_end) - self.period_start).total_seconds()
        if elapsed <= 0:
            return None
        total = (self.period_end - self.period_start).total_seconds()
        return self.used * Decimal(total) / Decimal(elapsed)

    def elapsed_pct(self, now: datetime) -> Decimal:
        total = (self.period_end - self.period_start).total_seconds()
        elapsed = (min(now, self.period_end) - self.period_start).total_seconds()
        return Decimal(max(0.0, elapsed)) / Decimal(total) * 100 if total > 0 else Decimal(0)


PacingSource = Callable[[Tenant, datetime], Iterable[PacingSubject]]
_sources: dict[str, PacingSource] = {}


def pacing_source_register(name: str, source: PacingSource) -> None:
    """Add (or replace) a source of pacing subjects under a name."""
    _sources[name] = source


def pacing_subjects(tenant: Tenant, now: datetime) -> list[PacingSubject]:
    out: list[PacingSubject] = []
    for source in list(_sources.values()):
        out.extend(source(tenant, now))
    return out


def budget_subjects(tenant: Tenant, now: datetime) -> Iterable[PacingSubject]:
    """Every cost budget of the tenant: its spend this period against its cap."""
    from budgets.models import CostBudget
    from budgets.services import budget_statuses

    budgets = CostBudget.objects.filter(tenant=tenant).select_related("tenant")
    for state in budget_statuses(budgets, now=now):  # one ledger read for all of them
        budget = state.budget
        yield PacingSubject(
            subject=f"budget:{budget.pk}", name=f"Budget {budget.name}", unit="COGS_USD",
            limit=budget.cap_usd, used=state.spent_usd, period_start=state.period_start,
            period_end=state.period_end, customer_id=budget.customer_id,
            product_id=budget.product_id)
