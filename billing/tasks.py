"""Billing jobs: nightly attribution and the monthly close, thin wrappers over services."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from celery import shared_task

from aforo.models import Tenant

log = logging.getLogger(__name__)

LOOKBACK_DAYS = 92


@shared_task(name="billing.attribute_revenue_all")
def attribute_revenue_all(lookback_days: int = LOOKBACK_DAYS) -> int:
    """Nightly: an attribution run per tenant over the invoices of the last `lookback_days`
    (by period end, import or void); returns the number of runs."""
    from billing.attribution import attribution_run

    since = datetime.now(timezone.utc) - timedelta(days=lookback_days)
    runs = 0
    for tenant in Tenant.objects.all():
        try:
            attribution_run(tenant=tenant, trigger="NIGHTLY", changed_since=since)
            runs += 1
        except Exception:  # one tenant's failure (recorded on its run) must not stop the rest
            log.exception("nightly attribution failed for tenant %s", tenant.slug)
    return runs


@shared_task(name="billing.close_previous_month")
def close_previous_month() -> int:
    """Monthly: invoice last month for every subscribed customer of every tenant."""
    from billing.invoicing import invoices_generate, month_bounds

    last_month = datetime.now(timezone.utc).replace(day=1) - timedelta(days=1)
    start, end = month_bounds(f"{last_month:%Y-%m}")
    count = 0
    for tenant in Tenant.objects.all():
        try:
            count += len(invoices_generate(tenant=tenant, period_start=start, period_end=end))
        except Exception:  # the next tenants still get their invoices
            log.exception("closing %s failed for tenant %s", start.strftime("%Y-%m"), tenant.slug)
    return count
