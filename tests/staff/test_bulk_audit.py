"""Bulk writes of the services are audited: one AuditEntry per bulk write, listing the ids,
with the actor (or the system that did it) and the request id — never one query per row."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal.audit import audit_bulk
from portal.middleware import request_id_var
from portal.models import AuditEntry

pytestmark = pytest.mark.django_db


def _entries(model, **filters):
    ct = ContentType.objects.get_for_model(model)
    return list(AuditEntry.objects.filter(content_type=ct, **filters).order_by("pk"))


def test_audit_bulk_is_one_insert_whatever_the_number_of_ids(billing_user):
    from devices.models import Device

    audit_bulk(model=Device, ids=[1], action="bulk_update", changes={"status": "x"})  # content type cached
    for n in (1, 5000):
        with CaptureQueriesContext(connection) as ctx:
            entry = audit_bulk(model=Device, ids=range(n), action="bulk_update", changes={"status": "terminated"},
                               actor=billing_user)
        assert len(ctx.captured_queries) == 1
        assert entry.object_count == n and len(entry.object_ids) == n


def test_order_sync_audits_created_updated_and_vanished_orders(fulfilment_user):
    from orders.models import Order, OrderItem
    from orders.services import order_sync
    from tests.orders.conftest import FakeSource, raw_items, raw_order

    token = request_id_var.set("req-sync-1")
    try:
        order_sync(source=FakeSource([raw_order(1), raw_order(2)], {1: raw_items(1), 2: raw_items(2, 3)}),
                   actor=fulfilment_user)
    finally:
        request_id_var.reset(token)
    [orders] = _entries(Order)
    [items] = _entries(OrderItem)
    assert orders.action == "create" and sorted(orders.object_ids) == sorted(Order.objects.values_list("pk", flat=True))
    assert items.object_count == 5 and items.actor == fulfilment_user and items.request_id == "req-sync-1"

    # The beat's re-sync: order 1 changed, order 2 vanished from the listing.
    AuditEntry.objects.all().delete()
    order_sync(source=FakeSource([raw_order(1, comment="rush")], {1: raw_items(1)}))
    updated, flagged = _entries(Order)
    one, two = Order.objects.get(order_header_id=1), Order.objects.get(order_header_id=2)
    assert updated.object_ids == [one.pk] and "comment" in updated.changes["fields"]
    assert updated.actor is None and updated.actor_name == "order sync"
    assert flagged.object_ids == [two.pk] and flagged.changes["flagged"] is True


def test_order_item_and_tracker_flags_are_audited(make_device_with_item):
    from devices.models import Tracker
    from devices.services.trackers import trackers_flag_for_devices
    from orders.models import Order, OrderItem
    from orders.services import order_items_flag_for_devices

    device, item = make_device_with_item()
    tracker = Tracker.objects.create(label="Van 1", plugin_id=44, model_code="telfmb140", device_id="356938035643809",
                                     portal_device=device, state="registered")
    assert order_items_flag_for_devices(device_ids=[device.pk], reason="Device terminated") == 1
    assert trackers_flag_for_devices(device_ids=[device.pk], reason="Device terminated") == 1
    [items] = _entries(OrderItem)
    [orders] = _entries(Order)
    [trackers] = _entries(Tracker)
    assert items.object_ids == [item.pk] and items.changes["flag_reason"] == "Device terminated"
    assert orders.object_ids == [item.order_id] and orders.changes["flagged"] is True
    assert trackers.object_ids == [tracker.pk] and trackers.changes["state"] == "needs_attention"
    assert trackers.actor_name == "system"
    # Flagging again for the same reason changes nothing and records nothing.
    order_items_flag_for_devices(device_ids=[device.pk], reason="Device terminated")
    trackers_flag_for_devices(device_ids=[device.pk], reason="Device terminated")
    assert AuditEntry.objects.count() == 3


def test_termination_batch_audits_devices_once(billing_user):
    from devices.models import Device, Termination
    from devices.services.terminations import termination_apply_bulk
    from ingestion.services.sheets import SheetRow

    devices = Device.objects.bulk_create([
        Device(serial=f"CX{n:010d}", product_id=10032, product_type="CustomDevice", erp_no="E1", status="active")
        for n in range(1, 6)
    ])
    today = timezone.now().date()
    rows = [SheetRow(number=n + 2, serial=d.serial, raw_serial=d.serial, terminated_on=today)
            for n, d in enumerate(devices)]
    termination_apply_bulk(items=rows, actor=billing_user, label="daily termination sheet (import #1)")
    [entry] = _entries(Device)
    assert sorted(entry.object_ids) == sorted(d.pk for d in devices) and entry.object_count == 5
    assert entry.changes == {"status": "terminated"} and entry.actor == billing_user
    assert entry.message == "terminated by the daily termination sheet (import #1)"
    # A manual termination whose outcome was unknown, confirmed by the next sheet.
    extra = Device.objects.create(serial="CX0000000099", product_id=10032, product_type="CustomDevice",
                                  erp_no="E1", status="active")
    pending = Termination.objects.create(device=extra, serial=extra.serial, source="manual", status="unknown_outcome")
    termination_apply_bulk(items=[SheetRow(number=2, serial=extra.serial, raw_serial=extra.serial,
                                           terminated_on=today)], label="daily termination sheet (import #2)")
    [confirmed] = _entries(Termination)
    assert confirmed.object_ids == [pending.pk] and confirmed.changes == {"status": "applied"}
    assert confirmed.actor is None and confirmed.actor_name == "daily termination sheet (import #2)"


def test_minted_serials_and_their_marker_are_audited(billing_user):
    from devices.models import Device, ProvisioningRequest
    from devices.services import provisioning

    req = ProvisioningRequest.objects.create(product_id=10032, erp_no="ACME01", quantity=2, requested_by=billing_user)
    ContentType.objects.get_for_model(Device)  # cached per process, as in a worker
    with CaptureQueriesContext(connection) as ctx:
        provisioning._attach(req, ["CX0000000501", "CX0000000502"], via="reply")
    assert len(ctx.captured_queries) == 5  # existing serials, devices, their pks, history, one audit row
    [minted] = _entries(Device)
    assert minted.action == "create" and minted.object_count == 2 and minted.actor == billing_user
    assert minted.message == f"Minted on ACME01 by provisioning request #{req.pk} (reply)"

    class Tagging:
        def update_device_contracts(self, serials, comments):
            pass

    provisioning._tag_serials(Tagging(), req, ["CX0000000501", "CX0000000502"])
    tagged = _entries(Device)[-1]
    assert tagged.changes == {"comments": req.marker} and sorted(tagged.object_ids) == sorted(
        Device.objects.values_list("pk", flat=True))


@pytest.fixture
def make_device_with_item(db):
    def make():
        from devices.models import Device
        from orders.models import Account, Order, OrderItem

        device = Device.objects.create(serial="CX0000000042", product_id=10032, product_type="CustomDevice",
                                       erp_no="ACME01", status="active", imei="356938035643809")
        account, _ = Account.objects.get_or_create(account_id="ACME01")
        order = Order.objects.create(account=account, order_date=timezone.now(), status="provisioning")
        item = OrderItem.objects.create(order=order, vendor_item_id=1, product_code="INTEG-TRK-100",
                                        requires_serial=True, device=device, serial=device.serial)
        return device, item

    return make
