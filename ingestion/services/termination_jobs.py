"""Termination-sheet imports as jobs (portal.jobs): what staff watch after "Import now" or
"Import a file".

The import service calls ``termination_job_sheet_opened`` once the sheet is spooled (the total,
estimated from the file, so the bar moves from the first batch) and ``termination_job_batch``
after each applied batch (one update per batch, never per row). ``termination_import_as_job``
runs the import for a task and finishes the job from the run: the exact total, the run's
status, its counts and links to the run, its report and the rows to look at.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from django.core.files.storage import default_storage
from django.urls import reverse

from ingestion.models import TerminationImportRow, TerminationImportRun
from portal.jobs import admin_url, job_advance, job_finish, job_running, job_set_total

# Uploaded sheets wait here (default storage) until a worker imports them. Several worker
# machines need a storage they all reach (a shared MEDIA_ROOT, or an object store).
UPLOAD_PREFIX = "termination-uploads"


def termination_upload_store(upload) -> str:
    """Keep an uploaded sheet for the worker; returns its storage name."""
    name = Path(getattr(upload, "name", "") or "sheet").name[-100:]
    return default_storage.save(f"{UPLOAD_PREFIX}/{uuid.uuid4().hex}-{name}", upload)


def _estimate_rows(path: str, filename: str) -> int | None:
    """Data rows in the sheet, estimated cheaply: CSV lines minus the header (title lines and
    quoted line breaks make it a little high); XLSX from the first sheet's dimension."""
    from ingestion.services.sheets import SheetError, sheet_detect_format

    try:
        kind = sheet_detect_format(path, filename=filename)
    except SheetError:
        return None
    if kind == "xlsx":
        import openpyxl

        try:
            with open(path, "rb") as handle:
                workbook = openpyxl.load_workbook(handle, read_only=True, data_only=True)
                try:
                    rows = workbook.worksheets[0].max_row if workbook.worksheets else None
                finally:
                    workbook.close()
        except Exception:  # noqa: BLE001 — an estimate only; the reader reports a bad file
            return None
        return max(0, rows - 1) if rows else None
    lines, last = 0, b"\n"
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    if last != b"\n":
        lines += 1
    return max(0, lines - 1)


def termination_job_sheet_opened(*, job_id: int | None, path: str, filename: str) -> None:
    if job_id is None:
        return
    estimate = _estimate_rows(path, filename)
    if estimate:
        job_set_total(job_id=job_id, total=estimate)


def _rows_url(run_pk: int, **filters) -> str:
    query = "&".join([f"run__id__exact={run_pk}", *(f"{k}={v}" for k, v in filters.items())])
    return reverse("admin:ingestion_terminationimportrow_changelist") + "?" + query


def termination_job_batch(*, job_id: int | None, run: TerminationImportRun, batch: list) -> None:
    """A batch is applied (committed): its rows are done, its invalid rows failed, each
    invalid row linking to its line of the report (the job keeps the first ones it can show)."""
    if job_id is None or not batch:
        return
    invalid = [row for row in batch if row.error]
    failures = [
        {"label": f"row {row.number}" + (f" ({row.serial or row.raw_serial})" if (row.serial or row.raw_serial) else ""),
         "url": _rows_url(run.pk, row_number=row.number), "message": row.error}
        for row in invalid
    ]
    job_advance(job_id=job_id, done=len(batch) - len(invalid), failed=len(invalid), failures=failures)


def termination_job_finish(*, job_id: int, run: TerminationImportRun) -> None:
    """Close the job from the finished run."""
    run.refresh_from_db()
    Status = TerminationImportRun.Status
    Outcome = TerminationImportRow.Outcome
    links = [{"label": f"Import run #{run.pk} ({run.get_status_display()})",
              "url": admin_url("ingestion.TerminationImportRun", run.pk)}]
    if run.total_rows:
        links.append({"label": "Download the per-row report (CSV)",
                      "url": reverse("admin:ingestion_terminationimportrun_report", args=[run.pk])})
    for count, outcome, label in ((run.invalid_count, Outcome.INVALID, "invalid rows"),
                                  (run.unknown_count, Outcome.UNKNOWN, "unknown serials (kept for matching)")):
        if count:
            links.append({"label": f"{count} {label}", "url": _rows_url(run.pk, outcome__exact=outcome.value)})
    if run.duplicate_of_id:
        links.append({"label": f"The earlier import #{run.duplicate_of_id} of this sheet",
                      "url": admin_url("ingestion.TerminationImportRun", run.duplicate_of_id)})
    result = {
        "run": run.pk, "run_status": run.get_status_display(), "dry_run": run.dry_run,
        "rows": run.total_rows, "applied": run.applied_count, "already_terminated": run.already_count,
        "unknown_serials": run.unknown_count, "duplicate_rows": run.duplicate_count, "invalid_rows": run.invalid_count,
        "links": links,
    }
    if run.error:
        result["message"] = run.error
    job_set_total(job_id=job_id, total=run.total_rows)
    job_finish(job_id=job_id, result=result,
               status="failed" if run.status == Status.FAILED else None)


def termination_import_as_job(*, job_id: int | None, source=None, upload_name: str | None = None,
                              filename: str | None = None, dry_run: bool = False, actor=None):
    """The body of the import tasks: import from ``source`` or from a stored upload, reporting
    to ``job_id``. Returns the run, or None when the job was finished already (redelivery)."""
    from ingestion.services.terminations import termination_sheet_import
    from portal.jobs import JobAlreadyFinished

    run = None
    try:
        with job_running(job_id):
            if upload_name is not None:
                with default_storage.open(upload_name, "rb") as handle:
                    run = termination_sheet_import(file=handle, filename=filename or Path(upload_name).name,
                                                   dry_run=dry_run, actor=actor, job_id=job_id)
            else:
                run = termination_sheet_import(source=source, dry_run=dry_run, actor=actor, job_id=job_id)
            if job_id is not None:
                termination_job_finish(job_id=job_id, run=run)
    except JobAlreadyFinished:
        pass
    finally:
        # Imported, or failed with the reason on the run and the job: the upload is not kept.
        # (A worker killed mid-import never gets here: the redelivered task finds the file.)
        if upload_name is not None:
            default_storage.delete(upload_name)
    return run
