"""The export schedules API: CRUD, runs, roles, tenancy, masking and 400s."""
from __future__ import annotations

import pytest

from aforo.models import Role
from tests.conftest import api_client
from tests.exports.conftest import ledger_events, pg_rows
from tests.factories import ingest

pytestmark = pytest.mark.django_db
BASE = "/api/v1/exports/schedules"


def test_schedule_lifecycle_through_the_api(store, tenant, warehouse_pg):
    dsn, table = warehouse_pg
    # The suite's PostgreSQL trusts loopback: the password is sent, and ignored there.
    user, rest = dsn.split("//", 1)[1].split("@", 1)
    secret_dsn = f"postgres://{user.split(':')[0]}:hunter2@{rest}"
    owner = api_client(tenant, Role.BILLING_ADMIN)
    created = owner.post(BASE, {"name": "warehouse", "kind": "POSTGRES",
                                "destination": secret_dsn, "tableName": table,
                                "lagSeconds": 0, "chunkRows": 3}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["signingSecret"] is None and body["lastRun"] is None
    assert "hunter2" not in created.content.decode()
    schedule_id = body["id"]
    assert body["destination"] == secret_dsn.replace(":hunter2@", ":***@")
    listed = api_client(tenant, Role.VIEWER).get(BASE).json()
    assert [s["id"] for s in listed] == [schedule_id]
    assert "hunter2" not in str(listed)
    # a VIEWER reads, never writes
    viewer = api_client(tenant, Role.VIEWER)
    assert viewer.post(f"{BASE}/{schedule_id}/runs").status_code == 403
    assert viewer.delete(f"{BASE}/{schedule_id}").status_code == 403
    # run now: the password works (the real DSN is kept), entries land
    ingest(tenant, ledger_events("a", 7))
    import time

    time.sleep(1.1)
    ran = owner.post(f"{BASE}/{schedule_id}/runs")
    assert ran.status_code == 202, ran.content
    assert ran.json()["state"] == "SUCCEEDED" and ran.json()["rowsDelivered"] == 7
    assert pg_rows(dsn, table, "SELECT count(*) FROM {table}") == [(7,)]
    runs = owner.get(f"{BASE}/{schedule_id}/runs").json()
    assert runs["totalElements"] == 1 and runs["content"][0]["trigger"] == "API"
    # change and delete
    # what a GET shows, sent back with a change: the masked password keeps the real one
    shown = owner.get(f"{BASE}/{schedule_id}").json()
    patched = owner.patch(f"{BASE}/{schedule_id}", {"intervalMinutes": 15, "enabled": False,
                                                    "destination": shown["destination"]},
                          format="json")
    from exports.models import ExportSchedule

    assert ExportSchedule.objects.get(pk=schedule_id).dsn() == secret_dsn
    assert patched.status_code == 200
    assert (patched.json()["intervalMinutes"], patched.json()["enabled"]) == (15, False)
    assert owner.delete(f"{BASE}/{schedule_id}").status_code == 204
    assert owner.get(f"{BASE}/{schedule_id}").status_code == 404


def test_webhook_schedules_show_their_secret_once_and_rotate_it(db, tenant, other_tenant,
                                                                settings):
    settings.AFORO_ALLOW_HTTP_WEBHOOKS = False
    owner = api_client(tenant)
    created = owner.post(BASE, {"name": "hook", "kind": "WEBHOOK",
                                "destination": "https://hooks.example.com/aforo"},
                         format="json").json()
    assert len(created["signingSecret"]) == 64 and created["chunkRows"] == 1000
    shown = owner.get(f"{BASE}/{created['id']}").json()
    assert "signingSecret" not in shown
    rotated = owner.post(f"{BASE}/{created['id']}/signing-secret").json()["signingSecret"]
    assert rotated != created["signingSecret"]
    masked = api_client(tenant, Role.DEVELOPER).get(f"{BASE}/{created['id']}").json()
    assert masked["destination"] == "https://hooks.example.com/…"
    # another tenant's schedule does not exist for this one
    assert api_client(other_tenant).get(f"{BASE}/{created['id']}").status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "FTP", "destination": "ftp://x"}, "kind"),
    ({"kind": "WEBHOOK", "destination": "http://127.0.0.1/x"}, "destination"),
    ({"kind": "POSTGRES", "destination": "mysql://h/db", "tableName": "t"}, "destination"),
    ({"kind": "POSTGRES", "destination": "postgres://h.example.com/db", "tableName": "a-b"},
     "tableName"),
    ({"kind": "CLICKHOUSE", "destination": "clickhouse://h.example.com:9000/db",
      "tableName": "t", "chunkRows": 0}, "chunkRows"),
    ({"kind": "WEBHOOK", "destination": "https://hooks.example.com/x", "lagSeconds": -1},
     "lagSeconds"),
])
def test_bad_schedules_are_400s_naming_the_field(db, tenant, body, field):
    answer = api_client(tenant).post(BASE, {"name": "bad", **body}, format="json")
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["field"] == field


def test_names_are_unique_per_tenant(db, tenant):
    owner = api_client(tenant)
    body = {"name": "same", "kind": "WEBHOOK", "destination": "https://hooks.example.com/x"}
    assert owner.post(BASE, body, format="json").status_code == 201
    again = owner.post(BASE, body, format="json")
    assert again.status_code == 409 and again.json()["error"]["field"] == "name"
