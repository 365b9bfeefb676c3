"""Celery tasks of intelligence: thin wrappers over the detectors."""
from datetime import datetime, timezone

from celery import shared_task


@shared_task(name="intelligence.detect")
def detect() -> int:
    """Hourly: every detector for every tenant over the last complete hours and week."""
    from intelligence.detectors import detectors_run_all

    return detectors_run_all(now=datetime.now(timezone.utc))
