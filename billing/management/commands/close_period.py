"""manage.py close_period --period 2026-10 [--tenant SLUG] [--draft]: invoice a closed month."""
from __future__ import annotations

from datetime import datetime, timezone

from django.core.management.base import BaseCommand, CommandError

from aforo.models import Tenant
from billing.invoicing import invoices_generate, month_bounds


class Command(BaseCommand):
    help = "Generate every subscribed customer's invoice for a closed month."

    def add_arguments(self, parser):
        parser.add_argument("--period", required=True, help="The month, YYYY-MM.")
        parser.add_argument("--tenant", help="A tenant slug; default every tenant.")
        parser.add_argument("--draft", action="store_true",
                            help="Leave the invoices as DRAFT instead of finalizing them.")

    def handle(self, *args, period: str, tenant=None, draft=False, **options):
        try:
            start, end = month_bounds(period)
        except ValueError:
            raise CommandError("--period must look like 2026-10") from None
        if end > datetime.now(timezone.utc):
            raise CommandError(f"{period} is not closed yet.")
        tenants = Tenant.objects.all()
        if tenant:
            tenants = tenants.filter(slug=tenant)
        for t in tenants:
            invoices = invoices_generate(tenant=t, period_start=start, period_end=end,
                                         finalize=not draft)
            total = sum((inv.total_usd for inv in invoices), 0)
            self.stdout.write(f"{t.slug}: {len(invoices)} invoices for {period}, {total} USD")
