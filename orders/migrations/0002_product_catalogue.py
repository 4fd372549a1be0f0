"""The integrator's own product codes as sold on the Marketplace (staff edit them in the admin)."""

from django.db import migrations

CATALOGUE = [
    ("INTEG-TRK-100", "Asset tracker (LTE-M)", 10032),
    ("INTEG-TRK-LITE", "Asset tracker lite (no SIM slot)", 10032),
    ("INTEG-VEH-200", "Vehicle tracker (OBD/CAN)", 10184),
    ("INTEG-HARNESS-9", "9-pin harness (accessory)", None),
]


def add_catalogue(apps, schema_editor):
    Product = apps.get_model("orders", "Product")
    for code, name, product_id in CATALOGUE:
        Product.objects.get_or_create(code=code, defaults={"name": name, "myadmin_product_id": product_id})


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_orders")]

    operations = [migrations.RunPython(add_catalogue, migrations.RunPython.noop)]
