"""Rate cards: effective-dated model prices, infrastructure cost rules and gateway fee rules."""
from __future__ import annotations

from django.db import models

from aforo.models import Tenant

MONEY = {"max_digits": 24, "decimal_places": 12}


class ModelPrice(models.Model):
    """A provider+model's token prices from `effective_from` on, USD per 1M tokens.

    A row with no tenant is the platform catalog (e.g. a LiteLLM import) that every tenant
    falls back to; a tenant's own row for the same model wins.
    """

    class Source(models.TextChoices):
        MANUAL = "MANUAL"
        LITELLM = "LITELLM"

    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE,
                               related_name="+")
    provider = models.CharField(max_length=100, help_text="Matched case-insensitively.")
    model = models.CharField(max_length=200)
    effective_from = models.DateTimeField()
    input_per_1m = models.DecimalField(**MONEY)
    cached_input_per_1m = models.DecimalField(**MONEY, null=True, blank=True,
                                              help_text="Empty: cached tokens cost input price.")
    output_per_1m = models.DecimalField(**MONEY)
    reasoning_per_1m = models.DecimalField(**MONEY, null=True, blank=True,
                                           help_text="Empty: reasoning tokens cost output price.")
    cache_write_input_per_1m = models.DecimalField(
        **MONEY, null=True, blank=True,
        help_text="Empty: tokens written to the prompt cache cost the input price.")
    per_call = models.DecimalField(**MONEY, default=0)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.MANUAL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(
            fields=["tenant", "provider", "model", "effective_from"], name="one_price_per_start",
            nulls_distinct=False)]
        indexes = [models.Index(fields=["provider", "model", "effective_from"])]
        ordering = ["provider", "model", "-effective_from"]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model} from {self.effective_from:%Y-%m-%d}"


class RateCardRule(models.Model):
    """A tenant's rate-card rule from a moment on (its scope and amounts in the concrete rule)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    effective_from = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True


class InfraCostRule(RateCardRule):
    """Infrastructure cost added to every event of a product (blank product: every product)."""

    product_id = models.CharField(max_length=200, blank=True)
    per_event_usd = models.DecimalField(**MONEY, default=0)
    per_1k_tokens_usd = models.DecimalField(**MONEY, default=0)

    class Meta:
        ordering = ["product_id", "-effective_from"]

    def __str__(self) -> str:
        return f"infra {self.product_id or '*'} from {self.effective_from:%Y-%m-%d}"


class GatewayFeeRule(RateCardRule):
    """Gateway fees for events of a source type (blank: every source type)."""

    source_type = models.CharField(max_length=100, blank=True)
    per_call_usd = models.DecimalField(**MONEY, default=0)
    pct_of_ai_cost = models.DecimalField(max_digits=9, decimal_places=4, default=0)

    class Meta:
        ordering = ["source_type", "-effective_from"]

    def __str__(self) -> str:
        return f"fee {self.source_type or '*'} from {self.effective_from:%Y-%m-%d}"


class OtlpSettings(models.Model):
    """Which span or resource attributes name the customer and the product of a GenAI span
    that reaches POST /v1/traces (the defaults when a tenant has no row)."""

    DEFAULT_CUSTOMER = "aforo.customer_id"
    DEFAULT_PRODUCT = "aforo.product_id"

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="otlp_settings")
    customer_attribute = models.CharField(max_length=200, default=DEFAULT_CUSTOMER,
                                          help_text="e.g. user.id or enduser.id")
    product_attribute = models.CharField(max_length=200, default=DEFAULT_PRODUCT)

    class Meta:
        verbose_name_plural = "OTLP settings"

    def __str__(self) -> str:
        return f"OTLP attributes for {self.tenant}"
