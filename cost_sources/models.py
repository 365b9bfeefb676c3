"""Cost sources (where a provider's bill comes from), their import runs, and the tenant's
reconciliation tolerance."""
from __future__ import annotations

from decimal import Decimal

from django.db import models

from aforo.models import Tenant
from aforo.money import money_field

MONEY = {"max_digits": 38, "decimal_places": 12}


class Kind(models.TextChoices):
    OPENAI_COSTS = "OPENAI_COSTS", "OpenAI Costs API"
    ANTHROPIC_COSTS = "ANTHROPIC_COSTS", "Anthropic cost report"
    AWS_CUR = "AWS_CUR", "AWS Cost and Usage Report (CSV)"
    FOCUS = "FOCUS", "FOCUS 1.x (CSV)"


class Mode(models.TextChoices):
    UPLOAD = "UPLOAD"
    POLL = "POLL"


class Schedule(models.TextChoices):
    HOURLY = "hourly"
    DAILY = "daily"


class CostSource(models.Model):
    """A stream of one provider's billed cost lines for a tenant."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="cost_sources")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.UPLOAD)
    base_url = models.CharField(max_length=500, blank=True)
    schedule = models.CharField(max_length=100, blank=True)
    # Fernet-encrypted (aforo/credentials.py); never returned, logged or shown.
    credentials_sealed = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"],
                                               name="cost_source_name_unique")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class CostImport(models.Model):
    """One import run of a source: a file uploaded or a poll. Its counters move while it runs
    (the progress of a long CUR), and it keeps the first thousand skipped rows' reasons."""

    class Status(models.TextChoices):
        RUNNING = "RUNNING"
        SUCCEEDED = "SUCCEEDED"
        FAILED = "FAILED"

    source = models.ForeignKey(CostSource, on_delete=models.CASCADE, related_name="imports")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    file_name = models.CharField(max_length=300, blank=True)
    rows_read = models.BigIntegerField(default=0)
    rows_imported = models.BigIntegerField(default=0)
    rows_skipped = models.BigIntegerField(default=0)
    skipped = models.JSONField(default=list, blank=True)
    lines_changed = models.BigIntegerField(default=0)
    total_usd = models.DecimalField(default=Decimal(0), **MONEY)
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True)  # exclusive
    error = models.TextField(blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]


class ReconciliationSettings(models.Model):
    """How far metered cost may stray from the bill and still count as MATCHED."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE,
                                  related_name="reconciliation_settings")
    tolerance_pct = models.DecimalField(max_digits=7, decimal_places=2, default=Decimal("1.00"))


class Allocation(models.Model):
    """Cost that events do not carry (an AWS account's infrastructure, a provider's gap), spread
    onto a period's events as ledger entries of its own (cost_sources/allocations.py)."""

    class By(models.TextChoices):
        EVENTS = "EVENTS"
        TOKENS = "TOKENS"
        COGS = "COGS"

    class Bucket(models.TextChoices):
        AI = "AI"
        INFRA = "INFRA"
        FEE = "FEE"
        UNCLASSIFIED = "UNCLASSIFIED"

    class Status(models.TextChoices):
        APPLYING = "APPLYING"
        APPLIED = "APPLIED"
        FAILED = "FAILED"
        REVERSED = "REVERSED"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="allocations")
    source = models.ForeignKey(CostSource, on_delete=models.PROTECT, related_name="allocations")
    description = models.CharField(max_length=300, blank=True)
    first_day = models.DateField()
    last_day = models.DateField()  # included (UTC days)
    amount_usd = money_field()
    by = models.CharField(max_length=10, choices=By.choices)
    bucket = models.CharField(max_length=20, choices=Bucket.choices)
    product_ids = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.APPLYING)
    events = models.BigIntegerField(default=0)  # events that received a share
    error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    reversed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"allocation {self.pk}: {self.amount_usd} {self.by} → {self.bucket}"
