"""The Celery wrappers: thin, idempotent, retry only what is safe, and the beat entry exists."""

import pytest
from celery.exceptions import Retry

from devices.tasks.databases import (
    device_add_to_database_task,
    devices_refresh_readiness_task,
)
from sandbox.mygeotab.models import SandboxAsset

pytestmark = pytest.mark.django_db(transaction=True)


def test_add_task_retries_an_outage_then_adds(customer_db, make_device, fault, readiness_enqueued, monkeypatch):
    device = make_device()
    fault("outage", methods="Add", remaining=1)
    retries = []

    def fake_retry(*args, **kwargs):
        retries.append(kwargs.get("countdown"))
        return Retry()

    monkeypatch.setattr(device_add_to_database_task, "retry", fake_retry)
    with pytest.raises(Retry):
        device_add_to_database_task.run(device.pk, customer_db.pk)
    assert not SandboxAsset.objects.exists() and len(retries) == 1 and retries[0] <= 130
    assert device_add_to_database_task.run(device.pk, customer_db.pk) == "added"
    assert device_add_to_database_task.run(device.pk, customer_db.pk) == "attached"  # a redelivery is harmless
    assert device_add_to_database_task.run(999999, customer_db.pk) == "gone"


def test_readiness_task_uses_the_service(customer_db, make_device, myadmin, readiness_enqueued, monkeypatch):
    import portal.clients

    monkeypatch.setattr(portal.clients, "myadmin_client", lambda: myadmin)
    device = make_device(myadmin.provision_device_to_account(10032, "ACME01").serial_no)
    device_add_to_database_task.run(device.pk, customer_db.pk)
    assert devices_refresh_readiness_task.run(device_ids=[device.pk]) == {
        "checked": 1, "became_ready": 1, "released_records": 0}
    assert devices_refresh_readiness_task.run() == {"checked": 0, "became_ready": 0, "released_records": 0}


def test_beat_entry_declared():
    from ingestion.schedule import PERIODIC_TASKS

    assert any(e["task"] == "devices.devices_refresh_readiness" for e in PERIODIC_TASKS)
    assert devices_refresh_readiness_task.name == "devices.devices_refresh_readiness"
