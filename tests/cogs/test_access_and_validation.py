"""Who may read the dashboard and change the settings; bad periods and pages are 400s."""
from __future__ import annotations

import pytest

from aforo.models import Role
from tests.conftest import api_client

pytestmark = pytest.mark.django_db
BASE = "/api/v1/analytics/cogs/dashboard"
ENDPOINTS = ["", "/trends", "/cost-composition", "/by-product", "/by-customer", "/by-model",
             "/token-analysis", "/pnl", "/transactions", "/anomalies"]
SETTINGS = "/api/v1/analytics/cogs/settings"


@pytest.mark.parametrize("role", list(Role))
def test_every_role_reads_every_endpoint(store, tenant, role):
    client = api_client(tenant, role)
    for path in ENDPOINTS:
        response = client.get(BASE + path)
        assert response.status_code == 200, (path, response.content)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_without_tenant_header_is_403(tenant, path):
    response = api_client(tenant, send_tenant=False).get(BASE + path)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "tenant_required"


def test_token_of_another_tenant_is_403(tenant, other_tenant):
    client = api_client(tenant, send_tenant=False)
    response = client.get(BASE, HTTP_X_TENANT_ID=other_tenant.slug)
    assert response.status_code == 403
    assert "error" in response.json()


def test_no_token_is_401(tenant):
    from rest_framework.test import APIClient

    assert APIClient().get(BASE, HTTP_X_TENANT_ID=tenant.slug).status_code == 401


@pytest.mark.parametrize(("params", "field"), [
    ({"from": "yesterday"}, "from"),
    ({"from": "2026-02-30"}, "from"),
    ({"to": "2026-13-01"}, "to"),
    ({"from": "2026-06-14T00:00:00"}, "from"),
    ({"from": "2026-06-15", "to": "2026-06-14"}, "from"),
    ({"from": "2020-01-01", "to": "2026-01-01"}, "from"),
])
@pytest.mark.parametrize("path", ["", "/trends", "/transactions", "/anomalies"])
def test_bad_period_is_400_naming_the_field(tenant, path, params, field):
    response = api_client(tenant).get(BASE + path, params)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


@pytest.mark.parametrize(("params", "field"), [({"size": "lots"}, "size"), ({"page": "-1"}, "page"),
                                               ({"size": "0"}, "size")])
def test_bad_page_is_400(tenant, params, field):
    response = api_client(tenant).get(BASE + "/transactions", params)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


def test_one_end_of_the_period_gives_thirty_days(store, tenant):
    from tests.factories import ingest

    ingest(tenant, [{"eventId": "x", "occurredAt": "2026-01-30T12:00:00Z", "cogsUsd": "1"}])
    client = api_client(tenant)
    assert len(client.get(BASE + "/trends", {"from": "2026-01-01"}).json()) == 30
    assert client.get(BASE, {"from": "2026-01-01"}).json()["eventCount"] == 1
    assert client.get(BASE, {"to": "2026-01-29"}).json()["eventCount"] == 0


def test_default_period_is_the_last_30_days_ending_today(store, tenant):
    trends = api_client(tenant).get(BASE + "/trends").json()
    from datetime import datetime, timedelta, timezone

    assert len(trends) == 30
    today = datetime.now(timezone.utc).date()
    assert trends[-1]["date"] == today.isoformat()
    assert trends[0]["date"] == (today - timedelta(days=29)).isoformat()


def test_settings_defaults(tenant):
    assert api_client(tenant, Role.VIEWER).get(SETTINGS).json() == {
        "atRiskFloorPct": 20.0, "highValueFloorPct": 60.0, "anomalyMultiplier": 3.0,
        "fixedCostsPerMonthUsd": None, "timeZone": "UTC",
    }


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.BILLING_ADMIN])
def test_billing_roles_update_settings(tenant, role):
    client = api_client(tenant, role)
    response = client.patch(SETTINGS, {"fixedCostsPerMonthUsd": "1200.50",
                                       "timeZone": "Europe/Madrid"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["fixedCostsPerMonthUsd"] == 1200.5
    assert client.get(SETTINGS).json()["timeZone"] == "Europe/Madrid"
    assert client.patch(SETTINGS, {"fixedCostsPerMonthUsd": None},
                        format="json").json()["fixedCostsPerMonthUsd"] is None


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.VIEWER])
def test_other_roles_cannot_update_settings(tenant, role):
    response = api_client(tenant, role).patch(SETTINGS, {"atRiskFloorPct": 5}, format="json")
    assert response.status_code == 403
    assert api_client(tenant).get(SETTINGS).json()["atRiskFloorPct"] == 20.0


@pytest.mark.parametrize(("body", "field"), [
    ({"timeZone": "Mars/Olympus"}, "timeZone"),
    ({"atRiskFloorPct": 70}, "atRiskFloorPct"),
    ({"highValueFloorPct": 101}, "highValueFloorPct"),
    ({"anomalyMultiplier": "0.5"}, "anomalyMultiplier"),
    ({"fixedCostsPerMonthUsd": "-1"}, "fixedCostsPerMonthUsd"),
    ({"anomalyMultiplier": "lots"}, "anomalyMultiplier"),
])
def test_bad_settings_are_400_and_change_nothing(tenant, body, field):
    client = api_client(tenant)
    response = client.patch(SETTINGS, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field
    assert client.get(SETTINGS).json()["atRiskFloorPct"] == 20.0


def test_settings_are_in_the_admin(admin_client, tenant):
    assert admin_client.get("/admin/cogs/cogssettings/").status_code == 200
