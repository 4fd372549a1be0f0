"""The whole journey against the sandbox over real HTTP:
sync → review → approve → provision → assign → ship → push → the simulator shows it fulfilled."""

import pytest
from django.core.exceptions import ValidationError

from devices.models import Device, ProvisioningRequest
from devices.services import provisioning_request_process
from orders.models import Order
from orders.services import (
    PushRetryable,
    order_approve,
    order_assignments_apply,
    order_provision,
    order_provision_collect,
    order_push_fulfilment,
    order_review_start,
    order_sync,
    shipment_create,
)
from tests.orders.conftest import make_iccid, make_imei

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def portal_myadmin(monkeypatch, myadmin):
    """The devices provisioning service builds its MyAdmin client from settings; hand it the
    test's client (same live sandbox, in-memory session store — see conftest.myadmin)."""
    monkeypatch.setattr("devices.services.provisioning._client", lambda: myadmin)
    return myadmin


def _provision_and_collect(order, actor, myadmin):
    order_provision(order=order, actor=actor)
    for item in order.items.filter(provisioning_request_id__isnull=False):
        provisioning_request_process(request_id=item.provisioning_request_id, client=myadmin)
    order_provision_collect(order=order, actor=actor)
    order.refresh_from_db()
    return order


def _ship_ready(order, actor, myadmin):
    order_review_start(order=order, actor=actor)
    order_approve(order=order, actor=actor)
    order = _provision_and_collect(order, actor, myadmin)
    lines = [f"{item.serial}, {make_imei(n)}, {make_iccid(n)}"
             for n, item in enumerate(order.items.exclude(serial="").order_by("id"), start=1)]
    order_assignments_apply(order=order, text="serial,imei,sim\n" + "\n".join(lines), actor=actor)
    order.refresh_from_db()
    return order


def test_order_journey_end_to_end(shipping, portal_myadmin, catalogue, superuser):
    from sandbox.shipping.models import ShippingOrder

    run = order_sync(source=shipping)
    assert (run.status, run.created) == ("succeeded", 4)
    order = Order.objects.get(order_header_id=700101)

    order_review_start(order=order, actor=superuser)
    order_approve(order=order, actor=superuser)
    order = _provision_and_collect(order, superuser, portal_myadmin)
    device_items = list(order.items.filter(requires_serial=True).order_by("id"))
    assert len(device_items) == 2 and all(i.serial.startswith("CX") for i in device_items)
    assert {d.erp_no for d in Device.objects.all()} == {"ACME01"}
    assert order.status == Order.Status.PROVISIONING  # IMEI/SIM still missing

    # Re-clicking provision mints nothing more.
    order_provision(order=order, actor=superuser)
    assert ProvisioningRequest.objects.count() == 2 and Device.objects.count() == 2

    # Shipping before the units are assigned is refused, naming the items.
    with pytest.raises(ValidationError) as info:
        shipment_create(order=order, carrier="ups", tracking_number="1Z999AA10123456784", actor=superuser)
    assert "lacks imei, sim" in str(info.value.message_dict["items"])

    text = "\n".join(f"{i.serial}, {make_imei(n)}, {make_iccid(n)}" for n, i in enumerate(device_items, start=1))
    order_assignments_apply(order=order, text=text, actor=superuser)
    order.refresh_from_db()
    assert order.status == Order.Status.READY_TO_SHIP
    assert Device.objects.filter(status=Device.Status.ASSIGNED).count() == 2

    shipment = shipment_create(order=order, carrier="ups", tracking_number="1Z999AA10123456784", actor=superuser)
    assert shipment.tracking_url == "https://www.ups.com/track?tracknum=1Z999AA10123456784"
    order = order_push_fulfilment(order_id=order.pk, client=shipping)
    assert (order.status, order.push_status) == (Order.Status.FULFILLED, Order.PushStatus.SUCCEEDED)
    assert Device.objects.filter(status=Device.Status.SHIPPED).count() == 2

    remote = ShippingOrder.objects.get(order_header_id=700101)
    assert (remote.shipment_status, remote.carrier, remote.tracking_number) == ("Fulfilled", "UPS", "1Z999AA10123456784")
    by_serial = {i.serial_number: (i.imei, i.sim_number) for i in remote.items.all() if i.serial_number}
    assert by_serial == {i.serial: (make_imei(n), make_iccid(n)) for n, i in enumerate(device_items, start=1)}
    harness = remote.items.get(product_code="INTEG-HARNESS-9")
    assert harness.serial_number == ""

    # A second push of a fulfilled order is a no-op; a re-sync sees Fulfilled but changes no local state.
    order_push_fulfilment(order_id=order.pk, client=shipping)
    run = order_sync(source=shipping)
    order.refresh_from_db()
    assert run.failed == 0 and order.status == Order.Status.FULFILLED and order.shipment_status == "Fulfilled"


def test_push_with_unknown_outcome_is_retried_safely(shipping, portal_myadmin, catalogue, superuser, fault):
    from sandbox.shipping.models import ShippingOrder

    order_sync(source=shipping)
    order = _ship_ready(Order.objects.get(order_header_id=700103), superuser, portal_myadmin)
    assert order.status == Order.Status.READY_TO_SHIP
    shipment_create(order=order, carrier="fedex", tracking_number="794612345678", actor=superuser)
    fault("server_error_after_commit", "SubmitFulfilment", remaining=1)
    with pytest.raises(PushRetryable):
        order_push_fulfilment(order_id=order.pk, client=shipping)
    order.refresh_from_db()
    assert (order.status, order.push_status) == (Order.Status.SHIPPED, Order.PushStatus.UNKNOWN)
    assert "HTTP500" in order.push_error
    # The partner did store it; sending the same fulfilment again is harmless.
    order = order_push_fulfilment(order_id=order.pk, client=shipping)
    assert (order.status, order.push_status, order.push_attempts) == (Order.Status.FULFILLED, "succeeded", 2)
    remote = ShippingOrder.objects.get(order_header_id=700103)
    assert remote.shipment_status == "Fulfilled" and remote.tracking_number == "794612345678"


def test_push_rejected_by_partner_is_recorded_without_retry(shipping, portal_myadmin, catalogue, superuser):
    from sandbox.shipping.models import ShippingOrder

    order_sync(source=shipping)
    order = _ship_ready(Order.objects.get(order_header_id=700104), superuser, portal_myadmin)
    shipment_create(order=order, carrier="dhl", tracking_number="1234567890", actor=superuser)
    ShippingOrder.objects.filter(order_header_id=700104).update(shipment_status="Cancelled")
    order = order_push_fulfilment(order_id=order.pk, client=shipping)
    assert (order.status, order.push_status) == (Order.Status.SHIPPED, Order.PushStatus.REJECTED)
    assert "cancelled" in order.push_error
