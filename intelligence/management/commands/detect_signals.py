"""manage.py detect_signals [--tenant SLUG] [--now ISO] [--kind KIND]: run the detectors now
(the hourly job does the same), e.g. after a backfill."""
from __future__ import annotations

from datetime import datetime, timezone

from django.core.management.base import BaseCommand

from aforo.commands import instant_option, tenant_option
from aforo.models import Tenant
from intelligence.detectors import DETECTORS, detectors_run


class Command(BaseCommand):
    help = "Run the intelligence detectors for one tenant or all; prints the new signals."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", help="a tenant slug (default: every tenant)")
        parser.add_argument("--now", help="judge as of this ISO-8601 instant (default: now)")
        parser.add_argument("--kind", action="append", choices=list(DETECTORS),
                            help="only these detectors (repeatable)")

    def handle(self, *args, **options) -> None:
        now = (instant_option(options["now"], "--now must be an ISO-8601 instant.")
               if options["now"] else datetime.now(timezone.utc))
        tenants = ([tenant_option(options["tenant"])] if options["tenant"]
                   else Tenant.objects.all())
        kinds = tuple(options["kind"]) if options["kind"] else None
        new = 0
        for tenant in tenants:
            for signal in detectors_run(tenant=tenant, now=now, kinds=kinds):
                self.stdout.write(f"{signal.kind} {signal.title}")
                new += 1
        self.stdout.write(f"{new} new signals")
