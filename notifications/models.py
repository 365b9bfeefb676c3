"""Deliveries: every notification to one destination (email, Slack, PagerDuty, a signed
webhook), retried until it lands, and each attempt. What a delivery is about (an alert, a guard
action, later a signal or a wallet) is its subject, referenced generically, so this app knows
none of the apps that notify."""
from __future__ import annotations

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models

from aforo.models import Tenant


class Channel(models.TextChoices):
    EMAIL = "EMAIL"
    SLACK = "SLACK"
    WEBHOOK = "WEBHOOK"
    PAGERDUTY = "PAGERDUTY"  # the destination is an Events API v2 routing key


class Delivery(models.Model):
    """A notification of one subject to one destination, retried with backoff until it lands."""

    class State(models.TextChoices):
        PENDING = "PENDING"
        DELIVERED = "DELIVERED"
        FAILED = "FAILED"  # gave up after the last attempt; shown in the history

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    subject_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    subject_id = models.PositiveBigIntegerField()
    subject = GenericForeignKey("subject_type", "subject_id")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    destination = models.CharField(max_length=500)
    signing_secret = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["state", "next_attempt_at"]),
                   models.Index(fields=["subject_type", "subject_id"])]
        verbose_name_plural = "deliveries"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="log")
    attempted_at = models.DateTimeField()
    ok = models.BooleanField()
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]


class SlackUserLink(models.Model):
    """A Slack member (of one workspace) is this Aforo user: what lets a button pressed in
    Slack act as that user, with that user's roles. Set by operators (the admin)."""

    team_id = models.CharField(max_length=32, help_text="The Slack workspace (T…).")
    slack_user_id = models.CharField(max_length=32, help_text="The Slack member (U… or W…).")
    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team_id", "slack_user_id"],
                                               name="one_aforo_user_per_slack_member")]

    def __str__(self) -> str:
        return f"{self.team_id}/{self.slack_user_id} → {self.user}"
