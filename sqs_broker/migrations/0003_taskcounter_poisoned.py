"""Task counters count poison messages: messages no task could be read from."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("sqs_broker", "0002_heartbeat_interval"),
    ]

    operations = [
        migrations.AddField(
            model_name="taskcounter",
            name="poisoned",
            field=models.PositiveIntegerField(default=0, verbose_name="poison messages"),
        ),
    ]
