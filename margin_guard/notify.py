"""What Margin Guard tells people when a level changes: Slack (Block Kit), PagerDuty, email and
signed webhooks, sent and retried by the notifications app like every other notification."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

from django.conf import settings
from django.urls import reverse

from aforo.money import pct, usd
from margin_guard.models import GuardAction, GuardPolicy, Level
from margin_guard.recommendations import recommendation_out
from notifications import services as notifications
from notifications.models import Delivery
from notifications.services import Content

ACTIONS = {Level.NONE: "Restored full access", Level.ALERT: "Alert sent",
           Level.THROTTLE: "Throttling to cheaper models", Level.BLOCK: "Premium features locked"}


def action_title(action: GuardAction) -> str:
    return (f"Margin Guard: {action.customer_id} {Level(action.from_level).label} → "
            f"{Level(action.to_level).label}")


def estimated_savings_per_hour(action: GuardAction) -> Decimal | None:
    """The loss rate the action stops: cost minus revenue per hour of the window measured
    (24 h, 7 days, or the period to date), when margin is negative (an estimate, labelled as
    such)."""
    if action.to_level < Level.THROTTLE or action.cost_usd <= action.revenue_usd:
        return None
    if action.window_start is None or action.window_end is None:
        return None
    hours = Decimal((action.window_end - action.window_start).total_seconds()) / 3600
    if hours <= 0:
        return None
    return ((action.cost_usd - action.revenue_usd) / hours).quantize(Decimal("0.01"))


def action_payload(action: GuardAction) -> dict:
    savings = estimated_savings_per_hour(action)
    advice = [recommendation_out(r) for r in action.recommendations or []]
    return {
        "tenantId": action.tenant.slug, "customerId": action.customer_id,
        "productId": action.product_id or None, "fromLevel": Level(action.from_level).label,
        "toLevel": Level(action.to_level).label, "actionTaken": ACTIONS[action.to_level],
        "mode": action.mode,
        "marginPct": pct(action.margin_pct), "costUsd": usd(action.cost_usd),
        "revenueUsd": usd(action.revenue_usd), "eventsEvaluated": action.events_evaluated,
        "estimatedSavingsUsdPerHour": savings,
        "recommendedAction": advice[0] if advice else None,
        "recommendations": advice,
        "reason": action.reason, "actor": action.actor, "at": action.at.isoformat(),
    }


OVERRIDE_ACTION_ID = "guard_override"
VIEW_METRICS_ACTION_ID = "guard_view_metrics"


def customer_url(action: GuardAction) -> str:
    """The customer's live view in the console (its ledger, rated revenue and plan)."""
    base = settings.AFORO_PUBLIC_URL.rstrip("/")
    return f"{base}{reverse('console-billing-customer', args=[action.customer_id])}"


def override_value(action: GuardAction) -> str:
    """What the Override button carries back: which scope, of which tenant, which action."""
    return json.dumps({"tenant": action.tenant.slug, "customerId": action.customer_id,
                       "productId": action.product_id, "actionId": action.pk},
                      separators=(",", ":"))


def slack_buttons(action: GuardAction) -> dict:
    buttons = [{"type": "button", "action_id": VIEW_METRICS_ACTION_ID, "url": customer_url(action),
                "text": {"type": "plain_text", "text": "View Live Metrics"}}]
    if action.to_level >= Level.THROTTLE:
        buttons.append({"type": "button", "action_id": OVERRIDE_ACTION_ID, "style": "danger",
                        "value": override_value(action),
                        "text": {"type": "plain_text", "text": "Override Throttle"}})
    return {"type": "actions", "block_id": f"guard_action_{action.pk}", "elements": buttons}


def slack_blocks(action: GuardAction, *, note: str = "") -> dict:
    """The Block Kit message; `note` (an override done from Slack) replaces the buttons."""
    payload = action_payload(action)
    margin = f"{Decimal(payload['marginPct']):.1f}%" if payload["marginPct"] is not None \
        else "no revenue"
    fields = [("Tenant", payload["tenantId"]), ("Customer", payload["customerId"]),
              ("Product", payload["productId"] or "all products"), ("Current margin", margin),
              ("Action taken", f"{payload['actionTaken']} ({payload['mode']})"),
              ("Estimated savings", f"${payload['estimatedSavingsUsdPerHour']}/hr (estimate)"
               if payload["estimatedSavingsUsdPerHour"] else "n/a"),
              ("Recommended action", payload["recommendedAction"]["text"]
               if payload["recommendedAction"] else "none")]
    return {"text": action_title(action),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text",
                                            "text": "Profitability guardrail triggered"}},
                {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"}
                                               for k, v in fields]},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": payload["reason"]}]},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]} if note
                else slack_buttons(action),
            ]}


def action_content(action: GuardAction) -> Content:
    return Content(title=action_title(action), payload=action_payload(action),
                   slack=slack_blocks(action))


def action_notify(*, action: GuardAction, policy: GuardPolicy) -> list[Delivery]:
    """Queue one delivery per channel of the policy and try each once now; the evaluation job
    retries failures."""
    now = datetime.now(timezone.utc)
    deliveries = notifications.notify(tenant=action.tenant, owner=policy, subject=action,
                                      now=now)
    for delivery in deliveries:
        notifications.delivery_attempt(delivery=delivery, now=now)
    return deliveries
