"""What a termination stops: the device's queued records are held and new ones rejected, open
order items are flagged, linked Navixy trackers are flagged — for sheet and manual terminations."""

import json
from datetime import UTC, datetime, timedelta

from devices.models import Device
from devices.services.terminations import termination_effects_apply
from ingestion.services.terminations import termination_sheet_import
from tests.terminations.conftest import csv_bytes, serial_for, sheet_rows

# Stand-ins resolved by import path in test_effects_run_once_per_batch_with_all_device_ids.
_records = _trackers = None


def gps(serial, minutes_ago=5):
    when = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return {"Type": "GpsRecord", "DateTime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "SerialNo": serial,
            "Latitude": 43.6, "Longitude": -79.4, "Speed": 50.0, "IsGpsValid": True, "IsIgnitionOn": True}


def test_records_held_and_new_ones_rejected(make_devices):
    from ingestion.models import DeviceRecord
    from ingestion.services.records import records_intake

    make_devices(2)
    Device.objects.update(database_name="fleet_db")
    records_intake(body=json.dumps([gps(serial_for(1), 9), gps(serial_for(1), 8), gps(serial_for(2), 7)]).encode())
    assert DeviceRecord.objects.filter(status=DeviceRecord.Status.QUEUED).count() == 3

    termination_sheet_import(file=csv_bytes(sheet_rows([serial_for(1)])), filename="t.csv")

    held = DeviceRecord.objects.filter(serial=serial_for(1))
    assert {(r.status, r.hold_reason) for r in held} == {("held", DeviceRecord.HoldReason.TERMINATED)}
    assert DeviceRecord.objects.get(serial=serial_for(2)).status == DeviceRecord.Status.QUEUED
    result = records_intake(body=json.dumps([gps(serial_for(1), 1)]).encode())
    assert result.rejected == 1
    assert "is terminated" in result.errors[0]["message"]


def test_open_order_items_are_flagged(make_devices):
    from django.utils import timezone as tz

    from orders.models import Account, Order, OrderItem

    [device, other] = make_devices(2)
    account = Account.objects.create(account_id="ACME01")
    order = Order.objects.create(order_header_id=5001, account=account, order_date=tz.now(),
                                 shipment_status="PendingFulfillment", status=Order.Status.READY_TO_SHIP)
    item = OrderItem.objects.create(order=order, product_code="INTEG-TRK-100", device=device, serial=device.serial)
    untouched = OrderItem.objects.create(order=order, product_code="INTEG-TRK-100", device=other, serial=other.serial)

    termination_sheet_import(file=csv_bytes(sheet_rows([device.serial], reason="Lost")), filename="o.csv")

    item.refresh_from_db()
    untouched.refresh_from_db()
    order.refresh_from_db()
    assert item.flagged_at is not None and "terminated" in item.flag_reason.lower()
    assert untouched.flagged_at is None
    assert order.flagged


def test_effects_run_once_per_batch_with_all_device_ids(make_devices, monkeypatch):
    """Each owning app gets one bulk call per batch (not one per device)."""
    seen = []

    def recorder(name):
        return lambda *, device_ids, reason: seen.append((name, sorted(device_ids), reason))

    import devices.services.terminations as service

    monkeypatch.setattr(service, "TERMINATION_EFFECTS", (
        ("tests.terminations.test_effects._records", "terminated"),
        ("tests.terminations.test_effects._trackers", None),
    ))
    monkeypatch.setattr("tests.terminations.test_effects._records", recorder("records"))
    monkeypatch.setattr("tests.terminations.test_effects._trackers", recorder("trackers"))
    devices = make_devices(3)
    termination_sheet_import(file=csv_bytes(sheet_rows([d.serial for d in devices])), filename="e.csv")
    ids = sorted(d.pk for d in devices)
    assert [(name, got) for name, got, _ in seen] == [("records", ids), ("trackers", ids)]
    assert seen[0][2] == "terminated" and "daily termination sheet" in seen[1][2]
    assert termination_effects_apply(device_ids=[], reason="x") == []


def test_linked_navixy_trackers_are_flagged(make_devices):
    from devices.models import Tracker

    [device, other] = make_devices(2)
    linked = Tracker.objects.create(label="Truck 7", plugin_id=44, model_code="telfmb920", device_id="351000000000007",
                                    state=Tracker.State.REGISTERED, portal_device=device)
    unrelated = Tracker.objects.create(label="Van 2", plugin_id=44, model_code="telfmb920",
                                       device_id="351000000000008", state=Tracker.State.REGISTERED,
                                       portal_device=other)

    termination_sheet_import(file=csv_bytes(sheet_rows([device.serial])), filename="n.csv")

    linked.refresh_from_db()
    unrelated.refresh_from_db()
    assert linked.state == Tracker.State.NEEDS_ATTENTION and "terminated" in linked.state_message.lower()
    assert unrelated.state == Tracker.State.REGISTERED
