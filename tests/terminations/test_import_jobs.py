"""Sheet imports as jobs: the total is known once the sheet is read, the job advances once per
batch (never per row), invalid rows are failures linking to their report line, and a failed,
duplicate or redelivered import finishes the job as it should."""

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse

from ingestion.models import TerminationImportRun, TerminationSource
from ingestion.services import termination_jobs
from ingestion.services.termination_jobs import termination_import_as_job
from portal.jobs import job_start
from portal.models import Job
from tests.terminations.conftest import csv_bytes, serial_for, sheet_rows, xlsx_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    return tmp_path


def _store(data: bytes, name="sheet.csv") -> str:
    return default_storage.save(f"termination-uploads/{name}", ContentFile(data))


def test_progress_per_batch_with_the_total_known_early(make_devices, media, monkeypatch, billing_user):
    make_devices(7)
    monkeypatch.setattr("ingestion.services.terminations.BATCH_SIZE", 3)
    seen = []
    real_advance = termination_jobs.job_advance

    def spy(**kwargs):
        job = Job.objects.get(pk=kwargs["job_id"])
        seen.append((job.total, kwargs["done"], kwargs["failed"]))
        return real_advance(**kwargs)

    monkeypatch.setattr(termination_jobs, "job_advance", spy)
    serials = [serial_for(n) for n in range(1, 8)] + ["??", serial_for(99)]
    job = job_start(kind="termination_import", total=0, actor=billing_user)
    name = _store(csv_bytes(sheet_rows(serials)))
    run = termination_import_as_job(job_id=job.pk, upload_name=name, filename="sheet.csv", actor=billing_user)

    # 9 rows in batches of 3: three advances, the total (from the file) known from the first.
    assert seen == [(9, 3, 0), (9, 3, 0), (9, 2, 1)]
    job.refresh_from_db()
    assert (job.status, job.total, job.done, job.failed) == (Job.Status.PARTIAL, 9, 8, 1)
    assert run.applied_count == 7 and run.unknown_count == 1 and run.invalid_count == 1
    failure = job.failures.get()
    assert failure.label == "row 9 (??)" and failure.url.endswith(f"run__id__exact={run.pk}&row_number=9")
    labels = [link["label"] for link in job.result_links]
    assert labels[0].startswith(f"Import run #{run.pk}") and "1 invalid rows" in labels
    assert "1 unknown serials (kept for matching)" in labels
    assert job.result["applied"] == 7 and job.result["rows"] == 9
    assert not default_storage.exists(name)


def test_xlsx_total_comes_from_the_sheet_dimension(make_devices, media):
    make_devices(4)
    job = job_start(kind="termination_import", total=0)
    name = _store(xlsx_bytes(sheet_rows([serial_for(n) for n in range(1, 5)])), "s.xlsx")
    termination_import_as_job(job_id=job.pk, upload_name=name, filename="s.xlsx")
    job.refresh_from_db()
    assert (job.status, job.total, job.done) == (Job.Status.SUCCEEDED, 4, 4)


def test_bad_file_and_duplicate_sheet(make_devices, media):
    make_devices(2)
    bad = job_start(kind="termination_import", total=0)
    termination_import_as_job(job_id=bad.pk, upload_name=_store(b"%PDF-1.4 nope", "x.pdf"), filename="x.pdf")
    bad.refresh_from_db()
    assert bad.status == Job.Status.FAILED and "not a CSV or XLSX" in bad.result["message"]

    data = csv_bytes(sheet_rows([serial_for(1), serial_for(2)]))
    first = job_start(kind="termination_import", total=0)
    run = termination_import_as_job(job_id=first.pk, upload_name=_store(data), filename="a.csv")
    again = job_start(kind="termination_import", total=0)
    termination_import_as_job(job_id=again.pk, upload_name=_store(data), filename="a.csv")
    again.refresh_from_db()
    assert again.status == Job.Status.SUCCEEDED and again.total == 0
    assert {"label": f"The earlier import #{run.pk} of this sheet",
            "url": reverse("admin:ingestion_terminationimportrun_change", args=[run.pk])} in again.result_links


def test_internal_error_fails_the_job_and_redelivery_does_nothing(make_devices, media, monkeypatch):
    make_devices(2)
    job = job_start(kind="termination_import", total=0)
    name = _store(csv_bytes(sheet_rows([serial_for(1)])))

    def boom(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("ingestion.services.terminations.termination_apply_bulk", boom)
    with pytest.raises(RuntimeError):
        termination_import_as_job(job_id=job.pk, upload_name=name, filename="sheet.csv")
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.result["error"] == "RuntimeError: database went away"
    assert TerminationImportRun.objects.get().status == "failed"
    # The same message delivered again: the job is finished, nothing is imported twice.
    monkeypatch.undo()
    assert termination_import_as_job(job_id=job.pk, upload_name=_store(b"x"), filename="x.csv") is None
    assert TerminationImportRun.objects.count() == 1


def test_import_now_task_for_a_folder_source(make_devices, tmp_path, billing_user):
    from ingestion.tasks.terminations import termination_sheet_import_now

    make_devices(1)
    (tmp_path / "drop").mkdir()
    (tmp_path / "drop" / "today.csv").write_bytes(csv_bytes(sheet_rows([serial_for(1)])))
    source = TerminationSource.objects.create(name="Drop", kind="folder", folder_path=str(tmp_path / "drop"))
    job = job_start(kind="termination_import", total=0, actor=billing_user)
    run_pk = termination_sheet_import_now(source_id=source.pk, actor_id=billing_user.pk, job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.done, job.total) == (Job.Status.SUCCEEDED, 1, 1)
    assert job.result["run"] == run_pk and TerminationImportRun.objects.get(pk=run_pk).actor == billing_user
