"""Deliveries: every notification to one destination (email, Slack, PagerDuty, a signed
webhook), retried until it lands, and each attempt. What a delivery is about (an alert, a guard
action, later a signal or a wallet) is its subject, referenced generically, so this app knows
none of the apps that notify."""
from __future__ import annotations

import secrets

from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import connection, models, transaction

from aforo.models import Tenant


class Channel(models.TextChoices):
    EMAIL = "EMAIL"
    SLACK = "SLACK"
    WEBHOOK = "WEBHOOK"
    PAGERDUTY = "PAGERDUTY"  # the destination is an Events API v2 routing key


class Destination(models.Model):
    """One place an owner's notifications go: a channel and its address (an email address, a
    Slack or webhook URL, a PagerDuty routing key). The owner (a budget, an alert rule, a guard
    policy; later signals and entitlements) holds its destinations as an ordered list through
    `Notifying.destinations`; this app knows none of the owners' apps."""

    owner_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    owner_id = models.PositiveBigIntegerField()
    owner = GenericForeignKey("owner_type", "owner_id")
    position = models.PositiveSmallIntegerField(default=0)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    destination = models.CharField(max_length=500)

    class Meta:
        ordering = ["position", "id"]
        indexes = [models.Index(fields=["owner_type", "owner_id"])]

    def __str__(self) -> str:
        return f"{self.channel} {self.destination}"


def _first_part(index: int, doc: str) -> property:
    """A settable property over the first destination's channel (0) or address (1)."""
    def get(self) -> str:
        pending = getattr(self, "_destinations_pending", None)
        pairs = pending if pending is not None else self._saved_pairs()
        return pairs[0][index] if pairs else ""

    def put(self, value: str) -> None:
        self._first_set(index, value)

    return property(get, put, doc=doc)


class Notifying(models.Model):
    """What owns notification destinations (a budget, an alert rule, a guard policy; later
    signals and entitlements): its ordered list `destinations`, deleted with it, and
    `signing_secret`, the HMAC key of its webhook deliveries.

    Assign a new list with `destinations_assign(pairs)`, or the first destination through
    `notify_channel`/`notify_destination` (what the single-destination APIs show); either is
    written with the owner's next `save()` (so `objects.create(notify_channel=...)` works).
    `QuerySet.update()` and `bulk_create()` do not write destinations. Deliver with
    notifications.services.notify."""

    destinations = GenericRelation(Destination, content_type_field="owner_type",
                                   object_id_field="owner_id")
    signing_secret = models.CharField(max_length=64, default=secrets.token_hex,
                                      help_text="Signs WEBHOOK deliveries (X-Aforo-Signature).")

    class Meta:
        abstract = True

    def _saved_pairs(self) -> list[tuple[str, str]]:
        """The saved destinations, read once per instance (as a prefetch is)."""
        if self.pk is None:
            return []
        saved = getattr(self, "_destinations_saved", None)
        if saved is None:
            saved = self._destinations_saved = [(d.channel, d.destination)
                                                for d in self.destinations.all()]
        return list(saved)

    def destination_pairs(self) -> list[tuple[str, str]]:
        """(channel, destination) of every destination, in order: those assigned and not yet
        saved, else the saved ones (read from a prefetch_related("destinations") if any)."""
        pending = getattr(self, "_destinations_pending", None)
        if pending is not None:
            return [(c, d) for c, d in pending if c]
        return self._saved_pairs()

    def destinations_assign(self, pairs) -> None:
        """Make `pairs` (channel, destination), in order, the destinations; written on save.
        A pair without a channel is no destination."""
        self._destinations_pending = [[c or "", d or ""] for c, d in pairs]

    def _first_set(self, index: int, value: str) -> None:
        pending = getattr(self, "_destinations_pending", None)
        if pending is None:
            pending = self._destinations_pending = [list(p) for p in self._saved_pairs()]
        if not pending:
            pending.append(["", ""])
        pending[0][index] = value or ""

    notify_channel = _first_part(0, "The first destination's channel (\"\" with none).")
    notify_destination = _first_part(1, "The first destination's address (\"\" with none).")

    def refresh_from_db(self, *args, **kwargs) -> None:
        super().refresh_from_db(*args, **kwargs)
        self._destinations_saved = self._destinations_pending = None

    def save(self, *args, **kwargs) -> None:
        with transaction.atomic():
            super().save(*args, **kwargs)
            self._destinations_write()

    def _destinations_write(self) -> None:
        pending = getattr(self, "_destinations_pending", None)
        if pending is None:
            return
        self._destinations_pending = None
        pairs = [(c, d) for c, d in pending if c]
        if pairs == self._saved_pairs():
            return
        self._destinations_saved = list(pairs)
        self.destinations.all().delete()
        owner_type = ContentType.objects.get_for_model(self)
        Destination.objects.bulk_create(
            Destination(owner_type=owner_type, owner_id=self.pk, position=i, channel=c,
                        destination=d) for i, (c, d) in enumerate(pairs))
        getattr(self, "_prefetched_objects_cache", {}).pop("destinations", None)


def destinations_load(owners):
    """Read the destinations of many owners of one model in one query, into each owner (a
    list's cheaper prefetch_related("destinations"): no model instances); returns the owners
    as a list."""
    owners = list(owners)
    if not owners:
        return owners
    found: dict[int, list[tuple[str, str]]] = {owner.pk: [] for owner in owners}
    # :TRICKY: one plain SELECT, not a queryset: building the ORM query cost 0.7 ms of a
    # 25-row page, this 0.06 ms (benchmarks/shape.py; RESULTS.md, "Codebase shape").
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT owner_id, channel, destination FROM {Destination._meta.db_table} "  # noqa: S608
            f"WHERE owner_type_id = %s AND owner_id IN ({', '.join(['%s'] * len(found))}) "
            "ORDER BY position, id",
            [ContentType.objects.get_for_model(owners[0]).pk, *found])
        for owner_id, channel, destination in cursor.fetchall():
            found[owner_id].append((channel, destination))
    for owner in owners:
        owner._destinations_saved = found[owner.pk]
    return owners


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
