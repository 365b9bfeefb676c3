"""manage.py export_run SCHEDULE_ID: one run of an export schedule, now (what the periodic job
does when the schedule is due)."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from aforo.errors import DomainError
from exports.models import ExportRun, ExportSchedule
from exports.services import export_run


class Command(BaseCommand):
    help = "Run an export schedule now, from its watermark to what the ledger holds."

    def add_arguments(self, parser) -> None:
        parser.add_argument("schedule_id", type=int)
        parser.add_argument("--pause-ms", type=int, default=0,
                            help="Pause between chunks (spreads the load on the destination)")

    def handle(self, *args, **options) -> None:
        schedule = ExportSchedule.objects.filter(pk=options["schedule_id"]).first()
        if schedule is None:
            raise CommandError(f"No export schedule {options['schedule_id']}.")
        try:
            run = export_run(schedule=schedule, trigger=ExportRun.Trigger.COMMAND,
                             pause_s=options["pause_ms"] / 1000)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Run {run.pk}: {run.state}, {run.rows_delivered} entries in "
                          f"{run.chunks_delivered} chunks. {run.error}".strip())
        if run.state != ExportRun.State.SUCCEEDED:
            raise CommandError(run.error or run.state)
