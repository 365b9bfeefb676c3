"""A DSN's password leaves the destination column: it is kept Fernet-encrypted beside it
(aforo/credentials.py), and the destination reads postgres://user:***@host/db. Rows holding a
password need AFORO_CREDENTIALS_KEY to migrate (the error says so); others need no key."""
from urllib.parse import urlsplit, urlunsplit

from django.db import migrations, models

from aforo.credentials import credentials_open, credentials_seal

MASK = "***"


def seal_passwords(apps, schema_editor):
    ExportSchedule = apps.get_model("exports", "ExportSchedule")
    for schedule in ExportSchedule.objects.exclude(kind="WEBHOOK").filter(
            destination_password_sealed=""):
        parts = urlsplit(schedule.destination)
        if parts.password is None:
            continue
        netloc = parts.netloc.replace(f":{parts.password}@", f":{MASK}@", 1)
        schedule.destination_password_sealed = credentials_seal(parts.password)
        schedule.destination = urlunsplit(parts._replace(netloc=netloc))
        schedule.save(update_fields=["destination", "destination_password_sealed"])


def open_passwords(apps, schema_editor):
    ExportSchedule = apps.get_model("exports", "ExportSchedule")
    for schedule in ExportSchedule.objects.exclude(destination_password_sealed=""):
        parts = urlsplit(schedule.destination)
        password = credentials_open(schedule.destination_password_sealed)
        netloc = parts.netloc.replace(f":{MASK}@", f":{password}@", 1)
        schedule.destination = urlunsplit(parts._replace(netloc=netloc))
        schedule.save(update_fields=["destination"])


class Migration(migrations.Migration):

    dependencies = [
        ("exports", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="exportschedule",
            name="destination_password_sealed",
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.RunPython(seal_passwords, open_passwords),
    ]
