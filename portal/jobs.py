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
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from portal.middleware import current_request_id
from portal.models import Job, JobFailure

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


def job_advance(*, job_id: int, done: int = 0, failed: int = 0, failure: dict | None = None) -> None:
    """Add to the counters atomically (safe from several workers at once). ``failure`` is
    {"label", "url", "message"} for one item that failed; it is recorded as its own row."""
    if done < 0 or failed < 0:
        raise ValueError("done and failed only grow")
    with transaction.atomic():
        if done or failed:
            Job.objects.filter(pk=job_id).update(
                done=F("done") + done, failed=F("failed") + failed, updated_at=timezone.now()
            )
        if failure:
            JobFailure.objects.create(
                job_id=job_id,
                label=str(failure.get("label", ""))[:200] or "item",
                url=str(failure.get("url", ""))[:500],
                message=str(failure.get("message", ""))[:500],
            )


def job_set_total(*, job_id: int, total: int) -> None:
    """For work whose size is known only once it started (a sheet being parsed)."""
    Job.objects.filter(pk=job_id).update(total=max(0, total), updated_at=timezone.now())


def job_finish(*, job_id: int, status: str | None = None, result: dict | None = None) -> Job:
    """Close the job. ``status=None`` picks succeeded, or partial when some items failed.
    Finishing twice (a redelivered task) keeps the first outcome."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.is_finished:
            return job
        if status is None:
            status = Job.Status.PARTIAL if job.failed else Job.Status.SUCCEEDED
        if status not in Job.Status.values:
            raise ValueError(f"unknown job status {status!r}")
        job.status = status
        job.result = {**(job.result or {}), **(result or {})}
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "result", "finished_at", "updated_at"])
    return job


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
