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
