"""Fault campaign: records pushed steadily through the API while DIG goes through outages,
429 bursts, token expiry and lost replies, and a worker dies between DIG's 202 and marking
the batch sent. Every accepted record must reach DIG at least once, and exactly once after
DIG's (serial, type, DateTime) dedup. Size: DIG_CAMPAIGN_RECORDS (default CI-sized)."""

import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone as dj_timezone

from ingestion.models import DeviceRecord, ForwarderState
from ingestion.services.outbox import records_forward
from sandbox.dig.models import DigRecord
from sandbox.dig.services import stats
from sandbox.models import Fault

from .conftest import gps

pytestmark = pytest.mark.django_db(transaction=True)

TOTAL = int(os.environ.get("DIG_CAMPAIGN_RECORDS", "3000"))
CHUNK = 150


def test_fault_campaign_loses_nothing(api_client_for, billing_user, make_device, make_client, dig_config, settings):
    settings.DIG_FORWARD_MAX_BACKOFF_SECONDS = 0.5
    settings.DIG_FORWARD_LEASE_SECONDS = 1.0
    dig_config(bearer_lifetime_seconds=6, auth_requests_per_minute=1000)
    api = api_client_for(billing_user)
    devices = [make_device() for _ in range(5)]
    client = make_client(read_timeout=1.0, auth_max_wait=2.0)
    start = datetime.now(UTC) - timedelta(hours=3)
    plan = {  # chunk number → what happens to DIG (or to a worker) at that point
        2: {"mode": "outage", "remaining": 4, "retry_after_seconds": 1},
        5: {"mode": "rate_limit", "remaining": 3, "retry_after_seconds": 1},
        8: {"mode": "session_expiry", "remaining": 2},
        11: {"mode": "commit_then_drop", "remaining": 1, "delay_ms": 2000},
        14: "kill",
        16: {"mode": "slow", "remaining": 1, "delay_ms": 1500},
    }
    accepted = 0
    kills = 0
    chunks = TOTAL // CHUNK
    for n in range(chunks):
        body = []
        for i in range(CHUNK):
            k = n * CHUNK + i
            device = devices[k % len(devices)]
            body.append(gps(device.serial, start + timedelta(milliseconds=k * 10)))
        if n % 4 == 0:
            body.append(body[0])  # a client retry: a duplicate in the stream
        response = api.post("/api/v1/records/", data=json.dumps(body), content_type="application/json")
        assert response.status_code == 202, response.content
        assert response.json()["rejected"] == 0
        accepted += response.json()["accepted"] - response.json()["duplicates"]
        step = plan.get(n)
        if step == "kill":
            def crash(ids):
                raise SystemExit("worker killed mid-batch")

            deadline = time.monotonic() + 20
            while not kills and time.monotonic() < deadline:  # the forwarder may be in a pause
                try:
                    records_forward(client=client, after_accept=crash, batch_size=400)
                except SystemExit:
                    kills += 1
                time.sleep(0.1)
        elif step:
            Fault.objects.create(system="dig", methods="records", **step)
        records_forward(client=client, batch_size=400, time_budget_s=2)
    assert accepted == DeviceRecord.objects.count() == chunks * CHUNK

    Fault.objects.update(active=False)
    deadline = time.monotonic() + 60
    while DeviceRecord.objects.exclude(status="sent").exists() and time.monotonic() < deadline:
        state = ForwarderState.current()
        if state.paused_until and state.paused_until > dj_timezone.now():
            time.sleep(0.2)
            continue
        if not records_forward(client=client, batch_size=400).sent:
            time.sleep(0.2)
    assert not DeviceRecord.objects.exclude(status="sent").exists()

    delivered = stats()
    assert delivered["records_unique"] == accepted  # exactly once after dedup
    assert delivered["records_received"] > accepted  # the killed worker's and the lost reply's batches came twice
    assert kills == 1
    portal_keys = set(DeviceRecord.objects.values_list("serial", "record_type", "recorded_at"))
    dig_keys = set(DigRecord.objects.values_list("serial", "record_type", "recorded_at"))
    assert portal_keys == dig_keys
    fired = dict(Fault.objects.values_list("mode", "fired"))
    assert fired["outage"] >= 1 and fired["rate_limit"] >= 1 and fired["session_expiry"] >= 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks (SKIP LOCKED) need PostgreSQL")
def test_parallel_forwarders_never_send_a_record_twice(make_device, make_client):
    from ingestion.services.records import records_intake

    devices = [make_device() for _ in range(4)]
    start = datetime.now(UTC) - timedelta(hours=1)
    body = [gps(d.serial, start + timedelta(milliseconds=i)) for i in range(2000) for d in devices]
    for half in (body[:4000], body[4000:]):
        records_intake(body=json.dumps(half).encode())
    errors = []

    def worker():
        try:
            records_forward(client=make_client(), batch_size=250)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    delivered = stats()
    assert delivered["records_unique"] == delivered["records_received"] == 8000
