"""Import LiteLLM's model_prices_and_context_window.json as prices from a date."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from aforo.commands import instant_option, tenant_option
from ingestion.prices import litellm_import, litellm_parse


class Command(BaseCommand):
    help = ("Import a LiteLLM price map: import_prices FILE --effective-from DATE "
            "[--tenant SLUG]; without --tenant the prices are the platform catalog.")

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--effective-from", required=True, help="YYYY-MM-DD (UTC)")
        parser.add_argument("--tenant", help="Only for this tenant.")

    def handle(self, *args, **options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        start = instant_option(options["effective_from"],
                               "--effective-from must be a date like 2026-01-01")
        tenant = tenant_option(options["tenant"]) if options["tenant"] else None
        try:
            document = litellm_parse(path.read_bytes())
        except ValueError as exc:
            raise CommandError(f"{path} is not JSON: {exc}") from None
        report = litellm_import(tenant=tenant, document=document, effective_from=start)
        self.stdout.write(f"Imported {report.imported} model prices from {start:%Y-%m-%d} "
                          f"({len(report.skipped)} entries without token prices skipped).")
