"""A provisioning request enqueued on commit is worked by a real Celery worker (the configured
broker: the embedded filesystem broker here, Redis in CI)."""

import time

import pytest
from celery.contrib.testing.worker import start_worker

from devices.models import ProvisioningRequest
from devices.services import provisioning_request_create
from portal.celery import app as celery_app
from sandbox.myadmin.models import SandboxDevice

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_worker]


def test_request_is_minted_by_a_real_worker(portal_myadmin, billing_user):
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge("celery")
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        req = provisioning_request_create(product_id=10032, erp_no="INTEG01", quantity=3, use_bulk=True,
                                          requested_by=billing_user)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            req.refresh_from_db()
            if req.status not in ProvisioningRequest.OPEN_STATUSES:
                break
            time.sleep(0.2)
    assert req.status == ProvisioningRequest.Status.SUCCEEDED, (req.status, req.last_error)
    assert sorted(req.devices.values_list("serial", flat=True)) == sorted(
        SandboxDevice.objects.values_list("serial", flat=True))
    assert req.devices.count() == 3
