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


@pytest.fixture
def customer_db(mygeotab_server):
    """demo_fleet on the live sandbox, linked to partner account ACME01."""
    from devices.models import CustomerDatabase

    database = CustomerDatabase.objects.create(
        label="Demo fleet", server=mygeotab_server, database=DEMO["database"], username=DEMO["username"],
        password=DEMO["password"],
    )
    database.accounts.create(erp_no="ACME01")
    return database



@pytest.fixture
def readiness_enqueued(monkeypatch):
    """Device ids whose readiness check was queued after an add (the broker is not needed)."""
    from devices.tasks.databases import devices_refresh_readiness_task

    queued = []
    monkeypatch.setattr(devices_refresh_readiness_task, "delay_on_commit",
                        lambda **kwargs: queued.append(kwargs["device_ids"]))
    return queued


@pytest.fixture
def myadmin(sandbox_url):
    """A MyAdmin client on the live sandbox (memory token store: see token_store above)."""
    from integrations.base import MemoryRateLimiter
    from integrations.myadmin import MyAdminClient

    return MyAdminClient(f"{sandbox_url}/myadmin/v2/MyAdminApi.ashx", "integrator@example.com", "sandbox-password",
                         token_store=MemoryTokenStore(), rate_limiter=MemoryRateLimiter(), read_timeout=2,
                         sleep=lambda s: None)


@pytest.fixture
def make_device():
    import itertools

    from devices.models import Device

    counter = itertools.count(1)

    def make(serial=None, *, erp_no="ACME01", product_id=10032, **fields):
        serial = serial or f"CX{next(counter):010d}"
        product_type = "CustomVehicleDevice" if product_id == 10184 else "CustomDevice"
        return Device.objects.create(serial=serial, product_id=product_id, product_type=product_type,
                                     erp_no=erp_no, **fields)

    return make
