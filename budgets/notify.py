"""What an alert tells people: the payload of its webhooks, email and PagerDuty events, and its
Slack message (Block Kit). The notifications app sends and retries them."""
from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.urls import reverse

from aforo.money import usd
from budgets.models import Alert
from notifications.services import Content


def _money(value: Decimal | None) -> str:
    return "n/a" if value is None else f"{value:,.6f}".rstrip("0").rstrip(".")


def alert_payload(alert: Alert) -> dict:
    return {
        "alertId": alert.pk, "tenantId": alert.tenant.slug, "title": alert.title,
        "metric": alert.metric, "value": usd(alert.value), "threshold": usd(alert.threshold),
        "windowStart": alert.window_start.isoformat(),
        "windowEnd": alert.window_end.isoformat(), "productId": alert.product_id or None,
        "customerId": alert.customer_id or None,
        "sourceEventIds": list(alert.source_event_ids or []), "state": alert.state,
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
    if alert.source_event_ids:
        fields.append(("Source events", ", ".join(alert.source_event_ids)))
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


def alert_content(alert: Alert) -> Content:
    """What a delivery of an alert says; a budget's webhook queued before budgets had secrets
    signs with its budget's."""
    return Content(title=alert.title, payload=alert_payload(alert), slack=slack_message(alert),
                   signing_secret=alert.budget.signing_secret if alert.budget_id else "")
