"""Import a provider's cost file into a cost source, printing progress as rows are read."""
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from aforo.errors import DomainError
from cost_sources.models import CostImport, CostSource
from cost_sources.services import cost_import_file


class Command(BaseCommand):
    help = "Import a cost file: FILE --source ID (a source's id, as the API lists it)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="An OpenAI costs or Anthropic cost report JSON, an "
                                         "AWS CUR CSV or a FOCUS CSV, as the source's kind.")
        parser.add_argument("--source", type=int, required=True, help="The cost source's id.")

    def handle(self, *args, **options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"No file {path}.")
        source = CostSource.objects.select_related("tenant").filter(pk=options["source"]).first()
        if source is None:
            raise CommandError(f"No cost source {options['source']}.")
        started = time.monotonic()
        self.stdout.write(f"Importing {path} into {source.name} ({source.kind}, tenant "
                          f"{source.tenant.slug}), run starting...")

        def progress(run: CostImport) -> None:
            if run.status == CostImport.Status.RUNNING:
                rate = run.rows_read / max(time.monotonic() - started, 1e-9)
                self.stdout.write(f"  {run.rows_read:,} rows read ({rate:,.0f} rows/s)")
                self.stdout.flush()

        try:
            with open(path, "rb") as stream:
                run = cost_import_file(source=source, stream=stream, file_name=path.name,
                                       progress=progress)
        except DomainError as exc:
            raise CommandError(f"Import failed: {exc.message}") from None
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"Import {run.pk} {run.status} in {elapsed:.1f} s: {run.rows_read:,} rows read, "
            f"{run.rows_imported:,} imported, {run.rows_skipped:,} skipped, "
            f"{run.lines_changed:,} lines changed; total ${run.total_usd.normalize():f} for "
            f"{run.period_start} to {run.period_end} (exclusive).")
        for skip in run.skipped[:20]:
            self.stdout.write(f"  skipped row {skip['row']}: {skip['reason']}")
        if run.rows_skipped > 20:
            self.stdout.write(f"  ... and {run.rows_skipped - 20:,} more skipped rows")
