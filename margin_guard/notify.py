"""Guard notifications: Slack (Block Kit), PagerDuty Events API v2, email and signed webhooks."""
from __future__ import annotations

import json
import time
import urllib.request

from django.core.mail import send_mail

from budgets.delivery import TIMEOUT_S, webhook_signature
from margin_guard.models import GuardAction, GuardPolicy, Level


def action_payload(action: GuardAction) -> dict:
    return {
        "tenantId": action.tenant.slug, "customerId": action.customer_id,
        "productId": action.product_id or None, "fromLevel": Level(action.from_level).label,
        "toLevel": Level(action.to_level).label, "mode": action.mode,
        "marginPct": str(action.margin_pct) if action.margin_pct is not None else None,
        "costUsd": str(action.cost_usd), "revenueUsd": str(action.revenue_usd),
        "eventsEvaluated": action.events_evaluated, "reason": action.reason,
        "actor": action.actor, "at": action.at.isoformat(),
    }


def slack_blocks(action: GuardAction) -> dict:
    payload = action_payload(action)
    fields = [("Tenant", payload["tenantId"]), ("Customer", payload["customerId"]),
              ("Product", payload["productId"] or "all products"),
              ("Margin", f"{payload['marginPct']}%" if payload["marginPct"] else "no revenue"),
              ("Action taken", f"{payload['fromLevel']} → {payload['toLevel']} "
                               f"({payload['mode']})")]
    return {"text": f"Margin Guard: {payload['customerId']} → {payload['toLevel']}",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text",
                                            "text": "Profitability guardrail triggered"}},
                {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"}
                                               for k, v in fields]},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": payload["reason"]}]},
            ]}


def _post(url: str, body: bytes, headers: dict | None = None) -> None:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S):
        pass


def action_notify(*, action: GuardAction, policy: GuardPolicy) -> None:
    channel, destination = policy.notify_channel, policy.notify_destination
    if channel == "SLACK":
        _post(destination, json.dumps(slack_blocks(action)).encode())
    elif channel == "EMAIL":
        send_mail(subject=f"[Aforo] Margin Guard: {action.customer_id} "
                          f"{Level(action.to_level).label}",
                  message=json.dumps(action_payload(action), indent=2), from_email=None,
                  recipient_list=[destination])
    elif channel == "PAGERDUTY":
        event = {"routing_key": destination, "event_action": "trigger",
                 "dedup_key": f"aforo-guard-{action.tenant.slug}-{action.customer_id}",
                 "payload": {"summary": f"Margin Guard: {action.customer_id} "
                                        f"{Level(action.to_level).label}",
                             "source": "aforo", "severity": "warning",
                             "custom_details": action_payload(action)}}
        _post("https://events.pagerduty.com/v2/enqueue", json.dumps(event).encode())
    elif channel == "WEBHOOK":
        body = json.dumps(action_payload(action)).encode()
        _post(destination, body, {"X-Aforo-Signature": webhook_signature(
            policy.signing_secret, int(time.time()), body)})
