"""Demo orders for the simulated partner shipping API, seeded lazily and idempotently.

Accounts match the MyAdmin sandbox's demo user (INTEG01, ACME01, FLEETCO); product codes are
the integrator's own devices (the portal's catalogue maps them to MyAdmin product ids) and one
accessory that needs no serial.
"""

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from sandbox.shipping.models import ShippingOrder, ShippingOrderItem

TRACKER = ("INTEG-TRK-100", True, True, True)  # code, serial, SIM, IMEI
VEHICLE = ("INTEG-VEH-200", True, True, True)
LITE = ("INTEG-TRK-LITE", True, False, True)
HARNESS = ("INTEG-HARNESS-9", False, False, False)

SEED_ORDERS = [
    {
        "order_header_id": 700101, "account_id": "ACME01", "account_numeric_id": 4101, "days_ago": 3,
        "contact": {"name": "Dana Whitfield", "email": "dana.whitfield@acme-logistics.example",
                    "street1": "1200 Harbor Blvd", "street2": "Dock 4", "city": "Oakland", "state": "CA",
                    "zipCode": "94607", "telephone1": "+1 510 555 0142", "telephone2": ""},
        "reseller": ("Northwind Telematics", "orders@northwind-telematics.example"),
        "po": "PO-ACME-5521", "ref": "SR-2026-0001", "comment": "Deliver to dock 4, mornings only.",
        "items": [TRACKER, TRACKER, HARNESS],
    },
    {
        "order_header_id": 700102, "account_id": "FLEETCO", "account_numeric_id": 4102, "days_ago": 2,
        "contact": {"name": "Marco Bellini", "email": "m.bellini@fleetco.example", "street1": "88 Rue du Port",
                    "street2": "", "city": "Montreal", "state": "QC", "zipCode": "H3C 2N4",
                    "telephone1": "+1 514 555 0199", "telephone2": "+1 514 555 0100"},
        "reseller": ("Northwind Telematics", "orders@northwind-telematics.example"),
        "po": "FC-PO-00917", "ref": "SR-2026-0002", "comment": "",
        "items": [VEHICLE, VEHICLE, VEHICLE],
    },
    {
        "order_header_id": 700103, "account_id": "INTEG01", "account_numeric_id": 4100, "days_ago": 1,
        "contact": {"name": "Priya Raman", "email": "priya.raman@integrator.example", "street1": "5 Market St",
                    "street2": "Suite 300", "city": "Austin", "state": "TX", "zipCode": "78701",
                    "telephone1": "+1 512 555 0110", "telephone2": ""},
        "reseller": ("Bluebird Fleet Solutions", "fulfil@bluebird-fleet.example"),
        "po": "PO-INT-0042", "ref": "SR-2026-0003", "comment": "Pilot units.",
        "items": [LITE, TRACKER],
    },
    {
        "order_header_id": 700104, "account_id": "ACME01", "account_numeric_id": 4101, "days_ago": 0,
        "contact": {"name": "Dana Whitfield", "email": "dana.whitfield@acme-logistics.example",
                    "street1": "1200 Harbor Blvd", "street2": "", "city": "Oakland", "state": "CA",
                    "zipCode": "94607", "telephone1": "+1 510 555 0142", "telephone2": ""},
        "reseller": ("Northwind Telematics", "orders@northwind-telematics.example"),
        "po": "PO-ACME-5530", "ref": "SR-2026-0004", "comment": "",
        "items": [VEHICLE, HARNESS],
    },
]


def ensure_seeded() -> None:
    """Create the demo orders unless they exist. Safe under concurrent first requests."""
    ids = [o["order_header_id"] for o in SEED_ORDERS]
    if ShippingOrder.objects.filter(order_header_id__in=ids).count() == len(ids):
        return
    now = timezone.now().replace(microsecond=0)
    for spec in SEED_ORDERS:
        if ShippingOrder.objects.filter(order_header_id=spec["order_header_id"]).exists():
            continue
        try:
            with transaction.atomic():
                create_order(spec, now=now)
        except IntegrityError:  # another request seeded it first
            continue


def create_order(spec: dict, *, now) -> ShippingOrder:
    reseller_name, reseller_email = spec["reseller"]
    order = ShippingOrder.objects.create(
        order_header_id=spec["order_header_id"], account_id=spec["account_id"],
        account_numeric_id=spec["account_numeric_id"], order_date=now - timedelta(days=spec["days_ago"]),
        shipment_status=ShippingOrder.PENDING, comment=spec.get("comment", ""), shipping_contact=spec["contact"],
        reseller_name=reseller_name, reseller_email=reseller_email, purchase_order_number=spec["po"],
        shipment_reference=spec["ref"], validated=True,
    )
    ShippingOrderItem.objects.bulk_create(
        ShippingOrderItem(order=order, product_code=code, requires_serial_number=serial,
                          requires_sim_number=sim, requires_imei=imei)
        for code, serial, sim, imei in spec["items"]
    )
    return order
