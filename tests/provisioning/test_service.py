"""The provisioning intent ledger against the live simulated MyAdmin."""

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from devices.models import Device, ProvisioningRequest
from devices.services import (
    IdempotencyConflict,
    provisioning_reconcile,
    provisioning_reconcile_due,
    provisioning_request_create,
    provisioning_request_process,
    provisioning_staff_resolve,
    provisioning_sweep,
)
from devices.services import provisioning as service
from portal.models import VendorCall
from sandbox.myadmin.models import SandboxDevice

pytestmark = pytest.mark.django_db(transaction=True)
S = ProvisioningRequest.Status


def test_create_commits_the_intent_and_enqueues_it(portal_myadmin, billing_user, enqueued):
    req = provisioning_request_create(product_id=10032, erp_no="integ01", quantity=3, requested_by=billing_user)
    assert (req.status, req.erp_no, req.quantity) == (S.PENDING, "INTEG01", 3)
    assert enqueued == [req.pk]
    assert not VendorCall.objects.exclude(method="Authenticate").exists()  # nothing billable yet


@pytest.mark.parametrize("kwargs, field", [
    ({"product_id": 99999}, "product_id"),
    ({"quantity": 0}, "quantity"),
    ({"quantity": 1001}, "quantity"),
    ({"quantity": "many"}, "quantity"),
    ({"erp_no": ""}, "erp_no"),
    ({"erp_no": "OTHER01"}, "erp_no"),
])
def test_bad_input_is_refused_and_nothing_is_written_or_called(portal_myadmin, kwargs, field, enqueued):
    args = {"product_id": 10032, "erp_no": "INTEG01", "quantity": 1, **kwargs}
    with pytest.raises(ValidationError) as exc:
        provisioning_request_create(**args)
    assert field in exc.value.message_dict
    assert not ProvisioningRequest.objects.exists() and not enqueued
    assert not VendorCall.objects.exclude(method="Authenticate").exists()
    assert not SandboxDevice.objects.exists()


def test_idempotency_key(portal_myadmin):
    a = provisioning_request_create(product_id=10032, erp_no="INTEG01", quantity=2, idempotency_key="k-1")
    b = provisioning_request_create(product_id=10032, erp_no="INTEG01", quantity=2, idempotency_key="k-1")
    assert a.pk == b.pk and ProvisioningRequest.objects.count() == 1
    with pytest.raises(IdempotencyConflict):
        provisioning_request_create(product_id=10032, erp_no="INTEG01", quantity=3, idempotency_key="k-1")


def test_single_calls_mint_one_serial_per_call_and_tag_them(portal_myadmin, myadmin):
    req = provisioning_request_create(product_id=10184, erp_no="ACME01", quantity=3)
    req = provisioning_request_process(request_id=req.pk, client=myadmin)
    assert req.status == S.SUCCEEDED and req.minted_count == 3 and req.calls_made == 3
    devices = list(req.devices.all())
    assert len(devices) == 3 and all(d.product_type == "CustomVehicleDevice" and d.erp_no == "ACME01" for d in devices)
    assert set(SandboxDevice.objects.values_list("serial", flat=True)) == {d.serial for d in devices}
    assert set(SandboxDevice.objects.values_list("comments", flat=True)) == {req.marker}
    assert devices[0].events.filter(kind="provisioned").exists()
    targets = set(VendorCall.objects.exclude(method="Authenticate").values_list("target", flat=True))
    assert targets == {f"devices.ProvisioningRequest:{req.pk}"}


def test_bulk_is_one_call(portal_myadmin, myadmin):
    req = provisioning_request_create(product_id=10032, erp_no="INTEG01", quantity=50, use_bulk=True)
    req = provisioning_request_process(request_id=req.pk, client=myadmin)
    assert req.status == S.SUCCEEDED and req.devices.count() == 50
    assert VendorCall.objects.filter(method="ProvisionDevicesBulk").count() == 1


def test_processing_twice_never_mints_twice(portal_myadmin, myadmin):
    req = provisioning_request_create(product_id=10032, erp_no="INTEG01", quantity=2)
    provisioning_request_process(request_id=req.pk, client=myadmin)
    provisioning_request_process(request_id=req.pk, client=myadmin)
    assert SandboxDevice.objects.count() == 2


def test_rate_limited_goes_back_to_pending_then_succeeds(portal_myadmin, myadmin, fault, enqueued):
    fault("rate_limit", remaining=5, retry_after_seconds=1)  # the client retries 4 times
    req = provisioning_request_create(product_id=10032, erp_no="INTEG01")
    req = provisioning_request_process(request_id=req.pk, client=myadmin)
    assert req.status == S.PENDING and req.call_started_at is None and req.attempts == 1
    assert req.next_attempt_at > timezone.now()
    assert enqueued.count(req.pk) == 2  # on create, and the backoff retry
    ProvisioningRequest.objects.filter(pk=req.pk).update(next_attempt_at=None)
    req = provisioning_request_process(request_id=req.pk, client=myadmin)
    assert req.status == S.SUCCEEDED and SandboxDevice.objects.count() == 1


def test_rejected_by_myadmin_fails_without_minting(portal_myadmin, myadmin):
    req = provisioning_request_create(product_id=10032, erp_no="INTEG01")
    # The account is taken away at MyAdmin after the request was accepted.
    from sandbox.myadmin.models import SandboxUser

    SandboxUser.objects.get(username="integrator@example.com").accounts.remove(
        *SandboxUser.objects.get(username="integrator@example.com").accounts.filter(account_id="INTEG01"))
    req = provisioning_request_process(request_id=req.pk, client=myadmin)
    assert req.status == S.FAILED and "not authorized" in req.last_error
    assert not SandboxDevice.objects.exists() and req.call_started_at is None


def test_commit_then_drop_is_reconciled_to_the_minted_serial(portal_myadmin, myadmin, fault):
    fault("commit_then_drop", remaining=1, delay_ms=2500)
    req = provisioning_request_create(product_id=10032, erp_no="INTEG01")
    req = provisioning_request_process(request_id=req.pk, client=myadmin)
    assert req.status == S.UNKNOWN and req.call_started_at is not None and not req.devices.exists()
    # While unresolved, the account's lane is closed: another request waits.
    other = provisioning_request_create(product_id=10032, erp_no="INTEG01")
    assert provisioning_request_process(request_id=other.pk, client=myadmin).status == S.PENDING
    assert SandboxDevice.objects.count() == 1
    assert provisioning_reconcile(request_id=req.pk, client=myadmin) == "attached"
    req.refresh_from_db()
    assert req.status == S.SUCCEEDED
    assert req.devices.get().serial == SandboxDevice.objects.get().serial
    assert provisioning_request_process(request_id=other.pk, client=myadmin).status == S.SUCCEEDED
    assert SandboxDevice.objects.count() == 2 == Device.objects.count()


def test_error_before_execution_is_reconciled_as_not_executed_and_retried(portal_myadmin, myadmin, fault):
    fault("server_error", remaining=1)
    req = provisioning_request_create(product_id=10032, erp_no="INTEG01")
    req = provisioning_request_process(request_id=req.pk, client=myadmin)
    assert req.status == S.UNKNOWN
    assert provisioning_reconcile_due(client=myadmin) == {"not_executed": 1}
    req.refresh_from_db()
    assert req.status == S.PENDING
    req = provisioning_request_process(request_id=req.pk, client=myadmin)
    assert req.status == S.SUCCEEDED and SandboxDevice.objects.count() == 1


def test_worker_killed_after_reply_is_reconciled(portal_myadmin, myadmin, monkeypatch, settings):
    class Killed(BaseException):
        pass

    def kill(req, serials):
        raise Killed()

    monkeypatch.setattr(service, "after_vendor_reply", kill)
    req = provisioning_request_create(product_id=10032, erp_no="FLEETCO")
    with pytest.raises(Killed):
        provisioning_request_process(request_id=req.pk, client=myadmin)
    monkeypatch.setattr(service, "after_vendor_reply", None)
    req.refresh_from_db()
    assert req.status == S.IN_FLIGHT and req.call_started_at is not None
    # A redelivered task does not call again.
    provisioning_request_process(request_id=req.pk, client=myadmin)
    assert SandboxDevice.objects.count() == 1
    # Not due until the HTTP call must have ended.
    settings.VENDOR_READ_TIMEOUT = 30
    assert provisioning_reconcile(request_id=req.pk, client=myadmin) == "waiting"
    settings.VENDOR_READ_TIMEOUT = 0
    settings.VENDOR_CONNECT_TIMEOUT = 0
    assert provisioning_reconcile(request_id=req.pk, client=myadmin) == "attached"
    req.refresh_from_db()
    assert req.status == S.SUCCEEDED and req.devices.get().serial == SandboxDevice.objects.get().serial


def test_ambiguity_goes_to_staff_who_resolve_it(portal_myadmin, myadmin, fault, billing_user):
    fault("commit_then_drop", remaining=1, delay_ms=2500)
    req = provisioning_request_create(product_id=10032, erp_no="INTEG01")
    provisioning_request_process(request_id=req.pk, client=myadmin)
    # Someone mints a serial on the same account outside the portal meanwhile.
    myadmin.provision_device_to_account(10032, "INTEG01")
    assert provisioning_reconcile(request_id=req.pk, client=myadmin) == "needs_staff"
    req.refresh_from_db()
    assert req.status == S.NEEDS_STAFF and "found 2" in req.reconcile_note
    assert not Device.objects.exists()
    serials = list(SandboxDevice.objects.values_list("serial", flat=True))
    with pytest.raises(ValidationError):
        provisioning_staff_resolve(request_id=req.pk, serials=serials, actor=billing_user, client=myadmin)
    with pytest.raises(ValidationError):
        provisioning_staff_resolve(request_id=req.pk, serials=["CX0000000000"], actor=billing_user, client=myadmin)
    req = provisioning_staff_resolve(request_id=req.pk, serials=serials[:1], actor=billing_user, client=myadmin)
    assert req.status == S.SUCCEEDED and req.devices.get().serial == serials[0]


def test_sweeper_reenqueues_lost_pending(portal_myadmin, enqueued):
    req = provisioning_request_create(product_id=10032, erp_no="INTEG01")
    enqueued.clear()
    assert provisioning_sweep(stale_seconds=60) == 0
    ProvisioningRequest.objects.filter(pk=req.pk).update(updated_at=timezone.now() - timezone.timedelta(minutes=5))
    assert provisioning_sweep(stale_seconds=60) == 1
    assert enqueued == [req.pk]


def test_wrong_credentials_defer_without_writing_a_call(portal_myadmin, myadmin, enqueued):
    req = provisioning_request_create(product_id=10032, erp_no="INTEG01")
    myadmin.credential.forget()
    myadmin._password = "wrong"
    req = provisioning_request_process(request_id=req.pk, client=myadmin)
    assert req.status == S.PENDING and req.call_started_at is None and req.calls_made == 0
    assert req.attempts == 1 and "IncorrectPassword" in req.last_error
    assert not SandboxDevice.objects.exists()


def test_a_finished_request_starts_the_next_one_waiting_on_its_account(portal_myadmin, myadmin, enqueued):
    first = provisioning_request_create(product_id=10032, erp_no="ACME01", quantity=1)
    second = provisioning_request_create(product_id=10032, erp_no="ACME01", quantity=1)
    other_account = provisioning_request_create(product_id=10032, erp_no="FLEETCO", quantity=1)
    enqueued.clear()
    assert provisioning_request_process(request_id=first.pk, client=myadmin).status == S.SUCCEEDED
    # The lane of ACME01 is free: its next request goes now, not at the next sweep.
    assert enqueued == [second.pk]
    assert other_account.pk not in enqueued
