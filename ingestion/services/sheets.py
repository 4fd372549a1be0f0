"""Reading partner spreadsheets (CSV or XLSX) row by row, in bounded memory.

The daily termination sheet is produced by people and by spreadsheet exports, so the reader is
tolerant where that costs nothing: any common CSV delimiter, UTF-8 with or without BOM (with a
Windows-1252 fallback for files saved by Excel on Windows), headers found by name whatever their
case, spacing or common synonym, and dates in the usual formats. What it cannot read is reported
precisely: a whole-file problem raises `SheetError`; a bad row comes back with `error` set so the
caller can report it and carry on with the rest.
"""

from __future__ import annotations

import codecs
import csv
import functools
import queue
import re
import threading
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

# A header row is looked for among the first rows (sheets often start with a title line or two).
HEADER_SEARCH_ROWS = 20
# Bounded field size: a "CSV" with a 100 MB single field is not a termination sheet.
csv.field_size_limit(1 << 20)


class SheetError(ValueError):
    """The file as a whole cannot be read as the expected sheet (the message says why)."""


# Normalised header (lowercase, letters and digits only) → canonical column.
COLUMN_SYNONYMS: dict[str, tuple[str, ...]] = {
    "serial": (
        "serialnumber", "serialno", "serial", "serialnum", "deviceserial", "deviceserialnumber",
        "deviceserialno", "sn", "devicesn", "hardwareserial", "geotabserial", "serialnumbers",
    ),
    "terminated_on": (
        "terminationdate", "terminateddate", "dateterminated", "terminatedon", "terminatedat",
        "terminationdateutc", "terminateddateutc", "dateofttermination", "dateoftermination",
        "terminationeffectivedate", "effectivedate", "enddate", "billingenddate", "date",
    ),
    "reason": (
        "reason", "terminationreason", "reasonname", "reasonfortermination", "terminationreasonname",
        "requestreason",
    ),
    "reason_id": ("reasonid", "terminationreasonid"),
    "account": (
        "account", "accountid", "accountno", "accountnumber", "erp", "erpno", "erpnumber", "erpid",
        "erpaccount", "partneraccount", "partnererp", "partnererpno", "customeraccount",
    ),
    "imei": ("imei", "imeino", "imeinumber", "deviceimei"),
    "comments": ("comments", "comment", "notes", "note", "terminationcomments"),
}
_HEADER_INDEX = {syn: canonical for canonical, syns in COLUMN_SYNONYMS.items() for syn in syns}

_SERIAL_RE = re.compile(r"^[A-Z0-9]{4,32}$")
_IMEI_RE = re.compile(r"^\d{14,16}$")
_SERIAL_STRIP = re.compile(r"[\s\-_.]")
_WHITESPACE = re.compile(r"\s")


@dataclass(slots=True)
class SheetRow:
    number: int  # 1-based line/row number in the file, as a person sees it in a spreadsheet
    serial: str = ""
    raw_serial: str = ""
    terminated_on: date | None = None
    reason: str = ""
    reason_id: int | None = None
    account: str = ""
    imei: str = ""
    comments: str = ""
    error: str = ""


def normalise_header(value) -> str:
    return re.sub(r"[^a-z0-9]", "", str(value or "").lower())


def normalise_serial(value) -> str:
    """Serials are case-insensitive and exports sprinkle them with spaces or dashes; numbers that
    a spreadsheet turned into floats (1234.0) come back as their digits."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _SERIAL_STRIP.sub("", str(value)).upper()


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


# Day-first vs month-first is ambiguous for 03/04/2026. MyAdmin is a North American product, so
# an ambiguous slash date is read month-first; a day above 12 in either place settles it.
_DATE_FORMATS = (
    "%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%d.%m.%Y", "%d-%b-%Y", "%d %b %Y", "%b %d, %Y",
    "%b %d %Y", "%d %B %Y", "%B %d, %Y", "%B %d %Y", "%d-%b-%y", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M",
)
_SLASH_DATE = re.compile(r"^(\d{1,2})[/-](\d{1,2})[/-](\d{2}|\d{4})(?:[ T].*)?$")
_EXCEL_EPOCH = date(1899, 12, 30)


def parse_date(value) -> date | None:
    """A date from a cell: a datetime/date object (XLSX), an Excel serial number, or text in the
    usual formats. Empty → None; unreadable → ValueError with the offending text."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # Excel stores dates as days since 1899-12-30; a plausible range guards against ids.
        if 20000 <= value <= 80000:
            return _EXCEL_EPOCH + timedelta(days=int(value))
        raise ValueError(f"'{value}' is not a date")
    text = str(value).strip()
    if not text:
        return None
    return _parse_date_text(text)


@functools.lru_cache(maxsize=4096)
def _parse_date_text(text: str) -> date:
    """A daily sheet repeats a handful of dates over thousands of rows: each text is parsed
    once (a miss costs up to twenty strptime attempts)."""
    match = _SLASH_DATE.match(text)
    if match:
        a, b, year = int(match.group(1)), int(match.group(2)), int(match.group(3))
        if year < 100:
            year += 2000
        month, day = (b, a) if a > 12 else (a, b)
        try:
            return date(year, month, day)
        except ValueError:
            raise ValueError(f"'{text}' is not a date") from None
    candidate = text.replace("Z", "").split("+")[0] if "T" in text else text
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(candidate, fmt).date()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        raise ValueError(f"'{text}' is not a date") from None


# --- file formats ------------------------------------------------------------------------------

def sheet_detect_format(path: str | Path, *, filename: str = "") -> str:
    """'csv' or 'xlsx', from the file's content (extensions lie: exports are often misnamed)."""
    path = Path(path)
    with path.open("rb") as fh:
        head = fh.read(8192)
    if not head.strip():
        raise SheetError("The file is empty.")
    if head.startswith(b"PK\x03\x04"):
        if not zipfile.is_zipfile(path):
            raise SheetError("The file looks like an XLSX workbook but is damaged.")
        return "xlsx"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise SheetError("Legacy Excel (.xls) files are not supported: save the sheet as .xlsx or .csv.")
    if head.startswith(b"%PDF") or b"\x00" in head:
        raise SheetError(f"{filename or 'The file'} is not a CSV or XLSX file.")
    lowered = head.lstrip()[:200].lower()
    if lowered.startswith((b"<!doctype html", b"<html")):
        raise SheetError("The source returned an HTML page, not a CSV or XLSX sheet.")
    return "csv"


def _csv_encoding(path: Path) -> str:
    """UTF-8 (BOM or not) when the whole file decodes as UTF-8, else Windows-1252. One streamed
    pass: an early non-UTF-8 byte decides at once, a valid file costs a fast decode."""
    with path.open("rb") as fh:
        if fh.read(3) == codecs.BOM_UTF8:
            return "utf-8-sig"
        fh.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while chunk := fh.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "cp1252"
    return "utf-8"


def _csv_dialect(sample: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        # A one-column sheet or an odd sample: the most frequent candidate on the first line wins.
        first = sample.splitlines()[0] if sample else ""
        delimiter = max(",;\t|", key=first.count) if first else ","

        class _Fallback(csv.excel):
            pass

        _Fallback.delimiter = delimiter if first.count(delimiter) else ","
        return _Fallback


def _iter_csv(path: Path) -> Iterator[list]:
    encoding = _csv_encoding(path)
    with path.open("r", encoding=encoding, errors="replace", newline="") as fh:
        sample = fh.read(64 * 1024)
        fh.seek(0)
        dialect = _csv_dialect(sample)
        try:
            yield from csv.reader(fh, dialect)
        except csv.Error as exc:
            raise SheetError(f"The CSV file cannot be read: {exc}.") from None


def _iter_xlsx(path: Path) -> Iterator[tuple]:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    # A file object, not the path: openpyxl judges a path by its extension, and exports (and
    # our spooled temporary files) are often misnamed.
    handle = path.open("rb")
    try:
        # read_only streams the sheet XML; data_only gives cached values instead of formulas.
        workbook = openpyxl.load_workbook(handle, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        handle.close()
        raise SheetError(f"The XLSX workbook cannot be read: {exc}.") from None
    try:
        # The first worksheet that has a serial column; a summary tab may come first.
        for worksheet in workbook.worksheets:
            rows = worksheet.iter_rows(values_only=True)
            buffered = []
            for row in rows:
                buffered.append(row)
                if _find_header(row) is not None or len(buffered) >= HEADER_SEARCH_ROWS:
                    break
            if any(_find_header(r) is not None for r in buffered):
                yield from buffered
                yield from rows
                return
        # No sheet with a serial column: yield the first sheet so the caller reports it.
        if workbook.worksheets:
            yield from workbook.worksheets[0].iter_rows(values_only=True, max_row=HEADER_SEARCH_ROWS)
    finally:
        workbook.close()
        handle.close()


def _find_header(row: Iterable) -> dict[str, int] | None:
    columns: dict[str, int] = {}
    for index, cell in enumerate(row or ()):
        canonical = _HEADER_INDEX.get(normalise_header(cell))
        if canonical and canonical not in columns:
            columns[canonical] = index
    return columns if "serial" in columns else None


def sheet_read_rows(path: str | Path, *, filename: str = "", max_rows: int | None = None) -> Iterator[SheetRow]:
    """Yield one SheetRow per non-empty data row. Raises SheetError for an empty file, a file
    that is neither CSV nor XLSX, or a sheet without a serial column."""
    path = Path(path)
    kind = sheet_detect_format(path, filename=filename)
    raw_rows = _iter_csv(path) if kind == "csv" else _iter_xlsx(path)

    columns = None
    line = 0
    for raw in raw_rows:
        line += 1
        if line > HEADER_SEARCH_ROWS and columns is None:
            break
        columns = _find_header(raw)
        if columns is not None:
            break
    if columns is None:
        raise SheetError(
            "No serial number column found: the sheet needs a header such as "
            "'Serial Number', 'Serial No' or 'Device Serial'."
        )

    get = {name: columns.get(name) for name in COLUMN_SYNONYMS}
    data_rows = 0
    for raw in raw_rows:
        line += 1
        if not raw or all(c is None or (isinstance(c, str) and not c.strip()) for c in raw):
            continue
        data_rows += 1
        if max_rows is not None and data_rows > max_rows:
            raise SheetError(f"The sheet has more than {max_rows:,} rows.")
        yield _row_from_cells(line, raw, get)


def sheet_read_batches(path: str | Path, *, batch_size: int, filename: str = "", max_rows: int | None = None,
                       ahead: int = 2) -> Iterator[list[SheetRow]]:
    """``sheet_read_rows`` in lists of ``batch_size``, read by a thread up to ``ahead`` batches
    in advance, so parsing the next batch (Python) overlaps applying this one (the database,
    which releases the GIL while it works). Memory stays bounded: at most ``ahead`` + 2 batches
    exist at once. A SheetError (or any error) of the reader is raised here, after the batches
    read before it."""
    handoff: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def hand_over(item) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False  # the consumer has gone: stop reading

    def read() -> None:
        rows = sheet_read_rows(path, filename=filename, max_rows=max_rows)
        try:
            batch = []
            for row in rows:
                batch.append(row)
                if len(batch) >= batch_size:
                    if not hand_over(batch):
                        return
                    batch = []
            if batch and not hand_over(batch):
                return
            hand_over(_END_OF_SHEET)
        except BaseException as exc:  # noqa: BLE001 — handed to the consumer, raised there
            hand_over(_ReadFailure(exc))
        finally:
            rows.close()

    reader = threading.Thread(target=read, name="sheet-read-ahead", daemon=True)
    reader.start()
    try:
        while (item := handoff.get()) is not _END_OF_SHEET:
            if isinstance(item, _ReadFailure):
                raise item.error
            yield item
    finally:
        stop.set()
        reader.join(timeout=10)


_END_OF_SHEET = object()


@dataclass(slots=True)
class _ReadFailure:
    error: BaseException


def _cell(raw, index):
    if index is None or index >= len(raw):
        return None
    return raw[index]


def _row_from_cells(line: int, raw, get: dict) -> SheetRow:
    raw_serial = _cell(raw, get["serial"])
    row = SheetRow(number=line, raw_serial=_cell_text(raw_serial)[:64])
    row.serial = normalise_serial(raw_serial)
    row.reason = _cell_text(_cell(raw, get["reason"]))[:200]
    row.account = _cell_text(_cell(raw, get["account"]))[:64]
    row.comments = _cell_text(_cell(raw, get["comments"]))[:500]
    imei = _cell_text(_cell(raw, get["imei"]))
    row.imei = _WHITESPACE.sub("", imei)[:32]
    errors = []
    if not row.serial:
        errors.append("serial number is empty")
    elif not _SERIAL_RE.match(row.serial):
        errors.append(f"'{row.raw_serial[:40]}' is not a serial number")
    if row.imei and not _IMEI_RE.match(row.imei):
        errors.append(f"IMEI '{row.imei[:20]}' is not 14-16 digits")
    try:
        row.terminated_on = parse_date(_cell(raw, get["terminated_on"]))
    except ValueError as exc:
        errors.append(f"termination date {exc}")
    reason_id = _cell_text(_cell(raw, get["reason_id"]))
    if reason_id:
        try:
            row.reason_id = int(float(reason_id))
        except ValueError:
            errors.append(f"reason id '{reason_id[:20]}' is not a number")
    row.error = "; ".join(errors)
    return row
