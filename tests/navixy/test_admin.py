"""Admin: the register form follows the plugin, bad input gets field messages and no tracker,
bulk upload previews (dry run) and reports bad rows by number, actions honour roles."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from devices.models import Device, Tracker
from devices.services import trackers as svc
from integrations import navixy as nx
from portal.models import Job

from .conftest import GOOD_PHONE, fmb140_input, luhn_imei

pytestmark = pytest.mark.django_db

REGISTER = "admin:devices_tracker_register"


@pytest.fixture
def staff(client, fulfilment_user):
    client.force_login(fulfilment_user)
    return client


def test_register_form_fields_follow_the_plugin(offline_catalogue, staff):
    page = staff.get(reverse(REGISTER)).content.decode()
    assert 'name="plugin"' in page and 'name="label"' not in page
    device = staff.get(reverse(REGISTER), {"plugin": 37}).content.decode()
    assert 'name="device_id"' in device and 'name="notification_phone"' not in device
    assert 'class="required">Activation code' in device
    mobile = staff.get(reverse(REGISTER), {"plugin": 35}).content.decode()
    assert 'name="device_id"' not in mobile and 'name="phone"' not in mobile
    assert 'name="notification_phone"' in mobile and "mobile_unknown_xgps" in mobile and "telfmb140" not in mobile
    assert 'class="required">Activation code' not in mobile


def test_register_valid_and_invalid(offline_catalogue, staff, enqueued, django_capture_on_commit_callbacks):
    url = reverse(REGISTER) + "?plugin=44"
    bad = staff.post(url, {**fmb140_input(device_id="356938035643808", phone="12", apn_name=""), "group": ""})
    assert bad.status_code == 200
    page = bad.content.decode()
    assert "check digit" in page and "international" in page and "APN name is required" in page
    assert Tracker.objects.count() == 0
    with django_capture_on_commit_callbacks(execute=True):
        ok = staff.post(url, {**fmb140_input(), "group": ""})
    assert ok.status_code == 302
    tracker = Tracker.objects.get()
    assert tracker.state == "registering" and tracker.apn_password == "passwd"
    assert enqueued == [("register", tracker.pk)]
    # The change page never shows the secrets.
    change = staff.get(reverse("admin:devices_tracker_change", args=[tracker.pk])).content.decode()
    assert "passwd" not in change


def test_viewer_cannot_register(offline_catalogue, client, viewer):
    client.force_login(viewer)
    assert client.get(reverse(REGISTER), {"plugin": 44}).status_code == 403
    assert client.get(reverse("admin:devices_tracker_bulk")).status_code == 403


def _xlsx(rows):
    from openpyxl import Workbook

    wb = Workbook()
    for row in rows:
        wb.active.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_bulk_xlsx_dry_run_then_register(offline_catalogue, staff, enqueued, django_capture_on_commit_callbacks):
    content = _xlsx([
        ["Label", "Plugin", "Model", "IMEI", "Phone", "APN name", "Activation code"],
        ["Van A", 44, "telfmb140", 356938035643809, int(GOOD_PHONE), "internet", None],
        ["Van B", 37, "telfmb140", luhn_imei("35693803564390"), "4915112345670", "internet", None],
        [None, None, None, None, None, None, None],
        ["", 44, "telfmb140", luhn_imei("35693803564391"), "4915112345671", "internet", None],
        ["Van D", 44, "telfmb140", luhn_imei("35693803564392"), "4915112345672", "internet", None],
    ])
    url = reverse("admin:devices_tracker_bulk")

    def post(dry_run):
        f = SimpleUploadedFile("t.xlsx", content)
        return staff.post(url, {"file": f, **({"dry_run": "on"} if dry_run else {})})

    page = post(True).content.decode()
    assert "Dry run" in page and Tracker.objects.count() == 0
    assert "<td>3</td>" in page and "requires an activation code" in page
    assert "<td>5</td>" in page and "label" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = post(False)
    assert sorted(Tracker.objects.values_list("label", flat=True)) == ["Van A", "Van D"]
    assert len(enqueued) == 2
    assert Tracker.objects.get(label="Van A").device_id == "356938035643809"
    # The registrations run on workers: the upload leads to the job's page.
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("admin:portal_job_change", args=[job.pk])
    assert (job.kind, job.total, job.done, job.failed, job.status) == ("tracker_registration", 4, 0, 2, "running")
    assert sorted(job.failures.values_list("label", flat=True)) == ["row 3 (Van B)", "row 5"]
    assert "activation code" in job.failures.get(label="row 3 (Van B)").message

    # Each registration counts when it ends, whatever the worker that ends it.
    van_a, van_d = Tracker.objects.get(label="Van A"), Tracker.objects.get(label="Van D")
    assert svc.tracker_register(tracker_id=van_a.pk, client=FakeNavixy()) == "registered"
    job.refresh_from_db()
    assert (job.done, job.failed, job.status) == (1, 2, "running")
    assert svc.tracker_register(tracker_id=van_d.pk, client=FakeNavixy(refuse=True)) == "failed"
    job.refresh_from_db()
    assert (job.done, job.failed, job.status) == (1, 3, "partial")
    failure = job.failures.get(label="Van D")
    assert failure.url == reverse("admin:devices_tracker_change", args=[van_d.pk]) and "223" in failure.message
    # A redelivered task finds nothing to do and counts nothing.
    assert svc.tracker_register(tracker_id=van_a.pk, client=FakeNavixy()) == "skipped"
    job.refresh_from_db()
    assert (job.done, job.failed) == (1, 3)


class FakeNavixy:
    """Answers tracker/register like Navixy would: a new tracker, or a refusal (223)."""

    def __init__(self, refuse=False):
        self.refuse = refuse
        self.ids = iter(range(500, 600))

    def register(self, *, label, device_id=None, model=None, group_id=None, **_):
        if self.refuse:
            raise nx.NavixyRejected("phone number already in use", error_name="223")
        return nx.Tracker(id=next(self.ids), label=label, group_id=group_id or 0, clone=False, source_id=1,
                          device_id=device_id or "", model=model or "", blocked=False, tariff_id=None, phone=None,
                          creation_date=None, tariff_end_date=None)


def test_retry_registration_runs_as_a_job(offline_catalogue, staff, enqueued, django_capture_on_commit_callbacks):
    failed = svc.tracker_create(data=fmb140_input(), submit=False)
    registered = svc.tracker_create(data=fmb140_input(label="Van 2", device_id=luhn_imei("35693803564393"),
                                                      phone="4915112345673"), submit=False)
    busy = svc.tracker_create(data=fmb140_input(label="Van 3", device_id=luhn_imei("35693803564394"),
                                                phone="4915112345674"), submit=False)
    Tracker.objects.filter(pk=failed.pk).update(state="failed")
    Tracker.objects.filter(pk=registered.pk).update(state="registered", navixy_tracker_id=9)
    Tracker.objects.filter(pk=busy.pk).update(state="registering")
    url = reverse("admin:devices_tracker_changelist")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(url, {"action": "retry_registration",
                                    "_selected_action": [failed.pk, registered.pk, busy.pk]})
    job = Job.objects.get()
    assert response["Location"] == reverse("admin:portal_job_change", args=[job.pk])
    # The one already being registered is left alone; the registered one is refused at once.
    assert (job.total, job.done, job.failed) == (2, 0, 1) and enqueued == [("register", failed.pk)]
    refusal = job.failures.get()
    assert refusal.label == "Van 2" and "already registered" in refusal.message
    assert refusal.url == reverse("admin:devices_tracker_change", args=[registered.pk])
    assert svc.tracker_register(tracker_id=failed.pk, client=FakeNavixy()) == "registered"
    job.refresh_from_db()
    assert (job.done, job.failed, job.status) == (1, 1, "partial") and job.finished_at is not None


def test_a_flagged_registration_counts_once(offline_catalogue, enqueued, fulfilment_user):
    """A tracker flagged (its device terminated) while its registration is queued counts as
    failed on the job; the late Navixy answer does not count it again."""
    from portal.jobs import job_start

    job = job_start(kind="tracker_registration", total=1)
    device = Device.objects.create(serial="CX0000000101", product_id=10032, product_type="CustomDevice",
                                   erp_no="E1", imei="356938035643809")
    tracker = svc.tracker_create(data=fmb140_input(), job_id=job.pk)
    assert tracker.portal_device_id == device.pk

    class FlaggedMidCall(FakeNavixy):
        def register(self, **kwargs):
            # The device is terminated while the call is in flight.
            svc.trackers_flag_for_devices(device_ids=[device.pk], reason="Device terminated")
            job.refresh_from_db()
            assert (job.done, job.failed, job.status) == (0, 1, "failed")
            return super().register(**kwargs)

    assert svc.tracker_register(tracker_id=tracker.pk, client=FlaggedMidCall()) == "registered"
    tracker.refresh_from_db()
    assert tracker.state == "needs_attention" and tracker.navixy_tracker_id
    job.refresh_from_db()
    assert (job.done, job.failed) == (0, 1)


def test_bulk_rejects_unreadable_files(offline_catalogue, staff):
    url = reverse("admin:devices_tracker_bulk")
    page = staff.post(url, {"file": SimpleUploadedFile("t.xlsx", b"not a zip")}).content.decode()
    assert "Cannot read the XLSX file" in page
    page = staff.post(url, {"file": SimpleUploadedFile("t.csv", b"label,colour\nx,red\n")}).content.decode()
    assert "Unknown column" in page


def test_changelist_filters_and_actions(offline_catalogue, staff, enqueued, django_capture_on_commit_callbacks):
    failed = svc.tracker_create(data=fmb140_input(), submit=False)
    Tracker.objects.filter(pk=failed.pk).update(state="failed")
    url = reverse("admin:devices_tracker_changelist")
    for query in ({}, {"state__exact": "failed"}, {"plugin_id__exact": 44}, {"model_code": "telfmb140"}):
        assert staff.get(url, query).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        staff.post(url, {"action": "retry_registration", "_selected_action": [failed.pk]})
    failed.refresh_from_db()
    assert failed.state == "registering" and enqueued == [("register", failed.pk)]
    Tracker.objects.filter(pk=failed.pk).update(state="registered", navixy_tracker_id=5)
    staff.post(url, {"action": "resend_setup", "_selected_action": [failed.pk]})
    staff.post(url, {"action": "refresh_from_navixy", "_selected_action": [failed.pk]})
    assert ("register_retry", failed.pk) in enqueued and ("refresh", failed.pk) in enqueued
    staff.post(reverse("admin:devices_tracker_refresh_catalogues"))
    assert ("catalogue",) in enqueued


def test_edit_a_failed_tracker_and_register_again(offline_catalogue, staff, enqueued,
                                                  django_capture_on_commit_callbacks):
    tracker = svc.tracker_create(data=fmb140_input(plugin_id=37, activation_code="6045325592"), submit=False)
    Tracker.objects.filter(pk=tracker.pk).update(state="failed")
    change = staff.get(reverse("admin:devices_tracker_change", args=[tracker.pk])).content.decode()
    assert f"?edit={tracker.pk}" in change
    url = reverse(REGISTER) + f"?edit={tracker.pk}"
    page = staff.get(url).content.decode()
    assert 'value="Van 1"' in page and "6045325592" not in page
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(url, {**fmb140_input(phone="4915112345600"), "plugin_id": 37, "group": "",
                                    "apn_password": "", "activation_code": ""})
    assert response.status_code == 302
    tracker.refresh_from_db()
    assert tracker.phone == "4915112345600" and tracker.state == "registering"
    assert tracker.activation_code == "6045325592" and tracker.apn_password == "passwd"
    assert staff.get(url).status_code == 302  # no longer editable


def test_changelist_queries_do_not_grow_with_rows(offline_catalogue, staff, enqueued):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from devices.models import Device

    url = reverse("admin:devices_tracker_changelist")

    def add(n, start):
        for i in range(start, start + n):
            imei = luhn_imei(f"35693803{i:06d}")
            Device.objects.create(serial=f"CX{i:010d}", product_id=10032, product_type="CustomDevice", erp_no="E",
                                  imei=imei)
            svc.tracker_create(data=fmb140_input(label=f"T{i}", device_id=imei, phone=f"4915112{i:06d}", group=1),
                               submit=False)

    add(3, 0)
    staff.get(url)
    with CaptureQueriesContext(connection) as few:
        assert staff.get(url).status_code == 200
    add(9, 100)
    with CaptureQueriesContext(connection) as many:
        assert staff.get(url).status_code == 200
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]
