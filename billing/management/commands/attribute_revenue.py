"""manage.py attribute_revenue [--tenant SLUG] [--invoice ID ...]: attribution runs now."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from aforo.models import Tenant
from billing.attribution import attribution_run


class Command(BaseCommand):
    help = "Attribute finalized invoices' revenue to their events (and reverse voided ones)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="A tenant slug; default every tenant.")
        parser.add_argument("--invoice", action="append", dest="invoices",
                            help="Only this invoice id (repeatable).")
        parser.add_argument("--batch-size", type=int, default=1000,
                            help="Invoices per SQL batch (the progress bar's step).")

    def handle(self, *args, tenant=None, invoices=None, batch_size=1000, **options):
        tenants = Tenant.objects.all()
        if tenant:
            tenants = tenants.filter(slug=tenant)
            if not tenants.exists():
                raise CommandError(f"No tenant {tenant!r}.")
        for t in tenants:
            with tqdm(desc=f"attributing {t.slug}", unit="batch", total=None,
                      disable=options.get("verbosity", 1) == 0) as bar:
                def progress(done: int, total: int, bar=bar) -> None:
                    bar.total = total
                    bar.update(done - bar.n)

                run = attribution_run(tenant=t, trigger="COMMAND", invoice_ids=invoices,
                                      progress=progress, batch_size=batch_size)
            self.stdout.write(
                f"{t.slug}: run {run.run_id} {run.status}: {run.lines_matched}/{run.lines} lines "
                f"matched, {run.events} event allocations, {run.attributed_usd} USD attributed, "
                f"{run.unattributed_usd} USD unattributed, {run.entries_written} entries "
                f"written in {run.duration_ms} ms")
