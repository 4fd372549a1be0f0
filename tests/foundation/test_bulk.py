"""Set-based helpers (portal.bulk): array parameters, IN over thousands of values, COPY rows."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection

from devices.models import Device, DeviceEvent
from devices.services.device import EVENT_FIELDS
from portal.bulk import bulk_insert_rows, pg_array, where_in

pytestmark = pytest.mark.django_db

AWKWARD = ["plain", "with,comma", 'with "quotes"', "back\\slash", "{braces}", "NULL", "", " padded ", "é ü 中"]


def round_trip(literal: str, array_type: str) -> list:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT %s::{array_type}", [literal])
        return cursor.fetchone()[0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL array literals")
class TestPgArray:
    def test_strings_come_back_as_they_were(self):
        assert round_trip(pg_array(AWKWARD), "text[]") == AWKWARD

    def test_plain_strings_take_the_quick_path_and_still_round_trip(self):
        serials = [f"CT{n:010d}" for n in range(500)]
        assert pg_array(serials[:2]) == '{"CT0000000000","CT0000000001"}'
        assert round_trip(pg_array(serials), "varchar(32)[]") == serials

    def test_ints_none_dates_and_datetimes(self):
        assert round_trip(pg_array([3, 1, 2**40]), "bigint[]") == [3, 1, 2**40]
        assert round_trip(pg_array([]), "bigint[]") == []
        assert round_trip(pg_array([1, None, 3]), "bigint[]") == [1, None, 3]
        assert round_trip(pg_array([date(2026, 11, 20), None]), "date[]") == [date(2026, 11, 20), None]
        moment = datetime(2026, 11, 20, 13, 5, 7, 123456, tzinfo=UTC)
        assert round_trip(pg_array([moment, moment + timedelta(days=1)]), "timestamptz[]") == [
            moment, moment + timedelta(days=1)]
        assert round_trip(pg_array([True, False]), "boolean[]") == [True, False]

    def test_other_types_are_refused(self):
        with pytest.raises(TypeError, match="not float"):
            pg_array([1.5])


def make_device(n: int) -> Device:
    return Device.objects.create(serial=f"CB{n:010d}", product_id=10032, product_type="CustomDevice",
                                 erp_no="ERP1", status=Device.Status.ACTIVE)


def test_where_in_by_string_id_and_foreign_key_column():
    devices = [make_device(n) for n in range(3)]
    wanted = [devices[0].serial, devices[2].serial, "NOT-A-SERIAL"]
    assert sorted(where_in(Device.objects, "serial", wanted).values_list("serial", flat=True)) == sorted(wanted[:2])
    assert list(where_in(Device.objects, "id", [devices[1].pk]).values_list("pk", flat=True)) == [devices[1].pk]
    DeviceEvent.objects.create(device=devices[1], kind="note")
    assert where_in(DeviceEvent.objects, "device_id", [devices[1].pk, devices[2].pk]).count() == 1
    assert where_in(DeviceEvent.objects, "device", [devices[0].pk]).count() == 0
    assert where_in(Device.objects, "serial", []).count() == 0


def test_bulk_insert_rows_keeps_json_and_datetimes_exactly():
    device = make_device(1)
    now = datetime(2026, 11, 20, 8, 30, 0, 5, tzinfo=UTC)
    documents = [
        {"termination_source": "daily_sheet", "row": 2, "nested": {"list": [1, 2.5, None, True]}},
        {"big": 2**70, "text": 'quote " backslash \\ tab \t newline \n é'},  # beyond orjson: the standard library
        {},
    ]
    rows = [(device.pk, "status", "active", "terminated", f"event {i}", data, None, "req-1",
             now + timedelta(seconds=i % 2)) for i, data in enumerate(documents)]
    assert bulk_insert_rows(DeviceEvent, EVENT_FIELDS, rows) == 3
    stored = list(DeviceEvent.objects.filter(device=device).order_by("id").values_list("data", "created_at", "message"))
    assert [s[0] for s in stored] == documents
    assert [s[1] for s in stored] == [now, now + timedelta(seconds=1), now]
    assert stored[1][2] == "event 1"


def test_bulk_insert_rows_refuses_what_a_save_refuses():
    device = make_device(2)
    with pytest.raises(TypeError):
        bulk_insert_rows(DeviceEvent, EVENT_FIELDS, [(device.pk, "status", "", "", "", {"when": datetime.now(UTC)},
                                                      None, "", datetime.now(UTC))])


def test_history_and_report_rows_still_go_with_what_they_belong_to():
    """DeviceEvent.device and TerminationImportRow.run carry no database constraint (bulk logs);
    deleting the device or the run still deletes them, through the ORM."""
    from ingestion.models import TerminationImportRow, TerminationImportRun, TerminationSource

    device = make_device(3)
    DeviceEvent.objects.create(device=device, kind="note")
    device.delete()
    assert not DeviceEvent.objects.exists()

    run = TerminationImportRun.objects.create(source=TerminationSource.objects.create(name="s", kind="upload"))
    TerminationImportRow.objects.create(run=run, row_number=2, serial="CX1", outcome="applied")
    run.delete()
    assert not TerminationImportRow.objects.exists()
