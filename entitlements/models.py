"""Entitlements (a customer's limit on a feature per period), wallets of prepaid credits, and
their top-ups (each a lot of paid and granted credits); the credit entries themselves live in
the event store's credit ledger (`entitlements.ledger`)."""
from __future__ import annotations

from django.db import models

from aforo.models import Tenant
from aforo.money import money_field, pct_field, quantity_field


class Entitlement(models.Model):
    class Feature(models.TextChoices):
        EVENTS = "EVENTS"
        INPUT_TOKENS = "INPUT_TOKENS"
        OUTPUT_TOKENS = "OUTPUT_TOKENS"
        TOKENS = "TOKENS"
        TOOL_CALLS = "TOOL_CALLS"
        REASONING_STEPS = "REASONING_STEPS"
        COGS_USD = "COGS_USD"
        REVENUE_USD = "REVENUE_USD"

    class Period(models.TextChoices):
        DAILY = "DAILY"
        WEEKLY = "WEEKLY"
        MONTHLY = "MONTHLY"
        NONE = "NONE"

    class Overage(models.TextChoices):
        BLOCK = "BLOCK"
        THROTTLE = "THROTTLE"
        ALLOW = "ALLOW"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    customer_id = models.CharField(max_length=200)
    feature = models.CharField(max_length=20, choices=Feature.choices)
    product_id = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=200, blank=True)
    period = models.CharField(max_length=8, choices=Period.choices, default=Period.MONTHLY)
    limit = quantity_field()
    warn_at_pct = pct_field(default=80)
    overage = models.CharField(max_length=8, choices=Overage.choices, default=Overage.BLOCK)
    grace_pct = pct_field(default=0)
    downgrade_model = models.CharField(max_length=200, blank=True,
                                       help_text="THROTTLE: the model calls are switched to.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["customer_id", "feature", "id"]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.feature} ≤ {self.limit}/{self.period}"


# What an entitlement or a burn rate may meter, as plain strings (API choices, messages).
FEATURES = tuple(Entitlement.Feature.values)


class Wallet(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    customer_id = models.CharField(max_length=200)
    name = models.CharField(max_length=200)
    credit_value_usd = money_field()
    priority = models.PositiveIntegerField(default=1)
    # [{feature, productId?, model?, creditsPerUnit}] (creditsPerUnit a decimal string)
    burn_rates = models.JSONField(default=list, blank=True)
    # [{trigger INTERVAL|THRESHOLD, interval?, thresholdCredits?, method FIXED|TARGET, credits}]
    recurring_top_ups = models.JSONField(default=list, blank=True)
    low_balance_credits = quantity_field(null=True, blank=True,
                                         help_text="Alert under this balance.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["customer_id", "priority", "id"]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.name}"

    @property
    def ledger_id(self) -> str:
        """The wallet's id in the credit ledger."""
        return f"w{self.pk}"


class TopUp(models.Model):
    """One top-up: a lot of paid credits (never expire) and granted ones (optionally expire)."""

    class Source(models.TextChoices):
        MANUAL = "MANUAL"
        INTERVAL = "INTERVAL"
        THRESHOLD = "THRESHOLD"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    wallet = models.ForeignKey(Wallet, on_delete=models.CASCADE, related_name="top_ups")
    paid_credits = quantity_field(default=0)
    granted_credits = quantity_field(default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=200)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.MANUAL)
    recorded_at = models.DateTimeField()
    expiry_written = models.BooleanField(default=False)

    class Meta:
        ordering = ["recorded_at", "id"]
        constraints = [models.UniqueConstraint(fields=["wallet", "idempotency_key"],
                                               name="one_top_up_per_idempotency_key")]
