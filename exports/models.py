"""Export schedules and their runs: where a tenant's ledger entries go (a signed webhook, a
PostgreSQL table or a ClickHouse table), how often, and the watermark each run starts from."""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from django.db import models

from aforo.credentials import CredentialsUnavailable, credentials_open, credentials_seal
from aforo.models import Tenant

MASK = "***"


def dsn_split(kind: str, destination: str) -> tuple[str, str]:
    """(the destination with a DSN's password replaced by ***, that password sealed): what a
    schedule stores. A webhook URL, or a DSN without a password, is stored as it is and needs
    no key; a password needs AFORO_CREDENTIALS_KEY (aforo.credentials)."""
    if kind == DestinationKind.WEBHOOK:
        return destination, ""
    parts = urlsplit(destination)
    if parts.password is None:
        return destination, ""
    netloc = parts.netloc.replace(f":{parts.password}@", f":{MASK}@", 1)
    try:
        sealed = credentials_seal(parts.password)
    except CredentialsUnavailable as exc:
        raise CredentialsUnavailable(f"A DSN's password is stored encrypted. {exc.message}",
                                     field="destination") from None
    return urlunsplit(parts._replace(netloc=netloc)), sealed


def dsn_joined(shown: str, sealed: str) -> str:
    """The DSN to connect with: the stored one with its sealed password put back."""
    if not sealed:
        return shown
    parts = urlsplit(shown)
    netloc = parts.netloc.replace(f":{MASK}@", f":{credentials_open(sealed)}@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class DestinationKind(models.TextChoices):
    WEBHOOK = "WEBHOOK"  # signed NDJSON chunks, POSTed
    POSTGRES = "POSTGRES"  # a table, by DSN, keyed by entry_id
    CLICKHOUSE = "CLICKHOUSE"  # a table, by DSN, keyed by entry_id


class ExportSchedule(models.Model):
    """Deliver every ledger entry once, in recording order, from a watermark on recorded_at
    that only moves past entries the destination holds."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=DestinationKind.choices)
    # A webhook URL, or a DSN (postgres://..., clickhouse://...). A DSN's password is never
    # stored here: it reads postgres://user:***@host/db, and the password is Fernet-encrypted
    # in destination_password_sealed (aforo/credentials.py); dsn() puts it back at send time.
    destination = models.CharField(max_length=1000)
    destination_password_sealed = models.TextField(blank=True, editable=False)
    table_name = models.CharField(max_length=63, blank=True)
    signing_secret = models.CharField(max_length=64, blank=True)
    interval_minutes = models.PositiveIntegerField(default=60)
    # Entries recorded in the last lag_seconds are left for the next run: a group commit in
    # flight may still write rows stamped a moment ago.
    lag_seconds = models.PositiveIntegerField(default=120)
    chunk_rows = models.PositiveIntegerField(default=5000)
    enabled = models.BooleanField(default=True)
    # The last entry delivered, in (recorded_at, entry_id) order; none yet: from the start.
    watermark_recorded_at = models.DateTimeField(null=True, blank=True)
    watermark_entry_id = models.CharField(max_length=255, blank=True)
    next_run_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"],
                                               name="export_schedule_name_unique")]
        indexes = [models.Index(fields=["enabled", "next_run_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def set_destination(self, destination: str) -> None:
        self.destination, self.destination_password_sealed = dsn_split(self.kind, destination)

    def dsn(self) -> str:
        """The destination with its password, for the delivery only: never shown or logged."""
        return dsn_joined(self.destination, self.destination_password_sealed)


class ExportRun(models.Model):
    class State(models.TextChoices):
        RUNNING = "RUNNING"
        SUCCEEDED = "SUCCEEDED"
        FAILED = "FAILED"
        INTERRUPTED = "INTERRUPTED"  # its process died; the next run took over

    class Trigger(models.TextChoices):
        SCHEDULE = "SCHEDULE"
        API = "API"
        CONSOLE = "CONSOLE"
        COMMAND = "COMMAND"

    schedule = models.ForeignKey(ExportSchedule, on_delete=models.CASCADE, related_name="runs")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=12, choices=State.choices, default=State.RUNNING)
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # A running run renews its lease after every chunk; one whose lease ran out is dead.
    lease_until = models.DateTimeField()
    # Entries recorded before this instant (the run's start minus the schedule's lag).
    recorded_before = models.DateTimeField()
    rows_delivered = models.PositiveBigIntegerField(default=0)
    chunks_delivered = models.PositiveIntegerField(default=0)
    watermark_from = models.CharField(max_length=300, blank=True)
    watermark_to = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["schedule", "state"])]
