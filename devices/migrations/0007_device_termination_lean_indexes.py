"""Fewer indexes to write when devices change status in bulk (the daily termination sheet).

On PostgreSQL, ``db_index=True`` on a CharField builds two indexes: a plain one and a
``varchar_pattern_ops`` twin for LIKE. ``Device.erp_no`` needs neither (``device_erp_id`` starts
with it); ``Device.database_name`` and ``Termination.serial`` are only matched exactly. The
field-level indexes become named ``Meta.indexes``, and the database keeps the plain indexes
under their new names (renamed, not rebuilt) and drops the rest by name: letting AlterField
drop "the index of the column" would also drop the partial unique index on ``serial``.
"""

from django.db import migrations, models

DROP = ("devices_device_erp_no_1872a2c6_like", "devices_device_erp_no_1872a2c6",
        "devices_device_database_name_df665c8c_like", "devices_termination_serial_1b95416e_like")
RENAME = (("devices_device_database_name_df665c8c", "device_database_name", "devices_device", "database_name"),
          ("devices_termination_serial_1b95416e", "termination_serial", "devices_termination", "serial"))


def lean(apps, schema_editor):
    execute = schema_editor.execute
    for name in DROP:
        execute(f"DROP INDEX IF EXISTS {name}")
    for old, new, table, column in RENAME:
        if schema_editor.connection.vendor == "postgresql":
            execute(f"ALTER INDEX IF EXISTS {old} RENAME TO {new}")
        else:  # SQLite has no ALTER INDEX
            execute(f"DROP INDEX IF EXISTS {old}")
            execute(f"CREATE INDEX {new} ON {table} ({column})")


def restore(apps, schema_editor):
    execute = schema_editor.execute
    postgres = schema_editor.connection.vendor == "postgresql"
    for old, new, table, column in RENAME:
        if postgres:
            execute(f"ALTER INDEX IF EXISTS {new} RENAME TO {old}")
        else:
            execute(f"DROP INDEX IF EXISTS {new}")
            execute(f"CREATE INDEX {old} ON {table} ({column})")
    execute("CREATE INDEX devices_device_erp_no_1872a2c6 ON devices_device (erp_no)")
    if postgres:
        execute("CREATE INDEX devices_device_erp_no_1872a2c6_like ON devices_device (erp_no varchar_pattern_ops)")
        execute("CREATE INDEX devices_device_database_name_df665c8c_like ON devices_device "
                "(database_name varchar_pattern_ops)")
        execute("CREATE INDEX devices_termination_serial_1b95416e_like ON devices_termination "
                "(serial varchar_pattern_ops)")


class Migration(migrations.Migration):

    dependencies = [
        ("devices", "0006_device_product_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="device",
                    name="database_name",
                    field=models.CharField(blank=True, max_length=120),
                ),
                migrations.AlterField(
                    model_name="device",
                    name="erp_no",
                    field=models.CharField(max_length=32, verbose_name="partner account (ERP no.)"),
                ),
                migrations.AlterField(
                    model_name="termination",
                    name="serial",
                    field=models.CharField(max_length=32),
                ),
                migrations.AddIndex(
                    model_name="device",
                    index=models.Index(fields=["database_name"], name="device_database_name"),
                ),
                migrations.AddIndex(
                    model_name="termination",
                    index=models.Index(fields=["serial"], name="termination_serial"),
                ),
            ],
            database_operations=[migrations.RunPython(lean, restore)],
        ),
    ]
