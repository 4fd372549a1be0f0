"""The portal's side of the vendor clients: the ledger writer, the shared token store and the
shared rate limiter that `integrations/` expects to be handed."""

import contextlib
import time

from django.core.cache import cache
from django.db import transaction

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
    """Token store on `VendorToken` rows; `lock` is a row lock, so renewal is single-flight
    across every worker and machine that shares the database."""

    def get(self, key: str) -> dict | None:
        row = VendorToken.objects.filter(key=key).values_list("value", flat=True).first()
        return row or None

    def set(self, key: str, value: dict) -> None:
        VendorToken.objects.update_or_create(key=key, defaults={"value": value})

    @contextlib.contextmanager
    def lock(self, key: str):
        with transaction.atomic():
            VendorToken.objects.get_or_create(key=key)
            row = VendorToken.objects.select_for_update().get(key=key)
            yield row.value or None


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
            self.sleep(wait)
