"""The order page's "add its devices to the customer's database": the order's partner account
picks the database, and every device goes through the idempotent add service."""

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from orders.models import Account, Order, OrderItem
from orders.services import order_devices_add_to_database
from sandbox.mygeotab.models import SandboxAsset

pytestmark = pytest.mark.django_db(transaction=True)


def _order_with(devices, account_id="ACME01"):
    account, _ = Account.objects.get_or_create(account_id=account_id)
    order = Order.objects.create(account=account, order_date=timezone.now(), status="ready_to_ship", source="manual")
    for device in devices:
        OrderItem.objects.create(order=order, product_code="TRK-4G", device=device, serial=device.serial)
    return order


def test_adds_every_device_of_the_order_once(customer_db, make_device, readiness_enqueued):
    devices = [make_device(), make_device()]
    order = _order_with(devices)
    summary = order_devices_add_to_database(order=order)
    assert summary == "2 of 2 device(s) are in demo_fleet."
    assert set(SandboxAsset.objects.values_list("serial_number", flat=True)) == {d.serial for d in devices}
    # A second click attaches what is there and adds nothing.
    assert order_devices_add_to_database(order=order) == "2 of 2 device(s) are in demo_fleet."
    assert SandboxAsset.objects.count() == 2
    assert order.events.filter(kind="database").count() == 2


def test_refuses_clearly_without_devices_or_a_linked_database(customer_db, make_device):
    with pytest.raises(ValidationError, match="no provisioned devices"):
        order_devices_add_to_database(order=_order_with([]))
    with pytest.raises(ValidationError, match="No customer database is linked to account FLEETCO"):
        order_devices_add_to_database(order=_order_with([make_device(erp_no="FLEETCO")], account_id="FLEETCO"))
