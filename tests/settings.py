"""Test settings: the production settings module with the sandbox on and fast hashing.

DATABASE_URL / CELERY_BROKER_URL come from the environment, so the same suite runs on SQLite
with the embedded broker (default) and on PostgreSQL + Redis (CI).
"""

import os
import tempfile

os.environ.setdefault("SANDBOX", "1")
os.environ.setdefault("PORTAL_VAR_DIR", os.path.join(tempfile.gettempdir(), "portal-test-var"))

from portal.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Short vendor timeouts so fault tests that wait for a timeout stay fast.
VENDOR_READ_TIMEOUT = float(os.environ.get("VENDOR_READ_TIMEOUT", "2"))
FIELD_ENCRYPTION_KEYS = FIELD_ENCRYPTION_KEYS or ["dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdC0="]  # noqa: F405
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
