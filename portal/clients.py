"""Factories that build each vendor client from settings, with the portal's shared token
store, rate limiter and timeouts. Services use these; `integrations/` never reads settings."""

from django.conf import settings


def vendor_timeouts() -> dict:
    return {"connect_timeout": settings.VENDOR_CONNECT_TIMEOUT, "read_timeout": settings.VENDOR_READ_TIMEOUT}
