"""The OpenAPI schema, docs served offline, the admin and the console's session login."""
from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from aforo.tenancy import membership_set, tenant_create

pytestmark = pytest.mark.django_db


def test_openapi_schema_lists_the_api():
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/customers" in schema["paths"]
    assert "/api/v1/events" in schema["paths"]
    assert "/api/v1/rate-cards/model-prices" in schema["paths"]
    assert "bearer" in schema["components"]["securitySchemes"]


def test_docs_load_their_assets_locally():
    client = Client()
    html = client.get("/api/docs/").content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources, html
    for src in sources:
        assert not src.startswith(("http://", "https://", "//")), src
    for asset in (s for s in sources if s.startswith("/static/")):
        assert client.get(asset).status_code == 200, asset


def test_admin_login_page_renders():
    assert Client().get("/admin/login/").status_code == 200


def test_console_requires_login_and_shows_the_tenant():
    client = Client()
    assert client.get("/console/").status_code == 302
    user = get_user_model().objects.create_user("ana", password="s3cret-pass")
    acme = tenant_create(slug="acme-console", name="Acme")
    membership_set(tenant=acme, user=user, role="VIEWER")
    response = client.post("/console/login/", {"username": "ana", "password": "s3cret-pass"})
    assert response.status_code == 302
    page = client.get("/console/").content.decode()
    assert "COGS &amp; Margins" in page and "Acme" in page
    assert client.post("/console/logout/").status_code == 302
    assert client.get("/console/").status_code == 302


def test_tenant_switcher_only_switches_to_own_tenants():
    user = get_user_model().objects.create_user("bo", password="s3cret-pass")
    first = tenant_create(slug="aa-first", name="First Co")
    second = tenant_create(slug="bb-second", name="Second Co")
    tenant_create(slug="cc-foreign", name="Foreign Co")
    membership_set(tenant=first, user=user, role="VIEWER")
    membership_set(tenant=second, user=user, role="OWNER")
    client = Client()
    client.force_login(user)
    assert "First Co</strong>" in client.get("/console/").content.decode()
    client.post("/console/tenant/", {"tenant": "bb-second"})
    assert "Second Co</strong>" in client.get("/console/").content.decode()
    client.post("/console/tenant/", {"tenant": "cc-foreign"})
    assert "Second Co</strong>" in client.get("/console/").content.decode()


def test_the_schema_generates_without_warnings():
    from django.core.management import call_command

    # --fail-on-warn turns any unresolved serializer, auth class or name clash into an error
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
