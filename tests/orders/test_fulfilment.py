"""Assignment, shipment and flag rules: every bad input gets a message naming the item/field and
changes nothing."""

import pytest
from django.core.exceptions import ValidationError

from devices.models import Device
from devices.services import device_assign
from orders.models import Order, OrderEvent, Shipment
from orders.services import (
    order_assignments_apply,
    order_assignments_parse,
    order_item_assign,
    order_items_flag_for_devices,
    order_transition,
    shipment_create,
)
from tests.orders.conftest import make_iccid, make_imei

pytestmark = pytest.mark.django_db

GOOD_IMEI, BAD_IMEI = "490154203237518", "490154203237517"
GOOD_ICCID = "8944500102198304826"


def _items(order):
    return list(order.items.filter(requires_serial=True).select_related("device").order_by("id"))


def _state(order):
    return (list(Device.objects.order_by("id").values("imei", "sim", "status")),
            list(order.items.order_by("id").values("imei", "sim")), Order.objects.get(pk=order.pk).status)


def test_assign_one_item_then_order_becomes_ready(provisioned_order):
    first, second = _items(provisioned_order)
    order_item_assign(item=first, imei=GOOD_IMEI, sim=GOOD_ICCID)
    first.refresh_from_db()
    assert (first.imei, first.sim, first.device.status) == (GOOD_IMEI, GOOD_ICCID, "assigned")
    assert Order.objects.get(pk=provisioned_order.pk).status == Order.Status.PROVISIONING
    order_item_assign(item=second, imei=make_imei(2), sim=make_iccid(2))
    assert Order.objects.get(pk=provisioned_order.pk).status == Order.Status.READY_TO_SHIP
    # Clearing a required value sends the order back to provisioning.
    order_item_assign(item=second, imei="", sim=None)
    assert Order.objects.get(pk=provisioned_order.pk).status == Order.Status.PROVISIONING


def test_imei_with_wrong_check_digit(provisioned_order):
    first, _ = _items(provisioned_order)
    before = _state(provisioned_order)
    with pytest.raises(ValidationError) as info:
        order_item_assign(item=first, imei=BAD_IMEI, sim=GOOD_ICCID)
    message = info.value.message_dict["imei"][0]
    assert f"Item {first.pk}" in message and first.serial in message and "check digit" in message
    assert _state(provisioned_order) == before


@pytest.mark.parametrize("sim, words", [("8944500102198304827", "check digit"), ("12345", "19 or 20 digits"),
                                        ("1944500102198304826", "start with 89")])
def test_bad_iccid(provisioned_order, sim, words):
    first, _ = _items(provisioned_order)
    with pytest.raises(ValidationError) as info:
        order_item_assign(item=first, imei=GOOD_IMEI, sim=sim)
    assert words in info.value.message_dict["sim"][0]
    first.refresh_from_db()
    assert first.imei == "" and first.device.imei is None


def test_duplicate_imei_and_sim_across_all_devices(provisioned_order, make_device):
    other = make_device(erp_no="FLEETCO")
    device_assign(device=other, imei=GOOD_IMEI, sim=GOOD_ICCID)
    first, _ = _items(provisioned_order)
    before = _state(provisioned_order)
    with pytest.raises(ValidationError) as info:
        order_item_assign(item=first, imei=GOOD_IMEI, sim=make_iccid(9))
    assert f"already assigned to serial {other.serial}" in info.value.message_dict["imei"][0]
    with pytest.raises(ValidationError) as info:
        order_item_assign(item=first, imei=make_imei(9), sim=GOOD_ICCID)
    assert f"SIM {GOOD_ICCID} is already assigned to serial {other.serial}" in info.value.message_dict["sim"][0]
    assert _state(provisioned_order) == before


def test_terminated_serial_cannot_be_assigned(provisioned_order):
    first, _ = _items(provisioned_order)
    Device.objects.filter(pk=first.device_id).update(status=Device.Status.TERMINATED)
    with pytest.raises(ValidationError) as info:
        order_item_assign(item=first, imei=GOOD_IMEI, sim=GOOD_ICCID)
    assert "terminated" in info.value.message_dict["serial"][0] and first.serial in info.value.message_dict["serial"][0]


def test_bulk_list_preview_reports_each_line_and_apply_is_all_or_nothing(provisioned_order, make_device):
    first, second = _items(provisioned_order)
    stranger = make_device()
    text = "\n".join([
        "serial;imei;sim",
        f"{first.serial};{make_imei(1)};{make_iccid(1)}",
        f"{second.serial};{make_imei(1)};{make_iccid(2)}",   # IMEI repeated from line 2
        f"{stranger.serial};{make_imei(3)};{make_iccid(3)}",  # not on this order
        f"{second.serial};{BAD_IMEI};{make_iccid(4)}",       # serial twice, bad IMEI
    ])
    rows = order_assignments_parse(order=provisioned_order, text=text)
    assert [r.line for r in rows] == [2, 3, 4, 5]
    assert rows[0].ok
    assert "also on line 2" in " ".join(rows[1].errors)
    assert "is not an item of" in " ".join(rows[2].errors)
    assert "check digit" in " ".join(rows[3].errors) and "also on line 3" in " ".join(rows[3].errors)
    before = _state(provisioned_order)
    with pytest.raises(ValidationError) as info:
        order_assignments_apply(order=provisioned_order, text=text)
    assert set(info.value.message_dict) == {"line 3", "line 4", "line 5"}
    assert _state(provisioned_order) == before


def test_bulk_list_requires_the_values_the_item_needs(provisioned_order):
    first, _ = _items(provisioned_order)
    rows = order_assignments_parse(order=provisioned_order, text=f"{first.serial},{make_imei(1)},\n")
    assert rows[0].errors == [f"Serial {first.serial} requires a SIM/ICCID."]


def test_shipping_with_missing_assignments_names_items(provisioned_order):
    first, second = _items(provisioned_order)
    order_item_assign(item=first, imei=GOOD_IMEI, sim=GOOD_ICCID)
    with pytest.raises(ValidationError) as info:
        shipment_create(order=provisioned_order, carrier="ups", tracking_number="1Z999AA10123456784")
    assert info.value.message_dict == {
        "items": [f"item {second.pk} (INTEG-TRK-100, serial {second.serial}) lacks imei, sim."]
    }
    assert not Shipment.objects.exists()
    assert Order.objects.get(pk=provisioned_order.pk).status == Order.Status.PROVISIONING


@pytest.mark.parametrize("status", [Order.Status.NEW, Order.Status.IN_REVIEW, Order.Status.APPROVED])
def test_tracking_number_for_an_order_not_yet_provisioned(provisioned_order, status):
    Order.objects.filter(pk=provisioned_order.pk).update(status=status)
    with pytest.raises(ValidationError) as info:
        shipment_create(order=provisioned_order, carrier="ups", tracking_number="1Z999AA10123456784")
    assert "is not provisioned yet" in info.value.message_dict["order"][0]
    assert not Shipment.objects.exists()


@pytest.mark.parametrize("kwargs, field", [
    ({"carrier": "pigeon", "tracking_number": "1Z999AA10123456784"}, "carrier"),
    ({"carrier": "ups", "tracking_number": "12"}, "tracking_number"),
    ({"carrier": "ups", "tracking_number": "1Z-99/9"}, "tracking_number"),
])
def test_bad_shipment_fields(provisioned_order, kwargs, field):
    with pytest.raises(ValidationError) as info:
        shipment_create(order=provisioned_order, **kwargs)
    assert field in info.value.message_dict


def test_ship_marks_shipped_and_queues_push(provisioned_order, django_capture_on_commit_callbacks):
    for n, item in enumerate(_items(provisioned_order), start=1):
        order_item_assign(item=item, imei=make_imei(n), sim=make_iccid(n))
    with django_capture_on_commit_callbacks() as callbacks:
        shipment = shipment_create(order=provisioned_order, carrier="usps", tracking_number="9400111899223344556677")
    assert len(callbacks) == 1
    order = Order.objects.get(pk=provisioned_order.pk)
    assert (order.status, order.push_status) == (Order.Status.SHIPPED, Order.PushStatus.PENDING)
    assert shipment.items.count() == 3 and "tLabels=9400111899223344556677" in shipment.tracking_url
    with pytest.raises(ValidationError) as info:
        shipment_create(order=provisioned_order, carrier="usps", tracking_number="9400111899223344556677")
    assert "already shipped" in info.value.message_dict["order"][0]


def test_lifecycle_refuses_undeclared_transitions(provisioned_order, superuser):
    with pytest.raises(ValidationError):
        order_transition(order=provisioned_order, to_status=Order.Status.FULFILLED, actor=superuser)
    order_transition(order=provisioned_order, to_status=Order.Status.ON_HOLD, actor=superuser)
    event = OrderEvent.objects.filter(kind="status").first()
    assert (event.from_status, event.to_status, event.actor) == ("provisioning", "on_hold", superuser)


def test_terminated_devices_flag_open_order_items(provisioned_order):
    first, _ = _items(provisioned_order)
    assert order_items_flag_for_devices(device_ids=[first.device_id], reason="Terminated in MyAdmin") == 1
    first.refresh_from_db()
    order = Order.objects.get(pk=provisioned_order.pk)
    assert first.flag_reason == "Terminated in MyAdmin" and order.flagged
    events = OrderEvent.objects.filter(kind="flagged").count()
    assert order_items_flag_for_devices(device_ids=[first.device_id], reason="Terminated in MyAdmin") == 0
    assert OrderEvent.objects.filter(kind="flagged").count() == events == 1
    assert order_items_flag_for_devices(device_ids=[], reason="x") == 0


def test_provision_twice_never_mints_more_even_if_the_catalogue_changed(provisioned_order, catalogue, monkeypatch):
    from devices.models import ProvisioningRequest
    from orders.services import order_provision

    monkeypatch.setattr("devices.services.provisioning.provisioning_accounts", lambda **_: None)
    items = _items(provisioned_order)
    provisioned_order.items.update(device=None, serial="")
    Order.objects.filter(pk=provisioned_order.pk).update(status=Order.Status.APPROVED)
    first = order_provision(order=provisioned_order)
    assert len(first) == 2 and ProvisioningRequest.objects.count() == 2
    assert {r.idempotency_key for r in first} == {f"order-item-{i.pk}" for i in items}
    assert {r.erp_no for r in first} == {"ACME01"}
    catalogue["INTEG-TRK-100"].myadmin_product_id = 10184
    catalogue["INTEG-TRK-100"].save()
    again = order_provision(order=provisioned_order)
    assert [r.pk for r in again] == [r.pk for r in first] and ProvisioningRequest.objects.count() == 2


def test_provision_refuses_an_order_not_approved(provisioned_order):
    from orders.services import order_provision

    Order.objects.filter(pk=provisioned_order.pk).update(status=Order.Status.IN_REVIEW)
    with pytest.raises(ValidationError) as info:
        order_provision(order=provisioned_order)
    assert "only an approved order can be provisioned" in info.value.message_dict["status"][0]


def test_cancel_after_provisioning_names_the_billable_serials(provisioned_order):
    from orders.services import order_cancel, order_hold

    order_hold(order=provisioned_order)
    order_cancel(order=provisioned_order, reason="customer withdrew")
    event = OrderEvent.objects.filter(to_status="cancelled").get()
    for item in _items(provisioned_order):
        assert item.serial in event.message
    assert event.message.startswith("customer withdrew; minted serials stay billable")
