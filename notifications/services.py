"""Sending notifications: email over SMTP, Slack incoming webhooks (Block Kit), PagerDuty
Events API v2, and webhooks signed with HMAC-SHA256 (docs/webhooks.md). Every HTTP request goes
through aforo.outbound (public addresses only, no redirects, bounded), and the history records
only its status class.

An owner of destinations (a `notifications.models.Notifying` model: a budget, an alert rule, a
guard policy) sets its list with `destinations_set`. An app that notifies registers, per subject
model, what a delivery says (`content_register`), and queues one delivery per destination of
the owner with `notify`. A delivery is tried, and on failure retried
with exponential backoff (30 s, 1 min, 2 min, ...) by the evaluation job until MAX_ATTEMPTS,
then marked FAILED; every attempt is logged, so a notification is never dropped silently.
"""
from __future__ import annotations

import secrets
import smtplib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.mail import send_mail
from django.db import models, transaction

from aforo import outbound
from aforo.models import Tenant
from aforo.money import json_bytes
from notifications.models import Channel, Delivery, DeliveryAttempt, Notifying

MAX_ATTEMPTS = 8
BASE_BACKOFF = timedelta(seconds=30)
LEASE = timedelta(minutes=2)


@dataclass(frozen=True)
class Content:
    """What a delivery says: its title, the JSON payload (webhooks, email, PagerDuty) and the
    Slack message; `signing_secret` signs a webhook queued without one of its own."""

    title: str
    payload: dict[str, Any]
    slack: dict[str, Any]
    signing_secret: str = ""


@dataclass(frozen=True)
class Target:
    """One destination of a notification, and the secret its webhook is signed with."""

    channel: str
    destination: str
    signing_secret: str = ""


_content: dict[str, Callable[[Any], Content]] = {}


def content_register(model: type[models.Model], build: Callable[[Any], Content]) -> None:
    """Say what deliveries of `model` instances say (called in the app's ready())."""
    _content[model._meta.label_lower] = build


def deliveries_queue(*, tenant: Tenant, subject: models.Model, targets: Iterable[Target],
                     now: datetime) -> list[Delivery]:
    """One pending delivery per target, due now (inside the caller's transaction)."""
    subject_type = ContentType.objects.get_for_model(subject)
    return [Delivery.objects.create(
        tenant=tenant, subject_type=subject_type, subject_id=subject.pk, channel=t.channel,
        destination=t.destination, signing_secret=t.signing_secret, next_attempt_at=now)
        for t in targets]


def destinations_set(owner: Notifying, pairs: Iterable[tuple[str, str]]) -> None:
    """Make `pairs` (channel, destination), in order, a saved owner's destinations now."""
    owner.destinations_assign(pairs)
    with transaction.atomic():
        owner._destinations_write()


def targets_of(owner: Notifying) -> list[Target]:
    """Every destination of an owner, its webhooks signed with the owner's secret."""
    return [Target(c, d, owner.signing_secret) for c, d in owner.destination_pairs()]


def notify(*, tenant: Tenant, owner: Notifying, subject: models.Model,
           now: datetime) -> list[Delivery]:
    """One pending delivery of `subject` to each destination of `owner`, due now: the one way
    budgets, alert rules and guard policies notify."""
    return deliveries_queue(tenant=tenant, subject=subject, targets=targets_of(owner), now=now)


def signing_secret_rotate(*, owner: models.Model, subjects: models.QuerySet) -> str:
    """A new signing secret for an owner of destinations (a budget, a rule, a guard policy);
    returned once. The old one stops signing at once: the owner's deliveries still pending
    (those of `subjects`) sign with the new one."""
    secret = secrets.token_hex(32)
    type(owner).objects.filter(pk=owner.pk).update(signing_secret=secret)
    Delivery.objects.filter(
        state=Delivery.State.PENDING, channel=Channel.WEBHOOK,
        subject_type=ContentType.objects.get_for_model(subjects.model),
        subject_id__in=subjects.values("pk")).update(signing_secret=secret)
    owner.signing_secret = secret
    return secret


def backoff(attempts: int) -> timedelta:
    return BASE_BACKOFF * (2 ** max(0, attempts - 1))


def content_of(delivery: Delivery) -> Content:
    return _content[delivery.subject_type.model_class()._meta.label_lower](delivery.subject)


def _email_value(value: Any) -> Any:
    """A payload value as an email line shows it: what a person reads of a structured one."""
    if isinstance(value, dict) and "text" in value:
        return value["text"]
    if isinstance(value, list) and value and all(isinstance(v, dict) and "text" in v
                                                 for v in value):
        return "; ".join(v["text"] for v in value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value)  # ids
    return value


def send(delivery: Delivery) -> str:
    """Send once; returns a detail line, raises on failure."""
    content = content_of(delivery)
    title, payload = content.title, content.payload
    if delivery.channel == Channel.EMAIL:
        lines = [f"{k}: {_email_value(v)}" for k, v in payload.items()
                 if v is not None and v != []]
        send_mail(subject=f"[Aforo] {title}", message="\n".join(lines),
                  from_email=None, recipient_list=[delivery.destination])
        return "sent"
    if delivery.channel == Channel.SLACK:
        return outbound.post(delivery.destination, json_bytes(content.slack)).history
    if delivery.channel == Channel.PAGERDUTY:
        event = {"routing_key": delivery.destination, "event_action": "trigger",
                 "dedup_key": f"aforo-{payload.get('tenantId')}-{title}"[:255],
                 "payload": {"summary": title[:1024], "source": "aforo",
                             "severity": "warning", "custom_details": payload}}
        return outbound.post(settings.AFORO_PAGERDUTY_URL, json_bytes(event)).history
    delivery_id = f"dlv_{delivery.pk}"  # the same on every retry: receivers deduplicate on it
    body = json_bytes({"deliveryId": delivery_id, **payload})
    secret = delivery.signing_secret or content.signing_secret
    if not secret:
        raise outbound.DestinationRefused("This webhook has no signing secret; rotate one.")
    return outbound.post(delivery.destination, body, signing_secret=secret,
                         delivery_id=delivery_id).history


def delivery_attempt(*, delivery: Delivery, now: datetime) -> bool:
    """Try one delivery and record the attempt; True when it landed."""
    try:
        detail = send(delivery)
        ok = True
    except outbound.OutboundError as exc:
        detail, ok = exc.history, False
    except (smtplib.SMTPException, OSError) as exc:
        detail, ok = f"email not sent: {type(exc).__name__}", False
    with transaction.atomic():
        delivery.attempts += 1
        DeliveryAttempt.objects.create(delivery=delivery, attempted_at=now, ok=ok, detail=detail)
        if ok:
            delivery.state, delivery.delivered_at, delivery.last_error = (
                Delivery.State.DELIVERED, now, "")
        else:
            delivery.last_error = detail
            if delivery.attempts >= MAX_ATTEMPTS:
                delivery.state = Delivery.State.FAILED
            else:
                delivery.next_attempt_at = now + backoff(delivery.attempts)
        delivery.save()
    return ok


def deliveries_send_due(*, now: datetime, limit: int = 200) -> int:
    """Attempt every pending delivery that is due; returns how many landed."""
    landed = 0
    due = (Delivery.objects.select_related("subject_type", "tenant")
           .filter(state=Delivery.State.PENDING, next_attempt_at__lte=now)
           .order_by("next_attempt_at")[:limit])
    for delivery in due:
        # Lease it first: of two evaluators running at once, only one sends it.
        leased = Delivery.objects.filter(
            pk=delivery.pk, state=Delivery.State.PENDING,
            next_attempt_at=delivery.next_attempt_at,
        ).update(next_attempt_at=now + LEASE)
        if leased:
            landed += delivery_attempt(delivery=delivery, now=now)
    return landed
