"""Apply the ClickHouse event-store migrations only."""
from django.core.management.base import BaseCommand

from aforo.eventstore.migrate import migrate_eventstore


class Command(BaseCommand):
    help = "Apply pending event-store (ClickHouse) migrations; a no-op when none are pending."

    def handle(self, *args, **options):
        applied = migrate_eventstore(log=self.stdout.write)
        self.stdout.write(f"{len(applied)} event store migration(s) applied.")
