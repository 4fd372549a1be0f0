"""Shared fixtures: users per role, API clients, and the live sandbox over real HTTP."""

import itertools

import pytest
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from portal import roles

_counter = itertools.count(1)


@pytest.fixture
def make_user(db, django_user_model):
    def make(role: str | None = None, *, superuser: bool = False, password: str = "pw-Secret-123"):
        n = next(_counter)
        user = django_user_model.objects.create_user(
            username=f"{role or 'user'}{n}", password=password, is_staff=True, is_superuser=superuser
        )
        if role:
            group, _ = Group.objects.get_or_create(name=role)
            user.groups.add(group)
        return user

    return make


@pytest.fixture
def viewer(make_user):
    return make_user(roles.VIEWER)


@pytest.fixture
def fulfilment_user(make_user):
    return make_user(roles.FULFILMENT)


@pytest.fixture
def billing_user(make_user):
    return make_user(roles.BILLING)


@pytest.fixture
def superuser(make_user):
    return make_user(superuser=True)


@pytest.fixture
def api_client_for():
    """api_client_for(user) → an APIClient authenticated with that user's token."""

    def make(user):
        client = APIClient()
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


@pytest.fixture
def sandbox_url(live_server):
    """Base URL of the in-process sandbox, served over real HTTP by the live server."""
    return f"{live_server.url}/sandbox"


@pytest.fixture
def eager_tasks():
    """Celery tasks run in-process when sent (as a worker would run them right after the
    commit); pair with django_capture_on_commit_callbacks(execute=True) for delay_on_commit."""
    from portal.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous
