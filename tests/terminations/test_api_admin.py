"""API `terminations` / `termination-imports` and the admin pages: roles, uploads, reports."""

import io

import pytest
from django.urls import reverse
from django.utils import timezone

from devices.models import Device, Termination
from ingestion.models import DeviceRecord, TerminationImportRun, TerminationSource
from portal.models import Job
from tests.terminations.conftest import csv_bytes, serial_for, sheet_rows, xlsx_bytes


def upload(name, data):
    f = io.BytesIO(data)
    f.name = name
    return f


def test_upload_a_sheet_needs_billing_and_returns_the_run(make_devices, api_client_for, viewer, billing_user):
    make_devices(3)
    data = csv_bytes(sheet_rows([serial_for(1), serial_for(2), serial_for(50)]))
    refused = api_client_for(viewer).post("/api/v1/termination-imports/", {"file": upload("a.csv", data)},
                                          format="multipart")
    assert refused.status_code == 403
    resp = api_client_for(billing_user).post("/api/v1/termination-imports/", {"file": upload("a.csv", data)},
                                             format="multipart")
    assert resp.status_code == 201, resp.json()
    body = resp.json()
    assert (body["status"], body["applied_count"], body["unknown_count"], body["filename"]) == (
        "succeeded", 2, 1, "a.csv")
    assert body["actor"] == billing_user.username

    # Viewers read runs and reports.
    client = api_client_for(viewer)
    listing = client.get("/api/v1/termination-imports/").json()
    assert [r["id"] for r in listing["results"]] == [body["id"]]
    report = client.get(f"/api/v1/termination-imports/{body['id']}/report/").json()
    assert [(r["row_number"], r["outcome"]) for r in report["results"]] == [
        (2, "applied"), (3, "applied"), (4, "unknown_serial")]
    only_unknown = client.get(f"/api/v1/termination-imports/{body['id']}/report/?outcome=unknown_serial").json()
    assert [r["serial"] for r in only_unknown["results"]] == [serial_for(50)]
    bad_filter = client.get(f"/api/v1/termination-imports/{body['id']}/report/?outcome=nope")
    assert bad_filter.status_code == 400 and "outcome" in bad_filter.json()["errors"]
    download = client.get(f"/api/v1/termination-imports/{body['id']}/report/?download=csv")
    assert download.status_code == 200 and download["Content-Type"].startswith("text/csv")
    text = b"".join(download.streaming_content).decode()
    assert text.splitlines()[0] == "row,serial,termination_date,outcome,message,device_id"
    assert len(text.splitlines()) == 4


def test_upload_xlsx_dry_run(make_devices, api_client_for, billing_user):
    make_devices(2)
    resp = api_client_for(billing_user).post(
        "/api/v1/termination-imports/",
        {"file": upload("s.xlsx", xlsx_bytes(sheet_rows([serial_for(1), serial_for(2)]))), "dry_run": "true"},
        format="multipart")
    assert resp.status_code == 201 and resp.json()["status"] == "dry_run" and resp.json()["applied_count"] == 2
    assert not Device.objects.filter(status="terminated").exists()


@pytest.mark.parametrize("payload,field", [
    ({}, "file"),
    ({"file": upload("empty.csv", b"")}, "file"),
    ({"file": upload("x.csv", b"Name,Date\nfoo,2026-11-20\n")}, "file"),
    ({"source": 999999}, "source"),
])
def test_bad_uploads_get_a_field_level_400(db, api_client_for, billing_user, payload, field):
    resp = api_client_for(billing_user).post("/api/v1/termination-imports/", payload, format="multipart")
    assert resp.status_code == 400, resp.content
    body = resp.json()
    assert field in body["errors"] and body["detail"] and body["code"] == "invalid"
    assert not Termination.objects.exists()


def test_terminations_list_filters(make_devices, api_client_for, viewer):
    from datetime import date

    make_devices(3)
    from ingestion.services.terminations import termination_sheet_import

    termination_sheet_import(file=csv_bytes(sheet_rows([serial_for(1)], day=date(2026, 11, 1), reason="Lost")
                                            + sheet_rows([serial_for(2)], day=date(2026, 11, 20), reason="Sold")),
                             filename="f.csv")
    client = api_client_for(viewer)
    after = client.get("/api/v1/terminations/?terminated_after=2026-11-10").json()["results"]
    assert [t["serial"] for t in after] == [serial_for(2)]
    by_reason = client.get("/api/v1/terminations/?reason=lost&source=daily_sheet&account=ERP100").json()["results"]
    assert [t["serial"] for t in by_reason] == [serial_for(1)]
    assert client.post("/api/v1/terminations/", {"device": 1, "reason_id": 1}, format="json").status_code == 403


def test_manual_termination_api_over_the_sandbox(settings, sandbox_url, transactional_db, api_client_for,
                                                 billing_user):
    from django.core.cache import cache

    from sandbox.myadmin.models import SandboxAccount, SandboxDevice
    from sandbox.myadmin.seed import ensure_seeded

    settings.MYADMIN_API_URL = f"{sandbox_url}/myadmin/v2/MyAdminApi.ashx"
    cache.clear()
    ensure_seeded()
    SandboxDevice.objects.create(serial="CX2000000001", product_id=10032,
                                 account=SandboxAccount.objects.get(account_id="INTEG01"))
    device = Device.objects.create(serial="CX2000000001", product_id=10032, product_type="CustomDevice",
                                   erp_no="INTEG01", status="active", database_name="fleet_db")
    DeviceRecord.objects.create(device=device, serial=device.serial, record_type="GpsRecord",
                                recorded_at=timezone.now(), payload="{}", status="queued", fair_key=0,
                                received_at=timezone.now(), available_at=timezone.now())
    client = api_client_for(billing_user)
    reasons = client.get("/api/v1/terminations/reasons/").json()
    assert {"id": 4, "name": "Non-payment"} in reasons

    assert client.post("/api/v1/terminations/", {"serial": "CX2000000001", "reason_id": 77},
                       format="json").status_code == 400
    assert client.post("/api/v1/terminations/", {"serial": "NOPE00000000", "reason_id": 4},
                       format="json").json()["errors"] == {"serial": ["No device with serial NOPE00000000."]}
    resp = client.post("/api/v1/terminations/", {"serial": "cx2000000001", "reason_id": 4, "comments": "unpaid"},
                       format="json")
    assert resp.status_code == 201 and resp.json()["status"] == "applied", resp.json()
    assert list(DeviceRecord.objects.values_list("status", "hold_reason")) == [("held", "terminated")]
    again = client.post("/api/v1/terminations/", {"device": device.pk, "reason_id": 4}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    cancelled = client.post(f"/api/v1/terminations/{resp.json()['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    device.refresh_from_db()
    assert device.status == "active"
    # What the termination held is queued again for DIG.
    assert list(DeviceRecord.objects.values_list("status", "hold_reason")) == [("queued", "")]
    assert client.post(f"/api/v1/terminations/{resp.json()['id']}/cancel/").status_code == 409


# --- admin -------------------------------------------------------------------------------------

def test_admin_pages_and_import_a_file(make_devices, client, billing_user, viewer, eager_tasks, settings,
                                      django_capture_on_commit_callbacks, tmp_path):
    from pathlib import Path

    settings.MEDIA_ROOT = str(tmp_path)
    make_devices(2)
    client.force_login(billing_user)
    for name in ("devices_termination", "ingestion_terminationimportrun", "ingestion_terminationsource",
                 "ingestion_terminationimportrow"):
        assert client.get(reverse(f"admin:{name}_changelist")).status_code == 200

    add_url = reverse("admin:ingestion_terminationimportrun_add")
    assert client.get(add_url).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        resp = client.post(add_url, {"file": upload("sheet.csv", csv_bytes(sheet_rows([serial_for(1), "bad!"]))),
                                     "dry_run": ""})
    # A worker imported it as a job; staff land on the job's page.
    run = TerminationImportRun.objects.get()
    job = Job.objects.get()
    assert resp.status_code == 302 and resp["Location"] == reverse("admin:portal_job_change", args=[job.pk])
    assert run.status == "partial" and run.actor == billing_user and run.filename == "sheet.csv"
    assert (job.kind, job.status, job.total, job.done, job.failed) == ("termination_import", "partial", 2, 1, 1)
    failure = job.failures.get()
    assert failure.label == "row 3 (BAD!)" and "is not a serial number" in failure.message
    assert client.get(failure.url).status_code == 200 and b"BAD!" in client.get(failure.url).content
    run_url = reverse("admin:ingestion_terminationimportrun_change", args=[run.pk])
    assert job.result_links[0] == {"label": f"Import run #{run.pk} (Partial (some rows invalid))", "url": run_url}
    uploads = Path(settings.MEDIA_ROOT) / "termination-uploads"
    assert not uploads.exists() or not any(uploads.iterdir()), "the imported upload is not kept"
    job_page = client.get(resp["Location"]).content.decode()
    assert run_url in job_page and "Finished with failures" in job_page
    page = client.get(run_url)
    assert page.status_code == 200 and b"is not a serial number" in page.content
    report = client.get(reverse("admin:ingestion_terminationimportrun_report", args=[run.pk]))
    assert report.status_code == 200 and b"applied" in b"".join(report.streaming_content)
    rows = client.get(reverse("admin:ingestion_terminationimportrow_changelist") + f"?run__id__exact={run.pk}")
    assert rows.status_code == 200 and serial_for(1).encode() in rows.content

    client.force_login(viewer)
    assert client.get(add_url).status_code == 403
    assert client.get(reverse("admin:devices_termination_add")).status_code == 403
    assert client.get(reverse("admin:ingestion_terminationimportrun_report", args=[run.pk])).status_code == 200


def test_admin_import_now_is_queued_for_billing_only(db, client, billing_user, viewer, monkeypatch):
    queued = []
    monkeypatch.setattr("ingestion.admin.terminations.termination_sheet_import_now.delay_on_commit",
                        lambda **kw: queued.append(kw))
    source = TerminationSource.objects.create(name="Geotab sheet", kind="url", url="http://127.0.0.1:9/s.csv")
    url = reverse("admin:ingestion_terminationsource_changelist")
    client.force_login(viewer)
    client.post(url, {"action": "import_now", "_selected_action": [source.pk]})
    assert queued == []
    client.force_login(billing_user)
    # Importing terminates devices: the page asks first, naming the source.
    page = client.post(url, {"action": "import_now", "_selected_action": [source.pk]})
    assert page.status_code == 200 and queued == [] and not Job.objects.exists()
    assert b"mark every device it lists terminated" in page.content and b"Geotab sheet" in page.content
    resp = client.post(url, {"action": "import_now", "_selected_action": [source.pk], "portal_confirm": "yes"})
    job = Job.objects.get()
    assert queued == [{"source_id": source.pk, "actor_id": billing_user.pk, "dry_run": False, "job_id": job.pk}]
    assert resp["Location"] == reverse("admin:portal_job_change", args=[job.pk])
    assert (job.kind, job.target, job.actor) == ("termination_import", f"ingestion.TerminationSource:{source.pk}",
                                                 billing_user)
    # A dry run changes nothing: no question asked. Two sources: the job list shows both jobs.
    other = TerminationSource.objects.create(name="Folder", kind="folder", folder_path="/tmp/none")
    resp = client.post(url, {"action": "dry_run_now", "_selected_action": [source.pk, other.pk]})
    assert resp.status_code == 302 and "/portal/job/?id__in=" in resp["Location"]
    assert [q["dry_run"] for q in queued[1:]] == [True, True]


def test_admin_manual_termination_form(make_devices, client, billing_user, monkeypatch):
    [device] = make_devices(1)
    monkeypatch.setattr("devices.admin.terminations.termination_reasons", lambda: [(1, "Customer cancelled")])
    done = []

    def fake_terminate(*, device, reason_id, comments, actor):
        done.append((device.serial, reason_id, comments, actor))
        return Termination.objects.create(device=device, serial=device.serial, source="manual", status="applied",
                                          reason_id=reason_id, actor=actor)

    monkeypatch.setattr("devices.admin.terminations.device_terminate", fake_terminate)
    client.force_login(billing_user)
    url = reverse("admin:devices_termination_add")
    page = client.get(url)
    assert page.status_code == 200 and b"Customer cancelled" in page.content
    bad = client.post(url, {"device_serial": "CX0000009999", "reason": "1"})
    assert bad.status_code == 200 and b"No device with serial CX0000009999" in bad.content
    # Terminating stops billing: a page asks first, naming the device and what it stops.
    data = {"device_serial": device.serial.lower(), "reason": "1", "comments": "bye", "_save": "Save"}
    page = client.post(url, data)
    html = page.content.decode()
    assert page.status_code == 200 and done == [] and not Termination.objects.exists()
    assert f"terminate the billing of device {device.serial} in MyAdmin" in html and "Customer cancelled" in html
    assert 'name="comments" value="bye"' in html and 'name="portal_confirm" value="yes"' in html
    resp = client.post(url, {**data, "portal_confirm": "yes"})
    assert resp.status_code == 302
    assert done == [(device.serial, 1, "bye", billing_user)]


def test_admin_cancel_termination_asks_first(make_devices, client, billing_user, monkeypatch):
    [device] = make_devices(1)
    termination = Termination.objects.create(device=device, serial=device.serial, source="manual", status="applied")
    cancelled = []
    monkeypatch.setattr("devices.admin.terminations.termination_cancel",
                        lambda termination, actor: cancelled.append(termination.pk))
    client.force_login(billing_user)
    url = reverse("admin:devices_termination_changelist")
    data = {"action": "cancel_terminations", "_selected_action": [termination.pk]}
    page = client.post(url, data)
    assert page.status_code == 200 and cancelled == []
    assert b"Geotab bills those devices again" in page.content
    client.post(url, {**data, "portal_confirm": "yes"})
    assert cancelled == [termination.pk]
