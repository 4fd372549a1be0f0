"""Factories that build each vendor client from settings, with the portal's shared token
store, rate limiter and timeouts. Services use these; `integrations/` never reads settings."""

from django.conf import settings


def vendor_timeouts() -> dict:
    return {"connect_timeout": settings.VENDOR_CONNECT_TIMEOUT, "read_timeout": settings.VENDOR_READ_TIMEOUT}


def shared_token_store():
    """The token store every worker and machine shares (see portal.vendor.DatabaseTokenStore)."""
    from portal.vendor import DatabaseTokenStore

    return DatabaseTokenStore()


def myadmin_client():
    """The MyAdmin JSON-RPC client: one session shared by every worker (DatabaseTokenStore),
    the client-side rate limiter on the shared cache."""
    from integrations.myadmin import MyAdminClient
    from portal.vendor import CacheRateLimiter

    return MyAdminClient(
        settings.MYADMIN_API_URL,
        settings.MYADMIN_USERNAME,
        settings.MYADMIN_PASSWORD,
        token_store=shared_token_store(),
        rate_limiter=CacheRateLimiter(),
        **vendor_timeouts(),
    )


def shipping_client():
    """The partner shipping API client, riding on the MyAdmin client's shared session."""
    from integrations.shipping import ShippingClient

    return ShippingClient(
        settings.MYADMIN_SHIPPING_URL,
        credential=myadmin_client().credential,
        **vendor_timeouts(),
    )


def navixy_client():
    """Navixy user-API client: API key if configured, else a login session shared by all
    workers; one rate-limit budget via the cache."""
    from integrations.navixy import NavixyClient
    from portal.vendor import CacheRateLimiter

    return NavixyClient(
        settings.NAVIXY_API_URL,
        api_key=settings.NAVIXY_API_KEY,
        login=settings.NAVIXY_LOGIN,
        password=settings.NAVIXY_PASSWORD,
        token_store=shared_token_store(),
        rate_limiter=CacheRateLimiter(),
        **vendor_timeouts(),
    )


def dig_client():
    """The DIG client: one token pair shared by every worker (`shared_token_store`), and the
    auth endpoints' 5-per-minute limit shared through the cache."""
    from integrations.dig import DigClient
    from portal.vendor import CacheRateLimiter

    return DigClient(
        settings.DIG_API_URL, settings.DIG_USERNAME, settings.DIG_PASSWORD,
        token_store=shared_token_store(), rate_limiter=CacheRateLimiter(), **vendor_timeouts(),
    )


def mygeotab_client(database):
    """A MyGeotab client for one `devices.CustomerDatabase` (its server, or MYGEOTAB_SERVER)."""
    from django.core.exceptions import ImproperlyConfigured

    from integrations.mygeotab import MyGeotabClient
    from portal.crypto import UndecryptableSecret

    if isinstance(database.password, UndecryptableSecret):
        raise ImproperlyConfigured(f"Customer database '{database}': {UndecryptableSecret.problem}")

    return MyGeotabClient(
        database.effective_server,
        database.database,
        database.username,
        database.password,
        token_store=shared_token_store(),
        **vendor_timeouts(),
    )
