"""Factories that build each vendor client from settings, with the portal's shared token
store, rate limiter and timeouts. Services use these; `integrations/` never reads settings."""

import contextlib
import threading

from django.conf import settings
from django.db import connection


def vendor_timeouts() -> dict:
    return {"connect_timeout": settings.VENDOR_CONNECT_TIMEOUT, "read_timeout": settings.VENDOR_READ_TIMEOUT}


class _ProcessLockedTokenStore:
    """The database token store, single-flight per process instead of by row lock.

    Only for SQLite (development): SQLite locks the whole database for a write transaction, so
    holding one across the login HTTP call blocks every other writer — including the in-process
    sandbox that is answering that very login. The session is still stored in the database and
    shared; at worst two processes log in at the same moment.
    """

    _guard = threading.Lock()
    _locks: dict = {}

    def __init__(self, inner):
        self.inner = inner

    def get(self, key):
        return self.inner.get(key)

    def set(self, key, value):
        self.inner.set(key, value)

    @contextlib.contextmanager
    def lock(self, key):
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield self.inner.get(key)


def shared_token_store():
    """The token store every worker shares (see _ProcessLockedTokenStore for SQLite)."""
    from portal.vendor import DatabaseTokenStore

    store = DatabaseTokenStore()
    return _ProcessLockedTokenStore(store) if connection.vendor == "sqlite" else store


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
    workers (database token store on PostgreSQL; on SQLite the process store, for the
    self-deadlock explained in `_mygeotab_token_store`); one rate-limit budget via the cache."""
    from integrations.navixy import NavixyClient
    from portal.vendor import CacheRateLimiter

    return NavixyClient(
        settings.NAVIXY_API_URL,
        api_key=settings.NAVIXY_API_KEY,
        login=settings.NAVIXY_LOGIN,
        password=settings.NAVIXY_PASSWORD,
        token_store=_mygeotab_token_store(),
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


_process_token_store = None


def _advisory_lock_token_store():
    """DatabaseTokenStore whose lock is a PostgreSQL session advisory lock, not a transaction.

    `DatabaseTokenStore.lock` holds a transaction open across the login request, so the
    ledger row of a *failed* login is rolled back with it. An advisory lock keeps renewal
    single-flight across workers and machines while every ledger row commits at once.
    (Released by PostgreSQL if the worker dies while holding it.)"""
    import contextlib
    import hashlib

    from django.db import connection

    from portal.vendor import DatabaseTokenStore

    class AdvisoryLockTokenStore(DatabaseTokenStore):
        @contextlib.contextmanager
        def lock(self, key: str):
            lock_id = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", [lock_id])
            try:
                yield self.get(key)
            finally:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_id])

    return AdvisoryLockTokenStore()


def _mygeotab_token_store():
    """Sessions shared by every worker on PostgreSQL (advisory-locked database store). On
    SQLite a process-wide memory store instead: a database lock held across the login request
    would block the in-process sandbox answering that login (one writer per SQLite file)."""
    global _process_token_store
    from django.db import connection

    if connection.vendor == "postgresql":
        return _advisory_lock_token_store()
    if _process_token_store is None:
        from integrations.base import MemoryTokenStore

        _process_token_store = MemoryTokenStore()
    return _process_token_store


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
        token_store=_mygeotab_token_store(),
        **vendor_timeouts(),
    )
