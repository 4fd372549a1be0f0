"""Registration services against the simulator over real HTTP: the happy paths, the
unknown-outcome discipline (reconcile before resending; 224 → fetch and attach), rejections
mapped to fields, retries, refresh, register_retry and the termination hook."""

import pytest
import requests

from devices.models import Device, NavixyGroup, NavixyModel, NavixyPlugin, Tracker
from devices.services import trackers as svc
from integrations.base import MemoryRateLimiter, MemoryTokenStore
from integrations.navixy import NavixyClient
from portal.models import VendorCall

from .conftest import (
    GOOD_IMEI,
    GOOD_PHONE,
    SIM_LOGIN,
    SIM_PASSWORD,
    fmb140_input,
    luhn_imei,
)

# Flush only the tables these tests touch (cheaper than a full flush after each test).
pytestmark = pytest.mark.django_db(transaction=True, available_apps=[
    "django.contrib.contenttypes", "django.contrib.auth", "portal", "devices", "sandbox", "sandbox.navixy"])
State = Tracker.State


def sim_trackers(url, label=None):
    client = NavixyClient(url, login=SIM_LOGIN, password=SIM_PASSWORD, token_store=MemoryTokenStore(),
                          rate_limiter=MemoryRateLimiter())
    return client.tracker_list(labels=[label] if label else None)


def register(tracker, *, rounds=6):
    outcome = None
    for _ in range(rounds):
        outcome = svc.tracker_register(tracker_id=tracker.pk)
        if outcome not in (svc.Outcome.RETRY, svc.Outcome.UNKNOWN):
            break
    tracker.refresh_from_db()
    return outcome


def test_catalogue_refresh_caches_and_marks_vanished(catalogue):
    assert catalogue == {"models": 7, "plugins": 4, "groups": 1}
    assert NavixyModel.objects.get(code="telfmb140").id_type == "imei"
    assert NavixyPlugin.objects.filter(available=True).count() == 4
    NavixyGroup.objects.create(navixy_id=999, title="Gone")
    svc.navixy_catalogue_refresh()
    assert NavixyGroup.objects.get(navixy_id=999).present is False


def test_fmb140_plugin_44_registers_and_links_device(catalogue, enqueued, navixy_api_url):
    device = Device.objects.create(serial="CX0000000001", product_id=10032, product_type="CustomDevice",
                                   erp_no="E1", imei=GOOD_IMEI)
    group = NavixyGroup.objects.get()
    tracker = svc.tracker_create(data=fmb140_input(group=group.navixy_id))
    assert tracker.state == State.REGISTERING and enqueued == [("register", tracker.pk)]
    assert register(tracker) == svc.Outcome.REGISTERED
    assert tracker.state == State.REGISTERED
    assert tracker.navixy_tracker_id and tracker.source_id and tracker.tariff_id
    assert tracker.creation_date and tracker.tariff_end_date
    assert tracker.portal_device == device and tracker.group == group
    [remote] = sim_trackers(navixy_api_url, "Van 1")
    assert remote.id == tracker.navixy_tracker_id and remote.group_id == group.navixy_id
    assert list(tracker.events.values_list("to_state", flat=True))[:2] == ["registered", "registering"]
    # Running the task again changes nothing and calls nothing.
    calls = VendorCall.objects.count()
    assert svc.tracker_register(tracker_id=tracker.pk) == svc.Outcome.SKIPPED
    assert VendorCall.objects.count() == calls


def test_plugin_37_consumes_and_forgets_activation_code(catalogue, enqueued):
    tracker = svc.tracker_create(data=fmb140_input(plugin_id=37, activation_code="6045325592"))
    assert register(tracker) == svc.Outcome.REGISTERED
    assert tracker.activation_code == "" and tracker.activation_code_used_at is not None
    # The same code again is refused by Navixy (227) and shown on the field.
    other = svc.tracker_create(data=fmb140_input(label="Van 2", plugin_id=37, activation_code="6045325592",
                                                 device_id=luhn_imei("35693803564381"), phone="4915112345679"))
    assert register(other) == State.FAILED
    assert other.state == State.FAILED and other.last_error_code == 227
    assert "activation_code" in other.field_errors


@pytest.mark.parametrize("plugin_id,code", [(35, ""), (68, "7000000005")])
def test_mobile_app_with_notification_phone(catalogue, enqueued, plugin_id, code):
    tracker = svc.tracker_create(data={"label": "Andrew", "plugin_id": plugin_id, "model_code": "mobile_unknown_xgps",
                                       "notification_phone": GOOD_PHONE, "activation_code": code})
    assert register(tracker) == svc.Outcome.REGISTERED
    assert tracker.device_id and tracker.device_id.startswith("1") and len(tracker.device_id) == 12
    assert tracker.portal_device is None


def test_224_for_a_tracker_the_portal_created_is_fetched_and_attached(catalogue, enqueued, navixy_api_url):
    tracker = svc.tracker_create(data=fmb140_input())
    # An earlier call executed on Navixy but its answer never arrived (and the intent was lost).
    remote = NavixyClient(navixy_api_url, login=SIM_LOGIN, password=SIM_PASSWORD).register(
        label="Van 1", group_id=0, plugin_id=44, model="telfmb140", device_id=GOOD_IMEI, phone=GOOD_PHONE,
        apn_name="internet")
    assert register(tracker) == svc.Outcome.REGISTERED
    assert tracker.navixy_tracker_id == remote.id
    assert len(sim_trackers(navixy_api_url)) == 1
    assert tracker.events.filter(message__contains="224").exists()


def test_224_for_someone_elses_device_fails_on_the_field(catalogue, enqueued, navixy_api_url):
    NavixyClient(navixy_api_url, login=SIM_LOGIN, password=SIM_PASSWORD).register(
        label="Customer unit", group_id=0, plugin_id=44, model="telfmb140", device_id=GOOD_IMEI,
        phone="4915112345670", apn_name="internet")
    tracker = svc.tracker_create(data=fmb140_input())
    assert register(tracker) == State.FAILED
    assert tracker.last_error_code == 224 and "device_id" in tracker.field_errors
    assert tracker.navixy_tracker_id is None


def test_dropped_answer_is_reconciled_not_resent(catalogue, enqueued, navixy_api_url, fault):
    fault("commit_then_drop", "tracker/register", remaining=1, delay_ms=3000)
    tracker = svc.tracker_create(data={"label": "Phone of Ann", "plugin_id": 35, "model_code": "mobile_unknown_xgps"})
    assert svc.tracker_register(tracker_id=tracker.pk) == svc.Outcome.UNKNOWN
    tracker.refresh_from_db()
    assert tracker.state == State.REGISTERING and tracker.register_call_started_at is not None
    # The next attempt looks the tracker up first: a mobile app has no device ID to collide on,
    # so resending would have created a second unit.
    assert svc.tracker_register(tracker_id=tracker.pk) == svc.Outcome.REGISTERED
    assert len(sim_trackers(navixy_api_url, "Phone of Ann")) == 1
    methods = list(VendorCall.objects.filter(target=f"devices.Tracker:{tracker.pk}")
                   .order_by("id").values_list("method", flat=True))
    assert methods == ["tracker/register", "tracker/list"]


def test_not_executed_retries_then_fails_and_unknown_ends_in_attention(catalogue, enqueued, fault, monkeypatch):
    from integrations import navixy as nx

    monkeypatch.setattr(nx, "backoff_delay", lambda *args, **kwargs: 0.0)  # the client's own resends
    fault("outage", "tracker/register")
    tracker = svc.tracker_create(data=fmb140_input())
    assert svc.tracker_register(tracker_id=tracker.pk) == svc.Outcome.RETRY
    tracker.refresh_from_db()
    assert tracker.register_call_started_at is None and tracker.lease_until is None
    svc.tracker_register_give_up(tracker_id=tracker.pk, outcome=svc.Outcome.RETRY)
    tracker.refresh_from_db()
    assert tracker.state == State.FAILED
    svc.tracker_submit(tracker=tracker)
    Tracker.objects.filter(pk=tracker.pk).update(register_call_started_at="2026-01-01T00:00:00Z")
    svc.tracker_register_give_up(tracker_id=tracker.pk, outcome=svc.Outcome.UNKNOWN)
    tracker.refresh_from_db()
    assert tracker.state == State.NEEDS_ATTENTION


def test_lease_keeps_a_second_worker_out(catalogue, enqueued):
    from django.utils import timezone

    tracker = svc.tracker_create(data=fmb140_input())
    Tracker.objects.filter(pk=tracker.pk).update(lease_until=timezone.now() + timezone.timedelta(minutes=1))
    assert svc.tracker_register(tracker_id=tracker.pk) == svc.Outcome.SKIPPED
    assert not VendorCall.objects.filter(method="tracker/register").exists()
    # That worker was killed after committing its intent, before sending: once the lease has
    # run out, the next attempt looks the tracker up, finds nothing, and registers it once.
    Tracker.objects.filter(pk=tracker.pk).update(lease_until=timezone.now() - timezone.timedelta(seconds=1),
                                                 register_call_started_at=timezone.now())
    assert svc.tracker_register(tracker_id=tracker.pk) == svc.Outcome.REGISTERED
    methods = list(VendorCall.objects.filter(target=f"devices.Tracker:{tracker.pk}")
                   .order_by("id").values_list("method", flat=True))
    assert methods == ["tracker/list", "tracker/register"]


def test_register_retry_and_refresh(catalogue, enqueued, navixy_api_url):
    tracker = svc.tracker_create(data=fmb140_input())
    register(tracker)
    assert svc.tracker_register_retry(tracker_id=tracker.pk, apn_name="internet.new") == "ok"
    tracker.refresh_from_db()
    assert tracker.apn_name == "internet.new"
    # A second resend within 120 s is refused by Navixy (264) and recorded, state unchanged.
    assert svc.tracker_register_retry(tracker_id=tracker.pk) == "error"
    tracker.refresh_from_db()
    assert tracker.state == State.REGISTERED and "Resend" in tracker.state_message
    assert svc.tracker_refresh(tracker_id=tracker.pk) == "ok"
    unregistered = svc.tracker_create(data=fmb140_input(label="X", device_id=luhn_imei("35693803564382"),
                                                        phone="4915112345677"), submit=False)
    with pytest.raises(svc.TrackerError):
        svc.tracker_register_retry(tracker_id=unregistered.pk)


def test_refresh_of_a_tracker_navixy_lost_needs_attention(catalogue, enqueued):
    tracker = svc.tracker_create(data=fmb140_input())
    register(tracker)
    Tracker.objects.filter(pk=tracker.pk).update(navixy_tracker_id=987654)
    assert svc.tracker_refresh(tracker_id=tracker.pk) == "missing"
    tracker.refresh_from_db()
    assert tracker.state == State.NEEDS_ATTENTION


def test_flag_for_devices(offline_catalogue, enqueued):
    device = Device.objects.create(serial="CX0000000002", product_id=10032, product_type="CustomDevice",
                                   erp_no="E1", imei=GOOD_IMEI)
    tracker = svc.tracker_create(data=fmb140_input(), submit=False)
    assert tracker.portal_device == device
    assert svc.trackers_flag_for_devices(device_ids=[device.pk], reason="Billing terminated") == 1
    tracker.refresh_from_db()
    assert tracker.state == State.NEEDS_ATTENTION and tracker.state_message == "Billing terminated"
    assert tracker.events.filter(kind="flagged").count() == 1
    # Idempotent for the same reason.
    assert svc.trackers_flag_for_devices(device_ids=[device.pk], reason="Billing terminated") == 0


def test_sweeper_requeues_lost_registrations(offline_catalogue, enqueued):
    from django.utils import timezone

    tracker = svc.tracker_create(data=fmb140_input())
    enqueued.clear()
    Tracker.objects.filter(pk=tracker.pk).update(updated_at=timezone.now() - timezone.timedelta(minutes=10))
    assert svc.trackers_sweep() == [tracker.pk]
    assert enqueued == [("register", tracker.pk)]


def test_sandbox_seeds_itself_on_an_empty_database(navixy_api_url):
    r = requests.post(f"{navixy_api_url}/user/auth", json={"login": SIM_LOGIN, "password": SIM_PASSWORD}, timeout=5)
    assert r.json()["success"] is True
