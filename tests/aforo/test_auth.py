"""Bearer tokens, X-Tenant-Id and roles: 401 and 403 as JSON errors."""
from __future__ import annotations

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from aforo.models import ApiToken, Role
from tests.conftest import api_client

pytestmark = pytest.mark.django_db


def _error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "field"}
    return body["error"]


def test_no_token_is_401_with_a_json_error(tenant):
    response = APIClient().get("/api/v1/customers", HTTP_X_TENANT_ID=tenant.slug)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert _error(response)["code"] == "not_authenticated"


@pytest.mark.parametrize("header", ["Bearer afo_wrong", "Bearer ", "Token abc", "Basic eDp5"])
def test_a_bad_token_is_401(tenant, header):
    response = APIClient().get("/api/v1/customers", HTTP_AUTHORIZATION=header,
                               HTTP_X_TENANT_ID=tenant.slug)
    assert response.status_code == 401
    assert _error(response)["code"] == "authentication_failed"


def test_a_revoked_token_is_401(tenant):
    client = api_client(tenant)
    ApiToken.objects.filter(tenant=tenant).update(revoked_at="2026-01-01T00:00:00Z")
    assert client.get("/api/v1/customers").status_code == 401


def test_missing_tenant_header_is_403(tenant):
    response = api_client(tenant, send_tenant=False).get("/api/v1/customers")
    assert response.status_code == 403
    assert _error(response)["code"] == "tenant_required"


def test_unknown_tenant_header_is_403(tenant):
    client = api_client(tenant, send_tenant=False)
    response = client.get("/api/v1/customers", HTTP_X_TENANT_ID="no-such-tenant")
    assert response.status_code == 403


def test_a_token_of_another_tenant_is_403(tenant, other_tenant):
    client = api_client(tenant, send_tenant=False)
    response = client.get("/api/v1/customers", HTTP_X_TENANT_ID=other_tenant.slug)
    assert response.status_code == 403
    assert "no role in that tenant" in _error(response)["message"]


@pytest.mark.parametrize("role", list(Role))
def test_every_role_may_read(tenant, role):
    assert api_client(tenant, role).get("/api/v1/customers").status_code == 200


@pytest.mark.parametrize("role,status", [(Role.VIEWER, 403), (Role.DEVELOPER, 201),
                                         (Role.OWNER, 201)])
def test_writes_follow_the_role_set(tenant, role, status):
    response = api_client(tenant, role).post("/api/v1/customers", {"customerId": f"c-{role}"},
                                             format="json")
    assert response.status_code == status
    if status == 403:
        assert "VIEWER may not do this" in _error(response)["message"]


def test_token_is_stored_only_as_a_hash(tenant, capsys):
    call_command("create_api_token", tenant=tenant.slug, role="DEVELOPER", user="svc-ingest")
    raw = capsys.readouterr().out.strip()
    assert raw.startswith("afo_") and len(raw) > 40
    token = ApiToken.objects.get(tenant=tenant)
    assert token.token_hash == ApiToken.hash_token(raw) and raw not in token.token_hash
    assert token.user.username == "svc-ingest"
    assert token.user.memberships.get(tenant=tenant).role == Role.DEVELOPER
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_X_TENANT_ID=tenant.slug)
    assert client.get("/api/v1/customers").status_code == 200


def test_create_api_token_names_an_unknown_tenant():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No tenant"):
        call_command("create_api_token", tenant="nope", role="OWNER")


def test_validation_errors_name_the_field(api):
    response = api.post("/api/v1/customers", {"customerId": "x", "tier": "GOLD"}, format="json")
    assert response.status_code == 400
    assert _error(response)["field"] == "tier"


def test_unknown_api_path_is_a_json_404(api):
    response = api.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_domain_errors_become_json_errors_with_api_field_names():
    from aforo.errors import Conflict, DomainError, NotFound, api_field, exception_handler

    assert api_field("cap_usd") == "capUsd" and api_field("lines.0.unit_price") == \
        "lines.0.unitPrice" and api_field("capUsd") == "capUsd" and api_field(None) is None
    for error, status in ((DomainError("The cap must be more than $0.", field="cap_usd"), 400),
                          (NotFound("No such budget."), 404), (Conflict("Already done."), 409)):
        response = exception_handler(error, {})
        assert response.status_code == status
        assert response.data["error"]["message"] == error.message
    assert exception_handler(DomainError("x", field="cap_usd"), {}).data["error"]["field"] \
        == "capUsd"
