"""Margin Guard reads: the dry evaluation a policy form previews (nothing is written)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from aforo.ledger.query import LedgerQuery
from aforo.models import Customer, Tenant
from aforo.periods import window_bounds
from cogs.expected import scope_margin
from margin_guard.ladder import next_level
from margin_guard.models import GuardPolicy, GuardState, Level
from margin_guard.services import PRODUCT_GRAIN, floors_of, judged_margin, policy_for

PREVIEW_MAX_SCOPES = 200  # the busiest scopes of the window; the form says when it cut


@dataclass(frozen=True)
class PreviewRow:
    customer_id: str
    product_id: str
    current_level: int
    level: int
    margin_pct: Decimal | None
    cost_usd: Decimal
    revenue_usd: Decimal
    events: int
    reason: str
    held_by: str  # the name of a more specific policy that governs this scope instead, or ""

    @property
    def level_label(self) -> str:
        return Level(self.level).label

    @property
    def current_label(self) -> str:
        return Level(self.current_level).label


@dataclass(frozen=True)
class Preview:
    rows: list[PreviewRow]
    window_start: datetime
    window_end: datetime
    truncated: bool

    @property
    def counts(self) -> list[tuple[str, int]]:
        """How many scopes this policy would hold at each level (those it governs)."""
        return [(level.label, sum(1 for r in self.rows if r.level == level and not r.held_by))
                for level in Level]


def _scopes(policy: GuardPolicy, tenant: Tenant, start: datetime,
            end: datetime) -> tuple[list[tuple[str, str]], bool]:
    """The (customer, product) scopes with events in the window that the policy covers, the
    busiest first."""
    by_product = policy.scope in PRODUCT_GRAIN
    columns = ("customer_id", "product_id") if by_product else ("customer_id",)
    query = (LedgerQuery(tenant.slug).dimensions(*columns).measures("events")
             .between(start, end)
             .where_sql("customer_id != ''").group_by(*columns).having("events > 0")
             .order_by("events DESC", *columns).limit(PREVIEW_MAX_SCOPES + 1))
    if policy.customer_id:
        query = query.where(customer_id=policy.customer_id)
    if policy.product_id:
        query = query.where(product_id=policy.product_id)
    if policy.scope == GuardPolicy.Scope.TIER:
        tiered = list(Customer.objects.filter(tenant=tenant, tier=policy.tier)
                      .values_list("external_id", flat=True))
        if not tiered:
            return [], False
        query = query.where_in("customer_id", tiered)
    rows = query.fetch()
    scopes = [(r["customer_id"], r.get("product_id", "") if by_product else "") for r in rows]
    return scopes[:PREVIEW_MAX_SCOPES], len(scopes) > PREVIEW_MAX_SCOPES


def guard_policy_preview(*, tenant: Tenant, policy: GuardPolicy, now: datetime) -> Preview:
    """Which level the (unsaved or changed) policy would put each scope it covers at now: the
    same measurement and ladder as guard_evaluate, from each scope's current level, with
    nothing written. A scope a more specific saved policy governs is named, not judged."""
    start, end = window_bounds(policy.window, now, tenant.time_zone)
    scopes, truncated = _scopes(policy, tenant, start, end)
    states = {(s.customer_id, s.product_id): s.level
              for s in GuardState.objects.filter(tenant=tenant)}
    specificity = GuardPolicy.SPECIFICITY.index(policy.scope)
    rows = []
    for customer_id, product_id in scopes:
        governing = policy_for(tenant, customer_id, product_id or policy.product_id)
        held_by = ""
        if governing is not None and governing.pk != policy.pk and \
                GuardPolicy.SPECIFICITY.index(governing.scope) < specificity:
            held_by = governing.name
        measured = scope_margin(tenant.slug, start=start, end=end + timedelta(seconds=1),
                                customer_id=customer_id, product_id=product_id or None)
        judged, note = judged_margin(measured, policy)
        current = states.get((customer_id, product_id), Level.NONE)
        level, reason = next_level(current, judged.margin_pct, floors_of(policy),
                                   cost=judged.cogs_usd, events=judged.events)
        rows.append(PreviewRow(
            customer_id=customer_id, product_id=product_id, current_level=current,
            level=level, margin_pct=judged.margin_pct, cost_usd=judged.cogs_usd,
            revenue_usd=judged.expected_revenue_usd, events=judged.events,
            reason=note + reason, held_by=held_by))
    rows.sort(key=lambda r: (bool(r.held_by), -r.level, r.customer_id, r.product_id))
    return Preview(rows=rows, window_start=start, window_end=end, truncated=truncated)
