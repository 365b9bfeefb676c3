"""“Override throttle” pressed in a Margin Guard Slack message: who pressed it, whether they may,
the audited override, and the message updated to say so (or a reply saying no)."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aforo import outbound
from aforo.models import Membership, Tenant
from aforo.permissions import GUARD_ROLES
from margin_guard.models import GuardAction
from margin_guard.notify import OVERRIDE_ACTION_ID, slack_blocks
from margin_guard.services import guard_override, policy_for
from notifications.slack import slack_respond, slack_user

log = logging.getLogger(__name__)
DEFAULT_OVERRIDE = timedelta(minutes=60)  # a scope no policy governs any more


@dataclass(frozen=True)
class SlackOutcome:
    overridden: bool
    message: str  # what Slack shows: the update, or the refusal


def _refusal(response_url: str, text: str) -> SlackOutcome:
    _answer(response_url, {"response_type": "ephemeral", "replace_original": False,
                           "text": text})
    return SlackOutcome(False, text)


def _answer(response_url: str, message: dict[str, Any]) -> None:
    if not response_url:
        return
    try:
        slack_respond(response_url, message)
    except outbound.OutboundError as exc:  # the override stands; Slack just shows no update
        log.warning("Slack response_url refused the update: %s", exc.history)


def guard_slack_interaction(*, payload: dict[str, Any], now: datetime) -> SlackOutcome:
    """Act on a verified Slack block_actions payload. Only “Override throttle” does anything;
    the Slack member must be linked to an Aforo user who is OWNER or ADMIN in the tenant the
    button names."""
    response_url = str(payload.get("response_url") or "")
    actions = payload.get("actions") or []
    pressed = next((a for a in actions if isinstance(a, dict)
                    and a.get("action_id") == OVERRIDE_ACTION_ID), None)
    if pressed is None:
        return SlackOutcome(False, "")  # View Live Metrics is a link: nothing to do
    try:
        value = json.loads(pressed.get("value") or "")
        tenant_slug, customer_id = str(value["tenant"]), str(value["customerId"])
        product_id, action_id = str(value.get("productId") or ""), int(value["actionId"])
    except (ValueError, KeyError, TypeError):
        return _refusal(response_url, "This button does not name a Margin Guard action.")
    tenant = Tenant.objects.filter(slug=tenant_slug).first()
    action = GuardAction.objects.filter(pk=action_id, tenant=tenant,
                                        customer_id=customer_id).first() if tenant else None
    if action is None:
        return _refusal(response_url, "That Margin Guard action no longer exists.")
    team = (payload.get("team") or {}).get("id", "")
    member = (payload.get("user") or {}).get("id", "")
    user = slack_user(str(team), str(member))
    membership = Membership.objects.filter(tenant=tenant, user=user).first() if user else None
    if membership is None or membership.role not in GUARD_ROLES:
        who = f"Aforo user {user.username}" if user else "no Aforo user"
        return _refusal(response_url, (
            f"Not overridden: your Slack account is linked to {who} with no owner or admin "
            f"role in {tenant.name or tenant.slug}. Ask an owner or admin, or use the "
            "Margin Guard page."))
    policy = policy_for(tenant, customer_id, product_id)
    duration = timedelta(minutes=policy.override_minutes) if policy else DEFAULT_OVERRIDE
    until = now + duration
    guard_override(tenant=tenant, customer_id=customer_id, product_id=product_id, until=until,
                   actor=f"{user.username} (Slack)", now=now)
    note = (f":white_check_mark: Overridden by {user.username} from Slack: full access until "
            f"{until:%Y-%m-%d %H:%M} UTC (audited).")
    message = slack_blocks(action, note=note)
    _answer(response_url, {"replace_original": True, **message})
    return SlackOutcome(True, note)
