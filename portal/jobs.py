"""Recorded long work with progress staff can watch.

A service that does N things starts a Job, advances it as items finish (from one worker or
many: the counters are F() updates, never read-modify-write) and finishes it with a result.
The admin job page shows a progress bar polling ``job_progress`` without reloading.

    job = job_start(kind="provisioning", total=len(ids), actor=request.user,
                    target=f"orders.Order:{order.pk}")
    provision_many.delay_on_commit(job_id=job.pk, ids=ids)
    return redirect_to_job(job)          # in an admin action

    # in the task / service, per item:
    job_advance(job_id=job_id, done=1)
    job_advance(job_id=job_id, failed=1, failure={"label": serial, "url": url, "message": msg})
    # at the end:
    job_finish(job_id=job_id, status=None)   # None: succeeded, or partial when some failed

Two shapes of work use it:

- **one task owns the job** (a sheet import, an order sync, a replay): the task runs inside
  ``with job_running(job_id) as job:`` — a redelivered message for a finished job does nothing,
  a redelivered one for an unfinished job starts the counters again (the work itself is
  idempotent), and an exception finishes the job as failed with the error before it propagates;
- **many tasks share the job** (one Navixy registration per tracker): each item advances it
  once with ``job_advance(..., complete=True)``, and the advance that reaches the total
  finishes the job.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from portal.middleware import current_request_id
from portal.models import Job, JobFailure

logger = logging.getLogger(__name__)

# A job page lists at most this many failures; the count is always exact.
MAX_FAILURES_SHOWN = 200


def job_start(*, kind: str, total: int, actor=None, target: str = "") -> Job:
    if total < 0:
        raise ValueError("total must be >= 0")
    rid = current_request_id()
    return Job.objects.create(
        kind=kind[:64],
        total=total,
        actor=actor if getattr(actor, "pk", None) else None,
        target=target[:120],
        status=Job.Status.RUNNING,
        request_id="" if rid == "-" else rid[:64],
    )


def job_advance(
    *, job_id: int, done: int = 0, failed: int = 0, failure: dict | None = None,
    failures: list[dict] | None = None, complete: bool = False,
) -> None:
    """Add to the counters atomically (safe from several workers at once). ``failure`` is
    {"label", "url", "message"} for one item that failed, ``failures`` a list of them (one
    INSERT for the list); each is recorded as its own row, up to MAX_FAILURES_SHOWN per job. With ``complete=True`` the job is
    finished once done + failed reach its total (for jobs shared by many tasks)."""
    if done < 0 or failed < 0:
        raise ValueError("done and failed only grow")
    rows = [f for f in ([failure] if failure else []) + list(failures or []) if f]
    with transaction.atomic():
        if rows:
            # The page lists the first MAX_FAILURES_SHOWN; the counters stay exact beyond them.
            rows = rows[:max(0, MAX_FAILURES_SHOWN - JobFailure.objects.filter(job_id=job_id).count())]
        if done or failed:
            Job.objects.filter(pk=job_id).update(
                done=F("done") + done, failed=F("failed") + failed, updated_at=timezone.now()
            )
        if rows:
            JobFailure.objects.bulk_create([
                JobFailure(
                    job_id=job_id,
                    label=str(f.get("label", ""))[:200] or "item",
                    url=str(f.get("url", ""))[:500],
                    message=str(f.get("message", ""))[:500],
                )
                for f in rows
            ])
        if complete and (done or failed):
            # Only the advance that reaches the total closes the job; job_finish is idempotent
            # anyway, so two workers reaching it together finish it once.
            reached = Job.objects.filter(pk=job_id, total__gt=0, total__lte=F("done") + F("failed")).filter(
                status__in=[Job.Status.PENDING, Job.Status.RUNNING]).exists()
            if reached:
                job_finish(job_id=job_id)


def job_set_total(*, job_id: int, total: int) -> None:
    """For work whose size is known only once it started (a sheet being parsed)."""
    Job.objects.filter(pk=job_id).update(total=max(0, total), updated_at=timezone.now())


def job_finish(*, job_id: int, status: str | None = None, result: dict | None = None) -> Job:
    """Close the job. ``status=None`` picks succeeded, partial when some items failed, or
    failed when every item failed. Finishing twice (a redelivered task) keeps the first outcome."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.is_finished:
            return job
        if status is None:
            if not job.failed:
                status = Job.Status.SUCCEEDED
            else:
                status = Job.Status.PARTIAL if job.done else Job.Status.FAILED
        if status not in Job.Status.values:
            raise ValueError(f"unknown job status {status!r}")
        job.status = status
        job.result = {**(job.result or {}), **(result or {})}
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "result", "finished_at", "updated_at"])
    return job


def job_restart(*, job_id: int) -> Job | None:
    """For a job one task owns: None when the job is finished already (a redelivered message
    must not run the work again); otherwise the job with its counters and failures cleared, so
    a redelivered run that starts the work over counts it once."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.is_finished:
            return None
        if job.done or job.failed or job.status != Job.Status.RUNNING:
            job.done = job.failed = 0
            job.status = Job.Status.RUNNING
            job.save(update_fields=["done", "failed", "status", "updated_at"])
            job.failures.all().delete()
    return job


class JobAlreadyFinished(Exception):
    """Raised inside ``job_running`` when the job finished before this run started."""


@contextmanager
def job_running(job_id: int | None):
    """Run the body of a task that owns ``job_id`` (None: no job, the body just runs).

        with job_running(job_id):
            ...work, job_advance(...)...
            job_finish(job_id=job_id, result=...)

    Yields the job (or None). A job finished already raises JobAlreadyFinished before the body
    runs (callers catch it and return); an exception in the body finishes the job as failed
    with the error, then propagates."""
    if job_id is None:
        yield None
        return
    job = job_restart(job_id=job_id)
    if job is None:
        raise JobAlreadyFinished(job_id)
    try:
        yield job
    except BaseException as exc:
        message = str(exc) or type(exc).__name__
        try:
            job_finish(job_id=job_id, status=Job.Status.FAILED,
                       result={"error": f"{type(exc).__name__}: {message}"[:500]})
        except Exception:  # the database may be what failed: the task's own error matters more
            logger.exception("could not record the failure of job %s", job_id)
        raise


def jobs_fail_stale(*, older_than_seconds: int | None = None) -> int:
    """Jobs with no progress for JOB_STALE_SECONDS (their task was lost with the broker, or its
    worker was killed for good) are finished as failed, so no page polls forever."""
    seconds = older_than_seconds if older_than_seconds is not None else int(getattr(settings, "JOB_STALE_SECONDS", 3600))
    cutoff = timezone.now() - timezone.timedelta(seconds=seconds)
    stale = list(
        Job.objects.filter(Q(status=Job.Status.RUNNING) | Q(status=Job.Status.PENDING), updated_at__lt=cutoff)
        .values_list("pk", flat=True)[:500]
    )
    for pk in stale:
        job_finish(job_id=pk, status=Job.Status.FAILED,
                   result={"error": f"No progress for {seconds // 60} minutes: the work was lost "
                                    "(worker stopped or task not delivered). Start it again."})
    return len(stale)


def job_progress(*, job: Job) -> dict:
    """What the progress endpoint returns (and the page renders first, without waiting)."""
    failures = [
        {"label": f.label, "url": f.url, "message": f.message}
        for f in job.failures.all()[:MAX_FAILURES_SHOWN]
    ]
    return {
        "id": job.pk,
        "kind": job.kind,
        "status": job.status,
        "status_label": job.get_status_display(),
        "finished": job.is_finished,
        "total": job.total,
        "done": job.done,
        "failed": job.failed,
        "percent": job.percent,
        "result": job.result,
        "failures": failures,
        "links": job.result_links,
        "target": job.target,
        "request_id": job.request_id,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def job_url(job: Job) -> str:
    return reverse("admin:portal_job_change", args=[job.pk])


def redirect_to_job(job: Job) -> HttpResponseRedirect:
    """What an admin action returns after starting a job: the page with its progress bar."""
    return HttpResponseRedirect(job_url(job))


def redirect_to_jobs(jobs: list[Job]) -> HttpResponseRedirect:
    """One job: its page. Several (one per selected source, say): the job list showing them."""
    if len(jobs) == 1:
        return redirect_to_job(jobs[0])
    ids = ",".join(str(job.pk) for job in jobs)
    return HttpResponseRedirect(reverse("admin:portal_job_changelist") + f"?id__in={ids}")


def admin_url(model_label: str, pk) -> str:
    """The admin change page of ``"app_label.Model"`` #pk, for failure links ("" without one)."""
    from django.urls import NoReverseMatch

    app_label, _, model = model_label.partition(".")
    try:
        return reverse(f"admin:{app_label}_{model.lower()}_change", args=[pk])
    except NoReverseMatch:
        return ""
