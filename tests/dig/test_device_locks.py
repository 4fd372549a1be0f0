"""Services that lock devices to change them leave foreign-key checks alone. A transaction that
inserts rows pointing at a device (records arriving, history) holds KEY SHARE on the device until
it commits; a service taking FOR UPDATE waits for it, and two such transactions locking in
different orders deadlock (seen as a 500 on record intake while forwarders recorded first data)."""

from contextlib import contextmanager
from datetime import date

import psycopg
import pytest
from django.db import connection, transaction

from devices.models import Device
from devices.services.device import device_transition, devices_first_data
from devices.services.terminations import termination_apply_bulk

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def key_share_held_on(devices):
    """What an uncommitted insert's foreign-key check holds, from another connection."""
    cfg = connection.settings_dict
    with psycopg.connect(dbname=cfg["NAME"], host=cfg["HOST"] or None, port=cfg["PORT"] or None,
                         user=cfg["USER"] or None, password=cfg["PASSWORD"] or None) as other:
        other.execute("SELECT 1 FROM devices_device WHERE id = ANY(%s) FOR KEY SHARE", [[d.pk for d in devices]])
        with connection.cursor() as cursor:  # waiting would fail the test in 2 s, not hang it
            cursor.execute("SET lock_timeout = '2s'")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
            other.rollback()


def make(n: int, status=Device.Status.SHIPPED) -> list[Device]:
    return [Device.objects.create(serial=f"CL{i:010d}", product_id=10032, product_type="CustomDevice",
                                  erp_no="ERP1", status=status) for i in range(n)]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row lock modes")
class TestLocksLeaveForeignKeyChecksAlone:
    def test_first_data(self):
        devices = make(3)
        with key_share_held_on(devices):
            devices_first_data(device_ids=[d.pk for d in devices])
        assert set(Device.objects.values_list("status", flat=True)) == {Device.Status.ACTIVE}

    def test_a_single_transition(self):
        device = make(1)[0]
        with key_share_held_on([device]):
            device_transition(device=device, to_status=Device.Status.ACTIVE)
        device.refresh_from_db()
        assert device.status == Device.Status.ACTIVE

    def test_a_termination_batch(self):
        devices = make(2, status=Device.Status.ACTIVE)

        class Item:
            def __init__(self, number, serial):
                self.number, self.serial, self.terminated_on = number, serial, date(2026, 11, 20)
                self.reason, self.reason_id, self.account, self.imei, self.comments = "", None, "", "", ""

        with key_share_held_on(devices), transaction.atomic():
            results = termination_apply_bulk(items=[Item(n, d.serial) for n, d in enumerate(devices, start=2)])
        assert [r.outcome for r in results] == ["applied", "applied"]
        assert set(Device.objects.values_list("status", flat=True)) == {Device.Status.TERMINATED}
