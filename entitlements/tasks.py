"""Celery tasks of entitlements: thin wrappers over the services."""
from celery import shared_task

from entitlements.services import credits_refresh, expiries_write, intervals_top_up


@shared_task(name="entitlements.expire_grants")
def expire_grants() -> int:
    """Every minute: an EXPIRY entry for what is left of each grant past its second."""
    return expiries_write()


@shared_task(name="entitlements.recurring_top_ups")
def recurring_top_ups() -> int:
    """Every minute: INTERVAL top-ups whose interval has come round (once per interval)."""
    return intervals_top_up()


@shared_task(name="entitlements.refresh")
def refresh() -> int:
    """Every minute: republish every customer's quota and wallet state (period rollover, a
    cold cache)."""
    return credits_refresh()
