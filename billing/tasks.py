"""Billing jobs: nightly attribution and the monthly close, thin wrappers over services."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from celery import shared_task

from aforo.models import Tenant

LOOKBACK_DAYS = 92


@shared_task(name="billing.attribute_revenue_all")
def attribute_revenue_all(lookback_days: int = LOOKBACK_DAYS) -> int:
    """Nightly: an attribution run per tenant over the invoices of the last `lookback_days`
    (by period end, import or void); returns the number of runs."""
    from billing.attribution import attribution_run

    since = datetime.now(timezone.utc) - timedelta(days=lookback_days)
    runs = 0
    for tenant in Tenant.objects.all():
        attribution_run(tenant=tenant, trigger="NIGHTLY", changed_since=since)
        runs += 1
    return runs


@shared_task(name="billing.close_previous_month")
def close_previous_month() -> int:
    """Monthly: invoice last month for every subscribed customer of every tenant."""
    from billing.invoicing import invoices_generate, month_bounds

    last_month = datetime.now(timezone.utc).replace(day=1) - timedelta(days=1)
    start, end = month_bounds(f"{last_month:%Y-%m}")
    count = 0
    for tenant in Tenant.objects.all():
        count += len(invoices_generate(tenant=tenant, period_start=start, period_end=end))
    return count
