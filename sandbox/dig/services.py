"""The simulated DIG's behaviour: tokens, the auth rate limit, and the asynchronous processing
that turns accepted batches into stored records or invalid records."""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from sandbox.dig.models import (
    DigAccount,
    DigAuthHit,
    DigBatch,
    DigInvalidRecord,
    DigRecord,
    DigSettings,
    DigToken,
)
from sandbox.dig.schema import parse_datetime


def token_issue(*, account: DigAccount) -> DigToken:
    cfg = DigSettings.current()
    now = timezone.now()
    return DigToken.objects.create(
        account=account,
        bearer=secrets.token_urlsafe(32),
        refresh=secrets.token_urlsafe(32),
        created_at=now,
        bearer_expires_at=now + timedelta(seconds=cfg.bearer_lifetime_seconds),
        refresh_expires_at=now + timedelta(seconds=cfg.refresh_lifetime_seconds),
    )


def token_payload(token: DigToken) -> dict:
    def fmt(dt):
        return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    return {
        "Authenticated": True,
        "UserId": token.account.username,
        "BearerToken": {"TokenString": token.bearer, "Created": fmt(token.created_at), "Expires": fmt(token.bearer_expires_at)},
        "RefreshToken": {"TokenString": token.refresh, "Created": fmt(token.created_at), "Expires": fmt(token.refresh_expires_at)},
    }


def token_for_bearer(bearer: str) -> DigToken | None:
    """The live token for a bearer string, or None (unknown, expired or blocked)."""
    if not bearer:
        return None
    token = DigToken.objects.select_related("account").filter(bearer=bearer).first()
    if token is None or token.revoked_at is not None or token.bearer_expires_at <= timezone.now():
        return None
    return token


def token_expire_all() -> None:
    """Fault injection (session_expiry): every bearer expires now."""
    DigToken.objects.filter(bearer_expires_at__gt=timezone.now()).update(bearer_expires_at=timezone.now())


def auth_rate_allow(*, endpoint: str) -> tuple[bool, int]:
    """Fixed one-minute window per endpoint; returns (allowed, seconds until the next window)."""
    limit = DigSettings.current().auth_requests_per_minute
    now = time.time()
    window = int(now // 60)
    try:
        with transaction.atomic():
            DigAuthHit.objects.get_or_create(endpoint=endpoint, window=window)
    except IntegrityError:
        pass
    DigAuthHit.objects.filter(endpoint=endpoint, window=window).update(count=F("count") + 1)
    count = DigAuthHit.objects.filter(endpoint=endpoint, window=window).values_list("count", flat=True).first()
    return (count or 0) <= limit, max(1, int((window + 1) * 60 - now) + 1)


def batches_process(*, limit: int = 1000) -> int:
    """Asynchronous processing: store accepted records once per (serial, type, DateTime) and
    report the well-formed-but-invalid ones through /invalidrecords. Returns batches processed."""
    cfg = DigSettings.current()
    unassigned = cfg.unassigned()
    oldest = timezone.now() - timedelta(days=cfg.max_record_age_days)
    done = 0
    while done < limit:
        with transaction.atomic():
            batch = (
                DigBatch.objects.select_for_update(skip_locked=True)
                .filter(processed_at__isnull=True).order_by("id").first()
            )
            if batch is None:
                break
            records, invalid = [], []
            for raw in json.loads(batch.body):
                when = parse_datetime(raw.get("DateTime"))
                cause = ""
                if raw.get("SerialNo") in unassigned:
                    cause = "Device is not assigned to a database."
                elif when < oldest:
                    cause = f"DateTime older than {cfg.max_record_age_days} days."
                elif raw.get("Type") in ("StatusRecord", "GenericStatusRecord") and 128 <= raw.get("Code", 0) <= 1999:
                    cause = "Code is not a status diagnostic (128-1999 are fault codes)."
                if cause:
                    invalid.append(DigInvalidRecord(account_id=batch.account_id, base_record=raw, cause=cause))
                else:
                    records.append(DigRecord(
                        serial=raw["SerialNo"], record_type=raw["Type"], recorded_at=when, data=raw,
                        first_batch_id=batch.id,
                    ))
            DigRecord.objects.bulk_create(records, ignore_conflicts=True, batch_size=2000)
            DigInvalidRecord.objects.bulk_create(invalid, batch_size=2000)
            DigBatch.objects.filter(pk=batch.pk).update(processed_at=timezone.now(), body="")
        done += 1
    return done


def stats() -> dict:
    batches_process()
    from django.db.models import Sum

    return {
        "batches": DigBatch.objects.count(),
        "records_received": DigBatch.objects.aggregate(n=Sum("count"))["n"] or 0,
        "records_unique": DigRecord.objects.count(),
        "invalid_records": DigInvalidRecord.objects.count(),
    }
