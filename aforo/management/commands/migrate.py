"""`migrate` migrates the relational database, then applies the event-store migrations."""
from django.core.management.commands.migrate import Command as DjangoMigrate

from aforo.eventstore.migrate import migrate_eventstore


class Command(DjangoMigrate):
    help = DjangoMigrate.help + " Then applies the ClickHouse event-store migrations."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--skip-eventstore", action="store_true",
                            help="Only migrate the relational database.")

    def handle(self, *args, **options):
        super().handle(*args, **options)
        if options["skip_eventstore"] or options.get("plan"):
            return
        verbose = options["verbosity"] >= 1
        if verbose:
            self.stdout.write(self.style.MIGRATE_HEADING("Event store migrations:"))
        applied = migrate_eventstore(log=self.stdout.write if verbose else (lambda _m: None))
        if verbose and not applied:
            self.stdout.write("  No event store migrations to apply.")
