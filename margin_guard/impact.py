"""The impact report: the net profit the guard recovered, with its method shown.

- Throttled calls: events that report `requestedModel` different from the model used. The
  saving is what the requested model would have cost for the same tokens (the rate card price
  in force on that day) minus the AI cost actually incurred.
- Blocked calls: every BLOCK decision is counted per customer, feature and day; the saving is
  that count times the customer's average cost per call of that feature (or model) in the
  window. Nobody knows what a blocked call would have cost, so this is labelled an estimate.
"""
from __future__ import annotations

import threading
import time as clock
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from aforo.ledger.query import COST, LedgerQuery
from aforo.models import Tenant
from aforo.money import usd
from aforo.shared_cache import cache_count, shared_cache
from ingestion.costing import Usage, ai_cost, money
from ingestion.rate_cards import rate_card_for

ZERO = Decimal(0)
BLOCK_COUNT_TTL = 40 * 24 * 3600


def _blocked_key(tenant_slug: str, customer_id: str, feature: str, day: date) -> str:
    return f"aforo:guard-blocked:{tenant_slug}:{customer_id}:{feature}:{day:%Y%m%d}"


FLUSH_EVERY_S = 1.0
_pending: Counter[str] = Counter()
_pending_lock = threading.Lock()
_last_flush = [0.0]


def blocked_count(tenant_slug: str, customer_id: str, feature: str) -> None:
    """Count one BLOCK decision. On the decision path, so counts gather in this process and
    reach the cache at most once a second (a count can lag by that second, never be lost
    while the process lives)."""
    key = _blocked_key(tenant_slug, customer_id, feature, datetime.now(timezone.utc).date())
    with _pending_lock:
        _pending[key] += 1
    if clock.monotonic() - _last_flush[0] >= FLUSH_EVERY_S:
        blocked_counts_flush()


def blocked_counts_flush() -> None:
    with _pending_lock:
        counts = dict(_pending)
        _pending.clear()
        _last_flush[0] = clock.monotonic()
    for key, count in counts.items():
        cache_count(key, count, BLOCK_COUNT_TTL)


@dataclass
class ImpactReport:
    throttled_calls: int = 0
    throttled_requested_cost_usd: Decimal = ZERO
    throttled_actual_cost_usd: Decimal = ZERO
    unpriced_requested_models: set[str] = field(default_factory=set)
    blocked_calls: int = 0
    blocked_estimate_usd: Decimal = ZERO

    @property
    def throttle_savings_usd(self) -> Decimal:
        return self.throttled_requested_cost_usd - self.throttled_actual_cost_usd

    @property
    def net_recovered_usd(self) -> Decimal:
        return self.throttle_savings_usd + self.blocked_estimate_usd

    def as_json(self) -> dict:
        return {
            "netRecoveredUsd": usd(self.net_recovered_usd),
            "throttled": {
                "calls": self.throttled_calls,
                "requestedModelCostUsd": usd(self.throttled_requested_cost_usd),
                "actualCostUsd": usd(self.throttled_actual_cost_usd),
                "savingsUsd": usd(self.throttle_savings_usd),
                "unpricedRequestedModels": sorted(self.unpriced_requested_models),
                "method": "requested model's rate-card price for the same tokens, on the "
                          "event's day, minus the AI cost incurred",
            },
            "blocked": {
                "calls": self.blocked_calls,
                "estimatedSavingsUsd": usd(self.blocked_estimate_usd),
                "estimate": True,
                "method": "blocked decisions × the customer's average cost per call of that "
                          "feature in the window",
            },
        }


def impact_report(*, tenant: Tenant, start: date, end: date) -> ImpactReport:
    """The report for the days [start, end] (UTC)."""
    blocked_counts_flush()  # this process's latest counts, at least
    report = ImpactReport()
    since = datetime.combine(start, time.min, tzinfo=timezone.utc)
    until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=timezone.utc)
    card = rate_card_for(tenant)
    rows = (LedgerQuery(tenant.slug).between(since, until).where_sql(COST)
            .where_sql("requested_model != '' AND requested_model != model")
            .dimensions("day", "provider", "requested_model")
            .measures("events", "tokens_in", "tokens_out", "tokens_cached", "tokens_reasoning",
                      "cogs_ai")
            .group_by("day", "provider", "requested_model").fetch())
    for row in rows:
        noon = datetime.combine(row["day"], time(12), tzinfo=timezone.utc)
        requested, calls = row["requested_model"], row["events"]
        price = card.model_price(row["provider"], requested, noon)
        if price is None:
            report.unpriced_requested_models.add(requested)
            continue
        usage = Usage(provider=row["provider"], model=requested, product_id="",
                      source_type="", occurred_at=noon, input_tokens=row["tokens_in"],
                      output_tokens=row["tokens_out"], cached_input_tokens=row["tokens_cached"],
                      reasoning_tokens=row["tokens_reasoning"])
        # ai_cost adds the per-call price once; a group holds `calls` calls
        per_call_extra = price.per_call * (calls - 1)
        report.throttled_calls += calls
        report.throttled_requested_cost_usd += money(ai_cost(price, usage) + per_call_extra)
        report.throttled_actual_cost_usd += row["cogs_ai"]
    _blocked(tenant, start, end, since, until, report)
    return report


def _blocked(tenant: Tenant, start: date, end: date, since: datetime, until: datetime,
             report: ImpactReport) -> None:
    from margin_guard.models import GuardPolicy, GuardState

    features = {f for policy in GuardPolicy.objects.filter(tenant=tenant)
                for f in (policy.premium_features or [])}
    customers = set(GuardState.objects.filter(tenant=tenant).values_list("customer_id",
                                                                          flat=True))
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    for customer_id in customers:
        for feature in features:
            keys = [_blocked_key(tenant.slug, customer_id, feature, day) for day in days]
            count = sum(shared_cache().get_many(keys).values())
            if not count:
                continue
            average = (LedgerQuery(tenant.slug).between(since, until).where_sql(COST)
                       .where(customer_id=customer_id)
                       .where_sql("(tool_name = %(feature)s OR model = %(feature)s)",
                                  feature=feature)
                       .measures("cogs", "events").one())
            report.blocked_calls += count
            if average["events"]:
                report.blocked_estimate_usd += money(
                    average["cogs"] / average["events"] * count)
