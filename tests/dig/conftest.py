"""DIG fixtures: the simulator over real HTTP (live server), a client on it, and devices."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from devices.models import Device
from integrations.base import MemoryRateLimiter, MemoryTokenStore
from integrations.dig import DigClient

_serials = itertools.count(1)


@pytest.fixture
def dig_url(sandbox_url, settings):
    settings.DIG_API_URL = f"{sandbox_url}/dig"
    settings.DIG_USERNAME = "dig@example.com"
    settings.DIG_PASSWORD = "sandbox-password"
    return settings.DIG_API_URL


@pytest.fixture
def dig_config(dig_url):
    """Change the simulator's knobs (token lifetime, limits, unassigned serials)."""
    from sandbox.dig.models import DigSettings

    def configure(**fields):
        cfg = DigSettings.current()
        for name, value in fields.items():
            setattr(cfg, name, value)
        cfg.save()
        return cfg

    return configure


@pytest.fixture
def make_client(dig_url):
    def make(**kwargs):
        kwargs.setdefault("token_store", MemoryTokenStore())
        kwargs.setdefault("rate_limiter", MemoryRateLimiter())
        kwargs.setdefault("read_timeout", 2.0)
        return DigClient(dig_url, kwargs.pop("username", "dig@example.com"), kwargs.pop("password", "sandbox-password"), **kwargs)

    return make


@pytest.fixture
def make_device(db):
    def make(*, ready=True, status=Device.Status.SHIPPED, serial=None):
        return Device.objects.create(
            serial=serial or f"CX{next(_serials):010d}", product_id=10032, product_type="CustomDevice",
            erp_no="INTEG01", status=status, database_name="demo_db" if ready else "",
            ready_for_data_at=datetime.now(UTC) if ready else None,
        )

    return make


def gps(serial, when=None, **extra):
    when = when or datetime.now(UTC) - timedelta(minutes=5)
    record = {"Type": "GpsRecord", "DateTime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "SerialNo": serial,
              "Latitude": 43.6, "Longitude": -79.4, "Speed": 50.0, "IsGpsValid": True, "IsIgnitionOn": True}
    record.update(extra)
    return record


def gps_series(serial, n, *, start=None, step_ms=1000):
    start = start or datetime.now(UTC) - timedelta(hours=2)
    return [gps(serial, start + timedelta(milliseconds=i * step_ms)) for i in range(n)]
