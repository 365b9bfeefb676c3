"""Slack interactivity: the v0 signature (valid, stale, wrong secret), and “Override throttle”
pressed in the real message: an audited override for a linked OWNER/ADMIN with the message
updated through the response_url, a refusal for anyone else, nothing at all when forged."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from aforo.models import Role
from aforo.tenancy import membership_set
from margin_guard import decision
from margin_guard.models import GuardAction, GuardState, Level
from margin_guard.notify import slack_blocks
from margin_guard.services import guard_evaluate, guard_policy_create
from notifications.models import SlackUserLink
from notifications.slack import (
    SlackSignatureInvalid,
    slack_request_verify,
    slack_signature,
)
from tests.factories import ingest

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
URL = "/api/v1/margin-guard/slack/interactions"


def test_a_signature_within_the_window_is_accepted_and_anything_else_is_not():
    body = b"payload=%7B%7D"
    now = 1_700_000_000
    good = slack_signature(SECRET, str(now), body)
    slack_request_verify(body=body, timestamp=str(now), signature=good, now=now, secret=SECRET)
    # five minutes either way still pass; a second more is a replay
    slack_request_verify(body=body, timestamp=str(now), signature=good, now=now + 300,
                         secret=SECRET)
    for seen_at in (now + 301, now - 301):
        with pytest.raises(SlackSignatureInvalid, match="five-minute window"):
            slack_request_verify(body=body, timestamp=str(now), signature=good, now=seen_at,
                                 secret=SECRET)
    with pytest.raises(SlackSignatureInvalid, match="does not match"):
        slack_request_verify(body=body, timestamp=str(now), now=now, secret=SECRET,
                             signature=slack_signature("another-secret", str(now), body))
    with pytest.raises(SlackSignatureInvalid, match="does not match"):
        slack_request_verify(body=body + b"x", timestamp=str(now), signature=good, now=now,
                             secret=SECRET)
    with pytest.raises(SlackSignatureInvalid, match="no Slack timestamp"):
        slack_request_verify(body=body, timestamp="", signature=good, now=now, secret=SECRET)
    with pytest.raises(SlackSignatureInvalid, match="not configured"):
        slack_request_verify(body=body, timestamp=str(now), signature=good, now=now, secret="")
    # Slack's own documented example signs to the value it documents
    example = ("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
               "channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&"
               "user_name=roadrunner&command=%2Fwebhook-collect&text=&"
               "response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F"
               "397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121."
               "803a0bc887a14d10d2c447fce8b6703c")
    assert slack_signature(SECRET, "1531420618", example.encode()) == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503")


@pytest.fixture
def throttled(store, tenant, settings, http_sink):
    """cust_s throttled by a real evaluation (margin 4.76%), its Slack message as sent."""
    settings.AFORO_SLACK_SIGNING_SECRET = SECRET
    now = datetime.now(timezone.utc).replace(microsecond=0)
    ingest(tenant, [{"eventId": f"s-{n}", "occurredAt": now, "customerId": "cust_s",
                     "productId": "prod_chat", "model": "gpt-4o", "cogsUsd": "1.00",
                     "revenueUsd": "1.05"} for n in range(3)])
    guard_policy_create(tenant=tenant, name="Floor", scope="TENANT", mode="ENFORCE",
                        min_events=1, override_minutes=90,
                        downgrade_map={"gpt-4o": "gpt-4o-mini"})
    result = guard_evaluate(tenant=tenant, customer_id="cust_s", product_id="prod_chat",
                            now=now)
    assert result.action.to_level == Level.THROTTLE
    return result.action


def press(action, *, slack_user: str, response_url: str, secret: str = SECRET,
          sent_at: int | None = None, client: Client | None = None):
    (buttons,) = [b for b in slack_blocks(action)["blocks"] if b["type"] == "actions"]
    override = next(e for e in buttons["elements"] if e["action_id"] == "guard_override")
    payload = {"type": "block_actions", "team": {"id": "T0AFORO"},
               "user": {"id": slack_user, "username": slack_user},
               "response_url": response_url, "actions": [override]}
    body = urlencode({"payload": json.dumps(payload)}).encode()
    sent_at = int(time.time()) if sent_at is None else sent_at
    return (client or Client()).generic(
        "POST", URL, body, content_type="application/x-www-form-urlencoded",
        HTTP_X_SLACK_REQUEST_TIMESTAMP=str(sent_at),
        HTTP_X_SLACK_SIGNATURE=slack_signature(secret, str(sent_at), body))


def link(tenant, username: str, slack_user: str, role: Role | None):
    user = get_user_model().objects.create_user(username, password="x")
    if role is not None:
        membership_set(tenant=tenant, user=user, role=role)
    SlackUserLink.objects.create(team_id="T0AFORO", slack_user_id=slack_user, user=user)
    return user


@pytest.mark.django_db(transaction=True)
def test_a_linked_admin_overrides_from_slack_and_the_message_says_so(throttled, tenant,
                                                                     http_sink):
    message = slack_blocks(throttled)
    (buttons,) = [b for b in message["blocks"] if b["type"] == "actions"]
    metrics = next(e for e in buttons["elements"] if e["action_id"] == "guard_view_metrics")
    assert metrics["url"].endswith("/console/billing/customers/cust_s/")
    link(tenant, "ana", "U0ADMIN", Role.ADMIN)
    before = datetime.now(timezone.utc)
    answer = press(throttled, slack_user="U0ADMIN", response_url=http_sink.url + "/update")
    assert answer.status_code == 200, answer.content
    assert answer.json()["overridden"] is True
    state = GuardState.objects.get(tenant=tenant, customer_id="cust_s")
    assert timedelta(minutes=89) < state.override_until - before < timedelta(minutes=91)
    audit = GuardAction.objects.filter(tenant=tenant).first()
    assert audit.actor == "ana (Slack)" and audit.reason.startswith("override")
    assert decision.decide(tenant.slug, customer_id="cust_s", product_id="prod_chat",
                           model="gpt-4o").decision == "ALLOW"
    (update,) = [r for r in http_sink.requests if r["path"] == "/hook/update"]
    assert update["json"]["replace_original"] is True
    text = json.dumps(update["json"]["blocks"])
    assert "Overridden by ana from Slack" in text and "guard_override" not in text


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("slack_user", "role", "says"), [
    ("U0VIEWER", Role.VIEWER, "linked to Aforo user vera with no owner or admin role"),
    ("U0BILLING", Role.BILLING_ADMIN, "linked to Aforo user vera with no owner or admin role"),
    ("U0STRANGER", None, "linked to no Aforo user"),
])
def test_anyone_else_is_told_no_and_nothing_changes(throttled, tenant, http_sink, slack_user,
                                                    role, says):
    if slack_user != "U0STRANGER":
        link(tenant, "vera", slack_user, role)
    answer = press(throttled, slack_user=slack_user, response_url=http_sink.url + "/reply")
    assert answer.status_code == 200
    assert answer.json()["overridden"] is False and says in answer.json()["message"]
    (reply,) = [r for r in http_sink.requests if r["path"] == "/hook/reply"]
    assert reply["json"]["response_type"] == "ephemeral" and says in reply["json"]["text"]
    assert GuardState.objects.get(tenant=tenant, customer_id="cust_s").override_until is None
    assert GuardAction.objects.filter(tenant=tenant).count() == 1  # only the throttle


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("secret", "age_s", "says"), [
    ("not-the-apps-secret", 0, "does not match"),
    (SECRET, 301, "five-minute window"),
])
def test_forged_or_stale_requests_do_nothing(throttled, tenant, http_sink, secret, age_s,
                                             says):
    link(tenant, "ana", "U0ADMIN", Role.OWNER)
    answer = press(throttled, slack_user="U0ADMIN", response_url=http_sink.url + "/update",
                   secret=secret, sent_at=int(time.time()) - age_s)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "slack_signature_invalid"
    assert says in answer.json()["error"]["message"]
    assert GuardState.objects.get(tenant=tenant, customer_id="cust_s").override_until is None
    assert not [r for r in http_sink.requests if r["path"] == "/hook/update"]
