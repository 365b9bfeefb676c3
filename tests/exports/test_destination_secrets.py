"""A DSN's password at rest: encrypted beside a masked destination, put back only to deliver,
never returned; no key, a clear error; the migration seals rows stored in clear."""
from __future__ import annotations

import time

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from aforo.models import Role
from exports import services
from exports.models import ExportSchedule
from tests.conftest import api_client
from tests.console.conftest import console_user
from tests.exports.conftest import CREDENTIALS_KEY, ledger_events, pg_rows
from tests.factories import ingest, latest_migrations, migrate_to

BASE = "/api/v1/exports/schedules"
# Percent-encoded characters and a colon: the password goes back exactly as it was written.
PASSWORD = "hunter2%40x:y"


def _secret_dsn(dsn: str) -> str:
    # The suite's PostgreSQL trusts loopback: the password is sent, and ignored there.
    user, rest = dsn.split("//", 1)[1].split("@", 1)
    return f"postgres://{user.split(':')[0]}:{PASSWORD}@{rest}"


def _raw(schedule_id: int) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT destination, destination_password_sealed "
                       "FROM exports_exportschedule WHERE id = %s", [schedule_id])
        return cursor.fetchone()


@pytest.mark.django_db
def test_the_row_holds_no_password_and_the_delivery_gets_it_back(store, tenant, warehouse_pg,
                                                                  monkeypatch):
    dsn, table = warehouse_pg
    secret_dsn = _secret_dsn(dsn)
    schedule = services.export_schedule_create(
        tenant=tenant, name="wh", kind="POSTGRES", destination=secret_dsn, table_name=table,
        lag_seconds=0).schedule
    destination, sealed = _raw(schedule.pk)
    assert "hunter2" not in destination and "hunter2" not in sealed
    assert destination == secret_dsn.replace(f":{PASSWORD}@", ":***@")
    assert Fernet(CREDENTIALS_KEY.encode()).decrypt(sealed.encode()).decode() == PASSWORD

    opened = []
    real_open = services.destination_open

    def spy(**kwargs):
        opened.append(kwargs["destination"])
        return real_open(**kwargs)

    monkeypatch.setattr(services, "destination_open", spy)
    ingest(tenant, ledger_events("s", 5))
    time.sleep(1.1)
    run = services.export_run(schedule=ExportSchedule.objects.get(pk=schedule.pk))
    assert (run.state, run.error, run.rows_delivered) == ("SUCCEEDED", "", 5)
    assert opened == [secret_dsn]
    assert pg_rows(dsn, table, "SELECT count(*) FROM {table}") == [(5,)]


@pytest.mark.django_db
def test_a_rotated_key_still_opens_the_password(tenant, warehouse_pg, settings):
    dsn, table = warehouse_pg
    schedule = services.export_schedule_create(
        tenant=tenant, name="wh", kind="POSTGRES", destination=_secret_dsn(dsn),
        table_name=table).schedule
    settings.AFORO_CREDENTIALS_KEY = f"{Fernet.generate_key().decode()},{CREDENTIALS_KEY}"
    assert ExportSchedule.objects.get(pk=schedule.pk).dsn() == _secret_dsn(dsn)
    settings.AFORO_CREDENTIALS_KEY = Fernet.generate_key().decode()  # the old key gone
    with pytest.raises(Exception, match="AFORO_CREDENTIALS_KEY"):
        ExportSchedule.objects.get(pk=schedule.pk).dsn()


@pytest.mark.django_db
def test_the_api_and_the_console_never_show_the_password(store, tenant, warehouse_pg):
    dsn, table = warehouse_pg
    owner = api_client(tenant, Role.BILLING_ADMIN)
    created = owner.post(BASE, {"name": "wh", "kind": "POSTGRES", "destination": _secret_dsn(dsn),
                                "tableName": table, "lagSeconds": 0}, format="json")
    assert created.status_code == 201, created.content
    schedule_id = created.json()["id"]
    _destination, sealed = _raw(schedule_id)
    ran = owner.post(f"{BASE}/{schedule_id}/runs")
    assert ran.json()["state"] == "SUCCEEDED", ran.content
    answers = [created, ran, owner.get(BASE), owner.get(f"{BASE}/{schedule_id}"),
               owner.get(f"{BASE}/{schedule_id}/runs"),
               owner.patch(f"{BASE}/{schedule_id}", {"intervalMinutes": 5}, format="json"),
               api_client(tenant, Role.VIEWER).get(BASE)]
    for answer in answers:
        assert answer.status_code in (200, 201, 202), answer.content
        text = answer.content.decode()
        assert "hunter2" not in text and sealed not in text
    assert created.json()["destination"].endswith(f":***@{dsn.split('@', 1)[1]}")
    from django.test import Client

    console = Client()
    console.force_login(console_user(tenant))
    page = console.get("/console/cogs/exports/").content.decode()
    assert "wh" in page and "hunter2" not in page and sealed not in page


@pytest.mark.django_db
def test_a_password_needs_the_key_and_a_dsn_without_one_does_not(store, tenant, warehouse_pg,
                                                                   settings):
    dsn, table = warehouse_pg
    owner = api_client(tenant, Role.BILLING_ADMIN)
    made = owner.post(BASE, {"name": "sealed", "kind": "POSTGRES",
                             "destination": _secret_dsn(dsn), "tableName": table,
                             "lagSeconds": 0}, format="json").json()
    settings.AFORO_CREDENTIALS_KEY = ""
    refused = owner.post(BASE, {"name": "wh", "kind": "POSTGRES",
                                "destination": _secret_dsn(dsn), "tableName": table},
                         format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["field"] == "destination"
    assert "AFORO_CREDENTIALS_KEY" in refused.json()["error"]["message"]
    assert not ExportSchedule.objects.filter(name="wh").exists()
    plain = owner.post(BASE, {"name": "plain", "kind": "POSTGRES",
                              "destination": dsn.replace(dsn.split("//")[1].split("@")[0],
                                                         "postgres"),
                              "tableName": table}, format="json")
    assert plain.status_code == 201, plain.content
    # a stored password cannot be opened without the key: the run fails and says why
    ran = owner.post(f"{BASE}/{made['id']}/runs").json()
    assert ran["state"] == "FAILED" and "AFORO_CREDENTIALS_KEY" in ran["error"]
    # a change that leaves the destination alone needs no key
    assert owner.patch(f"{BASE}/{made['id']}", {"intervalMinutes": 5},
                       format="json").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_migration_seals_a_password_stored_in_clear_and_back(tenant, settings):
    settings.AFORO_CREDENTIALS_KEY = CREDENTIALS_KEY
    old = migrate_to([("exports", "0001_initial")])
    Schedule = old.get_model("exports", "ExportSchedule")
    clear = "postgres://etl:s3cret@warehouse.example.com:5432/dw"
    kept = {"tenant_id": tenant.pk, "next_run_at": "2026-12-01T00:00:00Z", "table_name": "t"}
    with_password = Schedule.objects.create(name="a", kind="POSTGRES", destination=clear, **kept)
    without = Schedule.objects.create(name="b", kind="CLICKHOUSE",
                                      destination="clickhouse://ch.example.com/dw", **kept)
    hook = Schedule.objects.create(name="c", kind="WEBHOOK",
                                   destination="https://hooks.example.com/x", tenant_id=tenant.pk,
                                   next_run_at="2026-12-01T00:00:00Z")
    try:
        migrate_to([("exports", "0002_destination_password_sealed")])
        destination, sealed = _raw(with_password.pk)
        assert destination == "postgres://etl:***@warehouse.example.com:5432/dw"
        assert "s3cret" not in sealed and sealed
        assert ExportSchedule.objects.get(pk=with_password.pk).dsn() == clear
        assert _raw(without.pk) == ("clickhouse://ch.example.com/dw", "")
        assert _raw(hook.pk) == ("https://hooks.example.com/x", "")
        migrate_to([("exports", "0001_initial")])  # and back: the clear DSN again
        with connection.cursor() as cursor:
            cursor.execute("SELECT destination FROM exports_exportschedule WHERE id = %s",
                           [with_password.pk])
            assert cursor.fetchone() == (clear,)
    finally:
        migrate_to(latest_migrations())


@pytest.mark.django_db(transaction=True)
def test_the_migration_without_a_key_names_it(tenant, settings):
    old = migrate_to([("exports", "0001_initial")])
    old.get_model("exports", "ExportSchedule").objects.create(
        name="a", kind="POSTGRES", destination="postgres://etl:s3cret@wh.example.com/dw",
        tenant_id=tenant.pk, next_run_at="2026-12-01T00:00:00Z", table_name="t")
    settings.AFORO_CREDENTIALS_KEY = ""
    try:
        with pytest.raises(Exception, match="AFORO_CREDENTIALS_KEY"):
            migrate_to([("exports", "0002_destination_password_sealed")])
    finally:
        settings.AFORO_CREDENTIALS_KEY = CREDENTIALS_KEY
        migrate_to(latest_migrations())


@pytest.mark.django_db
def test_a_new_password_is_a_new_destination_and_the_same_one_is_not(tenant, warehouse_pg):
    dsn, table = warehouse_pg
    schedule = services.export_schedule_create(
        tenant=tenant, name="wh", kind="POSTGRES", destination=_secret_dsn(dsn),
        table_name=table).schedule
    ExportSchedule.objects.filter(pk=schedule.pk).update(watermark_entry_id="e-9")

    def changed(destination: str) -> ExportSchedule:
        found = ExportSchedule.objects.get(pk=schedule.pk)
        return services.export_schedule_update(schedule=found, destination=destination)

    same = changed(_secret_dsn(dsn))
    assert same.watermark_entry_id == "e-9" and same.dsn() == _secret_dsn(dsn)
    other = changed(_secret_dsn(dsn).replace(PASSWORD, "n3w"))
    assert other.watermark_entry_id == "" and ":n3w@" in other.dsn()
    assert "n3w" not in _raw(schedule.pk)[0] + _raw(schedule.pk)[1]
