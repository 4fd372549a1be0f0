"""Adding devices to a customer database (idempotent) and readiness for data, end to end over
the live sandbox: portal services → real SDK → MyGeotab simulator → MyAdmin simulator."""

from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone

from devices.models import CustomerDatabase, Device, DeviceEvent
from devices.services.databases import (
    AddOutcome,
    customer_database_test_connection,
    device_add_to_database,
    devices_add_to_database,
    devices_refresh_readiness,
)
from portal.models import VendorCall
from sandbox.mygeotab.models import SandboxAsset, SandboxRateWindow
from tests.mygeotab.conftest import DEMO, OTHER

pytestmark = pytest.mark.django_db(transaction=True)


def _state(device):
    device.refresh_from_db()
    return device.mygeotab_device_id, list(device.events.values_list("kind", flat=True))


def test_add_records_id_and_queues_readiness(customer_db, make_device, readiness_enqueued):
    device = make_device()
    result = device_add_to_database(device=device, database=customer_db)
    assert result.outcome == AddOutcome.ADDED, result.message
    asset = SandboxAsset.objects.get(serial_number=device.serial)
    assert result.mygeotab_device_id == asset.entity_id == _state(device)[0]
    assert asset.groups == ["GroupCompanyId"] and asset.database.name == "demo_fleet"
    assert _state(device)[1] == ["mygeotab_added"]
    assert readiness_enqueued == [[device.pk]]
    assert set(VendorCall.objects.filter(target=f"devices.Device:{device.pk}").values_list("method", flat=True)) == {
        "Authenticate", "Get", "Add"}


def test_add_twice_attaches_without_a_second_add(customer_db, make_device, readiness_enqueued):
    device = make_device()
    first = device_add_to_database(device=device, database=customer_db)
    second = device_add_to_database(device=device, database=customer_db)
    assert (first.outcome, second.outcome) == (AddOutcome.ADDED, AddOutcome.ATTACHED)
    assert second.mygeotab_device_id == first.mygeotab_device_id
    assert SandboxAsset.objects.count() == 1
    assert VendorCall.objects.filter(method="Add").count() == 1


def test_add_after_a_dropped_reply_finds_the_asset(customer_db, make_device, fault, readiness_enqueued):
    device = make_device()
    fault("commit_then_drop", methods="Add", remaining=1, delay_ms=3000)
    result = device_add_to_database(device=device, database=customer_db)
    # The add executed but its reply was lost: the look-up after the unknown outcome attaches it.
    assert result.outcome == AddOutcome.ATTACHED, result.message
    assert result.mygeotab_device_id == SandboxAsset.objects.get().entity_id
    assert list(VendorCall.objects.filter(method="Add").values_list("outcome", flat=True)) == ["unknown"]
    again = device_add_to_database(device=device, database=customer_db)
    assert again.outcome == AddOutcome.ATTACHED and SandboxAsset.objects.count() == 1


def test_duplicate_race_attaches(customer_db, make_device, make_client, readiness_enqueued):
    """Someone else adds the serial between our look-up and our add (DuplicateException)."""
    device = make_device()
    from integrations.mygeotab import MyGeotabClient

    class RacingClient(MyGeotabClient):
        def add_device(self, **kwargs):
            make_client().add_device(serial=kwargs["serial"])  # the customer, in the UI
            return super().add_device(**kwargs)

    from portal.clients import shared_token_store

    client = RacingClient(customer_db.server, customer_db.database, customer_db.username, customer_db.password,
                          token_store=shared_token_store())
    result = device_add_to_database(device=device, database=customer_db, client=client)
    assert result.outcome == AddOutcome.ATTACHED
    assert list(VendorCall.objects.filter(method="Add").order_by("started_at", "id").values_list(
        "error_name", flat=True)) == [
        "", "DuplicateException"]


def test_serial_in_another_database_needs_staff(customer_db, make_device, make_client):
    device = make_device()
    make_client(**OTHER).add_device(serial=device.serial)
    result = device_add_to_database(device=device, database=customer_db)
    assert result.outcome == AddOutcome.NEEDS_STAFF
    assert "already exists in another MyGeotab database" in result.message
    assert _state(device) == ("", ["mygeotab_needs_staff"])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"password": "wrong"}, "Wrong user name or password"),
        ({"database": "no_such_db"}, "Unknown database 'no_such_db'"),
        ({"server": "http://127.0.0.1:9/apiv1"}, "unreachable"),
    ],
)
def test_bad_configuration_changes_nothing(customer_db, make_device, change, expected):
    for field, value in change.items():
        setattr(customer_db, field, value)
    customer_db.save()
    device = make_device()
    result = device_add_to_database(device=device, database=customer_db)
    assert result.outcome == AddOutcome.FAILED and expected in result.message
    assert _state(device) == ("", [])
    assert not SandboxAsset.objects.exists()
    ok, message = customer_database_test_connection(database=customer_db)
    assert not ok and expected in message
    customer_db.refresh_from_db()
    assert customer_db.last_check_ok is False and expected in customer_db.last_check_message


@pytest.mark.django_db
def test_precheck_refusals_make_no_call(make_device):
    # Never reached: every case is refused before a call (port 9 has no listener anyway).
    customer_db = CustomerDatabase.objects.create(server="http://127.0.0.1:9/apiv1", database="demo_fleet",
                                                  username="svc", password="pw")
    customer_db.accounts.create(erp_no="ACME01")
    cases = [
        (make_device("CX00000000#1"), "only letters and digits"),
        (make_device(erp_no="OTHER01"), "not linked"),
        (make_device(status=Device.Status.TERMINATED), "terminated"),
        (make_device(database_name="someone_else"), "already in MyGeotab database 'someone_else'"),
    ]
    for device, expected in cases:
        result = device_add_to_database(device=device, database=customer_db)
        assert result.outcome == AddOutcome.FAILED and expected in result.message, result.message
    assert not VendorCall.objects.exists() and not DeviceEvent.objects.exists()


def test_test_connection_ok(customer_db):
    ok, message = customer_database_test_connection(database=customer_db)
    assert ok and "demo_fleet" in message
    customer_db.refresh_from_db()
    assert customer_db.last_check_ok is True
    call = VendorCall.objects.get()
    assert (call.method, call.target) == ("Authenticate", f"devices.CustomerDatabase:{customer_db.pk}")


def test_bulk_add_stops_on_refused_credentials(customer_db, make_device):
    customer_db.password = "wrong"
    customer_db.save()
    devices = [make_device() for _ in range(3)]
    results = devices_add_to_database(devices=devices, database=customer_db)
    assert [r.outcome for r in results] == [AddOutcome.FAILED] * 3
    assert all("Wrong user name or password" in r.message for r in results)
    # Counted by the sandbox itself (every login attempt counts against Geotab's 10/min).
    logins = SandboxRateWindow.objects.filter(key__startswith="Authenticate|").aggregate(n=Sum("count"))["n"]
    assert logins == 1
    # ...and the refused login is in the ledger (not rolled back with a session lock).
    assert list(VendorCall.objects.values_list("method", "outcome")) == [("Authenticate", "rejected")]


def test_readiness_turns_on_and_releases_held_records(customer_db, make_device, myadmin, readiness_enqueued):
    from ingestion.models import DeviceRecord

    provisioned = myadmin.provision_device_to_account(10032, "ACME01")
    device = make_device(provisioned.serial_no)
    waiting = make_device()  # never added anywhere: stays not ready
    now = timezone.now()
    held = DeviceRecord.objects.create(
        device=device, serial=device.serial, record_type="GpsRecord", recorded_at=now, payload="{}",
        status=DeviceRecord.Status.HELD, hold_reason=DeviceRecord.HoldReason.NOT_READY, fair_key=0,
        received_at=now, available_at=now + timedelta(days=1),
    )

    before = devices_refresh_readiness(myadmin=myadmin)
    assert before.checked == 2 and before.became_ready == []

    assert device_add_to_database(device=device, database=customer_db).outcome == AddOutcome.ADDED
    result = devices_refresh_readiness(device_ids=readiness_enqueued[0], myadmin=myadmin)
    assert result.became_ready == [device.pk] and result.released_records == 1
    device.refresh_from_db()
    assert device.database_name == "demo_fleet" and device.ready_for_data_at is not None
    assert device.is_ready_for_data
    held.refresh_from_db()
    assert held.status == DeviceRecord.Status.QUEUED
    waiting.refresh_from_db()
    assert waiting.ready_for_data_at is None

    # Idempotent: a second round asks only about the device still waiting.
    assert devices_refresh_readiness(myadmin=myadmin).checked == 1
    assert DeviceEvent.objects.filter(kind="ready_for_data").count() == 1


def test_readiness_batches(make_device, myadmin):
    serials = [myadmin.provision_device_to_account(10032, "ACME01").serial_no for _ in range(5)]
    for serial in serials:
        make_device(serial)
    result = devices_refresh_readiness(myadmin=myadmin, batch_size=2)
    assert result.checked == 5
    assert VendorCall.objects.filter(method="GetDeviceDatabaseNamesAsync").count() == 3


def test_password_encrypted_at_rest(customer_db):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM devices_customerdatabase WHERE id = %s", [customer_db.pk])
        stored = cursor.fetchone()[0]
    assert DEMO["password"] not in stored and stored.startswith("gAAAA")
    assert CustomerDatabase.objects.get(pk=customer_db.pk).password == DEMO["password"]


def test_readiness_rounds_rotate_when_more_devices_wait_than_fit(make_device, myadmin):
    from django.core.cache import cache

    from devices.services.databases import READINESS_CURSOR_KEY

    cache.delete(READINESS_CURSOR_KEY)
    waiting = [make_device() for _ in range(3)]  # never added anywhere: stay pending
    asked = []
    for _ in range(2):
        before = set(VendorCall.objects.values_list("pk", flat=True))
        assert devices_refresh_readiness(myadmin=myadmin, limit=2).checked == 2
        asked.append(VendorCall.objects.exclude(pk__in=before).filter(method="GetDeviceDatabaseNamesAsync").count())
    assert asked == [1, 1]
    # Second round started after the first one's last device: all three were asked about.
    assert cache.get(READINESS_CURSOR_KEY) == waiting[0].pk
