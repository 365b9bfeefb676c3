"""Signals the detectors fire (one per kind, scope, unit, threshold and window), and the
tenant's detector settings."""
from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models

from aforo.models import Tenant

MONEY = {"max_digits": 38, "decimal_places": 9}


class Kind(models.TextChoices):
    USAGE_ANOMALY = "USAGE_ANOMALY"
    COST_SPIKE = "COST_SPIKE"
    CHURN_RISK = "CHURN_RISK"
    QUOTA_PACING = "QUOTA_PACING"
    MARGIN_TRIP = "MARGIN_TRIP"


class Severity(models.TextChoices):
    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class Signal(models.Model):
    """One detection. The unique key makes every detector idempotent: however often or
    concurrently it runs, a (kind, scope, unit, subject, threshold, window) is stored once."""

    class State(models.TextChoices):
        OPEN = "OPEN"
        ACKNOWLEDGED = "ACKNOWLEDGED"
        RESOLVED = "RESOLVED"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    customer_id = models.CharField(max_length=200, blank=True)
    product_id = models.CharField(max_length=200, blank=True)
    unit = models.CharField(max_length=40, blank=True,
                            help_text="EVENTS, INPUT_TOKENS, ..., COGS_USD, MARGIN_PCT.")
    subject = models.CharField(max_length=100, blank=True,
                               help_text="What was measured when the scope does not say it: "
                                         "budget:ID, guard-action:ID.")
    threshold = models.DecimalField(max_digits=20, decimal_places=4)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    value = models.DecimalField(**MONEY)
    baseline = models.DecimalField(**MONEY, null=True)
    deviation = models.DecimalField(max_digits=20, decimal_places=4, null=True)
    magnitude = models.DecimalField(
        max_digits=20, decimal_places=4, default=Decimal(1),
        help_text="How many times its threshold the signal is: ranks the health tile.")
    severity = models.CharField(max_length=8, choices=Severity.choices)
    state = models.CharField(max_length=12, choices=State.choices, default=State.OPEN)
    title = models.CharField(max_length=300)
    sample_event_ids = models.JSONField(default=list, blank=True)
    detected_at = models.DateTimeField()
    last_event_at = models.DateTimeField(null=True, blank=True,
                                         help_text="The window's last event (latency from it).")
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                        on_delete=models.SET_NULL, related_name="+")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-detected_at", "-id"]
        constraints = [models.UniqueConstraint(
            fields=["tenant", "kind", "customer_id", "product_id", "unit", "subject",
                    "threshold", "window_start", "window_end"],
            name="one_signal_per_kind_scope_unit_threshold_window")]
        indexes = [models.Index(fields=["tenant", "state", "-detected_at"])]

    def __str__(self) -> str:
        return self.title

    @property
    def detection_latency_seconds(self) -> int | None:
        if self.last_event_at is None:
            return None
        return max(0, int((self.detected_at - self.last_event_at).total_seconds()))


class IntelligenceSettings(models.Model):
    """One row per tenant; a tenant without one reads the defaults. Minimum history and volume
    keep a healthy tenant's ordinary noise quiet."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE,
                                  related_name="intelligence_settings")
    anomaly_sigma = models.DecimalField(
        max_digits=6, decimal_places=2, default=Decimal(2),
        help_text="An hour outside its baseline's mean ± this many σ is an anomaly.")
    baseline_days = models.PositiveIntegerField(
        default=14, help_text="The baseline: the same hour on each of this many days before.")
    min_history_days = models.PositiveIntegerField(
        default=7, help_text="Baseline days with activity needed before a scope may fire.")
    min_hourly_events = models.DecimalField(
        max_digits=12, decimal_places=2, default=Decimal(5),
        help_text="The baseline's mean events in the hour needed before a scope may fire.")
    cost_spike_sigma = models.DecimalField(max_digits=6, decimal_places=2, default=Decimal(2))
    cost_spike_min_usd = models.DecimalField(
        max_digits=18, decimal_places=6, default=Decimal(1),
        help_text="A cost spike also differs from its baseline mean by at least this much.")
    churn_drop_pct = models.DecimalField(
        max_digits=6, decimal_places=2, default=Decimal(50),
        help_text="A week's events down at least this much against the week before.")
    churn_min_weekly_events = models.PositiveIntegerField(
        default=100, help_text="The week before must have had at least this many events.")
    pacing_thresholds = models.JSONField(
        default=list, blank=True,
        help_text="Percent of a limit the period's projection may cross; empty: 80, 100, 120.")
    pacing_min_elapsed_pct = models.DecimalField(
        max_digits=6, decimal_places=2, default=Decimal(10),
        help_text="No projection before this much of the period has passed.")
    updated_at = models.DateTimeField(auto_now=True)

    DEFAULT_PACING = (80, 100, 120)

    class Meta:
        verbose_name = "intelligence settings"
        verbose_name_plural = "intelligence settings"

    def thresholds(self) -> list[Decimal]:
        return sorted(Decimal(str(t)) for t in (self.pacing_thresholds or self.DEFAULT_PACING))


class ForecastFit(models.Model):
    """A scope's forecast as last fitted, served to requests while it is fresh: fitted by the
    hourly job (the tenant, each product with history, and the scopes asked for lately) or by
    the request that found none fresh. The payload is the whole forecast (history, points,
    method) with its figures as decimal strings, so a served fit equals a fresh one exactly."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    product_id = models.CharField(max_length=200, blank=True)
    customer_id = models.CharField(max_length=200, blank=True)
    horizon = models.CharField(max_length=4)
    as_of = models.DateField(help_text="The tenant's day it was fitted on (history ends the "
                                       "day before).")
    fitted_at = models.DateTimeField()
    requested_at = models.DateTimeField(null=True, blank=True,
                                        help_text="Last asked for (to the hour): the hourly "
                                                  "job keeps scopes asked for lately fresh.")
    payload = models.JSONField()

    class Meta:
        constraints = [models.UniqueConstraint(
            fields=["tenant", "product_id", "customer_id", "horizon"],
            name="one_forecast_fit_per_scope_horizon")]
        indexes = [models.Index(fields=["tenant", "requested_at"])]
