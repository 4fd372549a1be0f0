import pytest

from integrations.base import MemoryRateLimiter, MemoryTokenStore
from integrations.myadmin import MyAdminClient


@pytest.fixture
def myadmin_url(sandbox_url):
    return f"{sandbox_url}/myadmin/v2/MyAdminApi.ashx"


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def make_client(myadmin_url, sleeps):
    """make_client(**overrides) → a MyAdminClient on the live sandbox; sleeps are recorded, not slept."""

    def make(**overrides):
        kwargs = {
            "token_store": MemoryTokenStore(),
            "rate_limiter": MemoryRateLimiter(sleep=sleeps.append),
            "read_timeout": 2,
            "sleep": sleeps.append,
        }
        kwargs.update(overrides)
        username = kwargs.pop("username", "integrator@example.com")
        password = kwargs.pop("password", "sandbox-password")
        return MyAdminClient(kwargs.pop("url", myadmin_url), username, password, **kwargs)

    return make


@pytest.fixture
def client_(make_client):
    return make_client()


@pytest.fixture
def fault(transactional_db):
    """fault(mode, methods="", **fields) → an active sandbox Fault for MyAdmin."""
    from sandbox.models import Fault

    def make(mode, methods="", **fields):
        return Fault.objects.create(system="myadmin", mode=mode, methods=methods, **fields)

    return make
