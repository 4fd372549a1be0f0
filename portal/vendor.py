"""The portal's side of the vendor clients: the ledger writer, the shared token store and the
shared rate limiter that `integrations/` expects to be handed."""

import contextlib
import fcntl
import hashlib
import time
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from integrations.base import CallRecord, RateLimitedError
from portal.middleware import current_request_id
from portal.models import VendorCall, VendorToken


def record_vendor_call(record: CallRecord) -> None:
    """Write one ledger row, immediately.

    Services call vendors outside any transaction (an intent is committed before the call and
    closed after it), so the row is committed at once and survives whatever follows.
    """
    VendorCall.objects.create(
        system=record.system,
        method=record.method,
        url=record.url[:500],
        target=record.target[:120],
        request_digest=record.request_digest,
        outcome=record.outcome.value,
        http_status=record.http_status,
        error_name=record.error_name[:120],
        error_message=record.error_message[:500],
        response_summary=record.response_summary[:500],
        duration_ms=record.duration_ms,
        attempt=record.attempt,
        request_id=(record.request_id or current_request_id())[:64],
        started_at=record.started_at,
    )


class DatabaseTokenStore:
    """Token store on `VendorToken` rows, shared by every worker and machine.

    `lock` makes renewal single-flight WITHOUT holding a database transaction across the login
    call: a transaction open during the call would roll back the ledger row of a failed login
    and, on SQLite, block every other writer (including the in-process sandbox answering it).
    PostgreSQL: a session advisory lock (released by the server if the worker dies).
    SQLite (one machine by nature): an exclusive file lock under var/locks/.
    """

    def get(self, key: str) -> dict | None:
        row = VendorToken.objects.filter(key=key).values_list("value", flat=True).first()
        return row or None

    def set(self, key: str, value: dict) -> None:
        VendorToken.objects.update_or_create(key=key, defaults={"value": value})

    @contextlib.contextmanager
    def lock(self, key: str):
        if connection.vendor == "postgresql":
            lock_id = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", [lock_id])
            try:
                yield self.get(key)
            finally:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_id])
            return
        lock_dir = Path(settings.VAR_DIR) / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(key.encode()).hexdigest()[:32]
        # flock locks belong to the open file description, so this excludes other threads of
        # this process as well as other processes.
        with open(lock_dir / f"{name}.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield self.get(key)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class CacheRateLimiter:
    """A fixed-window limiter on the Django cache: shared by all workers when the cache is
    Redis (production), per process with the local-memory default."""

    def __init__(self, sleep=time.sleep, clock=time.time):
        self.sleep = sleep
        self.clock = clock

    def acquire(self, name: str, *, limit: int, period: float, max_wait: float = 30.0) -> None:
        deadline = self.clock() + max_wait
        while True:
            now = self.clock()
            window = int(now // period)
            key = f"ratelimit:{name}:{window}"
            cache.add(key, 0, timeout=int(period * 2) + 1)
            try:
                count = cache.incr(key)
            except ValueError:  # expired between add and incr
                continue
            if count <= limit:
                return
            wait = (window + 1) * period - now
            if now + wait > deadline:
                raise RateLimitedError(
                    f"client-side limit of {limit}/{period:g}s for {name} reached",
                    error_name="ClientRateLimit",
                    retry_after=wait,
                )
            self.sleep(wait + 1e-3)  # just past the edge, whatever the float rounding
