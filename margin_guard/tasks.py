"""Celery tasks of Margin Guard: thin wrappers over the services."""
from datetime import datetime, timezone

from celery import shared_task

from margin_guard.services import guard_sweep


@shared_task(name="margin_guard.sweep")
def sweep() -> int:
    """Every minute: rolling windows move on, so held levels may deepen or lift."""
    return guard_sweep(now=datetime.now(timezone.utc))


@shared_task(name="margin_guard.daily_summary")
def daily_summary() -> int:
    """Each morning: the accounts that hit a floor in the past day, by email."""
    from margin_guard.services import daily_summary_send

    return daily_summary_send(now=datetime.now(timezone.utc))
