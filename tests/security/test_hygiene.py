"""Security hygiene that can regress silently:

- `manage.py check --deploy` is clean with production settings (DEBUG off, HTTPS on, a real key);
- deploy/env.example documents every environment variable the settings read;
- vendor credentials never reach the logs or the vendor-call ledger, whether the vendor
  accepts them or refuses them (each client talks to the sandbox over real HTTP).
"""

import logging
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

ROOT = Path(__file__).resolve().parents[2]


def test_check_deploy_is_clean_with_production_settings():
    # The browser tests allow async-unsafe ORM calls for this test process only; a deployment
    # never has that variable, so it is not passed on.
    inherited = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {**inherited, "DEBUG": "0", "HTTPS": "1", "SANDBOX": "0",
           "SECRET_KEY": secrets.token_urlsafe(64), "ALLOWED_HOSTS": "portal.example.com",
           "DJANGO_SETTINGS_MODULE": "portal.settings"}
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def _names_read(path: Path) -> set[str]:
    text = path.read_text()
    names = set(re.findall(r'env\.(?:str|bool|int|float|list|db|cache|url|json)\(\s*"([A-Z][A-Z0-9_]+)"', text))
    names |= set(re.findall(r'_vendor_url\(\s*"([A-Z][A-Z0-9_]+)"', text))
    names |= set(re.findall(r'_int\(\s*"([A-Z][A-Z0-9_]+)"', text))
    names |= set(re.findall(r'os\.environ(?:\.get)?[\[(]\s*"([A-Z][A-Z0-9_]+)"', text))
    return names


def test_env_example_documents_every_setting():
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / "deploy/env.example").read_text(), re.MULTILINE))
    read = _names_read(ROOT / "portal/settings.py") | _names_read(ROOT / "deploy/gunicorn.conf.py")
    # Set by the process managers themselves, not by an operator.
    read -= {"PORT", "DJANGO_SETTINGS_MODULE", "XDG_RUNTIME_DIR", "GUNICORN_CONTROL_SOCKET"}
    missing = sorted(read - documented)
    assert not missing, f"deploy/env.example does not document: {', '.join(missing)}"


SENTINEL = "Sentinel-" + secrets.token_hex(8)


def _vendor_settings(sandbox_url: str, password: str) -> dict:
    return {
        "MYADMIN_API_URL": f"{sandbox_url}/myadmin/v2/MyAdminApi.ashx",
        "MYADMIN_PASSWORD": password,
        "DIG_API_URL": f"{sandbox_url}/dig",
        "DIG_PASSWORD": password,
        "NAVIXY_API_URL": f"{sandbox_url}/navixy/api-v2",
        "NAVIXY_API_KEY": "",
        "NAVIXY_PASSWORD": password,
    }


def _exercise_clients():
    """Sign in to every vendor once through the portal's own factories."""
    from integrations.base import VendorError
    from portal import clients

    calls = [
        ("myadmin", lambda: clients.myadmin_client().authenticate()),
        ("dig", lambda: clients.dig_client().authenticate()),
        ("navixy", lambda: clients.navixy_client().plugin_list()),
    ]
    outcomes = {}
    for name, call in calls:
        try:
            call()
            outcomes[name] = "ok"
        except VendorError as exc:
            outcomes[name] = type(exc).__name__
    return outcomes


def _ledger_text() -> str:
    from portal.models import VendorCall

    return "\n".join(str(row) for row in VendorCall.objects.values_list())


@pytest.mark.parametrize("password", [SENTINEL, "sandbox-password"], ids=["refused", "accepted"])
def test_vendor_credentials_never_reach_logs_or_ledger(password, sandbox_url, caplog):
    caplog.set_level(logging.DEBUG)
    with override_settings(**_vendor_settings(sandbox_url, password)):
        outcomes = _exercise_clients()
    from portal.models import VendorCall

    assert VendorCall.objects.exists(), outcomes  # the calls were made and recorded
    logged = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert password not in logged, f"a vendor password was logged ({outcomes})"
    assert password not in _ledger_text(), f"a vendor password is in the vendor-call ledger ({outcomes})"
