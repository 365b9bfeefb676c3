"""Secrets stay secret: signing secrets shown once and rotatable, destinations masked for
VIEWER and DEVELOPER, nothing of a platform policy's destination shown to tenants, and every
webhook signed (docs/webhooks.md's verification code checks a real delivery)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from aforo.models import Role
from aforo.outbound import signature_valid
from budgets import services
from margin_guard.models import GuardPolicy
from tests.conftest import api_client
from tests.factories import ingest

NOW = datetime.now(timezone.utc).replace(microsecond=0)
SLACK = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
RULE = {"name": "r", "metric": "COST", "comparison": "GT", "threshold": 1, "window": "1h",
        "channel": "SLACK", "destination": SLACK}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


@pytest.mark.django_db
def test_a_rule_secret_is_shown_once_and_rotates(api):
    created = api.post("/api/v1/cogs/alert-rules", RULE, format="json").json()
    secret = created["signingSecret"]
    assert len(secret) >= 32
    shown = api.get(f"/api/v1/cogs/alert-rules/{created['id']}").json()
    assert "signingSecret" not in shown
    assert secret not in str(api.get("/api/v1/cogs/alert-rules").json())
    rotated = api.post(f"/api/v1/cogs/alert-rules/{created['id']}/signing-secret")
    assert rotated.status_code == 201
    assert rotated.json()["signingSecret"] not in (secret, "")


@pytest.mark.django_db
def test_budgets_have_their_own_secret_shown_once(api):
    created = api.post("/api/v1/cogs/budgets", {"name": "b", "period": "MONTHLY", "capUsd": 5},
                       format="json").json()
    assert len(created["signingSecret"]) >= 32
    assert "signingSecret" not in api.get(f"/api/v1/cogs/budgets/{created['id']}").json()
    rotated = api.post(f"/api/v1/cogs/budgets/{created['id']}/signing-secret").json()
    assert rotated["signingSecret"] != created["signingSecret"]


@pytest.mark.django_db
@pytest.mark.parametrize("role, masked", [(Role.VIEWER, True), (Role.DEVELOPER, True),
                                          (Role.BILLING_ADMIN, False), (Role.OWNER, False)])
def test_destinations_are_masked_for_viewers_and_developers(tenant, store, role, masked):
    rule = api_client(tenant).post("/api/v1/cogs/alert-rules", RULE, format="json").json()
    api_client(tenant).post("/api/v1/cogs/budgets", {
        "name": "b", "period": "MONTHLY", "capUsd": 5, "notifyChannel": "EMAIL",
        "notifyDestination": "finance.team@example.com"}, format="json")
    reader = api_client(tenant, role)
    rule_shown = reader.get(f"/api/v1/cogs/alert-rules/{rule['id']}").json()["destination"]
    listed = str(reader.get("/api/v1/cogs/alert-rules").json())
    budget = reader.get("/api/v1/cogs/budgets").json()["content"][0]["notifyDestination"]
    if masked:
        assert "XXXXSECRET" not in rule_shown and "XXXXSECRET" not in listed
        assert rule_shown.startswith("https://hooks.slack.com/")
        assert budget == "f…@example.com"
    else:
        assert rule_shown == SLACK and budget == "finance.team@example.com"


@pytest.mark.django_db
def test_tenants_see_nothing_of_a_platform_policys_destination(tenant):
    GuardPolicy.objects.create(tenant=None, name="operator", scope="PLATFORM", mode="ENFORCE",
                               notify_channel="SLACK", notify_destination=SLACK)
    (shown,) = api_client(tenant).get("/api/v1/margin-guard/policies").json()["content"]
    assert (shown["notifyChannel"], shown["notifyDestination"]) == (None, None)
    assert "signingSecret" not in shown


@pytest.mark.django_db
def test_a_guard_policy_secret_is_shown_once(api):
    created = api.post("/api/v1/margin-guard/policies", {"name": "p", "scope": "TENANT"},
                       format="json").json()
    assert len(created["signingSecret"]) >= 32
    assert "signingSecret" not in api.get(
        f"/api/v1/margin-guard/policies/{created['id']}").json()
    rotated = api.post(f"/api/v1/margin-guard/policies/{created['id']}/signing-secret")
    assert rotated.json()["signingSecret"] != created["signingSecret"]


def _docs_verifier():
    """The verification example of docs/webhooks.md, run as written."""
    code = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, str(DOCS), "exec"), namespace)  # noqa: S102 (our own docs)
    return namespace["verify"]


@pytest.mark.django_db
def test_a_budget_webhook_is_signed_with_its_secret_and_verifies_as_the_docs_say(
        store, tenant, http_sink):
    verify = _docs_verifier()
    ingest(tenant, [{"eventId": "e", "occurredAt": NOW - timedelta(minutes=5),
                     "customerId": "c", "productId": "p", "cogsUsd": "9"}], now=NOW)
    budget = services.budget_create(tenant=tenant, name="b", period="MONTHLY",
                                    cap_usd=Decimal(5), notify_channel="WEBHOOK",
                                    notify_destination=http_sink.url)
    services.alerts_evaluate(now=NOW, tenant=tenant)
    posted = [r for r in http_sink.requests if r["path"] == "/hook"]
    assert posted, "the budget sent no webhook"
    for request in posted:
        header = request["headers"]["X-Aforo-Signature"]
        assert verify(budget.signing_secret, header, request["body"])
        assert signature_valid(budget.signing_secret, header, request["body"])
        assert not verify("someone-else", header, request["body"])
        assert request["json"]["deliveryId"] == request["headers"]["X-Aforo-Delivery"]
