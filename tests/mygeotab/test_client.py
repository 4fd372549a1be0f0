"""The MyGeotab client against the sandbox over real HTTP, through the real `mygeotab` SDK."""

import pytest
import requests
from django.utils import timezone

from integrations.base import (
    AuthenticationError,
    MemoryTokenStore,
    NotExecutedError,
    OutcomeUnknownError,
    RateLimitedError,
    vendor_call_context,
)
from integrations.mygeotab import (
    DuplicateDeviceError,
    InvalidSerialError,
    MyGeotabClient,
    MyGeotabRejectedError,
)
from portal.models import VendorCall
from sandbox.mygeotab.models import SandboxAsset, SandboxDatabase, SandboxSession
from tests.mygeotab.conftest import DEMO, OTHER

pytestmark = pytest.mark.django_db(transaction=True)


def test_authenticate_add_get_set_archive_roundtrip(make_client):
    client = make_client()
    assert client.authenticate() == {"database": "demo_fleet", "userName": DEMO["username"],
                                     "server": client.server}
    device_id = client.add_device(serial="CX0000000001", name="Truck 1", comment="order 7")
    found = client.get_device_by_serial("CX-000-000-0001")  # dashes as staff type them
    assert found.id == device_id
    assert (found.serial_number, found.name, found.device_type, found.groups) == (
        "CX0000000001", "Truck 1", "CustomDevice", ("GroupCompanyId",))
    assert not found.archived

    updated = client.update_device(device_id=device_id, changes={"name": "Truck 1b"})
    assert updated.name == "Truck 1b"
    assert client.get_device(device_id).name == "Truck 1b"
    assert client.archive_device(device_id=device_id)
    assert client.get_device(device_id).archived
    assert client.get_device_by_serial("CX0000000999") is None


def test_vehicle_device_fields(make_client):
    client = make_client()
    device_id = client.add_device(serial="CV0000000001", name="Van",
                                  vehicle={"vehicleIdentificationNumber": "1FTFW1ET5DFC10312",
                                           "licensePlate": "AB-123"})
    device = client.get_device(device_id)
    assert device.device_type == "CustomVehicleDevice"
    assert device.raw["vehicleIdentificationNumber"] == "1FTFW1ET5DFC10312"
    assert device.raw["licensePlate"] == "AB-123"


def test_duplicate_serial_in_this_and_another_database(make_client):
    demo, other = make_client(), make_client(**OTHER)
    demo.add_device(serial="CX0000000002")
    with pytest.raises(DuplicateDeviceError):
        demo.add_device(serial="CX0000000002")
    with pytest.raises(DuplicateDeviceError):
        other.add_device(serial="CX0000000002")
    # Only the owning database sees it: how the portal tells "attach" from "needs staff".
    assert demo.get_device_by_serial("CX0000000002") is not None
    assert other.get_device_by_serial("CX0000000002") is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"password": "wrong"}, "Wrong user name or password"),
        ({"username": "nobody@example.com"}, "Wrong user name or password"),
        ({"database": "no_such_db"}, "Unknown database 'no_such_db'"),
    ],
)
def test_bad_credentials_are_clear_and_not_retried(make_client, kwargs, message):
    client = make_client(**kwargs)
    with pytest.raises(AuthenticationError, match=message):
        client.add_device(serial="CX0000000003")
    assert not SandboxAsset.objects.exists()
    assert list(VendorCall.objects.values_list("method", "outcome")) == [("Authenticate", "rejected")]


def _offline_client():
    """Nothing listens on port 9 (discard): no live server needed."""
    return MyGeotabClient("http://127.0.0.1:9/apiv1", DEMO["database"], DEMO["username"], DEMO["password"],
                          token_store=MemoryTokenStore(), connect_timeout=2, read_timeout=2, sleep=lambda s: None)


@pytest.mark.django_db
def test_unreachable_server_is_not_executed():
    with pytest.raises(NotExecutedError, match="connection refused"):
        _offline_client().authenticate()
    assert set(VendorCall.objects.values_list("outcome", flat=True)) == {"not_executed"}


@pytest.mark.django_db
def test_serial_longer_than_12_refused_before_any_call():
    client = _offline_client()
    with pytest.raises(InvalidSerialError, match="at most 12"):
        client.add_device(serial="CX00000000012")
    assert not VendorCall.objects.exists()


def test_server_validation_is_rejected(make_client):
    client = make_client()
    with pytest.raises(MyGeotabRejectedError, match="longer than 50"):
        client._call("Add", typeName="Device", entity={"serialNumber": "CX0000000004", "name": "x" * 51})


def test_expired_session_logs_in_again_once(make_client):
    client = make_client()
    client.add_device(serial="CX0000000005")
    first_session = client.credential.get()["sessionId"]
    SandboxSession.objects.update(expires_at=timezone.now())  # every session expires
    assert client.get_device_by_serial("CX0000000005") is not None
    assert client.credential.get()["sessionId"] != first_session
    methods = list(VendorCall.objects.order_by("started_at", "id").values_list("method", "outcome"))
    assert methods == [("Authenticate", "ok"), ("Add", "ok"), ("Get", "not_executed"),
                       ("Authenticate", "ok"), ("Get", "ok")]


def test_session_expiry_fault_is_survived(make_client, fault):
    client = make_client()
    client.authenticate()
    fault("session_expiry", methods="Add", remaining=1)
    assert client.add_device(serial="CX0000000006")
    assert SandboxAsset.objects.filter(serial_number="CX0000000006").count() == 1


def test_session_is_shared_between_clients(make_client):
    make_client().authenticate()
    make_client().get_device_by_serial("CX0000000007")
    assert VendorCall.objects.filter(method="Authenticate").count() == 1


def test_overlimit_http_200_backs_off_and_retries(make_client, sleeps):
    client = make_client()
    client.authenticate()  # the sandbox seeds demo_fleet on this first request
    SandboxDatabase.objects.filter(name="demo_fleet").update(read_per_minute=1)
    client.get_device_by_serial("CX0000000008")  # uses the one call of this minute
    with pytest.raises(RateLimitedError):
        client.get_device_by_serial("CX0000000008")
    assert len(sleeps) == client.max_rate_limit_retries
    assert all(0 < s <= client.max_backoff for s in sleeps)


def test_overlimit_http_429_uses_retry_after(make_client, fault, sleeps):
    client = make_client()
    client.authenticate()
    fault("rate_limit", methods="Add", remaining=2, retry_after_seconds=3)
    assert client.add_device(serial="CX0000000009")
    assert len(sleeps) == 2 and all(3 <= s <= 3.25 for s in sleeps)
    outcomes = list(VendorCall.objects.filter(method="Add").values_list("outcome", "http_status"))
    assert sorted(outcomes, key=str) == sorted([("not_executed", 429), ("not_executed", 429), ("ok", 200)], key=str)


def test_add_whose_reply_is_lost_is_unknown_and_executed(make_client, fault):
    client = make_client(read_timeout=1.0)
    client.authenticate()
    fault("commit_then_drop", methods="Add", remaining=1, delay_ms=3000)
    with pytest.raises(OutcomeUnknownError):
        client.add_device(serial="CX0000000010")
    # It did execute: the caller must look the serial up before adding again.
    assert client.get_device_by_serial("CX0000000010") is not None


def test_outage_is_not_executed_and_5xx_after_commit_unknown(make_client, fault):
    client = make_client()
    client.authenticate()
    fault("outage", methods="Add", remaining=1)
    with pytest.raises(NotExecutedError):
        client.add_device(serial="CX0000000011")
    assert not SandboxAsset.objects.filter(serial_number="CX0000000011").exists()
    fault("server_error_after_commit", methods="Add", remaining=1)
    with pytest.raises(OutcomeUnknownError):
        client.add_device(serial="CX0000000011")
    assert SandboxAsset.objects.filter(serial_number="CX0000000011").exists()


def test_ledger_records_target_and_never_secrets(make_client, caplog):
    client = make_client()
    with vendor_call_context(target="devices.Device:42"):
        client.add_device(serial="CX0000000012")
    calls = list(VendorCall.objects.all())
    assert {c.method for c in calls} == {"Authenticate", "Add"}
    assert all(c.target == "devices.Device:42" for c in calls)
    session_id = client.credential.get()["sessionId"]
    dumped = " ".join(str(vars(c)) for c in calls) + caplog.text + repr(client)
    assert DEMO["password"] not in dumped and session_id not in dumped
    # The shared session is kept for other workers, the password is not.
    assert DEMO["password"] not in str(client.credential.store._data)


def test_sandbox_error_shape_has_legacy_errors_array(mygeotab_server):
    body = requests.post(mygeotab_server, json={"method": "Authenticate", "params": {
        "database": "demo_fleet", "userName": "x", "password": "y"}}, timeout=5)
    assert body.status_code == 200 and body.headers["Content-Type"].startswith("application/json")
    error = body.json()["error"]
    assert error["data"]["type"] == error["errors"][0]["name"] == "InvalidUserException"
    assert error["name"] == "JSONRPCError" and error["code"] == -32000


def test_server_redirection_via_path(make_client, live_server):
    """Authenticate's `path` names the server hosting the database: later calls go there."""
    port = live_server.url.rsplit(":", 1)[1]
    federation = f"http://127.0.0.1:{port}/sandbox/mygeotab/apiv1"
    direct = f"http://localhost:{port}/sandbox/mygeotab/apiv1"
    client = make_client(server=federation)
    client.authenticate()  # seeds the sandbox
    SandboxDatabase.objects.filter(name="demo_fleet").update(path=direct)
    client = make_client(server=federation)
    assert client.authenticate()["server"] == direct
    client.add_device(serial="CX0000000013")
    urls = dict(VendorCall.objects.filter(method__in=["Add"]).values_list("method", "url"))
    assert urls == {"Add": direct}


def test_remove_and_archive_rules_in_the_sandbox(make_client, myadmin):
    """Remove clears the owner database MyAdmin reports; a far-future activeTo is forced to max."""
    serial = myadmin.provision_device_to_account(10032, "ACME01").serial_no
    client = make_client()
    device_id = client.add_device(serial=serial)
    assert myadmin.get_device_database_names([serial])[0].owner_database_name == "demo_fleet"
    far = timezone.now() + timezone.timedelta(days=30)
    assert client.update_device(device_id=device_id, changes={"activeTo": far})
    assert client.get_device(device_id).active_to.year == 2050 and not client.get_device(device_id).archived
    client.remove_device(device_id=device_id)
    assert client.get_device_by_serial(serial) is None
    assert not myadmin.get_device_database_names([serial])[0].owner_database_name
