"""Navixy fixtures: a client pointed at the in-process simulator over real HTTP."""

import pytest

from integrations.base import MemoryRateLimiter, MemoryTokenStore
from integrations.navixy import NavixyClient

SIM_LOGIN = "integrator@example.com"
SIM_PASSWORD = "sandbox-password"
SIM_API_KEY = "5ad0b1e0c0ffee00000000000000a11e"


def luhn_imei(prefix14: str) -> str:
    """Complete a 14-digit prefix with its Luhn check digit."""
    total = 0
    for i, ch in enumerate(prefix14):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return prefix14 + str((10 - total % 10) % 10)


@pytest.fixture
def navixy_api_url(sandbox_url, settings):
    url = f"{sandbox_url}/navixy/api-v2"
    settings.NAVIXY_API_URL = url
    settings.NAVIXY_API_KEY = ""
    settings.NAVIXY_LOGIN = SIM_LOGIN
    settings.NAVIXY_PASSWORD = SIM_PASSWORD
    return url


@pytest.fixture
def navixy(navixy_api_url):
    sleeps = []
    client = NavixyClient(
        navixy_api_url, login=SIM_LOGIN, password=SIM_PASSWORD, token_store=MemoryTokenStore(),
        rate_limiter=MemoryRateLimiter(), read_timeout=2.0, sleep=sleeps.append,
    )
    client.sleeps = sleeps
    return client


@pytest.fixture
def fault(sandbox_url):
    """fault(mode, methods="", **opts) switches a Navixy fault on through the sandbox's HTTP API."""
    import requests

    def add(mode, methods="", **opts):
        r = requests.post(f"{sandbox_url}/faults/", json={"system": "navixy", "mode": mode, "methods": methods, **opts},
                          timeout=5)
        assert r.status_code == 201, r.text
        return r.json()

    return add


@pytest.fixture
def enqueued(monkeypatch):
    """Record the registration tasks the services enqueue instead of sending them to a broker;
    tests then run the task body (the service) themselves, as a worker would."""
    from devices.tasks import trackers as tasks

    sent = []
    monkeypatch.setattr(tasks.tracker_register_task, "delay", lambda pk: sent.append(("register", pk)))
    monkeypatch.setattr(tasks.tracker_register_retry_task, "delay_on_commit",
                        lambda pk, actor=None: sent.append(("register_retry", pk)))
    monkeypatch.setattr(tasks.tracker_refresh_task, "delay_on_commit", lambda pk: sent.append(("refresh", pk)))
    monkeypatch.setattr(tasks.navixy_catalogue_refresh_task, "delay_on_commit", lambda: sent.append(("catalogue",)))
    return sent


@pytest.fixture
def catalogue(navixy_api_url):
    """The portal's catalogues, refreshed from the simulator over HTTP."""
    from devices.services.trackers import navixy_catalogue_refresh

    return navixy_catalogue_refresh()


@pytest.fixture
def offline_catalogue(db):
    """The same catalogue rows written directly, for tests that must make no HTTP call."""
    from devices.models import NavixyGroup, NavixyModel, NavixyPlugin

    mobile = ["navixymobile.*", "mobile_unknown.*", "iosnavixytracker.*"]
    for pid in (44, 37, 35, 68):
        NavixyPlugin.objects.create(plugin_id=pid, type="tracker_register", filter_exclusion=pid in (44, 37),
                                    filter_values=mobile)
    for code, id_type, phone, apn in [
        ("telfmb140", "imei", True, True), ("navixy_ngp", "ascii,6,64", False, False),
        ("sandbox_meid", "meid", True, False), ("sandbox_id7", "id,7", True, True), ("tt1_wp", "10,2", True, True),
        ("mobile_unknown_xgps", "12,1", False, False),
    ]:
        NavixyModel.objects.create(code=code, name=code, id_type=id_type, has_phone=phone, has_apn_settings=apn)
    NavixyGroup.objects.create(navixy_id=1, title="Sandbox fleet", color="FF6DDC")


GOOD_IMEI = "356938035643809"
GOOD_PHONE = "4915112345678"


def fmb140_input(**overrides):
    return {"label": "Van 1", "plugin_id": 44, "model_code": "telfmb140", "device_id": GOOD_IMEI,
            "phone": GOOD_PHONE, "apn_name": "internet", "apn_user": "user", "apn_password": "passwd", **overrides}



@pytest.fixture(scope="module", autouse=True)
def permissions_restored_after_partial_flush(request, django_db_blocker):
    """Modules marked ``available_apps`` flush auth and contenttypes after each test and recreate
    permissions only for their own apps, so later tests would find the role groups without the
    other apps' permissions (a 403 in, say, the orders admin). Put them all back afterwards."""
    yield
    marker = request.node.get_closest_marker("django_db")
    if marker is None or not marker.kwargs.get("available_apps"):
        return
    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.contenttypes.management import create_contenttypes

    from portal.roles import sync_role_permissions

    with django_db_blocker.unblock():
        for config in apps.get_app_configs():
            create_contenttypes(config, verbosity=0)
            create_permissions(config, verbosity=0)
        sync_role_permissions()
