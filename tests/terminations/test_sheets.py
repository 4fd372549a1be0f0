"""The sheet reader: formats, encodings, delimiters, header synonyms, dates, and bad files."""

import threading
from datetime import date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestion.services.sheets import SheetError, normalise_serial, parse_date, sheet_read_batches, sheet_read_rows
from tests.terminations.conftest import csv_bytes, xlsx_bytes


def read(tmp_path, data: bytes, name="sheet.csv", **kwargs):
    path = tmp_path / name
    path.write_bytes(data)
    return list(sheet_read_rows(path, filename=name, **kwargs))


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_csv_any_common_delimiter(tmp_path, delimiter):
    rows = read(tmp_path, csv_bytes([["CX0000000001", "11/20/2026", "Vehicle sold", "ERP1", "350000000000001"]],
                                     delimiter=delimiter))
    assert [(r.serial, r.terminated_on, r.reason, r.account, r.imei, r.error) for r in rows] == [
        ("CX0000000001", date(2026, 11, 20), "Vehicle sold", "ERP1", "350000000000001", "")
    ]


def test_utf8_bom_and_windows_1252(tmp_path):
    bom = read(tmp_path, csv_bytes([["CX0000000001", "2026-11-20", "Café closed", "", ""]], bom=True))
    assert bom[0].serial == "CX0000000001" and bom[0].reason == "Café closed"
    cp = read(tmp_path, csv_bytes([["CX0000000002", "2026-11-20", "Résilié – fin", "", ""]], encoding="cp1252"))
    assert cp[0].reason == "Résilié – fin"


@pytest.mark.parametrize("header", [
    ["serial number", "termination date"],
    ["  SERIAL NO ", "Terminated Date"],
    ["Device Serial", "Date Terminated"],
    ["Serial_No.", "termination-date (UTC)"],
])
def test_header_synonyms_case_and_spacing(tmp_path, header):
    rows = read(tmp_path, csv_bytes([["cx-0000 000001", "20.11.2026"]], header=header))
    assert rows[0].serial == "CX0000000001"
    assert rows[0].terminated_on == date(2026, 11, 20)


def test_title_lines_before_header_and_blank_rows_are_skipped(tmp_path):
    data = b"Geotab termination summary\nGenerated 2026-11-21\n\nAccount,Serial Number,Reason ID\n" \
           b"ERP9,CX0000000001,4\n,,\n ERP9 , cx0000000002 ,\n"
    rows = read(tmp_path, data)
    assert [(r.number, r.serial, r.account, r.reason_id) for r in rows] == [
        (5, "CX0000000001", "ERP9", 4), (7, "CX0000000002", "ERP9", None)]


@pytest.mark.parametrize("text,expected", [
    ("2026-11-20", date(2026, 11, 20)),
    ("2026-11-20T13:45:00Z", date(2026, 11, 20)),
    ("2026-11-20 13:45:00", date(2026, 11, 20)),
    ("11/20/2026", date(2026, 11, 20)),
    ("20/11/2026", date(2026, 11, 20)),  # day > 12 settles day-first
    ("03/04/2026", date(2026, 3, 4)),  # ambiguous: month-first (MyAdmin is North American)
    ("20.11.2026", date(2026, 11, 20)),
    ("20-Nov-2026", date(2026, 11, 20)),
    ("Nov 20, 2026", date(2026, 11, 20)),
    ("2026/11/20", date(2026, 11, 20)),
    ("", None),
    (46346, date(2026, 11, 20)),  # Excel serial day number
    (datetime(2026, 11, 20, 8, 0), date(2026, 11, 20)),
])
def test_dates_in_the_usual_formats(text, expected):
    assert parse_date(text) == expected


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-45", "31/31/2026", 12])
def test_unreadable_dates_raise(bad):
    with pytest.raises(ValueError):
        parse_date(bad)


def test_serial_normalisation():
    assert normalise_serial("  cx-0000 0000_01 ") == "CX0000000001"
    assert normalise_serial(1234567.0) == "1234567"
    assert normalise_serial(None) == ""


def test_invalid_rows_carry_a_reason(tmp_path):
    rows = read(tmp_path, csv_bytes([
        ["", "11/20/2026", "", "", ""],
        ["not a serial!", "11/20/2026", "", "", ""],
        ["CX0000000003", "someday", "", "", ""],
        ["CX0000000004", "11/20/2026", "", "", "12ab"],
    ]))
    errors = [r.error for r in rows]
    assert errors[0] == "serial number is empty"
    assert "is not a serial number" in errors[1]
    assert "termination date 'someday' is not a date" in errors[2]
    assert "IMEI '12ab' is not 14-16 digits" in errors[3]


def test_xlsx_streamed_with_title_rows_numbers_and_dates(tmp_path):
    data = xlsx_bytes(
        [["CX0000000001", datetime(2026, 11, 20), "Lost", 1001, 350000000000001.0],
         [None, None, None, None, None],
         ["cx0000000002", "11/19/2026", "Sold", "ERP2", None]],
        title_rows=[["Termination summary"], []],
    )
    rows = read(tmp_path, data, name="sheet.xlsx")
    assert [(r.serial, r.terminated_on, r.account, r.imei) for r in rows] == [
        ("CX0000000001", date(2026, 11, 20), "1001", "350000000000001"),
        ("CX0000000002", date(2026, 11, 19), "ERP2", ""),
    ]


def test_xlsx_misnamed_as_csv_is_still_read(tmp_path):
    rows = read(tmp_path, xlsx_bytes([["CX0000000001", "2026-11-20", "", "", ""]]), name="export.csv")
    assert rows[0].serial == "CX0000000001"


@pytest.mark.parametrize("data,message", [
    (b"", "empty"),
    (b"   \n\n", "empty"),
    (b"%PDF-1.7 binary\x00\x01", "not a CSV or XLSX"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1legacy", "Legacy Excel"),
    (b"PK\x03\x04broken zip", "damaged"),
    (b"<!DOCTYPE html><html><body>Sign in</body></html>", "HTML page"),
    (b"Device,Date\nCX0000000001,2026-11-20\n", "No serial number column"),
])
def test_whole_file_problems_raise_a_clear_sheet_error(tmp_path, data, message):
    with pytest.raises(SheetError, match=message):
        read(tmp_path, data)


def test_row_cap(tmp_path):
    with pytest.raises(SheetError, match="more than 2 rows"):
        read(tmp_path, csv_bytes([["CX0000000001"], ["CX0000000002"], ["CX0000000003"]], header=["Serial"]),
             max_rows=2)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400) | st.text(max_size=400).map(lambda t: ("Serial Number,Date\n" + t).encode()))
def test_reader_never_crashes_on_arbitrary_input(tmp_path, data):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(data)
    try:
        for row in sheet_read_rows(path):
            assert row.error or row.serial
    except SheetError:
        pass


def batches_of(path, **kwargs):
    return [[row.serial for row in batch] for batch in sheet_read_batches(path, **kwargs)]


def reader_threads():
    return [t for t in threading.enumerate() if t.name == "sheet-read-ahead" and t.is_alive()]


def test_batches_are_read_ahead_in_order(tmp_path):
    path = tmp_path / "sheet.csv"
    serials = [f"CX{n:010d}" for n in range(1, 13)]
    path.write_bytes(csv_bytes([[s] for s in serials], header=["Serial"]))
    assert batches_of(path, batch_size=5) == [serials[:5], serials[5:10], serials[10:]]
    assert batches_of(path, batch_size=12) == [serials]
    assert not reader_threads()


def test_a_read_error_comes_after_the_batches_read_before_it(tmp_path):
    path = tmp_path / "sheet.csv"
    path.write_bytes(csv_bytes([[f"CX{n:010d}"] for n in range(1, 9)], header=["Serial"]))
    seen = []
    with pytest.raises(SheetError, match="more than 7 rows"):
        for batch in sheet_read_batches(path, batch_size=3, max_rows=7):
            seen.append(len(batch))
    assert seen == [3, 3]
    with pytest.raises(SheetError, match="No serial number column"):
        list(sheet_read_batches(_write(tmp_path, b"Device,Date\nCX0000000001,2026-11-20\n"), batch_size=3))
    assert not reader_threads()


def test_a_consumer_that_stops_early_stops_the_reader(tmp_path):
    path = tmp_path / "big.csv"
    path.write_bytes(csv_bytes([[f"CX{n:010d}"] for n in range(1, 20_001)], header=["Serial"]))
    batches = sheet_read_batches(path, batch_size=100, ahead=2)
    assert len(next(batches)) == 100
    batches.close()  # what an error in the consumer's loop does
    assert not reader_threads()


def _write(tmp_path, data: bytes):
    path = tmp_path / "other.csv"
    path.write_bytes(data)
    return path
