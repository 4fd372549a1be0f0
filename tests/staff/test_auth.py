import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from portal.auth import api_token_create
from portal.models import ApiToken, AuditEntry

LOGIN = "/admin/login/"


def _login(client, username, password):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"})


@pytest.mark.django_db
@override_settings(LOGIN_MAX_FAILURES=3, LOGIN_LOCKOUT_SECONDS=600)
def test_admin_login_locks_after_repeated_failures(make_user):
    user = make_user("viewer", password="pw-Secret-123")
    client = Client()
    for _ in range(3):
        response = _login(client, user.username, "wrong")
        assert response.status_code == 200 and "correct username and password" in response.content.decode()
    # Locked: even the right password is refused, with a plain explanation.
    response = _login(client, user.username, "pw-Secret-123")
    assert response.status_code == 200
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
@override_settings(LOGIN_MAX_FAILURES=3)
def test_success_before_the_limit_resets_the_count(make_user):
    user = make_user("viewer", password="pw-Secret-123")
    client = Client()
    for _ in range(2):
        _login(client, user.username, "wrong")
    assert _login(client, user.username, "pw-Secret-123").status_code == 302
    client.logout()
    for _ in range(2):
        _login(client, user.username, "wrong")
    assert _login(client, user.username, "pw-Secret-123").status_code == 302


@pytest.mark.django_db
def test_named_tokens_authenticate_record_last_use_and_revoke(viewer, superuser, client_for):
    token, key = api_token_create(user=viewer, name="ERP sync")
    assert ApiToken.objects.get(pk=token.pk).key_digest != key  # only a digest is stored
    api = Client(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/v1/vendor-calls/").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None and (timezone.now() - token.last_used_at).total_seconds() < 60

    admin_client = client_for(superuser)
    listing = admin_client.get(reverse("admin:portal_apitoken_changelist")).content.decode()
    assert "ERP sync" in listing and token.prefix in listing
    admin_client.post(reverse("admin:portal_apitoken_changelist"),
                      {"action": "revoke", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert api.get("/api/v1/vendor-calls/").status_code == 401
    assert AuditEntry.objects.filter(action="bulk_update", message="API tokens revoked").exists()


@pytest.mark.django_db
def test_drf_user_tokens_still_work(viewer, api_client_for):
    assert api_client_for(viewer).get("/api/v1/vendor-calls/").status_code == 200
    assert Client(HTTP_AUTHORIZATION="Token nope").get("/api/v1/vendor-calls/").status_code == 401


@pytest.mark.django_db
def test_creating_a_token_in_the_admin_shows_the_key_once(viewer, client_for):
    client = client_for(viewer)
    response = client.post(reverse("admin:portal_apitoken_add"), {"name": "CI", "user": viewer.pk}, follow=True)
    html = response.content.decode()
    assert 'id="api-token-key"' in html
    token = ApiToken.objects.get(user=viewer, name="CI")
    assert token.prefix in html
    # The list never shows the key again.
    listing = client.get(reverse("admin:portal_apitoken_changelist")).content.decode()
    assert 'id="api-token-key"' not in listing


@pytest.mark.django_db
def test_users_see_and_create_only_their_own_tokens(viewer, billing_user, client_for):
    api_token_create(user=billing_user, name="billing robot")
    client = client_for(viewer)
    assert "billing robot" not in client.get(reverse("admin:portal_apitoken_changelist")).content.decode()
    response = client.post(reverse("admin:portal_apitoken_add"), {"name": "x", "user": billing_user.pk})
    assert response.status_code == 200  # the form refuses another user's id, next to the field
    assert "Select a valid choice" in response.content.decode()
    assert not ApiToken.objects.filter(user=billing_user, name="x").exists()


@pytest.mark.django_db
@override_settings(LOGIN_MAX_FAILURES=50, LOGIN_MAX_FAILURES_PER_ADDRESS=3)
def test_one_address_is_locked_after_its_own_limit(make_user):
    victim = make_user("viewer", password="pw-Secret-123")
    client = Client()
    for n in range(3):
        _login(client, f"guess{n}", "wrong")
    response = _login(client, victim.username, "pw-Secret-123")
    assert "Too many failed sign-in attempts" in response.content.decode()


@pytest.mark.django_db
def test_token_authentication_costs_one_lookup(viewer, django_assert_max_num_queries):
    _token, key = api_token_create(user=viewer, name="probe")
    api = Client(HTTP_AUTHORIZATION=f"Token {key}")
    api.get("/api/v1/vendor-calls/")  # first use writes last_used_at
    with django_assert_max_num_queries(3):  # token+user, roles, the page
        assert api.get("/api/v1/vendor-calls/").status_code == 200
    assert Client(HTTP_AUTHORIZATION="Token pt_unknown").get("/api/v1/vendor-calls/").status_code == 401
