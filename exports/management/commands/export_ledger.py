"""manage.py export_ledger SLUG --from --to [--format] [--gzip] [--output]: a tenant's ledger
entries of a period to a file (or stdout), in chunks, with progress on stderr."""
from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from aforo.errors import DomainError
from aforo.ledger.query import LedgerQuery
from aforo.models import Tenant
from aforo.periods import PeriodError, period_parse
from exports import files, queries


class Command(BaseCommand):
    help = "Export a tenant's ledger entries of a period as CSV, NDJSON or Parquet."

    def add_arguments(self, parser) -> None:
        parser.add_argument("tenant", help="The tenant's slug")
        parser.add_argument("--from", dest="first", help="First day, YYYY-MM-DD")
        parser.add_argument("--to", dest="last", help="Last day, included")
        parser.add_argument("--format", default="csv", choices=["csv", "ndjson", "parquet"])
        parser.add_argument("--gzip", action="store_true")
        parser.add_argument("--output", "-o", default="-", help="A file path, or - for stdout")
        parser.add_argument("--chunk-rows", type=int, default=queries.CHUNK_ROWS)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant {options['tenant']!r}.")
        try:
            period = period_parse(options["first"], options["last"], time_zone=tenant.time_zone)
        except PeriodError as exc:
            raise CommandError(f"--{exc.field}: {exc.message}") from None
        if options["chunk_rows"] < 1:
            raise CommandError("--chunk-rows must be at least 1.")
        total = int(LedgerQuery(tenant.slug).period(period).expressions("count() AS n")
                    .one()["n"])
        bar = tqdm(total=total, unit="entries", desc="Exporting", file=sys.stderr,
                   disable=options["no_progress"])
        done = 0

        def progress(written: int) -> None:
            nonlocal done
            bar.update(written - done)
            done = written

        try:
            export = files.ledger_file(tenant=tenant, period=period,
                                       fmt=files.export_format(options["format"]),
                                       gzip=options["gzip"], chunk_rows=options["chunk_rows"],
                                       progress=progress)
            out = sys.stdout.buffer if options["output"] == "-" else open(  # noqa: SIM115
                options["output"], "wb")
            try:
                for piece in export.content:
                    out.write(piece)
            finally:
                if out is not sys.stdout.buffer:
                    out.close()
        except DomainError as exc:
            raise CommandError(exc.message) from None
        finally:
            bar.close()
        where = "stdout" if options["output"] == "-" else options["output"]
        self.stderr.write(f"Exported {done} entries of {tenant.slug} "
                          f"({period.first} to {period.last}) to {where}.")
