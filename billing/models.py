"""Rate plans, subscriptions, invoices and attribution runs (the relational side of revenue)."""
from __future__ import annotations

import uuid

from django.db import models

from aforo.models import Customer, TenantScoped

MONEY = {"max_digits": 24, "decimal_places": 9}
RATE = {"max_digits": 24, "decimal_places": 12}


class Unit(models.TextChoices):
    """What an invoice line is allocated by (API.md), plus COGS for generated markup lines."""

    EVENTS = "EVENTS"
    INPUT_TOKENS = "INPUT_TOKENS"
    OUTPUT_TOKENS = "OUTPUT_TOKENS"
    TOKENS = "TOKENS"
    TOOL_CALLS = "TOOL_CALLS"
    REASONING_STEPS = "REASONING_STEPS"
    FLAT = "FLAT"
    COGS = "COGS"


class RatePlan(TenantScoped):
    """A price list customers subscribe to; its components add up to what an event costs them."""

    code = models.CharField(max_length=100)
    name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "code"],
                                               name="rate_plan_code_per_tenant")]
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name or self.code


class ComponentKind(models.TextChoices):
    PER_EVENT = "PER_EVENT"
    PER_1K_INPUT_TOKENS = "PER_1K_INPUT_TOKENS"
    PER_1K_OUTPUT_TOKENS = "PER_1K_OUTPUT_TOKENS"
    PER_1K_TOKENS = "PER_1K_TOKENS"
    PER_TOOL_CALL = "PER_TOOL_CALL"
    PER_REASONING_STEP = "PER_REASONING_STEP"
    FLAT_FEE = "FLAT_FEE"
    MARKUP_PCT = "MARKUP_PCT"


# The invoice-line unit each component's charge is allocated by.
COMPONENT_UNIT = {
    ComponentKind.PER_EVENT: Unit.EVENTS,
    ComponentKind.PER_1K_INPUT_TOKENS: Unit.INPUT_TOKENS,
    ComponentKind.PER_1K_OUTPUT_TOKENS: Unit.OUTPUT_TOKENS,
    ComponentKind.PER_1K_TOKENS: Unit.TOKENS,
    ComponentKind.PER_TOOL_CALL: Unit.TOOL_CALLS,
    ComponentKind.PER_REASONING_STEP: Unit.REASONING_STEPS,
    ComponentKind.FLAT_FEE: Unit.FLAT,
    ComponentKind.MARKUP_PCT: Unit.COGS,
}


class PriceComponent(models.Model):
    """One priced dimension of a plan, for one product or (blank product_id) every product.

    `unit_price` is USD per event / per 1K tokens / per tool call / per reasoning step, the fee
    per period for FLAT_FEE, and the percentage for MARKUP_PCT (price = COGS × (1 + pct/100)).
    Volume tiers, when present, replace `unit_price`: the period's whole quantity is priced at
    the tier its total reaches.
    """

    plan = models.ForeignKey(RatePlan, on_delete=models.CASCADE, related_name="components")
    kind = models.CharField(max_length=24, choices=ComponentKind.choices)
    product_id = models.CharField(max_length=200, blank=True,
                                  help_text="A product's external id; blank: every product.")
    unit_price = models.DecimalField(**RATE, default=0)
    rating_events_per_period = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="FLAT_FEE only: events per period assumed at ingest to spread the fee over "
                  "rated revenue; blank leaves the fee out of rated revenue.")

    class Meta:
        ordering = ["plan", "kind", "product_id"]

    def __str__(self) -> str:
        return f"{self.plan}: {self.kind} {self.product_id or '*'}"

    @property
    def unit(self) -> str:
        return COMPONENT_UNIT[self.kind]


class PriceTier(models.Model):
    """A volume tier: up to `up_to` units (blank: no limit) every unit costs `unit_price`."""

    component = models.ForeignKey(PriceComponent, on_delete=models.CASCADE, related_name="tiers")
    up_to = models.DecimalField(max_digits=24, decimal_places=6, null=True, blank=True)
    unit_price = models.DecimalField(**RATE)

    class Meta:
        ordering = ["component", models.F("up_to").asc(nulls_last=True)]

    def __str__(self) -> str:
        return f"≤ {self.up_to if self.up_to is not None else '∞'} at {self.unit_price}"


class Subscription(TenantScoped):
    """A customer on a plan from `starts_at` until `ends_at` (exclusive; blank: open-ended)."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    plan = models.ForeignKey(RatePlan, on_delete=models.PROTECT, related_name="subscriptions")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["customer", "starts_at"]

    def __str__(self) -> str:
        return f"{self.customer} on {self.plan} from {self.starts_at:%Y-%m-%d}"


class InvoiceStatus(models.TextChoices):
    DRAFT = "DRAFT"
    FINALIZED = "FINALIZED"
    VOID = "VOID"


class InvoiceSource(models.TextChoices):
    GENERATED = "GENERATED"
    API = "API"
    STRIPE = "STRIPE"


class Invoice(TenantScoped):
    """An invoice for one customer and period; only FINALIZED ones are attributed.

    `invoice_id` is the external id the ledger's REVENUE entries carry. Re-importing an invoice
    voids the earlier version (superseded_by) and adds the next `version`.
    """

    invoice_id = models.CharField(max_length=200)
    version = models.PositiveIntegerField(default=1)
    customer_id = models.CharField(max_length=200, help_text="The customer's external id.")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    status = models.CharField(max_length=10, choices=InvoiceStatus.choices,
                              default=InvoiceStatus.DRAFT)
    source = models.CharField(max_length=10, choices=InvoiceSource.choices,
                              default=InvoiceSource.API)
    currency = models.CharField(max_length=3, default="USD")
    total_usd = models.DecimalField(**MONEY, default=0)
    superseded_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "invoice_id", "version"],
                                               name="invoice_version_per_tenant")]
        ordering = ["-period_start", "invoice_id", "-version"]

    def __str__(self) -> str:
        return f"{self.invoice_id} v{self.version} ({self.status})"


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    line_id = models.CharField(max_length=200)
    product_id = models.CharField(max_length=200, blank=True,
                                  help_text="Blank: every product of the customer.")
    amount_usd = models.DecimalField(**MONEY)
    unit = models.CharField(max_length=20, choices=Unit.choices)
    description = models.CharField(max_length=500, blank=True)
    quantity = models.DecimalField(max_digits=30, decimal_places=9, null=True, blank=True)
    # Written by attribution: the events the line was allocated over and their total weight
    # in its unit (tokens, tool calls, COGS nanodollars...; events for EVENTS and FLAT).
    attributed_events = models.BigIntegerField(default=0)
    attributed_weight = models.DecimalField(max_digits=30, decimal_places=0, default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["invoice", "line_id"],
                                               name="line_id_per_invoice")]
        ordering = ["invoice", "id"]

    def __str__(self) -> str:
        return f"{self.invoice.invoice_id}/{self.line_id}"


class AttributionRunStatus(models.TextChoices):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class AttributionRun(TenantScoped):
    """One attribution run: what it matched, attributed, left unattributed and wrote."""

    run_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    trigger = models.CharField(max_length=20, default="MANUAL")
    status = models.CharField(max_length=10, choices=AttributionRunStatus.choices,
                              default=AttributionRunStatus.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    invoices = models.PositiveIntegerField(default=0)
    lines = models.PositiveIntegerField(default=0)
    lines_matched = models.PositiveIntegerField(default=0)
    lines_unattributed = models.PositiveIntegerField(default=0)
    events = models.PositiveBigIntegerField(default=0, help_text="(event, line) allocations.")
    attributed_usd = models.DecimalField(**MONEY, default=0)
    unattributed_usd = models.DecimalField(**MONEY, default=0)
    entries_written = models.PositiveBigIntegerField(default=0)
    reversed_usd = models.DecimalField(**MONEY, default=0)
    unattributed_lines = models.JSONField(default=list, blank=True)
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"run {self.run_id} ({self.status})"


class RevenueEstimateVersion(models.Model):
    """The latest version of a tenant's per-unit revenue estimates in the event store
    (`revenue_rates`), with a fingerprint so an unchanged refresh writes nothing."""

    tenant = models.OneToOneField("aforo.Tenant", on_delete=models.CASCADE, related_name="+")
    version = models.BigIntegerField()
    fingerprint = models.CharField(max_length=64)
    updated_at = models.DateTimeField(auto_now=True)
