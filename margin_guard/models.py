"""Guard policies, the guard's current level per scope, and the audit of every change."""
from __future__ import annotations

from django.contrib.contenttypes.fields import GenericRelation
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from aforo.models import Tenant
from notifications.models import Notifying

MONEY = {"max_digits": 38, "decimal_places": 9}


class Level(models.IntegerChoices):
    NONE = 0, "NONE"
    ALERT = 1, "ALERT"        # L1: notify
    THROTTLE = 2, "THROTTLE"  # L2: downgrade models, rate-limit
    BLOCK = 3, "BLOCK"        # L3: suspend premium features and models


class GuardPolicy(Notifying):
    class Scope(models.TextChoices):
        PLATFORM = "PLATFORM"
        TENANT = "TENANT"
        TIER = "TIER"
        PRODUCT = "PRODUCT"
        CUSTOMER = "CUSTOMER"
        CUSTOMER_PRODUCT = "CUSTOMER_PRODUCT"

    class Mode(models.TextChoices):
        OFF = "OFF"
        DRY_RUN = "DRY_RUN"
        ENFORCE = "ENFORCE"

    class UnknownRevenue(models.TextChoices):
        HOLD = "HOLD"                    # judge on the events whose revenue is known
        TREAT_AS_ZERO = "TREAT_AS_ZERO"  # events without a revenue source earned nothing

    class Window(models.TextChoices):
        DAY = "24h"
        WEEK = "7d"
        PERIOD_TO_DATE = "PTD"

    # Most specific first: the policy that applies to a call is the first scope that matches.
    SPECIFICITY = [Scope.CUSTOMER_PRODUCT, Scope.CUSTOMER, Scope.PRODUCT, Scope.TIER,
                   Scope.TENANT, Scope.PLATFORM]

    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE,
                               related_name="+", help_text="Empty for a PLATFORM policy.")
    name = models.CharField(max_length=200)
    scope = models.CharField(max_length=20, choices=Scope.choices)
    tier = models.CharField(max_length=20, blank=True)
    product_id = models.CharField(max_length=200, blank=True)
    customer_id = models.CharField(max_length=200, blank=True)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.OFF)
    alert_below_pct = models.DecimalField(max_digits=7, decimal_places=2, default=20)
    throttle_below_pct = models.DecimalField(max_digits=7, decimal_places=2, default=10)
    block_below_pct = models.DecimalField(max_digits=7, decimal_places=2, default=0)
    window = models.CharField(max_length=3, choices=Window.choices, default=Window.DAY)
    min_events = models.PositiveIntegerField(default=20)
    recovery_buffer_pct = models.DecimalField(max_digits=7, decimal_places=2, default=5)
    on_unknown_revenue = models.CharField(
        max_length=13, choices=UnknownRevenue.choices, default=UnknownRevenue.HOLD,
        help_text="HOLD: events with no revenue source neither escalate nor count; "
                  "TREAT_AS_ZERO: they count as earning nothing.")
    downgrade_map = models.JSONField(default=dict, blank=True,
                                     help_text='e.g. {"gpt-4o": "gpt-4o-mini"}')
    premium_features = models.JSONField(default=list, blank=True,
                                        help_text="Features or models BLOCK suspends.")
    throttle_rate_per_minute = models.PositiveIntegerField(null=True, blank=True)
    override_minutes = models.PositiveIntegerField(
        default=60, help_text="How long an override from Slack allows access.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["scope", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.scope}, {self.mode})"

    def notify_targets(self) -> list[tuple[str, str]]:
        """(channel, destination) of every channel this policy notifies (its destinations,
        notifications.Destination; the first is the API's notifyChannel/notifyDestination)."""
        return self.destination_pairs()

    @property
    def notifications(self) -> list[dict[str, str]]:
        """Every channel as the API's `notifications` list; assigning one is saved with the
        policy."""
        return [{"channel": c, "destination": d} for c, d in self.destination_pairs()]

    @notifications.setter
    def notifications(self, value) -> None:
        self.destinations_assign((t["channel"], t["destination"]) if isinstance(t, dict)
                                 else t for t in value or [])


class GuardState(models.Model):
    """The level a customer (or a customer's use of one product) is held at."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    customer_id = models.CharField(max_length=200)
    product_id = models.CharField(max_length=200, blank=True)
    level = models.IntegerField(choices=Level.choices, default=Level.NONE)
    mode = models.CharField(max_length=10, default=GuardPolicy.Mode.OFF)
    policy = models.ForeignKey(GuardPolicy, null=True, on_delete=models.SET_NULL,
                               related_name="+")
    version = models.PositiveIntegerField(default=0)
    margin_pct = models.DecimalField(max_digits=20, decimal_places=4, null=True)
    cost_usd = models.DecimalField(**MONEY, default=0)
    revenue_usd = models.DecimalField(**MONEY, default=0)
    events = models.BigIntegerField(default=0)
    unknown_events = models.BigIntegerField(default=0,
                                            help_text="Events of the window with no revenue.")
    revenue_sources = models.JSONField(default=dict, blank=True,
                                       help_text="attributed/carried/rated/estimated USD.")
    reason = models.TextField(blank=True, help_text="Why the last evaluation set this level.")
    evaluated_at = models.DateTimeField(null=True)
    override_until = models.DateTimeField(null=True, blank=True)
    override_by = models.CharField(max_length=150, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "customer_id", "product_id"],
                                               name="one_guard_state_per_scope")]
        ordering = ["customer_id", "product_id"]


class GuardAction(models.Model):
    """An orchestration action: every level change and override, who or what did it, and why."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    customer_id = models.CharField(max_length=200)
    product_id = models.CharField(max_length=200, blank=True)
    from_level = models.IntegerField(choices=Level.choices)
    to_level = models.IntegerField(choices=Level.choices)
    mode = models.CharField(max_length=10)
    margin_pct = models.DecimalField(max_digits=20, decimal_places=4, null=True)
    cost_usd = models.DecimalField(**MONEY)
    revenue_usd = models.DecimalField(**MONEY)
    events_evaluated = models.BigIntegerField()
    window_start = models.DateTimeField(null=True, blank=True,
                                        help_text="The window the margin was measured over.")
    window_end = models.DateTimeField(null=True, blank=True)
    unknown_events = models.BigIntegerField(default=0)
    reason = models.TextField()
    recommendations = models.JSONField(
        default=list, blank=True, encoder=DjangoJSONEncoder,
        help_text="Recommended actions, first is the one; each with the figures behind it.")
    actor = models.CharField(max_length=150)
    at = models.DateTimeField()
    deliveries = GenericRelation("notifications.Delivery", content_type_field="subject_type",
                                 object_id_field="subject_id", related_query_name="guard_action")

    class Meta:
        ordering = ["-at", "-id"]


class GuardDecisionCount(models.Model):
    """Decisions the guard answered with a lever, counted per hour: durable (the cache's
    counters expire and vanish on a restart), so the impact report can value them later."""

    class Kind(models.TextChoices):
        BLOCKED = "BLOCKED"            # premium feature or model suspended
        RATE_LIMITED = "RATE_LIMITED"  # over the throttle's calls a minute (429)
        DOWNGRADED = "DOWNGRADED"      # answered with a cheaper model

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField(help_text="The UTC hour the decisions fell in.")
    customer_id = models.CharField(max_length=200)
    product_id = models.CharField(max_length=200, blank=True)
    feature = models.CharField(max_length=200, blank=True,
                               help_text="The feature asked for, else the model.")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(
            fields=["tenant", "hour", "customer_id", "product_id", "feature", "kind"],
            name="one_decision_count_per_hour")]
        indexes = [models.Index(fields=["tenant", "hour"])]


class GuardSettings(models.Model):
    """A tenant's Margin Guard settings: what Aforo itself costs it, for the impact's ROI."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="+")
    product_cost_usd_per_month = models.DecimalField(
        max_digits=20, decimal_places=2, null=True, blank=True,
        help_text="What the tenant pays for Aforo a month; the ROI is recovered ÷ this cost "
                  "over the same window.")
