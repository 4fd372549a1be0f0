"""One index fewer to write on every device status change: ``Device.sim`` is unique, so
PostgreSQL got a ``varchar_pattern_ops`` twin of its unique index for LIKE queries, and the
portal matches SIMs exactly only (admin and API search ``=sim``). The model keeps
``unique=True``; the twin is dropped by name, as in 0007 (Django drops it with ``IF EXISTS``
should the field change later)."""

from django.db import migrations

TWIN = "devices_device_sim_5691af9b_like"


def drop_twin(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {TWIN}")


def restore_twin(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {TWIN} ON devices_device (sim varchar_pattern_ops)")


class Migration(migrations.Migration):

    dependencies = [
        ("devices", "0008_device_event_and_termination_write_cost"),
    ]

    operations = [
        migrations.RunPython(drop_twin, restore_twin),
    ]
