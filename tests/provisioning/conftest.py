import pytest

from integrations.myadmin import MyAdminClient
from portal.clients import shared_token_store
from portal.vendor import CacheRateLimiter


@pytest.fixture(autouse=True)
def enqueued(request, monkeypatch):
    """Task sends are recorded instead of going to the broker (tests drive the service),
    except in tests marked ``real_worker``."""
    from devices.tasks import provisioning as tasks

    sent = []
    if request.node.get_closest_marker("real_worker"):
        return sent
    monkeypatch.setattr(tasks.provisioning_request_process_task, "delay", lambda pk: sent.append(pk))
    monkeypatch.setattr(tasks.provisioning_request_process_task, "apply_async",
                        lambda args=None, countdown=None, **kw: sent.append(args[0]))
    return sent


@pytest.fixture
def portal_myadmin(settings, sandbox_url):
    """Point the portal's MyAdmin settings at the live sandbox; reconcile without settling."""
    settings.MYADMIN_API_URL = f"{sandbox_url}/myadmin/v2/MyAdminApi.ashx"
    settings.MYADMIN_USERNAME = "integrator@example.com"
    settings.MYADMIN_PASSWORD = "sandbox-password"
    settings.PROVISIONING_SETTLE_SECONDS = 0
    settings.PROVISIONING_CLOCK_SKEW_SECONDS = 1
    settings.VENDOR_CONNECT_TIMEOUT = 1
    return settings


@pytest.fixture
def myadmin(portal_myadmin):
    """A client like the portal's, with backoff sleeps skipped."""
    return MyAdminClient(
        portal_myadmin.MYADMIN_API_URL, portal_myadmin.MYADMIN_USERNAME, portal_myadmin.MYADMIN_PASSWORD,
        token_store=shared_token_store(), rate_limiter=CacheRateLimiter(sleep=lambda s: None),
        connect_timeout=1, read_timeout=portal_myadmin.VENDOR_READ_TIMEOUT, sleep=lambda s: None,
    )


@pytest.fixture
def fault(transactional_db):
    from sandbox.models import Fault

    def make(mode, methods="ProvisionDeviceToAccount", **fields):
        return Fault.objects.create(system="myadmin", mode=mode, methods=methods, **fields)

    return make


def pytest_configure(config):
    config.addinivalue_line("markers", "real_worker: sends tasks to the real broker and runs a Celery worker")
