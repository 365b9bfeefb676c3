"""A guard policy's channels move to notifications.Destination (one model for budgets, rules
and guard policies): every existing one is copied in order (the `notifications` list, or the
lone notify_channel/notify_destination of a policy without one), then the fields go. The API
fields (notifyChannel, notifyDestination, notifications) are unchanged. Reversible."""

import secrets

from django.db import migrations, models


def forward(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Destination = apps.get_model("notifications", "Destination")
    GuardPolicy = apps.get_model("margin_guard", "GuardPolicy")
    owner_type, _ = ContentType.objects.get_or_create(app_label="margin_guard",
                                                      model="guardpolicy")
    rows = []
    for policy in GuardPolicy.objects.all().iterator():
        pairs = [(t["channel"], t["destination"]) for t in policy.notifications or []]
        if not pairs and policy.notify_channel:
            pairs = [(policy.notify_channel, policy.notify_destination)]
        rows += [Destination(owner_type=owner_type, owner_id=policy.pk, position=i, channel=c,
                             destination=d) for i, (c, d) in enumerate(pairs) if c]
    Destination.objects.bulk_create(rows)


def backward(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Destination = apps.get_model("notifications", "Destination")
    GuardPolicy = apps.get_model("margin_guard", "GuardPolicy")
    owner_type = ContentType.objects.filter(app_label="margin_guard",
                                            model="guardpolicy").first()
    if owner_type is None:
        return
    lists: dict[int, list] = {}
    for d in Destination.objects.filter(owner_type=owner_type).order_by(
            "owner_id", "position", "id"):
        lists.setdefault(d.owner_id, []).append(
            {"channel": d.channel, "destination": d.destination})
    for owner_id, targets in lists.items():
        GuardPolicy.objects.filter(pk=owner_id).update(
            notifications=targets, notify_channel=targets[0]["channel"],
            notify_destination=targets[0]["destination"])
    Destination.objects.filter(owner_type=owner_type).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('margin_guard', '0007_decision_counts'),
        ('notifications', '0004_destinations'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.RunPython(forward, backward),
        # A default first, so that undoing the removal can add the columns to existing rows.
        migrations.AlterField(model_name='guardpolicy', name='notify_channel',
                              field=models.CharField(blank=True, default='', max_length=10)),
        migrations.AlterField(model_name='guardpolicy', name='notify_destination',
                              field=models.CharField(blank=True, default='', max_length=500)),
        migrations.RemoveField(model_name='guardpolicy', name='notifications'),
        migrations.RemoveField(model_name='guardpolicy', name='notify_channel'),
        migrations.RemoveField(model_name='guardpolicy', name='notify_destination'),
        # The signing secret is notifications.models.Notifying's now (its help text).
        migrations.AlterField(model_name='guardpolicy', name='signing_secret',
                              field=models.CharField(
            default=secrets.token_hex, max_length=64,
            help_text='Signs WEBHOOK deliveries (X-Aforo-Signature).')),
    ]
