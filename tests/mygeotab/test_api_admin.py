"""REST and admin surfaces: roles, write-only credentials, clear 4xx, the add-devices flow."""

import pytest
from django.urls import reverse

from devices.models import CustomerDatabase
from portal.models import VendorCall
from sandbox.mygeotab.models import SandboxAsset
from tests.mygeotab.conftest import DEMO, OTHER

URL = "/api/v1/customer-databases/"


@pytest.mark.django_db
def test_billing_creates_database_password_never_returned(api_client_for, billing_user):
    api = api_client_for(billing_user)
    response = api.post(URL, {"database": "acme_fleet", "username": "svc@acme", "password": "S3cret-pw",
                              "erp_numbers": ["ACME01", "ACME02"], "server": "my3.geotab.com"}, format="json")
    assert response.status_code == 201, response.content
    assert "password" not in response.json() and response.json()["erp_numbers"] == ["ACME01", "ACME02"]
    listing = api.get(URL)
    assert listing.status_code == 200 and b"S3cret-pw" not in listing.content
    database = CustomerDatabase.objects.get()
    assert database.password == "S3cret-pw"
    # Updating without a password keeps it; the account links follow the list.
    response = api.patch(f"{URL}{database.pk}/", {"label": "Acme", "erp_numbers": ["ACME02"]}, format="json")
    assert response.status_code == 200
    database.refresh_from_db()
    assert database.password == "S3cret-pw"
    assert list(database.accounts.values_list("erp_no", flat=True)) == ["ACME02"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"database": "x", "username": "u"}, "password"),
        ({"database": "x", "username": "u", "password": "p", "server": "localhost:8000"}, "server"),
        ({"database": "x", "username": "u", "password": "p", "server": "http://host"}, "server"),
        ({"database": "x", "username": "u", "password": "p", "default_groups": "GroupCompanyId"}, "default_groups"),
    ],
)
def test_bad_database_input_is_a_field_error(api_client_for, billing_user, body, field):
    response = api_client_for(billing_user).post(URL, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not CustomerDatabase.objects.exists()


@pytest.mark.django_db
def test_roles_on_customer_databases(api_client_for, fulfilment_user, viewer):
    body = {"database": "x", "username": "u", "password": "p"}
    assert api_client_for(fulfilment_user).post(URL, body, format="json").status_code == 403
    assert api_client_for(viewer).post(URL, body, format="json").status_code == 403
    assert api_client_for(viewer).get(URL).status_code == 200


@pytest.mark.django_db
def test_list_query_count_is_flat(api_client_for, billing_user, django_assert_max_num_queries):
    for i in range(5):
        db = CustomerDatabase.objects.create(database=f"db{i}", username="u", password="p")
        db.accounts.create(erp_no=f"E{i}")
    api = api_client_for(billing_user)
    with django_assert_max_num_queries(6):
        response = api.get(URL)
    assert response.status_code == 200


@pytest.mark.django_db(transaction=True)
def test_test_connection_action(api_client_for, billing_user, fulfilment_user, customer_db):
    response = api_client_for(billing_user).post(f"{URL}{customer_db.pk}/test_connection/")
    assert response.status_code == 200 and response.json()["ok"] is True
    assert api_client_for(fulfilment_user).post(f"{URL}{customer_db.pk}/test_connection/").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_device_add_to_database_api(api_client_for, fulfilment_user, viewer, customer_db, make_device,
                                    readiness_enqueued, caplog):
    device = make_device()
    url = f"/api/v1/devices/{device.pk}/add_to_database/"
    assert api_client_for(viewer).post(url, {}, format="json").status_code == 403
    api = api_client_for(fulfilment_user)
    response = api.post(url, {}, format="json")  # the one database linked to ACME01 is chosen
    assert response.status_code == 200, response.content
    assert response.json()["outcome"] == "added"
    again = api.post(url, {"database": customer_db.pk}, format="json")
    assert again.json()["outcome"] == "attached"
    assert api.get(f"/api/v1/devices/{device.pk}/").json()["mygeotab_device_id"] == response.json()[
        "mygeotab_device_id"]
    # Credentials never leak: not in the API, the ledger or the logs.
    ledger = " ".join(str(v) for v in VendorCall.objects.values())
    for secret in (DEMO["password"],):
        assert secret not in response.content.decode() and secret not in ledger and secret not in caplog.text


@pytest.mark.django_db(transaction=True)
def test_device_add_to_database_api_errors(api_client_for, fulfilment_user, customer_db, make_device, make_client):
    api = api_client_for(fulfilment_user)
    unlinked = make_device(erp_no="NOLINK")
    response = api.post(f"/api/v1/devices/{unlinked.pk}/add_to_database/", {}, format="json")
    assert response.status_code == 400 and "database" in response.json()["errors"]
    response = api.post(f"/api/v1/devices/{unlinked.pk}/add_to_database/", {"database": customer_db.pk},
                        format="json")
    assert response.status_code == 400 and "not linked" in response.json()["detail"]
    elsewhere = make_device()
    make_client(**OTHER).add_device(serial=elsewhere.serial)
    response = api.post(f"/api/v1/devices/{elsewhere.pk}/add_to_database/", {}, format="json")
    assert response.status_code == 409 and "another MyGeotab database" in response.json()["detail"]
    response = api.post(f"/api/v1/devices/{elsewhere.pk}/add_to_database/", {"database": 999999}, format="json")
    assert response.status_code == 400 and "database" in response.json()["errors"]


# --------------------------------------------------------------------------- admin


@pytest.mark.django_db(transaction=True)
def test_admin_add_devices_flow(client, fulfilment_user, customer_db, make_device, readiness_enqueued):
    devices = [make_device() for _ in range(2)]
    client.force_login(fulfilment_user)
    changelist = reverse("admin:devices_device_changelist")
    response = client.post(changelist, {"action": "add_to_customer_database",
                                        "_selected_action": [d.pk for d in devices]})
    assert response.status_code == 302
    page = client.get(response["Location"])
    assert page.status_code == 200 and b"Demo fleet" in page.content
    ids = ",".join(str(d.pk) for d in devices)
    done = client.post(reverse("admin:devices_customerdatabase_add_devices"),
                       {"ids": ids, "database": customer_db.pk}, follow=True)
    assert done.status_code == 200
    assert SandboxAsset.objects.count() == 2
    text = done.content.decode()
    assert all(f"{d.serial}: {d.serial} added" in text for d in devices)


@pytest.mark.django_db
def test_admin_add_devices_refused_for_viewer(client, viewer, make_device):
    device = make_device()
    client.force_login(viewer)
    response = client.get(f"{reverse('admin:devices_customerdatabase_add_devices')}?ids={device.pk}", follow=True)
    assert b"does not allow" in response.content
    assert not VendorCall.objects.exists()


@pytest.mark.django_db
def test_admin_credentials_form(client, billing_user, fulfilment_user):
    database = CustomerDatabase.objects.create(database="acme", username="svc", password="Old-secret")
    client.force_login(billing_user)
    url = reverse("admin:devices_customerdatabase_change", args=[database.pk])
    page = client.get(url)
    assert page.status_code == 200 and b"Old-secret" not in page.content
    response = client.post(url, {
        "label": "", "server": "", "database": "acme", "username": "svc", "password": "", "default_groups": "[]",
        "active": "on", "accounts-TOTAL_FORMS": "1", "accounts-INITIAL_FORMS": "0", "accounts-0-erp_no": "ACME01",
    })
    assert response.status_code == 302, response.content[:2000]
    database.refresh_from_db()
    assert database.password == "Old-secret"
    assert list(database.accounts.values_list("erp_no", flat=True)) == ["ACME01"]
    client.force_login(fulfilment_user)
    assert client.post(url, {"database": "changed"}).status_code == 403


@pytest.mark.django_db
def test_device_page_shows_readiness_fields(client, viewer, make_device):
    device = make_device(database_name="demo_fleet")
    client.force_login(viewer)
    page = client.get(reverse("admin:devices_device_change", args=[device.pk]))
    assert page.status_code == 200
    for label in (b"Serial", b"Database name", b"Ready for data at", b"First data sent"):
        assert label in page.content


@pytest.mark.django_db(transaction=True)
def test_vehicle_fields_through_the_api(api_client_for, fulfilment_user, customer_db, make_device,
                                        readiness_enqueued):
    api = api_client_for(fulfilment_user)
    plain = make_device()
    response = api.post(f"/api/v1/devices/{plain.pk}/add_to_database/", {"license_plate": "AB-1"}, format="json")
    assert response.status_code == 400 and "license_plate" in response.json()["errors"]
    assert not SandboxAsset.objects.exists()
    van = make_device("CV0000000042", product_id=10184)
    response = api.post(f"/api/v1/devices/{van.pk}/add_to_database/",
                        {"vehicle_identification_number": "1FTFW1ET5DFC10312", "license_plate": "AB-1",
                         "name": "Van 42"}, format="json")
    assert response.status_code == 200, response.content
    asset = SandboxAsset.objects.get()
    assert (asset.device_type, asset.name, asset.vehicle_identification_number, asset.license_plate) == (
        "CustomVehicleDevice", "Van 42", "1FTFW1ET5DFC10312", "AB-1")
