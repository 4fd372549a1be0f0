"""The MyAdmin client against the simulated MyAdmin over real HTTP (live server)."""

import json
import threading

import pytest
import requests
from django.db import connection

from integrations.base import (
    AuthenticationError,
    MemoryRateLimiter,
    MemoryTokenStore,
    Outcome,
    OutcomeUnknownError,
    RateLimitedError,
    RejectedError,
    SessionExpiredError,
)
from integrations.myadmin import (
    DeviceNotFoundError,
    MyAdminRejectedError,
    ProvisionResult,
)
from portal.models import VendorCall

pytestmark = pytest.mark.django_db(transaction=True)


def _rpc(url, method, params, *, form=True):
    body = {"id": -1, "method": method, "params": params}
    if form:
        return requests.post(url, data={"JSON-RPC": json.dumps(body)}, timeout=5)
    return requests.post(url, json=body, timeout=5)


# --------------------------------------------------------------------------- wire protocol


def test_get_is_405_and_both_encodings_answer(myadmin_url):
    assert requests.get(myadmin_url, timeout=5).status_code == 405
    creds = {"username": "integrator@example.com", "password": "sandbox-password"}
    for form in (True, False):
        response = _rpc(myadmin_url, "Authenticate", creds, form=form)
        assert response.status_code == 200
        result = response.json()["result"]
        assert result["userId"] and result["sessionId"]
        assert {a["accountId"] for a in result["accounts"]} >= {"INTEG01", "ACME01", "FLEETCO"}


def test_errors_arrive_with_http_200_in_the_documented_shape(myadmin_url):
    response = _rpc(myadmin_url, "Authenticate", {"username": "nobody@example.com", "password": "x"})
    assert response.status_code == 200
    error = response.json()["error"]
    assert error["name"] == "JSONRPCError"
    assert error["errors"][0] == {"name": "WebServerInvokerJSONException", "message": "UnknownUser: nobody@example.com"}


# --------------------------------------------------------------------------- authentication


def test_unknown_user_and_wrong_password_are_authentication_errors(make_client):
    with pytest.raises(AuthenticationError) as unknown:
        make_client(username="nobody@example.com").authenticate()
    assert "UnknownUser" in str(unknown.value)
    assert unknown.value.outcome == Outcome.REJECTED and not unknown.value.may_have_executed
    with pytest.raises(AuthenticationError) as wrong:
        make_client(password="wrong").authenticate()
    assert "IncorrectPassword" in str(wrong.value)


def test_one_shared_session_for_all_clients(make_client):
    store = MemoryTokenStore()
    a, b = make_client(token_store=store), make_client(token_store=store)
    a.get_termination_reasons()
    b.get_termination_reasons()
    assert VendorCall.objects.filter(method="Authenticate").count() == 1
    assert a.credential.get()["sessionId"] == b.credential.get()["sessionId"]
    assert set(a.accounts()) >= {"INTEG01", "ACME01"}


def test_session_expiry_reauthenticates_once_and_retries_the_call(make_client, fault):
    client = make_client()
    first = client.credential.get()
    fault("session_expiry", "GetTerminationReasons", remaining=1)
    reasons = client.get_termination_reasons()
    assert reasons and reasons[0].id == 1
    assert client.credential.get()["sessionId"] != first["sessionId"]
    calls = list(VendorCall.objects.filter(method="GetTerminationReasons").order_by("id").values_list("outcome", "error_name"))
    assert calls == [("not_executed", "SessionExpiredException"), ("ok", "")]
    assert VendorCall.objects.filter(method="Authenticate").count() == 2


@pytest.mark.skipif(connection.vendor == "sqlite", reason="concurrent writers need a real database server")
def test_session_expiry_is_renewed_single_flight_across_threads(make_client, fault):
    store = MemoryTokenStore()
    clients = [make_client(token_store=store) for _ in range(4)]
    stale = clients[0].credential.get()
    fault("session_expiry", "GetTerminationReasons", remaining=1)
    # Every thread finds the same stale session; only one must log in again.
    errors = []

    def work(c):
        try:
            c.get_termination_reasons()
        except Exception as exc:  # noqa: BLE001 - any failure in a thread is reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors
    assert VendorCall.objects.filter(method="Authenticate").count() == 2  # initial + one renewal
    assert store.get("myadmin:integrator@example.com")["sessionId"] != stale["sessionId"]


def test_expired_session_by_configured_lifetime(make_client, monkeypatch):
    monkeypatch.setenv("SANDBOX_MYADMIN_SESSION_SECONDS", "1")
    client = make_client()
    client.credential.get()
    from django.utils import timezone

    from sandbox.myadmin.models import SandboxSession

    SandboxSession.objects.update(expires_at=timezone.now())  # the 1 s lifetime has passed
    assert client.get_termination_reasons()
    assert VendorCall.objects.filter(method="Authenticate").count() == 2


def test_session_expired_twice_gives_up_not_executed(make_client, fault):
    client = make_client()
    client.credential.get()
    fault("session_expiry", "LookupDevice", remaining=2)
    with pytest.raises(SessionExpiredError) as exc:
        client.lookup_device("CX0000000000")
    assert exc.value.outcome == Outcome.NOT_EXECUTED


# --------------------------------------------------------------------------- provisioning


def test_provision_to_account_mints_a_cx_serial(client_):
    result = client_.provision_device_to_account(10032, "INTEG01")
    assert isinstance(result, ProvisionResult) and result.is_success
    assert result.serial_no.startswith("CX") and len(result.serial_no) == 12
    other = client_.provision_device_to_account(10184, "INTEG01")
    assert other.serial_no.startswith("CV") and len(other.serial_no) == 12
    legacy = client_.provision_device(10032)
    assert legacy.is_success and legacy.serial_no.startswith("CX")
    from sandbox.myadmin.models import SandboxDevice

    assert SandboxDevice.objects.get(serial=legacy.serial_no).account.account_id == "ACME01"  # default = first


def test_provision_bad_input_is_rejected_not_executed(client_):
    with pytest.raises(MyAdminRejectedError, match="Invalid product"):
        client_.provision_device_to_account(99999, "INTEG01")
    with pytest.raises(MyAdminRejectedError, match="not authorized"):
        client_.provision_device_to_account(10032, "OTHER01")
    with pytest.raises(ValueError):
        client_.provision_devices_bulk(10032, "INTEG01", 1001)
    from sandbox.myadmin.models import SandboxDevice

    assert not SandboxDevice.objects.exists()
    rejected = VendorCall.objects.filter(outcome="rejected")
    assert rejected.count() == 2


def test_bulk_provisions_up_to_1000_in_one_call_and_contracts_page(client_):
    results = client_.provision_devices_bulk(10032, "ACME01", 1000)
    assert len(results) == 1000 and all(r.is_success for r in results)
    assert len({r.serial_no for r in results}) == 1000
    client_.provision_device_to_account(10032, "ACME01")
    before = VendorCall.objects.filter(method="GetDeviceContracts").count()
    contracts = list(client_.get_device_contracts(for_account="ACME01"))
    assert len(contracts) == 1001 and len({c.serial_no for c in contracts}) == 1001
    assert VendorCall.objects.filter(method="GetDeviceContracts").count() - before == 2  # nextId paging
    assert VendorCall.objects.filter(method="ProvisionDevicesBulk").count() == 1


# --------------------------------------------------------------------------- contracts


def test_update_contracts_terminate_and_cancel_read_back(client_):
    serial = client_.provision_device_to_account(10032, "FLEETCO").serial_no
    client_.update_device_contracts([serial], comments="order 7", promo_code="PROMO1", group_id=12)
    contract, = client_.get_device_contracts(for_account="FLEETCO", serial_nos=[serial])
    assert (contract.comments, contract.promo_code, contract.group_id) == ("order 7", "PROMO1", "12")
    assert contract.device_type == "CustomDevice" and not contract.is_terminated
    assert client_.lookup_device(serial).comments == "order 7"
    # Only the fields given change.
    client_.update_device_contracts([serial], promo_code="PROMO2")
    contract, = client_.get_device_contracts(for_account="FLEETCO", serial_nos=[serial])
    assert (contract.comments, contract.promo_code) == ("order 7", "PROMO2")

    reasons = client_.get_termination_reasons()
    client_.terminate_device_billing(serial, reasons[0].id, comments="customer left")
    contract, = client_.get_device_contracts(for_account="FLEETCO", serial_nos=[serial])
    assert contract.is_terminated and contract.terminated_date is not None
    with pytest.raises(MyAdminRejectedError, match="already terminated"):
        client_.terminate_device_billing(serial, reasons[0].id)
    client_.cancel_device_termination(serial)
    contract, = client_.get_device_contracts(for_account="FLEETCO", serial_nos=[serial])
    assert not contract.is_terminated


def test_unknown_serial_errors(client_):
    assert client_.lookup_device("CX0000000000") is None
    with pytest.raises(DeviceNotFoundError):
        client_.update_device_contracts(["CX0000000000"], comments="x")
    with pytest.raises(DeviceNotFoundError):
        client_.terminate_device_billing("CX0000000000", 1)
    with pytest.raises(MyAdminRejectedError, match="Invalid termination reason"):
        serial = client_.provision_device_to_account(10032, "INTEG01").serial_no
        client_.terminate_device_billing(serial, 999)


def test_database_names(client_):
    serial = client_.provision_device_to_account(10032, "INTEG01").serial_no
    from sandbox.myadmin.models import SandboxDevice

    assert client_.get_device_database_names([serial])[0].owner_database_name == ""
    SandboxDevice.objects.filter(serial=serial).update(database_name="acme_fleet", shared_database_names=["partner"])
    names, = client_.get_device_database_names([serial])
    assert (names.serial_no, names.owner_database_name, names.shared_database_names) == (serial, "acme_fleet", ("partner",))


# --------------------------------------------------------------------------- faults and limits


def test_429_honours_retry_after_then_succeeds(client_, fault, sleeps):
    client_.credential.get()
    fault("rate_limit", "GetTerminationReasons", remaining=2, retry_after_seconds=3)
    assert client_.get_termination_reasons()
    waits = [s for s in sleeps if s >= 3]
    assert len(waits) == 2 and all(3 <= s <= 3.25 for s in waits)
    outcomes = list(VendorCall.objects.filter(method="GetTerminationReasons").values_list("outcome", "http_status"))
    assert outcomes.count(("not_executed", 429)) == 2


def test_429_that_persists_raises_rate_limited(client_, fault):
    client_.credential.get()
    fault("rate_limit", "ProvisionDeviceToAccount", retry_after_seconds=1)
    with pytest.raises(RateLimitedError) as exc:
        client_.provision_device_to_account(10032, "INTEG01")
    assert exc.value.retryable and exc.value.retry_after == 1
    from sandbox.myadmin.models import SandboxDevice

    assert not SandboxDevice.objects.exists()


def test_simulator_rate_limit_per_minute(client_, monkeypatch):
    monkeypatch.setenv("SANDBOX_MYADMIN_RATE_PER_MINUTE", "3")
    client_.max_rate_limit_retries = 0
    with pytest.raises(RateLimitedError) as exc:
        for _ in range(5):
            client_.get_termination_reasons()
    assert exc.value.http_status == 429 and exc.value.retry_after >= 1


def test_client_side_limiter_keeps_under_the_limit(make_client, sleeps):
    # A fixed clock: the three calls must fall in one window whatever the wall clock does.
    client = make_client(requests_per_minute=2,
                         rate_limiter=MemoryRateLimiter(clock=lambda: 1000.0, sleep=sleeps.append))
    client.max_backoff = 0.0  # do not wait for the next window: refuse instead
    client.authenticate()
    client.authenticate()
    with pytest.raises(RateLimitedError) as exc:
        client.authenticate()
    assert exc.value.error_name == "ClientRateLimit"
    assert VendorCall.objects.filter(method="Authenticate").count() == 2


def test_commit_then_drop_is_unknown_and_not_resent(client_, fault):
    client_.credential.get()
    fault("commit_then_drop", "ProvisionDeviceToAccount", remaining=1, delay_ms=3000)
    with pytest.raises(OutcomeUnknownError) as exc:
        client_.provision_device_to_account(10032, "INTEG01")
    assert exc.value.may_have_executed
    # The connection was closed, not merely left unanswered until the client timed out.
    assert exc.value.error_name == "ConnectionLost"
    from sandbox.myadmin.models import SandboxDevice

    assert SandboxDevice.objects.count() == 1  # it did execute, exactly once
    assert VendorCall.objects.filter(method="ProvisionDeviceToAccount").count() == 1


def test_slow_reply_past_timeout_is_unknown(client_, fault):
    client_.credential.get()
    fault("slow", "ProvisionDeviceToAccount", remaining=1, delay_ms=2600)
    with pytest.raises(OutcomeUnknownError) as exc:
        client_.provision_device_to_account(10032, "INTEG01")
    assert exc.value.error_name == "ReadTimeout"


def test_5xx_is_unknown_for_writes_and_retried_for_reads(client_, fault, sleeps):
    client_.credential.get()
    fault("server_error_after_commit", "ProvisionDeviceToAccount", remaining=1)
    with pytest.raises(OutcomeUnknownError) as exc:
        client_.provision_device_to_account(10032, "INTEG01")
    assert exc.value.http_status == 500
    fault("server_error", "GetTerminationReasons", remaining=1)
    assert client_.get_termination_reasons()
    assert VendorCall.objects.filter(method="GetTerminationReasons", outcome="unknown").count() == 1


def test_connection_refused_is_not_executed(make_client):
    client = make_client(url="http://127.0.0.1:9/v2/MyAdminApi.ashx", read_timeout=1)
    with pytest.raises(RejectedError.__mro__[1]) as exc:  # VendorError
        client.authenticate()
    assert exc.value.outcome == Outcome.NOT_EXECUTED


def test_secrets_never_reach_the_ledger(client_):
    client_.get_termination_reasons()
    for call in VendorCall.objects.all():
        text = " ".join(str(v) for v in call.__dict__.values())
        assert "sandbox-password" not in text
        assert client_.credential.get()["sessionId"] not in text
