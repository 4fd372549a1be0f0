"""DIG's asynchronous rejections: read /invalidrecords from the saved cursor and mark the
matching outbox rows rejected with DIG's cause."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ingestion.models import DeviceFeed, DeviceRecord, ForwarderState
from integrations.dig import DigClient


@dataclass
class FeedbackSummary:
    pages: int = 0
    invalid: int = 0
    matched: int = 0


def _record_key(record: dict) -> tuple[str, str, datetime] | None:
    try:
        text = str(record["DateTime"])
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return str(record["SerialNo"]).strip().upper(), str(record["Type"]), when.astimezone(UTC)
    except (KeyError, TypeError, ValueError):
        return None


def records_poll_invalid(*, client: DigClient | None = None, max_pages: int = 20, page_size: int = 1000) -> FeedbackSummary:
    """Read new invalid records; each page's matches and the advanced cursor commit together,
    so a crash re-reads at most one page (and re-marking a rejected record changes nothing)."""
    if client is None:
        from portal.clients import dig_client

        client = dig_client()
    summary = FeedbackSummary()
    state = ForwarderState.current()
    cursor = state.invalid_cursor
    for _ in range(max_pages):
        page = client.invalid_records(next_result_key=cursor, number_of_results=page_size)
        summary.pages += 1
        summary.invalid += len(page.records)
        causes: dict[tuple, str] = {}
        for item in page.records:
            key = _record_key(item.record)
            if key is not None:
                causes[key] = item.cause or "Rejected by DIG (no cause given)."
        with transaction.atomic():
            for (serial, rtype, when), cause in causes.items():
                rows = list(
                    DeviceRecord.objects.filter(serial=serial, record_type=rtype, recorded_at=when)
                    .exclude(status=DeviceRecord.Status.REJECTED).values_list("pk", "device_id")
                )
                if not rows:
                    continue
                DeviceRecord.objects.filter(pk__in=[r[0] for r in rows]).update(
                    status=DeviceRecord.Status.REJECTED, cause=cause[:300]
                )
                DeviceFeed.objects.filter(device_id=rows[0][1]).update(records_rejected=F("records_rejected") + len(rows))
                summary.matched += len(rows)
            # NextResultKey is null once the feed is exhausted [C S10]; we then keep the start of
            # the last page and re-read it next time (cheap, idempotent) rather than guess how the
            # real cursor continues [I].
            if page.next_result_key is not None:
                cursor = page.next_result_key
            elif page.current_result_key is not None:
                cursor = page.current_result_key
            ForwarderState.objects.filter(pk=state.pk).update(invalid_cursor=cursor, invalid_polled_at=timezone.now())
        if page.next_result_key is None:
            break
    return summary
