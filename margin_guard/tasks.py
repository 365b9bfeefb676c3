"""Celery tasks of Margin Guard: thin wrappers over the services."""
from datetime import datetime, timezone

from celery import shared_task

from margin_guard.services import guard_sweep


@shared_task(name="margin_guard.sweep")
def sweep() -> int:
    """Every minute: rolling windows move on, so held levels may deepen or lift."""
    return guard_sweep(now=datetime.now(timezone.utc))
