"""Batches applied at once, each on its own connection (outside a caller's transaction, as in
a worker): the same outcomes, counts and all-or-nothing batches as applying them in turn."""

import threading

import pytest

from devices.models import Device, DeviceEvent, Termination
from ingestion.models import TerminationImportRow, TerminationImportRun
from ingestion.services import terminations as imports
from ingestion.services.terminations import termination_sheet_import
from portal.middleware import request_id_var
from tests.terminations.conftest import csv_bytes, serial_for, sheet_rows

pytestmark = pytest.mark.django_db(transaction=True)

Outcome = TerminationImportRow.Outcome
TERMINATED = Device.Status.TERMINATED


@pytest.fixture
def batches_of_three(monkeypatch):
    """Batches of 3 rows, two applied at once; returns the names of the threads that applied them."""
    monkeypatch.setattr(imports, "BATCH_SIZE", 3)
    monkeypatch.setattr(imports, "APPLIERS", 2)
    threads = []
    real = imports._apply_batch

    def recording(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(imports, "_apply_batch", recording)
    return threads


def test_outcomes_are_those_of_batches_applied_in_turn(make_devices, batches_of_three):
    make_devices(10)
    s = [serial_for(i) for i in range(1, 11)]
    rows = (sheet_rows(s[0:3])                                   # batch 1
            + sheet_rows([s[3], s[0], s[4]])                     # batch 2: row 6 repeats row 2
            + sheet_rows([s[5], "CX9999999999"]) + [["bad!", "", "", "", ""]]  # batch 3: unknown, invalid
            + sheet_rows([s[6], s[7], s[2]])                     # batch 4: row 13 repeats row 4
            + sheet_rows([s[8], s[9], s[8]]))                    # batch 5: row 16 repeats row 14
    token = request_id_var.set("req-concurrent-1")
    try:
        run = termination_sheet_import(file=csv_bytes(rows), filename="concurrent.csv")
    finally:
        request_id_var.reset(token)

    assert batches_of_three and all(name.startswith("termination-apply") for name in batches_of_three)
    assert run.status == TerminationImportRun.Status.PARTIAL
    assert (run.total_rows, run.applied_count, run.duplicate_count, run.unknown_count, run.invalid_count,
            run.already_count) == (15, 10, 3, 1, 1, 0)
    report = dict(run.rows.values_list("row_number", "outcome"))
    assert sorted(report) == list(range(2, 17))
    assert [n for n, outcome in sorted(report.items()) if outcome == Outcome.DUPLICATE] == [6, 13, 16]
    assert report[9] == Outcome.UNKNOWN and report[10] == Outcome.INVALID
    assert Device.objects.filter(status=TERMINATED).count() == 10
    assert Termination.objects.filter(status=Termination.Status.APPLIED, import_run=run).count() == 10
    events = DeviceEvent.objects.filter(to_status=TERMINATED)
    assert events.count() == 10
    assert set(events.values_list("request_id", flat=True)) == {"req-concurrent-1"}


def test_a_failing_batch_fails_the_run_and_the_next_run_applies_the_rest(make_devices, batches_of_three,
                                                                           crash_effects):
    make_devices(12)
    data = csv_bytes(sheet_rows([serial_for(i) for i in range(1, 13)]))
    undo = crash_effects(on_call=2)
    with pytest.raises(RuntimeError):
        termination_sheet_import(file=data, filename="crash.csv")
    failed = TerminationImportRun.objects.get()
    assert failed.status == TerminationImportRun.Status.FAILED and not failed.claims_sheet
    # Every batch committed whole or not at all, with its report rows and counts.
    terminated = Device.objects.filter(status=TERMINATED).count()
    assert terminated % 3 == 0 and terminated < 12
    assert failed.applied_count == terminated == failed.rows.filter(outcome=Outcome.APPLIED).count()

    undo()
    retry = termination_sheet_import(file=data, filename="crash.csv")
    assert retry.status == TerminationImportRun.Status.SUCCEEDED
    assert (retry.applied_count, retry.already_count) == (12 - terminated, terminated)
    assert Device.objects.filter(status=TERMINATED).count() == 12


def test_a_reader_error_comes_after_the_batches_before_it_are_committed(make_devices, batches_of_three,
                                                                       monkeypatch):
    make_devices(8)
    monkeypatch.setattr(imports, "MAX_ROWS", 7)
    run = termination_sheet_import(file=csv_bytes(sheet_rows([serial_for(i) for i in range(1, 9)])),
                                   filename="too-long.csv")
    assert run.status == TerminationImportRun.Status.FAILED and "more than 7 rows" in run.error
    assert Device.objects.filter(status=TERMINATED).count() == 6  # the two whole batches read before it
    assert not [t for t in threading.enumerate() if t.name.startswith(("termination-apply", "sheet-read-ahead"))]
