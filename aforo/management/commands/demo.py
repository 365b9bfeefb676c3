"""Set up the demo tenant (seeding it once, with a progress bar) and print how to log in."""
from datetime import datetime, timedelta, timezone

from django.core.management.base import BaseCommand
from tqdm import tqdm

from aforo.demo import (
    demo_credits_story,
    demo_event_count,
    demo_guard,
    demo_guard_story,
    demo_seed,
    demo_settle,
    demo_tenant_ensure,
)


class Command(BaseCommand):
    help = "Create the demo tenant, login and token; seed ~90 days of events the first time."

    def add_arguments(self, parser):
        parser.add_argument("--events", type=int, default=210_000)
        parser.add_argument("--host", default="127.0.0.1:8000")

    def handle(self, *args, **options):
        creds = demo_tenant_ensure()
        existing = demo_event_count(creds.tenant)
        if existing:
            self.stdout.write(f"Demo tenant already seeded ({existing:,} events); reusing it.")
        else:
            now = datetime.now(timezone.utc).replace(microsecond=0)
            with tqdm(total=options["events"], unit="ev", desc="Seeding demo events") as bar:
                demo_seed(creds.tenant, events=options["events"], progress=bar.update, now=now)
            demo_settle(creds.tenant, start=now - timedelta(days=90), now=now,
                        say=self.stdout.write)
            evaluated = demo_guard(creds.tenant, now=now)
            self.stdout.write(f"Margin Guard (dry run) evaluated {evaluated} customers.")
            demo_guard_story(creds.tenant, now=now)
            self.stdout.write("Margin Guard story: the Free tier in ENFORCE; Northwind Labs "
                              "throttled at 8% margin six hours ago, recovered and restored.")
            demo_credits_story(creds.tenant, now=now)
            self.stdout.write("Entitlements & Credits: Acme Corp at 77% of its monthly token "
                              "quota, TechStart with 120 prepaid credits left; the live "
                              "traffic moves both.")
        host = options["host"]
        self.stdout.write(self.style.SUCCESS("\nAforo is ready."))
        self.stdout.write(f"  Console:  http://{host}/console/   login {creds.username} / "
                          f"{creds.password}")
        self.stdout.write(f"  Live:     http://{host}/console/cogs/transactions/?live=1   "
                          "(make demo sends a few events every few seconds)")
        self.stdout.write(f"  API docs: http://{host}/api/docs/")
        self.stdout.write(f"  Admin:    http://{host}/admin/")
        self.stdout.write(f"  API:      curl -H 'Authorization: Bearer {creds.token.raw}' "
                          f"-H 'X-Tenant-Id: {creds.tenant.slug}' "
                          f"http://{host}/api/v1/customers")
