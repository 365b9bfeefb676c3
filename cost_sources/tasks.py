"""Celery tasks of cost sources: the hourly sweep of POLL sources that are due, one task per
source."""
from datetime import datetime, timezone

from celery import shared_task


@shared_task(name="cost_sources.poll_due")
def poll_due() -> int:
    """Hourly: queue a poll of every POLL source whose schedule has come round."""
    from cost_sources.polling import due_sources

    due = due_sources(datetime.now(timezone.utc))
    for source in due:
        poll_source.delay(source.pk)
    return len(due)


@shared_task(name="cost_sources.poll_source")
def poll_source(source_id: int) -> int | None:
    """Poll one source; a failure is recorded as a FAILED import run (and logged)."""
    import logging

    from aforo.errors import DomainError
    from cost_sources.models import CostSource
    from cost_sources.polling import cost_source_poll

    source = CostSource.objects.filter(pk=source_id).first()
    if source is None:
        return None
    try:
        return cost_source_poll(source=source).pk
    except DomainError as exc:
        logging.getLogger(__name__).warning("cost source %s: poll failed: %s", source_id,
                                            exc.message)
        return None


@shared_task(name="cost_sources.import_file")
def import_file(run_id: int, path: str) -> int | None:
    """Import a large upload kept by cost_import_queue into its RUNNING run."""
    from cost_sources.imports import cost_import_spooled

    run = cost_import_spooled(run_id=run_id, path=path)
    return run.pk if run else None
