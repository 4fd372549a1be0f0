"""Admin: provision N devices (confirmation with the count, progress), roles, bad input,
reconcile, staff resolution, and the device page's contract action and vendor calls."""

import time

import pytest
from django.urls import reverse

from devices.models import ProvisioningRequest
from devices.services import provisioning_request_create, provisioning_request_process
from sandbox.myadmin.models import SandboxDevice

pytestmark = pytest.mark.django_db(transaction=True)
ADD = "/admin/devices/provisioningrequest/add/"
FORM = {"product_id": "10032", "erp_no": "ACME01", "quantity": "25", "use_bulk": "on", "note": "PO 88"}


def test_provision_asks_for_confirmation_with_the_count(portal_myadmin, billing_user, client, enqueued):
    client.force_login(billing_user)
    page = client.get(ADD)
    assert page.status_code == 200 and b"ACME01" in page.content  # accounts come from MyAdmin
    confirm = client.post(ADD, FORM)
    assert confirm.status_code == 200
    assert b"This will mint 25 billable serials of product 10032" in confirm.content
    assert b"Yes, provision 25 devices" in confirm.content
    assert not ProvisioningRequest.objects.exists()
    done = client.post(ADD, {**FORM, "confirmed": "yes"})
    req = ProvisioningRequest.objects.get()
    assert done.status_code == 302 and done.url == reverse("admin:devices_provisioningrequest_change", args=[req.pk])
    assert (req.quantity, req.erp_no, req.use_bulk, req.requested_by) == (25, "ACME01", True, billing_user)
    assert enqueued == [req.pk]
    page = client.get(done.url).content.decode()
    progress_url = reverse("admin:devices_provisioningrequest_progress", args=[req.pk])
    # A live bar: it polls the request's progress (portal/jobs.js), no page reloads meanwhile.
    assert 'data-field="done">0</span> of <span data-field="total">25</span> minted' in page
    assert f'data-job-progress-url="{progress_url}"' in page and 'data-reload-when-finished="1"' in page
    progress = client.get(progress_url).json()
    assert progress == {**progress, "total": 25, "done": 0, "finished": False, "failed": 0, "percent": 0}


def test_progress_and_serials_after_work(portal_myadmin, myadmin, billing_user, client):
    req = provisioning_request_create(product_id=10032, erp_no="ACME01", quantity=3, use_bulk=True)
    provisioning_request_process(request_id=req.pk, client=myadmin)
    client.force_login(billing_user)
    page = client.get(reverse("admin:devices_provisioningrequest_change", args=[req.pk])).content.decode()
    assert 'data-field="done">3</span> of <span data-field="total">3</span> minted (<span data-field="percent">100' in page
    assert 'data-finished="1" data-reload-when-finished="0"' in page
    progress = client.get(reverse("admin:devices_provisioningrequest_progress", args=[req.pk])).json()
    assert (progress["done"], progress["total"], progress["finished"], progress["status"]) == (3, 3, True, "succeeded")
    assert all(d.serial in page for d in req.devices.all())
    assert "ProvisionDevicesBulk" in page  # the vendor calls


@pytest.mark.parametrize("override, message", [
    ({"quantity": "0"}, "greater than or equal to 1"),
    ({"quantity": "1001"}, "less than or equal to 1000"),
    ({"product_id": "12345"}, "Select a valid choice"),
    ({"erp_no": "OTHER01"}, "Select a valid choice"),
])
def test_bad_input_is_shown_and_nothing_is_created(portal_myadmin, billing_user, client, override, message, enqueued):
    client.force_login(billing_user)
    page = client.post(ADD, {**FORM, **override, "confirmed": "yes"})
    assert page.status_code == 200 and message in page.content.decode()
    assert not ProvisioningRequest.objects.exists() and not SandboxDevice.objects.exists() and not enqueued


def test_only_billing_may_provision(portal_myadmin, viewer, fulfilment_user, client):
    for user in (viewer, fulfilment_user):
        client.force_login(user)
        assert client.get(ADD).status_code == 403
        assert client.post(ADD, {**FORM, "confirmed": "yes"}).status_code == 403
    assert not ProvisioningRequest.objects.exists()


def test_reconcile_due_and_staff_resolution(portal_myadmin, myadmin, billing_user, client, monkeypatch):
    from devices.services import provisioning as service
    from sandbox.models import Fault

    monkeypatch.setattr(service, "_client", lambda: myadmin)
    Fault.objects.create(system="myadmin", mode="commit_then_drop", methods="ProvisionDeviceToAccount", remaining=1,
                         delay_ms=2500)
    req = provisioning_request_create(product_id=10032, erp_no="INTEG01")
    provisioning_request_process(request_id=req.pk, client=myadmin)
    time.sleep(0.6)  # let the simulator finish holding the dropped reply (in-memory SQLite is shared)
    outsider = myadmin.provision_device_to_account(10032, "INTEG01").serial_no  # makes it ambiguous
    client.force_login(billing_user)
    assert client.get("/admin/devices/provisioningrequest/").status_code == 200
    response = client.post(reverse("admin:devices_provisioningrequest_reconcile_due"), follow=True)
    assert b"needs_staff: 1" in response.content
    page = client.get(reverse("admin:devices_provisioningrequest_change", args=[req.pk]))
    assert b"Resolve it" in page.content
    minted = SandboxDevice.objects.exclude(serial=outsider).get().serial
    url = reverse("admin:devices_provisioningrequest_resolve", args=[req.pk])
    assert b"No device" not in client.post(url, {"serials": "CX0000000000"}).content  # refused, stays
    req.refresh_from_db()
    assert req.status == "needs_staff"
    done = client.post(url, {"serials": minted})
    assert done.status_code == 302
    req.refresh_from_db()
    assert req.status == "succeeded" and req.devices.get().serial == minted


def test_device_page_contract_action_and_vendor_calls(portal_myadmin, myadmin, billing_user, viewer, client, monkeypatch):
    from devices.services import contracts

    monkeypatch.setattr(contracts, "_client", lambda: myadmin)
    req = provisioning_request_create(product_id=10032, erp_no="FLEETCO")
    provisioning_request_process(request_id=req.pk, client=myadmin)
    device = req.devices.get()
    client.force_login(billing_user)
    page = client.get(reverse("admin:devices_device_change", args=[device.pk])).content.decode()
    assert "ProvisionDeviceToAccount" in page and f"Provisioning request #{req.pk}" in page
    changelist = reverse("admin:devices_device_changelist")
    form = client.post(changelist, {"action": "update_contract", "_selected_action": [device.pk]})
    assert b"Update MyAdmin contract" in form.content
    client.post(changelist, {"action": "update_contract", "_selected_action": [device.pk], "confirmed": "yes",
                             "comments": "Van 3", "group_id": "77"})
    device.refresh_from_db()
    assert (device.comments, device.group_id) == ("Van 3", "77")
    assert SandboxDevice.objects.get(serial=device.serial).comments == "Van 3"
    # A viewer does not get the action.
    client.force_login(viewer)
    client.post(changelist, {"action": "update_contract", "_selected_action": [device.pk], "confirmed": "yes",
                             "comments": "nope"})
    device.refresh_from_db()
    assert device.comments == "Van 3"
