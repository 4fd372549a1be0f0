import django.db.models.deletion
from django.db import migrations, models


def clocks_from_feeds(apps, schema_editor):
    """Each device keeps its place in the queue: its clock moves to the new table."""
    schema_editor.execute(
        "INSERT INTO ingestion_devicequeueclock (device_id, fair_clock) "
        "SELECT device_id, fair_clock FROM ingestion_devicefeed"
    )


def clocks_to_feeds(apps, schema_editor):
    schema_editor.execute(
        "UPDATE ingestion_devicefeed SET fair_clock = c.fair_clock FROM ingestion_devicequeueclock c "
        "WHERE c.device_id = ingestion_devicefeed.device_id"
    )


class Migration(migrations.Migration):

    dependencies = [
        ('devices', '0007_device_termination_lean_indexes'),
        ('ingestion', '0005_device_record_fillfactor'),
    ]

    operations = [
        migrations.CreateModel(
            name='DeviceQueueClock',
            fields=[
                ('device', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='+', serialize=False, to='devices.device')),
                ('fair_clock', models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(clocks_from_feeds, clocks_to_feeds),
        migrations.RemoveField(
            model_name='devicefeed',
            name='fair_clock',
        ),
    ]
