"""Deliveries queued before they moved here (budgets.Delivery), copied with their attempts."""
from django.db import migrations


def copy(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Old = apps.get_model("budgets", "Delivery")
    Delivery = apps.get_model("notifications", "Delivery")
    Attempt = apps.get_model("notifications", "DeliveryAttempt")
    alert_type, _ = ContentType.objects.get_or_create(app_label="budgets", model="alert")
    action_type, _ = ContentType.objects.get_or_create(app_label="margin_guard",
                                                       model="guardaction")
    for old in Old.objects.select_related("alert", "guard_action").order_by("id"):
        subject = old.alert if old.alert_id else old.guard_action
        if subject is None:
            continue
        new = Delivery.objects.create(
            tenant_id=subject.tenant_id, subject_type=alert_type if old.alert_id else action_type,
            subject_id=subject.pk, channel=old.channel, destination=old.destination,
            signing_secret=old.signing_secret, state=old.state, attempts=old.attempts,
            next_attempt_at=old.next_attempt_at, last_error=old.last_error,
            delivered_at=old.delivered_at)
        Attempt.objects.bulk_create([
            Attempt(delivery=new, attempted_at=a.attempted_at, ok=a.ok, detail=a.detail)
            for a in old.log.order_by("id")])


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0001_deliveries"),
        ("budgets", "0003_hardening"),
        ("margin_guard", "0003_hardening"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(copy, migrations.RunPython.noop)]
