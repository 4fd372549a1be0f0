import threading

import pytest
from django.db import connection
from django.urls import reverse

from portal.jobs import job_advance, job_finish, job_progress, job_start, job_url
from portal.models import Job


@pytest.mark.django_db
def test_job_counts_failures_and_finishes_once(fulfilment_user):
    job = job_start(kind="provisioning", total=3, actor=fulfilment_user, target="orders.Order:1")
    job_advance(job_id=job.pk, done=1)
    job_advance(job_id=job.pk, failed=1, failure={"label": "CX123", "url": "/admin/x/", "message": "MyAdmin refused"})
    job_advance(job_id=job.pk, done=1)
    job.refresh_from_db()
    assert (job.done, job.failed, job.percent, job.status) == (2, 1, 100, Job.Status.RUNNING)

    finished = job_finish(job_id=job.pk, result={"serials": 2})
    assert finished.status == Job.Status.PARTIAL
    assert finished.finished_at is not None
    # A redelivered task finishing again keeps the first outcome.
    again = job_finish(job_id=job.pk, status=Job.Status.SUCCEEDED)
    assert again.status == Job.Status.PARTIAL

    data = job_progress(job=finished)
    assert data["finished"] is True
    assert data["failures"] == [{"label": "CX123", "url": "/admin/x/", "message": "MyAdmin refused"}]
    assert data["result"] == {"serials": 2}


@pytest.mark.django_db
def test_job_rejects_bad_input():
    with pytest.raises(ValueError):
        job_start(kind="x", total=-1)
    job = job_start(kind="x", total=1)
    with pytest.raises(ValueError):
        job_advance(job_id=job.pk, done=-1)
    with pytest.raises(ValueError):
        job_finish(job_id=job.pk, status="exploded")
    assert job_finish(job_id=job.pk).status == Job.Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_concurrent_advances_are_not_lost():
    if connection.vendor == "sqlite":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    job = job_start(kind="replay", total=200)

    def worker():
        try:
            for _ in range(50):
                job_advance(job_id=job.pk, done=1)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    job.refresh_from_db()
    assert job.done == 200


@pytest.mark.django_db
def test_progress_endpoint_and_page(client_for, viewer):
    job = job_start(kind="termination_import", total=10)
    job_advance(job_id=job.pk, done=4)
    client = client_for(viewer)
    data = client.get(reverse("admin:portal_job_progress", args=[job.pk])).json()
    assert (data["done"], data["total"], data["percent"], data["finished"]) == (4, 10, 40, False)

    page = client.get(job_url(job))
    assert page.status_code == 200
    html = page.content.decode()
    assert f'data-job-progress-url="{reverse("admin:portal_job_progress", args=[job.pk])}"' in html
    assert "portal/jobs.js" in html and "width: 40%" in html

    api = client.get(f"/api/v1/jobs/{job.pk}/")
    assert api.status_code == 200 and api.json()["done"] == 4
    assert client.get(reverse("admin:portal_job_progress", args=[999999])).status_code == 404


@pytest.mark.django_db
def test_progress_needs_login(client):
    job = job_start(kind="x", total=1)
    response = client.get(reverse("admin:portal_job_progress", args=[job.pk]))
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.django_db
def test_shared_job_finishes_when_the_last_item_reports():
    job = job_start(kind="tracker_registration", total=3)
    job_advance(job_id=job.pk, done=1, complete=True)
    job_advance(job_id=job.pk, failed=1, complete=True,
                failures=[{"label": "Van 2", "url": "/admin/devices/tracker/2/change/", "message": "refused"}])
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING and job.failures.count() == 1
    job_advance(job_id=job.pk, done=1, complete=True)
    job.refresh_from_db()
    assert (job.status, job.done, job.failed, job.percent) == (Job.Status.PARTIAL, 2, 1, 100)
    # Every item failed: the job failed.
    lost = job_start(kind="tracker_registration", total=1)
    job_advance(job_id=lost.pk, failed=1, complete=True)
    lost.refresh_from_db()
    assert lost.status == Job.Status.FAILED


@pytest.mark.django_db
def test_job_running_guards_redelivery_and_records_errors():
    from portal.jobs import JobAlreadyFinished, job_running

    job = job_start(kind="replay", total=10)
    with job_running(job.pk):
        job_advance(job_id=job.pk, done=4, failure={"label": "x", "message": "held"}, failed=1)
    # The worker died here; the redelivered message starts the counters again.
    with job_running(job.pk) as again:
        assert (again.done, again.failed, again.failures.count()) == (0, 0, 0)
        job_advance(job_id=job.pk, done=10)
        job_finish(job_id=job.pk)
    # Redelivered once more after it finished: nothing runs.
    with pytest.raises(JobAlreadyFinished):
        with job_running(job.pk):
            raise AssertionError("must not run")
    job.refresh_from_db()
    assert (job.status, job.done) == (Job.Status.SUCCEEDED, 10)

    broken = job_start(kind="termination_import", total=0)
    with pytest.raises(ZeroDivisionError):
        with job_running(broken.pk):
            1 / 0  # noqa: B018
    broken.refresh_from_db()
    assert broken.status == Job.Status.FAILED and broken.result["error"] == "ZeroDivisionError: division by zero"
    with job_running(None) as nothing:  # no job: the body just runs
        assert nothing is None


@pytest.mark.django_db
def test_stale_jobs_are_failed(settings):
    from django.utils import timezone

    from portal.jobs import jobs_fail_stale

    stale, fresh, done = (job_start(kind="order_sync", total=1) for _ in range(3))
    job_finish(job_id=done.pk)
    Job.objects.filter(pk__in=[stale.pk, done.pk]).update(updated_at=timezone.now() - timezone.timedelta(hours=2))
    assert jobs_fail_stale() == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == Job.Status.FAILED and "No progress for 60 minutes" in stale.result["error"]
    assert fresh.status == Job.Status.RUNNING


@pytest.mark.django_db
def test_job_page_links_result_and_target(client_for, viewer):
    from portal.jobs import redirect_to_jobs

    job = job_start(kind="order_sync", total=1, target=f"auth.User:{viewer.pk}")
    job_finish(job_id=job.pk, result={"created": 1, "links": [{"label": "Order sync run #7", "url": "/admin/x/7/"}]})
    client = client_for(viewer)
    html = client.get(job_url(job)).content.decode()
    assert '<a href="/admin/x/7/">Order sync run #7</a>' in html
    assert f'href="{reverse("admin:auth_user_change", args=[viewer.pk])}"' in html
    data = client.get(reverse("admin:portal_job_progress", args=[job.pk])).json()
    assert data["links"] == [{"label": "Order sync run #7", "url": "/admin/x/7/"}]
    other = job_start(kind="order_sync", total=1)
    assert redirect_to_jobs([job])["Location"] == job_url(job)
    many = redirect_to_jobs([job, other])["Location"]
    assert many == reverse("admin:portal_job_changelist") + f"?id__in={job.pk},{other.pk}"
    listing = client.get(many)
    assert listing.status_code == 200 and listing.content.decode().count('class="field-kind"') == 2
