"""POST /api/v1/records: validation per index and field, dedup, idempotency, holds, never a 500."""

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from devices.models import Device
from ingestion.models import DeviceFeed, DeviceRecord

from .conftest import gps, gps_series

pytestmark = pytest.mark.django_db

URL = "/api/v1/records/"


@pytest.fixture
def api(api_client_for, billing_user):
    return api_client_for(billing_user)


def post(api, body, **headers):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return api.post(URL, data=data, content_type="application/json", **headers)


def test_valid_records_are_committed_and_counted(api, make_device):
    device = make_device()
    response = post(api, gps_series(device.serial, 10))
    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": 10, "duplicates": 0, "held": 0, "rejected": 0, "errors": []}
    rows = DeviceRecord.objects.filter(device=device)
    assert rows.count() == 10 and set(rows.values_list("status", flat=True)) == {"queued"}
    payload = json.loads(rows.first().payload)
    assert payload["SerialNo"] == device.serial and payload["DateTime"].endswith("Z")
    assert DeviceFeed.objects.filter(device=device).exists()


def test_duplicates_are_accepted_once(api, make_device):
    device = make_device()
    records = gps_series(device.serial, 5)
    post(api, records)
    again = post(api, records + [records[0]])
    assert again.status_code == 202
    assert again.json()["accepted"] == 6 and again.json()["duplicates"] == 6
    assert DeviceRecord.objects.count() == 5


def test_same_instant_in_another_zone_is_the_same_record(api, make_device):
    device = make_device()
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    a = gps(device.serial, when)
    b = dict(a, DateTime=when.astimezone(timezone(timedelta(hours=2))).isoformat())
    assert post(api, [a, b]).json()["duplicates"] == 1
    assert DeviceRecord.objects.count() == 1


def test_bad_records_are_reported_by_index_and_field_and_good_ones_kept(api, make_device):
    good = make_device()
    terminated = make_device(status=Device.Status.TERMINATED)
    future = datetime.now(UTC) + timedelta(days=2)
    body = [
        gps(good.serial),                                                  # 0 ok
        dict(gps(good.serial, datetime.now(UTC) - timedelta(minutes=1)), Latitude=91.5),  # 1 range
        {"Type": "SpaceshipRecord", "DateTime": "2026-01-01T00:00:00Z", "SerialNo": good.serial},  # 2 type
        gps("CX9999999999"),                                               # 3 unknown serial
        gps(terminated.serial),                                            # 4 terminated
        gps(good.serial, future),                                          # 5 far future
        dict(gps(good.serial), DateTime="yesterday"),                      # 6 unparsable
        {"Type": "StatusRecord", "DateTime": gps(good.serial)["DateTime"], "SerialNo": good.serial,
         "Code": 300, "Value": 1},                                         # 7 fault code as status
        "not an object",                                                   # 8
        dict(gps(good.serial, datetime.now(UTC) - timedelta(minutes=2)), Colour="red"),  # 9 unknown field
        {"Type": "AccelerationRecord", "DateTime": gps(good.serial)["DateTime"], "SerialNo": good.serial,
         "X": 1, "Y": 2},                                                  # 10 missing Z
    ]
    response = post(api, body)
    assert response.status_code == 202
    data = response.json()
    assert data["accepted"] == 1 and data["rejected"] == 10
    by_index = {(e["index"], e["field"]) for e in data["errors"]}
    assert {(1, "Latitude"), (2, "Type"), (3, "SerialNo"), (4, "SerialNo"), (5, "DateTime"), (6, "DateTime"),
            (7, "Code"), (8, ""), (9, "Colour"), (10, "Z")} <= by_index
    assert any("terminated" in e["message"] for e in data["errors"] if e["index"] == 4)
    assert DeviceRecord.objects.count() == 1


@pytest.mark.parametrize("body, status, code", [
    (b"{not json", 400, "parse_error"),
    (b'{"Type": "GpsRecord"}', 400, "not_an_array"),
    (b"[]", 400, "empty"),
    (b"", 400, "parse_error"),
])
def test_unusable_bodies_are_4xx_and_store_nothing(api, body, status, code):
    response = post(api, body)
    assert response.status_code == status
    assert response.json()["code"] == code and response.json()["detail"]
    assert DeviceRecord.objects.count() == 0


def test_more_than_5000_records_is_413(api, make_device):
    device = make_device()
    response = post(api, gps_series(device.serial, 5001))
    assert response.status_code == 413
    assert DeviceRecord.objects.count() == 0


def test_records_of_a_device_not_ready_are_held_then_released(api, make_device):
    from ingestion.services import records_release_for_devices, records_release_sweep

    device = make_device(ready=False)
    assert post(api, gps_series(device.serial, 3)).json()["held"] == 3
    assert set(DeviceRecord.objects.values_list("status", "hold_reason")) == {("held", "not_ready")}
    assert records_release_for_devices(device_ids=[device.pk]) == 0  # still not ready: stays held
    Device.objects.filter(pk=device.pk).update(database_name="demo_db", ready_for_data_at=datetime.now(UTC))
    assert records_release_sweep() == 3
    assert set(DeviceRecord.objects.values_list("status", flat=True)) == {"queued"}


def test_termination_holds_queued_records_with_the_reason(api, make_device):
    from ingestion.services import records_hold_for_devices

    device = make_device()
    post(api, gps_series(device.serial, 4))
    assert records_hold_for_devices(device_ids=[device.pk], reason="terminated") == 4
    assert set(DeviceRecord.objects.values_list("status", "hold_reason")) == {("held", "terminated")}


def test_idempotency_key_replays_and_refuses_another_body(api, make_device):
    device = make_device()
    records = gps_series(device.serial, 3)
    first = post(api, records, HTTP_IDEMPOTENCY_KEY="k-1")
    again = post(api, records, HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.status_code == 202 and again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    other = post(api, records[:1], HTTP_IDEMPOTENCY_KEY="k-1")
    assert other.status_code == 409
    assert DeviceRecord.objects.count() == 3


def test_roles_viewer_may_read_not_post(api_client_for, viewer, make_device):
    client = api_client_for(viewer)
    device = make_device()
    assert post(client, gps_series(device.serial, 1)).status_code == 403
    assert client.get(URL).status_code == 200


def test_list_shows_delivery_state(api, make_device):
    device = make_device()
    post(api, gps_series(device.serial, 2))
    data = api.get(URL, {"serial": device.serial.lower()}).json()
    assert len(data["results"]) == 2 and data["results"][0]["status"] == "queued"


def test_record_api_is_in_the_schema(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert "/api/v1/records/" in schema.content.decode()


def test_termination_relabels_not_ready_holds_so_readiness_does_not_release_them(api, make_device):
    from ingestion.services import records_hold_for_devices, records_release_for_devices

    device = make_device(ready=False)
    post(api, gps_series(device.serial, 2))
    records_hold_for_devices(device_ids=[device.pk], reason="terminated")
    Device.objects.filter(pk=device.pk).update(database_name="demo_db")
    assert records_release_for_devices(device_ids=[device.pk]) == 0
    assert set(DeviceRecord.objects.values_list("status", "hold_reason")) == {("held", "terminated")}


def test_a_batch_repeating_stored_keys_falls_back_and_stores_only_the_new(make_device):
    from django.db import connection

    from ingestion.services import records as records_service

    if connection.vendor != "postgresql":
        pytest.skip("the COPY fast path is PostgreSQL's")
    device = make_device()
    batch = gps_series(device.serial, 4)
    records_service.records_intake(body=json.dumps(batch[:2]).encode())
    # The direct COPY hits the unique key on the stored two; the savepoint rolls it back and
    # the insert falls back to ON CONFLICT DO NOTHING, in the same transaction.
    result = records_service.records_intake(body=json.dumps(batch).encode())
    assert result.accepted == 4 and result.duplicates == 2
    assert DeviceRecord.objects.count() == 4
    assert sorted(DeviceRecord.objects.values_list("recorded_at", flat=True)) == sorted(
        records_service.record_validate(0, r, earliest=datetime.min.replace(tzinfo=UTC),
                                        latest=datetime.max.replace(tzinfo=UTC))[0].recorded_at for r in batch)


def test_nan_and_infinity_are_malformed_json_and_store_nothing():
    from ingestion.models import DeviceRecord
    from ingestion.services.records import IntakeError, records_parse

    for token in (b"NaN", b"Infinity", b"-Infinity"):
        body = b'[{"Type": "BluetoothRecord", "Data": ' + token + b"}]"
        with pytest.raises(IntakeError) as info:
            records_parse(body)
        assert "not a JSON number" in str(info.value)
    assert not DeviceRecord.objects.exists()


def test_record_times_are_stored_in_one_canonical_utc_form():
    from ingestion.services.records import record_validate

    earliest, latest = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    for sent in ("2026-11-22T01:02:03.123456Z", "2026-11-22 01:02:03.123456Z", "2026-11-22T03:02:03.123456+02:00",
                 "2026-11-22T01:02:03.123456+00:00"):
        record = {"Type": "GpsRecord", "DateTime": sent, "SerialNo": "b1", "Latitude": 1.0, "Longitude": 2.0}
        valid, errors = record_validate(0, record, earliest=earliest, latest=latest)
        assert not errors, errors
        assert valid.data["DateTime"] == "2026-11-22T01:02:03.123456Z", sent
        assert valid.recorded_at == datetime(2026, 11, 22, 1, 2, 3, 123456, tzinfo=UTC)
    record = {"Type": "GpsRecord", "DateTime": "2026-11-22T01:02:03Z", "SerialNo": "b1", "Latitude": 1.0,
              "Longitude": 2.0}
    assert record_validate(0, record, earliest=earliest, latest=latest)[0].data["DateTime"] == \
        "2026-11-22T01:02:03.000000Z"


@pytest.mark.django_db(transaction=True)
def test_intake_never_waits_for_a_settlement_holding_the_feeds(make_device):
    """The forwarder locks feed rows while it settles a batch; intake keeps its queue clocks
    in a table of its own, so a batch for the same devices is stored meanwhile."""
    import threading

    from django.db import connection, transaction

    from ingestion.services.records import records_intake

    device = make_device()
    records_intake(body=json.dumps(gps_series(device.serial, 2)).encode())  # the feed exists
    locked, release = threading.Event(), threading.Event()

    def settlement():
        try:
            with transaction.atomic():
                list(DeviceFeed.objects.select_for_update().filter(device=device))
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=settlement)
    holder.start()
    assert locked.wait(10)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")  # waiting would fail, not hang
        result = records_intake(body=json.dumps(gps_series(device.serial, 3, start=datetime.now(UTC) - timedelta(hours=1))).encode())
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
        release.set()
        holder.join(10)
    assert result.accepted == 3
    assert DeviceRecord.objects.filter(device=device).count() == 5
