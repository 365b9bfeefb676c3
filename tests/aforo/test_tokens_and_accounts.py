"""Accounts: tokens expire, are revoked through the API, stop with their user; login attempts
are throttled; production settings behind AFORO_SECURE pass `check --deploy`; create_tenant."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from aforo.models import ApiToken, Membership, Role, Tenant
from aforo.tenancy import api_token_create, membership_set
from tests.conftest import api_client

ROOT = Path(__file__).resolve().parents[2]


def _bearer(raw: str, tenant) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_X_TENANT_ID=tenant.slug)
    return client


@pytest.mark.django_db
def test_tokens_are_listed_without_secrets_issued_once_and_revoked(api, tenant, other_tenant):
    issued = api.post("/api/v1/tokens", {"name": "ci", "role": "DEVELOPER"}, format="json")
    assert issued.status_code == 201
    body = issued.json()
    raw = body["token"]
    assert raw.startswith("afo_") and body["prefix"] == raw[:12]
    assert set(body) == {"id", "name", "role", "prefix", "createdAt", "expiresAt", "lastUsedAt",
                         "token"}
    assert _bearer(raw, tenant).get("/api/v1/customers").status_code == 200
    listed = api.get("/api/v1/tokens").json()["content"]
    assert raw not in str(listed)
    assert {"ci"} <= {t["name"] for t in listed}
    assert all(set(t) == {"id", "name", "role", "prefix", "createdAt", "expiresAt",
                          "lastUsedAt"} for t in listed)
    # another tenant cannot see or revoke it
    assert api_client(other_tenant).delete(f"/api/v1/tokens/{body['id']}").status_code == 404
    assert api.delete(f"/api/v1/tokens/{body['id']}").status_code == 204
    refused = _bearer(raw, tenant).get("/api/v1/customers")
    assert refused.status_code == 401
    assert body["id"] not in [t["id"] for t in api.get("/api/v1/tokens").json()["content"]]


@pytest.mark.django_db
def test_only_owners_and_admins_manage_tokens_and_admins_cannot_mint_owners(tenant):
    for role in (Role.VIEWER, Role.DEVELOPER, Role.BILLING_ADMIN):
        assert api_client(tenant, role).get("/api/v1/tokens").status_code == 403
    admin = api_client(tenant, Role.ADMIN)
    assert admin.post("/api/v1/tokens", {"role": "OWNER"}, format="json").status_code == 403
    assert admin.post("/api/v1/tokens", {"role": "VIEWER"}, format="json").status_code == 201


@pytest.mark.django_db
def test_an_expired_token_is_refused(tenant):
    future = timezone.now() + timedelta(days=1)
    response = api_client(tenant).post("/api/v1/tokens", {"role": "VIEWER",
                                                          "expiresAt": future.isoformat()},
                                       format="json")
    raw = response.json()["token"]
    assert response.json()["expiresAt"] is not None
    assert _bearer(raw, tenant).get("/api/v1/customers").status_code == 200
    ApiToken.objects.filter(prefix=raw[:12]).update(expires_at=timezone.now())
    from aforo.authentication import forget_token

    forget_token(ApiToken.hash_token(raw))
    refused = _bearer(raw, tenant).get("/api/v1/customers")
    assert refused.status_code == 401 and "expired" in refused.json()["error"]["message"]
    past = api_client(tenant).post("/api/v1/tokens", {"role": "VIEWER",
                                                      "expiresAt": "2000-01-01T00:00:00Z"},
                                   format="json")
    assert past.status_code == 400 and past.json()["error"]["field"] == "expiresAt"


@pytest.mark.django_db
def test_a_users_token_stops_when_the_user_is_deactivated_or_loses_the_role(tenant):
    from aforo.authentication import forget_token

    issued = api_token_create(tenant=tenant, role=Role.ADMIN, username="bea")
    client = _bearer(issued.raw, tenant)
    assert client.get("/api/v1/customers").status_code == 200
    Membership.objects.filter(user__username="bea").update(role=Role.VIEWER)
    forget_token(issued.token.token_hash)
    from aforo.authentication import _recent

    _recent.clear()
    assert client.get("/api/v1/customers").status_code == 401
    membership_set(tenant=tenant, user=issued.token.user, role=Role.OWNER)
    _recent.clear()
    assert client.get("/api/v1/customers").status_code == 200  # an owner may hold it
    get_user_model().objects.filter(username="bea").update(is_active=False)
    _recent.clear()
    refused = client.get("/api/v1/customers")
    assert refused.status_code == 401 and "deactivated" in refused.json()["error"]["message"]


@pytest.mark.django_db
def test_console_and_admin_logins_are_throttled_after_five_failures(tenant):
    get_user_model().objects.create_user("cat", password="right-password-1")
    for url in ("/console/login/", "/admin/login/"):
        client = Client(REMOTE_ADDR="203.0.113.9")
        for _ in range(5):
            client.post(url, {"username": "cat", "password": "wrong"})
        locked = client.post(url, {"username": "cat", "password": "right-password-1"})
        assert locked.status_code == 429, url
        assert b"Too many failed sign-ins" in locked.content
        call_command("axes_reset", verbosity=0)
    # another address is not locked out by someone else's failures
    fine = Client(REMOTE_ADDR="203.0.113.10").post(
        "/console/login/", {"username": "cat", "password": "right-password-1"})
    assert fine.status_code == 302


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {**os.environ, "AFORO_SECURE": "true", "ALLOWED_HOSTS": "aforo.example.com",
           "SECRET_KEY": "x7" * 30 + "-aforo-deploy-check", "AFORO_VAR_DIR": str(tmp_path),
           "DEBUG": "false"}
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy",
                             "--fail-level", "WARNING"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
    shown = subprocess.run([sys.executable, "manage.py", "diffsettings", "--all"], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=120).stdout
    for setting in ("SESSION_COOKIE_SECURE = True", "CSRF_COOKIE_SECURE = True",
                    "SECURE_HSTS_SECONDS = 31536000",
                    "SECURE_PROXY_SSL_HEADER = ('HTTP_X_FORWARDED_PROTO', 'https')"):
        assert setting in shown


def test_without_aforo_secure_the_demo_serves_plain_http(settings):
    assert not settings.AFORO_SECURE
    assert not settings.SESSION_COOKIE_SECURE and not getattr(settings, "SECURE_SSL_REDIRECT",
                                                              False)


@pytest.mark.django_db
def test_create_tenant_with_an_owner():
    out = StringIO()
    call_command("create_tenant", "acme", "--name", "Acme Inc", "--owner", "dana", stdout=out)
    tenant = Tenant.objects.get(slug="acme")
    assert tenant.name == "Acme Inc"
    assert Membership.objects.get(tenant=tenant, user__username="dana").role == Role.OWNER
    assert "changepassword dana" in out.getvalue()
    assert not get_user_model().objects.get(username="dana").has_usable_password()
    with pytest.raises(CommandError, match="exists already"):
        call_command("create_tenant", "acme")
    with pytest.raises(CommandError, match="Not a valid tenant"):
        call_command("create_tenant", "Bad Slug!")
    call_command("create_tenant", "solo", stdout=StringIO())
    assert Tenant.objects.get(slug="solo").name == "solo"
