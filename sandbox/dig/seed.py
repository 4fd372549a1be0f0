"""The DIG demo account, created lazily (tests flush tables, so every view calls it)."""

from django.conf import settings
from django.db import IntegrityError, transaction

from sandbox.dig.models import DigAccount

DEMO_USERNAME = "dig@example.com"
DEMO_PASSWORD = "sandbox-password"


def ensure_seeded() -> None:
    username = getattr(settings, "SANDBOX_DIG_USERNAME", DEMO_USERNAME)
    if DigAccount.objects.filter(username=username).exists():
        return
    try:
        with transaction.atomic():
            DigAccount.objects.create(username=username, password=getattr(settings, "SANDBOX_DIG_PASSWORD", DEMO_PASSWORD))
    except IntegrityError:
        pass  # a concurrent request seeded it
