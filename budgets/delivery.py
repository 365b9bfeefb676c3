"""Sending alerts and guard actions: email over SMTP, Slack incoming webhooks (Block Kit),
PagerDuty Events API v2, and webhooks signed with HMAC-SHA256.

A delivery is tried, and on failure retried with exponential backoff (30 s, 1 min, 2 min, ...)
by the evaluation job until MAX_ATTEMPTS, then marked FAILED; every attempt is logged, so an
alert is never dropped silently.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from budgets.models import Alert, Channel, Delivery, DeliveryAttempt

MAX_ATTEMPTS = 8
BASE_BACKOFF = timedelta(seconds=30)
TIMEOUT_S = 5
LEASE = timedelta(minutes=2)


def backoff(attempts: int) -> timedelta:
    return BASE_BACKOFF * (2 ** max(0, attempts - 1))


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`, as X-Aforo-Signature carries it."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def _money(value: Decimal | None) -> str:
    return "n/a" if value is None else f"{value:,.6f}".rstrip("0").rstrip(".")


def alert_payload(alert: Alert) -> dict:
    return {
        "alertId": alert.pk, "tenantId": alert.tenant.slug, "title": alert.title,
        "metric": alert.metric, "value": str(alert.value) if alert.value is not None else None,
        "threshold": str(alert.threshold), "windowStart": alert.window_start.isoformat(),
        "windowEnd": alert.window_end.isoformat(), "productId": alert.product_id or None,
        "customerId": alert.customer_id or None, "state": alert.state,
        "firedAt": alert.fired_at.isoformat(), "consoleUrl": console_url(alert),
    }


def console_url(alert: Alert) -> str:
    return f"{settings.AFORO_PUBLIC_URL.rstrip('/')}/console/budgets/?alert={alert.pk}"


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


def _post(url: str, body: bytes, headers: dict[str, str]) -> str:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        return f"HTTP {response.status}"


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
        return _post(delivery.destination, json.dumps(slack).encode(), {})
    if delivery.channel == Channel.PAGERDUTY:
        event = {"routing_key": delivery.destination, "event_action": "trigger",
                 "dedup_key": f"aforo-{payload.get('tenantId')}-{title}"[:255],
                 "payload": {"summary": title[:1024], "source": "aforo",
                             "severity": "warning", "custom_details": payload}}
        return _post(settings.AFORO_PAGERDUTY_URL, json.dumps(event).encode(), {})
    body = json.dumps(payload).encode()
    signature = webhook_signature(delivery.signing_secret, int(time.time()), body)
    return _post(delivery.destination, body, {"X-Aforo-Signature": signature})


def delivery_attempt(*, delivery: Delivery, now: datetime) -> bool:
    """Try one delivery and record the attempt; True when it landed."""
    try:
        detail = send(delivery)
        ok = True
    except (urllib.error.URLError, OSError, ValueError) as exc:
        detail, ok = f"{type(exc).__name__}: {exc}"[:500], False
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
