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
