"""Tasks enqueued on commit run on a real Celery worker over the configured broker (Redis in
CI, the embedded filesystem broker otherwise); a rolled-back transaction enqueues nothing."""

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import transaction

from portal.celery import app as celery_app
from portal.models import Heartbeat
from portal.tasks import heartbeat

pytestmark = pytest.mark.django_db(transaction=True)


def _wait_for(predicate, *, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def live_worker():
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge("celery")
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        yield


def test_broker_is_the_configured_one(settings):
    transport = celery_app.connection_for_write().transport_cls
    expected = settings.CELERY_BROKER_URL.split("://", 1)[0]
    assert transport == expected


def test_task_enqueued_on_commit_runs_on_a_real_worker(live_worker):
    with transaction.atomic():
        heartbeat.delay_on_commit(name="committed")
        # Not yet sent: the worker cannot see rows the transaction has not committed.
        assert not Heartbeat.objects.filter(name="committed").exists()
    assert _wait_for(lambda: Heartbeat.objects.filter(name="committed").exists())


def test_rolled_back_transaction_enqueues_nothing(live_worker):
    with pytest.raises(RuntimeError), transaction.atomic():
        heartbeat.delay_on_commit(name="rolled-back")
        raise RuntimeError("abort")
    # A task sent after the rollback is processed; the rolled-back one never was sent.
    heartbeat.delay(name="after")
    assert _wait_for(lambda: Heartbeat.objects.filter(name="after").exists())
    time.sleep(0.5)
    assert not Heartbeat.objects.filter(name="rolled-back").exists()
