"""Celery tasks of exports: thin wrappers over the services."""
from celery import shared_task


@shared_task(name="exports.run_due")
def run_due() -> int:
    """Every minute: each enabled export schedule whose next run is due."""
    from exports.services import export_runs_due

    return export_runs_due()


@shared_task(name="exports.run")
def run(schedule_id: int, trigger: str = "API") -> int:
    """One run of one schedule (the API's and the console's "run now")."""
    from exports.models import ExportSchedule
    from exports.services import export_run

    return export_run(schedule=ExportSchedule.objects.get(pk=schedule_id), trigger=trigger).pk
