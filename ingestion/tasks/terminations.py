"""Celery tasks for terminations: thin wrappers over the services (ids in, idempotent)."""

from celery import shared_task

# Time limits well under the broker's visibility timeout (DESIGN §3): a 1,000,000-row sheet
# imports in minutes; an interrupted run releases its claim and the next run re-applies.
IMPORT_SOFT_LIMIT = 1500
IMPORT_HARD_LIMIT = 1800


@shared_task(name="ingestion.termination_sheet_import_scheduled", ignore_result=True,
             soft_time_limit=IMPORT_SOFT_LIMIT, time_limit=IMPORT_HARD_LIMIT)
def termination_sheet_import_scheduled(*, source_id: int | None = None) -> list[int]:
    """The daily job: fetch and import the sheet from every enabled source (or one source)."""
    from ingestion.services.terminations import termination_import_scheduled

    return [run.pk for run in termination_import_scheduled(source_id=source_id)]


def _actor(actor_id):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(pk=actor_id).first() if actor_id else None


@shared_task(name="ingestion.termination_sheet_import_file", ignore_result=True,
             soft_time_limit=IMPORT_SOFT_LIMIT, time_limit=IMPORT_HARD_LIMIT)
def termination_sheet_import_now(*, source_id: int, actor_id: int | None = None, dry_run: bool = False,
                                 job_id: int | None = None) -> int | None:
    """"Import now" from the admin/API for one URL or folder source, run by a worker; with
    ``job_id`` staff watch it on the job's page."""
    from ingestion.models import TerminationSource
    from ingestion.services.termination_jobs import termination_import_as_job

    source = TerminationSource.objects.get(pk=source_id)
    run = termination_import_as_job(job_id=job_id, source=source, dry_run=dry_run, actor=_actor(actor_id))
    return run.pk if run is not None else None


@shared_task(name="ingestion.termination_sheet_import_upload", ignore_result=True,
             soft_time_limit=IMPORT_SOFT_LIMIT, time_limit=IMPORT_HARD_LIMIT)
def termination_sheet_import_upload(*, upload_name: str, filename: str, job_id: int | None = None,
                                    actor_id: int | None = None, dry_run: bool = False) -> int | None:
    """"Import a file": the sheet staff uploaded (kept in storage until now), run by a worker."""
    from ingestion.services.termination_jobs import termination_import_as_job

    run = termination_import_as_job(job_id=job_id, upload_name=upload_name, filename=filename, dry_run=dry_run,
                                    actor=_actor(actor_id))
    return run.pk if run is not None else None


@shared_task(name="devices.termination_reconcile_pending", ignore_result=True, soft_time_limit=240, time_limit=300)
def termination_reconcile_pending() -> int:
    """Decide manual terminations whose MyAdmin outcome is unknown (read-only MyAdmin calls)."""
    from devices.services.terminations import termination_reconcile_pending as reconcile

    return reconcile()


@shared_task(name="devices.terminations_reconcile_from_myadmin", ignore_result=True, soft_time_limit=1500,
             time_limit=1800)
def terminations_reconcile_from_myadmin() -> int:
    """Daily: apply terminations MyAdmin reports that the portal has not seen (read-only calls)."""
    from devices.services.terminations import terminations_reconcile_from_myadmin as reconcile

    return reconcile()
