"""Billing reads: usage per customer and product for invoicing, revenue status of events,
plans and subscriptions, and what a customer's plan rated."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Q

from aforo.ledger.query import COGS_SUM, COST, ORIGINAL_COST, REVENUE, LedgerQuery
from billing.models import RatePlan, Subscription


def usage_by_customer_product(tenant_id: str, *, start: datetime, end: datetime,
                              customer_ids: Iterable[str]) -> list[dict]:
    """Metered usage and COGS of [start, end) per customer and product (COST entries), with
    the keys the invoicing reads (events, input_tokens, output_tokens, tool_calls,
    reasoning_steps, cogs_usd)."""
    customers = tuple(sorted(set(customer_ids)))
    if not customers:
        return []
    rows = (LedgerQuery(tenant_id).between(start, end).where_sql(COST)
            .where_in("customer_id", customers)
            .dimensions("customer_id", "product_id")
            .measures("events", "tokens_in", "tokens_out", "tool_calls_n", "reasoning_steps_n",
                      "cogs")
            .group_by("customer_id", "product_id").having("events > 0")
            .order_by("customer_id", "product_id").fetch())
    return [{"customer_id": r["customer_id"], "product_id": r["product_id"],
             "events": r["events"], "input_tokens": r["tokens_in"],
             "output_tokens": r["tokens_out"], "tool_calls": r["tool_calls_n"],
             "reasoning_steps": r["reasoning_steps_n"], "cogs_usd": r["cogs"]} for r in rows]


def revenue_status(tenant_id: str, event_ids: Iterable[str]) -> dict[str, str]:
    """SETTLED for events holding revenue from an invoice, else SETTLING.

    An event whose every REVENUE entry was reversed (its invoice voided) is SETTLING again.
    """
    ids = tuple(sorted(set(event_ids)))
    if not ids:
        return {}
    rows = (LedgerQuery(tenant_id).dimensions("event_id")
            .expressions(f"{REVENUE_STATUS_SQL} AS status").where_sql(REVENUE)
            .where_in("event_id", ids).group_by("event_id").fetch())
    settled = {row["event_id"] for row in rows if row["status"] == "SETTLED"}
    return {i: ("SETTLED" if i in settled else "SETTLING") for i in ids}


# revenueStatus as a column expression over an event's ledger entries (GROUP BY event_id), for
# readers that build their own per-event ledger query (the COGS transactions list): every
# REVERSAL undoes one earlier ORIGINAL REVENUE entry.
REVENUE_STATUS_SQL = (
    "if(countIf(entry_type = 'REVENUE' AND entry_kind = 'ORIGINAL') > "
    "countIf(entry_type = 'REVENUE' AND entry_kind = 'REVERSAL'), 'SETTLED', 'SETTLING')"
)


# --- plans and subscriptions (relational reads) ---------------------------------------------

class SubscriptionStatus:
    SCHEDULED = "SCHEDULED"
    ACTIVE = "ACTIVE"
    ENDED = "ENDED"
    ALL = (SCHEDULED, ACTIVE, ENDED)


def subscription_status(subscription, now: datetime) -> str:
    if subscription.starts_at > now:
        return SubscriptionStatus.SCHEDULED
    if subscription.ends_at is not None and subscription.ends_at <= now:
        return SubscriptionStatus.ENDED
    return SubscriptionStatus.ACTIVE


def _in_force(now: datetime):
    return Q(starts_at__lte=now) & (Q(ends_at__isnull=True) | Q(ends_at__gt=now))


def plans_listed(tenant, *, now: datetime):
    """The tenant's plans with their components and tiers, and how many customers are on each
    now (`active_subscriptions`) and ever were (`subscription_count`)."""
    in_force = Q(subscriptions__starts_at__lte=now) & (
        Q(subscriptions__ends_at__isnull=True) | Q(subscriptions__ends_at__gt=now))
    return (RatePlan.objects.filter(tenant=tenant)
            .annotate(subscription_count=Count("subscriptions", distinct=True),
                      active_subscriptions=Count("subscriptions", filter=in_force,
                                                 distinct=True))
            .prefetch_related("components__tiers"))


def subscriptions_listed(tenant, *, now: datetime, customer_id: str | None = None,
                         plan_code: str | None = None, status: str | None = None):
    """The tenant's subscriptions, newest start first, filtered by customer, plan and status."""
    found = (Subscription.objects.filter(tenant=tenant).select_related("customer", "plan")
             .order_by("-starts_at", "-pk"))
    if customer_id:
        found = found.filter(customer__external_id=customer_id)
    if plan_code:
        found = found.filter(plan__code=plan_code)
    if status == SubscriptionStatus.SCHEDULED:
        found = found.filter(starts_at__gt=now)
    elif status == SubscriptionStatus.ACTIVE:
        found = found.filter(_in_force(now))
    elif status == SubscriptionStatus.ENDED:
        found = found.filter(Q(ends_at__lte=now))
    return found


def subscriptions_in_force(tenant, *, customer_ids: Iterable[str], at: datetime) -> dict:
    """customer external id -> the subscription in force at `at`, for the customers given."""
    found = (Subscription.objects.filter(tenant=tenant, customer__external_id__in=list(
        customer_ids)).filter(_in_force(at)).select_related("customer", "plan")
             .order_by("starts_at"))
    return {s.customer.external_id: s for s in found}


def rated_usage(tenant_id: str, *, customer_id: str, start: datetime,
                end: datetime | None) -> dict:
    """Events, COGS and rated revenue (what the plan gave each event at ingest) of a customer's
    COST entries with occurred_at in [start, end) (end None: no end)."""
    query = (LedgerQuery(tenant_id).where_sql(COST).where(customer_id=customer_id)
             .where_sql("occurred_at >= %(since)s", since=start))
    if end is not None:
        query = query.where_sql("occurred_at < %(until)s", until=end)
    row = query.measures("events", "cogs").expressions(
        "sum(rated_revenue_usd) AS rated_total").one()
    # :TRICKY: sum() over no rows is 0 (not NULL) on both engines; Decimal(38, 9) comes back.
    return {"events": int(row["events"] or 0), "cogs_usd": row["cogs"] or Decimal(0),
            "rated_revenue_usd": row["rated_total"] or Decimal(0)}


def rated_events(tenant_id: str, *, customer_id: str, since: datetime,
                 limit: int = 20) -> list[dict]:
    """A customer's latest events since `since`, newest first, each with its COGS and the
    rated revenue the ledger holds for it (its original entry plus any repricing)."""
    since_filter = {"customer_id": customer_id}
    latest = (LedgerQuery(tenant_id).where_sql(ORIGINAL_COST).where(**since_filter)
              .where_sql("occurred_at >= %(since)s", since=since).dimensions("event_id")
              .order_by("occurred_at DESC", "event_id").limit(limit).fetch())
    ids = tuple(row["event_id"] for row in latest)
    if not ids:
        return []
    # :TRICKY: aliases must not equal column names (ClickHouse would read them in WHERE).
    return (LedgerQuery(tenant_id).where_sql(COST).where(**since_filter)
            .where_sql("occurred_at >= %(since)s", since=since).where_in("event_id", ids)
            .dimensions("event_id")
            .expressions("any(occurred_at) AS event_at", "any(product_id) AS event_product",
                         f"sum({COGS_SUM}) AS event_cogs", "sum(rated_revenue_usd) AS event_rated")
            .group_by("event_id").order_by("event_at DESC", "event_id").fetch())
