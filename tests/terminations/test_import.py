"""Importing the daily sheet: applied exactly once, per-row report, bad input, sources."""

import threading
from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from devices.models import Device, DeviceEvent, Termination
from ingestion.models import TerminationImportRow, TerminationImportRun, TerminationSource
from ingestion.services.terminations import (
    termination_import_report_rows,
    termination_import_scheduled,
    termination_sheet_import,
)
from tests.terminations.conftest import csv_bytes, serial_for, sheet_rows, xlsx_bytes

Status = TerminationImportRun.Status
Outcome = TerminationImportRow.Outcome


def outcomes(run):
    return dict(run.rows.values_list("serial", "outcome"))


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_realistic_sheet_applies_terminates_and_records_history(make_devices, billing_user, fmt):
    make_devices(20)
    rows = sheet_rows([serial_for(i) for i in range(1, 11)], reason="Vehicle sold")
    data = csv_bytes(rows) if fmt == "csv" else xlsx_bytes(rows)
    run = termination_sheet_import(file=data, filename=f"summary.{fmt}", actor=billing_user)

    assert run.status == Status.SUCCEEDED, run.error
    assert (run.total_rows, run.applied_count, run.invalid_count) == (10, 10, 0)
    assert run.sheet_date == date(2026, 11, 20)
    assert len(run.sha256) == 64
    terminated = Device.objects.filter(status=Device.Status.TERMINATED)
    assert sorted(terminated.values_list("serial", flat=True)) == [serial_for(i) for i in range(1, 11)]
    assert {d.terminated_at.date() for d in terminated} == {date(2026, 11, 20)}
    assert Device.objects.filter(status=Device.Status.ACTIVE).count() == 10
    t = Termination.objects.get(serial=serial_for(1))
    assert (t.source, t.status, t.reason_name, t.account, t.import_run_id, t.actor) == (
        "daily_sheet", "applied", "Vehicle sold", "ERP100", run.pk, billing_user)
    event = DeviceEvent.objects.get(device=t.device, to_status="terminated")
    assert event.from_status == "active" and event.actor == billing_user
    assert "daily termination sheet" in event.message and "Vehicle sold" in event.message
    assert event.data["import_run_id"] == run.pk


def test_same_sheet_twice_is_a_noop_run(make_devices):
    make_devices(5)
    data = csv_bytes(sheet_rows([serial_for(i) for i in range(1, 6)]))
    first = termination_sheet_import(file=data, filename="a.csv")
    events = DeviceEvent.objects.count()
    second = termination_sheet_import(file=data, filename="a-again.csv")
    assert second.status == Status.DUPLICATE and second.duplicate_of_id == first.pk
    assert "nothing to apply" in second.error
    assert second.rows.count() == 0 and DeviceEvent.objects.count() == events
    assert Termination.objects.count() == 5


def test_overlapping_days_report_already_terminated(make_devices):
    make_devices(6)
    day1 = sheet_rows([serial_for(i) for i in (1, 2, 3)], day=date(2026, 11, 19))
    day2 = day1 + sheet_rows([serial_for(i) for i in (4, 5)], day=date(2026, 11, 20))
    termination_sheet_import(file=csv_bytes(day1), filename="d1.csv")
    run = termination_sheet_import(file=csv_bytes(day2), filename="d2.csv")
    assert run.status == Status.SUCCEEDED
    assert (run.applied_count, run.already_count) == (2, 3)
    assert outcomes(run)[serial_for(1)] == Outcome.ALREADY
    assert Termination.objects.filter(serial=serial_for(1)).count() == 1
    assert DeviceEvent.objects.filter(device__serial=serial_for(1), to_status="terminated").count() == 1


def test_ten_percent_bad_rows_apply_the_rest_and_are_reported(make_devices):
    make_devices(90)
    good = sheet_rows([serial_for(i) for i in range(1, 91)])
    bad = [["", "11/20/2026", "", "", ""]] * 3 + [["??", "11/20/2026", "", "", ""]] * 3 + \
          [[serial_for(500 + i), "not-a-date", "", "", ""] for i in range(4)]
    run = termination_sheet_import(file=csv_bytes(good[:45] + bad + good[45:]), filename="mixed.csv")
    assert run.status == Status.PARTIAL
    assert (run.total_rows, run.applied_count, run.invalid_count) == (100, 90, 10)
    assert "10 invalid rows" in run.error
    invalid = list(run.rows.filter(outcome=Outcome.INVALID).order_by("row_number"))
    assert [r.row_number for r in invalid] == list(range(47, 57))  # header is line 1
    assert invalid[0].message == "serial number is empty"
    assert "not-a-date" in invalid[-1].message
    assert Device.objects.filter(status=Device.Status.TERMINATED).count() == 90
    assert not Termination.objects.filter(serial__startswith="CX00000005").exists()


def test_unknown_serials_are_kept_and_matched_when_the_device_appears(make_devices):
    make_devices(2)
    run = termination_sheet_import(file=csv_bytes(sheet_rows([serial_for(1), serial_for(77)])), filename="u.csv")
    assert (run.applied_count, run.unknown_count) == (1, 1)
    kept = Termination.objects.get(serial=serial_for(77))
    assert kept.status == Termination.Status.UNMATCHED and kept.device is None

    # Seen again while still unknown: reported, not duplicated.
    run2 = termination_sheet_import(file=csv_bytes(sheet_rows([serial_for(77)], day=date(2026, 11, 21))),
                                    filename="u2.csv")
    assert run2.unknown_count == 1 and Termination.objects.filter(serial=serial_for(77)).count() == 1

    # The device appears (e.g. imported later); the next import run matches the kept row.
    [device] = make_devices(1, start=77)
    termination_sheet_import(file=csv_bytes(sheet_rows([serial_for(2)], day=date(2026, 11, 22))), filename="u3.csv")
    kept.refresh_from_db()
    device.refresh_from_db()
    assert kept.status == Termination.Status.APPLIED and kept.device_id == device.pk
    assert device.status == Device.Status.TERMINATED
    assert device.events.filter(to_status="terminated").count() == 1


def test_duplicate_rows_in_one_sheet_across_batches(make_devices, monkeypatch):
    monkeypatch.setattr("ingestion.services.terminations.BATCH_SIZE", 3)
    make_devices(4)
    serials = [serial_for(1), serial_for(2), serial_for(1), serial_for(3), serial_for(4), serial_for(2)]
    run = termination_sheet_import(file=csv_bytes(sheet_rows(serials)), filename="dups.csv")
    assert (run.applied_count, run.duplicate_count) == (4, 2)
    assert run.status == Status.SUCCEEDED
    dup_rows = run.rows.filter(outcome=Outcome.DUPLICATE).order_by("row_number")
    assert [r.row_number for r in dup_rows] == [4, 7]
    assert Termination.objects.count() == 4


def test_dry_run_reports_and_changes_nothing(make_devices):
    make_devices(3)
    data = csv_bytes(sheet_rows([serial_for(1), serial_for(2), serial_for(99)]) + [["bad!", "", "", "", ""]])
    run = termination_sheet_import(file=data, filename="dry.csv", dry_run=True)
    assert run.status == Status.DRY_RUN
    assert (run.applied_count, run.unknown_count, run.invalid_count) == (2, 1, 1)
    assert not Termination.objects.exists()
    assert not Device.objects.filter(status=Device.Status.TERMINATED).exists()
    assert not DeviceEvent.objects.exists()
    # A dry run does not claim the sheet: the real import still applies it.
    real = termination_sheet_import(file=data, filename="dry.csv")
    assert real.status == Status.PARTIAL and real.applied_count == 2


def test_report_csv_is_formula_safe(make_devices):
    make_devices(1)
    run = termination_sheet_import(file=csv_bytes(sheet_rows([serial_for(1)]) + [["=HYPERLINK(1)", "", "", "", ""]]),
                                   filename="r.csv")
    lines = list(termination_import_report_rows(run))
    assert lines[0] == ["row", "serial", "termination_date", "outcome", "message", "device_id"]
    assert lines[1][:4] == [2, serial_for(1), "2026-11-20", "applied"]
    assert lines[2][1].startswith("'=") and lines[2][3] == "invalid"


@pytest.mark.parametrize("data,reason", [
    (b"", "The file is empty."),
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", "is not a CSV or XLSX file"),
    (b"Device,Date\nCX0000000001,2026-11-20\n", "No serial number column"),
])
def test_bad_files_fail_with_a_clear_reason_and_apply_nothing(make_devices, data, reason):
    make_devices(1)
    run = termination_sheet_import(file=data, filename="bad.csv")
    assert run.status == Status.FAILED and reason in run.error
    assert not run.claims_sheet
    assert not Termination.objects.exists()


def test_a_day_without_terminations_is_an_empty_successful_run(db):
    run = termination_sheet_import(file=b"Serial Number,Termination Date\r\n", filename="quiet-day.csv")
    assert (run.status, run.total_rows, run.error) == (Status.SUCCEEDED, 0, "The sheet lists no terminations.")


def test_failed_run_releases_the_sheet_so_the_next_run_applies_it(make_devices, monkeypatch, crash_effects):
    make_devices(4)
    data = csv_bytes(sheet_rows([serial_for(i) for i in range(1, 5)]))
    monkeypatch.setattr("ingestion.services.terminations.BATCH_SIZE", 2)
    undo = crash_effects(on_call=2)
    with pytest.raises(RuntimeError):
        termination_sheet_import(file=data, filename="crash.csv")
    failed = TerminationImportRun.objects.get()
    assert failed.status == Status.FAILED and not failed.claims_sheet and "internal error" in failed.error
    assert Device.objects.filter(status=Device.Status.TERMINATED).count() == 2  # batch 1 committed, batch 2 not

    undo()
    retry = termination_sheet_import(file=data, filename="crash.csv")
    assert retry.status == Status.SUCCEEDED and (retry.applied_count, retry.already_count) == (2, 2)
    assert Device.objects.filter(status=Device.Status.TERMINATED).count() == 4


def test_an_error_while_applying_stops_the_reading_thread(make_devices, monkeypatch, crash_effects):
    make_devices(2)
    monkeypatch.setattr("ingestion.services.terminations.BATCH_SIZE", 2)
    crash_effects()
    with pytest.raises(RuntimeError):  # the first batch fails; 99 more were still to be read
        termination_sheet_import(file=csv_bytes(sheet_rows([serial_for(i) for i in range(1, 201)])),
                                 filename="crash.csv")
    assert not [t for t in threading.enumerate() if t.name == "sheet-read-ahead"]


def test_query_count_does_not_grow_with_rows_per_batch(make_devices, monkeypatch):
    """Within one batch the same statements run whatever the row count (no per-row queries).
    SQLite caps a statement at 999 parameters, so Django splits bulk INSERTs there; PostgreSQL
    sends each as one statement, so there the counts are equal."""
    monkeypatch.setattr("ingestion.services.terminations.BATCH_SIZE", 10_000)
    make_devices(600)

    def queries_for(serials, name):
        with CaptureQueriesContext(connection) as ctx:
            termination_sheet_import(file=csv_bytes(sheet_rows(serials) + [["bad!", "", "", "", ""]]
                                                    + sheet_rows(["CX9" + s[3:] for s in serials[:3]])),
                                     filename=name)
        return [q["sql"].split(" (")[0].split(" WHERE")[0].split(" SET")[0][:60] for q in ctx.captured_queries
                if "SAVEPOINT" not in q["sql"]]

    queries_for([serial_for(600)], "warm-up.csv")  # creates the upload source once
    small = queries_for([serial_for(i) for i in range(1, 11)], "small.csv")
    large = queries_for([serial_for(i) for i in range(11, 511)], "large.csv")
    assert sorted(set(small)) == sorted(set(large))
    if connection.vendor == "postgresql":
        assert len(large) == len(small), (small, large)
    else:
        assert sum(1 for q in large if not q.startswith("INSERT")) == sum(1 for q in small if not q.startswith("INSERT"))


def test_folder_source_imports_newest_and_archives(make_devices, tmp_path):
    make_devices(3)
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "old.csv").write_bytes(csv_bytes(sheet_rows([serial_for(1)])))
    newest = folder / "newest.xlsx"
    newest.write_bytes(xlsx_bytes(sheet_rows([serial_for(2), serial_for(3)])))
    import os
    os.utime(folder / "old.csv", (1, 1))
    source = TerminationSource.objects.create(name="Drop", kind="folder", folder_path=str(folder))
    run = termination_sheet_import(source=source)
    assert run.status == Status.SUCCEEDED and run.filename == "newest.xlsx" and run.applied_count == 2
    assert (folder / "imported" / "newest.xlsx").exists() and not newest.exists()
    empty = TerminationSource.objects.create(name="Empty", kind="folder", folder_path=str(tmp_path / "nope"))
    failed = termination_sheet_import(source=empty)
    assert failed.status == Status.FAILED and "does not exist" in failed.error


def test_scheduled_job_runs_every_enabled_source_and_survives_failures(make_devices, tmp_path):
    make_devices(2)
    (tmp_path / "s.csv").write_bytes(csv_bytes(sheet_rows([serial_for(1)])))
    TerminationSource.objects.create(name="Broken", kind="url", url="http://127.0.0.1:9/sheet.csv")
    TerminationSource.objects.create(name="Drop", kind="folder", folder_path=str(tmp_path))
    TerminationSource.objects.create(name="Off", kind="folder", folder_path=str(tmp_path), enabled=False)
    runs = termination_import_scheduled()
    by_source = {r.source.name: r for r in runs}
    assert set(by_source) == {"Broken", "Drop"}
    assert by_source["Broken"].status == Status.FAILED and "unreachable" in by_source["Broken"].error
    assert by_source["Drop"].status == Status.SUCCEEDED


def test_claim_is_unique_per_source_and_sheet(make_devices):
    from django.db import IntegrityError, transaction

    source = TerminationSource.objects.create(name="S", kind="upload")
    TerminationImportRun.objects.create(source=source, sha256="a" * 64, claims_sheet=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        TerminationImportRun.objects.create(source=source, sha256="a" * 64, claims_sheet=True)
    TerminationImportRun.objects.create(source=source, sha256="a" * 64, claims_sheet=False)


def test_termination_unique_per_live_serial(make_devices):
    from django.db import IntegrityError, transaction

    [device] = make_devices(1)
    Termination.objects.create(device=device, serial=device.serial, source="manual", status="applied")
    with pytest.raises(IntegrityError), transaction.atomic():
        Termination.objects.create(device=device, serial=device.serial, source="daily_sheet", status="applied")
    Termination.objects.create(device=device, serial=device.serial, source="manual", status="failed")
