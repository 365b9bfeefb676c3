"""A budget's and an alert rule's destination moves to notifications.Destination (one model for
budgets, rules and guard policies): every existing one is copied, then the fields go. The API
fields (notifyChannel/notifyDestination, channel/destination) are unchanged. Reversible: the
first destination is copied back."""

from django.db import migrations, models

OWNERS = (("costbudget", "notify_channel", "notify_destination"),
          ("alertrule", "channel", "destination"))


def forward(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Destination = apps.get_model("notifications", "Destination")
    for model_name, channel, destination in OWNERS:
        model = apps.get_model("budgets", model_name)
        owner_type, _ = ContentType.objects.get_or_create(app_label="budgets", model=model_name)
        Destination.objects.bulk_create(
            Destination(owner_type=owner_type, owner_id=pk, position=0, channel=c,
                        destination=d)
            for pk, c, d in model.objects.exclude(**{channel: ""})
            .values_list("pk", channel, destination).iterator())


def backward(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Destination = apps.get_model("notifications", "Destination")
    for model_name, channel, destination in OWNERS:
        model = apps.get_model("budgets", model_name)
        owner_type = ContentType.objects.filter(app_label="budgets", model=model_name).first()
        if owner_type is None:
            continue
        first = {}
        for d in Destination.objects.filter(owner_type=owner_type).order_by(
                "owner_id", "position", "id"):
            first.setdefault(d.owner_id, d)
        for owner_id, d in first.items():
            model.objects.filter(pk=owner_id).update(
                **{channel: d.channel, destination: d.destination})
        Destination.objects.filter(owner_type=owner_type).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('budgets', '0006_alter_alertrule_source'),
        ('notifications', '0004_destinations'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.RunPython(forward, backward),
        # A default first, so that undoing the removal can add the columns to existing rows.
        migrations.AlterField(model_name='alertrule', name='channel', field=models.CharField(
            choices=[('EMAIL', 'Email'), ('SLACK', 'Slack'), ('WEBHOOK', 'Webhook'),
                     ('PAGERDUTY', 'Pagerduty')], default='', max_length=10)),
        migrations.AlterField(model_name='alertrule', name='destination',
                              field=models.CharField(default='', max_length=500)),
        migrations.AlterField(model_name='costbudget', name='notify_channel',
                              field=models.CharField(
            blank=True, choices=[('EMAIL', 'Email'), ('SLACK', 'Slack'), ('WEBHOOK', 'Webhook'),
                                 ('PAGERDUTY', 'Pagerduty')], default='', max_length=10)),
        migrations.AlterField(model_name='costbudget', name='notify_destination',
                              field=models.CharField(blank=True, default='', max_length=500)),
        migrations.RemoveField(model_name='alertrule', name='channel'),
        migrations.RemoveField(model_name='alertrule', name='destination'),
        migrations.RemoveField(model_name='costbudget', name='notify_channel'),
        migrations.RemoveField(model_name='costbudget', name='notify_destination'),
    ]
