"""Celery tasks of intelligence: thin wrappers over the detectors."""
from datetime import datetime, timezone

from celery import shared_task


@shared_task(name="intelligence.detect")
def detect() -> int:
    """Hourly: every detector for every tenant over the last complete hours and week, then the
    forecasts served to requests (intelligence.forecast) refitted."""
    from intelligence.detectors import detectors_run_all
    from intelligence.forecast import forecasts_refresh_all

    now = datetime.now(timezone.utc)
    new = detectors_run_all(now=now)
    forecasts_refresh_all(now=now)
    return new
