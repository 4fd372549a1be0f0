"""MyGeotab fixtures: clients pointed at the live sandbox over real HTTP, through the real SDK."""

import pytest

from integrations.base import MemoryTokenStore
from integrations.mygeotab import MyGeotabClient

DEMO = {"database": "demo_fleet", "username": "svc-portal@demo-fleet.example", "password": "demo-fleet-password"}
OTHER = {"database": "other_fleet", "username": "svc-portal@other-fleet.example", "password": "other-fleet-password"}


@pytest.fixture
def mygeotab_server(sandbox_url):
    return f"{sandbox_url}/mygeotab/apiv1"


@pytest.fixture
def sleeps():
    """Backoff sleeps the client asked for (recorded, not slept: tests stay fast)."""
    return []


@pytest.fixture
def token_store():
    """One store per test, shared by the clients it makes (as workers share the real one).
    Not DatabaseTokenStore: on in-memory SQLite its row lock, held across the login request,
    would lock out the in-process sandbox answering that very request."""
    return MemoryTokenStore()


@pytest.fixture
def make_client(mygeotab_server, sleeps, token_store):
    def make(*, database=DEMO["database"], username=DEMO["username"], password=DEMO["password"],
             server=None, read_timeout=2.0):
        return MyGeotabClient(
            server or mygeotab_server, database, username, password,
            token_store=token_store, connect_timeout=2.0, read_timeout=read_timeout,
            sleep=sleeps.append,
        )

    return make


@pytest.fixture
def fault(sandbox_url):
    """fault(mode, methods="Add", **kw) switches a sandbox fault on over HTTP."""
    import requests

    def add(mode, methods="", **kwargs):
        response = requests.post(f"{sandbox_url}/faults/", json={"system": "mygeotab", "mode": mode,
                                                                 "methods": methods, **kwargs}, timeout=5)
        assert response.status_code == 201, response.text
        return response.json()

    return add
