"""The ingestion admin page and the replay action, with roles."""

import json

import pytest

from ingestion.models import DeviceRecord
from ingestion.services.records import records_intake

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


def test_replay_action_requires_billing_role(client, viewer, billing_user, rejected_records):
    ids = [str(pk) for pk in DeviceRecord.objects.values_list("pk", flat=True)]
    client.force_login(viewer)
    client.post("/admin/ingestion/devicerecord/", {"action": "replay", "_selected_action": ids})
    assert set(DeviceRecord.objects.values_list("status", flat=True)) == {"rejected"}
    client.force_login(billing_user)
    response = client.post("/admin/ingestion/devicerecord/", {"action": "replay", "_selected_action": ids}, follow=True)
    assert "3 records queued for DIG" in response.content.decode()
    assert set(DeviceRecord.objects.values_list("status", flat=True)) == {"queued"}
