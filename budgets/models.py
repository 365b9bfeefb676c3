"""Cost budgets, alert rules, the alerts they fire, and every delivery attempt."""
from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.fields import GenericRelation
from django.db import models
from django.db.models import Q

from aforo.models import Tenant
from aforo.money import money_field
from notifications.models import Channel as NotificationChannel
from notifications.models import Notifying

# The notification channels (notifications.models), under the name budgets' models use.
Channel = NotificationChannel


class CostBudget(Notifying):
    """A spend cap for a period; notifies its destinations (notifications.Destination) at the
    warning threshold and at 100%."""

    class Period(models.TextChoices):
        MONTHLY = "MONTHLY"
        QUARTERLY = "QUARTERLY"
        ANNUAL = "ANNUAL"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    period = models.CharField(max_length=10, choices=Period.choices)
    product_id = models.CharField(max_length=200, blank=True)
    customer_id = models.CharField(max_length=200, blank=True)
    cap_usd = money_field()
    warning_threshold_pct = models.DecimalField(max_digits=5, decimal_places=2, default=80)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class AlertRule(Notifying):
    """A metric or signal condition; notifies its destination (notifications.Destination)."""

    class Source(models.TextChoices):
        METRIC = "METRIC"  # the rule measures its metric over its window
        SIGNAL = "SIGNAL"  # the rule fires on intelligence signals of a kind and severity
        ENTITLEMENT = "ENTITLEMENT"  # entitlements at warning, 100%, 120% projected
        WALLET = "WALLET"  # wallets under their low-balance mark or at zero

    class Metric(models.TextChoices):
        COST = "COST"      # spend in the window, USD
        MARGIN = "MARGIN"  # margin % in the window
        RATIO = "RATIO"    # COGS / revenue in the window

    class Comparison(models.TextChoices):
        GT = "GT"
        GTE = "GTE"
        LT = "LT"
        LTE = "LTE"

    class Window(models.TextChoices):
        HOUR = "1h"
        DAY = "24h"
        WEEK = "7d"
        MONTH = "30d"
        PERIOD_TO_DATE = "PTD"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.METRIC)
    # METRIC rules: what to measure and when it breaches.
    metric = models.CharField(max_length=10, choices=Metric.choices, blank=True)
    comparison = models.CharField(max_length=3, choices=Comparison.choices, blank=True)
    threshold = models.DecimalField(max_digits=20, decimal_places=9, null=True, blank=True)
    # SIGNAL rules: which signals (blank kind: every kind) at or above which severity.
    signal_kind = models.CharField(max_length=20, blank=True)
    min_severity = models.CharField(max_length=8, blank=True, default="")
    window = models.CharField(max_length=3, choices=Window.choices, default=Window.DAY)
    product_id = models.CharField(max_length=200, blank=True)
    customer_id = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    auto_resolve = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    # The rule's one destination under the API's names (read-only: set it through
    # budgets.services.alert_rule_create/update).
    channel = Notifying.notify_channel
    destination = Notifying.notify_destination


class Alert(models.Model):
    """One firing of a rule or a budget level; one open (FIRED or ACKNOWLEDGED) per key."""

    class State(models.TextChoices):
        FIRED = "FIRED"
        ACKNOWLEDGED = "ACKNOWLEDGED"
        RESOLVED = "RESOLVED"

    OPEN_STATES = (State.FIRED, State.ACKNOWLEDGED)

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    rule = models.ForeignKey(AlertRule, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="alerts")
    budget = models.ForeignKey(CostBudget, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="alerts")
    open_key = models.CharField(max_length=100, help_text="rule:ID or budget:ID:LEVEL")
    title = models.CharField(max_length=300)
    metric = models.CharField(max_length=20)
    value = models.DecimalField(max_digits=38, decimal_places=9, null=True)
    threshold = models.DecimalField(max_digits=38, decimal_places=9)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    product_id = models.CharField(max_length=200, blank=True)
    customer_id = models.CharField(max_length=200, blank=True)
    source_event_ids = models.JSONField(
        default=list, blank=True,
        help_text="The events that crossed the level (the crossing one first, capped); "
                  "entitlement and wallet alerts.")
    state = models.CharField(max_length=12, choices=State.choices, default=State.FIRED)
    fired_at = models.DateTimeField()
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                        on_delete=models.SET_NULL, related_name="+")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True,
                                   help_text="A username, or 'auto' when the condition cleared.")
    resolved_at = models.DateTimeField(null=True, blank=True)
    deliveries = GenericRelation("notifications.Delivery", content_type_field="subject_type",
                                 object_id_field="subject_id", related_query_name="alert")

    class Meta:
        ordering = ["-fired_at", "-id"]
        constraints = [models.UniqueConstraint(
            fields=["tenant", "open_key"], condition=Q(state__in=["FIRED", "ACKNOWLEDGED"]),
            name="one_open_alert_per_key")]

    def __str__(self) -> str:
        return f"{self.title} ({self.state})"
