"""REST `trackers`: roles, field-level errors with no call made, write-only secrets, actions,
filters, bulk upload and pinned query counts."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from devices.models import NavixyGroup, Tracker
from devices.services import trackers as svc
from portal.models import VendorCall

from .conftest import GOOD_PHONE, fmb140_input, luhn_imei

pytestmark = pytest.mark.django_db
URL = "/api/v1/trackers/"


def test_roles(offline_catalogue, enqueued, api_client_for, viewer, billing_user, fulfilment_user,
               django_capture_on_commit_callbacks):
    assert api_client_for(viewer).get(URL).status_code == 200
    assert api_client_for(viewer).post(URL, fmb140_input(), format="json").status_code == 403
    assert api_client_for(billing_user).post(URL, fmb140_input(), format="json").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client_for(fulfilment_user).post(URL, fmb140_input(group=1), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["state"] == "registering" and body["group"] == 1 and body["device_id"] == "356938035643809"
    assert "apn_password" not in body and "activation_code" not in body
    assert enqueued == [("register", body["id"])]


def test_bad_input_is_field_level_and_calls_nothing(offline_catalogue, enqueued, api_client_for, fulfilment_user):
    response = api_client_for(fulfilment_user).post(
        URL, fmb140_input(label="", device_id="356938035643808", phone="12", apn_name="a" * 41, plugin_id=37),
        format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert set(body["errors"]) == {"label", "device_id", "phone", "apn_name", "activation_code"}
    assert Tracker.objects.count() == 0 and VendorCall.objects.count() == 0 and enqueued == []


def test_wrong_types_are_400_not_500(offline_catalogue, enqueued, api_client_for, fulfilment_user):
    client = api_client_for(fulfilment_user)
    for payload in ({"label": "x", "plugin_id": "abc", "model_code": "telfmb140"}, {"label": ["x"]}, []):
        response = client.post(URL, payload, format="json")
        assert response.status_code == 400, response.content


def _registered(n):
    group = NavixyGroup.objects.get()
    out = []
    for i in range(n):
        tracker = svc.tracker_create(data=fmb140_input(label=f"Van {i}", device_id=luhn_imei(f"3569380356{i:04d}"),
                                                       phone=f"49151123456{i:02d}", group=group.navixy_id))
        Tracker.objects.filter(pk=tracker.pk).update(state="registered", navixy_tracker_id=1000 + i)
        out.append(tracker)
    return out


def test_list_filters_and_query_count(offline_catalogue, enqueued, api_client_for, viewer,
                                      django_assert_max_num_queries):
    trackers = _registered(6)
    Tracker.objects.filter(pk=trackers[0].pk).update(state="failed")
    client = api_client_for(viewer)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(URL)  # warm the process-wide caches
    # Token+user, roles, one page query with the group joined (a fourth, process-level lookup
    # may appear depending on test order): at most 4, and the same for 6 and 12 rows.
    with django_assert_max_num_queries(4), CaptureQueriesContext(connection) as six:
        response = client.get(URL)
    assert len(response.json()["results"]) == 6
    for i in range(6):
        svc.tracker_create(data=fmb140_input(label=f"More {i}", device_id=luhn_imei(f"3569380357{i:04d}"),
                                             phone=f"49151123457{i:02d}"), submit=False)
    with CaptureQueriesContext(connection) as twelve:
        response = client.get(URL)
    assert len(response.json()["results"]) == 12
    assert len(twelve) == len(six)
    assert [t["label"] for t in client.get(URL, {"state": "failed"}).json()["results"]] == ["Van 0"]
    assert len(client.get(URL, {"plugin_id": 44, "model_code": "telfmb140", "group": 1}).json()["results"]) == 6
    assert client.get(URL, {"group": 2}).json()["results"] == []


def test_actions(offline_catalogue, enqueued, api_client_for, fulfilment_user, viewer):
    registered = _registered(1)[0]
    client = api_client_for(fulfilment_user)
    assert client.post(f"{URL}{registered.pk}/register/").status_code == 409
    response = client.post(f"{URL}{registered.pk}/register_retry/", {"apn_name": "internet2"}, format="json")
    assert response.status_code == 202
    assert client.post(f"{URL}{registered.pk}/register_retry/", {"apn_name": "a" * 41}, format="json").status_code == 400
    assert client.post(f"{URL}{registered.pk}/refresh/").status_code == 202
    assert ("register_retry", registered.pk) in enqueued and ("refresh", registered.pk) in enqueued
    failed = svc.tracker_create(data=fmb140_input(label="F", device_id=luhn_imei("35693803569999"),
                                                  phone="4915112345611"), submit=False)
    Tracker.objects.filter(pk=failed.pk).update(state="failed")
    response = client.post(f"{URL}{failed.pk}/register/")
    assert response.status_code == 202 and response.json()["state"] == "registering"
    assert client.post(f"{URL}{failed.pk}/register_retry/").status_code == 409
    assert api_client_for(viewer).post(f"{URL}{failed.pk}/register/").status_code == 403


def test_bulk_upload_dry_run_then_register(offline_catalogue, enqueued, api_client_for, fulfilment_user,
                                           django_capture_on_commit_callbacks):
    csv_text = (
        "label,plugin_id,model_code,device_id,phone,apn_name,notification_phone\n"
        f"Van A,44,telfmb140,356938035643809,{GOOD_PHONE},internet,\n"
        "Van B,44,telfmb140,356938035643808,4915112345670,internet,\n"
        f"Andrew,35,mobile_unknown_xgps,,,,{GOOD_PHONE}\n"
        f"Van C,44,telfmb140,356938035643809,4915112345671,internet,\n"
    )
    client = api_client_for(fulfilment_user)

    def upload(dry_run):
        f = SimpleUploadedFile("trackers.csv", csv_text.encode(), content_type="text/csv")
        return client.post(f"{URL}bulk/", {"file": f, "dry_run": dry_run}, format="multipart")

    body = upload(True).json()
    assert (body["ok"], body["failed"], body["job"]) == (2, 2, None)
    bad = {r["row"]: r["errors"] for r in body["results"] if not r["ok"]}
    assert set(bad) == {3, 5}
    assert "check digit" in bad[3]["device_id"][0] and "row 2" in bad[5]["device_id"][0]
    assert Tracker.objects.count() == 0
    with django_capture_on_commit_callbacks(execute=True):
        body = upload(False).json()
    assert (body["ok"], body["failed"]) == (2, 2)
    assert Tracker.objects.count() == 2 and len(enqueued) == 2
    # The registrations end on workers: the job counts them (bad rows failed already).
    job = client.get(body["job_url"]).json()
    assert body["job_url"].endswith(f"/api/v1/jobs/{body['job']}/")
    assert (job["kind"], job["total"], job["done"], job["failed"], job["finished"]) == (
        "tracker_registration", 4, 0, 2, False)
    assert sorted(f["label"] for f in job["failures"]) == ["row 3 (Van B)", "row 5 (Van C)"]
    f = SimpleUploadedFile("trackers.txt", b"x", content_type="text/plain")
    response = client.post(f"{URL}bulk/", {"file": f}, format="multipart")
    assert response.status_code == 400 and "csv" in response.json()["errors"]["file"][0]


def test_patch_fixes_a_failed_tracker(offline_catalogue, enqueued, api_client_for, fulfilment_user):
    tracker = svc.tracker_create(data=fmb140_input(), submit=False)
    Tracker.objects.filter(pk=tracker.pk).update(state="failed", field_errors={"phone": ["in use"]})
    client = api_client_for(fulfilment_user)
    assert client.patch(f"{URL}{tracker.pk}/", {"phone": "12"}, format="json").status_code == 400
    response = client.patch(f"{URL}{tracker.pk}/", {"phone": "4915112345600"}, format="json")
    assert response.status_code == 200 and response.json()["phone"] == "4915112345600"
    tracker.refresh_from_db()
    assert tracker.apn_password == "passwd" and tracker.field_errors == {}
    Tracker.objects.filter(pk=tracker.pk).update(state="registered")
    assert client.patch(f"{URL}{tracker.pk}/", {"phone": "4915112345601"}, format="json").status_code == 409
