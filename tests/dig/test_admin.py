"""The ingestion admin page and the replay action, with roles."""

import json

import pytest
from django.urls import reverse

from ingestion.models import DeviceRecord
from ingestion.services.records import records_intake
from portal.models import AuditEntry, Job

from .conftest import gps_series

pytestmark = pytest.mark.django_db


@pytest.fixture
def rejected_records(make_device):
    device = make_device()
    records_intake(body=json.dumps(gps_series(device.serial, 3)).encode())
    DeviceRecord.objects.update(status="rejected", cause="Device is not assigned to a database.")
    return device


def test_ingestion_page_shows_backlog_causes_and_devices(client, viewer, rejected_records):
    client.force_login(viewer)
    response = client.get("/admin/ingestion/devicefeed/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Reject causes" in body and "Device is not assigned to a database." in body
    assert rejected_records.serial in body
    assert client.get("/admin/ingestion/devicerecord/?status__exact=rejected").status_code == 200


def test_replay_action_requires_billing_role(client, viewer, billing_user, rejected_records, eager_tasks,
                                            django_capture_on_commit_callbacks):
    ids = [str(pk) for pk in DeviceRecord.objects.values_list("pk", flat=True)]
    client.force_login(viewer)
    client.post("/admin/ingestion/devicerecord/", {"action": "replay", "_selected_action": ids})
    assert set(DeviceRecord.objects.values_list("status", flat=True)) == {"rejected"}
    client.force_login(billing_user)
    # Replayed data is billed: the page asks first, with the number of records.
    page = client.post("/admin/ingestion/devicerecord/", {"action": "replay", "_selected_action": ids})
    assert page.status_code == 200 and not Job.objects.exists()
    assert "send 3 rejected or held device records to Geotab&#x27;s Data Intake Gateway again" in page.content.decode()
    assert set(DeviceRecord.objects.values_list("status", flat=True)) == {"rejected"}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/ingestion/devicerecord/",
                               {"action": "replay", "_selected_action": ids, "portal_confirm": "yes"})
    job = Job.objects.get()
    assert response["Location"] == reverse("admin:portal_job_change", args=[job.pk])
    assert (job.kind, job.status, job.total, job.done, job.failed) == ("replay", "succeeded", 3, 3, 0)
    assert job.result["queued"] == 3 and set(DeviceRecord.objects.values_list("status", flat=True)) == {"queued"}
    [entry] = AuditEntry.objects.filter(action="bulk_update", object_count=3)
    assert entry.actor == billing_user and entry.message.startswith("replayed: 3 queued for DIG")


def test_replay_job_counts_held_records_as_failures(client, billing_user, make_device, eager_tasks,
                                                    django_capture_on_commit_callbacks, monkeypatch):
    """Records of a device that cannot take data stay held: failures per device, linking to them."""
    monkeypatch.setattr("ingestion.services.replay_jobs.REPLAY_BATCH", 2)
    ready, waiting = make_device(), make_device(ready=False)
    for device in (ready, waiting):
        records_intake(body=json.dumps(gps_series(device.serial, 2)).encode())
    DeviceRecord.objects.update(status="rejected", cause="bad")
    client.force_login(billing_user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/admin/ingestion/devicefeed/", {"action": "replay_records", "portal_confirm": "yes",
                                                     "_selected_action": [ready.pk, waiting.pk]})
    job = Job.objects.get()
    assert (job.total, job.done, job.failed, job.status) == (4, 2, 2, "partial")
    failure = job.failures.get()
    assert failure.label == waiting.serial and "2 record(s) stay held" in failure.message
    assert client.get(failure.url).status_code == 200 and waiting.serial in client.get(failure.url).content.decode()
    # Two batches of two: two audit entries, each with its ids.
    assert sorted(e.object_count for e in AuditEntry.objects.filter(message__startswith="replayed")) == [2, 2]


def test_staff_hold_and_release_are_audited(client, fulfilment_user, make_device):
    from devices.models import Device

    waiting, live = make_device(ready=False), make_device()
    for device in (waiting, live):
        records_intake(body=json.dumps(gps_series(device.serial, 2)).encode())
    assert set(DeviceRecord.objects.filter(device=waiting).values_list("hold_reason", flat=True)) == {"not_ready"}
    client.force_login(fulfilment_user)
    ids = list(DeviceRecord.objects.filter(device=live).values_list("pk", flat=True))
    client.post("/admin/ingestion/devicerecord/", {"action": "hold", "_selected_action": ids})
    held, = AuditEntry.objects.filter(message="2 queued device records held by staff")
    assert held.object_ids == [live.pk] and held.actor == fulfilment_user
    assert held.changes == {"queued_records": "held", "hold_reason": "staff"}

    Device.objects.filter(pk=waiting.pk).update(database_name="demo_db")  # the device became ready
    client.post("/admin/ingestion/devicefeed/", {"action": "release_held", "_selected_action": [waiting.pk, live.pk]})
    released, = AuditEntry.objects.filter(message="2 held device records released to the queue")
    assert released.actor == fulfilment_user and sorted(released.object_ids) == sorted([waiting.pk, live.pk])
    assert set(DeviceRecord.objects.filter(device=waiting).values_list("status", flat=True)) == {"queued"}
