"""Destinations: one model for where a budget's, an alert rule's or a guard policy's
notifications go (budgets 0006 and margin_guard 0008 move their fields into it)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('notifications', '0003_slack_user_links'),
    ]

    operations = [
        migrations.CreateModel(
            name='Destination',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('owner_id', models.PositiveBigIntegerField()),
                ('position', models.PositiveSmallIntegerField(default=0)),
                ('channel', models.CharField(choices=[('EMAIL', 'Email'), ('SLACK', 'Slack'), ('WEBHOOK', 'Webhook'), ('PAGERDUTY', 'Pagerduty')], max_length=10)),
                ('destination', models.CharField(max_length=500)),
                ('owner_type', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='contenttypes.contenttype')),
            ],
            options={
                'ordering': ['position', 'id'],
                'indexes': [models.Index(fields=['owner_type', 'owner_id'], name='notificatio_owner_t_d81ca2_idx')],
            },
        ),
    ]
