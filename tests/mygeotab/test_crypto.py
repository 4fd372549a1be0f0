"""Secrets at rest: MultiFernet field, key rotation, clear errors when a key is missing."""

import io

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from devices.models import CustomerDatabase
from devices.services.databases import customer_database_test_connection
from portal.crypto import UndecryptableSecret


def _raw(pk):
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM devices_customerdatabase WHERE id = %s", [pk])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_rotation_moves_every_row_to_the_new_key(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    db = CustomerDatabase.objects.create(database="a", username="u", password="pw-1")
    empty = CustomerDatabase.objects.create(database="b", username="u", password="")
    assert Fernet(old.encode()).decrypt(_raw(db.pk).encode()) == b"pw-1"

    settings.FIELD_ENCRYPTION_KEYS = [new, old]  # new first: encrypts; old still decrypts
    assert CustomerDatabase.objects.get(pk=db.pk).password == "pw-1"
    call_command("rotate_encrypted_fields", stdout=io.StringIO())
    assert Fernet(new.encode()).decrypt(_raw(db.pk).encode()) == b"pw-1"
    assert _raw(empty.pk) == ""

    settings.FIELD_ENCRYPTION_KEYS = [new]  # old key retired
    assert CustomerDatabase.objects.get(pk=db.pk).password == "pw-1"


@pytest.mark.django_db
def test_missing_or_bad_keys_fail_clearly(settings, billing_user, api_client_for):
    db = CustomerDatabase.objects.create(database="a", username="u", password="pw-1")
    token = _raw(db.pk)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the old key was dropped
    unreadable = CustomerDatabase.objects.get(pk=db.pk)
    assert isinstance(unreadable.password, UndecryptableSecret) and not unreadable.password
    # Pages still load; the service names the cause; nothing overwrites the stored token.
    assert api_client_for(billing_user).get("/api/v1/customer-databases/").status_code == 200
    response = api_client_for(billing_user).patch(f"/api/v1/customer-databases/{db.pk}/", {"label": "x"},
                                                  format="json")
    assert response.status_code == 400 and "cannot be decrypted" in response.json()["errors"]["password"][0]
    ok, message = customer_database_test_connection(database=unreadable)
    assert not ok and "cannot be decrypted" in message
    with pytest.raises(CommandError, match="1 secret"):
        call_command("rotate_encrypted_fields", stdout=io.StringIO())
    assert _raw(db.pk) == token
    settings.FIELD_ENCRYPTION_KEYS = []
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS is empty"):
        CustomerDatabase.objects.create(database="b", username="u", password="x")
    settings.FIELD_ENCRYPTION_KEYS = ["not-a-key"]
    with pytest.raises(ImproperlyConfigured, match="not a Fernet key") as excinfo:
        CustomerDatabase.objects.create(database="c", username="u", password="x")
    assert "not-a-key" not in str(excinfo.value)


@pytest.mark.django_db
def test_no_key_is_a_field_error_not_a_500(settings, api_client_for, billing_user, client):
    settings.FIELD_ENCRYPTION_KEYS = []
    response = api_client_for(billing_user).post(
        "/api/v1/customer-databases/", {"database": "x", "username": "u", "password": "p"}, format="json")
    assert response.status_code == 400 and "FIELD_ENCRYPTION_KEYS" in response.json()["errors"]["password"][0]
    client.force_login(billing_user)
    page = client.post("/admin/devices/customerdatabase/add/", {
        "database": "x", "username": "u", "password": "p", "default_groups": "[]", "active": "on",
        "accounts-TOTAL_FORMS": "0", "accounts-INITIAL_FORMS": "0"})
    assert page.status_code == 200 and b"FIELD_ENCRYPTION_KEYS" in page.content
    assert not CustomerDatabase.objects.exists()
