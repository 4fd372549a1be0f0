"""API: provisioning-requests (Idempotency-Key, roles, bad input) and devices (filters, contract)."""

import pytest

from devices.models import Device, ProvisioningRequest
from devices.services import provisioning_request_create, provisioning_request_process
from portal.models import VendorCall
from sandbox.myadmin.models import SandboxDevice

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/provisioning-requests/"
BODY = {"product_id": 10032, "erp_no": "INTEG01", "quantity": 2}


def test_post_with_idempotency_key(portal_myadmin, billing_user, api_client_for, enqueued):
    api = api_client_for(billing_user)
    first = api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="order-17-line-1")
    assert first.status_code == 201, first.json()
    assert first.json()["status"] == "pending" and first.json()["requested_by"] == billing_user.username
    again = api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="order-17-line-1")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    conflict = api.post(URL, {**BODY, "quantity": 3}, format="json", HTTP_IDEMPOTENCY_KEY="order-17-line-1")
    assert conflict.status_code == 409 and conflict.json()["code"] == "conflict"
    assert ProvisioningRequest.objects.count() == 1 and enqueued == [first.json()["id"]]


@pytest.mark.parametrize("body, field, text", [
    ({"product_id": 12345}, "product_id", "Unknown product id 12345"),
    ({"quantity": 0}, "quantity", "between 1 and 1000"),
    ({"quantity": 1001}, "quantity", "between 1 and 1000"),
    ({"erp_no": "OTHER01"}, "erp_no", "cannot provision to account OTHER01"),
    ({"product_id": "abc"}, "product_id", "valid integer"),
])
def test_bad_input_is_a_field_level_400_and_changes_nothing(portal_myadmin, billing_user, api_client_for, body,
                                                              field, text, enqueued):
    response = api_client_for(billing_user).post(URL, {**BODY, **body}, format="json")
    assert response.status_code == 400, response.content
    assert text in response.json()["errors"][field][0]
    assert not ProvisioningRequest.objects.exists() and not enqueued and not SandboxDevice.objects.exists()
    assert not VendorCall.objects.exclude(method="Authenticate").exists()


def test_roles(portal_myadmin, viewer, fulfilment_user, api_client_for, enqueued):
    for user in (viewer, fulfilment_user):
        assert api_client_for(user).post(URL, BODY, format="json").status_code == 403
        assert api_client_for(user).get(URL).status_code == 200
    assert not ProvisioningRequest.objects.exists()


def test_list_and_read_back_serials(portal_myadmin, myadmin, billing_user, api_client_for, django_assert_max_num_queries):
    req = provisioning_request_create(product_id=10032, erp_no="INTEG01", quantity=2)
    provisioning_request_process(request_id=req.pk, client=myadmin)
    api = api_client_for(billing_user)
    with django_assert_max_num_queries(8):
        body = api.get(URL, {"status": "succeeded", "account": "integ01"}).json()
    row, = body["results"]
    assert row["minted_count"] == 2 and sorted(row["serials"]) == sorted(req.devices.values_list("serial", flat=True))


def test_device_filters_and_search(portal_myadmin, myadmin, viewer, api_client_for):
    a = provisioning_request_create(product_id=10032, erp_no="INTEG01", quantity=2)
    b = provisioning_request_create(product_id=10184, erp_no="ACME01", quantity=1)
    for r in (a, b):
        provisioning_request_process(request_id=r.pk, client=myadmin)
    device = Device.objects.filter(erp_no="ACME01").get()
    Device.objects.filter(pk=device.pk).update(imei="356938035643809")
    api = api_client_for(viewer)
    serials = lambda **q: sorted(d["serial"] for d in api.get("/api/v1/devices/", q).json()["results"])
    assert len(serials(account="integ01")) == 2
    assert serials(product=10184) == [device.serial]
    assert serials(status="provisioned", account="ACME01") == [device.serial]
    assert serials(q="3569380") == [device.serial]
    assert serials(q=device.serial[:6].lower()) == [device.serial]
    assert serials(provisioning_request=a.pk) == sorted(a.devices.values_list("serial", flat=True))


def test_device_contract_update(portal_myadmin, myadmin, billing_user, viewer, api_client_for, monkeypatch):
    from devices.services import contracts

    monkeypatch.setattr(contracts, "_client", lambda: myadmin)
    req = provisioning_request_create(product_id=10032, erp_no="FLEETCO")
    provisioning_request_process(request_id=req.pk, client=myadmin)
    device = req.devices.get()
    url = f"/api/v1/devices/{device.pk}/contract/"
    assert api_client_for(viewer).post(url, {"comments": "x"}, format="json").status_code == 403
    api = api_client_for(billing_user)
    response = api.post(url, {"comments": "Truck 12", "promo_code": "SPRING"}, format="json")
    assert response.status_code == 200, response.json()
    assert (response.json()["comments"], response.json()["promo_code"]) == ("Truck 12", "SPRING")
    held = SandboxDevice.objects.get(serial=device.serial)
    assert (held.comments, held.promo_code) == ("Truck 12", "SPRING")
    assert device.events.filter(kind="contract").exists()

    assert api.post(url, {}, format="json").status_code == 400
    assert api.post(url, {"comments": "x" * 301}, format="json").status_code == 400
    assert api.post("/api/v1/devices/999999/contract/", {"comments": "x"}, format="json").status_code == 404
    # The device's vendor calls include the call that minted it and the contract change.
    methods = {c["method"] for c in api.get(f"/api/v1/devices/{device.pk}/vendor-calls/").json()}
    assert {"ProvisionDeviceToAccount", "UpdateDeviceContracts"} <= methods

    # MyAdmin no longer knows the serial: a clear 400, the portal's copy unchanged.
    SandboxDevice.objects.filter(serial=device.serial).delete()
    response = api.post(url, {"comments": "gone"}, format="json")
    assert response.status_code == 400 and "not found" in response.json()["detail"]
    device.refresh_from_db()
    assert device.comments == "Truck 12"
