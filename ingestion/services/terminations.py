"""Importing the daily termination summary sheet: fetch (URL, drop folder or upload), read
(CSV/XLSX, streamed), apply in bulk batches, and keep a per-row report.

Exactly-once by construction, not by luck:
- each run records the sheet's SHA-256; a run *claims* (source, sha256) through a partial unique
  constraint before applying, so the same sheet fetched twice (two beats, a manual re-run, an
  overlapping upload) is a no-op run pointing at the first;
- rows are applied idempotently (a device is terminated once: `Termination` has one live row per
  serial), so overlapping daily sheets report the overlap as "already terminated";
- a run that fails releases its claim, so the next scheduled run applies the sheet again and
  whatever the failed run did apply is reported as already done.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import os
import shutil
import tempfile
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import closing
from datetime import date
from pathlib import Path
from typing import IO

import requests
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from devices.services.terminations import termination_apply_bulk, termination_match_unmatched
from ingestion.models import TerminationImportRow, TerminationImportRun, TerminationSource
from ingestion.services.sheets import SheetError, sheet_read_batches
from ingestion.services.termination_jobs import termination_job_batch, termination_job_sheet_opened
from portal.bulk import bulk_insert_rows

logger = logging.getLogger(__name__)

BATCH_SIZE = int(getattr(settings, "TERMINATION_IMPORT_BATCH_SIZE", 5000))
# Batches applied at once, each on its own database connection: the import waits on PostgreSQL
# for most of its time, and PostgreSQL uses one core per connection.
APPLIERS = int(getattr(settings, "TERMINATION_IMPORT_APPLIERS", 2))
MAX_BYTES = int(getattr(settings, "TERMINATION_SHEET_MAX_BYTES", 256 * 1024 * 1024))
MAX_ROWS = int(getattr(settings, "TERMINATION_SHEET_MAX_ROWS", 2_000_000))
# A run still "running" after this long died with its worker: its claim is released.
STALE_RUN_SECONDS = int(getattr(settings, "TERMINATION_IMPORT_STALE_SECONDS", 3600))
UPLOAD_SOURCE_NAME = "Uploads"
SHEET_SUFFIXES = (".csv", ".xlsx", ".txt", ".tsv")


class SheetFetchError(Exception):
    """The sheet could not be fetched (the message says why, for the run's error)."""


def termination_upload_source() -> TerminationSource:
    source, _ = TerminationSource.objects.get_or_create(
        name=UPLOAD_SOURCE_NAME, defaults={"kind": TerminationSource.Kind.UPLOAD}
    )
    return source


# --- fetching ----------------------------------------------------------------------------------

def _spool(chunks, *, limit: int = MAX_BYTES) -> tuple[str, str, int]:
    """Write chunks to a temporary file while hashing. Returns (path, sha256, size)."""
    digest = hashlib.sha256()
    size = 0
    fd, path = tempfile.mkstemp(prefix="termination-sheet-", suffix=".bin")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                if not chunk:
                    continue
                size += len(chunk)
                if size > limit:
                    raise SheetFetchError(f"The sheet is larger than {limit // (1024 * 1024)} MB.")
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        os.unlink(path)
        raise
    return path, digest.hexdigest(), size


def _iter_file(file) -> object:
    if isinstance(file, (bytes, bytearray)):
        yield bytes(file)
        return
    if hasattr(file, "chunks"):  # Django UploadedFile
        yield from file.chunks()
        return
    while chunk := file.read(1 << 20):
        yield chunk


def _fetch_url(url: str) -> tuple[str, str, int, str]:
    timeout = (settings.VENDOR_CONNECT_TIMEOUT, settings.VENDOR_READ_TIMEOUT)
    try:
        with requests.get(url, stream=True, timeout=timeout, allow_redirects=True) as response:
            if response.status_code >= 400:
                raise SheetFetchError(f"The sheet URL answered HTTP {response.status_code}.")
            filename = _filename_from_response(response, url)
            path, sha, size = _spool(response.iter_content(chunk_size=1 << 20))
            return path, sha, size, filename
    except requests.Timeout:
        raise SheetFetchError("The sheet URL did not answer in time.") from None
    except requests.ConnectionError as exc:
        raise SheetFetchError(f"The sheet URL is unreachable ({type(exc).__name__}).") from None
    except requests.RequestException as exc:
        raise SheetFetchError(f"The sheet could not be downloaded ({type(exc).__name__}).") from None


def _filename_from_response(response, url: str) -> str:
    disposition = response.headers.get("Content-Disposition", "")
    for part in disposition.split(";"):
        part = part.strip()
        if part.lower().startswith("filename="):
            return part.split("=", 1)[1].strip().strip('"')[:255]
    return (url.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "sheet")[:255]


def _folder_newest(folder: str) -> Path:
    base = Path(folder)
    if not base.is_dir():
        raise SheetFetchError(f"The drop folder {folder} does not exist.")
    candidates = [p for p in base.iterdir() if p.is_file() and p.suffix.lower() in SHEET_SUFFIXES]
    if not candidates:
        raise SheetFetchError(f"No .csv or .xlsx sheet in the drop folder {folder}.")
    return max(candidates, key=lambda p: (p.stat().st_mtime, p.name))


def _folder_archive(path: Path) -> None:
    """Move an imported file to <folder>/imported/ so the next run picks the next sheet."""
    done = path.parent / "imported"
    done.mkdir(exist_ok=True)
    target = done / path.name
    if target.exists():
        target = done / f"{path.stem}-{timezone.now():%Y%m%d%H%M%S}{path.suffix}"
    shutil.move(str(path), target)


# --- the import --------------------------------------------------------------------------------

def termination_sheet_import(
    *, source: TerminationSource | None = None, file: IO | bytes | None = None, filename: str | None = None,
    dry_run: bool = False, actor=None, job_id: int | None = None,
) -> TerminationImportRun:
    """Import one termination sheet: from ``file`` (an upload; ``source`` defaults to "Uploads")
    or fetched from ``source`` (URL or drop folder). Never raises for bad input: the returned run
    says failed / partial / duplicate and why. With ``job_id`` the job (portal.jobs) gets the
    sheet's size and advances once per batch (ingestion.services.termination_jobs)."""
    if file is None and source is None:
        raise ValueError("termination_sheet_import needs a source or a file")
    source = source or termination_upload_source()
    actor = actor if getattr(actor, "pk", None) else None
    run = TerminationImportRun.objects.create(
        source=source, filename=(filename or "")[:255], dry_run=dry_run, actor=actor,
    )
    folder_file: Path | None = None
    path = None
    try:
        try:
            if file is not None:
                path, sha, _ = _spool(_iter_file(file))
            elif source.kind == TerminationSource.Kind.URL:
                path, sha, _, fetched_name = _fetch_url(source.url)
                run.filename = run.filename or fetched_name
            elif source.kind == TerminationSource.Kind.FOLDER:
                folder_file = _folder_newest(source.folder_path)
                with folder_file.open("rb") as fh:
                    path, sha, _ = _spool(_iter_file(fh))
                run.filename = run.filename or folder_file.name[:255]
            else:
                raise SheetFetchError("An upload source has nothing to fetch: upload a file instead.")
        except (SheetFetchError, OSError) as exc:
            return _finish(run, status=TerminationImportRun.Status.FAILED, error=str(exc))
        run.sha256 = sha
        run.save(update_fields=["sha256", "filename"])

        if not dry_run:
            first = _claim_sheet(run)
            if first is not None:
                if folder_file is not None:
                    _folder_archive(folder_file)
                run.duplicate_of = first
                return _finish(run, status=TerminationImportRun.Status.DUPLICATE,
                               error=f"Same sheet (SHA-256) as import #{first.pk}; nothing to apply.")
        try:
            _apply_sheet(run, path, dry_run=dry_run, actor=actor, job_id=job_id)
        except SheetError as exc:
            return _finish(run, status=TerminationImportRun.Status.FAILED, error=str(exc), release=True)
        except Exception as exc:  # noqa: BLE001 — record, release the claim, let the caller see it
            logger.exception("termination sheet import #%s failed", run.pk)
            _finish(run, status=TerminationImportRun.Status.FAILED,
                    error=f"Import stopped by an internal error ({type(exc).__name__}); "
                          "rows already applied stay applied and the next run re-applies the rest.",
                    release=True)
            raise
        if folder_file is not None:
            _folder_archive(folder_file)
        run.refresh_from_db()
        if dry_run:
            status = TerminationImportRun.Status.DRY_RUN
        elif run.invalid_count:
            status = TerminationImportRun.Status.PARTIAL
        else:
            status = TerminationImportRun.Status.SUCCEEDED
        error = f"{run.invalid_count} invalid rows skipped (see the report)." if run.invalid_count else ""
        if run.total_rows == 0:
            # A day without terminations: the sheet has its header and nothing else.
            error = "The sheet lists no terminations."
        _finish(run, status=status, error=error)
        if not dry_run:
            # Serials unknown at earlier imports may belong to devices created since.
            termination_match_unmatched(actor=actor)
        return run
    finally:
        if path:
            try:
                os.unlink(path)
            except OSError:
                pass


def _claim_sheet(run: TerminationImportRun) -> TerminationImportRun | None:
    """Claim (source, sha256) for this run. Returns the earlier run holding it, if any. The same
    sheet from another source is also recognised (the claim check looks across sources)."""
    stale = timezone.now() - timezone.timedelta(seconds=STALE_RUN_SECONDS)
    TerminationImportRun.objects.filter(
        sha256=run.sha256, claims_sheet=True, status=TerminationImportRun.Status.RUNNING, started_at__lt=stale,
    ).update(claims_sheet=False, status=TerminationImportRun.Status.FAILED,
             error="Interrupted (the worker stopped); released for a new run.", finished_at=timezone.now())
    earlier = (TerminationImportRun.objects.filter(sha256=run.sha256, claims_sheet=True)
               .exclude(pk=run.pk).order_by("pk").first())
    if earlier is not None:
        return earlier
    try:
        with transaction.atomic():
            TerminationImportRun.objects.filter(pk=run.pk).update(claims_sheet=True)
    except IntegrityError:
        return (TerminationImportRun.objects.filter(source=run.source, sha256=run.sha256, claims_sheet=True)
                .exclude(pk=run.pk).first())
    run.claims_sheet = True
    return None


def _finish(run, *, status, error="", release=False) -> TerminationImportRun:
    run.status = status
    run.error = error
    run.finished_at = timezone.now()
    fields = ["status", "error", "finished_at", "duplicate_of", "filename"]
    if release:
        run.claims_sheet = False
        fields.append("claims_sheet")
    run.save(update_fields=fields)
    return run


def _apply_sheet(run: TerminationImportRun, path: str, *, dry_run: bool, actor, job_id: int | None = None) -> None:
    termination_job_sheet_opened(job_id=job_id, path=path, filename=run.filename)
    # closing(): an error while applying stops the reading thread at once.
    with closing(sheet_read_batches(path, batch_size=BATCH_SIZE, filename=run.filename,
                                    max_rows=MAX_ROWS)) as batches:
        # Inside a caller's transaction (a test, a shell session) other connections would not
        # see what the caller has not committed, and SQLite takes one writer at a time: the
        # batches then apply on the caller's connection, in turn.
        if APPLIERS < 2 or connection.in_atomic_block or connection.vendor != "postgresql":
            for batch in batches:
                _apply_batch(run, batch, dry_run=dry_run, actor=actor)
                termination_job_batch(job_id=job_id, run=run, batch=batch)
        else:
            _apply_batches_concurrently(run, batches, dry_run=dry_run, actor=actor, job_id=job_id)


def _apply_batches_concurrently(run: TerminationImportRun, batches, *, dry_run: bool, actor, job_id) -> None:
    """Apply up to APPLIERS batches at once, each in its own transaction on its own connection.
    A batch waits for every batch in flight that names one of its serials, so the outcome of a
    serial listed twice ("duplicate") and the one-live-termination-per-serial constraint see the
    earlier row committed, exactly as one after another. Devices, terminations, history and
    report rows of different serials are different rows; the run's counters are increments."""

    def apply(batch: list) -> list:
        try:
            _apply_batch(run, batch, dry_run=dry_run, actor=actor)
            return batch
        finally:
            connection.close()  # this worker thread's own connection

    in_flight: dict[Future, set[str]] = {}

    def settle(futures) -> None:
        for future in futures:
            del in_flight[future]
            termination_job_batch(job_id=job_id, run=run, batch=future.result())

    with ThreadPoolExecutor(max_workers=APPLIERS, thread_name_prefix="termination-apply") as pool:
        try:
            for batch in batches:
                serials = {row.serial for row in batch if not row.error}
                while in_flight and (len(in_flight) >= APPLIERS
                                     or any(not serials.isdisjoint(other) for other in in_flight.values())):
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    settle(done)
                # The caller's context (its request id, for the history rows) goes with the batch.
                in_flight[pool.submit(contextvars.copy_context().run, apply, batch)] = serials
            settle(list(in_flight))
        finally:
            # An error (a batch's, the reader's) stops new batches; those in flight finish,
            # committed or rolled back whole, and count in the job before the error is raised.
            wait(in_flight)
            for future in list(in_flight):
                if future.exception() is None:
                    settle([future])


REPORT_ROW_FIELDS = ("run_id", "row_number", "serial", "terminated_on", "outcome", "message", "device_id")


def _apply_batch(run: TerminationImportRun, batch: list, *, dry_run: bool, actor) -> None:
    """One transaction per batch: its terminations, device updates, history, effects, report rows
    and the run's counters commit together, so a crash never leaves a half-applied batch."""
    if not batch:
        return
    valid = [row for row in batch if not row.error]
    with transaction.atomic():
        results = termination_apply_bulk(
            items=valid, import_run_id=run.pk, actor=actor, dry_run=dry_run,
            label=f"daily termination sheet (import #{run.pk})",
        )
        Outcome = TerminationImportRow.Outcome
        report = [
            (run.pk, row.number, (row.serial or row.raw_serial)[:64], row.terminated_on, Outcome.INVALID.value,
             row.error[:300], None)
            for row in batch if row.error
        ]
        dates = {row.number: row.terminated_on for row in valid}
        report.extend(
            (run.pk, r.row_number, r.serial, dates.get(r.row_number), r.outcome, r.message[:300], r.device_id)
            for r in results
        )
        bulk_insert_rows(TerminationImportRow, REPORT_ROW_FIELDS, report)
        counts = {outcome: 0 for outcome in Outcome.values}
        for item in report:
            counts[item[4]] += 1
        latest = max((d for d in dates.values() if d), default=None)
        TerminationImportRun.objects.filter(pk=run.pk).update(
            total_rows=F("total_rows") + len(batch),
            applied_count=F("applied_count") + counts[Outcome.APPLIED],
            already_count=F("already_count") + counts[Outcome.ALREADY],
            unknown_count=F("unknown_count") + counts[Outcome.UNKNOWN],
            duplicate_count=F("duplicate_count") + counts[Outcome.DUPLICATE],
            invalid_count=F("invalid_count") + counts[Outcome.INVALID],
        )
        if latest is not None:
            _raise_sheet_date(run.pk, latest)


def _raise_sheet_date(run_pk: int, latest: date) -> None:
    TerminationImportRun.objects.filter(pk=run_pk).exclude(sheet_date__gte=latest).update(sheet_date=latest)


SANDBOX_SOURCE_NAME = "Sandbox daily sheet"


def termination_sandbox_source() -> TerminationSource | None:
    """With the sandbox on and no fetchable source configured, the sandbox's daily sheet is the
    source, so `make run` shows the whole loop; staff can disable or replace it in the admin."""
    if TerminationSource.objects.exclude(kind=TerminationSource.Kind.UPLOAD).exists():
        return None
    source, _ = TerminationSource.objects.get_or_create(
        name=SANDBOX_SOURCE_NAME,
        defaults={"kind": TerminationSource.Kind.URL,
                  "url": f"{settings.SANDBOX_BASE_URL}/sandbox/myadmin/termination-sheet.csv"},
    )
    return source


def termination_import_scheduled(*, source_id: int | None = None) -> list[TerminationImportRun]:
    """The beat job: import from every enabled URL/folder source (or the one given). One source's
    failure is recorded on its run and does not stop the others, nor tomorrow's run."""
    if settings.SANDBOX:
        termination_sandbox_source()
    sources = TerminationSource.objects.filter(enabled=True).exclude(kind=TerminationSource.Kind.UPLOAD)
    if source_id is not None:
        sources = TerminationSource.objects.filter(pk=source_id)
    runs = []
    for source in sources.order_by("pk"):
        try:
            runs.append(termination_sheet_import(source=source))
        except Exception:  # noqa: BLE001 — already recorded on the run; keep going
            logger.exception("scheduled termination import from %s failed", source)
    return runs


REPORT_HEADER = ["row", "serial", "termination_date", "outcome", "message", "device_id"]


def termination_import_report_rows(run: TerminationImportRun):
    """The per-row report, streamed (for the CSV download), spreadsheet-formula safe."""
    yield REPORT_HEADER
    qs = run.rows.order_by("row_number").values_list(
        "row_number", "serial", "terminated_on", "outcome", "message", "device_id"
    )
    for number, serial, day, outcome, message, device_id in qs.iterator(chunk_size=5000):
        yield [number, _csv_safe(serial), day.isoformat() if day else "", outcome, _csv_safe(message),
               device_id or ""]


def _csv_safe(value: str) -> str:
    # A cell starting with = + - @ is a formula in Excel (OWASP "CSV injection").
    return f"'{value}" if value and value[0] in "=+-@\t\r" else value
