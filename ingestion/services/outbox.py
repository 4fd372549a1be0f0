"""The DIG forwarder: claim queued records in batches of up to 5000 (fairly across devices,
oldest first per device), send them, and settle the outcome.

Delivery is at least once. A claim sets a lease (``available_at`` in the future) inside a short
``select_for_update(skip_locked=True)`` transaction, so parallel workers never take the same
rows, and the vendor call runs outside any transaction. If a worker dies after DIG accepted a
batch but before the rows were marked sent, the lease lapses and the batch is sent again: DIG
then sees a repeat of (SerialNo, Type, DateTime), its natural dedup key [I, reference §5.5].

Outcomes: 202 → sent. 400/413 → the batch is split in halves until the bad record is alone,
which is marked rejected with DIG's message. 429/503/timeouts/5xx → the batch stays queued with
backoff and the forwarder pauses (shared across workers). 401/403 → the client refreshes the
token and retries once; if that fails the batch stays queued.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from ingestion.models import DeviceFeed, DeviceRecord, ForwarderState
from ingestion.services.records import knob
from integrations.base import (
    AuthenticationError,
    VendorError,
    backoff_delay,
    vendor_call_context,
)
from integrations.dig import BadRecordsError, DigClient, PayloadTooLargeError

logger = logging.getLogger(__name__)

# (id, device_id, payload, received_at, recorded_at)
Row = tuple[int, int, str, datetime, datetime]


@dataclass
class ForwardSummary:
    batches: int = 0
    vendor_calls: int = 0
    sent: int = 0
    rejected: int = 0
    deferred: int = 0
    stopped: str = ""
    backlog: bool = False


def _claim(*, batch_size: int, lease_seconds: float) -> list[Row]:
    now = timezone.now()
    lease_until = now + timedelta(seconds=lease_seconds)
    if connection.vendor == "postgresql":
        # One round trip: the row locks of SELECT … FOR UPDATE SKIP LOCKED, and the lease, together.
        table = DeviceRecord._meta.db_table
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"WITH claimed AS (SELECT id FROM {table} WHERE status = %s AND available_at <= %s "
                f"ORDER BY fair_key, id LIMIT %s FOR UPDATE SKIP LOCKED) "
                f"UPDATE {table} r SET available_at = %s, attempts = r.attempts + 1 FROM claimed "
                f"WHERE r.id = claimed.id "
                f"RETURNING r.fair_key, r.id, r.device_id, r.payload, r.received_at, r.recorded_at",
                [DeviceRecord.Status.QUEUED, now, batch_size, lease_until],
            )
            rows = cursor.fetchall()
        rows.sort()
        return [row[1:] for row in rows]
    with transaction.atomic():
        rows = list(
            DeviceRecord.objects.select_for_update(skip_locked=True)
            .filter(status=DeviceRecord.Status.QUEUED, available_at__lte=now)
            .order_by("fair_key", "id")
            .values_list("id", "device_id", "payload", "received_at", "recorded_at")[:batch_size]
        )
        if rows:
            DeviceRecord.objects.filter(pk__in=[r[0] for r in rows]).update(
                available_at=lease_until, attempts=F("attempts") + 1
            )
    return rows


def _mark_sent(rows: Sequence[Row]) -> list[int]:
    """Settle a delivered batch and the per-device stats; returns devices whose first data this was."""
    now = timezone.now()
    per_device: dict[int, list] = {}
    for _, device_id, _, received_at, recorded_at in rows:
        stats = per_device.get(device_id)
        if stats is None:
            per_device[device_id] = [1, recorded_at, received_at]
        else:
            stats[0] += 1
            stats[1] = max(stats[1], recorded_at)
            stats[2] = min(stats[2], received_at)
    ids = [r[0] for r in rows]
    live = [DeviceRecord.Status.QUEUED, DeviceRecord.Status.HELD]
    with transaction.atomic():
        # Held counts too: a record held (e.g. terminated) while its batch was in flight was delivered.
        first = list(
            DeviceFeed.objects.filter(device_id__in=list(per_device), first_sent_at__isnull=True)
            .values_list("device_id", flat=True)
        )
        if connection.vendor == "postgresql":
            _mark_sent_postgres(ids, live, per_device, now)
            return first
        DeviceRecord.objects.filter(pk__in=ids, status__in=live).update(status=DeviceRecord.Status.SENT, sent_at=now)
        for device_id, (count, last_record, oldest_received) in sorted(per_device.items()):
            DeviceFeed.objects.filter(device_id=device_id).update(
                records_sent=F("records_sent") + count,
                first_sent_at=Coalesce(F("first_sent_at"), Value(now)),
                last_sent_at=now,
                last_record_at=Greatest(Coalesce(F("last_record_at"), Value(last_record)), Value(last_record)),
                last_lag_ms=int((now - oldest_received).total_seconds() * 1000),
            )
    return first


def _mark_sent_postgres(ids: list[int], live: list[str], per_device: dict, now: datetime) -> None:
    """The same settlement in two statements (arrays, not 5000 parameters)."""
    records, feeds = DeviceRecord._meta.db_table, DeviceFeed._meta.db_table
    devices = sorted(per_device)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {records} SET status = %s, sent_at = %s WHERE id = ANY(%s) AND status = ANY(%s)",
            [DeviceRecord.Status.SENT, now, ids, live],
        )
        cursor.execute(
            f"UPDATE {feeds} f SET records_sent = f.records_sent + v.n, "
            f"first_sent_at = COALESCE(f.first_sent_at, %s), last_sent_at = %s, "
            f"last_record_at = GREATEST(f.last_record_at, v.last_record), "
            f"last_lag_ms = (EXTRACT(EPOCH FROM (%s - v.oldest)) * 1000)::bigint "
            f"FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::timestamptz[]) "
            f"AS v(device_id, n, last_record, oldest) WHERE f.device_id = v.device_id",
            [now, now, now, devices, [per_device[d][0] for d in devices], [per_device[d][1] for d in devices],
             [per_device[d][2] for d in devices]],
        )


def _mark_rejected(rows: Sequence[Row], *, cause: str) -> None:
    ids = [r[0] for r in rows]
    with transaction.atomic():
        DeviceRecord.objects.filter(pk__in=ids).update(status=DeviceRecord.Status.REJECTED, cause=cause[:300])
        for device_id in {r[1] for r in rows}:
            n = sum(1 for r in rows if r[1] == device_id)
            DeviceFeed.objects.filter(device_id=device_id).update(records_rejected=F("records_rejected") + n)


def _defer(rows: Sequence[Row], *, until: datetime) -> None:
    DeviceRecord.objects.filter(pk__in=[r[0] for r in rows], status=DeviceRecord.Status.QUEUED).update(
        available_at=until
    )


def _pause(exc: VendorError) -> datetime:
    """Every worker stops sending until the pause ends (an outage or 429 is not per batch)."""
    with transaction.atomic():
        state = ForwarderState.objects.select_for_update().get(pk=ForwarderState.current().pk)
        state.consecutive_failures += 1
        delay = max(exc.retry_after or 0.0, backoff_delay(state.consecutive_failures, base=1.0,
                                                          cap=knob("DIG_FORWARD_MAX_BACKOFF_SECONDS", 60.0)))
        delay = max(delay, 0.2)
        state.paused_until = timezone.now() + timedelta(seconds=delay)
        state.pause_reason = f"{type(exc).__name__}: {exc}"[:300]
        state.save(update_fields=["consecutive_failures", "paused_until", "pause_reason"])
    return state.paused_until


def _first_data(device_ids: Sequence[int]) -> None:
    """First record delivered = billing starts: note it on the device and mark it active."""
    from devices.models import Device
    from devices.services import (
        DeviceTransitionError,
        device_record_event,
        device_transition,
    )

    for device in Device.objects.filter(pk__in=list(device_ids)):
        device_record_event(device=device, kind="first_data", message="First record delivered to DIG (billing starts).")
        if device.status != Device.Status.ACTIVE and Device.Status.ACTIVE in Device.TRANSITIONS[Device.Status(device.status)]:
            try:
                device_transition(device=device, to_status=Device.Status.ACTIVE, message="Data is flowing to DIG.")
            except DeviceTransitionError:
                logger.info("device %s could not be marked active", device.pk)


def _deliver(client: DigClient, rows: list[Row], summary: ForwardSummary,
             after_accept: Callable[[list[int]], None] | None) -> str:
    """Send one claimed batch, splitting on 400/413. Returns "" or why forwarding must stop."""
    stack = [rows]
    while stack:
        part = stack.pop()
        summary.vendor_calls += 1
        try:
            with vendor_call_context(target=f"ingestion.DeviceRecord:{part[0][0]}+{len(part) - 1}"):
                client.post_records([r[2] for r in part])
        except (BadRecordsError, PayloadTooLargeError) as exc:
            if len(part) == 1:
                _mark_rejected(part, cause=f"DIG refused the record: {exc}")
                summary.rejected += 1
                continue
            mid = len(part) // 2
            stack.append(part[mid:])
            stack.append(part[:mid])
            continue
        except (VendorError, ValueError) as exc:
            # Not executed, unknown outcome, refused credentials: keep everything queued.
            if isinstance(exc, AuthenticationError):
                logger.error("DIG refused the portal's credentials: %s", exc)
            until = _pause(exc) if isinstance(exc, VendorError) else timezone.now() + timedelta(seconds=60)
            pending = [r for p in [part, *stack] for r in p]
            _defer(pending, until=until)
            summary.deferred += len(pending)
            return f"{type(exc).__name__}: {exc}"
        if after_accept is not None:
            after_accept([r[0] for r in part])
        first = _mark_sent(part)
        summary.sent += len(part)
        if first:
            _first_data(first)
    return ""


def records_forward(
    *,
    client: DigClient | None = None,
    max_batches: int | None = None,
    time_budget_s: float | None = None,
    batch_size: int | None = None,
    after_accept: Callable[[list[int]], None] | None = None,
) -> ForwardSummary:
    """Forward queued records until the queue is empty, the budget is spent, or DIG asks us
    to back off. ``after_accept`` is a test hook called between DIG's 202 and marking the
    rows sent (where a killed worker would stop)."""
    summary = ForwardSummary()
    state = ForwarderState.current()
    if state.paused_until and state.paused_until > timezone.now():
        summary.stopped = f"paused until {state.paused_until:%H:%M:%S}: {state.pause_reason}"
        return summary
    if client is None:
        from portal.clients import dig_client

        client = dig_client()
    batch_size = max(1, min(5000, int(batch_size or knob("DIG_FORWARD_BATCH_SIZE", 5000))))
    max_batches = max_batches or int(knob("DIG_FORWARD_MAX_BATCHES", 200))
    deadline = time.monotonic() + (time_budget_s or knob("DIG_FORWARD_TIME_BUDGET_SECONDS", 60.0))
    lease = knob("DIG_FORWARD_LEASE_SECONDS", 120.0)
    healthy = state.consecutive_failures == 0
    while summary.batches < max_batches and time.monotonic() < deadline:
        rows = _claim(batch_size=batch_size, lease_seconds=lease)
        if not rows:
            return summary
        summary.batches += 1
        summary.stopped = _deliver(client, rows, summary, after_accept)
        if summary.stopped:
            return summary
        if not healthy:
            ForwarderState.objects.filter(pk=state.pk).update(consecutive_failures=0, paused_until=None, pause_reason="")
            healthy = True
    summary.backlog = DeviceRecord.objects.filter(
        status=DeviceRecord.Status.QUEUED, available_at__lte=timezone.now()
    ).exists()
    return summary
