"""The outbox forwarder and the feedback poller against the simulator over real HTTP."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Device, DeviceEvent
from ingestion.models import DeviceFeed, DeviceRecord, ForwarderState
from ingestion.services.feedback import records_poll_invalid
from ingestion.services.outbox import records_forward
from ingestion.services.records import records_intake, records_prune, records_replay
from sandbox.dig.models import DigBatch, DigRecord
from sandbox.dig.services import stats
from sandbox.models import Fault

from .conftest import gps_series

pytestmark = pytest.mark.django_db(transaction=True)


def intake(records):
    return records_intake(body=json.dumps(records).encode())


def test_forward_sends_in_batches_marks_sent_and_starts_billing(make_client, make_device):
    device = make_device()
    intake(gps_series(device.serial, 12))
    summary = records_forward(client=make_client(), batch_size=5)
    assert (summary.sent, summary.batches, summary.vendor_calls) == (12, 3, 3)
    assert set(DeviceRecord.objects.values_list("status", flat=True)) == {"sent"}
    feed = DeviceFeed.objects.get(device=device)
    assert feed.records_sent == 12 and feed.first_sent_at and feed.last_record_at and feed.last_lag_ms is not None
    assert DeviceEvent.objects.filter(device=device, kind="first_data").count() == 1
    assert Device.objects.get(pk=device.pk).status == Device.Status.ACTIVE
    assert stats()["records_unique"] == 12
    # A second run has nothing to do and does not restart billing.
    assert records_forward(client=make_client()).sent == 0
    assert DeviceEvent.objects.filter(device=device, kind="first_data").count() == 1


def test_a_fleet_going_live_starts_billing_in_statements_independent_of_its_size(make_client, make_device):
    """Thousands of devices can send their first record in one batch: first data is settled in
    a fixed number of statements, with the same events as one device at a time."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from devices.services import devices_first_data

    def settle_queries(n):
        devices = [make_device(status=status) for status in
                   [Device.Status.SHIPPED, Device.Status.PROVISIONED, Device.Status.SUSPENDED, Device.Status.ACTIVE] * n]
        with CaptureQueriesContext(connection) as queries:
            activated = devices_first_data(device_ids=[d.pk for d in devices] + [10**12])  # one unknown id
        return devices, activated, len(queries)

    small, activated_small, queries_small = settle_queries(1)
    large, activated_large, queries_large = settle_queries(25)
    assert queries_small == queries_large
    assert (activated_small, activated_large) == (3, 75)  # an active device stays as it is
    for device in large:
        events = list(DeviceEvent.objects.filter(device=device).order_by("id").values_list(
            "kind", "from_status", "to_status"))
        if device.status == Device.Status.ACTIVE:
            assert events == [("first_data", "", "")]
        else:
            assert events == [("first_data", "", ""), ("status", device.status, "active")]
        assert Device.objects.get(pk=device.pk).status == Device.Status.ACTIVE


def test_fair_across_devices(make_client, make_device):
    flood, trickle = make_device(), make_device()
    intake(gps_series(flood.serial, 40))
    intake(gps_series(trickle.serial, 3))
    records_forward(client=make_client(), batch_size=10, max_batches=1)
    sent = set(DeviceRecord.objects.filter(status="sent").values_list("device_id", flat=True))
    assert trickle.pk in sent  # the late device did not wait behind the flood's 40 records


def test_400_splits_the_batch_to_isolate_the_bad_record(make_client, make_device, dig_config):
    device = make_device()
    intake(gps_series(device.serial, 8))
    # DIG's rules can be stricter than ours: make one stored record invalid for DIG.
    bad = DeviceRecord.objects.order_by("id")[5]
    payload = json.loads(bad.payload)
    payload["Latitude"] = 95.0
    DeviceRecord.objects.filter(pk=bad.pk).update(payload=json.dumps(payload))
    summary = records_forward(client=make_client())
    assert summary.sent == 7 and summary.rejected == 1
    bad.refresh_from_db()
    assert bad.status == "rejected" and "Latitude" in bad.cause
    assert DeviceFeed.objects.get(device=device).records_rejected == 1
    assert stats()["records_unique"] == 7


def test_413_splits_until_batches_fit(make_client, make_device, dig_config):
    dig_config(max_records_per_post=3)
    device = make_device()
    intake(gps_series(device.serial, 10))
    summary = records_forward(client=make_client())
    assert summary.sent == 10 and summary.rejected == 0
    assert DigBatch.objects.count() >= 4


@pytest.mark.parametrize("mode", ["outage", "rate_limit"])
def test_outage_or_429_keeps_the_batch_queued_and_pauses(make_client, make_device, mode):
    device = make_device()
    intake(gps_series(device.serial, 6))
    client = make_client()
    client.tokens()
    Fault.objects.create(system="dig", mode=mode, methods="records", remaining=1, retry_after_seconds=1)
    summary = records_forward(client=client)
    assert summary.sent == 0 and summary.deferred == 6 and summary.stopped
    assert set(DeviceRecord.objects.values_list("status", flat=True)) == {"queued"}
    state = ForwarderState.current()
    assert state.paused_until > timezone.now() and state.consecutive_failures == 1
    assert "paused" in records_forward(client=client).stopped  # every worker respects the pause
    ForwarderState.objects.update(paused_until=timezone.now() - timedelta(seconds=1))
    DeviceRecord.objects.update(available_at=timezone.now())
    assert records_forward(client=client).sent == 6
    assert ForwarderState.current().consecutive_failures == 0


def test_timeout_after_commit_resends_and_dig_dedups(make_client, make_device):
    device = make_device()
    intake(gps_series(device.serial, 4))
    client = make_client(read_timeout=1.0)
    client.tokens()
    Fault.objects.create(system="dig", mode="commit_then_drop", methods="records", remaining=1, delay_ms=3000)
    assert records_forward(client=client).sent == 0
    ForwarderState.objects.update(paused_until=None)
    DeviceRecord.objects.update(available_at=timezone.now())
    assert records_forward(client=client).sent == 4
    assert stats() == {"batches": 2, "records_received": 8, "records_unique": 4, "invalid_records": 0}


def test_worker_killed_after_dig_accepted_resends_after_the_lease(make_client, make_device, settings):
    device = make_device()
    intake(gps_series(device.serial, 5))

    def crash(ids):
        raise KeyboardInterrupt("worker killed")

    with pytest.raises(KeyboardInterrupt):
        records_forward(client=make_client(), after_accept=crash)
    assert set(DeviceRecord.objects.values_list("status", flat=True)) == {"queued"}
    assert records_forward(client=make_client()).sent == 0  # still leased to the dead worker
    DeviceRecord.objects.update(available_at=timezone.now())  # the lease lapses
    assert records_forward(client=make_client()).sent == 5
    assert stats()["records_unique"] == 5 and stats()["records_received"] == 10


def test_invalid_records_feedback_marks_rejected_and_replay_resends(make_client, make_device, dig_config):
    good, unassigned = make_device(), make_device()
    dig_config(unassigned_serials=unassigned.serial)
    intake(gps_series(good.serial, 3) + gps_series(unassigned.serial, 4))
    client = make_client()
    assert records_forward(client=client).sent == 7
    summary = records_poll_invalid(client=client, page_size=3)
    assert summary.matched == 4 and summary.pages == 2
    rejected = DeviceRecord.objects.filter(status="rejected")
    assert set(rejected.values_list("device_id", flat=True)) == {unassigned.pk}
    assert "not assigned" in rejected.first().cause
    assert DeviceFeed.objects.get(device=unassigned).records_rejected == 4
    # Polling again reads nothing new and changes nothing.
    assert records_poll_invalid(client=client).matched == 0
    # Staff fix the cause at DIG, then replay.
    dig_config(unassigned_serials="")
    result = records_replay(record_ids=list(rejected.values_list("pk", flat=True)))
    assert result.queued == 4
    assert records_forward(client=client).sent == 4
    stats()  # DIG processes what it accepted
    assert DigRecord.objects.filter(serial=unassigned.serial).count() == 4


def test_prune_deletes_only_old_forwarded_records(make_client, make_device):
    device = make_device()
    intake(gps_series(device.serial, 6))
    records_forward(client=make_client())
    old = list(DeviceRecord.objects.order_by("id").values_list("pk", flat=True)[:4])
    DeviceRecord.objects.filter(pk__in=old).update(sent_at=timezone.now() - timedelta(days=40))
    intake(gps_series(device.serial, 2, start=timezone.now() - timedelta(minutes=30)))
    assert records_prune(older_than_days=30, batch_size=3) == 4
    assert DeviceRecord.objects.count() == 4


def test_forwarder_with_the_portal_factory_shares_its_token_in_the_database(dig_url, make_device):
    from portal.models import VendorToken

    device = make_device()
    intake(gps_series(device.serial, 3))
    assert records_forward().sent == 3  # dig_client(): DatabaseTokenStore + cache rate limiter
    intake(gps_series(device.serial, 2, start=timezone.now() - timedelta(minutes=20)))
    assert records_forward().sent == 2
    assert VendorToken.objects.get(key="dig:tokens").value["bearer"]
    from sandbox.dig.models import DigToken

    assert DigToken.objects.count() == 1  # the second run reused the stored pair
