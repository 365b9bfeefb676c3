"""Slack interactivity: verifying that a request comes from Slack (the v0 HMAC signature over
`v0:<timestamp>:<body>` with the app's signing secret, the timestamp within five minutes),
finding the Aforo user a Slack member is linked to, and answering on the message's
response_url (through aforo.outbound, like every request we send)."""
from __future__ import annotations

import hashlib
import hmac
from typing import Any

from django.conf import settings

from aforo import outbound
from aforo.errors import DomainError
from aforo.money import json_bytes
from notifications.models import SlackUserLink

TIMESTAMP_WINDOW_S = 5 * 60  # Slack's recommendation: older requests may be replays


class SlackSignatureInvalid(DomainError):
    code = "slack_signature_invalid"
    status = 401


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """`v0=<hex HMAC-SHA256 of "v0:<timestamp>:<body>">`, as Slack signs a request."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def slack_request_verify(*, body: bytes, timestamp: str, signature: str, now: float,
                         secret: str | None = None) -> None:
    """Raise SlackSignatureInvalid unless Slack signed this body within the window."""
    secret = settings.AFORO_SLACK_SIGNING_SECRET if secret is None else secret
    if not secret:
        raise SlackSignatureInvalid("Slack interactivity is not configured: set "
                                    "AFORO_SLACK_SIGNING_SECRET to the Slack app's signing "
                                    "secret.")
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        raise SlackSignatureInvalid("The request has no Slack timestamp.",
                                    field="X-Slack-Request-Timestamp") from None
    if abs(now - sent_at) > TIMESTAMP_WINDOW_S:
        raise SlackSignatureInvalid("The Slack timestamp is outside the five-minute window "
                                    "(a replay, or a clock far off).",
                                    field="X-Slack-Request-Timestamp")
    expected = slack_signature(secret, timestamp, body)
    if not hmac.compare_digest(expected, signature or ""):
        raise SlackSignatureInvalid("The Slack signature does not match.",
                                    field="X-Slack-Signature")


def slack_user(team_id: str, slack_user_id: str):
    """The Aforo user a Slack member is linked to, or None."""
    link = (SlackUserLink.objects.select_related("user")
            .filter(team_id=team_id, slack_user_id=slack_user_id).first())
    return link.user if link is not None and link.user.is_active else None


def slack_respond(response_url: str, message: dict[str, Any]) -> str:
    """Post a message update (or an ephemeral reply) to the interaction's response_url."""
    return outbound.post(response_url, json_bytes(message)).history
