"""Manual termination through MyAdmin (the live sandbox over real HTTP): intent before the call,
refusals, unknown outcomes reconciled (never retried), cancellation; and the sandbox sheet."""

import pytest
from django.core.cache import cache

from devices.models import Device, DeviceEvent, Termination
from devices.services.terminations import (
    TerminationConflict,
    TerminationError,
    device_terminate,
    termination_cancel,
    termination_reasons,
    termination_reconcile_pending,
)
from ingestion.models import TerminationImportRun, TerminationSource
from ingestion.services.terminations import termination_sheet_import
from portal.models import VendorCall


@pytest.fixture
def myadmin(settings, sandbox_url, transactional_db):
    """Point the portal's MyAdmin client at the live sandbox; seed the simulator."""
    from sandbox.myadmin.seed import ensure_seeded

    settings.MYADMIN_API_URL = f"{sandbox_url}/myadmin/v2/MyAdminApi.ashx"
    cache.clear()
    ensure_seeded()
    return sandbox_url


@pytest.fixture
def pair(myadmin):
    """pair(serial) → a portal Device and the simulator's device with the same serial."""
    from sandbox.myadmin.models import SandboxAccount, SandboxDevice

    def make(serial="CX1000000001", *, status=Device.Status.ACTIVE):
        account = SandboxAccount.objects.get(account_id="INTEG01")
        remote = SandboxDevice.objects.create(serial=serial, product_id=10032, account=account, imei="351000000000001")
        device = Device.objects.create(serial=serial, product_id=10032, product_type="CustomDevice",
                                       erp_no="INTEG01", status=status)
        return device, remote

    return make


@pytest.fixture
def fault():
    from sandbox.models import Fault

    def make(mode, methods, **fields):
        return Fault.objects.create(system="myadmin", mode=mode, methods=methods, **fields)

    return make


def calls(method):
    return VendorCall.objects.filter(system="myadmin", method=method)


def test_reasons_come_from_myadmin(myadmin):
    reasons = termination_reasons()
    assert (2, "Device lost or stolen") in reasons and len(reasons) == 6


def test_terminate_applies_at_myadmin_and_in_the_portal(pair, billing_user):
    device, remote = pair()
    t = device_terminate(device=device, reason_id=5, comments="sold with the truck", actor=billing_user)

    assert t.status == Termination.Status.APPLIED and t.source == Termination.Source.MANUAL
    assert (t.reason_name, t.previous_status, t.actor, t.account) == ("Vehicle sold", "active", billing_user, "INTEG01")
    device.refresh_from_db()
    remote.refresh_from_db()
    assert device.status == Device.Status.TERMINATED
    assert remote.terminated_at is not None and remote.termination_reason_id == 5
    assert remote.termination_comments == "sold with the truck"
    [call] = calls("TerminateDeviceBilling")
    assert call.outcome == "ok" and call.target == f"devices.Termination:{t.pk}"
    kinds = list(DeviceEvent.objects.filter(device=device).order_by("id").values_list("kind", "actor"))
    assert kinds == [("termination_requested", billing_user.pk), ("status", billing_user.pk)]


def test_refused_by_myadmin_fails_and_changes_nothing(pair):
    from django.utils import timezone

    device, remote = pair()
    remote.terminated_at = timezone.now()
    remote.save()
    t = device_terminate(device=device, reason_id=1)
    assert t.status == Termination.Status.FAILED and "MyAdmin refused" in t.error and "already terminated" in t.error
    device.refresh_from_db()
    assert device.status == Device.Status.ACTIVE
    # A failed termination does not block a new attempt.
    assert Termination.objects.filter(serial=device.serial, status__in=Termination.LIVE_STATUSES).count() == 0


def test_bad_requests_are_refused_before_any_call(pair):
    device, _ = pair()
    with pytest.raises(TerminationError, match="Unknown termination reason 99"):
        device_terminate(device=device, reason_id=99)
    device_terminate(device=device, reason_id=1)
    with pytest.raises(TerminationConflict, match="already terminated"):
        device_terminate(device=device, reason_id=1)
    assert calls("TerminateDeviceBilling").count() == 1


@pytest.mark.parametrize("mode", ["commit_then_drop", "server_error_after_commit"])
def test_executed_but_answer_lost_is_reconciled_not_retried(pair, fault, mode):
    device, remote = pair()
    fault(mode, "TerminateDeviceBilling", remaining=1, delay_ms=2500)
    t = device_terminate(device=device, reason_id=2)

    assert t.status == Termination.Status.APPLIED, t.error
    assert calls("TerminateDeviceBilling").count() == 1  # one attempt, never re-sent
    assert calls("TerminateDeviceBilling").get().outcome == "unknown"
    assert calls("GetDeviceContracts").filter(target=f"devices.Termination:{t.pk}").exists()
    device.refresh_from_db()
    assert device.status == Device.Status.TERMINATED


def test_unknown_outcome_that_did_not_execute_becomes_failed(pair, fault):
    device, remote = pair()
    fault("server_error", "TerminateDeviceBilling", remaining=1)
    t = device_terminate(device=device, reason_id=2)
    assert t.status == Termination.Status.FAILED and "did not take effect" in t.error
    assert calls("TerminateDeviceBilling").count() == 1
    remote.refresh_from_db()
    assert remote.terminated_at is None
    device.refresh_from_db()
    assert device.status == Device.Status.ACTIVE


def test_pending_left_by_a_dead_worker_is_reconciled_by_the_sweeper(pair):
    device, remote = pair()
    from django.utils import timezone

    # The worker died after MyAdmin executed and before the portal recorded the answer.
    remote.terminated_at, remote.termination_reason_id = timezone.now(), 3
    remote.save()
    t = Termination.objects.create(device=device, serial=device.serial, source="manual", status="pending",
                                   reason_id=3, previous_status="active")
    Termination.objects.filter(pk=t.pk).update(updated_at=timezone.now() - timezone.timedelta(minutes=10))
    assert termination_reconcile_pending() == 1
    t.refresh_from_db()
    assert t.status == Termination.Status.APPLIED
    assert not calls("TerminateDeviceBilling").exists()


def test_cancel_same_day_restores_the_device(pair, billing_user):
    device, remote = pair(status=Device.Status.SHIPPED)
    t = device_terminate(device=device, reason_id=6)
    t = termination_cancel(termination=t, actor=billing_user)
    assert t.status == Termination.Status.CANCELLED
    device.refresh_from_db()
    remote.refresh_from_db()
    assert device.status == Device.Status.SHIPPED and device.terminated_at is None
    assert remote.terminated_at is None
    assert device.events.filter(kind="status", to_status="shipped").exists()
    # Terminating again afterwards is allowed.
    assert device_terminate(device=device, reason_id=6).status == Termination.Status.APPLIED


def test_cancel_refused_where_myadmin_does_not_allow_it(pair):
    from django.utils import timezone

    device, remote = pair()
    t = device_terminate(device=device, reason_id=6)
    remote.terminated_at = timezone.now() - timezone.timedelta(days=2)  # no longer pending at MyAdmin
    remote.save()
    with pytest.raises(TerminationError, match="does not allow cancelling"):
        termination_cancel(termination=t)
    t.refresh_from_db()
    assert t.status == Termination.Status.APPLIED


def test_sheet_terminations_cannot_be_cancelled_here(make_devices):
    from tests.terminations.conftest import csv_bytes, serial_for, sheet_rows

    make_devices(1)
    termination_sheet_import(file=csv_bytes(sheet_rows([serial_for(1)])), filename="s.csv")
    with pytest.raises(TerminationError, match="Only terminations made from the portal"):
        termination_cancel(termination=Termination.objects.get())


@pytest.mark.parametrize("extension", ["csv", "xlsx"])
def test_sandbox_daily_sheet_closes_the_loop(pair, extension):
    """Partner terminates in (simulated) MyAdmin → the daily sheet lists it → the import applies it."""
    from django.utils import timezone

    device, remote = pair()
    pair("CX1000000002")
    remote.terminated_at = timezone.now() - timezone.timedelta(days=1)
    remote.termination_reason_id = 4
    remote.save()
    from sandbox.myadmin.models import SandboxAccount, SandboxDevice

    SandboxDevice.objects.create(serial="CX1000000099", product_id=10032, terminated_at=remote.terminated_at,
                                 account=SandboxAccount.objects.get(account_id="INTEG01"))
    from django.conf import settings

    source = TerminationSource.objects.create(
        name="Sandbox", kind="url",
        url=settings.MYADMIN_API_URL.replace("v2/MyAdminApi.ashx", f"termination-sheet.{extension}"))
    run = termination_sheet_import(source=source)
    assert run.status == TerminationImportRun.Status.SUCCEEDED, run.error
    assert run.filename.startswith("termination-summary-") and run.filename.endswith(extension)
    assert (run.applied_count, run.unknown_count) == (1, 1)
    t = Termination.objects.get(serial=device.serial)
    assert (t.reason_name, t.account, t.source) == ("Non-payment", "INTEG01", "daily_sheet")
    device.refresh_from_db()
    assert device.status == Device.Status.TERMINATED
    # Fetched again: the same bytes are a no-op run; a regenerated XLSX may differ in its metadata
    # (creation time → new SHA-256), then its rows come back "already terminated". Nothing changes.
    again = termination_sheet_import(source=source)
    if again.status != TerminationImportRun.Status.DUPLICATE:
        assert extension == "xlsx"
        assert (again.status, again.applied_count, again.already_count) == ("succeeded", 0, 1)
    assert Termination.objects.filter(serial=device.serial).count() == 1


def test_unreachable_url_and_http_errors_fail_clearly(myadmin, fault):
    bad = TerminationSource.objects.create(name="404", kind="url", url=f"{myadmin}/myadmin/termination-sheet.pdf")
    run = termination_sheet_import(source=bad)
    assert run.status == TerminationImportRun.Status.FAILED and "HTTP 404" in run.error
    down = TerminationSource.objects.create(name="Down", kind="url", url=f"{myadmin}/myadmin/termination-sheet.csv")
    fault("outage", "TerminationSheet", remaining=1)
    run = termination_sheet_import(source=down)
    assert run.status == TerminationImportRun.Status.FAILED and "HTTP 503" in run.error
    quiet = termination_sheet_import(source=down)  # no terminations in the simulator: header only
    assert (quiet.status, quiet.total_rows) == (TerminationImportRun.Status.SUCCEEDED, 0)


def test_reconciliation_applies_terminations_made_in_myadmin(pair):
    from django.utils import timezone

    from devices.services.terminations import terminations_reconcile_from_myadmin

    device, remote = pair()
    other, _ = pair("CX1000000002")
    remote.terminated_at, remote.termination_reason_id = timezone.now() - timezone.timedelta(days=3), 5
    remote.save()
    assert terminations_reconcile_from_myadmin(accounts=["INTEG01"]) == 1
    t = Termination.objects.get(serial=device.serial)
    assert (t.source, t.status, t.terminated_on) == ("reconciled", "applied", remote.terminated_at.date())
    device.refresh_from_db()
    other.refresh_from_db()
    assert device.status == Device.Status.TERMINATED and other.status == Device.Status.ACTIVE
    assert terminations_reconcile_from_myadmin() == 0  # idempotent
