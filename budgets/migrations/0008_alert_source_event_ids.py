"""An alert names the events that crossed its level (entitlement and wallet alerts): a JSON list,
empty for the others. A column with a default: safe while the app runs."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('budgets', '0007_destinations'),
    ]

    operations = [
        migrations.AddField(
            model_name='alert',
            name='source_event_ids',
            field=models.JSONField(blank=True, default=list, help_text='The events that crossed the level (the crossing one first, capped); entitlement and wallet alerts.'),
        ),
    ]
