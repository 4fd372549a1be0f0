"""Fixtures for terminations: devices in bulk and realistic termination sheets (CSV and XLSX)."""

import csv
import io
import threading
from datetime import date

import openpyxl
import pytest

from devices.models import Device

HEADER = ["Serial Number", "Termination Date", "Reason", "ERP", "IMEI"]


def serial_for(n: int) -> str:
    return f"CX{n:010d}"


@pytest.fixture
def make_devices(db):
    """make_devices(n, start=1, status=ACTIVE) → list of Devices with serials CX0000000001…"""

    def make(n: int, *, start: int = 1, status: str = Device.Status.ACTIVE, erp_no: str = "ERP100"):
        Device.objects.bulk_create(
            [
                Device(serial=serial_for(i), product_id=10032, product_type=Device.ProductType.CUSTOM_DEVICE,
                       erp_no=erp_no, status=status, imei=f"35{i:013d}")
                for i in range(start, start + n)
            ],
            batch_size=1000,
        )
        return list(Device.objects.filter(serial__in=[serial_for(i) for i in range(start, start + n)]).order_by("serial"))

    return make


@pytest.fixture
def crash_effects(monkeypatch):
    """crash_effects(on_call=2) makes the termination effects raise on that call (every call
    without it), as a worker losing its database mid-import; returns what undoes it. Counted
    under a lock: batches may apply on several threads."""
    from devices.services import terminations as service

    real = service.termination_effects_apply

    def install(*, on_call: int | None = None):
        calls, lock = [0], threading.Lock()

        def effects(**kwargs):
            with lock:
                calls[0] += 1
                n = calls[0]
            if on_call is None or n == on_call:
                raise RuntimeError("worker lost its database")
            return real(**kwargs)

        monkeypatch.setattr(service, "termination_effects_apply", effects)
        return lambda: monkeypatch.setattr(service, "termination_effects_apply", real)

    return install


def sheet_rows(serials, *, day=date(2026, 11, 20), reason="Customer request", erp="ERP100"):
    return [[s, day.strftime("%m/%d/%Y"), reason, erp, ""] for s in serials]


def csv_bytes(rows, *, header=HEADER, delimiter=",", encoding="utf-8", bom=False) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter)
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    data = buf.getvalue().encode(encoding)
    return (b"\xef\xbb\xbf" + data) if bom else data


def xlsx_bytes(rows, *, header=HEADER, title_rows=()) -> bytes:
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("Terminations")
    for line in title_rows:
        sheet.append(line)
    if header:
        sheet.append(header)
    for row in rows:
        sheet.append(row)
    buf = io.BytesIO()
    workbook.save(buf)
    return buf.getvalue()
