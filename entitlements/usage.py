"""An entitlement's usage for its period: the ledger's own sums (the dashboard's figures) over
the period in the tenant's time zone, and what follows from them (remaining, projection,
status, whether it is enforced)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from aforo.ledger.query import LedgerQuery
from aforo.money import ledger
from aforo.periods import period_bounds
from cogs.expected import scope_margin
from entitlements.config import EntitlementRule

HUNDRED = Decimal(100)
ZERO = Decimal(0)
BEGINNING = datetime(1970, 1, 1, tzinfo=timezone.utc)
FOREVER = datetime(2100, 1, 1, tzinfo=timezone.utc)
# What each feature sums (measures of the ledger query builder).
FEATURE_MEASURES = {
    "EVENTS": ("events",), "INPUT_TOKENS": ("tokens_in",), "OUTPUT_TOKENS": ("tokens_out",),
    "TOKENS": ("tokens_in", "tokens_out"), "TOOL_CALLS": ("tool_calls_n",),
    "REASONING_STEPS": ("reasoning_steps_n",), "COGS_USD": ("cogs",),
}
MEASURE_NAMES = tuple(dict.fromkeys(m for ms in FEATURE_MEASURES.values() for m in ms))
# The same features over one COST entry's columns (what an event burns, entitlements.burn).
FEATURE_COLUMNS = {
    "EVENTS": ("event_count",), "INPUT_TOKENS": ("input_tokens",),
    "OUTPUT_TOKENS": ("output_tokens",), "TOKENS": ("input_tokens", "output_tokens"),
    "TOOL_CALLS": ("tool_calls",), "REASONING_STEPS": ("reasoning_steps",),
    "COGS_USD": ("ai_cogs_usd", "infra_cogs_usd", "fee_cogs_usd", "unclassified_cogs_usd"),
    "REVENUE_USD": ("carried_revenue_usd", "rated_revenue_usd"),
}


def entitlement_period(period: str, now: datetime, tz: str) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the DAILY, WEEKLY (Monday first), MONTHLY or NONE period."""
    if period == "NONE":
        return BEGINNING, FOREVER
    return period_bounds(period, now, tz)


@dataclass(frozen=True)
class EntitlementUsage:
    rule: EntitlementRule
    usage: Decimal
    period_start: datetime
    period_end: datetime
    projected: Decimal

    @property
    def remaining(self) -> Decimal:
        return max(ZERO, self.rule.limit - self.usage)

    @property
    def overage(self) -> Decimal:
        return max(ZERO, self.usage - self.rule.limit)

    @property
    def used_pct(self) -> Decimal | None:
        return self.usage / self.rule.limit * HUNDRED if self.rule.limit else None

    @property
    def status(self) -> str:
        if self.usage >= self.rule.limit:
            return "EXCEEDED"
        if self.used_pct is not None and self.used_pct >= self.rule.warn_at_pct:
            return "WARNING"
        return "OK"

    @property
    def enforced(self) -> bool:
        """Past the limit and its grace: BLOCK and THROTTLE act from here."""
        return self.usage >= self.rule.limit * (1 + self.rule.grace_pct / HUNDRED)


def _matches(rule: EntitlementRule, row: dict) -> bool:
    return ((not rule.product_id or row["product_id"] == rule.product_id)
            and (not rule.model or row["model"] == rule.model))


def usages(tenant_slug: str, tz: str, rules: list[EntitlementRule],
           now: datetime) -> list[EntitlementUsage]:
    """Each rule's usage so far in its current period (one ledger read per period kind)."""
    by_period: dict[str, list[EntitlementRule]] = {}
    for rule in rules:
        by_period.setdefault(rule.period, []).append(rule)
    out = []
    for period, group in by_period.items():
        start, end = entitlement_period(period, now, tz)
        counted = [r for r in group if r.feature != "REVENUE_USD"]
        rows = []
        if counted:
            rows = (LedgerQuery(tenant_slug).between(start, end, tz)
                    .where_in("customer_id", sorted({r.customer_id for r in counted}))
                    .dimensions("customer_id", "product_id", "model")
                    .measures(*MEASURE_NAMES)
                    .group_by("customer_id", "product_id", "model").fetch())
        for rule in group:
            if rule.feature == "REVENUE_USD":
                usage = scope_margin(tenant_slug, start=start, end=end,
                                     customer_id=rule.customer_id,
                                     product_id=rule.product_id or None,
                                     model=rule.model or None).expected_revenue_usd
            else:
                usage = Decimal(sum(
                    (Decimal(row[m] or 0) for row in rows
                     if row["customer_id"] == rule.customer_id and _matches(rule, row)
                     for m in FEATURE_MEASURES[rule.feature]), ZERO))
            elapsed = (min(now, end) - start).total_seconds()
            projected = usage if period == "NONE" or elapsed <= 0 else ledger(
                usage * Decimal((end - start).total_seconds()) / Decimal(elapsed))
            out.append(EntitlementUsage(rule, usage, start, end, projected))
    return out
