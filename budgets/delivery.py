"""Sending alerts and guard actions: email over SMTP, Slack incoming webhooks (Block Kit),
PagerDuty Events API v2, and webhooks signed with HMAC-SHA256 (docs/webhooks.md). Every HTTP
request goes through aforo.outbound (public addresses only, no redirects, bounded), and the
history records only its status class.

A delivery is tried, and on failure retried with exponential backoff (30 s, 1 min, 2 min, ...)
by the evaluation job until MAX_ATTEMPTS, then marked FAILED; every attempt is logged, so an
alert is never dropped silently.
"""
from __future__ import annotations

import smtplib
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse

from aforo import outbound
from aforo.money import json_bytes, usd
from budgets.models import Alert, Channel, Delivery, DeliveryAttempt

MAX_ATTEMPTS = 8
BASE_BACKOFF = timedelta(seconds=30)
LEASE = timedelta(minutes=2)


def backoff(attempts: int) -> timedelta:
    return BASE_BACKOFF * (2 ** max(0, attempts - 1))


def _money(value: Decimal | None) -> str:
    return "n/a" if value is None else f"{value:,.6f}".rstrip("0").rstrip(".")


def alert_payload(alert: Alert) -> dict:
    return {
        "alertId": alert.pk, "tenantId": alert.tenant.slug, "title": alert.title,
        "metric": alert.metric, "value": usd(alert.value), "threshold": usd(alert.threshold),
        "windowStart": alert.window_start.isoformat(),
        "windowEnd": alert.window_end.isoformat(), "productId": alert.product_id or None,
        "customerId": alert.customer_id or None, "state": alert.state,
        "firedAt": alert.fired_at.isoformat(), "consoleUrl": console_url(alert),
    }


def console_url(alert: Alert) -> str:
    """The alert in the console's Budgets & Alerts tab, scrolled to its row."""
    page = reverse("console-cogs-budgets")
    return f"{settings.AFORO_PUBLIC_URL.rstrip('/')}{page}?alert={alert.pk}#alert-{alert.pk}"


def slack_message(alert: Alert) -> dict:
    """A Block Kit message: what fired, for whom, the value against the threshold, a link."""
    fields = [
        ("Metric", alert.metric), ("Value", _money(alert.value)),
        ("Threshold", _money(alert.threshold)),
        ("Customer", alert.customer_id or "all customers"),
        ("Product", alert.product_id or "all products"),
        ("Window", f"{alert.window_start:%Y-%m-%d %H:%M} – {alert.window_end:%Y-%m-%d %H:%M} UTC"),
    ]
    return {
        "text": f"Aforo alert: {alert.title}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": f"🔔 {alert.title}"[:150]}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"}
                                           for k, v in fields]},
            {"type": "actions", "elements": [{"type": "button", "text": {
                "type": "plain_text", "text": "Open in Aforo"}, "url": console_url(alert)}]},
        ],
    }


def _content(delivery: Delivery) -> tuple[str, dict, dict]:
    """What a delivery says: a title, the JSON payload and the Slack message."""
    if delivery.alert_id:
        alert = delivery.alert
        return alert.title, alert_payload(alert), slack_message(alert)
    from margin_guard.notify import action_payload, action_title, slack_blocks

    action = delivery.guard_action
    return action_title(action), action_payload(action), slack_blocks(action)


def send(delivery: Delivery) -> str:
    """Send once; returns a detail line, raises on failure."""
    title, payload, slack = _content(delivery)
    if delivery.channel == Channel.EMAIL:
        lines = [f"{k}: {v}" for k, v in payload.items() if v is not None]
        send_mail(subject=f"[Aforo] {title}", message="\n".join(lines),
                  from_email=None, recipient_list=[delivery.destination])
        return "sent"
    if delivery.channel == Channel.SLACK:
        return outbound.post(delivery.destination, json_bytes(slack)).history
    if delivery.channel == Channel.PAGERDUTY:
        event = {"routing_key": delivery.destination, "event_action": "trigger",
                 "dedup_key": f"aforo-{payload.get('tenantId')}-{title}"[:255],
                 "payload": {"summary": title[:1024], "source": "aforo",
                             "severity": "warning", "custom_details": payload}}
        return outbound.post(settings.AFORO_PAGERDUTY_URL, json_bytes(event)).history
    delivery_id = f"dlv_{delivery.pk}"  # the same on every retry: receivers deduplicate on it
    body = json_bytes({"deliveryId": delivery_id, **payload})
    return outbound.post(delivery.destination, body, signing_secret=signing_secret(delivery),
                         delivery_id=delivery_id).history


def signing_secret(delivery: Delivery) -> str:
    """The destination's secret, copied onto the delivery when it was queued (a delivery queued
    before budgets had secrets takes its budget's)."""
    if delivery.signing_secret:
        return delivery.signing_secret
    if delivery.alert_id and delivery.alert.budget_id:
        return delivery.alert.budget.signing_secret
    raise outbound.DestinationRefused("This webhook has no signing secret; rotate one.")


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
    due = (Delivery.objects.select_related("alert", "alert__tenant", "guard_action",
                                           "guard_action__tenant")
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
